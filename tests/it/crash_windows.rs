//! Crash windows: the worker is "killed" at each point of a record's life
//! (the invocation's future is aborted, as Lambda ends a timed-out or crashed invocation) and
//! we measure what happens next. The dangerous window is between the outbound call and
//! COMPLETED: the call is repeated once the lease expires (at-least-once), which is safe
//! because every call we make is idempotent at the other end. The second half checks that
//! for every SparkLoop and ESP operation: the repeat is answered with a success or an
//! "already" answer that `core::outbound::classify` counts as done.
//!
//! Figures are printed (`cargo test --test it -- crash_windows:: --nocapture`) and recorded in
//! docs/reliability.md.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use serde_json::json;
use sparkbridge::adapters::esp::{EsputnikClient, LoopsClient, PropertyNames};
use sparkbridge::adapters::memory_queue::MemoryQueue;
use sparkbridge::adapters::memory_store::MemoryStore;
use sparkbridge::adapters::sparkloop::{ClientSettings, SparkLoopClient};
use sparkbridge::core::dedupe::Status;
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::outbound::{classify, Goal, Missing};
use sparkbridge::core::secret::Secret;
use sparkbridge::ingest::to_message;
use sparkbridge::local::{poll_once, BatchSource, SqsSource};
use sparkbridge::ports::{EspApi, EventQueue};
use sparkbridge::worker::{Worker, WorkerConfig};
use sparkbridge_tests::chaos::{
    unsubscribe_envelope, ApiFaults, ChaosSource, ChaosStore, FakeApis, Faults, Hold, Repeats,
};
use sparkbridge_tests::worker_kit::{harness_with, Harness};

/// Lease of one record (the deadline is further away): how long a crashed holder blocks.
const LEASE_MS: i64 = 3_000;
/// Visibility timeout the source asks for: when a crashed invocation's message returns.
const VISIBILITY_SECS: i32 = 2;

fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        // Longer than the test waits for a held call: the kill, not a timeout, ends it.
        total_timeout: Duration::from_secs(20),
        rate_per_min: 60_000,
    }
}

fn config() -> WorkerConfig {
    let mut cfg = WorkerConfig::default();
    cfg.backoff.base_secs = 1;
    cfg.backoff.cap_secs = 2;
    cfg.retry.max_attempts = 20;
    cfg.lease_budget_ms = LEASE_MS;
    cfg
}

struct Moto {
    h: Harness,
    fake: FakeApis,
    store: Arc<ChaosStore>,
    worker: Arc<Worker>,
    source: Arc<ChaosSource>,
}

async fn moto() -> Moto {
    let fake = FakeApis::start(ApiFaults::NONE, Repeats::Realistic, true).await;
    let h = harness_with(
        &fake.url,
        Arc::new(sparkbridge::adapters::esp::DryRunEsp("none")),
        config(),
    )
    .await;
    let store = Arc::new(ChaosStore::new(h.store.clone(), Faults::NONE));
    let worker = Arc::new(Worker {
        store: store.clone(),
        subscribers: h.store.clone(),
        sparkloop: Arc::new(SparkLoopClient::new(
            &fake.url,
            Secret::new("k"),
            &settings(),
        )),
        esp: Arc::new(sparkbridge::adapters::esp::DryRunEsp("none")),
        queue: h.worker.queue.clone(),
        cfg: config(),
    });
    let source = Arc::new(ChaosSource::new(
        Arc::new(SqsSource {
            client: h.sqs.clone(),
            url: h.queue_url.clone(),
            visibility_secs: VISIBILITY_SECS,
        }),
        Faults::NONE,
    ));
    Moto {
        h,
        fake,
        store,
        worker,
        source,
    }
}

