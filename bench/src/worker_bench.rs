//! Figure 4: the worker on a batch of 10 against a fake SparkLoop that answers after a delay,
//! one by one (`concurrency = 1`) and concurrently (`10`); then the DynamoDB and SQS round
//! trips per processed event, counted at the SDK on a moto server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sparkbridge::adapters::dynamodb::DynamoStore;
use sparkbridge::adapters::esp::DryRunEsp;
use sparkbridge::adapters::memory_queue::MemoryQueue;
use sparkbridge::adapters::memory_store::MemoryStore;
use sparkbridge::adapters::sparkloop::{ClientSettings, SparkLoopClient};
use sparkbridge::adapters::sqs::{SqsQueue, SqsWorkQueue};
use sparkbridge::core::secret::Secret;
use sparkbridge::ports::{IdempotencyStore, SubscriberStore, WorkQueue};
use sparkbridge::worker::{Worker, WorkerConfig};

use crate::aws::{counted_clients, moto_config, Counter};
use crate::events::{self, Samples};
use crate::fake::Fake;
use crate::util::{self, ms};

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// How long the fake SparkLoop takes to answer
    #[arg(long, default_value_t = 50)]
    delay_ms: u64,
    /// Repetitions of each timing (the median is reported)
    #[arg(long, default_value_t = 7)]
    repeat: usize,
    #[arg(long, default_value = "events")]
    events_dir: PathBuf,
    /// moto server for the round-trip counts (skipped when it does not answer)
    #[arg(long, env = "BENCH_MOTO_URL", default_value = "http://127.0.0.1:5055")]
    moto: String,
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Stores {
    store: Arc<dyn IdempotencyStore>,
    subscribers: Arc<dyn SubscriberStore>,
    queue: Arc<dyn WorkQueue>,
}

fn worker(stores: &Stores, sparkloop_url: &str, cfg: WorkerConfig) -> Worker {
    let settings = ClientSettings {
        rate_per_min: 1_000_000_000,
        ..ClientSettings::default()
    };
    Worker {
        store: stores.store.clone(),
        subscribers: stores.subscribers.clone(),
        sparkloop: Arc::new(SparkLoopClient::new(
            sparkloop_url,
            Secret::new("bench-api-key"),
            &settings,
        )),
        esp: Arc::new(DryRunEsp("none")),
        queue: stores.queue.clone(),
        cfg,
    }
}

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        ..WorkerConfig::default()
    }
}

/// `n` Loops envelopes of `kind`, each for a different subscriber, with fresh dedupe ids.
fn loops_batch(samples: &Samples, kind: &str, n: usize) -> Result<Vec<String>, String> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..n)
        .map(|i| {
            let body =
                events::loops_body(samples, kind, &format!("c{i}-{}@example.com", &run[..6]))?;
            events::loops_envelope(&body, &format!("msg_w_{run}_{i}"))
        })
        .collect()
}

/// Runs one batch like the event source mapping would; returns the time and failed records.
async fn invoke(w: &Worker, bodies: Vec<String>) -> (Duration, usize) {
    let ev = sparkbridge::local::sqs_event(&events::deliveries(bodies));
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let t = Instant::now();
    let resp = w.handle(&ev, deadline).await;
    (t.elapsed(), resp.batch_item_failures.len())
}

/// One call alone, a batch of 10 one by one, a batch of 10 concurrently; medians.
async fn timings(
    stores: &Stores,
    url: &str,
    samples: &Samples,
    repeat: usize,
) -> Result<Value, String> {
    let seq = worker(stores, url, config(1));
    let par = worker(stores, url, config(10));
    // Warm up both clients' connection pools.
    invoke(&par, loops_batch(samples, "email.unsubscribed", 10)?).await;
    invoke(&seq, loops_batch(samples, "email.unsubscribed", 1)?).await;
    let (mut one, mut c1, mut c10, mut failed) = (vec![], vec![], vec![], 0);
    for _ in 0..repeat {
        let (d, f) = invoke(&seq, loops_batch(samples, "email.unsubscribed", 1)?).await;
        one.push(d);
        failed += f;
        let (d, f) = invoke(&seq, loops_batch(samples, "email.unsubscribed", 10)?).await;
        c1.push(d);
        failed += f;
        let (d, f) = invoke(&par, loops_batch(samples, "email.unsubscribed", 10)?).await;
        c10.push(d);
        failed += f;
    }
    let (one, c1, c10) = (util::median(&one), util::median(&c1), util::median(&c10));
    Ok(json!({
        "one_record_ms": ms(one),
        "batch10_concurrency1_ms": ms(c1),
        "batch10_concurrency10_ms": ms(c10),
        "batch10_concurrent_over_one_call": util::round3(c10.as_secs_f64() / one.as_secs_f64()),
        "speedup_concurrency10_vs_1": util::round3(c1.as_secs_f64() / c10.as_secs_f64()),
        "failed_records": failed,
    }))
}

