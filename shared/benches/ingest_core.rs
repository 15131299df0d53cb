//! Figure 1 of BENCHMARKS.md: verify + parse + build the envelope, per provider, on one core.
//!
//! The Loops request (secret, webhook-id, timestamp, body, signature) is read from the file
//! named by `BENCH_LOOPS_REQUEST`, the same file the Python baselines verify
//! (`bench/python/ingest_baselines.py`, which also reads the SparkLoop and eSputnik samples
//! these benches use); without it, the sample
//! `events/loops/email.unsubscribed.json` is signed here. Run: `make bench FIGURES=1` or
//! `cargo bench -p sparkbridge --bench ingest_core`. The `ingest_log` group (figure 2's log line)
//! runs after it: `cargo bench -p sparkbridge --bench ingest_core -- ingest_log`.

// Each bench function lists its cases one after another, as criterion groups read best.
#![allow(clippy::too_many_lines)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::esputnik::{self, WebhookAuth};
use sparkbridge::core::loops::{self, SigningKeys};
use sparkbridge::core::secret::Secret;
use sparkbridge::core::sparkloop;
use sparkbridge::core::sqs_text;

#[path = "ingest_core/sparkloop_floor.rs"]
mod sparkloop_floor;

struct LoopsRequest {
    secret: String,
    id: String,
    timestamp: String,
    body: String,
    signature: String,
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("shared/ sits in the workspace")
        .join("events")
}

fn sample_body(provider: &str, name: &str) -> String {
    let path = events_dir().join(provider).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("sample is JSON");
    v["body"].as_str().expect("sample has a body").to_string()
}

fn loops_request() -> LoopsRequest {
    if let Ok(path) = std::env::var("BENCH_LOOPS_REQUEST") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).expect("request file is JSON");
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{path}: no {k}"))
                .to_string()
        };
        return LoopsRequest {
            secret: field("secret"),
            id: field("id"),
            timestamp: field("timestamp"),
            body: field("body"),
            signature: field("signature"),
        };
    }
    let secret = "whsec_ZGV2LW9ubHktc2lnbmluZy1zZWNyZXQtc3Bhcmticmlk".to_string();
    let body = sample_body("loops", "email.unsubscribed");
    let ts = 1_734_425_918;
    let signature =
        SigningKeys::parse(&secret)
            .expect("valid secret")
            .sign("msg_bench", ts, body.as_bytes());
    LoopsRequest {
        secret,
        id: "msg_bench".into(),
        timestamp: ts.to_string(),
        body,
        signature,
    }
}

