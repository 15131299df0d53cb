//! Lambda: the SQS worker (ReportBatchItemFailures). Configuration and clients are built once
//! per execution environment; the handler lives in `sparkbridge::worker` so `sparkbridge dev` runs
//! the same code.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use sparkbridge::adapters::dynamodb::DynamoStore;
use sparkbridge::adapters::sqs::SqsWorkQueue;
use sparkbridge::config::{Env, StartupError, WorkerFunctionConfig};
use sparkbridge::secrets::{Component, Secrets};
use sparkbridge::worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    sparkbridge::telemetry::init(&env);
    let worker = Arc::new(start(&env).await?);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            let deadline_ms = event.context.deadline as i64;
            Ok::<SqsBatchResponse, Error>(worker.handle(&event.payload, deadline_ms).await)
        }
    }))
    .await
}

/// The worker, from the environment: the table, the queues, and the API clients with their
/// keys from SECRETS_ARN (read again after its TTL) or the environment.
async fn start(env: &Env) -> Result<Worker, StartupError> {
    let cfg = WorkerFunctionConfig::from_env(env)?;
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = sparkbridge::adapters::aws::sdk_config().await;
    let store = Arc::new(DynamoStore::from_conf(&aws, cfg.table_name));
    let secrets = Secrets::load(&aws, &cfg.secrets, Component::Worker).await?;
    Ok(Worker {
        store: store.clone(),
        subscribers: store,
        sparkloop: sparkbridge::adapters::sparkloop::from_secrets(&cfg.sparkloop, &secrets)?,
        esp: sparkbridge::adapters::esp::from_secrets(&cfg.esp, &secrets)?,
        queue: Arc::new(SqsWorkQueue::from_conf(&aws, &cfg.queues)),
        cfg: cfg.worker,
    })
}