/// Runs one batch and returns the requests it made, per event.
async fn count_kind(
    counter: Counter,
    label: &'static str,
    note: &'static str,
    w: &Worker,
    bodies: Vec<String>,
) -> Value {
    let n = bodies.len() as f64;
    counter.take();
    let (d, failed) = invoke(w, bodies).await;
    let mut v = counter.take().to_json(n);
    v["event"] = json!(label);
    v["note"] = json!(note);
    v["failed"] = json!(failed);
    v["batch_ms"] = json!(ms(d));
    v
}

async fn round_trips(
    moto: &str,
    fake: &Fake,
    url: &str,
    delay: Duration,
    samples: &Samples,
    repeat: usize,
) -> Result<Value, String> {
    fake.set_delay(Duration::ZERO);
    let conf = moto_config(moto).await?;
    let (queue_url, dlq_url, table) = crate::aws::fresh_resources(&conf).await?;
    let counter = Counter::default();
    let (ddb, sqs) = counted_clients(&conf, &counter);
    let dynamo = Arc::new(DynamoStore::new(ddb.clone(), table.clone()));
    let stores = Stores {
        store: dynamo.clone(),
        subscribers: dynamo.clone(),
        queue: Arc::new(SqsWorkQueue::new(sqs.clone(), queue_url.clone(), dlq_url)),
    };
    let w = worker(&stores, url, config(10));
    let detect = worker(
        &stores,
        url,
        WorkerConfig {
            detect_email_changes: true,
            ..config(10)
        },
    );

    // moto's own round trip, for reading the timings below.
    let mut rtt = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let _ = ddb
            .get_item()
            .table_name(&table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("nothing".into()),
            )
            .send()
            .await;
        rtt.push(t.elapsed());
    }
    counter.take();

    let mut kinds = Vec::new();
    let unsub = loops_batch(samples, "email.unsubscribed", 10)?;
    kinds.push(
        count_kind(
            counter.clone(),
            "loops email.unsubscribed",
            "SparkLoop unsubscribe; ESP status folded into the completion",
            &w,
            unsub.clone(),
        )
        .await,
    );
    kinds.push(
        count_kind(
            counter.clone(),
            "loops email.opened",
            "engagement: signal folded into the completion transaction",
            &w,
            loops_batch(samples, "email.opened", 10)?,
        )
        .await,
    );
    kinds.push(
        count_kind(
            counter.clone(),
            "loops email.clicked",
            "engagement: signal folded into the completion transaction",
            &w,
            loops_batch(samples, "email.clicked", 10)?,
        )
        .await,
    );
    kinds.push(
        count_kind(
            counter.clone(),
            "loops campaign.email.sent",
            "ignored: no SparkLoop effect",
            &w,
            loops_batch(samples, "campaign.email.sent", 10)?,
        )
        .await,
    );
    kinds.push(
        count_kind(
            counter.clone(),
            "duplicate delivery",
            "the email.unsubscribed batch again: refused by the conditional put",
            &w,
            unsub,
        )
        .await,
    );
    kinds.push(
        count_kind(
            counter.clone(),
            "loops email.unsubscribed, DETECT_EMAIL_CHANGES=true",
            "opt-in: one more call to remember the contact's address",
            &detect,
            loops_batch(samples, "email.unsubscribed", 10)?,
        )
        .await,
    );
    let mut pending = Vec::new();
    for i in 0..10 {
        let body = samples
            .body("sparkloop", "new_partner_pending_referral")?
            .replace("\"email\":\"", &format!("\"email\":\"p{i}-"))
            .replace("\"id\":\"sub_", &format!("\"id\":\"sub_{i}_"));
        pending.push(events::sparkloop_envelope(&body)?);
    }
    kinds.push(
        count_kind(
            counter.clone(),
            "sparkloop new_partner_pending_referral",
            "lifecycle: lease + forward-only transition in one transaction, ESP call (dry run), completion",
            &w,
            pending,
        )
        .await,
    );

    // What ingest sends to SQS per request (same SDK counter, the real handlers).
    let mut ingest = Vec::new();
    let max = sparkbridge::adapters::sqs::DEFAULT_MAX_MESSAGE_BYTES;
    let queue = Arc::new(SqsQueue::new(sqs.clone(), queue_url.clone(), max));
    for (provider, name) in [
        ("loops", "email.unsubscribed"),
        ("esputnik", "batch"),
        ("sparkloop", "sync_subscriber"),
    ] {
        let p: sparkbridge::core::envelope::Provider = provider.parse()?;
        let s = samples.apigw(provider, name)?;
        let body = s["body"].as_str().unwrap_or_default().to_string();
        let id = format!("msg_i_{}", uuid::Uuid::new_v4().simple());
        let req = lambda_http::request::from_str(&events::signed_apigw(s, p, &body, &id))
            .map_err(|e| e.to_string())?;
        let env = sparkbridge::config::Env::from_pairs(events::secret_env());
        let secrets = sparkbridge::secrets::Secrets::environment(
            sparkbridge::config::SecretsConfig::environment(&env).env,
        );
        counter.take();
        let status = match provider {
            "loops" => {
                sparkbridge::ingest::loops::LoopsIngest::from_secrets(queue.clone(), &secrets)
                    .map_err(|e| e.to_string())?
                    .handle(req)
                    .await
            }
            "esputnik" => {
                sparkbridge::ingest::esputnik::EsputnikIngest::from_secrets(
                    queue.clone(),
                    &secrets,
                    sparkbridge::config::EsputnikWebhookConfig::default(),
                )
                .map_err(|e| e.to_string())?
                .handle(req)
                .await
            }
            _ => {
                sparkbridge::ingest::sparkloop::SparkloopIngest::from_secrets(
                    queue.clone(),
                    &secrets,
                )
                .map_err(|e| e.to_string())?
                .handle(req)
                .await
            }
        }
        .status()
        .as_u16();
        let c = counter.take();
        let events_in = if provider == "esputnik" {
            serde_json::from_str::<Vec<Value>>(&body).map_or(1, |v| v.len())
        } else {
            1
        };
        ingest.push(json!({
            "request": format!("{provider} {name}"),
            "status": status,
            "events": events_in,
            "sqs_requests": c.requests,
            "sqs_entries": c.items,
        }));
    }

    fake.set_delay(delay);
    let timing = timings(&stores, url, samples, repeat.min(5)).await?;
    Ok(json!({
        "moto_get_item_rtt": util::summary_ms(&rtt),
        "per_event_kind": kinds,
        "ingest_sqs": ingest,
        "timings_on_moto": timing,
    }))
}

pub async fn run(args: WorkerArgs) -> Result<(), String> {
    let samples = Samples::new(&args.events_dir);
    let fake = Fake::new(Duration::from_millis(args.delay_ms));
    let url = fake.serve().await?;
    let memory = Stores {
        store: Arc::new(MemoryStore::new()),
        subscribers: Arc::new(MemoryStore::new()),
        queue: Arc::new(MemoryQueue::new(Duration::from_secs(30), 10, 262_144)),
    };
    let timing = timings(&memory, &url, &samples, args.repeat).await?;
    let delay = Duration::from_millis(args.delay_ms);
    let counts = match round_trips(&args.moto, &fake, &url, delay, &samples, args.repeat).await {
        Ok(v) => v,
        Err(e) => json!({"skipped": e}),
    };
    let result = json!({
        "fake_sparkloop_delay_ms": args.delay_ms,
        "memory_store": timing,
        "moto": counts,
        "machine": util::machine(),
    });
    util::emit(args.out.as_deref(), &result)
}
