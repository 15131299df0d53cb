//! The worker on moto (SQS + DynamoDB through the real SDK) against a fake SparkLoop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sparkbridge::core::dedupe::{Acquire, LeaseRequest};
use sparkbridge::ports::IdempotencyStore;
use sparkbridge_tests::worker_kit::{envelope, fast_config, harness, harness_timed};
use wiremock::matchers::{header, method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A lease held by `owner` for the next minute, on a payload hashed `payload_hash`.
fn live_lease(owner: &str, payload_hash: &str) -> LeaseRequest {
    let now = chrono::Utc::now().timestamp_millis();
    LeaseRequest {
        owner: owner.into(),
        payload_hash: payload_hash.into(),
        now_ms: now,
        lease_until_ms: now + 60_000,
        expires_at: now / 1000 + 3_600,
    }
}

fn unsub(dedupe_id: &str, email: &str) -> String {
    envelope(
        "loops",
        "email.unsubscribed",
        dedupe_id,
        email,
        r#"{"eventName":"email.unsubscribed"}"#,
    )
}

async fn sparkloop(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex(r"^/v2/subscribers/.+/unsubscribe$"))
        .and(header("x-api-key", "test-api-key"))
        .respond_with(
            ResponseTemplate::new(status).set_body_string(r#"{"error":"Subscriber uuid blank!"}"#),
        )
        .mount(&server)
        .await;
    server
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn the_same_id_three_times_makes_one_call() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    for _ in 0..3 {
        h.send(&unsub("msg_same", "a+b@example.com")).await;
        h.run_until_empty().await;
    }
    let reqs = fake.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].url.path(),
        "/v2/subscribers/a%2Bb%40example.com/unsubscribe"
    );
    assert!(h.dlq().await.is_empty());
}

#[tokio::test]
async fn duplicates_in_one_batch_make_one_call() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    for _ in 0..3 {
        h.send(&unsub("msg_dup", "a@example.com")).await;
    }
    let ev = h.batch().await;
    assert_eq!(ev.records.len(), 3);
    let failed = h.invoke(&h.worker, &ev).await;
    assert!(failed.is_empty(), "duplicates are acknowledged: {failed:?}");
    assert_eq!(calls(&fake).await, 1);
}

#[tokio::test]
async fn duplicates_in_two_concurrent_invocations_make_one_call() {
    let fake = MockServer::start().await;
    // The call is slow enough that the second invocation finds the lease held, not done,
    // even when moto's round trips are slow on a loaded machine (the client waits up to 10 s).
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(2000)))
        .mount(&fake)
        .await;
    let h = harness_timed(
        &fake.uri(),
        Arc::new(sparkbridge::adapters::esp::DryRunEsp("none")),
        fast_config(),
        Duration::from_secs(10),
    )
    .await;
    h.send(&unsub("msg_conc", "a@example.com")).await;
    let first = h.batch().await;
    h.send(&unsub("msg_conc", "a@example.com")).await;
    let second = h.batch().await;
    assert_eq!((first.records.len(), second.records.len()), (1, 1));
    let (a, b) = tokio::join!(h.invoke(&h.worker, &first), h.invoke(&h.worker, &second));
    assert_eq!(
        a.len() + b.len(),
        1,
        "the one that found the lease held retries later"
    );
    h.run_until_empty().await; // the retried copy is now a duplicate
    assert_eq!(calls(&fake).await, 1);
}

/// Answers 500, then 429, then hangs past the client timeout, then 200.
struct Flaky(AtomicUsize);

impl Respond for Flaky {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => ResponseTemplate::new(500),
            1 => ResponseTemplate::new(429).insert_header("retry-after", "0"),
            2 => ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
            _ => ResponseTemplate::new(200),
        }
    }
}

#[tokio::test]
async fn transient_failures_then_success_make_exactly_one_successful_call() {
    let fake = MockServer::start().await;
    let flaky = Arc::new(Flaky(AtomicUsize::new(0)));
    Mock::given(method("PUT"))
        .respond_with(FlakyRef(flaky.clone()))
        .mount(&fake)
        .await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send(&unsub("msg_flaky", "a@example.com")).await;
    let invocations = h.run_until_empty().await;
    assert_eq!(
        invocations, 4,
        "three retries through the queue, then success"
    );
    assert_eq!(
        flaky.0.load(Ordering::SeqCst),
        4,
        "one successful call after three failures"
    );
    assert!(h.dlq().await.is_empty());
    // and it is remembered: a redelivery is a duplicate
    h.send(&unsub("msg_flaky", "a@example.com")).await;
    h.run_until_empty().await;
    assert_eq!(flaky.0.load(Ordering::SeqCst), 4);
}

struct FlakyRef(Arc<Flaky>);
impl Respond for FlakyRef {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        self.0.respond(r)
    }
}

#[tokio::test]
async fn not_found_is_done_without_retry() {
    let fake = sparkloop(404).await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send(&unsub("msg_404", "stranger@example.com")).await;
    assert_eq!(h.run_until_empty().await, 1);
    assert_eq!(calls(&fake).await, 1);
    assert!(h.dlq().await.is_empty());
}

#[tokio::test]
async fn a_bad_request_is_parked_with_sparkloops_error() {
    let fake = sparkloop(400).await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send(&unsub("msg_400", "a@example.com")).await;
    assert_eq!(h.run_until_empty().await, 1, "not retried");
    assert_eq!(calls(&fake).await, 1);
    let dlq = h.dlq().await;
    assert_eq!(dlq.len(), 1);
    let err = dlq[0].message_attributes().unwrap()["error"]
        .string_value()
        .unwrap()
        .to_string();
    assert!(
        err.contains("400") && err.contains("Subscriber uuid blank!"),
        "{err}"
    );
    // released, not completed: a replay after fixing the cause is processed again
    h.send(&unsub("msg_400", "a@example.com")).await;
    h.run_until_empty().await;
    assert_eq!(calls(&fake).await, 2);
}

