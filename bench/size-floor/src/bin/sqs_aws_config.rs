//! Variant b: the SDK's smallest SQS client as the functions configure it, through aws-config
//! (`aws_config::defaults(BehaviorVersion::latest())`, shared/src/adapters/aws.rs).

use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let conf = aws_config::defaults(BehaviorVersion::latest()).load().await;
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
        Ok::<_, Error>(json!({ "message_id": sent.message_id() }))
    }))
    .await
}
