//! The reconciler after a simulated outage, on moto, against stateful fake SparkLoop and ESP
//! APIs holding deliberately diverged data: pagination, a 429 mid-run, a run cut off and
//! resumed, a dry run that changes nothing, and a second run that repairs nothing. Then its
//! guards: a side whose reads fail (a moved route, a refused key, an API that keeps failing)
//! queues nothing derived from it, and SparkLoop unsubscribes over
//! `RECONCILE_MAX_UNSUBSCRIBE_SHARE` are all refused unless forced.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sparkbridge::adapters::esp::{EsputnikClient, LoopsClient, PropertyNames};
use sparkbridge::adapters::sparkloop::{ClientSettings, SparkLoopClient};
use sparkbridge::adapters::sqs::SqsQueue;
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::reconcile::Side;

use sparkbridge::core::secret::Secret;
use sparkbridge::core::{ReferralStatus, Transition};
use sparkbridge::ingest::to_message;
use sparkbridge::ports::{EspApi, SubscriberStore};
use sparkbridge::reconcile::{Deps, ReconcileConfig, ReconcileError, Refusal, Summary};
use sparkbridge_tests::worker_kit::{fast_config, harness_with, Harness};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The wire name of a SparkLoop unsubscribe repair.
const KIND_RECONCILE_UNSUBSCRIBE: &str = "reconcile.unsubscribe";

#[derive(Clone, Debug)]
struct Ref {
    uuid: String,
    email: String,
    status: &'static str,
    created: DateTime<Utc>,
}

/// SparkLoop: lists referrals newest first with pagination, answers one 429 on the first
/// request for page 2, and applies unsubscribe/reject (a pending referral that unsubscribes
/// is rejected, and SparkLoop then sends `sync_subscriber` — recorded in `webhooks`).
#[derive(Default)]
struct SparkLoopState {
    referrals: Vec<Ref>,
    calls: HashMap<String, usize>,
    webhooks: Vec<Ref>,
    throttled_once: bool,
    list_requests: usize,
    /// From this page on, the list answers this status.
    list_fails_from: Option<(usize, u16)>,
}

struct FakeSparkLoop(Arc<Mutex<SparkLoopState>>);

impl Respond for FakeSparkLoop {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let path = req.url.path().to_string();
        if req.method.as_str() == "GET" {
            st.list_requests += 1;
            let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
            let page: usize = q["page"].parse().unwrap();
            let per: usize = q["per_page"].parse().unwrap();
            if let Some((from, status)) = st.list_fails_from {
                if page >= from {
                    return ResponseTemplate::new(status)
                        .set_body_json(json!({"error": "API key is invalid"}));
                }
            }
            if page == 2 && !st.throttled_once {
                st.throttled_once = true;
                return ResponseTemplate::new(429).insert_header("retry-after", "0");
            }
            let total_pages = st.referrals.len().div_ceil(per);
            let items: Vec<Value> = st
                .referrals
                .iter()
                .skip((page - 1) * per)
                .take(per)
                .map(|r| json!({"uuid": r.uuid, "email": r.email, "referral_status": r.status, "created_at": r.created.to_rfc3339()}))
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({"subscribers": items, "meta": {"page": page, "per_page": per, "total_pages": total_pages}}));
        }
        *st.calls.entry(path.clone()).or_default() += 1;
        let uuid = path.split('/').nth(3).unwrap_or_default().to_string();
        if path.ends_with("/unsubscribe") || path.ends_with("/reject") {
            if let Some(r) = st.referrals.iter_mut().find(|r| r.uuid == uuid) {
                if r.status != "rejected" {
                    r.status = "rejected";
                    let copy = r.clone();
                    st.webhooks.push(copy);
                }
            }
        }
        ResponseTemplate::new(200).set_body_string("{}")
    }
}

/// Loops contacts: find by email and the update upsert.
struct FakeLoops(Arc<Mutex<BTreeMap<String, bool>>>);

impl Respond for FakeLoops {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut contacts = self.0.lock().unwrap();
        if req.method.as_str() == "GET" {
            let email: String = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "email")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            return match contacts.get(&email) {
                Some(sub) => ResponseTemplate::new(200)
                    .set_body_json(json!([{"email": email, "subscribed": sub}])),
                None => ResponseTemplate::new(200).set_body_json(json!([])),
            };
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let email = body["email"].as_str().unwrap().to_string();
        let entry = contacts.entry(email).or_insert(true);
        if let Some(sub) = body.get("subscribed").and_then(Value::as_bool) {
            *entry = sub;
        }
        ResponseTemplate::new(200).set_body_json(json!({"success": true, "id": "c"}))
    }
}

