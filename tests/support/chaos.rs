//! Chaos tools: a fault-injecting proxy in front of moto, fake SparkLoop / Loops /
//! eSputnik APIs that inject faults and count effects per target, fault-injecting wrappers for
//! the in-memory ports, a delivery plan with duplicates, pollers that run the worker the way
//! Lambda's SQS event source does, and the final accounting.
//!
//! Every injected fault is decided BEFORE the request takes effect unless it is counted as an
//! "after" fault: then the effect happened and only the answer is replaced by an error, the
//! case of a response lost on the way back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shared::core::dedupe::{Acquire, LeaseRequest};
use shared::core::envelope::{Envelope, Provider};
use shared::core::lifecycle::StateWrite;
use shared::local::{BatchSource, Delivery, SourceError};
use shared::ports::{
    EventQueue, IdempotencyStore, OutboundMessage, QueueError, StoreError, WorkQueue,
};
use shared::worker::Worker;
use tokio::sync::Notify;

fn roll() -> f64 {
    rand::random::<f64>()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Probabilities of a fault per call: `before` the effect (the call does nothing) and `after`
/// it (the effect happened, the caller sees an error).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub before: f64,
    pub after: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        before: 0.0,
        after: 0.0,
    };

    /// `Some(true)`: fail before; `Some(false)`: fail after; `None`: no fault.
    fn decide(&self) -> Option<bool> {
        let r = roll();
        if r < self.before {
            Some(true)
        } else if r < self.before + self.after {
            Some(false)
        } else {
            None
        }
    }
}

/// Named counters.
#[derive(Default, Debug)]
pub struct Counter(Mutex<BTreeMap<String, u64>>);

impl Counter {
    pub fn add(&self, key: impl Into<String>) {
        self.add_n(key, 1);
    }

    pub fn add_n(&self, key: impl Into<String>, n: u64) {
        *lock(&self.0).entry(key.into()).or_default() += n;
    }

    pub fn get(&self, key: &str) -> u64 {
        lock(&self.0).get(key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        lock(&self.0).values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        lock(&self.0).clone()
    }

    /// `a=1 b=2`, for report lines.
    pub fn line(&self) -> String {
        let snap = self.snapshot();
        if snap.is_empty() {
            return "-".into();
        }
        snap.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Serves `router` on a thread of its own (a current-thread runtime), so the fake answers
/// on time however busy the runtime of the code under test is.
fn serve_on_own_thread(router: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the fake");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a local port");
            tx.send(listener.local_addr().expect("local addr"))
                .expect("report the address");
            let _ = axum::serve(listener, router).await;
        });
    });
    format!("http://{}", rx.recv().expect("the fake started"))
}

// ---------------------------------------------------------------------------------------------
// The AWS proxy
// ---------------------------------------------------------------------------------------------

/// What the proxy did, per operation (`PutItem`, `ReceiveMessage`, ...).
#[derive(Default, Debug)]
pub struct ProxyStats {
    pub forwarded: Counter,
    pub injected_before: Counter,
    pub injected_after: Counter,
    /// Error answers by kind (`dynamodb:ThrottlingException`, `sqs:500`, ...).
    pub kinds: Counter,
    /// Milliseconds spent upstream, per operation (with `forwarded`: the mean latency).
    pub upstream_ms: Counter,
}

impl ProxyStats {
    /// `Op=count/mean ms` for every forwarded operation.
    pub fn latency_line(&self) -> String {
        let ms = self.upstream_ms.snapshot();
        self.forwarded
            .snapshot()
            .iter()
            .map(|(op, n)| {
                format!(
                    "{op}={n}/{:.0}ms",
                    ms.get(op).copied().unwrap_or(0) as f64 / *n as f64
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Faults>,
    stats: Arc<ProxyStats>,
    /// Per table, held while a DynamoDB call on it is forwarded (see `start_with`).
    dynamo_gates: Option<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// An HTTP proxy in front of moto that answers a share of SQS and DynamoDB calls (AWS JSON
/// protocol, told apart by `X-Amz-Target`) with throttling errors and 500s.
pub struct AwsChaosProxy {
    pub url: String,
    pub stats: Arc<ProxyStats>,
    state: Arc<ProxyState>,
}

impl AwsChaosProxy {
    pub async fn start(upstream: &str, faults: Faults) -> Self {
        Self::start_with(upstream, faults, false).await
    }

    /// With `serialize_dynamodb`, DynamoDB calls on one table reach moto one at a time.
    /// DynamoDB makes
    /// each conditional write atomic; moto does not (no lock around condition + write, so two
    /// concurrent PutItems on one key can both succeed, and a failed TransactWriteItems
    /// restores a copy of the whole table over concurrent writes). Serializing restores the
    /// semantics under test; moto runs Python under one lock anyway, so little is lost.
    pub async fn start_with(upstream: &str, faults: Faults, serialize_dynamodb: bool) -> Self {
        let stats = Arc::new(ProxyStats::default());
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("proxy client"),
            faults: Mutex::new(faults),
            stats: stats.clone(),
            dynamo_gates: serialize_dynamodb.then(Mutex::default),
        });
        let router = axum::Router::new()
            .fallback(proxy_handler)
            .with_state(state.clone());
        let url = serve(router).await;
        Self { url, stats, state }
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Dynamo,
    Sqs,
    Other,
}

const HOP_BY_HOP: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
];

async fn proxy_handler(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (service, op) = match target.split_once('.') {
        Some((s, op)) if s.starts_with("DynamoDB") => (Service::Dynamo, op.to_string()),
        Some((s, op)) if s.starts_with("AmazonSQS") => (Service::Sqs, op.to_string()),
        _ => (
            Service::Other,
            format!("{} {}", parts.method, parts.uri.path()),
        ),
    };
    let fault = if service == Service::Other {
        None
    } else {
        lock(&st.faults).decide()
    };
    if fault == Some(true) {
        st.stats.injected_before.add(op.as_str());
        return aws_error(service, &st.stats);
    }
    let url = format!(
        "{}{}",
        st.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut rb = st.http.request(parts.method.clone(), url);
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            rb = rb.header(k, v);
        }
    }
    let gate = match (&st.dynamo_gates, service) {
        (Some(gates), Service::Dynamo) => {
            let table = table_name(&bytes);
            let gate = lock(gates).entry(table).or_default().clone();
            Some(gate.lock_owned().await)
        }
        _ => None,
    };
    let sent = Instant::now();
    let resp = match rb.body(bytes).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("upstream: {e}")).into_response(),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    drop(gate);
    st.stats.forwarded.add(op.as_str());
    st.stats
        .upstream_ms
        .add_n(op.as_str(), sent.elapsed().as_millis() as u64);
    if fault == Some(false) {
        st.stats.injected_after.add(op.as_str());
        return aws_error(service, &st.stats);
    }
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    for (k, v) in &headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.headers_mut().append(k, v.clone());
        }
    }
    out
}

