//! The subscriber lifecycle end to end on moto: SparkLoop webhooks -> ESP calls, engagement
//! -> screening -> SparkLoop reject -> sync_subscriber rejected -> ESP unsubscribe, every
//! ordering case, for Loops and eSputnik.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sparkbridge::adapters::esp::{EsputnikClient, LoopsClient, PropertyNames};
use sparkbridge::adapters::sparkloop::ClientSettings;
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::lifecycle::Criteria;
use sparkbridge::core::secret::Secret;
use sparkbridge::core::ReferralStatus;
use sparkbridge::ingest::to_message;
use sparkbridge::ports::{EventQueue, SubscriberStore};
use sparkbridge::screener::ScreeningConfig;
use sparkbridge_tests::worker_kit::{fast_config, harness_with, Harness};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CREATED: i64 = 1_764_000_000; // when the referral entered screening

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn partner_event(kind: &str, email: &str, sub_id: &str, status: &str, created: i64) -> Envelope {
    let body = json!({
        "type": kind,
        "campaign": {"id": "partner_campaign_1", "upscribe": true, "partner_program_id": "pp_1"},
        "subscriber": {"id": sub_id, "email": email, "first_name": "Ann", "referral_status": status,
                        "partner_id": "partner_a", "referral_code": "c0de", "created_at": created},
        "partner": {"id": "partner_a", "name": "Partner A"}
    })
    .to_string();
    let (id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes()).unwrap();
    Envelope::new(Provider::Sparkloop, id, Utc::now(), n)
}

fn loops_event(kind: &str, email: &str, send_id: &str, time: i64) -> Envelope {
    let body = json!({"eventName": kind, "eventTime": time, "webhookSchemaVersion": "1.0.0",
        "sourceType": "campaign", "campaignId": "c1", "email": {"id": send_id, "emailMessageId": "m", "subject": "s"},
        "contactIdentity": {"id": "cid", "email": email, "userId": null}})
    .to_string();
    let n = sparkbridge::core::loops::parse(body.as_bytes()).unwrap();
    Envelope::new(
        Provider::Loops,
        format!("msg_{kind}_{email}_{send_id}_{time}"),
        Utc::now(),
        n,
    )
}

/// eSputnik activity events as one webhook array, split as ingest splits it.
fn esputnik_events(email: &str, activities: &[(&str, &str, i64)]) -> Vec<Envelope> {
    let body: Vec<Value> = activities
        .iter()
        .map(|(status, message, time)| {
            json!({"activityStatus": status, "contactId": 42, "email": email, "mediaType": "email",
                   "iid": message, "messageInstanceId": message,
                   "activityDateTime": at(*time).format("%Y-%m-%dT%H:%M:%S").to_string()})
        })
        .collect();
    let text = serde_json::to_vec(&body).unwrap();
    sparkbridge::core::esputnik::split(&text, chrono_tz::Tz::UTC)
        .into_iter()
        .map(|el| Envelope::new(Provider::Esputnik, el.dedupe_id, Utc::now(), el.event))
        .collect()
}

async fn fakes() -> (MockServer, MockServer) {
    let sparkloop = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&sparkloop)
        .await;
    let esp = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/contacts/update"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"success":true,"id":"x"}"#))
        .mount(&esp)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"id":1}"#))
        .mount(&esp)
        .await;
    (sparkloop, esp)
}

async fn loops_harness(sparkloop: &MockServer, esp: &MockServer) -> Harness {
    let client = LoopsClient::new(
        &esp.uri(),
        Secret::new("loops-key"),
        PropertyNames::default(),
        &ClientSettings::default(),
        100,
    );
    harness_with(&sparkloop.uri(), Arc::new(client), fast_config()).await
}

async fn esputnik_harness(sparkloop: &MockServer, esp: &MockServer) -> Harness {
    let ids = BTreeMap::from([("status".to_string(), 501i64)]);
    let client = EsputnikClient::new(
        &esp.uri(),
        Secret::new("esp-key"),
        ids,
        &ClientSettings::default(),
        100,
    );
    harness_with(&sparkloop.uri(), Arc::new(client), fast_config()).await
}