#[tokio::test]
async fn a_poison_body_is_parked_at_once_and_holds_back_nothing() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send("this is not an envelope").await;
    h.send(&unsub("msg_good", "good@example.com")).await;
    let ev = h.batch().await;
    assert_eq!(ev.records.len(), 2);
    let failed = h.invoke(&h.worker, &ev).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(calls(&fake).await, 1, "the good record was processed");
    let parked = h.dlq().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body(), Some("this is not an envelope"));
    let error = parked[0].message_attributes().unwrap()["error"]
        .string_value()
        .unwrap()
        .to_string();
    assert!(error.contains("unparseable"), "{error}");
}

/// Receives every second until something reaches the DLQ; returns the receives it took and
/// what was parked.
async fn receive_until_parked(
    h: &sparkbridge_tests::worker_kit::Harness,
) -> (usize, Vec<aws_sdk_sqs::types::Message>) {
    let mut receives = 0;
    for _ in 0..20 {
        let ev = h.batch_hidden_for(1).await;
        if !ev.records.is_empty() {
            receives += 1;
            h.invoke(&h.worker, &ev).await;
        }
        let parked = h.dlq().await;
        if !parked.is_empty() {
            return (receives, parked);
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    panic!("nothing reached the DLQ in 20 receives");
}

/// End to end with a redrive policy (here maxReceiveCount 3). Told the count, the worker parks
/// the message itself on the last receive, with its error; not told, SQS's redrive moves it
/// after the third receive, without one (the safety net for crashes and timeouts).
#[tokio::test]
async fn the_last_receive_before_redrive_is_parked_with_its_error() {
    for (told, want_error) in [(3, true), (0, false)] {
        let fake = sparkloop(503).await;
        let mut cfg = fast_config();
        cfg.retry.max_attempts = 0;
        cfg.retry.redrive_max_receives = told;
        let h = harness(&fake.uri(), cfg).await;
        h.redrive_after(3).await;
        h.send(&unsub("msg_redrive", "a@example.com")).await;
        let (receives, parked) = receive_until_parked(&h).await;
        assert_eq!(receives, 3, "told {told}");
        let error = parked[0]
            .message_attributes()
            .and_then(|a| a.get("error"))
            .and_then(|v| v.string_value())
            .map(str::to_string);
        assert_eq!(error.is_some(), want_error, "told {told}: {error:?}");
        if let Some(error) = error {
            assert!(
                error.contains("redrive") && error.contains("HTTP 503"),
                "{error}"
            );
        }
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_cannot_complete() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    let body = unsub("msg_lease", "a@example.com");
    let env: sparkbridge::core::Envelope = serde_json::from_str(&body).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // a holder that crashed: its lease ended a second ago
    let crashed = LeaseRequest {
        owner: "crashed-owner".into(),
        payload_hash: env.payload_hash(),
        now_ms: now - 60_000,
        lease_until_ms: now - 1_000,
        expires_at: now / 1000 + 3_600,
    };
    assert_eq!(
        h.store
            .acquire(&env.idempotency_key(), &crashed)
            .await
            .unwrap(),
        Acquire::Acquired
    );
    h.send(&body).await;
    h.run_until_empty().await;
    assert_eq!(calls(&fake).await, 1, "the successor made the call");
    assert!(!h
        .store
        .complete(
            &env.idempotency_key(),
            "crashed-owner",
            now / 1000 + 10,
            "done",
            &[],
        )
        .await
        .unwrap());
    assert!(!h
        .store
        .release(&env.idempotency_key(), "crashed-owner")
        .await
        .unwrap());
    // the successor's COMPLETED record still stands
    h.send(&body).await;
    h.run_until_empty().await;
    assert_eq!(calls(&fake).await, 1);
}

#[tokio::test]
async fn a_live_lease_is_retried_later() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    let body = unsub("msg_live", "a@example.com");
    let env: sparkbridge::core::Envelope = serde_json::from_str(&body).unwrap();
    let holder = live_lease("busy", &env.payload_hash());
    h.store
        .acquire(&env.idempotency_key(), &holder)
        .await
        .unwrap();
    h.send(&body).await;
    let ev = h.batch().await;
    assert_eq!(
        h.invoke(&h.worker, &ev).await.len(),
        1,
        "retried, not acknowledged"
    );
    assert_eq!(calls(&fake).await, 0);
    // Back-off is 0 here, yet the message stays invisible: it waits for the holder's lease
    // (60 s) instead of spending attempts while the holder works.
    assert!(
        h.batch().await.records.is_empty(),
        "the retry waits for the lease to end"
    );
}

#[tokio::test]
async fn a_completed_id_redelivered_with_other_bytes_is_a_duplicate() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send(&unsub("msg_reused", "a@example.com")).await;
    h.run_until_empty().await;
    h.send(&envelope(
        "loops",
        "email.unsubscribed",
        "msg_reused",
        "a@example.com",
        r#"{"eventName":"email.unsubscribed","different":true}"#,
    ))
    .await;
    h.run_until_empty().await;
    assert_eq!(calls(&fake).await, 1);
    assert!(h.dlq().await.is_empty(), "acknowledged as a duplicate");
}

#[tokio::test]
async fn a_reused_id_while_the_first_is_unfinished_is_parked_as_a_conflict() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    let holder = live_lease("first", "another-payload");
    let body = unsub("msg_reused_live", "a@example.com");
    let env: sparkbridge::core::Envelope = serde_json::from_str(&body).unwrap();
    h.store
        .acquire(&env.idempotency_key(), &holder)
        .await
        .unwrap();
    h.send(&body).await;
    h.run_until_empty().await;
    assert_eq!(calls(&fake).await, 0);
    let dlq = h.dlq().await;
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].message_attributes().unwrap()["error"]
        .string_value()
        .unwrap()
        .contains("different payload"));
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_park_with_the_last_error() {
    let fake = sparkloop(503).await;
    let mut cfg = fast_config();
    cfg.retry.max_attempts = 3;
    let h = harness(&fake.uri(), cfg).await;
    h.send(&unsub("msg_down", "a@example.com")).await;
    assert_eq!(h.run_until_empty().await, 3);
    assert_eq!(calls(&fake).await, 3);
    let dlq = h.dlq().await;
    assert_eq!(dlq.len(), 1);
    let attrs = dlq[0].message_attributes().unwrap();
    assert!(attrs["error"].string_value().unwrap().contains("HTTP 503"));
    assert_eq!(attrs["attempts"].string_value(), Some("3"));
}

