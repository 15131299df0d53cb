//! Ingest handlers against a moto server: what reaches the queue, and what never does; and
//! their webhook secrets read from a Secrets Manager secret on moto.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client as SqsClient;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Response};
use sparkbridge::adapters::secretsmanager::SecretsManagerSource;
use sparkbridge::adapters::sqs::{SqsQueue, DEFAULT_MAX_MESSAGE_BYTES};
use sparkbridge::config::{Env, IngestSparkloopConfig};
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::esputnik::WebhookAuth;
use sparkbridge::core::loops::SigningKeys;
use sparkbridge::core::secret::Secret;
use sparkbridge::core::secrets::needs;
use sparkbridge::ingest::esputnik::EsputnikIngest;
use sparkbridge::ingest::loops::LoopsIngest;
use sparkbridge::ingest::sparkloop::SparkloopIngest;
use sparkbridge::secrets::{Component, SecretValues, Secrets};
use sparkbridge_tests::*;

struct Kit {
    sqs: SqsClient,
    url: String,
    loops: LoopsIngest,
    esputnik: EsputnikIngest,
    sparkloop: SparkloopIngest,
}

async fn kit_with_queue(url: Option<String>) -> Kit {
    let conf = sdk_config().await;
    let sqs = SqsClient::new(&conf);
    let url = match url {
        Some(u) => u,
        None => fresh_queue(&sqs).await,
    };
    let queue = Arc::new(SqsQueue::new(
        sqs.clone(),
        url.clone(),
        DEFAULT_MAX_MESSAGE_BYTES,
    ));
    let esputnik_auth = WebhookAuth::new(
        Some(Secret::new(ESPUTNIK_USER)),
        Some(Secret::new(ESPUTNIK_PASSWORD)),
        Some(Secret::new(ESPUTNIK_TOKEN)),
        false,
    )
    .unwrap();
    Kit {
        loops: LoopsIngest::new(queue.clone(), SigningKeys::parse(LOOPS_SECRET).unwrap()),
        esputnik: EsputnikIngest::new(queue.clone(), esputnik_auth, chrono_tz_utc()),
        sparkloop: SparkloopIngest::new(queue, Secret::new(SPARKLOOP_TOKEN)),
        sqs,
        url,
    }
}

fn chrono_tz_utc() -> chrono_tz::Tz {
    chrono_tz::Tz::UTC
}

async fn kit() -> Kit {
    kit_with_queue(None).await
}

fn body_json(resp: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(resp.body().as_ref()).expect("error answers are JSON")
}

