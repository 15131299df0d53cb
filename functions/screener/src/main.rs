//! Lambda: the engagement screener, run on a schedule (EventBridge). Queues a reject for
//! each pending referral below the criteria near the end of its screening period; the run
//! lives in `sparkbridge::screener`.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use sparkbridge::adapters::dynamodb::DynamoStore;
use sparkbridge::adapters::sqs::SqsQueue;
use sparkbridge::config::{Env, ScreenerFunctionConfig, StartupError};
use sparkbridge::screener::Screener;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    sparkbridge::telemetry::init(&env);
    let screener = Arc::new(start(&env).await?);
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let screener = screener.clone();
        async move {
            let report = screener.scheduled_run(chrono::Utc::now()).await?;
            Ok::<_, Error>(serde_json::to_value(&report)?)
        }
    }))
    .await
}

/// The screener, from the environment: the table, the queue and the screening settings.
async fn start(env: &Env) -> Result<Screener, StartupError> {
    let cfg = ScreenerFunctionConfig::from_env(env)?;
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = sparkbridge::adapters::aws::sdk_config().await;
    Ok(Screener {
        store: Arc::new(DynamoStore::from_conf(&aws, cfg.table_name)),
        queue: Arc::new(SqsQueue::from_conf(&aws, &cfg.queue)),
        cfg: cfg.screening,
        dry_run: cfg.dry_run,
    })
}