#[tokio::test]
async fn engagement_is_counted_without_calls_and_ignored_events_are_acknowledged() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send(&envelope(
        "loops",
        "email.opened",
        "o1",
        "a@example.com",
        "{}",
    ))
    .await;
    h.send(&envelope(
        "loops",
        "email.clicked",
        "c1",
        "a@example.com",
        "{}",
    ))
    .await;
    h.send(&envelope(
        "loops",
        "email.softBounced",
        "s1",
        "a@example.com",
        "{}",
    ))
    .await;
    h.send(&envelope("esputnik", "parked", "p1", "", r#""garbage""#))
        .await;
    h.run_until_empty().await;
    assert_eq!(calls(&fake).await, 0);
    assert_eq!(
        h.dlq().await.len(),
        1,
        "the parked element is visible in the DLQ"
    );
    let item = h
        .store
        .client()
        .get_item()
        .table_name(h.store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("sub#a@example.com".into()),
        )
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    assert_eq!(item["opens"].as_n().unwrap(), "1");
    assert_eq!(item["clicks"].as_n().unwrap(), "1");
}

/// The SDK sends a `PutItem` again when its answer was lost; the write had happened, so the
/// condition refuses it. The stored owner token is ours: that is our lease, not someone else's.
#[tokio::test]
async fn a_lease_write_sent_twice_is_still_ours() {
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    let req = live_lease("me", "h");
    let key = "loops#lost_answer";
    assert_eq!(h.store.acquire(key, &req).await.unwrap(), Acquire::Acquired);
    assert_eq!(
        h.store.acquire(key, &req).await.unwrap(),
        Acquire::Acquired,
        "the repeated write finds our own token"
    );
    let other = LeaseRequest {
        owner: "someone else".into(),
        ..req.clone()
    };
    assert_eq!(
        h.store.acquire(key, &other).await.unwrap(),
        Acquire::InProgress {
            lease_until_ms: req.lease_until_ms
        }
    );
}

/// The lease and a SparkLoop event's transition in one DynamoDB transaction: both or
/// neither. A refusal of either writes nothing, and the one-at-a-time path reads why.
#[tokio::test]
async fn the_lease_and_the_transition_are_one_write_or_none() {
    use sparkbridge::core::{ReferralStatus, Transition};
    use sparkbridge::ports::SubscriberStore;
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    let now = chrono::Utc::now().timestamp_millis();
    let lease = |owner: &str| LeaseRequest {
        owner: owner.into(),
        payload_hash: "h".into(),
        now_ms: now,
        lease_until_ms: now + 60_000,
        expires_at: now / 1000 + 3_600,
    };
    let transition = |status: ReferralStatus| Transition {
        email: "tx@example.com".into(),
        status,
        sparkloop_id: Some("sub_tx".into()),
        campaign_id: None,
        partner_id: Some("partner_a".into()),
        source: Some("sparkloop-magic".into()),
        screening: None,
        at: chrono::Utc::now(),
        cause: "test".into(),
    };
    let status = || async {
        h.store
            .get("tx@example.com")
            .await
            .unwrap()
            .and_then(|s| s.referral_status)
    };
    // both conditions hold: one write did both
    assert!(h
        .store
        .acquire_applying(
            "sparkloop#a",
            &lease("one"),
            &transition(ReferralStatus::Verified)
        )
        .await
        .unwrap());
    assert_eq!(status().await, Some(ReferralStatus::Verified));
    assert_eq!(
        h.store.acquire("sparkloop#a", &lease("two")).await.unwrap(),
        Acquire::InProgress {
            lease_until_ms: now + 60_000
        },
        "the lease was written"
    );
    // the lease is held: nothing is written, not even the (forward) transition
    assert!(!h
        .store
        .acquire_applying(
            "sparkloop#a",
            &lease("three"),
            &transition(ReferralStatus::Rejected)
        )
        .await
        .unwrap());
    assert_eq!(status().await, Some(ReferralStatus::Verified));
    // a stale transition (pending after verified): no lease written either
    assert!(!h
        .store
        .acquire_applying(
            "sparkloop#b",
            &lease("four"),
            &transition(ReferralStatus::Pending)
        )
        .await
        .unwrap());
    assert_eq!(
        h.store
            .acquire("sparkloop#b", &lease("five"))
            .await
            .unwrap(),
        Acquire::Acquired,
        "the refused transaction left no lease"
    );
    assert_eq!(status().await, Some(ReferralStatus::Verified));
}

/// SparkLoop answers 503 to the first `outage` calls, then 200.
struct Outage {
    calls: AtomicUsize,
    outage: usize,
}

impl Respond for Outage {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.outage {
            ResponseTemplate::new(503)
        } else {
            ResponseTemplate::new(200)
        }
    }
}

#[tokio::test]
async fn an_outage_longer_than_any_attempt_count_is_retried_until_it_ends() {
    let fake = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(Outage {
            calls: AtomicUsize::new(0),
            outage: 12,
        })
        .mount(&fake)
        .await;
    let mut cfg = fast_config();
    cfg.retry.max_attempts = 0; // the default: the window decides, not a count
    let h = harness(&fake.uri(), cfg).await;
    h.send(&unsub("msg_long_outage", "a@example.com")).await;
    assert_eq!(h.run_until_empty().await, 13, "12 failures, then success");
    assert_eq!(calls(&fake).await, 13);
    assert!(h.dlq().await.is_empty(), "nothing parked inside the window");
}