#[tokio::test]
async fn every_loops_sample_lands_as_one_envelope() {
    let k = kit().await;
    let files = sample_files("loops");
    assert_eq!(
        files.len(),
        sparkbridge::core::loops::KNOWN_EVENTS.len(),
        "one sample per Loops event type"
    );
    for file in &files {
        let req = signed_request(Provider::Loops, file);
        let id = req.headers()["webhook-id"].to_str().unwrap().to_string();
        let body: serde_json::Value = serde_json::from_slice(req.body().as_ref()).unwrap();
        let resp = k.loops.handle(req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{}", file.display());
        let queued = drain(&k.sqs, &k.url).await;
        assert_eq!(queued.len(), 1, "{}", file.display());
        let env = &queued[0].envelope;
        assert_eq!(env.provider, Provider::Loops);
        assert_eq!(env.kind, body["eventName"].as_str().unwrap());
        assert_eq!(env.dedupe_id, id);
        assert_eq!(queued[0].attributes["kind"], env.kind);
        assert_eq!(queued[0].attributes["dedupe_id"], id);
        let payload: serde_json::Value = serde_json::from_str(env.payload.get()).unwrap();
        assert_eq!(payload, body, "raw payload kept");
    }
}

#[tokio::test]
async fn every_esputnik_sample_lands_as_one_envelope_per_element() {
    let k = kit().await;
    for file in sample_files("esputnik") {
        let req = signed_request(Provider::Esputnik, &file);
        let is_get = req.method() == Method::GET;
        let elements = if is_get {
            0
        } else {
            serde_json::from_slice::<Vec<serde_json::Value>>(req.body().as_ref())
                .unwrap()
                .len()
        };
        let resp = k.esputnik.handle(req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{}", file.display());
        let queued = drain(&k.sqs, &k.url).await;
        assert_eq!(queued.len(), elements, "{}", file.display());
        for q in &queued {
            assert_eq!(q.envelope.provider, Provider::Esputnik);
            assert!(q.envelope.parked.is_none());
            assert!(sparkbridge::core::esputnik::KNOWN_STATUSES.contains(&q.envelope.kind.as_str()));
        }
    }
}

#[tokio::test]
async fn every_sparkloop_sample_lands_as_one_envelope() {
    let k = kit().await;
    for file in sample_files("sparkloop") {
        let req = signed_request(Provider::Sparkloop, &file);
        let body: serde_json::Value = serde_json::from_slice(req.body().as_ref()).unwrap();
        let resp = k.sparkloop.handle(req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{}", file.display());
        assert!(resp.body().is_empty(), "SparkLoop wants a blank 200");
        let queued = drain(&k.sqs, &k.url).await;
        assert_eq!(queued.len(), 1, "{}", file.display());
        assert_eq!(queued[0].envelope.kind, body["type"].as_str().unwrap());
        assert_eq!(
            queued[0].envelope.subscriber.sparkloop_id.as_deref(),
            body["subscriber"]["id"].as_str()
        );
    }
}

fn loops_sample() -> lambda_http::Request {
    signed_request(
        Provider::Loops,
        &repo_root().join("events/loops/email.unsubscribed.json"),
    )
}

#[tokio::test]
async fn loops_bad_input_is_refused_and_queues_nothing() {
    let k = kit().await;
    let mut cases: Vec<(&str, lambda_http::Request, StatusCode)> = Vec::new();

    let mut r = loops_sample();
    r.headers_mut().insert(
        "webhook-signature",
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            .parse()
            .unwrap(),
    );
    cases.push(("bad signature", r, StatusCode::UNAUTHORIZED));
    for h in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut r = loops_sample();
        r.headers_mut().remove(h);
        cases.push(("missing header", r, StatusCode::UNAUTHORIZED));
    }
    let mut r = loops_sample();
    let old = (chrono_now() - 301).to_string();
    r.headers_mut()
        .insert("webhook-timestamp", old.parse().unwrap());
    authenticate_request(Provider::Loops, &mut r); // re-signs with now...
    r.headers_mut()
        .insert("webhook-timestamp", old.parse().unwrap()); // ...then replays an old timestamp
    cases.push(("replayed timestamp", r, StatusCode::UNAUTHORIZED));
    let mut r = loops_sample();
    set_body(
        &mut r,
        r#"{"eventName":"email.unsubscribed","tampered":true}"#,
    );
    cases.push(("body changed after signing", r, StatusCode::UNAUTHORIZED));
    let mut r = loops_sample();
    r.headers_mut()
        .append("webhook-id", "msg_other".parse().unwrap());
    cases.push(("repeated webhook-id", r, StatusCode::UNAUTHORIZED));
    let mut r = loops_sample();
    set_body(&mut r, "{not json");
    authenticate_request(Provider::Loops, &mut r);
    cases.push(("malformed body", r, StatusCode::BAD_REQUEST));
    let mut r = loops_sample();
    set_body(
        &mut r,
        b"{\"eventName\":\"email.opened\",\"x\":\"\xff\"}".to_vec(),
    );
    authenticate_request(Provider::Loops, &mut r);
    cases.push(("body not UTF-8", r, StatusCode::BAD_REQUEST));
    let mut r = loops_sample();
    *r.method_mut() = Method::GET;
    cases.push(("GET", r, StatusCode::METHOD_NOT_ALLOWED));

    for (name, req, want) in cases {
        let resp = k.loops.handle(req).await;
        assert_eq!(resp.status(), want, "{name}");
        let err = body_json(&resp);
        assert!(
            err["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: {err}"
        );
        assert!(
            !err.to_string().contains(LOOPS_SECRET),
            "{name}: the secret never leaks"
        );
    }
    assert!(drain(&k.sqs, &k.url).await.is_empty(), "nothing queued");
}

#[tokio::test]
async fn loops_unknown_event_is_kept_as_unknown() {
    let k = kit().await;
    let mut r = loops_sample();
    set_body(
        &mut r,
        r#"{"eventName":"contact.renamed","contactIdentity":{"id":"c1","email":"a@b.c","userId":null}}"#,
    );
    authenticate_request(Provider::Loops, &mut r);
    assert_eq!(k.loops.handle(r).await.status(), StatusCode::OK);
    let q = drain(&k.sqs, &k.url).await;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].envelope.kind, "unknown");
    assert!(q[0].envelope.payload.get().contains("contact.renamed"));
}

/// Loops documents no retries: a signed body that is JSON but not the shape we know is kept
/// as `unknown` (the worker ignores it, an operator can read it), never refused.
#[tokio::test]
async fn loops_json_of_an_unknown_shape_is_kept_as_unknown() {
    let k = kit().await;
    for body in [
        r#"{"eventTime":1734425918,"contactIdentity":{"id":"c1","email":"a@b.c","userId":null}}"#,
        r#"{"eventName":null,"contactIdentity":{"email":"a@b.c"}}"#,
        r#"{"eventName":42}"#,
        r#"{"eventName":{"name":"email.unsubscribed"}}"#,
        r#"["eventName"]"#,
        r#""email.unsubscribed""#,
        "null",
    ] {
        let mut r = loops_sample();
        set_body(&mut r, body);
        authenticate_request(Provider::Loops, &mut r);
        let id = r.headers()["webhook-id"].to_str().unwrap().to_string();
        assert_eq!(k.loops.handle(r).await.status(), StatusCode::OK, "{body}");
        let q = drain(&k.sqs, &k.url).await;
        assert_eq!(q.len(), 1, "{body}");
        assert_eq!(q[0].envelope.kind, "unknown", "{body}");
        assert_eq!(q[0].attributes["kind"], "unknown", "{body}");
        assert_eq!(q[0].envelope.dedupe_id, id, "{body}");
        assert_eq!(q[0].envelope.payload.get(), body, "payload kept verbatim");
    }
}

/// SparkLoop retries a refused delivery only a few times: a body that is JSON but not the
/// shape we know is kept as `unknown`, keyed by the hash of its bytes (the same on a retry).
#[tokio::test]
async fn sparkloop_json_of_an_unknown_shape_is_kept_as_unknown() {
    let k = kit().await;
    let file = repo_root().join("events/sparkloop/new_partner_pending_referral.json");
    for body in [
        "[1,2]",
        r#"{"hello":"world"}"#,
        r#"{"type":42,"subscriber":{"id":"sub_1","email":"a@b.c"}}"#,
        r#"{"type":null,"subscriber":{"id":"sub_1"}}"#,
        r#"["new_referral",{"id":"sub_1"}]"#,
        r#""new_referral""#,
    ] {
        let mut r = signed_request(Provider::Sparkloop, &file);
        set_body(&mut r, body);
        let resp = k.sparkloop.handle(r).await;
        assert_eq!(resp.status(), StatusCode::OK, "{body}");
        assert!(resp.body().is_empty(), "SparkLoop wants a blank 200");
        let q = drain(&k.sqs, &k.url).await;
        assert_eq!(q.len(), 1, "{body}");
        assert_eq!(q[0].envelope.kind, "unknown", "{body}");
        assert_eq!(
            q[0].envelope.dedupe_id,
            sparkbridge::core::envelope::sha256_hex(body.as_bytes()),
            "{body}"
        );
        assert_eq!(q[0].envelope.payload.get(), body);
    }
}

/// Whether SQS accepts `text` in a body or attribute value, from its documentation:
/// `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`. moto does not check,
/// so the tests do.
fn sqs_accepts(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(
            u32::from(c),
            0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF
        )
    })
}