fn bench(c: &mut Criterion) {
    let req = loops_request();
    let keys = SigningKeys::parse(&req.secret).expect("valid secret");
    let now: i64 = req.timestamp.parse().expect("numeric timestamp");
    let body = req.body.as_bytes();
    let loops_full = || {
        keys.verify(
            Some(&req.id),
            Some(&req.timestamp),
            Some(&req.signature),
            body,
            now,
        )
        .expect("the request verifies");
        let event = loops::parse(body).expect("the body parses");
        let env = Envelope::new(Provider::Loops, req.id.clone(), Utc::now(), event);
        env.to_json()
    };
    assert!(!loops_full().is_empty());

    let mut g = c.benchmark_group("ingest_core");
    g.bench_function("loops_full", |b| b.iter(|| black_box(loops_full())));
    let verify = || {
        keys.verify(
            Some(black_box(&req.id)),
            Some(&req.timestamp),
            Some(&req.signature),
            black_box(body),
            now,
        )
    };
    g.bench_function("loops_verify", |b| b.iter(verify));
    // What the Python baseline's `Webhook.verify` does: check the signature, then parse.
    g.bench_function("loops_verify_parse", |b| {
        b.iter(|| {
            verify().expect("the request verifies");
            loops::parse(black_box(body)).expect("parses")
        })
    });
    g.bench_function("loops_parse", |b| {
        b.iter(|| loops::parse(black_box(body)).expect("parses"))
    });
    let env = Envelope::new(
        Provider::Loops,
        req.id.clone(),
        Utc::now(),
        loops::parse(body).expect("parses"),
    );
    g.bench_function("loops_envelope_json", |b| {
        b.iter(|| black_box(&env).to_json())
    });
    // The check that the queued body holds only characters SQS accepts (made twice per
    // request: by ingest and by the queue adapter), and the character-by-character reading
    // it replaced.
    let queued = serde_json::to_string(&env).expect("serializes");
    g.bench_function("queue_check", |b| {
        b.iter(|| sqs_text::is_clean(black_box(&queued)))
    });
    g.bench_function("queue_check_by_character", |b| {
        b.iter(|| black_box(&queued).chars().all(sqs_text::is_allowed))
    });

    // eSputnik: Basic auth, then the documented array shape (the first two elements of
    // events/esputnik/batch.json: DELIVERED and UNDELIVERED).
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&sample_body("esputnik", "batch")).expect("an array");
    let two = serde_json::to_string(&all[..2]).expect("serializes");
    let auth = WebhookAuth::new(
        Some(Secret::new("dev")),
        Some(Secret::new("dev-password")),
        None,
        false,
    )
    .expect("valid auth");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("dev:dev-password")
    );
    let tz = chrono_tz::UTC;
    g.bench_function("esputnik_check", |b| {
        b.iter(|| {
            auth.check(Some(black_box(&basic)), None)
                .expect("authorized")
        })
    });
    g.bench_function("esputnik_split", |b| {
        b.iter(|| esputnik::split(black_box(two.as_bytes()), tz))
    });
    g.bench_function("esputnik_full", |b| {
        b.iter(|| {
            auth.check(Some(black_box(&basic)), None)
                .expect("authorized");
            esputnik::split(black_box(two.as_bytes()), tz)
        })
    });
    g.bench_function("esputnik_full_envelopes_json", |b| {
        b.iter(|| {
            auth.check(Some(black_box(&basic)), None)
                .expect("authorized");
            let received = Utc::now();
            esputnik::split(black_box(two.as_bytes()), tz)
                .into_iter()
                .map(|el| {
                    let env = Envelope::new(Provider::Esputnik, el.dedupe_id, received, el.event);
                    env.to_json()
                })
                .collect::<Vec<_>>()
        })
    });

    // SparkLoop: the token, then the event.
    let token = Secret::new("dev-sparkloop-token");
    let sl_body = sample_body("sparkloop", "sync_subscriber");
    g.bench_function("sparkloop_token", |b| {
        b.iter(|| token.matches(black_box(b"dev-sparkloop-token")))
    });
    g.bench_function("sparkloop_parse", |b| {
        b.iter(|| sparkloop::parse(black_box(sl_body.as_bytes())).expect("parses"))
    });
    // The floor under `sparkloop_parse`: serde_json checking the body without keeping
    // anything (what keeping it as the payload requires), and the two SHA-256 the dedupe id
    // is defined by (the subscriber as serde_json writes it, then the key's fields).
    g.bench_function("sparkloop_floor_check", |b| {
        b.iter(|| serde_json::from_str::<serde::de::IgnoredAny>(black_box(&sl_body)).expect("JSON"))
    });
    let subscriber_json = serde_json::from_str::<serde_json::Value>(&sl_body).expect("JSON")
        ["subscriber"]
        .to_string();
    g.bench_function("sparkloop_floor_hashes", |b| {
        b.iter(|| {
            let sub =
                sparkbridge::core::envelope::sha256_hex(black_box(subscriber_json.as_bytes()));
            sparkbridge::core::envelope::derive_dedupe_id(&[
                "sync_subscriber",
                "sub_042448acb02a",
                "partner_campaign_de9c1c7c7bbc",
                "rejected",
                "",
                "",
                "",
                "",
                &sub,
            ])
        })
    });
    // The whole floor: what any reader on serde_json and sha2 does for this body (the token,
    // one pass finding the fields, the subscriber's text, both hashes, the kept text), and
    // nothing that makes it exact (sparkloop_floor.rs). Same dedupe id as the parser's.
    let (parsed_id, _) = sparkloop::parse(sl_body.as_bytes()).expect("parses");
    assert_eq!(
        sparkloop_floor::parse(sl_body.as_bytes()).map(|kept| kept.0),
        Some(parsed_id),
        "the floor hashes what the parser hashes"
    );
    g.bench_function("sparkloop_floor_all", |b| {
        b.iter(|| {
            assert!(token.matches(black_box(b"dev-sparkloop-token")));
            sparkloop_floor::parse(black_box(sl_body.as_bytes())).expect("the sample's shape")
        })
    });
    g.bench_function("sparkloop_full", |b| {
        b.iter(|| {
            assert!(token.matches(black_box(b"dev-sparkloop-token")));
            sparkloop::parse(black_box(sl_body.as_bytes())).expect("parses")
        })
    });
    g.bench_function("sparkloop_full_envelope_json", |b| {
        b.iter(|| {
            assert!(token.matches(black_box(b"dev-sparkloop-token")));
            let (id, event) = sparkloop::parse(black_box(sl_body.as_bytes())).expect("parses");
            Envelope::new(Provider::Sparkloop, id, Utc::now(), event).to_json()
        })
    });
    g.finish();
    log_line(c, &req, &keys);
}