#[tokio::test]
async fn a_failure_after_the_retry_window_is_parked_with_its_last_error() {
    let fake = sparkloop(503).await;
    let mut cfg = fast_config();
    cfg.retry.max_attempts = 0;
    cfg.retry.window_secs = 3_600;
    let h = harness(&fake.uri(), cfg).await;
    let mut body: serde_json::Value =
        serde_json::from_str(&unsub("msg_old", "a@example.com")).unwrap();
    body["received_at"] = (chrono::Utc::now() - chrono::Duration::hours(2))
        .to_rfc3339()
        .into();
    h.send(&body.to_string()).await;
    assert_eq!(h.run_until_empty().await, 1);
    assert_eq!(calls(&fake).await, 1, "tried once more, then parked");
    let dlq = h.dlq().await;
    assert_eq!(dlq.len(), 1);
    let error = dlq[0].message_attributes().unwrap()["error"]
        .string_value()
        .unwrap()
        .to_string();
    assert!(error.contains("RETRY_WINDOW_SECS"), "{error}");
    assert!(
        error.contains("HTTP 503"),
        "the last error is kept: {error}"
    );
}

#[tokio::test]
async fn a_retry_after_beyond_twelve_hours_still_hides_the_message() {
    let fake = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "100000"))
        .mount(&fake)
        .await;
    let mut cfg = fast_config();
    cfg.retry.max_attempts = 0;
    let h = harness(&fake.uri(), cfg).await;
    h.send(&unsub("msg_slow_down", "a@example.com")).await;
    // received with visibility 0: only a successful ChangeMessageVisibility hides it
    let ev = h.batch_hidden_for(0).await;
    assert_eq!(h.invoke(&h.worker, &ev).await.len(), 1);
    assert!(
        h.batch_hidden_for(0).await.records.is_empty(),
        "SQS accepted the capped visibility, so the message waits"
    );
    assert!(h.dlq().await.is_empty());
}

#[tokio::test]
async fn a_failed_record_holds_back_the_later_records_of_its_subscriber() {
    let fake = sparkloop(503).await;
    let h = harness(&fake.uri(), fast_config()).await;
    for i in 0..3 {
        h.send(&unsub(&format!("msg_order_{i}"), "same@example.com"))
            .await;
    }
    h.send(&unsub("msg_other", "other@example.com")).await;
    let ev = h.batch().await;
    assert_eq!(ev.records.len(), 4);
    let failed = h.invoke(&h.worker, &ev).await;
    assert_eq!(failed.len(), 4, "every record failed or went back");
    let reqs = fake.received_requests().await.unwrap();
    let paths: Vec<&str> = reqs.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.contains("same%40example.com"))
            .count(),
        1,
        "after the first failure no later record of the subscriber is attempted: {paths:?}"
    );
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.contains("other%40example.com"))
            .count(),
        1,
        "other subscribers are not held back"
    );
}

/// A SparkLoop that answers 200 after `delay`, a client that gives up after `timeout`, and
/// four unsubscribes of one subscriber received as one batch.
async fn slow_sparkloop_batch(
    delay: Duration,
    timeout: Duration,
) -> (
    MockServer,
    sparkbridge_tests::worker_kit::Harness,
    aws_lambda_events::event::sqs::SqsEvent,
) {
    let fake = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_delay(delay))
        .mount(&fake)
        .await;
    let mut cfg = fast_config();
    cfg.call_reserve_ms = timeout.as_millis() as i64 + 2_000; // the client timeout plus the margin
    let h = sparkbridge_tests::worker_kit::harness_timed(
        &fake.uri(),
        Arc::new(sparkbridge::adapters::esp::DryRunEsp("none")),
        cfg,
        timeout,
    )
    .await;
    for i in 0..4 {
        h.send(&unsub(&format!("msg_slow_{i}"), "slow@example.com"))
            .await;
    }
    let ev = h.batch().await;
    assert_eq!(ev.records.len(), 4);
    (fake, h, ev)
}

#[tokio::test]
async fn a_hanging_sparkloop_never_runs_the_batch_past_its_deadline() {
    let (fake, h, ev) =
        slow_sparkloop_batch(Duration::from_secs(60), Duration::from_secs(10)).await;
    let started = std::time::Instant::now();
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let resp = h.worker.handle(&ev, deadline).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "answered after {took:?}");
    assert_eq!(
        resp.batch_item_failures.len(),
        4,
        "the timed-out record and the three not started are retried"
    );
    assert_eq!(calls(&fake).await, 1, "no record started after the hang");
}

#[tokio::test]
async fn records_that_cannot_finish_before_the_deadline_are_not_started() {
    let (fake, h, ev) = slow_sparkloop_batch(Duration::from_secs(3), Duration::from_secs(4)).await;
    let ids: Vec<String> = ev
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let deadline = chrono::Utc::now().timestamp_millis() + 14_000;
    let resp = h.worker.handle(&ev, deadline).await;
    assert!(chrono::Utc::now().timestamp_millis() < deadline);
    let failed: Vec<String> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        calls(&fake).await,
        3,
        "three 3 s calls fit in 14 s with 6 s kept free"
    );
    assert_eq!(
        failed,
        ids[3..].to_vec(),
        "the last record goes back unstarted"
    );
}

#[tokio::test]
async fn a_redirect_is_parked_with_its_location_and_never_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&elsewhere)
        .await;
    let fake = MockServer::start().await;
    let target = format!(
        "{}/v2/subscribers/a%40example.com/unsubscribe",
        elsewhere.uri()
    );
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", target.as_str()))
        .mount(&fake)
        .await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send(&unsub("msg_moved", "a@example.com")).await;
    h.run_until_empty().await;
    assert_eq!(
        calls(&elsewhere).await,
        0,
        "the API key never reached another host"
    );
    let dlq = h.dlq().await;
    assert_eq!(dlq.len(), 1);
    let error = dlq[0].message_attributes().unwrap()["error"]
        .string_value()
        .unwrap()
        .to_string();
    assert!(error.contains("301") && error.contains(&target), "{error}");
}