impl Moto {
    async fn depth(&self) -> usize {
        let out = self
            .h
            .sqs
            .get_queue_attributes()
            .queue_url(&self.h.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        out.attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<usize>().ok()).sum())
            .unwrap_or(0)
    }

    /// Invokes until the queue is empty; returns the invocations that received records.
    async fn drain(&self) -> usize {
        let end = Instant::now() + Duration::from_secs(60);
        let mut invocations = 0;
        while Instant::now() < end {
            if self.depth().await == 0 {
                return invocations;
            }
            let n = poll_once(self.source.as_ref(), &self.worker, Duration::from_secs(30))
                .await
                .expect("poll");
            if n > 0 {
                invocations += 1;
            }
        }
        panic!("queue did not drain");
    }

    /// Runs one invocation and aborts it the moment the fake reaches the held call.
    async fn invoke_and_kill(&self) -> Instant {
        let (source, worker) = (self.source.clone(), self.worker.clone());
        let reached = self.fake.state.clone();
        let task = tokio::spawn(async move {
            let _ = poll_once(source.as_ref(), &worker, Duration::from_secs(30)).await;
        });
        tokio::time::timeout(Duration::from_secs(20), reached.reached.notified())
            .await
            .expect("the held call arrives");
        task.abort();
        let _ = task.await;
        Instant::now()
    }

    async fn lease_status(&self, key: &str) -> Option<String> {
        let out = self
            .h
            .store
            .client()
            .get_item()
            .table_name(self.h.store.table())
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("idem#{key}")),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("get lease");
        out.item()
            .and_then(|i| i.get("status"))
            .and_then(|v| v.as_s().ok())
            .cloned()
    }
}

/// One window's measurements, printed as one line.
struct Measured {
    window: &'static str,
    calls: usize,
    effects: u32,
    answers: Vec<String>,
    after_ms: Option<u128>,
    in_progress: u64,
    status: Option<String>,
    dlq: usize,
}

impl Measured {
    fn print(&self) {
        println!(
            "window={} calls={} effects={} answers=[{}] next_call_after_kill_ms={} in_progress_retries={} record={} dlq={}",
            self.window,
            self.calls,
            self.effects,
            self.answers.join(","),
            self.after_ms.map(|m| m.to_string()).unwrap_or("-".into()),
            self.in_progress,
            self.status.as_deref().unwrap_or("none"),
            self.dlq
        );
    }
}

async fn measure(
    m: &Moto,
    window: &'static str,
    target: &str,
    key: &str,
    killed: Option<Instant>,
) -> Measured {
    let calls = m.fake.calls_to(target);
    let after_ms = killed.and_then(|k| {
        calls
            .iter()
            .find(|c| c.at > k)
            .map(|c| c.at.duration_since(k).as_millis())
    });
    let answers = calls
        .iter()
        .map(|c| {
            if c.status == 200 && c.body.is_empty() {
                "200".to_string()
            } else {
                format!(
                    "{}:{}",
                    c.status,
                    classify(
                        Goal::State,
                        Missing::NotASubscriber,
                        c.status,
                        &c.body,
                        None
                    )
                    .label()
                )
            }
        })
        .collect();
    let measured = Measured {
        window,
        calls: calls.len(),
        effects: m.fake.effects().get(target).copied().unwrap_or(0),
        answers,
        after_ms,
        in_progress: m.store.stats.acquire.get("in_progress"),
        status: m.lease_status(key).await,
        dlq: m.h.dlq().await.len(),
    };
    measured.print();
    println!("  store history: {}", m.store.stats.history(key));
    measured
}

