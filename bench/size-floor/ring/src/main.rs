//! Variant e: variant c (../src/bin/sqs_hand_config.rs) with rustls on `ring`. The helpers are
//! copied, not shared: depending on ../ would bring its aws-lc-rs features into this build.

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

/// Why the function cannot start.
#[derive(Debug, thiserror::Error)]
enum FloorError {
    /// A variable the Lambda environment always sets (or the stack must set) is missing.
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
}

fn env(name: &'static str) -> Result<String, FloorError> {
    std::env::var(name).map_err(|_| FloorError::MissingEnv(name))
}

/// The event's body, or the whole event as JSON when it has none.
fn body(event: &Value) -> String {
    match event.get("body") {
        Some(Value::String(s)) => s.clone(),
        _ => event.to_string(),
    }
}

/// The SQS client from the Lambda environment's variables, over rustls + ring.
fn sqs_client() -> Result<aws_sdk_sqs::Client, FloorError> {
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID")?,
        env("AWS_SECRET_ACCESS_KEY")?,
        std::env::var("AWS_SESSION_TOKEN").ok(),
        None,
        "lambda-environment",
    );
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("AWS_REGION")?))
        .credentials_provider(credentials)
        .http_client(http);
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        conf = conf.endpoint_url(url);
    }
    Ok(aws_sdk_sqs::Client::from_conf(conf.build()))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sqs = sqs_client()?;
    let queue_url = env("QUEUE_URL")?;
    let (sqs, queue_url) = (&sqs, queue_url.as_str());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let sent = sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body(&event.payload))
            .send()
            .await?;
        Ok::<_, Error>(json!({ "message_id": sent.message_id() }))
    }))
    .await
}
