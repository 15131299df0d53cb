//! Lambda: Loops webhooks -> SQS. Configuration and clients are built once per execution
//! environment; the handler lives in `sparkbridge::ingest::loops` so `sparkbridge dev` runs the
//! same code.

use std::sync::Arc;

use lambda_http::{run, service_fn, Error};
use sparkbridge::adapters::sqs::SqsQueue;
use sparkbridge::config::{Env, IngestLoopsConfig, StartupError};
use sparkbridge::ingest::loops::LoopsIngest;
use sparkbridge::secrets::{Component, Secrets};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::process();
    sparkbridge::telemetry::init(&env);
    let ingest = Arc::new(start(&env).await?);
    run(service_fn(move |req| {
        let ingest = ingest.clone();
        async move { Ok::<_, Error>(ingest.handle(req).await) }
    }))
    .await
}

/// The handler, from the environment: the queue, and the webhook secret from SECRETS_ARN
/// (read again after its TTL) or the environment.
async fn start(env: &Env) -> Result<LoopsIngest, StartupError> {
    let cfg = IngestLoopsConfig::from_env(env)?;
    // one configuration (region, credentials, HTTP client) for every AWS client
    let aws = sparkbridge::adapters::aws::sdk_config().await;
    let queue = Arc::new(SqsQueue::from_conf(&aws, &cfg.queue));
    let secrets = Secrets::load(&aws, &cfg.secrets, Component::IngestLoops).await?;
    Ok(LoopsIngest::from_secrets(queue, &secrets)?)
}
