//! Lambda: Sparkloop webhooks -> SQS. Configuration and clients are built once per execution
//! environment; the handler lives in `shared::ingest::sparkloop` so `sparkbridge dev` runs the same code.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error};
use shared::adapters::sqs::SqsQueue;
use shared::config::{Env, IngestSparkloopConfig};
use shared::ingest::sparkloop::SparkloopIngest;
use shared::secrets::{Component, Secrets};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    shared::telemetry::init(&env);
    let cfg = IngestSparkloopConfig::from_env(&env)?;
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = shared::adapters::aws::sdk_config().await;
    let queue = Arc::new(SqsQueue::from_conf(&aws, &cfg.queue));
    // the webhook secret: from SECRETS_ARN (read again after its TTL) or the environment
    let secrets = Secrets::load(&aws, &cfg.secrets, Component::IngestSparkloop).await?;
    let ingest = Arc::new(SparkloopIngest::from_secrets(queue, &secrets)?);
    run(service_fn(move |req| {
        let ingest = ingest.clone();
        async move { Ok::<_, Error>(ingest.handle(req).await) }
    }))
    .await
}