async fn deliver(h: &Harness, events: &[Envelope]) {
    for e in events {
        h.send(&to_message(e).body).await;
        h.run_until_empty().await;
    }
}

async fn bodies(server: &MockServer) -> Vec<(String, String, Value)> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_string(),
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn store(h: &Harness) -> Arc<dyn SubscriberStore> {
    h.store.clone()
}

#[tokio::test]
async fn loops_pending_then_opens_then_verified() {
    let (sparkloop, esp) = fakes().await;
    let h = loops_harness(&sparkloop, &esp).await;
    let email = "ref1@example.com";
    deliver(
        &h,
        &[partner_event(
            "new_partner_pending_referral",
            email,
            "sub_1",
            "pending",
            CREATED,
        )],
    )
    .await;
    let calls = bodies(&esp).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].2,
        json!({"email": email, "firstName": "Ann", "source": "sparkloop-upscribe", "sparkloopStatus": "pending",
        "sparkloopSource": "sparkloop-upscribe", "sparkloopId": "sub_1", "sparkloopPartner": "Partner A", "sparkloopCampaign": "partner_campaign_1",
        "sparkloopReferralCode": "c0de"})
    );
    assert_eq!(
        esp.received_requests().await.unwrap()[0]
            .headers
            .get("authorization")
            .unwrap(),
        "Bearer loops-key"
    );
    let s = store(&h).get(email).await.unwrap().unwrap();
    assert_eq!(s.referral_status, Some(ReferralStatus::Pending));
    assert_eq!(s.screening_deadline, Some(at(CREATED) + Duration::days(14)));
    assert_eq!(s.source.as_deref(), Some("sparkloop-upscribe"));

    deliver(
        &h,
        &[
            loops_event("email.delivered", email, "send_1", CREATED + 100),
            loops_event("email.opened", email, "send_1", CREATED + 200),
            loops_event("email.clicked", email, "send_1", CREATED + 300),
        ],
    )
    .await;
    let s = store(&h).get(email).await.unwrap().unwrap();
    assert_eq!(s.signals.len(), 3);
    assert_eq!(
        s.count_since(sparkbridge::core::Signal::Open, at(CREATED)),
        1
    );

    deliver(
        &h,
        &[partner_event(
            "new_partner_referral",
            email,
            "sub_1",
            "verified",
            CREATED,
        )],
    )
    .await;
    let calls = bodies(&esp).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].2["sparkloopStatus"], "verified");
    assert!(
        calls[1].2.get("subscribed").is_none(),
        "never re-subscribes"
    );
    let s = store(&h).get(email).await.unwrap().unwrap();
    assert_eq!(s.referral_status, Some(ReferralStatus::Verified));
    assert!(s
        .history
        .iter()
        .any(|l| l.contains("verified (new_partner_referral)")));
    // verified referrals leave the screening index
    assert!(store(&h)
        .screening_candidates(at(CREATED) + Duration::days(30))
        .await
        .unwrap()
        .is_empty());
    assert!(
        sparkloop.received_requests().await.unwrap().is_empty(),
        "no SparkLoop call for an engaged referral"
    );
}

