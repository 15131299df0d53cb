//! `sparkbridge dev`: the ingest handlers over HTTP plus the worker, in one process, running
//! the same handler code as the Lambda functions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::extract::{Request as AxumRequest, State};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::{any, get};
use axum::Router;
use lambda_http::{Body, RequestExt};
use sparkbridge::adapters::dynamodb::DynamoStore;
use sparkbridge::adapters::memory_queue::MemoryQueue;
use sparkbridge::adapters::memory_store::MemoryStore;
use sparkbridge::adapters::sqs::{SqsQueue, SqsWorkQueue, DEFAULT_MAX_MESSAGE_BYTES};
use sparkbridge::config::{
    Env, EspConfig, EsputnikWebhookConfig, SecretsConfig, SparkLoopConfig, TABLE_NAME,
};
use sparkbridge::ingest::esputnik::EsputnikIngest;
use sparkbridge::ingest::loops::LoopsIngest;
use sparkbridge::ingest::sparkloop::SparkloopIngest;
use sparkbridge::local::{BatchSource, SqsSource};
use sparkbridge::ports::{EventQueue, IdempotencyStore, SubscriberStore, WorkQueue};
use sparkbridge::screener::ScreeningConfig;
use sparkbridge::secrets::Secrets;
use sparkbridge::worker::{Worker, WorkerConfig};

use crate::error::CliError;

/// API Gateway's payload limit, applied before the handlers see the body.
const MAX_BODY: usize = 10 * 1024 * 1024;

pub struct DevOptions {
    pub listen: SocketAddr,
    pub aws: bool,
    pub create: bool,
    pub name: String,
    pub pollers: usize,
    /// Whether the dev worker consumes the queue.
    pub worker: bool,
}

struct Ingest {
    loops: LoopsIngest,
    esputnik: EsputnikIngest,
    sparkloop: SparkloopIngest,
    mode: &'static str,
    subscribers: Arc<dyn SubscriberStore>,
    queue: Arc<dyn EventQueue>,
    screening: ScreeningConfig,
    /// The in-memory DLQ (the default mode); with `--aws`, `sparkbridge dlq` reads SQS.
    memory_dlq: Option<Arc<MemoryQueue>>,
}

pub async fn run(opts: DevOptions) -> Result<(), CliError> {
    let mut env = Env::process();
    let defaults = crate::defaults::apply(&mut env);
    if !defaults.is_empty() {
        tracing::warn!(variables = %defaults.join(","), "using development default webhook secrets (`sparkbridge send` uses the same)");
    }
    let cfg = WorkerConfig::from_env(&env)?;
    let use_aws = opts.aws || env.get("AWS_ENDPOINT_URL").is_some();
    let Backends {
        queue,
        store,
        subscribers,
        work_queue,
        source,
        mode,
        memory_dlq,
    } = if use_aws {
        aws_backends(&opts, &env, &cfg).await?
    } else {
        memory_backends(&cfg)
    };
    let secrets = Secrets::environment(SecretsConfig::environment(&env).env);
    let webhook = EsputnikWebhookConfig::from_env(&env)?;
    let ingest = Arc::new(Ingest {
        loops: LoopsIngest::from_secrets(queue.clone(), &secrets)?,
        esputnik: EsputnikIngest::from_secrets(queue.clone(), &secrets, webhook)?,
        sparkloop: SparkloopIngest::from_secrets(queue.clone(), &secrets)?,
        mode,
        subscribers: subscribers.clone(),
        queue: queue.clone(),
        screening: ScreeningConfig::from_env(&env)?,
        memory_dlq,
    });
    let sparkloop_cfg = SparkLoopConfig::from_env(&env);
    let esp_cfg = EspConfig::from_env(&env)?;
    let worker = Arc::new(Worker {
        store,
        subscribers,
        sparkloop: sparkbridge::adapters::sparkloop::from_secrets(&sparkloop_cfg, &secrets)?,
        esp: sparkbridge::adapters::esp::from_secrets(&esp_cfg, &secrets)?,
        queue: work_queue,
        cfg,
    });
    if opts.worker {
        tokio::spawn(sparkbridge::local::run(
            source,
            worker,
            opts.pollers,
            Duration::from_secs(30),
        ));
    } else {
        tracing::warn!(mode, "worker off (--no-worker): deliveries stay queued");
    }

    let app = Router::new()
        .route("/webhooks/loops", any(loops))
        .route("/webhooks/esputnik", any(esputnik))
        .route("/webhooks/sparkloop", any(sparkloop))
        .route("/healthz", get(healthz))
        .route("/_dev/subscribers/{email}", get(subscriber))
        .route("/_dev/screen", axum::routing::post(screen))
        .route("/_dev/dlq", get(dlq))
        .with_state(ingest.clone());
    tokio::spawn(screen_periodically(
        ingest.clone(),
        screening_interval(&env),
    ));
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Failed(e.to_string()))?;
    tracing::info!(%addr, mode, "sparkbridge dev ready: POST /webhooks/loops, GET|POST /webhooks/esputnik, POST /webhooks/sparkloop, GET /healthz");
    eprintln!("sparkbridge dev listening on http://{addr} ({mode} queue and store)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::Failed(e.to_string()))
}