struct World {
    h: Harness,
    sparkloop: Arc<Mutex<SparkLoopState>>,
    sl_client: SparkLoopClient,
    esp: Arc<dyn EspApi>,
    queue: SqsQueue,
    /// SparkLoop's fake, then the ESP's.
    servers: Vec<MockServer>,
}

/// The runs' settings in these tests: small pages, short back-off.
fn cfg() -> ReconcileConfig {
    ReconcileConfig {
        per_page: 50,
        base_delay: Duration::from_millis(10),
        ..Default::default()
    }
}

impl World {
    async fn run(&self, dry_run: bool, cfg: ReconcileConfig) -> Result<Summary, ReconcileError> {
        let deps = Deps {
            sparkloop: &self.sl_client,
            esp: self.esp.as_ref(),
            store: self.h.store.as_ref(),
            queue: &self.queue,
        };
        sparkbridge::reconcile::run(&deps, &cfg, Utc::now(), dry_run, None, &|_| {}).await
    }

    /// A run an operator forces after an outage (more unsubscribes than the share allows).
    async fn reconcile(&self, dry_run: bool, max_pages: Option<u32>) -> Summary {
        self.run(
            dry_run,
            ReconcileConfig {
                max_pages,
                force: true,
                ..cfg()
            },
        )
        .await
        .unwrap()
    }

    /// The kinds of the envelopes on the queue (consumed).
    async fn queued_kinds(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for q in sparkbridge_tests::drain(&self.h.sqs, &self.h.queue_url).await {
            *kinds.entry(q.envelope.kind.to_string()).or_default() += 1;
        }
        kinds
    }

    /// SparkLoop's own webhooks for the changes the repairs caused.
    async fn deliver_sparkloop_webhooks(&self) {
        let hooks: Vec<Ref> = std::mem::take(&mut self.sparkloop.lock().unwrap().webhooks);
        for r in hooks {
            let body = json!({"type": "sync_subscriber", "subscriber": {"id": r.uuid, "email": r.email, "referral_status": "rejected"}}).to_string();
            let (id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes()).unwrap();
            self.h
                .send(&to_message(&Envelope::new(Provider::Sparkloop, id, Utc::now(), n)).body)
                .await;
        }
        self.h.run_until_empty().await;
    }
}

fn loops_client(server: &MockServer) -> Arc<dyn EspApi> {
    Arc::new(LoopsClient::new(
        &server.uri(),
        Secret::new("lk"),
        PropertyNames::default(),
        &ClientSettings::default(),
        1_000,
    ))
}

async fn world(
    esp_for: impl FnOnce(&MockServer) -> Arc<dyn EspApi>,
    esp_responder: impl Respond + 'static,
    referrals: Vec<Ref>,
) -> World {
    let sparkloop = Arc::new(Mutex::new(SparkLoopState {
        referrals,
        ..Default::default()
    }));
    let sl_server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(FakeSparkLoop(sparkloop.clone()))
        .mount(&sl_server)
        .await;
    let esp_server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(esp_responder)
        .mount(&esp_server)
        .await;
    let esp = esp_for(&esp_server);
    let h = harness_with(&sl_server.uri(), esp.clone(), fast_config()).await;
    let settings = ClientSettings {
        rate_per_min: 60_000,
        ..ClientSettings::default()
    };
    let sl_client = SparkLoopClient::new(&sl_server.uri(), Secret::new("k"), &settings);
    let queue = SqsQueue::new(h.sqs.clone(), h.queue_url.clone(), 262_144);
    World {
        h,
        sparkloop,
        sl_client,
        esp,
        queue,
        servers: vec![sl_server, esp_server],
    }
}

fn transition(email: &str, uuid: &str, status: ReferralStatus) -> Transition {
    Transition {
        email: email.into(),
        status,
        sparkloop_id: Some(uuid.into()),
        campaign_id: None,
        partner_id: None,
        source: None,
        screening: None,
        at: Utc::now(),
        cause: "test setup".into(),
    }
}

