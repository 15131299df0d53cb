//! CloudWatch metrics in Embedded Metric Format (namespace `sparkbridge`): one JSON line on
//! stdout per data point, turned into metrics by CloudWatch Logs at no API cost.
//! Emitted inside Lambda (or with `SPARKBRIDGE_EMF=1`); elsewhere they would only be noise.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "sparkbridge";

/// Declares [`Metric`] and [`Metric::ALL`] from one list, so `ALL` cannot miss a metric, and
/// each metric's CloudWatch name is its variant's name.
macro_rules! metrics {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        /// Every metric the code emits. The template test checks that each one is alarmed or
        /// on the dashboard, and that the template shows no metric outside this list.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $($(#[$doc])* $name,)+
        }

        impl Metric {
            /// Every metric, in declaration order.
            pub const ALL: &'static [Metric] = &[$(Metric::$name,)+];

            /// The metric's CloudWatch name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$name => stringify!($name),)+
                }
            }
        }
    };
}

metrics! {
    /// A webhook accepted and queued (dimension `Provider`).
    WebhooksReceived,
    /// The events one accepted webhook queued (dimension `Provider`).
    EventsQueued,
    /// A webhook refused (dimensions `Provider`, `Reason`).
    WebhooksRefused,
    /// A webhook refused as unauthorized, any provider (no dimensions: one alarm for all).
    AuthFailures,
    /// An event too large for the queue, queued in its reference form (dimension `Provider`).
    Oversize,
    /// One outbound API call (dimensions `Target`, `Outcome`).
    OutboundCalls,
    /// A message left for SQS to redeliver after its back-off (dimension `Reason`).
    Retries,
    /// An event already handled (dimension `Provider`).
    DedupeHits,
    /// An event with nothing to do (dimension `Provider`).
    EventsIgnored,
    /// A message parked on the dead-letter queue by the worker.
    Parked,
    /// A referral below the screening criteria whose reject was queued.
    ScreeningRejects,
    /// A referral below the screening criteria that the ESP never emailed: not rejected.
    ScreeningNotEmailed,
    /// A reconcile run that refused to queue its repairs (too many unsubscribes, failed lookups).
    ReconcileRefused,
    /// The referrals one reconcile run compared.
    ReconcileChecked,
    /// The repairs one reconcile run queued, per kind (dimension `Kind`).
    ReconcileRepaired,
    /// The repairs one reconcile run queued, all kinds (no dimensions: the alarm's metric).
    ReconcileRepairedTotal,
}

static ON: OnceLock<bool> = OnceLock::new();

/// Set once, when logging starts (`crate::config::LogSettings::emf`); off until then.
pub(crate) fn enable(on: bool) {
    let _ = ON.set(on);
}

fn enabled() -> bool {
    ON.get().copied().unwrap_or(false)
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

pub fn count(metric: Metric, value: usize, dimensions: &[(&str, &str)]) {
    counts(&[(metric, value)], dimensions);
}

/// Several counts of the same dimensions, in one line.
pub fn counts(metrics: &[(Metric, usize)], dimensions: &[(&str, &str)]) {
    if !enabled() {
        return;
    }
    let metrics: Vec<(&str, f64)> = metrics
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(metric, v)| (metric.name(), *v as f64))
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
        &[
            (Metric::WebhooksReceived, 1),
            (Metric::EventsQueued, events),
        ],
        &[("Provider", provider)],
    );
}

pub fn webhook_refused(provider: &str, reason: &str) {
    count(
        Metric::WebhooksRefused,
        1,
        &[("Provider", provider), ("Reason", reason)],
    );
    if reason == "unauthorized" {
        // Dimensionless, so one alarm covers every provider.
        count(Metric::AuthFailures, 1, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are what the alarms, the dashboard and the operators' queries use.
    #[test]
    fn metric_names_are_the_published_ones() {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "WebhooksReceived",
                "EventsQueued",
                "WebhooksRefused",
                "AuthFailures",
                "Oversize",
                "OutboundCalls",
                "Retries",
                "DedupeHits",
                "EventsIgnored",
                "Parked",
                "ScreeningRejects",
                "ScreeningNotEmailed",
                "ReconcileRefused",
                "ReconcileChecked",
                "ReconcileRepaired",
                "ReconcileRepairedTotal",
            ]
        );
    }

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