#[tokio::test]
async fn loops_no_engagement_is_rejected_and_then_unsubscribed() {
    let (sparkloop, esp) = fakes().await;
    let h = loops_harness(&sparkloop, &esp).await;
    let email = "idle@example.com";
    deliver(
        &h,
        &[partner_event(
            "new_partner_pending_referral",
            email,
            "sub_idle",
            "pending",
            CREATED,
        )],
    )
    .await;
    deliver(
        &h,
        &[loops_event(
            "email.delivered",
            email,
            "send_1",
            CREATED + 100,
        )],
    )
    .await;

    let cfg = ScreeningConfig {
        enabled: true,
        criteria: Criteria {
            min_clicks: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let queue: Arc<dyn EventQueue> = Arc::new(sparkbridge::adapters::sqs::SqsQueue::new(
        h.sqs.clone(),
        h.queue_url.clone(),
        262_144,
    ));
    let now = at(CREATED) + Duration::days(14) - Duration::hours(2);
    let dry = sparkbridge::screener::run(&store(&h), &queue, &cfg, now, true)
        .await
        .unwrap();
    assert_eq!(
        dry.rejected,
        vec![(email.to_string(), "clicks 0/1".to_string())]
    );
    assert_eq!(
        h.batch().await.records.len(),
        0,
        "the dry run queues nothing"
    );

    let report = sparkbridge::screener::run(&store(&h), &queue, &cfg, now, false)
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1);
    h.run_until_empty().await;
    let reqs = sparkloop.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].url.path(), "/v2/subscribers/sub_idle/reject");
    // a second run finds nothing: the referral left the screening index
    let again = sparkbridge::screener::run(&store(&h), &queue, &cfg, now, false)
        .await
        .unwrap();
    assert_eq!((again.checked, again.rejected.len()), (0, 0));

    // SparkLoop confirms the rejection: the contact must be unsubscribed in Loops
    deliver(
        &h,
        &[partner_event(
            "sync_subscriber",
            email,
            "sub_idle",
            "rejected",
            CREATED,
        )],
    )
    .await;
    let calls = bodies(&esp).await;
    let last = &calls.last().unwrap().2;
    assert_eq!(last["subscribed"], false);
    assert_eq!(last["sparkloopStatus"], "rejected");
    assert_eq!(
        store(&h).get(email).await.unwrap().unwrap().referral_status,
        Some(ReferralStatus::Rejected)
    );
}

#[tokio::test]
async fn late_and_repeated_events_never_move_state_backwards() {
    let (sparkloop, esp) = fakes().await;
    let h = loops_harness(&sparkloop, &esp).await;
    let email = "late@example.com";
    // rejected at once by SparkLoop, then the pending webhook arrives late
    deliver(
        &h,
        &[
            partner_event("sync_subscriber", email, "sub_late", "rejected", CREATED),
            partner_event(
                "new_partner_pending_referral",
                email,
                "sub_late",
                "pending",
                CREATED,
            ),
            partner_event(
                "new_partner_referral",
                email,
                "sub_late",
                "verified",
                CREATED,
            ),
        ],
    )
    .await;
    let calls = bodies(&esp).await;
    assert_eq!(
        calls.len(),
        1,
        "only the unsubscribe: the late pending must not add the contact back"
    );
    assert_eq!(calls[0].2["subscribed"], false);
    let s = store(&h).get(email).await.unwrap().unwrap();
    assert_eq!(s.referral_status, Some(ReferralStatus::Rejected));
    assert!(store(&h)
        .screening_candidates(at(CREATED) + Duration::days(30))
        .await
        .unwrap()
        .is_empty());

    // pending after verified is stale; rejected after verified applies
    let email2 = "late2@example.com";
    deliver(
        &h,
        &[
            partner_event("new_partner_referral", email2, "sub_2", "verified", CREATED),
            partner_event(
                "new_partner_pending_referral",
                email2,
                "sub_2",
                "pending",
                CREATED,
            ),
        ],
    )
    .await;
    assert_eq!(
        store(&h)
            .get(email2)
            .await
            .unwrap()
            .unwrap()
            .referral_status,
        Some(ReferralStatus::Verified)
    );
    let before = bodies(&esp).await.len();
    deliver(
        &h,
        &[partner_event(
            "sync_subscriber",
            email2,
            "sub_2",
            "rejected",
            CREATED,
        )],
    )
    .await;
    assert_eq!(bodies(&esp).await.len(), before + 1);
    assert_eq!(
        store(&h)
            .get(email2)
            .await
            .unwrap()
            .unwrap()
            .referral_status,
        Some(ReferralStatus::Rejected)
    );

    // the same pending webhook delivered twice: one upsert
    let email3 = "dup@example.com";
    let pending = partner_event(
        "new_partner_pending_referral",
        email3,
        "sub_3",
        "pending",
        CREATED,
    );
    let before = bodies(&esp).await.len();
    deliver(&h, &[pending.clone(), pending]).await;
    assert_eq!(bodies(&esp).await.len(), before + 1);
}