#[tokio::test]
async fn loops_outage_is_repaired_exactly_once() {
    // 300 referrals, newest first; 4 kinds of divergence, 30 each; the rest agree.
    let now = Utc::now();
    let mut referrals = Vec::new();
    let mut contacts = BTreeMap::new();
    let mut local: Vec<(String, String, ReferralStatus)> = Vec::new();
    for i in 0..300 {
        let email = format!("r{i:03}@example.com");
        let uuid = format!("sub_{i:03}");
        let created = now - chrono::Duration::minutes(i as i64);
        let (status, esp, ours) = match i % 10 {
            0 => ("pending", Some(false), Some(ReferralStatus::Pending)), // unsubscribed in Loops, SparkLoop not told
            1 => ("rejected", Some(true), Some(ReferralStatus::Pending)), // rejection webhook lost
            2 => ("pending", None, None),                                 // pending webhook lost
            3 => ("verified", Some(true), Some(ReferralStatus::Pending)), // verification webhook lost
            4 => ("rejected", Some(false), Some(ReferralStatus::Rejected)),
            5 | 6 => ("verified", Some(true), Some(ReferralStatus::Verified)),
            _ => ("pending", Some(true), Some(ReferralStatus::Pending)),
        };
        referrals.push(Ref {
            uuid: uuid.clone(),
            email: email.clone(),
            status,
            created,
        });
        if let Some(sub) = esp {
            contacts.insert(email.clone(), sub);
        }
        if let Some(s) = ours {
            local.push((email, uuid, s));
        }
    }
    // one very old referral beyond the horizon: never looked at
    referrals.push(Ref {
        uuid: "sub_old".into(),
        email: "old@example.com".into(),
        status: "pending",
        created: now - chrono::Duration::days(90),
    });
    let contacts = Arc::new(Mutex::new(contacts));
    let w = world(loops_client, FakeLoops(contacts.clone()), referrals).await;
    for (email, uuid, s) in &local {
        w.h.store
            .apply_transition(&transition(email, uuid, *s))
            .await
            .unwrap();
    }

    // a dry run reports and changes nothing
    let before = contacts.lock().unwrap().clone();
    let dry = w.reconcile(true, None).await;
    assert_eq!(dry.checked, 300);
    assert_eq!(dry.total_repaired(), 120);
    assert_eq!(dry.repairs.len(), 120, "each repair listed");
    assert!(dry
        .repairs
        .iter()
        .any(|l| l.starts_with("esp_add sub_002 r***@e***.com (SparkLoop pending, ESP absent)")),
        "{:?}", &dry.repairs[..3]);
    assert!(w.h.batch().await.records.is_empty(), "nothing queued");
    assert_eq!(*contacts.lock().unwrap(), before, "ESP unchanged");
    assert!(
        w.sparkloop.lock().unwrap().calls.is_empty(),
        "SparkLoop unchanged"
    );

    // a run cut off after 3 pages, then resumed
    let first = w.reconcile(false, Some(3)).await;
    assert!(!first.complete);
    assert_eq!(first.checked, 150);
    // a dry run in between shows the whole window, and leaves the checkpoint alone
    let look = w.reconcile(true, None).await;
    assert_eq!((look.resumed_from_page, look.checked), (None, 300));
    let second = w.reconcile(false, None).await;
    assert!(second.complete);
    assert_eq!(second.resumed_from_page, Some(4));
    let mut repaired = first.repaired.clone();
    for (k, v) in &second.repaired {
        *repaired.entry(k.clone()).or_default() += v;
    }
    assert_eq!(
        repaired,
        BTreeMap::from([
            ("esp_add".to_string(), 30),
            ("esp_unsubscribe".to_string(), 30),
            ("sparkloop_unsubscribe".to_string(), 30),
            ("state_correction".to_string(), 30)
        ])
    );
    assert_eq!(first.checked + second.checked, 300);
    assert!(
        w.sparkloop.lock().unwrap().throttled_once,
        "the 429 was met and retried"
    );

    // the worker applies the repairs; SparkLoop answers with its own webhooks
    w.h.run_until_empty().await;
    w.deliver_sparkloop_webhooks().await;
    {
        let sl = w.sparkloop.lock().unwrap();
        let unsubscribes: Vec<_> = sl
            .calls
            .iter()
            .filter(|(p, _)| p.ends_with("/unsubscribe"))
            .collect();
        assert_eq!(unsubscribes.len(), 30);
        assert!(
            unsubscribes.iter().all(|(_, n)| **n == 1),
            "each exactly once"
        );
    }
    {
        let c = contacts.lock().unwrap();
        for i in (0..300).filter(|i| i % 10 == 1) {
            assert!(
                !c[&format!("r{i:03}@example.com")],
                "rejected referrals unsubscribed"
            );
        }
        for i in (0..300).filter(|i| i % 10 == 2) {
            assert!(
                c[&format!("r{i:03}@example.com")],
                "missing referrals added"
            );
        }
    }
    for i in (0..300).filter(|i| i % 10 == 3) {
        let s =
            w.h.store
                .get(&format!("r{i:03}@example.com"))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            s.referral_status,
            Some(ReferralStatus::Verified),
            "state corrected"
        );
    }

    // everything agrees now: a second run repairs nothing
    let again = w.reconcile(false, None).await;
    assert_eq!(again.total_repaired(), 0, "{:?}", again.repaired);
    assert_eq!(again.in_agreement, 300);
    assert!(again.reported.is_empty());
}