/// Reads what reached the queue exactly as SQS holds it: every body and attribute value is
/// one SQS accepts, and every body is an envelope.
async fn drain_checked(sqs: &SqsClient, url: &str) -> Vec<(serde_json::Value, Envelope)> {
    let mut out = Vec::new();
    for (body, attributes) in drain_raw(sqs, url).await {
        assert!(sqs_accepts(&body), "SQS refuses this body: {body:?}");
        for (k, v) in &attributes {
            assert!(sqs_accepts(v), "SQS refuses attribute {k}={v:?}");
        }
        let envelope: Envelope = serde_json::from_str(&body).expect("an envelope");
        let payload = serde_json::from_str(envelope.payload.get()).expect("payload is JSON");
        out.push((payload, envelope));
    }
    out
}

/// A raw U+FFFF (or U+FFFE) is valid inside a JSON string, so a provider may sign it, but SQS
/// refuses it: sent as is, SendMessageBatch fails and the provider is answered 503 for the
/// same bytes forever. It is queued escaped (`\uffff`): the same JSON value, the same dedupe
/// id, 200.
#[tokio::test]
async fn characters_sqs_refuses_are_queued_escaped_with_the_same_json_value() {
    let k = kit().await;

    let loops_body = "{\"eventName\":\"email.unsubscribed\",\"eventTime\":1734425918,\"subject\":\"x\u{ffff}y\u{fffe}\",\"contactIdentity\":{\"id\":\"c\u{ffff}\",\"email\":\"a\u{ffff}@b.c\",\"userId\":null}}";
    let mut r = loops_sample();
    set_body(&mut r, loops_body);
    authenticate_request(Provider::Loops, &mut r);
    let id = r.headers()["webhook-id"].to_str().unwrap().to_string();
    assert_eq!(k.loops.handle(r).await.status(), StatusCode::OK);
    let q = drain_checked(&k.sqs, &k.url).await;
    assert_eq!(q.len(), 1);
    let (payload, env) = &q[0];
    let sent: serde_json::Value = serde_json::from_str(loops_body).unwrap();
    assert_eq!(payload, &sent, "the same JSON value");
    assert_eq!(env.kind, "email.unsubscribed");
    assert_eq!(env.dedupe_id, id);
    assert_eq!(env.subscriber.email.as_deref(), Some("a\u{ffff}@b.c"));
    assert!(env.payload.get().contains(r"x\uffffy\ufffe"));

    let element = "{\"activityStatus\":\"UNSUBSCRIBED\",\"contactId\":1,\"email\":\"a@b.c\",\"activityDateTime\":\"2023-09-14T08:30:03\",\"note\":\"\u{ffff}\u{fffe}\"}";
    let esputnik_body = format!("[{element}]");
    let want_ids: Vec<String> =
        sparkbridge::core::esputnik::split(esputnik_body.as_bytes(), chrono_tz_utc())
            .into_iter()
            .map(|e| e.dedupe_id)
            .collect();
    let mut r = load_request(&repo_root().join("events/esputnik/batch.json"));
    set_body(&mut r, esputnik_body.clone());
    authenticate_request(Provider::Esputnik, &mut r);
    assert_eq!(k.esputnik.handle(r).await.status(), StatusCode::OK);
    let q = drain_checked(&k.sqs, &k.url).await;
    assert_eq!(q.len(), 1);
    let (payload, env) = &q[0];
    let sent: serde_json::Value = serde_json::from_str(element).unwrap();
    assert_eq!(payload, &sent, "the same JSON value");
    assert_eq!(env.kind, "UNSUBSCRIBED");
    assert_eq!(want_ids.len(), 1);
    assert_eq!(
        env.dedupe_id, want_ids[0],
        "dedupe id of the bytes received"
    );

    let sparkloop_body = "{\"type\":\"new_referral\",\"subscriber\":{\"id\":\"sub_1\",\"email\":\"n@x.io\",\"name\":\"\u{ffff}\"},\"referrer\":{\"id\":\"sub_0\",\"email\":\"r@x.io\"}}";
    let (want_id, _) = sparkbridge::core::sparkloop::parse(sparkloop_body.as_bytes()).unwrap();
    let mut r = signed_request(
        Provider::Sparkloop,
        &repo_root().join("events/sparkloop/new_referral.json"),
    );
    set_body(&mut r, sparkloop_body);
    assert_eq!(k.sparkloop.handle(r).await.status(), StatusCode::OK);
    let q = drain_checked(&k.sqs, &k.url).await;
    assert_eq!(q.len(), 1);
    let sent: serde_json::Value = serde_json::from_str(sparkloop_body).unwrap();
    assert_eq!(q[0].0, sent, "the same JSON value");
    assert_eq!(q[0].1.dedupe_id, want_id);
}

