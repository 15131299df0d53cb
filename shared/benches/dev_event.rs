//! Figure 2's per-event work without HTTP: what `sparkbridge dev` does for each signed Loops
//! delivery, on one core, batches of ten. `LoopsIngest::handle` (verify, parse, envelope,
//! the in-memory queue, the ingest line) for ten fresh deliveries, then one `poll_once` of the
//! worker over them (dedupe lease, the dry-run SparkLoop unsubscribe, completion, the record
//! lines) on the in-memory queue and store, as dev runs them. With logs off, and with dev's
//! text lines written to a sink. Divide by ten for an event. The store keeps what it is given,
//! as dev's does.
//!
//!   cargo bench -p sparkbridge --features dev --bench dev_event

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sparkbridge::adapters::esp::DryRunEsp;
use sparkbridge::adapters::memory_queue::MemoryQueue;
use sparkbridge::adapters::memory_store::MemoryStore;
use sparkbridge::adapters::sparkloop::DryRunSparkLoop;
use sparkbridge::adapters::sqs::DEFAULT_MAX_MESSAGE_BYTES;
use sparkbridge::core::loops::SigningKeys;
use sparkbridge::ingest::loops::LoopsIngest;
use sparkbridge::local::{poll_once, MAX_BATCH};
use sparkbridge::telemetry::{self, LevelFilter, LogFormat};
use sparkbridge::worker::{Worker, WorkerConfig};
use tracing::Dispatch;

// dev's allocator (cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "whsec_ZGV2LW9ubHktc2lnbmluZy1zZWNyZXQtc3Bhcmticmlk";

fn unsubscribe_body() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/loops/email.unsubscribed.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("sample is JSON");
    v["body"].as_str().expect("sample has a body").to_string()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let keys = SigningKeys::parse(SECRET).expect("valid secret");
    let body = unsubscribe_body();
    let cfg = WorkerConfig::default();
    let queue = Arc::new(MemoryQueue::new(
        Duration::from_secs(30),
        cfg.retry.redrive_count(&cfg.backoff),
        DEFAULT_MAX_MESSAGE_BYTES,
    ));
    let store = Arc::new(MemoryStore::new());
    let ingest = LoopsIngest::new(queue.clone(), keys.clone());
    let worker = Worker {
        store: store.clone(),
        subscribers: store,
        sparkloop: Arc::new(DryRunSparkLoop),
        esp: Arc::new(DryRunEsp("none")),
        queue: queue.clone(),
        cfg,
    };
    let mut next = 0u64;
    let mut deliveries = || {
        let ts = Utc::now().timestamp();
        (0..MAX_BATCH)
            .map(|_| {
                next += 1;
                let id = format!("msg_dev_event_{next}");
                http::Request::builder()
                    .method("POST")
                    .uri("/webhooks/loops")
                    .header("webhook-signature", keys.sign(&id, ts, body.as_bytes()))
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .body(lambda_http::Body::Text(body.clone()))
                    .expect("a request")
            })
            .collect::<Vec<_>>()
    };
    let cases: [(&str, Option<Dispatch>); 2] = [
        ("batch_of_10_logs_off", None),
        (
            "batch_of_10_text_logs",
            Some(telemetry::dispatch(
                LogFormat::Text,
                LevelFilter::INFO,
                false,
                std::io::sink,
            )),
        ),
    ];
    let mut g = c.benchmark_group("dev_event");
    for (name, dispatch) in cases {
        let dispatch =
            dispatch.unwrap_or_else(|| Dispatch::new(tracing::subscriber::NoSubscriber::new()));
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function(name, |b| {
                b.iter_batched(
                    &mut deliveries,
                    |batch| {
                        rt.block_on(async {
                            for req in batch {
                                let resp = ingest.handle(req).await;
                                assert_eq!(resp.status(), 200, "queued");
                            }
                            let done = poll_once(queue.as_ref(), &worker, Duration::from_secs(30))
                                .await
                                .expect("the batch is processed");
                            assert_eq!(done, MAX_BATCH);
                        })
                    },
                    BatchSize::SmallInput,
                )
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