/// eSputnik contacts: search by email; unsubscribe adds to the unsubscribed list.
struct FakeEsputnik(Arc<Mutex<BTreeMap<String, bool>>>);

impl Respond for FakeEsputnik {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut contacts = self.0.lock().unwrap();
        let path = req.url.path();
        if req.method.as_str() == "GET" {
            let email: String = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "email")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            return match contacts.get(&email) {
                Some(sub) => ResponseTemplate::new(200).set_body_json(json!([{"id": 1, "channels": [{"type": "email", "value": email, "status": if *sub { "active" } else { "unsubscribed" }}]}])),
                None => ResponseTemplate::new(200).set_body_json(json!([])),
            };
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        if path.ends_with("/emails/unsubscribed/add") {
            for e in body["emails"].as_array().unwrap() {
                contacts.insert(e.as_str().unwrap().to_string(), false);
            }
        } else {
            // `POST /contacts` (a list, matched on email) or `POST /contact` (one)
            let contact = body.pointer("/contacts/0").unwrap_or(&body);
            let email = contact["channels"][0]["value"]
                .as_str()
                .unwrap()
                .to_string();
            contacts.entry(email).or_insert(true);
        }
        ResponseTemplate::new(200).set_body_json(json!({"id": 1}))
    }
}

#[tokio::test]
async fn esputnik_outage_is_repaired() {
    let now = Utc::now();
    let referrals = vec![
        Ref {
            uuid: "sub_a".into(),
            email: "a@example.com".into(),
            status: "rejected",
            created: now,
        },
        Ref {
            uuid: "sub_b".into(),
            email: "b@example.com".into(),
            status: "pending",
            created: now,
        },
        Ref {
            uuid: "sub_c".into(),
            email: "c@example.com".into(),
            status: "pending",
            created: now,
        },
    ];
    let contacts = Arc::new(Mutex::new(BTreeMap::from([
        ("a@example.com".to_string(), true),
        ("c@example.com".to_string(), false),
    ])));
    let w = world(
        |server| {
            Arc::new(EsputnikClient::new(
                &server.uri(),
                Secret::new("ek"),
                BTreeMap::new(),
                &ClientSettings::default(),
                1_000,
            ))
        },
        FakeEsputnik(contacts.clone()),
        referrals,
    )
    .await;
    for (e, u) in [("a@example.com", "sub_a"), ("c@example.com", "sub_c")] {
        w.h.store
            .apply_transition(&transition(e, u, ReferralStatus::Pending))
            .await
            .unwrap();
    }
    let s = w.reconcile(false, None).await;
    assert_eq!(s.repaired.get("esp_unsubscribe"), Some(&1));
    assert_eq!(s.repaired.get("esp_add"), Some(&1));
    assert_eq!(s.repaired.get("sparkloop_unsubscribe"), Some(&1));
    w.h.run_until_empty().await;
    w.deliver_sparkloop_webhooks().await;
    let c = contacts.lock().unwrap().clone();
    assert!(!c["a@example.com"]);
    assert!(c["b@example.com"]);
    assert_eq!(w.reconcile(false, None).await.total_repaired(), 0);
}

