//! Lambda: the reconciler, run on a schedule (daily by default). Stops 30 s before the
//! invocation deadline with a checkpoint; the next run resumes there. A run that refuses
//! repairs (a side whose reads fail, too many SparkLoop unsubscribes for
//! `RECONCILE_MAX_UNSUBSCRIBE_SHARE`) ends with the error, so the invocation fails. The run
//! lives in `shared::reconcile`.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::sqs::SqsQueue;
use shared::config::{Env, ReconcilerFunctionConfig, StartupError};
use shared::reconcile::Reconciler;
use shared::secrets::{Component, Secrets};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    shared::telemetry::init(&env);
    let reconciler = Arc::new(start(&env).await?);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let reconciler = reconciler.clone();
        async move {
            let summary = reconciler.scheduled_run(event.context.deadline()).await?;
            Ok::<_, Error>(serde_json::to_value(&summary)?)
        }
    }))
    .await
}

/// The reconciler, from the environment: the table, the queue, and the API clients with
/// their keys from SECRETS_ARN (read again after its TTL) or the environment.
async fn start(env: &Env) -> Result<Reconciler, StartupError> {
    let cfg = ReconcilerFunctionConfig::from_env(env)?;
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = shared::adapters::aws::sdk_config().await;
    let secrets = Secrets::load(&aws, &cfg.secrets, Component::Reconciler).await?;
    Ok(Reconciler {
        sparkloop: shared::adapters::sparkloop::from_secrets(&cfg.sparkloop, &secrets)?,
        esp: shared::adapters::esp::from_secrets(&cfg.esp, &secrets)?,
        store: Arc::new(DynamoStore::from_conf(&aws, cfg.table_name)),
        queue: Arc::new(SqsQueue::from_conf(&aws, &cfg.queue)),
        cfg: cfg.reconcile,
        dry_run: cfg.dry_run,
    })
}