/// A Loops event about one contact at `occurred_at` (seconds), as ingest would queue it.
fn contact_event(kind: &str, id: &str, email: &str, occurred_at: i64) -> String {
    serde_json::json!({
        "v": 1, "provider": "loops", "kind": kind, "dedupe_id": id,
        "received_at": chrono::Utc::now().to_rfc3339(),
        "occurred_at": chrono::DateTime::from_timestamp(occurred_at, 0).unwrap().to_rfc3339(),
        "subscriber": {"email": email, "esp_contact_id": "contact_1"},
        "payload": {"eventName": kind},
    })
    .to_string()
}

/// SparkLoop refuses the first confirm with 503 and accepts everything else.
struct ConfirmOutage(AtomicUsize);

impl Respond for ConfirmOutage {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let confirm = String::from_utf8_lossy(&r.body).contains("confirmed");
        if confirm && self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            ResponseTemplate::new(503)
        } else {
            ResponseTemplate::new(200)
        }
    }
}

#[tokio::test]
async fn a_retried_signup_confirm_never_reaches_sparkloop_after_a_later_unsubscribe() {
    let fake = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ConfirmOutage(AtomicUsize::new(0)))
        .mount(&fake)
        .await;
    let mut cfg = fast_config();
    cfg.rules.confirm_signups = true;
    let h = harness(&fake.uri(), cfg).await;
    h.send(&contact_event(
        "contact.created",
        "msg_signup",
        "a@example.com",
        1_000,
    ))
    .await;
    let first = h.batch().await;
    assert_eq!(h.invoke(&h.worker, &first).await.len(), 1, "503: retried");
    // the retry comes back only after the unsubscribe went through (held unprocessed meanwhile)
    assert_eq!(h.batch_hidden_for(3).await.records.len(), 1);
    h.send(&contact_event(
        "email.unsubscribed",
        "msg_left",
        "a@example.com",
        2_000,
    ))
    .await;
    h.run_until_empty().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(h.run_until_empty().await, 1, "the confirm came back");
    let reqs = fake.received_requests().await.unwrap();
    let seen: Vec<String> = reqs
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body);
            if body.contains("confirmed") {
                "confirm".into()
            } else {
                r.url.path().rsplit('/').next().unwrap().to_string()
            }
        })
        .collect();
    assert_eq!(
        seen,
        ["confirm", "unsubscribe", "unsubscribe"],
        "the failed confirm is never made again after the unsubscribe: its retry says the unsubscribe again instead"
    );
    assert!(h.dlq().await.is_empty());
}

#[tokio::test]
async fn an_older_event_never_reverts_a_contacts_address() {
    let fake = sparkloop(200).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fake)
        .await;
    let mut cfg = fast_config();
    cfg.detect_email_changes = true;
    let h = harness(&fake.uri(), cfg).await;
    for (id, email, at) in [
        ("msg_first", "first@example.com", 1_000),
        ("msg_newest", "newest@example.com", 3_000),
        ("msg_late_old", "middle@example.com", 2_000), // delivered last, happened before
    ] {
        h.send(&contact_event("email.opened", id, email, at)).await;
        h.run_until_empty().await;
    }
    let reqs = fake.received_requests().await.unwrap();
    let changes: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} -> {}", r.url.path(), String::from_utf8_lossy(&r.body)))
        .collect();
    assert_eq!(
        changes,
        [r#"/v2/subscribers/first%40example.com -> {"email":"newest@example.com"}"#],
        "only the forward change is passed on"
    );
    use sparkbridge::ports::SubscriberStore;
    let recorded = h
        .store
        .contact_email("loops#contact_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.email, "newest@example.com");
}

#[tokio::test]
async fn the_sparkloop_key_comes_from_the_secret_and_a_new_key_is_used_after_the_ttl() {
    use sparkbridge::adapters::secretsmanager::SecretsManagerSource;
    use sparkbridge::adapters::sparkloop::{ClientSettings, SparkLoopClient};
    use sparkbridge::core::secrets::{needs, SPARKLOOP_API_KEY};
    use sparkbridge::secrets::{Component, SecretValues, Secrets};
    use sparkbridge_tests::{fresh_secret, put_secret, sdk_config};

    let fake = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fake)
        .await;
    let h = harness(&fake.uri(), fast_config()).await;
    let arn = fresh_secret(&serde_json::json!({
        "SPARKLOOP_API_KEY": "sl-key-1",
        "LOOPS_SIGNING_SECRET": "another function's secret",
    }))
    .await;
    let ttl = Duration::from_secs(2);
    let secrets = Secrets::managed(
        Arc::new(SecretsManagerSource::from_conf(&sdk_config().await, &arn)),
        needs(Component::Worker, None, false),
        SecretValues::default(),
        ttl,
    )
    .await
    .unwrap();
    let read_at = std::time::Instant::now();
    let key = secrets
        .live(|v| {
            v.get(SPARKLOOP_API_KEY)
                .cloned()
                .ok_or_else(|| "no key".to_string())
        })
        .unwrap();
    let settings = ClientSettings {
        rate_per_min: 60_000,
        ..ClientSettings::default()
    };
    let worker = h.worker_calling(Arc::new(SparkLoopClient::with_key(
        &fake.uri(),
        key,
        &settings,
    )));
    let unsubscribe = |n: u32| {
        let (h, worker) = (&h, &worker);
        async move {
            h.send(&unsub(
                &format!("msg_key_{n}"),
                &format!("k{n}@example.com"),
            ))
            .await;
            let failed = h.invoke(worker, &h.batch().await).await;
            assert!(failed.is_empty(), "call {n}");
        }
    };
    unsubscribe(1).await;
    put_secret(&arn, &serde_json::json!({"SPARKLOOP_API_KEY": "sl-key-2"})).await;
    unsubscribe(2).await;
    assert!(
        read_at.elapsed() < ttl,
        "the calls before the TTL took longer than the TTL"
    );
    tokio::time::sleep(ttl.saturating_sub(read_at.elapsed())).await;
    unsubscribe(3).await;

    let keys: Vec<String> = fake
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["x-api-key"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        ["sl-key-1", "sl-key-1", "sl-key-2"],
        "the key in the secret; the new one only after the TTL"
    );
}