/// Answers 400 to the writes that name one of `refused` (an add the ESP refuses, parked by
/// the worker); everything else goes to the fake behind it.
struct Refusing<R>(R, Vec<String>);

impl<R: Respond> Respond for Refusing<R> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&req.body);
        if req.method.as_str() != "GET" && self.1.iter().any(|e| body.contains(e.as_str())) {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"success": false, "message": "Invalid contact property"}));
        }
        self.0.respond(req)
    }
}

/// Two pending referrals both absent from Loops: one was added through the worker and later
/// deleted there (SparkLoop must hear of it), the other's add was refused and parked (it is
/// added again, and SparkLoop is never told to drop a referral that was never in the ESP).
#[tokio::test]
async fn a_parked_add_is_repaired_by_adding_never_by_unsubscribing() {
    let now = Utc::now();
    let referral = |n: &str| Ref {
        uuid: format!("sub_{n}"),
        email: format!("{n}@example.com"),
        status: "pending",
        created: now,
    };
    let (deleted, refused) = (referral("deleted"), referral("refused"));
    let contacts = Arc::new(Mutex::new(BTreeMap::new()));
    let w = world(
        loops_client,
        Refusing(FakeLoops(contacts.clone()), vec![refused.email.clone()]),
        vec![deleted.clone(), refused.clone()],
    )
    .await;
    for r in [&deleted, &refused] {
        let body = json!({"type": "new_partner_pending_referral", "subscriber": {"id": r.uuid, "email": r.email, "referral_status": "pending"}}).to_string();
        let (id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes()).unwrap();
        w.h.send(&to_message(&Envelope::new(Provider::Sparkloop, id, now, n)).body)
            .await;
    }
    w.h.run_until_empty().await;
    let parked_msgs = w.h.dlq().await; // received: hidden from the next look
    assert_eq!(parked_msgs.len(), 1, "the refused add is parked");
    assert!(parked_msgs[0].body().unwrap().contains(&refused.email));
    let added = w.h.store.get(&deleted.email).await.unwrap().unwrap();
    assert_eq!(
        added.esp_status.as_deref(),
        Some("added (new_partner_pending_referral)")
    );
    let parked = w.h.store.get(&refused.email).await.unwrap().unwrap();
    assert_eq!(parked.referral_status, Some(ReferralStatus::Pending));
    assert_eq!(
        parked.esp_status, None,
        "no ESP status without a successful call"
    );
    // the publisher deletes the added contact in Loops
    assert_eq!(contacts.lock().unwrap().remove(&deleted.email), Some(true));

    let summary = w.reconcile(false, None).await;
    assert_eq!(
        summary.repaired,
        BTreeMap::from([
            ("esp_add".to_string(), 1),
            ("sparkloop_unsubscribe".to_string(), 1)
        ])
    );
    w.h.run_until_empty().await;
    let unsubscribed: Vec<String> = w
        .sparkloop
        .lock()
        .unwrap()
        .calls
        .keys()
        .filter(|p| p.ends_with("/unsubscribe"))
        .cloned()
        .collect();
    assert_eq!(
        unsubscribed,
        [format!("/v2/subscribers/{}/unsubscribe", deleted.uuid)]
    );
    let again = w.h.dlq().await;
    assert_eq!(
        again.len(),
        1,
        "the repeated add is refused and parked again"
    );
    assert!(again[0].body().unwrap().contains(&refused.email));
}

/// Makes the fake ESP's lookups (its GETs) answer `answer` after `after` of them; writes
/// still reach the fake behind it.
#[derive(Default)]
struct Breakage {
    answer: Option<u16>,
    after: usize,
    lookups: usize,
}

struct Breakable<R>(R, Arc<Mutex<Breakage>>);

impl<R: Respond> Respond for Breakable<R> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if req.method.as_str() == "GET" {
            let mut b = self.1.lock().unwrap();
            b.lookups += 1;
            if let Some(status) = b.answer.filter(|_| b.lookups > b.after) {
                return ResponseTemplate::new(status)
                    .set_body_string("<!DOCTYPE html><html><body>Cannot GET</body></html>");
            }
        }
        self.0.respond(req)
    }
}