/// The worker's parking path: a message for the DLQ whose body and attributes carry
/// characters SQS refuses (an error message quoting the payload) is parked, escaped in the
/// body and replaced in the attributes.
#[tokio::test]
async fn a_parked_message_with_characters_sqs_refuses_reaches_the_dlq() {
    use sparkbridge::ports::{OutboundMessage, WorkQueue};
    let conf = sdk_config().await;
    let sqs = SqsClient::new(&conf);
    let main = fresh_queue(&sqs).await;
    let dlq = fresh_queue(&sqs).await;
    let work = sparkbridge::adapters::sqs::SqsWorkQueue::new(sqs.clone(), main, dlq.clone());
    let body = "{\"v\":1,\"payload\":{\"name\":\"a\u{ffff}\u{fffe}b\"}}";
    let message = OutboundMessage {
        body: body.into(),
        attributes: [
            ("kind".to_string(), "unknown".to_string()),
            (
                "error".to_string(),
                "answered 400: bad name a\u{ffff}\u{1}".to_string(),
            ),
        ]
        .into(),
    };
    work.park(message).await.expect("parked");
    let got = drain_raw(&sqs, &dlq).await;
    assert_eq!(got.len(), 1);
    let (raw, attributes) = &got[0];
    assert!(sqs_accepts(raw), "{raw:?}");
    let a: serde_json::Value = serde_json::from_str(raw).unwrap();
    let b: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(a, b, "the same JSON value");
    assert_eq!(
        attributes["error"],
        "answered 400: bad name a\u{fffd}\u{fffd}"
    );
    assert_eq!(attributes["kind"], "unknown");
}