/// Two completions race with addresses for one contact: the later-dated address stays, and
/// the completion carrying the older one still lands (without its address).
#[tokio::test]
async fn a_completion_with_an_older_address_lands_and_keeps_the_newer_one() {
    use sparkbridge::core::StateWrite;
    use sparkbridge::ports::SubscriberStore;
    let fake = sparkloop(200).await;
    let h = harness(&fake.uri(), fast_config()).await;
    let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
    let address = |email: &str, when: i64| StateWrite::ContactEmail {
        contact_key: "loops#c1".into(),
        email: email.into(),
        at: at(when),
    };
    let now = chrono::Utc::now().timestamp_millis();
    for (key, write) in [
        ("k_newer", address("newer@example.com", 2_000)),
        ("k_older", address("older@example.com", 1_000)),
    ] {
        let lease = live_lease("w", "h");
        assert_eq!(
            h.store.acquire(key, &lease).await.unwrap(),
            Acquire::Acquired
        );
        let status = StateWrite::EspStatus {
            email: format!("{key}@example.com"),
            status: "seen".into(),
            at: at(1),
        };
        let writes = [write, status];
        assert!(
            h.store
                .complete(key, "w", now / 1000 + 3_600, "done", &writes)
                .await
                .unwrap(),
            "{key} completes"
        );
    }
    let recorded = h.store.contact_email("loops#c1").await.unwrap().unwrap();
    assert_eq!(recorded.email, "newer@example.com");
}

/// A `Write` the log lines of one test go to.
#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Receives one batch and invokes the worker on it; returns the `fields` of its `record`
/// lines as the deployed JSON format writes them at INFO, in order.
async fn record_lines(h: &sparkbridge_tests::worker_kit::Harness) -> Vec<serde_json::Value> {
    record_lines_at(h, sparkbridge::telemetry::LevelFilter::INFO).await
}

/// [`record_lines`] with the log level `level`.
async fn record_lines_at(
    h: &sparkbridge_tests::worker_kit::Harness,
    level: sparkbridge::telemetry::LevelFilter,
) -> Vec<serde_json::Value> {
    logged_lines(h, &h.worker, level)
        .await
        .into_iter()
        .filter(|l| l["message"] == "record")
        .collect()
}

/// The fields of every line `worker` logs at `level` for the harness's next batch.
async fn logged_lines(
    h: &sparkbridge_tests::worker_kit::Harness,
    worker: &sparkbridge::worker::Worker,
    level: sparkbridge::telemetry::LevelFilter,
) -> Vec<serde_json::Value> {
    use sparkbridge::telemetry::{dispatch, LevelFilter, LogFormat};
    use tracing_subscriber::util::SubscriberInitExt;
    let ev = h.batch().await;
    assert!(!ev.records.is_empty(), "a batch to invoke the worker on");
    let lines = Lines::default();
    let writer = lines.clone();
    {
        // With one dispatcher registered, `tracing` caches a callsite's interest from the
        // default of whichever thread first reaches it: another test's thread, which has
        // none, would switch the `record` line off for this one. A second live dispatcher
        // makes every callsite ask them all.
        let _second = dispatch(LogFormat::Json, LevelFilter::OFF, false, std::io::sink);
        let _guard = dispatch(LogFormat::Json, level, false, move || writer.clone()).set_default();
        h.invoke(worker, &ev).await;
    }
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object a line"))
        .map(|l| l["fields"].clone())
        .collect()
}

/// A dry run says so where the call would be: `sparkloop.unsubscribe=dry_run` in the record's
/// one line, not `done` and not a second line per call (that detail is at DEBUG).
#[tokio::test]
async fn a_dry_run_call_is_named_in_the_record_line_and_nowhere_else() {
    use sparkbridge::adapters::sparkloop::DryRunSparkLoop;
    use sparkbridge::telemetry::LevelFilter;
    let fake = MockServer::start().await;
    let h = harness(&fake.uri(), fast_config()).await;
    let dry = h.worker_calling(Arc::new(DryRunSparkLoop));
    h.send(&unsub("msg_dry", "dry@example.com")).await;
    let lines = logged_lines(&h, &dry, LevelFilter::INFO).await;
    let per_record: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["dedupe_id"] == "msg_dry"
                || l["message"].as_str().is_some_and(|m| m.contains("dry run"))
        })
        .collect();
    assert_eq!(per_record.len(), 1, "{lines:?}");
    assert_eq!(
        summary(per_record[0]),
        ["-", "sparkloop.unsubscribe=dry_run", "done", "-", "-"]
    );
    assert!(fake.received_requests().await.unwrap().is_empty());

    h.send(&unsub("msg_dry_2", "dry2@example.com")).await;
    let debug = logged_lines(&h, &dry, LevelFilter::DEBUG).await;
    assert!(
        debug
            .iter()
            .any(|l| l["message"] == "dry run: would call SparkLoop"
                && l["call"] == "unsubscribe"
                && l["target_subscriber"] != "dry2@example.com"),
        "the detail at DEBUG, masked: {debug:?}"
    );
}

/// The line's `dedupe`, `calls`, `outcome`, `note` and `error` (`-` when absent).
fn summary(line: &serde_json::Value) -> [String; 5] {
    let text = |k: &str| {
        line.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .to_string()
    };
    ["dedupe", "calls", "outcome", "note", "error"].map(text)
}