fn pending(prefix: &str, n: usize) -> Vec<Ref> {
    let now = Utc::now();
    (0..n)
        .map(|i| Ref {
            uuid: format!("sub_{prefix}{i:02}"),
            email: format!("{prefix}{i:02}@example.com"),
            status: "pending",
            created: now - chrono::Duration::minutes(i as i64),
        })
        .collect()
}

/// The settings under which nothing but a failing side can refuse.
fn forced() -> ReconcileConfig {
    ReconcileConfig {
        force: true,
        max_unsubscribe_share: 1.0,
        ..cfg()
    }
}

fn reads_failed(err: &ReconcileError) -> (Side, &str, Option<u16>, Option<&str>, u32) {
    match err {
        ReconcileError::Refused {
            refusal:
                Refusal::ReadsFailed {
                    side,
                    api,
                    status,
                    url,
                    failed_in_a_row,
                    ..
                },
            summary,
        } => {
            assert_eq!(summary.refused.as_ref(), err_refusal(err));
            (
                *side,
                api.as_str(),
                *status,
                url.as_deref(),
                *failed_in_a_row,
            )
        }
        other => panic!("not a failed side: {other}"),
    }
}

fn err_refusal(err: &ReconcileError) -> Option<&Refusal> {
    match err {
        ReconcileError::Refused { refusal, .. } => Some(refusal),
        _ => None,
    }
}

fn summary_of(err: &ReconcileError) -> &Summary {
    err.summary().expect("a refused run has a summary")
}

/// Twenty pending referrals, each added to Loops through the worker, so that a contact read
/// as absent would be one deleted there and SparkLoop would be told to drop the referral.
/// Then Loops answers 404 to every lookup (a moved route): the run stops at the first,
/// queues nothing, and names the side, the status and the URL. Forcing changes nothing.
#[tokio::test]
async fn esp_answering_404_to_every_lookup_queues_no_sparkloop_unsubscribe() {
    let referrals = pending("p", 20);
    let contacts = Arc::new(Mutex::new(BTreeMap::new()));
    let breakage = Arc::new(Mutex::new(Breakage::default()));
    let w = world(
        loops_client,
        Breakable(FakeLoops(contacts.clone()), breakage.clone()),
        referrals.clone(),
    )
    .await;
    for r in &referrals {
        let body = json!({"type": "new_partner_pending_referral", "subscriber": {"id": r.uuid, "email": r.email, "referral_status": "pending"}}).to_string();
        let (id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes()).unwrap();
        w.h.send(&to_message(&Envelope::new(Provider::Sparkloop, id, Utc::now(), n)).body)
            .await;
    }
    w.h.run_until_empty().await;
    for r in &referrals {
        let s = w.h.store.get(&r.email).await.unwrap().unwrap();
        assert!(
            s.esp_status.is_some(),
            "{} added through the worker",
            r.email
        );
    }

    breakage.lock().unwrap().answer = Some(404);
    let lookup_url = format!("{}/api/v1/contacts/find", w.servers[1].uri());
    for cfg in [cfg(), forced()] {
        let err = w.run(false, cfg).await.unwrap_err();
        assert_eq!(
            reads_failed(&err),
            (Side::Esp, "loops", Some(404), Some(lookup_url.as_str()), 1)
        );
        let summary = summary_of(&err);
        assert_eq!(summary.total_repaired(), 0, "{:?}", summary.repaired);
        assert_eq!(summary.failed, 1, "stopped at the first failed lookup");
        let text = err.to_string();
        for needle in ["ESP lookups failed", "HTTP 404", lookup_url.as_str()] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }
    assert!(
        breakage.lock().unwrap().lookups <= 20 + 2 * 8,
        "at most a page's concurrent lookups per run after the route moved"
    );
    assert!(w.queued_kinds().await.is_empty(), "nothing queued");
    w.h.run_until_empty().await;
    assert!(
        !w.sparkloop
            .lock()
            .unwrap()
            .calls
            .keys()
            .any(|p| p.ends_with("/unsubscribe")),
        "SparkLoop told nothing"
    );

    // had the 404s read as "absent", each of these referrals would have been dropped:
    // the same contacts really deleted in Loops are what a (forced) run unsubscribes
    breakage.lock().unwrap().answer = None;
    contacts.lock().unwrap().clear();
    let s = w.run(false, forced()).await.unwrap();
    assert_eq!(s.repaired.get("sparkloop_unsubscribe"), Some(&20));
}