/// What `dev` runs on: SQS and DynamoDB (`--aws`), or the in-memory queue and store.
struct Backends {
    queue: Arc<dyn EventQueue>,
    store: Arc<dyn IdempotencyStore>,
    subscribers: Arc<dyn SubscriberStore>,
    work_queue: Arc<dyn WorkQueue>,
    source: Arc<dyn BatchSource>,
    mode: &'static str,
    memory_dlq: Option<Arc<MemoryQueue>>,
}

async fn aws_backends(
    opts: &DevOptions,
    env: &Env,
    cfg: &WorkerConfig,
) -> Result<Backends, CliError> {
    let (queue_url, dlq_url, table) = aws_resources(
        env,
        opts.create,
        &opts.name,
        cfg.retry.redrive_count(&cfg.backoff),
    )
    .await?;
    let conf = sparkbridge::adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let max = env.number("MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)?;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&conf),
        table,
    ));
    Ok(Backends {
        queue: Arc::new(SqsQueue::new(sqs.clone(), queue_url.clone(), max)),
        store: store.clone(),
        subscribers: store,
        work_queue: Arc::new(SqsWorkQueue::new(sqs.clone(), queue_url.clone(), dlq_url)),
        source: Arc::new(SqsSource {
            client: sqs,
            url: queue_url,
            visibility_secs: 60,
        }),
        mode: "aws",
        memory_dlq: None,
    })
}

fn memory_backends(cfg: &WorkerConfig) -> Backends {
    let q = Arc::new(MemoryQueue::new(
        Duration::from_secs(30),
        cfg.retry.redrive_count(&cfg.backoff),
        DEFAULT_MAX_MESSAGE_BYTES,
    ));
    let store = Arc::new(MemoryStore::new());
    Backends {
        queue: q.clone(),
        store: store.clone(),
        subscribers: store,
        work_queue: q.clone(),
        source: q.clone(),
        mode: "memory",
        memory_dlq: Some(q),
    }
}

/// Queue, DLQ and table for `--aws`: from QUEUE_URL/DLQ_URL/TABLE_NAME, or created with `--create`.
async fn aws_resources(
    env: &Env,
    create: bool,
    name: &str,
    redrive_count: u32,
) -> Result<(String, String, String), CliError> {
    let env = |n: &str| env.get(n).filter(|v| !v.is_empty()).map(str::to_string);
    if let (Some(q), Some(d), Some(t)) = (env("QUEUE_URL"), env("DLQ_URL"), env(TABLE_NAME)) {
        if !create {
            return Ok((q, d, t));
        }
    }
    if !create {
        return Err(CliError::Usage(
            "--aws needs QUEUE_URL, DLQ_URL and TABLE_NAME, or --create to make them".into(),
        ));
    }
    let conf = sparkbridge::adapters::aws::sdk_config().await;
    let (queue_url, dlq_url) =
        crate::dlq::create_queues(&aws_sdk_sqs::Client::new(&conf), name, redrive_count).await?;
    let table = env(TABLE_NAME).unwrap_or_else(|| name.to_string());
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), table.clone())
        .create_table_if_missing()
        .await?;
    Ok((queue_url, dlq_url, table))
}

/// How often `dev` runs the screener (`SCREENING_INTERVAL_SECS`, 3600; malformed is 3600).
fn screening_interval(env: &Env) -> Duration {
    let secs = env
        .number("SCREENING_INTERVAL_SECS", 3_600u64)
        .unwrap_or(3_600)
        .max(1);
    Duration::from_secs(secs)
}

/// Runs the screener like its EventBridge schedule would.
async fn screen_periodically(ingest: Arc<Ingest>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if !ingest.screening.enabled {
            continue;
        }
        match sparkbridge::screener::run(
            &ingest.subscribers,
            &ingest.queue,
            &ingest.screening,
            chrono::Utc::now(),
            false,
        )
        .await
        {
            Ok(r) => tracing::info!(
                checked = r.checked,
                rejected = r.rejected.len(),
                "screening run"
            ),
            Err(e) => tracing::warn!(error = %e, "screening run failed"),
        }
    }
}

