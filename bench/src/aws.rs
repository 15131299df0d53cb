//! moto clients and resources, and an SDK interceptor that counts the requests that really
//! go out (one per HTTP request, retries included) by operation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde_json::{json, Value};

/// The operation of the request in flight, kept in its config bag for the response hook.
#[derive(Debug, Clone)]
struct Op(String);

impl Storable for Op {
    type Storer = StoreReplace<Op>;
}

pub async fn moto_config(endpoint: &str) -> Result<aws_config::SdkConfig, String> {
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect(&hostport),
    )
    .await
    .map_err(|_| format!("moto server at {endpoint} does not answer (scripts/moto.sh start)"))?
    .map_err(|e| format!("moto server at {endpoint}: {e} (scripts/moto.sh start)"))?;
    let creds = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "static");
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .load()
        .await)
}

/// A fresh queue (with its DLQ) and table; returns (queue URL, DLQ URL, table).
pub async fn fresh_resources(
    conf: &aws_config::SdkConfig,
) -> Result<(String, String, String), String> {
    let name = format!(
        "sb-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let sqs = aws_sdk_sqs::Client::new(conf);
    let mut urls = Vec::new();
    for q in [format!("{name}-dlq"), name.clone()] {
        let url = sqs
            .create_queue()
            .queue_name(q)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?
            .queue_url()
            .unwrap_or_default()
            .to_string();
        urls.push(url);
    }
    sparkbridge::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(conf), &name)
        .create_table_if_missing()
        .await
        .map_err(|e| e.to_string())?;
    Ok((urls[1].clone(), urls[0].clone(), name))
}

/// Requests by operation, and items inside batch or transaction requests.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub requests: BTreeMap<String, u64>,
    /// TransactWriteItems: items; SendMessageBatch / DeleteMessageBatch: entries.
    pub items: BTreeMap<String, u64>,
    /// Answers other than 200, by operation and error type (a retried request shows here).
    pub errors: BTreeMap<String, u64>,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests that answered 5xx (the SDK retries them): moto artifacts, not the design.
    pub fn server_errors(&self) -> u64 {
        self.errors
            .iter()
            .filter(|(k, _)| k.ends_with(" 500") || k.contains("InternalServerError"))
            .map(|(_, v)| v)
            .sum()
    }

    pub fn to_json(&self, per: f64) -> Value {
        let per_op: BTreeMap<&String, f64> = self
            .requests
            .iter()
            .map(|(k, v)| (k, *v as f64 / per))
            .collect();
        let items: BTreeMap<&String, f64> = self
            .items
            .iter()
            .map(|(k, v)| (k, *v as f64 / per))
            .collect();
        json!({
            "requests_per_event": per_op,
            "items_per_event": items,
            "errors": self.errors,
            "total_per_event": self.total() as f64 / per,
            "total_per_event_without_5xx_retries": (self.total() - self.server_errors()) as f64 / per,
        })
    }
}

#[derive(Debug, Default, Clone)]
pub struct Counter(Arc<Mutex<Counts>>);

impl Counter {
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "BenchRequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let req = context.request();
        let op = operation(req.headers().get("x-amz-target"));
        let body: Value = req
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let items = ["TransactItems", "Entries"]
            .iter()
            .find_map(|k| body[*k].as_array().map(|a| a.len() as u64));
        cfg.interceptor_state().store_put(Op(op.clone()));
        let mut c = self.0.lock().unwrap();
        *c.requests.entry(op.clone()).or_default() += 1;
        if let Some(n) = items {
            *c.items.entry(op).or_default() += n;
        }
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let resp = context.response();
        if resp.status().as_u16() == 200 {
            return Ok(());
        }
        let op = cfg
            .load::<Op>()
            .map(|o| o.0.clone())
            .unwrap_or_else(|| "unknown".into());
        let kind = resp
            .headers()
            .get("x-amzn-errortype")
            .or_else(|| resp.headers().get("x-amzn-query-error"))
            .map(|t| t.split(':').next().unwrap_or(t).to_string())
            .or_else(|| {
                resp.body()
                    .bytes()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    .and_then(|v| v["__type"].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| resp.status().as_u16().to_string());
        let kind = kind.rsplit('#').next().unwrap_or(&kind).to_string();
        *self
            .0
            .lock()
            .unwrap()
            .errors
            .entry(format!("{op} {kind}"))
            .or_default() += 1;
        Ok(())
    }
}

fn operation(target: Option<&str>) -> String {
    target
        .and_then(|t| t.split('.').next_back())
        .unwrap_or("unknown")
        .to_string()
}

/// DynamoDB and SQS clients on `conf` that count through `counter` (both SDKs re-export
/// the same `Intercept` trait).
pub fn counted_clients(
    conf: &aws_config::SdkConfig,
    counter: &Counter,
) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let ddb = aws_sdk_dynamodb::config::Builder::from(conf)
        .interceptor(counter.clone())
        .build();
    let sqs = aws_sdk_sqs::config::Builder::from(conf)
        .interceptor(counter.clone())
        .build();
    (
        aws_sdk_dynamodb::Client::from_conf(ddb),
        aws_sdk_sqs::Client::from_conf(sqs),
    )
}