/// Loops failing with 503 on every lookup: each lookup is retried, and three failed in a row
/// stop the side before anything is queued.
#[tokio::test]
async fn esp_failing_with_5xx_stops_after_three_failed_lookups_in_a_row() {
    let referrals = pending("f", 10);
    let contacts: BTreeMap<String, bool> =
        referrals.iter().map(|r| (r.email.clone(), false)).collect();
    let breakage = Arc::new(Mutex::new(Breakage {
        answer: Some(503),
        ..Default::default()
    }));
    let w = world(
        loops_client,
        Breakable(FakeLoops(Arc::new(Mutex::new(contacts))), breakage.clone()),
        referrals,
    )
    .await;
    let err = w
        .run(
            false,
            ReconcileConfig {
                attempts: 2,
                base_delay: Duration::from_millis(1),
                ..forced()
            },
        )
        .await
        .unwrap_err();
    let (side, _, status, _, in_a_row) = reads_failed(&err);
    assert_eq!((side, status, in_a_row), (Side::Esp, Some(503), 3));
    assert_eq!(summary_of(&err).failed, 3);
    assert!(
        breakage.lock().unwrap().lookups >= 6,
        "each failed lookup was retried"
    );
    assert!(w.queued_kinds().await.is_empty(), "nothing queued");
}

/// Pages of 5; Loops refuses the key from the sixth lookup on (page 2). The page-1 add was
/// queued with its page; the page-1 SparkLoop unsubscribe, held for the end of the run, is
/// not; and the checkpoint never moved past it, so the next run finds it again.
#[tokio::test]
async fn an_esp_failing_mid_run_drops_the_unsubscribes_it_held() {
    let referrals = pending("m", 10);
    let mut contacts = BTreeMap::new();
    for (i, r) in referrals.iter().enumerate() {
        match i {
            0 => drop(contacts.insert(r.email.clone(), false)), // unsubscribed in Loops
            1 => {}                                             // never added
            _ => drop(contacts.insert(r.email.clone(), true)),
        }
    }
    let breakage = Arc::new(Mutex::new(Breakage {
        answer: Some(401),
        after: 5,
        ..Default::default()
    }));
    let w = world(
        loops_client,
        Breakable(FakeLoops(Arc::new(Mutex::new(contacts))), breakage.clone()),
        referrals.clone(),
    )
    .await;
    for r in referrals.iter().skip(2) {
        w.h.store
            .apply_transition(&transition(&r.email, &r.uuid, ReferralStatus::Pending))
            .await
            .unwrap();
    }
    let pages_of_5 = || ReconcileConfig {
        per_page: 5,
        ..forced()
    };
    let err = w.run(false, pages_of_5()).await.unwrap_err();
    assert_eq!(reads_failed(&err).2, Some(401));
    let summary = summary_of(&err);
    assert_eq!(
        summary.repaired,
        BTreeMap::from([("esp_add".to_string(), 1)])
    );
    assert_eq!(
        summary.not_queued,
        BTreeMap::from([("sparkloop_unsubscribe".to_string(), 1)])
    );
    assert_eq!(
        w.queued_kinds().await,
        BTreeMap::from([("reconcile.esp_add".to_string(), 1)])
    );

    breakage.lock().unwrap().answer = None;
    let again = w.run(false, pages_of_5()).await.unwrap();
    assert_eq!(again.resumed_from_page, None, "started again from page 1");
    assert!(again.complete);
    assert_eq!(again.repaired.get("sparkloop_unsubscribe"), Some(&1));
    assert_eq!(
        w.queued_kinds().await.get(KIND_RECONCILE_UNSUBSCRIBE),
        Some(&1)
    );
}

