//! Lambda: the reconciler, run on a schedule (daily by default). Stops 30 s before the
//! invocation deadline with a checkpoint; the next run resumes there. A run that refuses
//! repairs (a side whose reads fail, too many SparkLoop unsubscribes for
//! `RECONCILE_MAX_UNSUBSCRIBE_SHARE`) ends with the error, so the invocation fails. The run
//! lives in `sparkbridge::reconcile`.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use sparkbridge::adapters::dynamodb::DynamoStore;
use sparkbridge::adapters::sqs::SqsQueue;
use sparkbridge::config::{Env, ReconcilerFunctionConfig, StartupError};
use sparkbridge::reconcile::Reconciler;
use sparkbridge::secrets::{Component, Secrets};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    sparkbridge::telemetry::init(&env);
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
    let aws = sparkbridge::adapters::aws::sdk_config().await;
    let secrets = Secrets::load(&aws, &cfg.secrets, Component::Reconciler).await?;
    Ok(Reconciler {
        sparkloop: sparkbridge::adapters::sparkloop::from_secrets(&cfg.sparkloop, &secrets)?,
        esp: sparkbridge::adapters::esp::from_secrets(&cfg.esp, &secrets)?,
        store: Arc::new(DynamoStore::from_conf(&aws, cfg.table_name)),
        queue: Arc::new(SqsQueue::from_conf(&aws, &cfg.queue)),
        cfg: cfg.reconcile,
        dry_run: cfg.dry_run,
    })
}
