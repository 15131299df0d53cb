//! Variant c: variant b without aws-config. The SQS client's config is built by hand from what
//! the Lambda environment sets: `AWS_REGION`, the execution role's keys and session token, and
//! the optional `AWS_ENDPOINT_URL` (moto, LocalStack). No STS, SSO, IMDS or profile files.

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use size_floor::{env, FloorError};

/// The SQS client from the Lambda environment's variables.
fn sqs_client() -> Result<aws_sdk_sqs::Client, FloorError> {
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID")?,
        env("AWS_SECRET_ACCESS_KEY")?,
        std::env::var("AWS_SESSION_TOKEN").ok(),
        None,
        "lambda-environment",
    );
    let mut conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("AWS_REGION")?))
        .credentials_provider(credentials);
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        conf = conf.endpoint_url(url);
    }
    Ok(aws_sdk_sqs::Client::from_conf(conf.build()))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sqs = sqs_client()?;
    let queue_url = env(size_floor::QUEUE_URL_VAR)?;
    let (sqs, queue_url) = (&sqs, queue_url.as_str());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let sent = sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(size_floor::body(&event.payload))
            .send()
            .await?;
        Ok::<_, Error>(json!({ "message_id": sent.message_id() }))
    }))
    .await
}
