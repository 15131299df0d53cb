//! Fake third-party APIs: SparkLoop, Loops and eSputnik, injecting faults and counting effects
//! per target.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use tokio::sync::Notify;

use super::faults::{lock, roll, Counter};
use super::serve::serve_on_own_thread;

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
    pub inner: Arc<dyn sparkbridge::ports::SparkLoopApi>,
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
    pub fn new(inner: Arc<dyn sparkbridge::ports::SparkLoopApi>) -> Self {
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
impl sparkbridge::ports::SparkLoopApi for ObservedSparkLoop {
    async fn call(
        &self,
        target: &str,
        call: &sparkbridge::core::outbound::SparkLoopCall,
    ) -> sparkbridge::core::outbound::CallOutcome {
        let mut flight = InFlight {
            target: target.to_string(),
            done: false,
            timeouts: self.timeouts.clone(),
        };
        let out = self.inner.call(target, call).await;
        flight.done = true;
        drop(flight);
        if let sparkbridge::core::outbound::CallOutcome::Retry { reason, .. } = &out {
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
    ) -> Result<sparkbridge::core::reconcile::ReferralPage, sparkbridge::core::outbound::CallOutcome>
    {
        self.inner.referrals(page, per_page).await
    }
}