/// The first `TableName` in a DynamoDB request (TransactWriteItems names it per item).
fn table_name(body: &[u8]) -> String {
    fn find(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::Object(m) => m
                .get("TableName")
                .and_then(|t| t.as_str().map(str::to_string))
                .or_else(|| m.values().find_map(find)),
            serde_json::Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    serde_json::from_slice(body)
        .ok()
        .and_then(|v| find(&v))
        .unwrap_or_default()
}

/// One of the errors AWS answers under load, in the JSON protocol both SDK clients speak.
fn aws_error(service: Service, stats: &ProxyStats) -> Response {
    let pick = rand::random_range(0..3u8);
    let (status, body, query_error, kind) = match (service, pick) {
        (Service::Dynamo, 0) => (
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
            None,
            "dynamodb:ThrottlingException",
        ),
        (Service::Dynamo, 1) => (
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#,
            None,
            "dynamodb:ProvisionedThroughputExceededException",
        ),
        (Service::Dynamo, _) => (
            500,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#,
            None,
            "dynamodb:500",
        ),
        (_, 0) => (
            400,
            r#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}"#,
            Some("ThrottlingException;Sender"),
            "sqs:ThrottlingException",
        ),
        (_, 1) => (
            400,
            r#"{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Request is throttled."}"#,
            Some("RequestThrottled;Sender"),
            "sqs:RequestThrottled",
        ),
        (_, _) => (
            500,
            r#"{"__type":"com.amazonaws.sqs#InternalError","message":"We encountered an internal error. Please try again."}"#,
            Some("InternalError;Receiver"),
            "sqs:500",
        ),
    };
    stats.kinds.add(kind);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).expect("valid status");
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    h.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid header"),
    );
    if let Some(q) = query_error {
        h.insert("x-amzn-query-error", HeaderValue::from_static(q));
    }
    resp
}

/// An SDK configuration for moto, or for the proxy in front of it.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "static");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .load()
        .await
}

// ---------------------------------------------------------------------------------------------
// Fake third-party APIs
// ---------------------------------------------------------------------------------------------

/// Faults of the fake SparkLoop, decided before the effect is applied.
#[derive(Debug, Clone, Copy)]
pub struct ApiFaults {
    pub p500: f64,
    pub p429: f64,
    /// Hangs `hang` (past the client timeout), then answers 503 without an effect.
    pub p_hang: f64,
    pub hang: Duration,
}

impl ApiFaults {
    pub const NONE: ApiFaults = ApiFaults {
        p500: 0.0,
        p429: 0.0,
        p_hang: 0.0,
        hang: Duration::ZERO,
    };

    /// A flaky upstream: 20 % 500, 5 % 429 (retry-after 0), 5 % hangs.
    pub fn flaky_upstream(hang: Duration) -> Self {
        ApiFaults {
            p500: 0.20,
            p429: 0.05,
            p_hang: 0.05,
            hang,
        }
    }
}

/// How the fake answers a call whose effect already happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeats {
    /// 200 every time; every 200 counts as an effect (the chaos run's strict measure).
    Always200,
    /// What SparkLoop and the ESPs plausibly answer (docs/providers/sparkloop.md section 3, esputnik.md section 4):
    /// unsubscribe again -> 409 "already unsubscribed"; reject a non-pending subscriber ->
    /// 400 "not pending"; confirm again -> 200; change email again -> 404 (the old address
    /// is gone); Loops upsert -> 200; eSputnik identical request within a minute -> 400
    /// "Duplicated request".
    Realistic,
}

/// Holds the first matching call forever (until the caller is dropped), before or after its
/// effect, and signals `reached`: the moment to "kill" the worker.
#[derive(Debug, Clone)]
pub struct Hold {
    pub target: String,
    pub after_effect: bool,
}

/// One call the fake answered.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub api: &'static str,
    pub op: String,
    pub target: String,
    pub status: u16,
    /// The answer's body (empty for plain effects).
    pub body: String,
    pub effect: bool,
    pub at: Instant,
}

#[derive(Default)]
struct ApiInner {
    /// (api, op, target) whose effect happened, and when.
    applied: HashMap<(String, String, String), Instant>,
    /// Effects (state changes or, with `Always200`, 200 answers) per target.
    effects: HashMap<String, u32>,
    /// Deliberate hangs per target (answered late, without an effect).
    hangs: HashMap<String, u32>,
    calls: Vec<ApiCall>,
}

pub struct FakeApiState {
    faults: Mutex<ApiFaults>,
    repeats: Repeats,
    /// Targets starting with this are always answered 400 (a permanent failure).
    pub permanent_prefix: String,
    inner: Mutex<ApiInner>,
    pub answers: Counter,
    hold: Mutex<Option<Hold>>,
    pub reached: Notify,
    record_calls: bool,
    /// op -> how many of the next calls of that op get a 500 (deterministic faults).
    fail_next: Mutex<HashMap<String, u32>>,
}

/// SparkLoop (`PUT /v2/subscribers/...`), Loops (`PUT /api/v1/contacts/update`) and eSputnik
/// (`POST /api/v1/contacts`, `POST /api/v1/emails/unsubscribed/add`) on one local server.
/// Faults apply to SparkLoop calls only.
pub struct FakeApis {
    pub url: String,
    pub state: Arc<FakeApiState>,
}

impl FakeApis {
    pub async fn start(faults: ApiFaults, repeats: Repeats, record_calls: bool) -> Self {
        let state = Arc::new(FakeApiState {
            faults: Mutex::new(faults),
            repeats,
            permanent_prefix: "perm-".into(),
            inner: Mutex::default(),
            answers: Counter::default(),
            hold: Mutex::new(None),
            reached: Notify::new(),
            record_calls,
            fail_next: Mutex::default(),
        });
        let router = axum::Router::new()
            .fallback(api_handler)
            .with_state(state.clone());
        let url = serve_on_own_thread(router);
        Self { url, state }
    }

    pub fn set_faults(&self, faults: ApiFaults) {
        *lock(&self.state.faults) = faults;
    }

    /// Answers the next `n` calls of `op` (`unsubscribe`, `change_email`, `upsert`, ...) 500.
    pub fn fail_next(&self, op: &str, n: u32) {
        lock(&self.state.fail_next).insert(op.to_string(), n);
    }

    pub fn hold(&self, hold: Hold) {
        *lock(&self.state.hold) = Some(hold);
    }

