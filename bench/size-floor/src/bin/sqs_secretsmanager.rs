//! Variant d: variant b plus the Secrets Manager client every ingest function links: the
//! webhook secret is read once at start (`SECRET_ID`), as the ingest functions read theirs.

use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let conf = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let secret = aws_sdk_secretsmanager::Client::new(&conf)
        .get_secret_value()
        .secret_id(size_floor::env("SECRET_ID")?)
        .send()
        .await?;
    let secret_len = secret.secret_string().map_or(0, str::len);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue_url = size_floor::env(size_floor::QUEUE_URL_VAR)?;
    let (sqs, queue_url) = (&sqs, queue_url.as_str());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let sent = sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(size_floor::body(&event.payload))
            .send()
            .await?;
        Ok::<_, Error>(json!({ "message_id": sent.message_id(), "secret_len": secret_len }))
    }))
    .await
}