#[tokio::test]
async fn a_sqs_failure_answers_503_so_the_provider_retries() {
    let k = kit_with_queue(Some(format!(
        "{}/123456789012/no-such-queue",
        moto_endpoint()
    )))
    .await;
    let resp = k.loops.handle(loops_sample()).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "30");
    let req = signed_request(
        Provider::Sparkloop,
        &repo_root().join("events/sparkloop/new_referral.json"),
    );
    assert_eq!(
        k.sparkloop.handle(req).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let req = signed_request(
        Provider::Esputnik,
        &repo_root().join("events/esputnik/batch.json"),
    );
    assert_eq!(
        k.esputnik.handle(req).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// An authenticated event over the queue's message size is kept, not refused: its parked
/// reference form (size, sha256, head) is queued and the provider gets its 200. A refusal
/// would lose it (Loops, SparkLoop) or hold back every later event (eSputnik).
#[tokio::test]
async fn an_event_over_the_queue_size_is_parked_in_reference_form() {
    let k = kit().await;
    let pad = "x".repeat(DEFAULT_MAX_MESSAGE_BYTES);
    let huge = format!(
        r#"{{"eventName":"email.unsubscribed","contactIdentity":{{"id":"c1","email":"big@example.com","userId":null}},"pad":"{pad}"}}"#
    );
    let mut r = loops_sample();
    set_body(&mut r, huge.clone());
    authenticate_request(Provider::Loops, &mut r);
    // Loops: 413 as the issue names it, and only once the reference form is queued
    let resp = k.loops.handle(r).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let answer: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(answer["reason"], "too_large_kept");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("kept in reference form"));

    let small = r#"{"activityStatus":"READ","contactId":1,"email":"a@b.c","activityDateTime":"2023-09-14T08:30:03"}"#;
    let big = format!(
        r#"{{"activityStatus":"UNSUBSCRIBED","contactId":2,"email":"big@example.com","activityDateTime":"2023-09-14T08:30:03","pad":"{pad}"}}"#
    );
    let mut r = load_request(&repo_root().join("events/esputnik/batch.json"));
    // an identifier alone over the queue's size: clipped in the reference, never refused
    // (a refused eSputnik request would hold back every later event)
    let huge_id = format!(
        r#"{{"activityStatus":"UNSUBSCRIBED","contactId":3,"email":"{}@example.com","activityDateTime":"2023-09-14T08:30:03"}}"#,
        "x".repeat(300_000)
    );
    set_body(&mut r, format!("[{small},{big},{huge_id}]"));
    authenticate_request(Provider::Esputnik, &mut r);
    assert_eq!(k.esputnik.handle(r).await.status(), StatusCode::OK);

    let q = drain(&k.sqs, &k.url).await;
    assert_eq!(q.len(), 4, "every event is queued");
    let clipped = q
        .iter()
        .find(|m| {
            m.envelope
                .subscriber
                .email
                .as_deref()
                .is_some_and(|e| e.starts_with("xxx"))
        })
        .expect("the event with the huge address is queued");
    assert!(clipped.envelope.parked.is_some());
    let email = clipped.envelope.subscriber.email.as_deref().unwrap();
    assert!(email.len() <= 1_024 + "…".len() && email.ends_with('…'));
    let parked: Vec<_> = q
        .iter()
        .filter(|m| m.envelope.parked.is_some() && !std::ptr::eq(*m, clipped))
        .collect();
    assert_eq!(parked.len(), 2, "the two large ones are parked");
    for m in parked {
        let e = &m.envelope;
        assert!(e
            .parked
            .as_deref()
            .unwrap()
            .contains("over the queue's message size"));
        assert_eq!(e.subscriber.email.as_deref(), Some("big@example.com"));
        let oversize = &e.payload_value()["oversize"];
        assert!(oversize["bytes"].as_u64().unwrap() > DEFAULT_MAX_MESSAGE_BYTES as u64);
        assert_eq!(oversize["sha256"].as_str().unwrap().len(), 64);
        assert!(oversize["head"].as_str().unwrap().len() > 1_000);
    }
    let read = q.iter().find(|m| m.envelope.parked.is_none()).unwrap();
    assert_eq!(read.envelope.kind, "READ");
}

#[tokio::test]
async fn esputnik_auth_and_unreadable_elements() {
    let k = kit().await;
    let file = repo_root().join("events/esputnik/batch.json");

    let r = load_request(&file); // the sample's placeholder credentials
    assert_eq!(
        k.esputnik.handle(r).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut r = load_request(&file);
    r.headers_mut().remove("authorization");
    assert_eq!(
        k.esputnik.handle(r).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut r = load_request(&file);
    *r.method_mut() = Method::PUT;
    assert_eq!(
        k.esputnik.handle(r).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert!(
        drain(&k.sqs, &k.url).await.is_empty(),
        "nothing queued when refused"
    );

    // the URL token works where Basic auth cannot reach the function
    let mut r = load_request(&file);
    r.headers_mut().remove("authorization");
    let r = lambda_http::RequestExt::with_query_string_parameters(
        r,
        [("token".to_string(), ESPUTNIK_TOKEN.to_string())]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
    );
    assert_eq!(k.esputnik.handle(r).await.status(), StatusCode::OK);
    assert_eq!(drain(&k.sqs, &k.url).await.len(), 4);

    // one bad element never fails the request: it is parked with its raw text
    let mut r = load_request(&file);
    set_body(
        &mut r,
        r#"[{"activityStatus":"READ","contactId":1,"email":"a@b.c","activityDateTime":"2023-09-14T08:30:03"}, "garbage", {"no":"status"}]"#,
    );
    authenticate_request(Provider::Esputnik, &mut r);
    assert_eq!(k.esputnik.handle(r).await.status(), StatusCode::OK);
    let q = drain(&k.sqs, &k.url).await;
    let mut kinds: Vec<_> = q.iter().map(|m| m.envelope.kind.clone()).collect();
    kinds.sort();
    assert_eq!(kinds, ["READ", "parked", "parked"]);
    let parked: Vec<_> = q.iter().filter(|m| m.envelope.kind == "parked").collect();
    assert!(parked
        .iter()
        .all(|m| m.attributes.contains_key("parked_reason")));
    assert!(parked
        .iter()
        .any(|m| m.envelope.payload.get() == r#""garbage""#));

    // a body that is not JSON at all is parked whole, still 200
    let mut r = load_request(&file);
    set_body(&mut r, "this is not json");
    authenticate_request(Provider::Esputnik, &mut r);
    assert_eq!(k.esputnik.handle(r).await.status(), StatusCode::OK);
    let q = drain(&k.sqs, &k.url).await;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].envelope.kind, "parked");
}

#[tokio::test]
async fn esputnik_large_arrays_are_split_into_batches_of_ten() {
    let k = kit().await;
    let elements: Vec<String> = (0..23)
        .map(|i| format!(r#"{{"activityStatus":"DELIVERED","contactId":{i},"email":"u{i}@x.io","iid":"i{i}","activityDateTime":"2023-09-14T08:30:03"}}"#))
        .collect();
    let mut r = load_request(&repo_root().join("events/esputnik/batch.json"));
    set_body(&mut r, format!("[{}]", elements.join(",")));
    authenticate_request(Provider::Esputnik, &mut r);
    assert_eq!(k.esputnik.handle(r).await.status(), StatusCode::OK);
    let q = drain(&k.sqs, &k.url).await;
    assert_eq!(q.len(), 23);
    let mut ids: Vec<_> = q.iter().map(|m| m.envelope.dedupe_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 23, "distinct dedupe ids");
}

#[tokio::test]
async fn sparkloop_bad_input_is_refused_and_queues_nothing() {
    let k = kit().await;
    let file = repo_root().join("events/sparkloop/new_partner_pending_referral.json");
    let mut cases = Vec::new();
    cases.push((
        "placeholder token",
        load_request(&file),
        StatusCode::UNAUTHORIZED,
    ));
    let mut r = load_request(&file);
    r.headers_mut().remove("sparkloop-token");
    cases.push(("missing token", r, StatusCode::UNAUTHORIZED));
    let mut r = signed_request(Provider::Sparkloop, &file);
    set_body(&mut r, "{oops");
    cases.push(("malformed", r, StatusCode::BAD_REQUEST));
    let mut r = signed_request(Provider::Sparkloop, &file);
    set_body(&mut r, "");
    cases.push(("empty", r, StatusCode::BAD_REQUEST));
    let mut r = signed_request(Provider::Sparkloop, &file);
    *r.method_mut() = Method::DELETE;
    cases.push(("DELETE", r, StatusCode::METHOD_NOT_ALLOWED));
    for (name, req, want) in cases {
        let resp = k.sparkloop.handle(req).await;
        assert_eq!(resp.status(), want, "{name}");
        assert!(body_json(&resp)["error"].is_string(), "{name}");
    }
    assert!(drain(&k.sqs, &k.url).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Webhook secrets kept in a Secrets Manager secret (SECRETS_ARN) on moto

/// The webhook secret settings of `component` from the moto secret `arn`, read again after
/// `ttl`; nothing from the environment.
async fn secrets_from(arn: &str, component: Component, ttl: Duration) -> Secrets {
    let source = SecretsManagerSource::from_conf(&sdk_config().await, arn);
    Secrets::managed(
        Arc::new(source),
        needs(component, None, false),
        SecretValues::default(),
        ttl,
    )
    .await
    .expect("the secret holds what the function needs")
}

fn queue_of(k: &Kit) -> Arc<SqsQueue> {
    Arc::new(SqsQueue::new(
        k.sqs.clone(),
        k.url.clone(),
        DEFAULT_MAX_MESSAGE_BYTES,
    ))
}

/// A SparkLoop sample carrying `token` in its `SparkLoop-Token` header.
fn sparkloop_with_token(token: &str) -> lambda_http::Request {
    let mut r =
        load_request(&repo_root().join("events/sparkloop/new_partner_pending_referral.json"));
    r.headers_mut()
        .insert("sparkloop-token", token.parse().unwrap());
    r
}

#[tokio::test]
async fn sparkloop_ingest_takes_its_token_from_the_secret_and_a_new_one_only_after_the_ttl() {
    let k = kit().await;
    let arn = fresh_secret(&serde_json::json!({
        "SPARKLOOP_WEBHOOK_TOKEN": "sl-secret-old",
        "SPARKLOOP_API_KEY": "another function's key",
    }))
    .await;
    let ttl = Duration::from_secs(2);
    let secrets = secrets_from(&arn, Component::IngestSparkloop, ttl).await;
    let read_at = std::time::Instant::now();
    assert_eq!(
        format!("{secrets:?}"),
        r#"Secrets::Managed(SecretValues(["SPARKLOOP_WEBHOOK_TOKEN"]))"#,
        "only the keys this function needs are kept"
    );
    let ingest = SparkloopIngest::from_secrets(queue_of(&k), &secrets).unwrap();
    let status = |token: &'static str| {
        let ingest = &ingest;
        async move { ingest.handle(sparkloop_with_token(token)).await.status() }
    };
    assert_eq!(status("sl-secret-old").await, StatusCode::OK);
    assert_eq!(
        status(SPARKLOOP_TOKEN).await,
        StatusCode::UNAUTHORIZED,
        "only the secret's token"
    );

    put_secret(
        &arn,
        &serde_json::json!({"SPARKLOOP_WEBHOOK_TOKEN": "sl-secret-new"}),
    )
    .await;
    assert_eq!(
        status("sl-secret-old").await,
        StatusCode::OK,
        "before the TTL"
    );
    assert_eq!(status("sl-secret-new").await, StatusCode::UNAUTHORIZED);
    assert!(
        read_at.elapsed() < ttl,
        "the checks before the TTL took longer than the TTL"
    );

    tokio::time::sleep(ttl.saturating_sub(read_at.elapsed())).await;
    assert_eq!(
        status("sl-secret-new").await,
        StatusCode::OK,
        "after the TTL"
    );
    assert_eq!(status("sl-secret-old").await, StatusCode::UNAUTHORIZED);
    assert_eq!(drain(&k.sqs, &k.url).await.len(), 3, "one event per 200");
}

/// A Loops sample signed now with `secret`, under a fresh webhook id.
fn loops_signed_with(secret: &str) -> lambda_http::Request {
    let mut r = load_request(&repo_root().join("events/loops/email.unsubscribed.json"));
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let ts = chrono_now();
    let signature = SigningKeys::parse(secret)
        .unwrap()
        .sign(&id, ts, r.body().as_ref());
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", signature),
    ] {
        r.headers_mut().insert(name, value.parse().unwrap());
    }
    r
}

#[tokio::test]
async fn loops_signing_secret_rotation_works_through_the_secret() {
    const OLD: &str = LOOPS_SECRET;
    const NEW: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let k = kit().await;
    let arn = fresh_secret(&serde_json::json!({ "LOOPS_SIGNING_SECRET": OLD })).await;
    let ttl = Duration::from_secs(1);
    let secrets = secrets_from(&arn, Component::IngestLoops, ttl).await;
    let ingest = LoopsIngest::from_secrets(queue_of(&k), &secrets).unwrap();
    let status = |secret: &'static str| {
        let ingest = &ingest;
        async move { ingest.handle(loops_signed_with(secret)).await.status() }
    };
    assert_eq!(status(OLD).await, StatusCode::OK);
    assert_eq!(status(NEW).await, StatusCode::UNAUTHORIZED);

    // during the rotation both are accepted, then only the new one
    put_secret(
        &arn,
        &serde_json::json!({ "LOOPS_SIGNING_SECRET": format!("{OLD},{NEW}") }),
    )
    .await;
    tokio::time::sleep(ttl).await;
    assert_eq!(status(NEW).await, StatusCode::OK);
    assert_eq!(status(OLD).await, StatusCode::OK);
    put_secret(&arn, &serde_json::json!({ "LOOPS_SIGNING_SECRET": NEW })).await;
    tokio::time::sleep(ttl).await;
    assert_eq!(status(NEW).await, StatusCode::OK);
    assert_eq!(status(OLD).await, StatusCode::UNAUTHORIZED);

    // a malformed new secret is refused: the last good one stays in use
    put_secret(
        &arn,
        &serde_json::json!({ "LOOPS_SIGNING_SECRET": "whsec_short" }),
    )
    .await;
    tokio::time::sleep(ttl).await;
    assert_eq!(status(NEW).await, StatusCode::OK);
    assert_eq!(drain(&k.sqs, &k.url).await.len(), 5);
}

#[tokio::test]
async fn an_ingest_function_refuses_to_start_when_the_secret_lacks_its_key() {
    let arn = fresh_secret(&serde_json::json!({ "LOOPS_SIGNING_SECRET": LOOPS_SECRET })).await;
    let source = SecretsManagerSource::from_conf(&sdk_config().await, &arn);
    let err = Secrets::managed(
        Arc::new(source),
        needs(Component::IngestSparkloop, None, false),
        SecretValues::default(),
        Duration::from_secs(300),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "SPARKLOOP_WEBHOOK_TOKEN is in neither the secret (SECRETS_ARN) nor the environment"
    );
}

/// As `ingest-sparkloop` starts: its configuration from the environment (`QUEUE_URL`,
/// `SECRETS_ARN`), the secret read from moto, the token taken from it; the same start without
/// the token in the secret fails naming the secret and the key.
#[tokio::test]
async fn an_ingest_function_starts_from_its_environment_and_the_secret_it_names() {
    let k = kit().await;
    let aws = sdk_config().await;
    let arn =
        fresh_secret(&serde_json::json!({ "SPARKLOOP_WEBHOOK_TOKEN": "sl-from-secret" })).await;
    let env = Env::from_pairs([
        ("QUEUE_URL", k.url.as_str()),
        ("SECRETS_ARN", arn.as_str()),
        ("SPARKLOOP_WEBHOOK_TOKEN", "sl-from-env"),
    ]);
    let cfg = IngestSparkloopConfig::from_env(&env).unwrap();
    let secrets = Secrets::load(&aws, &cfg.secrets, Component::IngestSparkloop)
        .await
        .unwrap();
    let ingest =
        SparkloopIngest::from_secrets(Arc::new(SqsQueue::from_conf(&aws, &cfg.queue)), &secrets)
            .unwrap();
    for (token, want) in [
        ("sl-from-secret", StatusCode::OK),
        ("sl-from-env", StatusCode::UNAUTHORIZED),
    ] {
        let status = ingest.handle(sparkloop_with_token(token)).await.status();
        assert_eq!(
            status, want,
            "{token}: the secret wins over the environment"
        );
    }
    assert_eq!(drain(&k.sqs, &k.url).await.len(), 1);

    let without = fresh_secret(&serde_json::json!({ "LOOPS_SIGNING_SECRET": LOOPS_SECRET })).await;
    let env = Env::from_pairs([("QUEUE_URL", k.url.as_str()), ("SECRETS_ARN", &without)]);
    let cfg = IngestSparkloopConfig::from_env(&env).unwrap();
    let err = Secrets::load(&aws, &cfg.secrets, Component::IngestSparkloop)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "SECRETS_ARN={without}: SPARKLOOP_WEBHOOK_TOKEN is in neither the secret \
             (SECRETS_ARN) nor the environment"
        )
    );
}