/// SparkLoop refuses the key on page 2: the run stops, names SparkLoop, the status and the
/// URL, and queues none of the unsubscribes page 1 found.
#[tokio::test]
async fn sparkloop_list_failing_mid_run_queues_none_of_the_unsubscribes_found() {
    let referrals = pending("l", 60);
    let contacts: BTreeMap<String, bool> = referrals
        .iter()
        .enumerate()
        .map(|(i, r)| (r.email.clone(), i >= 3))
        .collect();
    let w = world(
        loops_client,
        FakeLoops(Arc::new(Mutex::new(contacts))),
        referrals.clone(),
    )
    .await;
    for r in referrals.iter().skip(3) {
        w.h.store
            .apply_transition(&transition(&r.email, &r.uuid, ReferralStatus::Pending))
            .await
            .unwrap();
    }
    w.sparkloop.lock().unwrap().list_fails_from = Some((2, 401));
    let err = w.run(false, forced()).await.unwrap_err();
    let list_url = format!("{}/v2/subscribers", w.servers[0].uri());
    assert_eq!(
        reads_failed(&err),
        (
            Side::Sparkloop,
            "sparkloop",
            Some(401),
            Some(list_url.as_str()),
            1
        )
    );
    assert_eq!(
        summary_of(&err).not_queued,
        BTreeMap::from([("sparkloop_unsubscribe".to_string(), 3)])
    );
    assert!(err.to_string().contains("SparkLoop's referral list failed"));
    assert!(w.queued_kinds().await.is_empty(), "nothing queued");
}

/// 40 pending referrals: the first `unsubscribed` unsubscribed in Loops (SparkLoop not told),
/// the last two never added (ESP adds), the rest in agreement.
async fn share_world(unsubscribed: usize) -> World {
    let referrals = pending("s", 40);
    let mut contacts = BTreeMap::new();
    let mut agreeing = Vec::new();
    for (i, r) in referrals.iter().enumerate() {
        if i < unsubscribed {
            contacts.insert(r.email.clone(), false);
        } else if i < 38 {
            contacts.insert(r.email.clone(), true);
            agreeing.push(r.clone());
        }
    }
    let w = world(
        loops_client,
        FakeLoops(Arc::new(Mutex::new(contacts))),
        referrals,
    )
    .await;
    for r in agreeing {
        w.h.store
            .apply_transition(&transition(&r.email, &r.uuid, ReferralStatus::Pending))
            .await
            .unwrap();
    }
    w
}

#[tokio::test]
async fn unsubscribes_over_the_share_are_all_refused_and_reported() {
    let w = share_world(4).await; // 10% of 40, over the default 5%
    let expected = Refusal::UnsubscribeShare {
        unsubscribes: 4,
        compared: 40,
        max_share: 0.05,
    };
    // a dry run refuses what a run would
    let dry = w.run(true, cfg()).await.unwrap_err();
    assert_eq!(err_refusal(&dry), Some(&expected));
    assert_eq!(summary_of(&dry).not_queued_repairs.len(), 4);

    let err = w.run(false, cfg()).await.unwrap_err();
    assert_eq!(err_refusal(&err), Some(&expected));
    let summary = summary_of(&err);
    assert_eq!(
        summary.repaired,
        BTreeMap::from([("esp_add".to_string(), 2)])
    );
    assert_eq!(
        summary.not_queued,
        BTreeMap::from([("sparkloop_unsubscribe".to_string(), 4)])
    );
    let text = err.to_string();
    for needle in [
        "4 SparkLoop unsubscribes for 40 referrals compared (10.0%)",
        "RECONCILE_MAX_UNSUBSCRIBE_SHARE (5.0%)",
        "--force",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert_eq!(
        w.queued_kinds().await,
        BTreeMap::from([("reconcile.esp_add".to_string(), 2)]),
        "the ESP adds, and none of the unsubscribes"
    );
}

#[tokio::test]
async fn with_force_unsubscribes_over_the_share_are_queued() {
    let w = share_world(4).await;
    let s = w
        .run(
            false,
            ReconcileConfig {
                force: true,
                ..cfg()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.refused, None);
    assert_eq!(s.repaired.get("sparkloop_unsubscribe"), Some(&4));
    assert_eq!(
        w.queued_kinds().await,
        BTreeMap::from([
            ("reconcile.esp_add".to_string(), 2),
            (KIND_RECONCILE_UNSUBSCRIBE.to_string(), 4)
        ])
    );
}

#[tokio::test]
async fn unsubscribes_within_the_share_are_queued() {
    let w = share_world(2).await; // 5% of 40: at the default share, allowed
    let s = w.run(false, cfg()).await.unwrap();
    assert_eq!(s.repaired.get("sparkloop_unsubscribe"), Some(&2));
    assert_eq!(
        w.queued_kinds().await,
        BTreeMap::from([
            ("reconcile.esp_add".to_string(), 2),
            (KIND_RECONCILE_UNSUBSCRIBE.to_string(), 2)
        ])
    );
}