/// Figure 2's question on one core: what the log line costs on the ingest request path. The
/// whole `LoopsIngest::handle` (verify, parse, envelope, a queue that drops what it is given,
/// the log line), with logs off, with the subscriber `telemetry` builds (JSON as on Lambda,
/// inside a span like the runtime's; text as `sparkbridge dev` writes to a file), and with
/// `tracing-subscriber`'s own JSON format as `lambda_runtime` configured it (what the
/// functions used before), all writing to a sink.
fn log_line(c: &mut Criterion, req: &LoopsRequest, keys: &SigningKeys) {
    use std::sync::Arc;

    use sparkbridge::ingest::loops::LoopsIngest;
    use sparkbridge::ports::{EventQueue, OutboundMessage, QueueError};
    use sparkbridge::telemetry::{self, LevelFilter, LogFormat};
    use tracing::Dispatch;

    struct Discard;
    #[async_trait::async_trait]
    impl EventQueue for Discard {
        async fn enqueue(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
            black_box(messages);
            Ok(())
        }
        fn max_message_bytes(&self) -> usize {
            262_144
        }
    }

    let ingest = LoopsIngest::new(Arc::new(Discard), keys.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let ts = Utc::now().timestamp();
    let signature = keys.sign(&req.id, ts, req.body.as_bytes());
    let request = || {
        http::Request::builder()
            .method("POST")
            .uri("/webhooks/loops")
            .header("webhook-id", req.id.as_str())
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature.as_str())
            .body(lambda_http::Body::Text(req.body.clone()))
            .expect("a request")
    };
    let builtin_json: Dispatch = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .json()
        .finish()
        .into();
    let info = LevelFilter::INFO;
    let cases: [(&str, Option<Dispatch>, bool); 5] = [
        ("loops_request_logs_off", None, false),
        (
            "loops_request_json",
            Some(telemetry::dispatch(
                LogFormat::Json,
                info,
                false,
                std::io::sink,
            )),
            true,
        ),
        ("loops_request_json_builtin", Some(builtin_json), true),
        (
            "loops_request_text",
            Some(telemetry::dispatch(
                LogFormat::Text,
                info,
                false,
                std::io::sink,
            )),
            false,
        ),
        (
            "loops_request_text_ansi",
            Some(telemetry::dispatch(
                LogFormat::Text,
                info,
                true,
                std::io::sink,
            )),
            false,
        ),
    ];
    let mut g = c.benchmark_group("ingest_log");
    for (name, dispatch, in_span) in cases {
        let dispatch =
            dispatch.unwrap_or_else(|| Dispatch::new(tracing::subscriber::NoSubscriber::new()));
        tracing::dispatcher::with_default(&dispatch, || {
            // A span per request, as the runtime opens one per invocation: its first line
            // carries the span's fields whole, later lines only the request id.
            let invocation = || {
                tracing::info_span!(
                    "Lambda runtime invoke",
                    requestId = "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
                    xrayTraceId =
                        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
                )
            };
            g.bench_function(name, |b| {
                b.iter_batched(
                    request,
                    |r| {
                        let span = in_span.then(invocation);
                        let _entered = span.as_ref().map(tracing::Span::enter);
                        rt.block_on(ingest.handle(r))
                    },
                    criterion::BatchSize::SmallInput,
                )
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench
}
criterion_main!(benches);
