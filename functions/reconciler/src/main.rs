//! Lambda: the reconciler, run on a schedule (daily by default). Stops 30 s before the
//! invocation deadline with a checkpoint; the next run resumes there. A run that refuses
//! repairs (a side whose reads fail, too many SparkLoop unsubscribes for
//! `RECONCILE_MAX_UNSUBSCRIBE_SHARE`) ends with the error, so the invocation fails.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::sqs::SqsQueue;
use shared::reconcile::{Deps, ReconcileConfig};
use shared::secrets::{Component, Secrets};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = shared::adapters::aws::sdk_config().await;
    let store = Arc::new(DynamoStore::from_env(&aws)?);
    let queue = Arc::new(SqsQueue::from_env(&aws)?);
    // the API keys: from SECRETS_ARN (read again after its TTL) or the environment
    let secrets = Secrets::from_env(&aws, Component::Reconciler).await?;
    let sparkloop = shared::adapters::sparkloop::from_secrets(&secrets)?;
    let esp = shared::adapters::esp::from_secrets(&secrets)?;
    let cfg = Arc::new(ReconcileConfig::from_env()?);
    let dry_run = shared::config::flag("RECONCILE_DRY_RUN");
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (store, queue, sparkloop, esp, cfg) = (
            store.clone(),
            queue.clone(),
            sparkloop.clone(),
            esp.clone(),
            cfg.clone(),
        );
        async move {
            let left = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let stop_at = Instant::now() + left.saturating_sub(Duration::from_secs(30));
            let deps = Deps {
                sparkloop: sparkloop.as_ref(),
                esp: esp.as_ref(),
                store: store.as_ref(),
                queue: queue.as_ref(),
            };
            let result = shared::reconcile::run(
                &deps,
                &cfg,
                chrono::Utc::now(),
                dry_run,
                Some(stop_at),
                &|_| {},
            )
            .await;
            // A refused run still reports what it saw and what it queued before failing.
            if let Some(summary) = result
                .as_ref()
                .ok()
                .or_else(|| result.as_ref().err().and_then(|e| e.summary()))
            {
                lambda_runtime::tracing::info!(
                    checked = summary.checked,
                    in_agreement = summary.in_agreement,
                    repaired = summary.total_repaired(),
                    not_queued = summary.total_not_queued(),
                    failed = summary.failed,
                    complete = summary.complete,
                    refused = summary
                        .refused
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    "reconcile run"
                );
            }
            let summary = result?;
            Ok::<_, Error>(serde_json::to_value(&summary)?)
        }
    }))
    .await
}
