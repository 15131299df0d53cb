//! Variant a: the Lambda runtime alone, answering each event with its body. No AWS SDK.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({ "body": size_floor::body(&event.payload) }))
    }))
    .await
}
