//! Lambda: the engagement screener, run on a schedule (EventBridge). Queues a reject for
//! each pending referral below the criteria near the end of its screening period.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::sqs::SqsQueue;
use shared::ports::{EventQueue, SubscriberStore};
use shared::screener::ScreeningConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = shared::adapters::aws::sdk_config().await;
    let store: Arc<dyn SubscriberStore> = Arc::new(DynamoStore::from_env(&aws)?);
    let queue: Arc<dyn EventQueue> = Arc::new(SqsQueue::from_env(&aws)?);
    let cfg = Arc::new(ScreeningConfig::from_env()?);
    let dry_run = shared::config::flag("SCREENING_DRY_RUN");
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let (store, queue, cfg) = (store.clone(), queue.clone(), cfg.clone());
        async move {
            let report =
                shared::screener::run(&store, &queue, &cfg, chrono::Utc::now(), dry_run).await?;
            tracing_report(&report);
            Ok::<_, Error>(serde_json::to_value(&report)?)
        }
    }))
    .await
}

fn tracing_report(r: &shared::screener::ScreenReport) {
    lambda_runtime::tracing::info!(
        checked = r.checked,
        passed = r.passed,
        not_due = r.not_due,
        expired = r.expired,
        rejected = r.rejected.len(),
        dry_run = r.dry_run,
        "screening run"
    );
}
