//! CloudWatch metrics in Embedded Metric Format (namespace `sparkbridge`): one JSON line on
//! stdout per data point, turned into metrics by CloudWatch Logs at no API cost.
//! Emitted inside Lambda (or with `SPARKBRIDGE_EMF=1`); elsewhere they would only be noise.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "sparkbridge";

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || std::env::var("SPARKBRIDGE_EMF").is_ok_and(|v| v == "1")
    })
}

/// Builds one EMF document (pure, for tests).
pub fn document(name: &str, value: f64, dimensions: &[(&str, &str)], timestamp_ms: i64) -> Value {
    let mut root = Map::new();
    let dims: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dims],
                "Metrics": [{"Name": name, "Unit": "Count"}]
            }]
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::String((*v).into()));
    }
    root.insert(name.into(), json!(value));
    Value::Object(root)
}

pub fn count(name: &str, value: usize, dimensions: &[(&str, &str)]) {
    if !enabled() || value == 0 {
        return;
    }
    let doc = document(
        name,
        value as f64,
        dimensions,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{doc}");
}

pub fn webhook_received(provider: &str, events: usize) {
    count("WebhooksReceived", 1, &[("Provider", provider)]);
    count("EventsQueued", events, &[("Provider", provider)]);
}

pub fn webhook_refused(provider: &str, reason: &str) {
    count(
        "WebhooksRefused",
        1,
        &[("Provider", provider), ("Reason", reason)],
    );
    if reason == "unauthorized" {
        // Dimensionless, so one alarm covers every provider.
        count("AuthFailures", 1, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let d = document(
            "WebhooksRefused",
            1.0,
            &[("Provider", "loops"), ("Reason", "unauthorized")],
            42,
        );
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "sparkbridge"
        );
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Provider", "Reason"])
        );
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "WebhooksRefused"
        );
        assert_eq!(d["Provider"], "loops");
        assert_eq!(d["WebhooksRefused"], 1.0);
        assert_eq!(d["_aws"]["Timestamp"], 42);
    }
}