#[tokio::test]
async fn screener_rejects_exactly_the_referrals_below_the_criteria() {
    let (sparkloop, esp) = fakes().await;
    let h = loops_harness(&sparkloop, &esp).await;
    let due = [
        ("clicker@example.com", true),
        ("idle1@example.com", false),
        ("idle2@example.com", false),
    ];
    for (i, (email, clicks)) in due.iter().enumerate() {
        deliver(
            &h,
            &[partner_event(
                "new_partner_pending_referral",
                email,
                &format!("sub_d{i}"),
                "pending",
                CREATED,
            )],
        )
        .await;
        if *clicks {
            deliver(
                &h,
                &[loops_event("email.clicked", email, "s1", CREATED + 50)],
            )
            .await;
        }
    }
    // one more, idle, but its screening started 5 days later: not due yet
    deliver(
        &h,
        &[partner_event(
            "new_partner_pending_referral",
            "young@example.com",
            "sub_y",
            "pending",
            CREATED + 5 * 86_400,
        )],
    )
    .await;
    let cfg = ScreeningConfig {
        enabled: true,
        criteria: Criteria {
            min_clicks: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let queue: Arc<dyn EventQueue> = Arc::new(sparkbridge::adapters::sqs::SqsQueue::new(
        h.sqs.clone(),
        h.queue_url.clone(),
        262_144,
    ));
    let now = at(CREATED) + Duration::days(14) - Duration::hours(1);
    let report = sparkbridge::screener::run(&store(&h), &queue, &cfg, now, false)
        .await
        .unwrap();
    let mut rejected: Vec<&str> = report.rejected.iter().map(|(e, _)| e.as_str()).collect();
    rejected.sort();
    assert_eq!(rejected, ["idle1@example.com", "idle2@example.com"]);
    assert_eq!(report.passed, 1);
    h.run_until_empty().await;
    let mut paths: Vec<String> = sparkloop
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/v2/subscribers/sub_d1/reject",
            "/v2/subscribers/sub_d2/reject"
        ]
    );
    assert_eq!(
        store(&h)
            .get("young@example.com")
            .await
            .unwrap()
            .unwrap()
            .screened,
        None
    );
}

#[tokio::test]
async fn esputnik_pending_and_rejected() {
    let (sparkloop, esp) = fakes().await;
    let h = esputnik_harness(&sparkloop, &esp).await;
    let email = "es@example.com";
    deliver(
        &h,
        &[partner_event(
            "new_partner_pending_referral",
            email,
            "sub_e",
            "pending",
            CREATED,
        )],
    )
    .await;
    deliver(
        &h,
        &[partner_event(
            "sync_subscriber",
            email,
            "sub_e",
            "rejected",
            CREATED,
        )],
    )
    .await;
    let calls = bodies(&esp).await;
    let paths: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/contacts",
            "/api/v1/emails/unsubscribed/add",
            "/api/v1/contacts"
        ]
    );
    assert_eq!(
        calls[0].2,
        json!({"contacts": [{"channels": [{"type": "email", "value": email}], "fields": [{"id": 501, "value": "pending"}], "firstName": "Ann"}],
               "dedupeOn": "email", "customFieldsIDs": [501]})
    );
    assert_eq!(calls[1].2, json!({"emails": [email]}));
    assert_eq!(
        calls[2].2["contacts"][0]["fields"],
        json!([{"id": 501, "value": "rejected"}])
    );
    let auth = esp.received_requests().await.unwrap()[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(auth.starts_with("Basic "));
    assert_eq!(
        store(&h).get(email).await.unwrap().unwrap().referral_status,
        Some(ReferralStatus::Rejected)
    );
}

