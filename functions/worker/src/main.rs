//! Lambda: the SQS worker (ReportBatchItemFailures). Clients are built once per execution
//! environment; the handler lives in `shared::worker` so `sparkbridge dev` runs the same code.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::sqs::SqsWorkQueue;
use shared::secrets::{Component, Secrets};
use shared::worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = shared::adapters::aws::sdk_config().await;
    let store = Arc::new(DynamoStore::from_env(&aws)?);
    // the API keys: from SECRETS_ARN (read again after its TTL) or the environment
    let secrets = Secrets::from_env(&aws, Component::Worker).await?;
    let worker = Arc::new(Worker {
        store: store.clone(),
        subscribers: store,
        sparkloop: shared::adapters::sparkloop::from_secrets(&secrets)?,
        esp: shared::adapters::esp::from_secrets(&secrets)?,
        queue: Arc::new(SqsWorkQueue::from_env(&aws)?),
        cfg: WorkerConfig::from_env()?,
    });
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            let deadline_ms = event.context.deadline as i64;
            Ok::<SqsBatchResponse, Error>(worker.handle(&event.payload, deadline_ms).await)
        }
    }))
    .await
}