fn event(i: usize, email: &str) -> (String, String) {
    let env = unsubscribe_envelope(Provider::Loops, i, email);
    (to_message(&env).body, env.idempotency_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_receive_before_acquire_is_redelivered_and_processed_once() {
    let m = moto().await;
    let (body, key) = event(1, "w1@example.com");
    m.h.send(&body).await;
    // The invocation received the batch and died before touching it.
    let got = m.source.receive().await.unwrap();
    assert_eq!(got.len(), 1);
    let killed = Instant::now();
    m.drain().await;
    let r = measure(
        &m,
        "W1 after receive, before acquire",
        "w1@example.com",
        &key,
        Some(killed),
    )
    .await;
    assert_eq!((r.calls, r.effects, r.dlq), (1, 1, 0));
    assert_eq!(r.status.as_deref(), Some("COMPLETED"));
    assert!(
        r.after_ms.unwrap() >= (VISIBILITY_SECS as u128 - 1) * 1000,
        "waits for the visibility timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_acquire_before_the_call_takes_effect_once_after_the_lease() {
    let m = moto().await;
    let (body, key) = event(2, "w2@example.com");
    m.h.send(&body).await;
    // The call is held before it has any effect: the worker died on the way out.
    m.fake.hold(Hold {
        target: "w2@example.com".into(),
        after_effect: false,
    });
    let killed = m.invoke_and_kill().await;
    assert_eq!(m.lease_status(&key).await.as_deref(), Some("IN_PROGRESS"));
    m.drain().await;
    let r = measure(
        &m,
        "W2 after acquire, before the call",
        "w2@example.com",
        &key,
        Some(killed),
    )
    .await;
    assert_eq!(r.effects, 1, "exactly one effect");
    assert_eq!(
        r.calls, 1,
        "the held request never answered; one real call after the lease"
    );
    assert_eq!((r.status.as_deref(), r.dlq), (Some("COMPLETED"), 0));
    assert!(
        r.after_ms.unwrap() >= (LEASE_MS as u128).saturating_sub(500),
        "the next call waits for the lease: {:?}",
        r.after_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_call_before_complete_repeats_the_call_after_the_lease() {
    let m = moto().await;
    let (body, key) = event(3, "w3@example.com");
    m.h.send(&body).await;
    // SparkLoop applied the unsubscribe; the answer never reached the dead worker.
    m.fake.hold(Hold {
        target: "w3@example.com".into(),
        after_effect: true,
    });
    let killed = m.invoke_and_kill().await;
    assert_eq!(m.lease_status(&key).await.as_deref(), Some("IN_PROGRESS"));
    m.drain().await;
    let r = measure(
        &m,
        "W3 after the call, before complete",
        "w3@example.com",
        &key,
        Some(killed),
    )
    .await;
    assert_eq!(r.calls, 2, "at-least-once: the call is repeated");
    assert_eq!(r.effects, 1, "the repeat has no second effect");
    assert_eq!(
        r.answers.last().map(String::as_str),
        Some("409:already_done"),
        "the repeat is answered 'already unsubscribed', which counts as done"
    );
    assert_eq!((r.status.as_deref(), r.dlq), (Some("COMPLETED"), 0));
    assert!(r.after_ms.unwrap() >= (LEASE_MS as u128).saturating_sub(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_complete_before_delete_is_a_duplicate_without_a_call() {
    let m = moto().await;
    let (body, key) = event(4, "w4@example.com");
    m.h.send(&body).await;
    // The handler finished; the invocation died before the event source deleted the message.
    m.source.skip_deletes.store(true, Ordering::SeqCst);
    poll_once(m.source.as_ref(), &m.worker, Duration::from_secs(30))
        .await
        .unwrap();
    m.source.skip_deletes.store(false, Ordering::SeqCst);
    let killed = Instant::now();
    m.drain().await;
    let r = measure(
        &m,
        "W4 after complete, before delete",
        "w4@example.com",
        &key,
        Some(killed),
    )
    .await;
    assert_eq!((r.calls, r.effects, r.dlq), (1, 1, 0));
    assert_eq!(
        m.store.stats.acquire.get("duplicate"),
        1,
        "the redelivery is a duplicate"
    );
}

/// The known risk: `complete` fails after the call succeeded. The worker retries it a few
/// times, then keeps the message (reports it failed, visible again when the lease ends); that
/// next attempt takes the expired lease over, repeats the call (safe) and completes. No
/// provider copy is needed, and the state writes of the completion are not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_failing_after_the_call_keeps_the_message_and_the_retry_completes() {
    let m = moto().await;
    let (body, key) = event(5, "w5@example.com");
    // one attempt's worth of failures: the worker tries complete() 5 times before giving up
    m.store
        .fail_complete_for
        .lock()
        .unwrap()
        .insert(key.clone(), 5);
    m.h.send(&body).await;
    let started = Instant::now();
    let invocations = m.drain().await;
    let r = measure(
        &m,
        "W5 complete failed after the call",
        "w5@example.com",
        &key,
        Some(started),
    )
    .await;
    println!(
        "  complete errors={} invocations={invocations} done_after_ms={}",
        m.store.stats.complete.get("err"),
        started.elapsed().as_millis()
    );
    assert_eq!(
        m.store.stats.complete.get("err"),
        5,
        "complete() was tried 5 times before the attempt gave up"
    );
    assert_eq!(
        r.calls, 2,
        "the retry repeated the call once the lease ended"
    );
    assert_eq!(r.effects, 1);
    assert_eq!((r.status.as_deref(), r.dlq), (Some("COMPLETED"), 0));
}

// ---------------------------------------------------------------------------------------------
// Repeats are safe: every operation, made twice because the first completion was lost.
// ---------------------------------------------------------------------------------------------

fn sparkloop_event(kind: &str, email: &str, sub_id: &str, status: &str) -> Envelope {
    let body = json!({
        "type": kind,
        "campaign": {"id": "partner_campaign_1", "upscribe": true, "partner_program_id": "pp_1"},
        "subscriber": {"id": sub_id, "email": email, "first_name": "Ann", "referral_status": status,
                        "partner_id": "partner_a", "referral_code": "c0de", "created_at": 1_764_000_000},
        "partner": {"id": "partner_a", "name": "Partner A"}
    })
    .to_string();
    let (id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes()).unwrap();
    Envelope::new(Provider::Sparkloop, id, Utc::now(), n)
}

fn loops_event(kind: &str, email: &str, contact: &str, n: usize) -> Envelope {
    let body = json!({"eventName": kind, "eventTime": 1_764_000_000 + n as i64, "webhookSchemaVersion": "1.0.0",
        "sourceType": "campaign", "campaignId": "c1",
        "email": {"id": format!("send_{n}"), "emailMessageId": "m", "subject": "s"},
        "contactIdentity": {"id": contact, "email": email, "userId": null}})
    .to_string();
    let parsed = sparkbridge::core::loops::parse(body.as_bytes()).unwrap();
    Envelope::new(
        Provider::Loops,
        format!("msg_{kind}_{n}"),
        Utc::now(),
        parsed,
    )
}

#[derive(Clone, Copy)]
enum Esp {
    Loops,
    Esputnik,
}

struct Mem {
    q: Arc<MemoryQueue>,
    mem: Arc<MemoryStore>,
    store: Arc<ChaosStore>,
    fake: FakeApis,
    worker: Arc<Worker>,
}

async fn mem(esp: Esp, cfg: impl FnOnce(&mut WorkerConfig)) -> Mem {
    let fake = FakeApis::start(ApiFaults::NONE, Repeats::Realistic, true).await;
    let q = Arc::new(MemoryQueue::new(Duration::from_secs(1), 50, 262_144));
    let mem = Arc::new(MemoryStore::new());
    let store = Arc::new(ChaosStore::new(mem.clone(), Faults::NONE));
    let esp: Arc<dyn EspApi> = match esp {
        Esp::Loops => Arc::new(LoopsClient::new(
            &fake.url,
            Secret::new("k"),
            PropertyNames::default(),
            &settings(),
            1_000,
        )),
        Esp::Esputnik => Arc::new(EsputnikClient::new(
            &fake.url,
            Secret::new("k"),
            BTreeMap::from([("status".to_string(), 101)]),
            &settings(),
            1_000,
        )),
    };
    let mut c = config();
    c.lease_budget_ms = 300;
    cfg(&mut c);
    let worker = Arc::new(Worker {
        store: store.clone(),
        subscribers: mem.clone(),
        sparkloop: Arc::new(SparkLoopClient::new(
            &fake.url,
            Secret::new("k"),
            &settings(),
        )),
        esp,
        queue: q.clone(),
        cfg: c,
    });
    Mem {
        q,
        mem,
        store,
        fake,
        worker,
    }
}

impl Mem {
    async fn deliver(&self, env: &Envelope) {
        self.q.enqueue(vec![to_message(env)]).await.unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while self.q.depth() > 0 {
            assert!(Instant::now() < end, "queue did not drain");
            poll_once(
                self.q.as_ref() as &dyn BatchSource,
                &self.worker,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        }
    }

    /// Delivers `env` with its first attempt's completion lost: the retry after the lease
    /// repeats the calls and completes.
    async fn twice_with_completion_lost(&self, env: &Envelope) {
        let key = env.idempotency_key();
        self.store
            .fail_complete_for
            .lock()
            .unwrap()
            .insert(key.clone(), 5);
        self.deliver(env).await;
        assert_eq!(
            self.mem.lease(&key).map(|r| r.status),
            Some(Status::Completed),
            "the repeat was classified as done: {}",
            self.store.stats.history(&key)
        );
        assert!(
            self.q.dlq().is_empty(),
            "nothing parked: {:?}",
            self.q.dlq()
        );
    }

    /// (api.op, [status:outcome of each call]) for `target`.
    fn table(&self, target: &str) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for c in self.fake.calls_to(target) {
            let name = format!("{}.{}", c.api, c.op);
            // The eSputnik client turns "Duplicated request" into AlreadyDone itself.
            let label = if c.api == "esputnik" && c.body.contains("Duplicated request") {
                "already_done"
            } else {
                let missing = if c.api == "sparkloop" {
                    Missing::NotASubscriber
                } else {
                    Missing::Failure
                };
                classify(Goal::State, missing, c.status, &c.body, None).label()
            };
            let answer = format!("{}:{label}", c.status);
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(answer),
                None => out.push((name, vec![answer])),
            }
        }
        out
    }
}

fn print_table(case: &str, rows: &[(String, Vec<String>)]) {
    for (op, answers) in rows {
        println!(
            "repeat case={case} call={op} answers=[{}]",
            answers.join(",")
        );
    }
}

/// Each row: both calls made, the second answered success or "already", the event completed.
fn assert_repeated_safely(rows: &[(String, Vec<String>)], ops: &[&str]) {
    for op in ops {
        let (_, answers) = rows
            .iter()
            .find(|(n, _)| n == op)
            .unwrap_or_else(|| panic!("{op} was not called: {rows:?}"));
        assert_eq!(answers.len(), 2, "{op} made twice: {answers:?}");
        assert!(
            answers.iter().all(|a| a.ends_with(":done")
                || a.ends_with(":already_done")
                || a.ends_with(":not_found")),
            "{op}: {answers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sparkloop_and_loops_operation_is_safe_to_repeat() {
    // SparkLoop unsubscribe (Loops email.unsubscribed)
    let m = mem(Esp::Loops, |_| {}).await;
    m.twice_with_completion_lost(&loops_event("email.unsubscribed", "u@example.com", "c1", 1))
        .await;
    let rows = m.table("u@example.com");
    print_table("sparkloop unsubscribe", &rows);
    assert_repeated_safely(&rows, &["sparkloop.unsubscribe"]);

    // SparkLoop confirm (Loops contact.created, CONFIRM_SIGNUPS)
    let m = mem(Esp::Loops, |c| c.rules.confirm_signups = true).await;
    m.twice_with_completion_lost(&loops_event("contact.created", "c@example.com", "c2", 2))
        .await;
    let rows = m.table("c@example.com");
    print_table("sparkloop confirm", &rows);
    assert_repeated_safely(&rows, &["sparkloop.confirm"]);

    // SparkLoop reject (the screener's internal event)
    let m = mem(Esp::Loops, |_| {}).await;
    let reject: Envelope = serde_json::from_str(&sparkbridge_tests::worker_kit::envelope(
        "sparkbridge",
        sparkbridge::core::InternalKind::ScreeningReject.as_str(),
        "reject_sub_9",
        "r@example.com",
        r#"{"reason":"no opens"}"#,
    ))
    .unwrap();
    m.twice_with_completion_lost(&reject).await;
    let rows = m.table("r@example.com");
    print_table("sparkloop reject", &rows);
    assert_repeated_safely(&rows, &["sparkloop.reject"]);

    // Loops upsert (new_partner_pending_referral) and Loops unsubscribe (sync_subscriber
    // rejected): state transitions are Same on the repeat, the ESP call is made again.
    let m = mem(Esp::Loops, |_| {}).await;
    m.twice_with_completion_lost(&sparkloop_event(
        "new_partner_pending_referral",
        "p@example.com",
        "sub_p",
        "pending",
    ))
    .await;
    m.twice_with_completion_lost(&sparkloop_event(
        "sync_subscriber",
        "p@example.com",
        "sub_p",
        "rejected",
    ))
    .await;
    let rows = m.table("p@example.com");
    print_table("loops upsert + unsubscribe", &rows);
    assert_repeated_safely(&rows, &["loops.upsert", "loops.unsubscribe"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_esputnik_operation_is_safe_to_repeat() {
    let m = mem(Esp::Esputnik, |_| {}).await;
    m.twice_with_completion_lost(&sparkloop_event(
        "new_partner_pending_referral",
        "e@example.com",
        "sub_e",
        "pending",
    ))
    .await;
    let upserts = m.table("e@example.com");
    print_table("esputnik contact upsert", &upserts);
    assert_repeated_safely(&upserts, &["esputnik.contact"]);

    let m = mem(Esp::Esputnik, |_| {}).await;
    m.twice_with_completion_lost(&sparkloop_event(
        "sync_subscriber",
        "x@example.com",
        "sub_x",
        "rejected",
    ))
    .await;
    let rows = m.table("x@example.com");
    print_table("esputnik unsubscribed add (+ contact fields)", &rows);
    assert_repeated_safely(&rows, &["esputnik.unsubscribed_add", "esputnik.contact"]);
}

/// Email changes are detected by remembering each contact's address, recorded with the
/// completion. When the first change_email call fails, the retry still sees the old address
/// and makes the call again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_email_change_is_retried() {
    let m = mem(Esp::Loops, |c| c.detect_email_changes = true).await;
    m.deliver(&loops_event("email.opened", "old@example.com", "cid_9", 1))
        .await;
    m.fake.fail_next("change_email", 1);
    m.deliver(&loops_event("email.opened", "new@example.com", "cid_9", 2))
        .await;
    let calls: Vec<u16> = m
        .fake
        .calls_to("old@example.com")
        .iter()
        .filter(|c| c.op == "change_email")
        .map(|c| c.status)
        .collect();
    assert_eq!(
        calls,
        vec![500, 200],
        "the change is retried until SparkLoop has it"
    );
    // and once SparkLoop has it, the next event is no change
    m.deliver(&loops_event("email.clicked", "new@example.com", "cid_9", 3))
        .await;
    let changes = m
        .fake
        .calls_to("old@example.com")
        .iter()
        .chain(m.fake.calls_to("new@example.com").iter())
        .filter(|c| c.op == "change_email")
        .count();
    assert_eq!(changes, 2, "no further change_email after it succeeded");
}

#[test]
fn plausible_repeat_answers_and_how_they_are_classified() {
    // What a repeat may get from each API. Only the last rows would park a repeat: SparkLoop
    // documents none of these answers (docs/providers/sparkloop.md, section 3), so they are guesses to watch.
    let rows = [
        (
            "sparkloop unsubscribe, idempotent",
            200,
            r#"{"subscriber":{}}"#,
        ),
        (
            "sparkloop unsubscribe, 409",
            409,
            r#"{"error":"Subscriber already unsubscribed"}"#,
        ),
        (
            "sparkloop unsubscribe, 422 already",
            422,
            r#"{"error":"Subscriber is already unsubscribed"}"#,
        ),
        (
            "sparkloop reject, not pending",
            400,
            r#"{"error":"Subscriber is not pending"}"#,
        ),
        ("sparkloop reject, 409", 409, ""),
        (
            "sparkloop confirm again",
            200,
            r#"{"subscriber":{"status":"confirmed"}}"#,
        ),
        (
            "sparkloop change email, old id gone",
            404,
            r#"{"error":"Subscriber not found!"}"#,
        ),
        (
            "loops contacts/update upsert",
            200,
            r#"{"success":true,"id":"x"}"#,
        ),
        (
            "esputnik duplicated request",
            409,
            r#"{"error":"Repeated request within 1 minute"}"#,
        ),
        (
            "UNVERIFIED sparkloop reject, 422 rejected",
            422,
            r#"{"error":"Subscriber was rejected"}"#,
        ),
        (
            "UNVERIFIED sparkloop unsubscribe, 400 unsubscribed",
            400,
            r#"{"error":"Subscriber is unsubscribed"}"#,
        ),
    ];
    for (case, status, body) in rows {
        let outcome = classify(Goal::State, Missing::NotASubscriber, status, body, None);
        println!("{case}: {status} {body} -> {}", outcome.label());
        if !case.starts_with("UNVERIFIED") {
            assert!(outcome.is_success(), "{case}");
        }
    }
    // Not a repeat: the address belongs to another subscriber (SparkLoop's own record holding
    // it already would answer 200). Parked for a person, never acknowledged.
    let taken = classify(
        Goal::Value,
        Missing::NotASubscriber,
        400,
        r#"{"error":"Email has already been taken"}"#,
        None,
    );
    println!(
        "sparkloop change email, taken by another: 400 -> {}",
        taken.label()
    );
    assert_eq!(taken.label(), "permanent");
}