/// eSputnik: pending, then deliveries, opens and clicks counted from the activity array (the
/// screener's input), then verified as a property update of field 501; no SparkLoop call.
#[tokio::test]
async fn esputnik_pending_then_engagement_then_verified() {
    let (sparkloop, esp) = fakes().await;
    let h = esputnik_harness(&sparkloop, &esp).await;
    let email = "engaged@example.com";
    deliver(
        &h,
        &[partner_event(
            "new_partner_pending_referral",
            email,
            "sub_v",
            "pending",
            CREATED,
        )],
    )
    .await;
    deliver(
        &h,
        &esputnik_events(
            email,
            &[
                ("DELIVERED", "m1", CREATED + 100),
                ("READ", "m1", CREATED + 200),
                ("CLICKED", "m1", CREATED + 300),
                ("DELIVERED", "m2", CREATED + 400),
            ],
        ),
    )
    .await;
    let s = store(&h).get(email).await.unwrap().unwrap();
    use sparkbridge::core::Signal;
    let since = at(CREATED);
    assert_eq!(
        (
            s.count_since(Signal::Delivery, since),
            s.count_since(Signal::Open, since),
            s.count_since(Signal::Click, since)
        ),
        (2, 1, 1)
    );
    // the screener would pass it: one open and one click within the period
    let criteria = Criteria {
        min_opens: 1,
        min_clicks: 1,
        ..Criteria::default()
    };
    assert_eq!(
        sparkbridge::core::lifecycle::screen(
            &s,
            &criteria,
            at(CREATED) + Duration::days(14),
            Duration::hours(24)
        ),
        sparkbridge::core::lifecycle::Verdict::Passes
    );
    deliver(
        &h,
        &[partner_event(
            "new_partner_referral",
            email,
            "sub_v",
            "verified",
            CREATED,
        )],
    )
    .await;
    let calls = bodies(&esp).await;
    let paths: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(paths, ["/api/v1/contacts", "/api/v1/contacts"]);
    assert_eq!(
        calls[1].2["contacts"][0]["fields"],
        json!([{"id": 501, "value": "verified"}])
    );
    assert!(sparkloop.received_requests().await.unwrap().is_empty());
    assert_eq!(
        store(&h).get(email).await.unwrap().unwrap().referral_status,
        Some(ReferralStatus::Verified)
    );
}

#[tokio::test]
async fn a_refused_loops_property_is_parked_with_what_to_create() {
    let sparkloop = MockServer::start().await;
    let esp = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"success":false,"message":"Contact property sparkloopStatus does not exist"}"#,
        ))
        .mount(&esp)
        .await;
    let h = loops_harness(&sparkloop, &esp).await;
    deliver(
        &h,
        &[partner_event(
            "new_partner_pending_referral",
            "p@example.com",
            "sub_p",
            "pending",
            CREATED,
        )],
    )
    .await;
    let dlq = h.dlq().await;
    assert_eq!(dlq.len(), 1);
    let err = dlq[0].message_attributes().unwrap()["error"]
        .string_value()
        .unwrap()
        .to_string();
    assert!(
        err.contains("create these contact properties in Loops"),
        "{err}"
    );
    assert!(err.contains("sparkloopStatus"), "{err}");
}

/// A base URL one segment off (`https://app.loops.so/api/api`, say) answers 404 on every
/// call: the add is a failure, parked with the body, and never recorded as done.
#[tokio::test]
async fn an_esp_404_is_parked_and_never_recorded_as_added() {
    let sparkloop = MockServer::start().await;
    let esp = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(404).set_body_string("<html>Not Found</html>"))
        .mount(&esp)
        .await;
    let h = loops_harness(&sparkloop, &esp).await;
    let email = "lost@example.com";
    deliver(
        &h,
        &[partner_event(
            "new_partner_pending_referral",
            email,
            "sub_l",
            "pending",
            CREATED,
        )],
    )
    .await;
    let dlq = h.dlq().await;
    assert_eq!(dlq.len(), 1, "parked, not acknowledged as done");
    let err = dlq[0].message_attributes().unwrap()["error"]
        .string_value()
        .unwrap()
        .to_string();
    assert!(err.contains("404") && err.contains("Not Found"), "{err}");
    let state = store(&h).get(email).await.unwrap();
    assert_eq!(
        state.and_then(|s| s.esp_status),
        None,
        "the reconciler and the screener must not read it as added"
    );
}