    /// Effects per target.
    pub fn effects(&self) -> HashMap<String, u32> {
        lock(&self.state.inner).effects.clone()
    }

    /// Deliberate hangs per target.
    pub fn hangs(&self) -> HashMap<String, u32> {
        lock(&self.state.inner).hangs.clone()
    }

    pub fn calls(&self) -> Vec<ApiCall> {
        lock(&self.state.inner).calls.clone()
    }

    pub fn calls_to(&self, target: &str) -> Vec<ApiCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.target == target)
            .collect()
    }
}

/// Percent-decodes a path segment (what `encode_identifier` produced).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).expect("valid status");
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in headers {
        resp.headers_mut()
            .insert(*k, HeaderValue::from_str(v).expect("header value"));
    }
    resp
}

/// (api, op, target) of a request, or None if it is not one the bridge makes.
fn classify_call(
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> Option<(&'static str, String, String)> {
    if let Some(rest) = path.strip_prefix("/v2/subscribers/") {
        let (id, op) = match rest.split_once('/') {
            Some((id, "unsubscribe")) => (id, "unsubscribe".to_string()),
            Some((id, "reject")) => (id, "reject".to_string()),
            Some(_) => return None,
            None if body.get("email").is_some() => (rest, "change_email".to_string()),
            None => (rest, "confirm".to_string()),
        };
        return (method == "PUT").then(|| ("sparkloop", op, percent_decode(id)));
    }
    match (method, path) {
        ("PUT", "/api/v1/contacts/update") => {
            let email = body.get("email")?.as_str()?.to_string();
            let op = if body.get("subscribed") == Some(&serde_json::Value::Bool(false)) {
                "unsubscribe"
            } else {
                "upsert"
            };
            Some(("loops", op.into(), email))
        }
        ("POST", "/api/v1/contacts") => {
            let email = body
                .pointer("/contacts/0/channels/0/value")
                .and_then(|v| v.as_str())?
                .to_string();
            Some(("esputnik", "contact".into(), email))
        }
        ("POST", "/api/v1/emails/unsubscribed/add") => {
            let email = body
                .pointer("/emails/0")
                .and_then(|v| v.as_str())?
                .to_string();
            Some(("esputnik", "unsubscribed_add".into(), email))
        }
        _ => None,
    }
}

async fn api_handler(State(st): State<Arc<FakeApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let Some((api, op, target)) = classify_call(parts.method.as_str(), parts.uri.path(), &json)
    else {
        return json_response(404, r#"{"error":"no such route"}"#, &[]);
    };
    let hold = {
        let mut h = lock(&st.hold);
        match h.as_ref() {
            Some(spec) if spec.target == target => h.take(),
            _ => None,
        }
    };
    if let Some(hold) = hold {
        if hold.after_effect {
            apply(&st, api, &op, &target, 200, true);
        }
        st.answers.add("held");
        st.reached.notify_one();
        std::future::pending::<()>().await;
    }
    let forced = {
        let mut f = lock(&st.fail_next);
        match f.get_mut(&op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    };
    if forced {
        st.answers.add("500");
        record(&st, api, &op, &target, 500, "");
        return json_response(500, r#"{"error":"Internal server error"}"#, &[]);
    }
    if api == "sparkloop" {
        if target.starts_with(&st.permanent_prefix) {
            st.answers.add("400");
            record(&st, api, &op, &target, 400, "");
            return json_response(400, r#"{"error":"Subscriber uuid blank!"}"#, &[]);
        }
        let f = *lock(&st.faults);
        let r = roll();
        if r < f.p500 {
            st.answers.add("500");
            record(&st, api, &op, &target, 500, "");
            return json_response(500, r#"{"error":"Internal server error"}"#, &[]);
        }
        if r < f.p500 + f.p429 {
            st.answers.add("429");
            record(&st, api, &op, &target, 429, "");
            return json_response(
                429,
                r#"{"error":"Too many requests"}"#,
                &[("retry-after", "0")],
            );
        }
        if r < f.p500 + f.p429 + f.p_hang {
            st.answers.add("hang");
            record(&st, api, &op, &target, 0, "");
            *lock(&st.inner).hangs.entry(target.clone()).or_default() += 1;
            tokio::time::sleep(f.hang).await;
            return json_response(503, r#"{"error":"late"}"#, &[]);
        }
    }
    let (status, body) = answer(&st, api, &op, &target);
    st.answers.add(status.to_string());
    json_response(status, &body, &[])
}

fn record(st: &FakeApiState, api: &'static str, op: &str, target: &str, status: u16, body: &str) {
    if !st.record_calls {
        return;
    }
    lock(&st.inner).calls.push(ApiCall {
        api,
        op: op.to_string(),
        target: target.to_string(),
        status,
        body: body.to_string(),
        effect: false,
        at: Instant::now(),
    });
}

fn apply(st: &FakeApiState, api: &'static str, op: &str, target: &str, status: u16, effect: bool) {
    let mut inner = lock(&st.inner);
    if effect {
        *inner.effects.entry(target.to_string()).or_default() += 1;
        inner.applied.insert(
            (api.to_string(), op.to_string(), target.to_string()),
            Instant::now(),
        );
    }
    if st.record_calls {
        inner.calls.push(ApiCall {
            api,
            op: op.to_string(),
            target: target.to_string(),
            status,
            body: String::new(),
            effect,
            at: Instant::now(),
        });
    }
}

/// The answer to a call that got through the faults: the effect, or what a repeat gets.
fn answer(st: &FakeApiState, api: &'static str, op: &str, target: &str) -> (u16, String) {
    let key = (api.to_string(), op.to_string(), target.to_string());
    let before = lock(&st.inner).applied.get(&key).copied();
    if st.repeats == Repeats::Always200 || before.is_none() {
        apply(st, api, op, target, 200, true);
        let body = match api {
            "sparkloop" => format!(r#"{{"subscriber":{{"id":"sub_x","email":"{target}"}}}}"#),
            "loops" => r#"{"success":true,"id":"cnt_1"}"#.to_string(),
            _ => "{}".to_string(),
        };
        return (200, body);
    }
    let (status, body) = match (api, op) {
        ("sparkloop", "unsubscribe") => (409, r#"{"error":"Subscriber is already unsubscribed"}"#),
        ("sparkloop", "reject") => (400, r#"{"error":"Subscriber is not pending"}"#),
        ("sparkloop", "confirm") => (200, r#"{"subscriber":{"status":"confirmed"}}"#),
        ("sparkloop", "change_email") => (404, r#"{"error":"Subscriber not found!"}"#),
        ("loops", _) => (200, r#"{"success":true,"id":"cnt_1"}"#),
        ("esputnik", _) if before.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) => {
            (400, r#"{"error":"Duplicated request"}"#)
        }
        _ => (200, "{}"),
    };
    record(st, api, op, target, status, body);
    (status, body.to_string())
}

/// Wraps the SparkLoop port and counts, per target, the timeouts the worker saw. A timeout
/// the fake did not cause (it answered, but too late for the client) is an answer lost on
/// the way back: the effect happened and the worker retries, by design.
/// Calls abandoned mid-flight (the invocation was killed) count too: the fake may have
/// applied them.
pub struct ObservedSparkLoop {
    pub inner: Arc<dyn shared::ports::SparkLoopApi>,
    timeouts: Arc<Mutex<HashMap<String, u32>>>,
    pub outcomes: Counter,
}

/// Counts a call as abandoned unless it finished.
struct InFlight {
    target: String,
    done: bool,
    timeouts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            *lock(&self.timeouts).entry(self.target.clone()).or_default() += 1;
        }
    }
}

impl ObservedSparkLoop {
    pub fn new(inner: Arc<dyn shared::ports::SparkLoopApi>) -> Self {
        Self {
            inner,
            timeouts: Arc::default(),
            outcomes: Counter::default(),
        }
    }

    pub fn timeouts(&self) -> HashMap<String, u32> {
        lock(&self.timeouts).clone()
    }
}

#[async_trait]
impl shared::ports::SparkLoopApi for ObservedSparkLoop {
    async fn call(
        &self,
        target: &str,
        call: &shared::core::outbound::SparkLoopCall,
    ) -> shared::core::outbound::CallOutcome {
        let mut flight = InFlight {
            target: target.to_string(),
            done: false,
            timeouts: self.timeouts.clone(),
        };
        let out = self.inner.call(target, call).await;
        flight.done = true;
        drop(flight);
        if let shared::core::outbound::CallOutcome::Retry { reason, .. } = &out {
            self.outcomes.add(format!("retry: {reason}"));
            if reason == "timeout" {
                *lock(&self.timeouts).entry(target.to_string()).or_default() += 1;
            }
        } else {
            self.outcomes.add(out.label());
        }
        out
    }

    async fn referrals(
        &self,
        page: u32,
        per_page: u32,
    ) -> Result<shared::core::reconcile::ReferralPage, shared::core::outbound::CallOutcome> {
        self.inner.referrals(page, per_page).await
    }
}

// ---------------------------------------------------------------------------------------------
// Fault-injecting and counting wrappers for the ports
// ---------------------------------------------------------------------------------------------

/// Outcome counters of the idempotency store as the worker saw them, and a short history
/// per key for explaining anomalies.
#[derive(Default, Debug)]
pub struct StoreStats {
    pub acquire: Counter,
    pub complete: Counter,
    pub release: Counter,
    pub injected: Counter,
    inner: Mutex<StoreTrack>,
    /// The first few errors the store returned.
    pub errors: Mutex<Vec<String>>,
}

#[derive(Default, Debug)]
struct StoreTrack {
    /// Owner -> (key, whether its last `complete` failed).
    last_complete: HashMap<String, (String, bool)>,
    /// Key -> times acquired.
    acquired: HashMap<String, u32>,
    /// Key -> the live holder as the store decided it (owner, lease end in epoch ms).
    holder: HashMap<String, (String, i64)>,
    /// Keys granted to a second owner while the first held a live lease (never legal).
    double_grants: Vec<String>,
    /// Key -> (ms since start, what happened).
    history: HashMap<String, Vec<(u64, String)>>,
    start: Option<Instant>,
}

impl StoreTrack {
    fn note(&mut self, key: &str, what: String) {
        let start = *self.start.get_or_insert_with(Instant::now);
        self.history
            .entry(key.to_string())
            .or_default()
            .push((start.elapsed().as_millis() as u64, what));
    }
}

fn short(owner: &str) -> &str {
    &owner[..owner.len().min(8)]
}

impl StoreStats {
    /// Keys whose last completion attempt failed: the worker acknowledged them with
    /// "complete failed" and left the lease IN_PROGRESS until it expires.
    pub fn gave_up(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.inner)
            .last_complete
            .values()
            .filter(|(_, failed)| *failed)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// How often each key was acquired (>1: retried after a release, or taken over).
    pub fn acquisitions(&self) -> HashMap<String, u32> {
        lock(&self.inner).acquired.clone()
    }

    /// Keys the store granted to a second owner while another held a live lease.
    pub fn double_grants(&self) -> Vec<String> {
        lock(&self.inner).double_grants.clone()
    }

    /// What happened to `key`, one line per store call.
    pub fn history(&self, key: &str) -> String {
        lock(&self.inner)
            .history
            .get(key)
            .map(|h| {
                h.iter()
                    .map(|(ms, what)| format!("{ms}ms {what}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn error(&self, what: &str, e: &StoreError) {
        let mut errs = lock(&self.errors);
        if errs.len() < 10 {
            let text = e.to_string();
            errs.push(format!("{what}: {}", &text[..text.len().min(300)]));
        }
    }
}

/// Wraps an `IdempotencyStore`: counts outcomes, keeps a history per key, detects double
/// grants, and injects faults (before: nothing written; after: written, but the caller sees
/// `Unavailable`).
pub struct ChaosStore {
    inner: Arc<dyn IdempotencyStore>,
    faults: Mutex<Faults>,
    pub stats: Arc<StoreStats>,
    /// How many more times `complete` fails for a key (crash-window tests).
    pub fail_complete_for: Mutex<BTreeMap<String, u32>>,
}

impl ChaosStore {
    pub fn new(inner: Arc<dyn IdempotencyStore>, faults: Faults) -> Self {
        Self {
            inner,
            faults: Mutex::new(faults),
            stats: Arc::default(),
            fail_complete_for: Mutex::default(),
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    fn fault(&self) -> Option<bool> {
        lock(&self.faults).decide()
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault ({what})"))
}

fn fault_label(fault: Option<bool>) -> &'static str {
    match fault {
        Some(true) => " [fault before]",
        Some(false) => " [fault after]",
        None => "",
    }
}

#[async_trait]
impl IdempotencyStore for ChaosStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        let fault = self.fault();
        if fault == Some(true) {
            self.stats.injected.add("acquire.before");
            self.stats.acquire.add("err");
            lock(&self.stats.inner).note(key, "acquire err [fault before]".into());
            return Err(injected("before"));
        }
        let r = self.inner.acquire(key, req).await;
        {
            let mut t = lock(&self.stats.inner);
            let label = match &r {
                Ok(Acquire::Acquired) => {
                    *t.acquired.entry(key.to_string()).or_default() += 1;
                    let now = Utc::now().timestamp_millis();
                    if let Some((prev, until)) = t.holder.get(key).cloned() {
                        // 50 ms of slack for clocks read at different moments.
                        if now + 50 < until && prev != req.owner {
                            t.double_grants.push(key.to_string());
                        }
                    }
                    t.holder
                        .insert(key.to_string(), (req.owner.clone(), req.lease_until_ms));
                    format!(
                        "acquired by {} for {}ms",
                        short(&req.owner),
                        req.lease_until_ms - req.now_ms
                    )
                }
                Ok(Acquire::Duplicate { .. }) => "duplicate".into(),
                Ok(Acquire::InProgress { .. }) => "in_progress".into(),
                Ok(Acquire::Conflict { .. }) => "conflict".into(),
                Err(_) => "acquire err".into(),
            };
            t.note(key, format!("{label}{}", fault_label(fault)));
        }
        if let Err(e) = &r {
            self.stats.error("acquire", e);
        }
        if fault == Some(false) {
            self.stats.injected.add("acquire.after");
            self.stats.acquire.add("err");
            return Err(injected("after"));
        }
        self.stats.acquire.add(match &r {
            Ok(Acquire::Acquired) => "acquired",
            Ok(Acquire::Duplicate { .. }) => "duplicate",
            Ok(Acquire::InProgress { .. }) => "in_progress",
            Ok(Acquire::Conflict { .. }) => "conflict",
            Err(_) => "err",
        });
        r
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
        writes: &[StateWrite],
    ) -> Result<bool, StoreError> {
        let forced = match lock(&self.fail_complete_for).get_mut(key) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        let fault = if forced { Some(true) } else { self.fault() };
        self.forget_holder(key, owner, fault);
        let inner = match fault {
            Some(true) => None,
            _ => Some(
                self.inner
                    .complete(key, owner, keep_until, outcome, writes)
                    .await,
            ),
        };
        {
            let mut t = lock(&self.stats.inner);
            let label = match &inner {
                None => "complete err".to_string(),
                Some(Ok(true)) => "completed".into(),
                Some(Ok(false)) => "complete: lease lost".into(),
                Some(Err(_)) => "complete err".into(),
            };
            t.note(
                key,
                format!("{label} by {}{}", short(owner), fault_label(fault)),
            );
        }
        let before = if forced {
            "complete.forced"
        } else {
            "complete.before"
        };
        let r = self.settle(
            "complete",
            before,
            fault,
            inner,
            &self.stats.complete,
            "completed",
        );
        lock(&self.stats.inner)
            .last_complete
            .insert(owner.to_string(), (key.to_string(), r.is_err()));
        r
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let fault = self.fault();
        self.forget_holder(key, owner, fault);
        let inner = if fault == Some(true) {
            None
        } else {
            Some(self.inner.release(key, owner).await)
        };
        {
            let mut t = lock(&self.stats.inner);
            let label = match &inner {
                Some(Ok(true)) => "released",
                Some(Ok(false)) => "release: lease lost",
                _ => "release err",
            };
            t.note(
                key,
                format!("{label} by {}{}", short(owner), fault_label(fault)),
            );
        }
        self.settle(
            "release",
            "release.before",
            fault,
            inner,
            &self.stats.release,
            "released",
        )
    }
}

impl ChaosStore {
    /// Once the write may reach the store (no fault before it), the holder may be gone at any
    /// moment (the SDK may retry a write that already happened), so a later grant is no
    /// longer a double grant.
    fn forget_holder(&self, key: &str, owner: &str, fault: Option<bool>) {
        if fault != Some(true) {
            let mut t = lock(&self.stats.inner);
            if t.holder.get(key).is_some_and(|(o, _)| o == owner) {
                t.holder.remove(key);
            }
        }
    }

    /// The answer of a `complete` or `release`: the injected error (counted as `before`, or
    /// `<op>.after`) or the inner store's; errors recorded, outcomes counted.
    fn settle(
        &self,
        op: &'static str,
        before: &'static str,
        fault: Option<bool>,
        inner: Option<Result<bool, StoreError>>,
        outcomes: &Counter,
        done: &'static str,
    ) -> Result<bool, StoreError> {
        let r = match (fault, inner) {
            (Some(true), _) => {
                self.stats.injected.add(before);
                Err(injected("before"))
            }
            (Some(false), _) => {
                self.stats.injected.add(format!("{op}.after"));
                Err(injected("after"))
            }
            (None, Some(r)) => r,
            (None, None) => unreachable!("no fault means the inner store was called"),
        };
        if let Err(e) = &r {
            self.stats.error(op, e);
        }
        outcomes.add(match &r {
            Ok(true) => done,
            Ok(false) => "lease_lost",
            Err(_) => "err",
        });
        r
    }
}

/// Spreads keys over several stores (one DynamoDB table each). DynamoDB partitions by key
/// anyway; on moto this keeps each table small, because moto deep-copies the whole table on
/// every TransactWriteItems (O(table size), and not thread-safe: "dictionary changed size
/// during iteration" answers 500 under concurrency).
pub struct ShardedStore {
    pub shards: Vec<Arc<dyn IdempotencyStore>>,
}

impl ShardedStore {
    fn shard(&self, key: &str) -> &Arc<dyn IdempotencyStore> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() % self.shards.len() as u64) as usize]
    }
}

#[async_trait]
impl IdempotencyStore for ShardedStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        self.shard(key).acquire(key, req).await
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
        writes: &[StateWrite],
    ) -> Result<bool, StoreError> {
        self.shard(key)
            .complete(key, owner, keep_until, outcome, writes)
            .await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        self.shard(key).release(key, owner).await
    }
}

/// Wraps the worker's queue port (back-off, parking) with faults.
pub struct ChaosWorkQueue {
    pub inner: Arc<dyn WorkQueue>,
    pub faults: Faults,
    pub injected: Counter,
}

#[async_trait]
impl WorkQueue for ChaosWorkQueue {
    async fn delay(&self, receipt: &str, secs: u64) -> Result<(), QueueError> {
        match self.faults.decide() {
            Some(true) => {
                self.injected.add("delay.before");
                Err(QueueError::Unavailable("injected".into()))
            }
            Some(false) => {
                let _ = self.inner.delay(receipt, secs).await;
                self.injected.add("delay.after");
                Err(QueueError::Unavailable("injected".into()))
            }
            None => self.inner.delay(receipt, secs).await,
        }
    }

    async fn park(&self, message: OutboundMessage) -> Result<(), QueueError> {
        match self.faults.decide() {
            Some(true) => {
                self.injected.add("park.before");
                Err(QueueError::Unavailable("injected".into()))
            }
            Some(false) => {
                let _ = self.inner.park(message).await;
                self.injected.add("park.after");
                Err(QueueError::Unavailable("injected".into()))
            }
            None => self.inner.park(message).await,
        }
    }
}

/// Wraps the ingest side (`EventQueue`) with faults; the feeder retries like a provider
/// retries a webhook answered 503.
pub struct ChaosEventQueue {
    pub inner: Arc<dyn EventQueue>,
    pub faults: Faults,
    pub injected: Counter,
}

#[async_trait]
impl EventQueue for ChaosEventQueue {
    async fn enqueue(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        match self.faults.decide() {
            Some(true) => {
                self.injected.add("enqueue.before");
                Err(QueueError::Unavailable("injected".into()))
            }
            Some(false) => {
                let _ = self.inner.enqueue(messages).await;
                self.injected.add("enqueue.after");
                Err(QueueError::Unavailable("injected".into()))
            }
            None => self.inner.enqueue(messages).await,
        }
    }

    fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes()
    }
}

/// Wraps a `BatchSource`: counts receives and deletes, records the highest receive count,
/// injects faults, and can "crash" between the handler and the deletes (`skip_deletes`).
pub struct ChaosSource {
    pub inner: Arc<dyn BatchSource>,
    pub faults: Faults,
    pub received: AtomicU64,
    pub deleted: AtomicU64,
    pub max_receive_count: AtomicU64,
    pub injected: Counter,
    pub skip_deletes: AtomicBool,
}

impl ChaosSource {
    pub fn new(inner: Arc<dyn BatchSource>, faults: Faults) -> Self {
        Self {
            inner,
            faults,
            received: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            max_receive_count: AtomicU64::new(0),
            injected: Counter::default(),
            skip_deletes: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl BatchSource for ChaosSource {
    async fn receive(&self) -> Result<Vec<Delivery>, SourceError> {
        let fault = self.faults.decide();
        if fault == Some(true) {
            self.injected.add("receive.before");
            return Err(SourceError::Receive("injected (before)".into()));
        }
        let got = self.inner.receive().await?;
        if fault == Some(false) {
            self.injected.add("receive.after");
            return Err(SourceError::Receive("injected (after)".into()));
        }
        self.received.fetch_add(got.len() as u64, Ordering::Relaxed);
        for d in &got {
            self.max_receive_count
                .fetch_max(d.receive_count as u64, Ordering::Relaxed);
        }
        Ok(got)
    }

    async fn delete(&self, receipt: &str) -> Result<(), SourceError> {
        if self.skip_deletes.load(Ordering::SeqCst) {
            return Ok(());
        }
        let fault = self.faults.decide();
        if fault == Some(true) {
            self.injected.add("delete.before");
            return Err(SourceError::Delete("injected (before)".into()));
        }
        self.inner.delete(receipt).await?;
        if fault == Some(false) {
            self.injected.add("delete.after");
            return Err(SourceError::Delete("injected (after)".into()));
        }
        self.deleted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Pollers: Lambda's SQS event source, with invocations killed at their deadline
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
pub struct PollStats {
    pub invocations: AtomicU64,
    pub records: AtomicU64,
    pub empty_polls: AtomicU64,
    pub poll_errors: AtomicU64,
    /// Invocations that ran past their budget and were dropped, as Lambda kills a timed-out
    /// invocation (nothing of that batch is deleted).
    pub killed: AtomicU64,
}

/// One invocation (see `Pollers::spawn`).
pub async fn invoke(
    source: &dyn BatchSource,
    worker: &Worker,
    budget: Duration,
    stats: &PollStats,
) {
    let batch = match source.receive().await {
        Ok(b) => b,
        Err(_) => {
            stats.poll_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    };
    if batch.is_empty() {
        stats.empty_polls.fetch_add(1, Ordering::Relaxed);
        return;
    }
    stats.invocations.fetch_add(1, Ordering::Relaxed);
    stats
        .records
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let ev = shared::local::sqs_event(&batch);
    let deadline = Utc::now().timestamp_millis() + budget.as_millis() as i64;
    let Ok(resp) = tokio::time::timeout(budget, worker.handle(&ev, deadline)).await else {
        stats.killed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let failed: BTreeSet<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for d in &batch {
        if !failed.contains(d.id.as_str()) && source.delete(&d.receipt).await.is_err() {
            stats.poll_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct Pollers {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<PollStats>,
}

impl Pollers {
    /// `n` concurrent pollers, each doing what Lambda's SQS event source mapping does:
    /// receive a batch, invoke the handler with a deadline `budget` away and **kill the
    /// invocation at that deadline** (nothing of the batch is deleted then), otherwise delete
    /// every record not reported failed, carrying on past a failed delete.
    ///
    /// Like `shared::local::poll_once`, but the kill is aligned with the handler's deadline
    /// (poll_once's budget also covers the receive, so a timer around it would let a handler
    /// outlive its deadline, and its leases, by up to the long-poll wait), and a failed
    /// delete does not skip the rest of the batch.
    pub fn spawn(
        source: Arc<dyn BatchSource>,
        worker: Arc<Worker>,
        n: usize,
        budget: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PollStats::default());
        let handles = (0..n)
            .map(|_| {
                let (source, worker, stop, stats) =
                    (source.clone(), worker.clone(), stop.clone(), stats.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        invoke(source.as_ref(), &worker, budget, &stats).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            handles,
            stats,
        }
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            let _ = h.await;
        }
    }

    pub fn line(&self) -> String {
        let s = &self.stats;
        format!(
            "invocations={} records={} empty_polls={} poll_errors={} killed_invocations={}",
            s.invocations.load(Ordering::Relaxed),
            s.records.load(Ordering::Relaxed),
            s.empty_polls.load(Ordering::Relaxed),
            s.poll_errors.load(Ordering::Relaxed),
            s.killed.load(Ordering::Relaxed),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The delivery plan
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct EventSpec {
    /// `provider#dedupe id`, the worker's idempotency key.
    pub key: String,
    /// The SparkLoop target (the email).
    pub target: String,
    pub permanent: bool,
    pub copies: u32,
}

pub struct Plan {
    pub seed: u64,
    pub events: Vec<EventSpec>,
    /// Messages in sending order; later copies sit further down.
    pub deliveries: Vec<OutboundMessage>,
    pub concurrent_copies: usize,
    pub later_copies: usize,
}

impl Plan {
    pub fn good(&self) -> usize {
        self.events.iter().filter(|e| !e.permanent).count()
    }

    pub fn line(&self) -> String {
        let hist = |c| self.events.iter().filter(|e| e.copies == c).count();
        format!(
            "seed={} unique={} permanent={} deliveries={} copies(1/2/3)={}/{}/{} extra_concurrent={} extra_later={}",
            self.seed,
            self.events.len(),
            self.events.len() - self.good(),
            self.deliveries.len(),
            hist(1),
            hist(2),
            hist(3),
            self.concurrent_copies,
            self.later_copies
        )
    }
}

/// A Loops `email.unsubscribed` or eSputnik `UNSUBSCRIBED` webhook for `email`, parsed by the
/// real parsers into the envelope ingest would queue.
pub fn unsubscribe_envelope(provider: Provider, i: usize, email: &str) -> Envelope {
    match provider {
        Provider::Loops => {
            let body = serde_json::json!({
                "eventName": "email.unsubscribed", "eventTime": 1_764_000_000 + i as i64,
                "webhookSchemaVersion": "1.0.0", "sourceType": "campaign", "campaignId": "cmp_chaos",
                "email": {"id": format!("send_{i}"), "emailMessageId": format!("m{i}"), "subject": "Hello"},
                "contactIdentity": {"id": format!("cid_{i}"), "email": email, "userId": null}
            })
            .to_string();
            let n = shared::core::loops::parse(body.as_bytes()).expect("a valid Loops body");
            // The webhook-id header Loops sends with every attempt of one event.
            Envelope::new(Provider::Loops, format!("msg_chaos_{i}"), Utc::now(), n)
        }
        _ => {
            let body = serde_json::json!([{
                "activityStatus": "UNSUBSCRIBED", "activityDateTime": "2026-01-02T10:00:00",
                "contactId": 100_000 + i, "email": email, "iid": format!("iid_{i}"),
                "messageInstanceId": 500_000 + i, "mediaType": "email"
            }])
            .to_string();
            let mut els = shared::core::esputnik::split(body.as_bytes(), chrono_tz::UTC);
            let el = els.pop().expect("one element");
            Envelope::new(Provider::Esputnik, el.dedupe_id, Utc::now(), el.event)
        }
    }
}

/// `good` events that succeed at the fake plus `permanent` ones it always answers 400, each
/// delivered 1 to 3 times. An extra copy is either "concurrent" (a few positions after the
/// first, so in the same or a neighbouring batch) or "later" (`later_gap` to 4 x `later_gap`
/// positions after it, typically once the first is processed).
pub fn plan(good: usize, permanent: usize, later_gap: usize, seed: u64) -> Plan {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut events = Vec::new();
    let mut slots: Vec<(f64, OutboundMessage)> = Vec::new();
    let (mut concurrent, mut later) = (0, 0);
    let total = good + permanent;
    let mut order: Vec<usize> = (0..total).collect();
    order.shuffle(&mut rng);
    for (pos, i) in order.into_iter().enumerate() {
        let permanent = i >= good;
        let email = if permanent {
            format!("perm-{i}@chaos.test")
        } else {
            format!("u{i}@chaos.test")
        };
        let provider = if i % 2 == 0 {
            Provider::Loops
        } else {
            Provider::Esputnik
        };
        let copies = rng.random_range(1..=3u32);
        let mut key = String::new();
        for c in 0..copies {
            let env = unsubscribe_envelope(provider, i, &email);
            key = env.idempotency_key();
            let at = if c == 0 {
                pos as f64
            } else if rng.random_bool(0.5) {
                concurrent += 1;
                pos as f64 + rng.random_range(0.1..30.0)
            } else {
                later += 1;
                pos as f64 + rng.random_range(later_gap as f64..4.0 * later_gap as f64)
            };
            slots.push((at, shared::ingest::to_message(&env)));
        }
        events.push(EventSpec {
            key,
            target: email,
            permanent,
            copies,
        });
    }
    slots.sort_by(|a, b| a.0.total_cmp(&b.0));
    Plan {
        seed,
        events,
        deliveries: slots.into_iter().map(|(_, m)| m).collect(),
        concurrent_copies: concurrent,
        later_copies: later,
    }
}

pub type DepthFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = usize> + Send>> + Send + Sync>;

#[derive(Default, Debug)]
pub struct FeedStats {
    pub sent: AtomicU64,
    pub send_errors: AtomicU64,
    pub waits: AtomicU64,
}

/// Sends the plan's deliveries in order, 10 per call, keeping at most `max_backlog` messages
/// on the queue; a refused send is retried, as a provider retries a webhook answered 503.
pub async fn feed(
    queue: Arc<dyn EventQueue>,
    deliveries: Vec<OutboundMessage>,
    depth: DepthFn,
    max_backlog: usize,
    stats: Arc<FeedStats>,
) {
    let mut since_check = usize::MAX;
    for chunk in deliveries.chunks(10) {
        if since_check >= 50 {
            since_check = 0;
            while depth().await > max_backlog {
                stats.waits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        since_check += chunk.len();
        loop {
            match queue.enqueue(chunk.to_vec()).await {
                Ok(()) => break,
                Err(_) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        stats.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

/// Waits until the queue stays empty (three checks in a row); false on `timeout`.
pub async fn wait_drained(depth: &DepthFn, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut zeros = 0;
    while Instant::now() < end {
        if depth().await == 0 {
            zeros += 1;
            if zeros >= 3 {
                return true;
            }
        } else {
            zeros = 0;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Accounting
// ---------------------------------------------------------------------------------------------

/// A parked message: its idempotency key and the worker's error attribute.
#[derive(Debug, Clone)]
pub struct Parked {
    pub key: String,
    pub error: String,
}

impl Parked {
    pub fn from_message(body: &str, attributes: &HashMap<String, String>) -> Self {
        let key = serde_json::from_str::<Envelope>(body)
            .map(|e| e.idempotency_key())
            .unwrap_or_else(|_| format!("unparseable:{body}"));
        Self {
            key,
            error: attributes.get("error").cloned().unwrap_or_default(),
        }
    }
}

#[derive(Debug)]
pub struct Accounting {
    pub events: usize,
    pub effects: u64,
    pub lost: Vec<String>,
    pub duplicated: Vec<(String, u32)>,
    /// Unique events on the DLQ.
    pub dlq: usize,
    pub dlq_messages: usize,
    /// DLQ entries that are not permanent failures (key, error).
    pub dlq_unexpected: Vec<(String, String)>,
    /// Permanent failures that are not on the DLQ.
    pub permanent_missing: Vec<String>,
    /// Effects at the fake for targets that must never succeed.
    pub permanent_effects: u64,
    /// Duplicate effects explained by answers lost to the client timeout or to a killed
    /// invocation (the fake answered 200, nobody read it): at-least-once by design.
    pub late_answer_duplicates: u64,
    /// Keys with duplicates the late answers do not explain.
    pub unexplained: Vec<String>,
}

impl Accounting {
    /// `timeouts`: per target, timeouts the worker saw; `hangs`: per target, deliberate
    /// hangs at the fake. Timeouts beyond the hangs were 200s answered too late.
    pub fn new(
        plan: &Plan,
        effects: &HashMap<String, u32>,
        dlq: &[Parked],
        timeouts: &HashMap<String, u32>,
        hangs: &HashMap<String, u32>,
    ) -> Self {
        let mut late_answer_duplicates = 0u64;
        let mut unexplained = Vec::new();
        let mut total = 0u64;
        let mut lost = Vec::new();
        let mut duplicated = Vec::new();
        let mut permanent_effects = 0u64;
        for e in &plan.events {
            let n = effects.get(&e.target).copied().unwrap_or(0);
            if e.permanent {
                permanent_effects += n as u64;
                continue;
            }
            total += n as u64;
            if n == 0 {
                lost.push(e.key.clone());
            }
            if n > 1 {
                duplicated.push((e.key.clone(), n));
                let late = timeouts
                    .get(&e.target)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(hangs.get(&e.target).copied().unwrap_or(0));
                late_answer_duplicates += (n - 1).min(late) as u64;
                if n - 1 > late {
                    unexplained.push(e.key.clone());
                }
            }
        }
        let permanent: BTreeSet<&str> = plan
            .events
            .iter()
            .filter(|e| e.permanent)
            .map(|e| e.key.as_str())
            .collect();
        let parked: BTreeSet<&str> = dlq.iter().map(|p| p.key.as_str()).collect();
        let mut unexpected: Vec<(String, String)> = dlq
            .iter()
            .filter(|p| !permanent.contains(p.key.as_str()))
            .map(|p| (p.key.clone(), p.error.clone()))
            .collect();
        unexpected.sort();
        Self {
            events: plan.good(),
            effects: total,
            lost,
            duplicated,
            dlq: parked.len(),
            dlq_messages: dlq.len(),
            dlq_unexpected: unexpected,
            permanent_missing: permanent
                .difference(&parked)
                .map(|s| s.to_string())
                .collect(),
            permanent_effects,
            late_answer_duplicates,
            unexplained,
        }
    }

    /// Duplicate effects (every effect beyond the first).
    pub fn duplicates(&self) -> u64 {
        self.duplicated.iter().map(|(_, n)| (n - 1) as u64).sum()
    }

    /// Duplicates the late answers do not explain: a dedupe failure.
    pub fn unexplained_duplicates(&self) -> u64 {
        self.duplicates() - self.late_answer_duplicates
    }

    /// `events=N effects=N lost=0 duplicates=0 dlq=K`
    pub fn line(&self) -> String {
        format!(
            "events={} effects={} lost={} duplicates={} dlq={}",
            self.events,
            self.effects,
            self.lost.len(),
            self.duplicated
                .iter()
                .map(|(_, n)| (n - 1) as u64)
                .sum::<u64>(),
            self.dlq
        )
    }

    pub fn detail(&self) -> String {
        format!(
            "duplicates_from_late_answers={} unexplained_duplicates={} dlq_messages={} dlq_not_permanent={} permanent_missing_from_dlq={} permanent_effects={}",
            self.late_answer_duplicates,
            self.unexplained_duplicates(),
            self.dlq_messages,
            self.dlq_unexpected.len(),
            self.permanent_missing.len(),
            self.permanent_effects
        )
    }

    /// Exactly once: no loss, no duplicate, the DLQ holds exactly the permanent failures.
    pub fn is_clean(&self) -> bool {
        self.duplicated.is_empty() && self.is_at_least_once_clean()
    }

    /// As `is_clean`, but duplicates caused by answers lost to the client timeout are
    /// allowed (at-least-once): only a duplicate the dedupe should have stopped fails it.
    pub fn is_at_least_once_clean(&self) -> bool {
        self.lost.is_empty()
            && self.unexplained_duplicates() == 0
            && self.dlq_unexpected.is_empty()
            && self.permanent_missing.is_empty()
            && self.permanent_effects == 0
            && self.effects == self.events as u64 + self.duplicates()
    }
}

/// Parses the chaos env knobs: `CHAOS_EVENTS`, `CHAOS_SEED`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An SQS batch source that deletes the way Lambda's event source mapping does: in
/// `DeleteMessageBatch` calls of up to 10 receipts (flushed when 10 are pending or every
/// 100 ms), not one `DeleteMessage` per record as `shared::local::SqsSource` does. A failed
/// flush only means the messages come back after their visibility timeout.
pub struct BatchDeleteSqsSource {
    receive: shared::local::SqsSource,
    pending: tokio::sync::Mutex<Vec<String>>,
    pub flushes: AtomicU64,
    pub flush_failures: AtomicU64,
}

impl BatchDeleteSqsSource {
    pub fn start(client: aws_sdk_sqs::Client, url: String, visibility_secs: i32) -> Arc<Self> {
        let me = Arc::new(Self {
            receive: shared::local::SqsSource {
                client,
                url,
                visibility_secs,
            },
            pending: tokio::sync::Mutex::new(Vec::new()),
            flushes: AtomicU64::new(0),
            flush_failures: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(me) = weak.upgrade() else { return };
                let batch: Vec<String> = std::mem::take(&mut *me.pending.lock().await);
                for chunk in batch.chunks(10) {
                    me.flush(chunk).await;
                }
            }
        });
        me
    }

    async fn flush(&self, receipts: &[String]) {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        let entries: Vec<_> = receipts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .ok()
            })
            .collect();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let out = self
            .receive
            .client
            .delete_message_batch()
            .queue_url(&self.receive.url)
            .set_entries(Some(entries))
            .send()
            .await;
        match out {
            Ok(o) if o.failed().is_empty() => {}
            _ => {
                self.flush_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[async_trait]
impl BatchSource for BatchDeleteSqsSource {
    async fn receive(&self) -> Result<Vec<Delivery>, SourceError> {
        self.receive.receive().await
    }

    async fn delete(&self, receipt: &str) -> Result<(), SourceError> {
        let full = {
            let mut p = self.pending.lock().await;
            p.push(receipt.to_string());
            if p.len() >= 10 {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        if let Some(batch) = full {
            self.flush(&batch).await;
        }
        Ok(())
    }
}

/// Prints `line()` to stderr every `every` until the returned handle is aborted (long runs).
pub fn progress(
    every: Duration,
    line: impl Fn() -> String + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            eprintln!(
                "[chaos {:>5.0}s] {}",
                started.elapsed().as_secs_f64(),
                line()
            );
        }
    })
}