/// One `record` line per record, with the fields the operations guide names, for every way a
/// record ends: operators' queries read these names and values. A field is there when it
/// says something (`-` in the summaries: absent).
#[tokio::test]
async fn each_record_ends_in_one_line_with_the_documented_fields() {
    use sparkbridge::core::envelope::{Envelope, Provider};
    let fake = MockServer::start().await;
    for (who, status) in [("ok", 200), ("bad", 400), ("down", 503)] {
        Mock::given(method("PUT"))
            .and(path_regex(format!(
                r"^/v2/subscribers/{who}%40example\.com/"
            )))
            .respond_with(ResponseTemplate::new(status).set_body_string(r#"{"error":"no"}"#))
            .mount(&fake)
            .await;
    }
    let h = harness(&fake.uri(), fast_config()).await;

    h.send(&unsub("msg_line", "ok@example.com")).await;
    let done = record_lines(&h).await;
    assert_eq!(done.len(), 1);
    let mut keys: Vec<&str> = done[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "calls",
            "dedupe_id",
            "email",
            "kind",
            "latency_ms",
            "message",
            "outcome",
            "provider"
        ],
        "a note, an error and a delay only when there is one; `dedupe` not when it is the \
         usual `acquired`, `attempt` not on the first, `message_id` only on a retry or park"
    );
    assert_eq!(
        (
            &done[0]["provider"],
            &done[0]["kind"],
            &done[0]["dedupe_id"]
        ),
        (
            &serde_json::json!("loops"),
            &serde_json::json!("email.unsubscribed"),
            &serde_json::json!("msg_line")
        )
    );
    assert_ne!(done[0]["email"], "ok@example.com", "masked");
    assert_eq!(
        summary(&done[0]),
        ["-", "sparkloop.unsubscribe=done", "done", "-", "-"]
    );

    h.send(&unsub("msg_line", "ok@example.com")).await;
    let again = record_lines(&h).await;
    assert_eq!(summary(&again[0]), ["-", "-", "duplicate", "-", "-"]);

    h.send(&envelope(
        "loops",
        "email.unsubscribed",
        "msg_line",
        "ok@example.com",
        r#"{"other":1}"#,
    ))
    .await;
    let other = record_lines(&h).await;
    let [dedupe, _, outcome, note, _] = summary(&other[0]);
    assert_eq!((dedupe.as_str(), outcome.as_str()), ("-", "duplicate"));
    assert!(
        note.starts_with("completed earlier with other bytes: stored sha256 "),
        "{note}"
    );

    let held = unsub("msg_held", "ok@example.com");
    let env: Envelope = serde_json::from_str(&held).unwrap();
    let key = env.idempotency_key();
    h.store
        .acquire(&key, &live_lease("someone", &env.payload_hash()))
        .await
        .unwrap();
    h.send(&held).await;
    let waiting = record_lines(&h).await;
    assert_eq!(
        summary(&waiting[0]),
        ["in_progress", "-", "retry", "in progress elsewhere", "-"]
    );
    assert!(waiting[0]["delay_secs"].as_u64().unwrap() > 50);
    assert!(
        waiting[0]["message_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "a record that goes back names its SQS message"
    );

    let reused = unsub("msg_reused_line", "ok@example.com");
    let env: Envelope = serde_json::from_str(&reused).unwrap();
    h.store
        .acquire(&env.idempotency_key(), &live_lease("someone", "other"))
        .await
        .unwrap();
    h.send(&reused).await;
    let conflict = record_lines(&h).await;
    let [dedupe, _, outcome, _, error] = summary(&conflict[0]);
    assert_eq!((dedupe.as_str(), outcome.as_str()), ("conflict", "parked"));
    assert!(
        error.starts_with("dedupe id reused with a different payload"),
        "{error}"
    );

    h.send(&envelope(
        "loops",
        "email.softBounced",
        "msg_soft",
        "ok@example.com",
        "{}",
    ))
    .await;
    let ignored = record_lines(&h).await;
    assert_eq!(
        summary(&ignored[0]),
        ["-", "-", "ignored", "no SparkLoop effect", "-"]
    );

    h.send(&unsub("msg_bad", "bad@example.com")).await;
    let parked = record_lines(&h).await;
    assert_eq!(
        summary(&parked[0]),
        [
            "-",
            "sparkloop.unsubscribe=permanent",
            "parked",
            "-",
            r#"sparkloop unsubscribe answered 400: {"error":"no"}"#
        ]
    );

    h.send("not an envelope").await;
    let poison = record_lines(&h).await;
    let [dedupe, calls, outcome, _, error] = summary(&poison[0]);
    assert_eq!(
        (dedupe.as_str(), calls.as_str(), outcome.as_str()),
        ("-", "-", "parked")
    );
    assert!(error.starts_with("unparseable body: "), "{error}");

    // a SparkLoop event whose transition is stale stops before the ESP
    let partner = |kind: &str, status: &str| {
        let body = serde_json::json!({
            "type": kind,
            "campaign": {"id": "c1"},
            "subscriber": {"id": "sub_line", "email": "line@example.com",
                           "referral_status": status, "partner_id": "partner_a"},
            "partner": {"id": "partner_a"}
        })
        .to_string();
        let (id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes()).unwrap();
        serde_json::to_string(&Envelope::new(
            Provider::Sparkloop,
            id,
            chrono::Utc::now(),
            n,
        ))
        .unwrap()
    };
    h.send(&partner("new_partner_referral", "verified")).await;
    let verified = record_lines(&h).await;
    let [dedupe, calls, outcome, ..] = summary(&verified[0]);
    assert_eq!((dedupe.as_str(), outcome.as_str()), ("-", "done"));
    assert!(calls.starts_with("state.verified=applied"), "{calls}");
    h.send(&partner("new_partner_pending_referral", "pending"))
        .await;
    let stale = record_lines(&h).await;
    assert_eq!(
        summary(&stale[0]),
        [
            "-",
            "state.pending=stale",
            "done",
            "stale: the subscriber is already verified",
            "-"
        ]
    );

    h.send(&unsub("msg_down_1", "down@example.com")).await;
    h.send(&unsub("msg_down_2", "down@example.com")).await;
    let retried = record_lines(&h).await;
    assert_eq!(retried.len(), 2);
    let [dedupe, calls, outcome, note, error] = summary(&retried[0]);
    assert_eq!(
        (
            dedupe.as_str(),
            calls.as_str(),
            outcome.as_str(),
            note.as_str()
        ),
        ("-", "sparkloop.unsubscribe=retry", "retry", "-")
    );
    assert!(error.contains("HTTP 503"), "{error}");
    assert_eq!(retried[0]["delay_secs"], 0);
    assert_eq!(
        summary(&retried[1]),
        [
            "-",
            "-",
            "retry",
            "held behind an earlier record of this subscriber",
            "-"
        ]
    );
    assert_eq!(retried[1]["delay_secs"], 1);
    assert!(
        retried[0].get("attempt").is_none(),
        "the first attempt is not news"
    );

    // The first comes back at once (no delay): its line says which attempt it is.
    let again = record_lines(&h).await;
    let first = again
        .iter()
        .find(|l| l["dedupe_id"] == "msg_down_1")
        .expect("msg_down_1 comes back");
    assert_eq!(first["attempt"], 2);
}

/// With DEBUG on, the record line also carries what INFO leaves out when it is the usual:
/// the SQS message, the attempt and the dedupe store's answer.
#[tokio::test]
async fn at_debug_the_record_line_carries_the_message_attempt_and_dedupe() {
    let fake = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex(r"^/v2/subscribers/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&fake)
        .await;
    let h = harness(&fake.uri(), fast_config()).await;
    h.send(&unsub("msg_debug_line", "ok@example.com")).await;
    let lines = record_lines_at(&h, sparkbridge::telemetry::LevelFilter::DEBUG).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (
            &lines[0]["outcome"],
            &lines[0]["dedupe"],
            &lines[0]["attempt"]
        ),
        (
            &serde_json::json!("done"),
            &serde_json::json!("acquired"),
            &serde_json::json!(1)
        )
    );
    assert!(
        lines[0]["message_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{}",
        lines[0]
    );
}

/// The DynamoDB operations a client sends, in order, with the HTTP status of each answer.
#[derive(Clone, Default, Debug)]
struct Requests(Arc<std::sync::Mutex<Vec<(String, u16)>>>);

impl Requests {
    /// The operations that were answered (a 5xx the SDK retried is moto's, not the worker's).
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .filter(|(_, status)| *status < 500)
            .map(|(op, _)| op)
            .collect()
    }
}

impl aws_sdk_dynamodb::config::Intercept for Requests {
    fn name(&self) -> &'static str {
        "TestRequestLog"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context.request().headers().get("x-amz-target");
        let op = target.and_then(|t| t.split('.').next_back()).unwrap_or("?");
        self.0.lock().unwrap().push((op.to_string(), 0));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef<
            '_,
        >,
        _rc: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // one request in flight at a time here: the answer is the last request's
        if let Some(last) = self.0.lock().unwrap().last_mut() {
            last.1 = context.response().status().as_u16();
        }
        Ok(())
    }
}

/// The DynamoDB round trips of one event at a time, in order: a SparkLoop event writes its
/// transition with the lease; an event whose rules read stored state reads it only once the
/// lease is ours, so a duplicate reads nothing.
#[tokio::test]
async fn each_event_makes_its_dynamodb_round_trips_in_order() {
    use sparkbridge::adapters::dynamodb::DynamoStore;
    use sparkbridge::core::envelope::{Envelope, Provider};
    let fake = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&fake)
        .await;
    let mut cfg = fast_config();
    cfg.rules.confirm_signups = true;
    let h = harness(&fake.uri(), cfg).await;
    let requests = Requests::default();
    let conf = sparkbridge_tests::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .interceptor(requests.clone())
            .build(),
    );
    let store = Arc::new(DynamoStore::new(client, h.store.table()));
    let worker = sparkbridge::worker::Worker {
        store: store.clone(),
        subscribers: store,
        sparkloop: h.worker.sparkloop.clone(),
        esp: h.worker.esp.clone(),
        queue: h.worker.queue.clone(),
        cfg: h.worker.cfg.clone(),
    };
    let run = |body: String| {
        let (h, worker, requests) = (&h, &worker, &requests);
        async move {
            h.send(&body).await;
            let ev = h.batch().await;
            assert_eq!(ev.records.len(), 1);
            assert!(h.invoke(worker, &ev).await.is_empty());
            requests.take()
        }
    };

    let body = serde_json::json!({
        "type": "new_partner_referral",
        "campaign": {"id": "c1"},
        "subscriber": {"id": "sub_trips", "email": "trips@example.com",
                       "referral_status": "verified", "partner_id": "partner_a"},
        "partner": {"id": "partner_a"}
    })
    .to_string();
    let (id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes()).unwrap();
    let partner = serde_json::to_string(&Envelope::new(
        Provider::Sparkloop,
        id,
        chrono::Utc::now(),
        n,
    ))
    .unwrap();
    assert_eq!(
        run(partner.clone()).await,
        ["TransactWriteItems", "UpdateItem"],
        "the lease and the transition in one transaction, then the completion"
    );
    assert_eq!(
        run(partner).await,
        ["TransactWriteItems", "PutItem"],
        "a duplicate: the transaction is refused, the lease write says why"
    );

    let signup = envelope(
        "loops",
        "contact.created",
        "msg_trips_signup",
        "trips@example.com",
        "{}",
    );
    assert_eq!(
        run(signup.clone()).await,
        ["PutItem", "GetItem", "GetItem", "UpdateItem"],
        "the lease, then when the subscriber left (before the confirm and after it), then \
         the completion"
    );
    assert_eq!(run(signup).await, ["PutItem"], "a duplicate reads nothing");
}
