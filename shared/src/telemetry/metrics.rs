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
    document_of(&[(name, value)], dimensions, timestamp_ms)
}

/// One EMF document carrying several metrics of the same dimensions: one log line for all
/// of them. Metrics of value 0 are left out (as [`count`] leaves them out).
pub fn document_of(
    metrics: &[(&str, f64)],
    dimensions: &[(&str, &str)],
    timestamp_ms: i64,
) -> Value {
    let mut root = Map::new();
    let dims: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let names: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dims],
                "Metrics": names
            }]
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::String((*v).into()));
    }
    for (name, value) in metrics {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root)
}

pub fn count(name: &str, value: usize, dimensions: &[(&str, &str)]) {
    counts(&[(name, value)], dimensions);
}

/// Several counts of the same dimensions, in one line.
pub fn counts(metrics: &[(&str, usize)], dimensions: &[(&str, &str)]) {
    if !enabled() {
        return;
    }
    let metrics: Vec<(&str, f64)> = metrics
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(name, v)| (*name, *v as f64))
        .collect();
    if metrics.is_empty() {
        return;
    }
    let doc = document_of(&metrics, dimensions, chrono::Utc::now().timestamp_millis());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{doc}");
}

pub fn webhook_received(provider: &str, events: usize) {
    counts(
        &[("WebhooksReceived", 1), ("EventsQueued", events)],
        &[("Provider", provider)],
    );
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

    #[test]
    fn several_metrics_share_one_document() {
        let d = document_of(
            &[("WebhooksReceived", 1.0), ("EventsQueued", 4.0)],
            &[("Provider", "esputnik")],
            7,
        );
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"][0], json!(["Provider"]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "WebhooksReceived", "Unit": "Count"}, {"Name": "EventsQueued", "Unit": "Count"}])
        );
        assert_eq!(d["Provider"], "esputnik");
        assert_eq!(d["WebhooksReceived"], 1.0);
        assert_eq!(d["EventsQueued"], 4.0);
    }
}
