//! Ingest handlers against a moto server: what reaches the queue, and what never does.

use std::sync::Arc;

use aws_sdk_sqs::Client as SqsClient;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Response};
use shared::adapters::sqs::{SqsQueue, DEFAULT_MAX_MESSAGE_BYTES};
use shared::core::envelope::Provider;
use shared::core::esputnik::WebhookAuth;
use shared::core::loops::SigningKeys;
use shared::core::secret::Secret;
use shared::ingest::esputnik::EsputnikIngest;
use shared::ingest::loops::LoopsIngest;
use shared::ingest::sparkloop::SparkloopIngest;
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
        shared::core::loops::KNOWN_EVENTS.len(),
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
            assert!(shared::core::esputnik::KNOWN_STATUSES.contains(&q.envelope.kind.as_str()));
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
    set_body(&mut r, r#"["eventName"]"#);
    authenticate_request(Provider::Loops, &mut r);
    cases.push(("no eventName", r, StatusCode::BAD_REQUEST));
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
    set_body(&mut r, "[1,2]");
    cases.push(("not an object", r, StatusCode::BAD_REQUEST));
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
