//! The AWS proxy: a fault-injecting proxy in front of moto.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::faults::{lock, Counter, Faults};
use super::serve::serve;

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