/// `GET /_dev/subscribers/{email}`: what `sparkbridge subscriber show --url` reads.
async fn subscriber(
    State(ingest): State<Arc<Ingest>>,
    axum::extract::Path(email): axum::extract::Path<String>,
) -> AxumResponse {
    match ingest.subscribers.get(&email).await {
        Ok(Some(state)) => json_response(
            http::StatusCode::OK,
            serde_json::to_value(state).unwrap_or_default(),
        ),
        Ok(None) => json_response(
            http::StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no such subscriber"}),
        ),
        Err(e) => json_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

/// `GET /_dev/dlq`: what the worker parked, with its reasons (in memory; with `--aws`,
/// `sparkbridge dlq list` reads the SQS DLQ).
async fn dlq(State(ingest): State<Arc<Ingest>>) -> AxumResponse {
    let Some(q) = &ingest.memory_dlq else {
        return json_response(
            http::StatusCode::NOT_FOUND,
            serde_json::json!({"error": "dev runs on SQS: use `sparkbridge dlq list` with DLQ_URL"}),
        );
    };
    let parked: Vec<serde_json::Value> = q
        .dlq()
        .into_iter()
        .map(|m| serde_json::json!({"id": m.id, "attributes": m.attributes, "body": m.body}))
        .collect();
    json_response(http::StatusCode::OK, serde_json::Value::Array(parked))
}

/// `POST /_dev/screen[?dry_run=true]`: what `sparkbridge screen --url` calls.
async fn screen(State(ingest): State<Arc<Ingest>>, req: AxumRequest) -> AxumResponse {
    let dry_run = url_pairs(req.uri().query().unwrap_or(""))
        .iter()
        .any(|(k, v)| k == "dry_run" && v == "true");
    match sparkbridge::screener::run(
        &ingest.subscribers,
        &ingest.queue,
        &ingest.screening,
        chrono::Utc::now(),
        dry_run,
    )
    .await
    {
        Ok(r) => json_response(
            http::StatusCode::OK,
            serde_json::to_value(r).unwrap_or_default(),
        ),
        Err(e) => json_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

fn json_response(status: http::StatusCode, body: serde_json::Value) -> AxumResponse {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn healthz(State(ingest): State<Arc<Ingest>>) -> AxumResponse {
    let body = serde_json::json!({"status": "ok", "mode": ingest.mode}).to_string();
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn loops(State(ingest): State<Arc<Ingest>>, req: AxumRequest) -> AxumResponse {
    match to_lambda(req).await {
        Ok(r) => from_lambda(ingest.loops.handle(r).await),
        Err(resp) => resp,
    }
}

async fn esputnik(State(ingest): State<Arc<Ingest>>, req: AxumRequest) -> AxumResponse {
    match to_lambda(req).await {
        Ok(r) => from_lambda(ingest.esputnik.handle(r).await),
        Err(resp) => resp,
    }
}

async fn sparkloop(State(ingest): State<Arc<Ingest>>, req: AxumRequest) -> AxumResponse {
    match to_lambda(req).await {
        Ok(r) => from_lambda(ingest.sparkloop.handle(r).await),
        Err(resp) => resp,
    }
}

/// An HTTP request as API Gateway would hand it to lambda_http: same method, URI, headers,
/// exact body bytes, and the query string parsed into the request extensions.
async fn to_lambda(req: AxumRequest) -> Result<lambda_http::Request, AxumResponse> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        (
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body over 10 MB",
        )
            .into_response()
    })?;
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url_pairs(parts.uri.query().unwrap_or("")) {
        query.entry(k).or_default().push(v);
    }
    let body = match String::from_utf8(Vec::from(bytes)) {
        Ok(s) if s.is_empty() => Body::Empty,
        Ok(s) => Body::Text(s),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Ok(http::Request::from_parts(parts, body).with_query_string_parameters(query))
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    // a webhook has no query: not worth a URL parse per request
    if query.is_empty() {
        return Vec::new();
    }
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn from_lambda(resp: lambda_http::Response<Body>) -> AxumResponse {
    let (parts, body) = resp.into_parts();
    let body = match body {
        Body::Empty => AxumBody::empty(),
        Body::Text(s) => AxumBody::from(s),
        Body::Binary(b) => AxumBody::from(b),
        _ => AxumBody::empty(),
    };
    AxumResponse::from_parts(parts, body)
}
