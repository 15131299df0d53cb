//! CloudWatch metrics in Embedded Metric Format (namespace `sparkbridge`): one JSON line on
//! stdout per data point, turned into metrics by CloudWatch Logs at no API cost.
//! Emitted inside Lambda (or with `SPARKBRIDGE_EMF=1`); elsewhere they would only be noise.
//! Inside [`gathered`] (the worker's batch) the counts wait for the end and go out as one line
//! per set of dimensions, each metric's values as an array: the same data points for fewer
//! bytes than a line per count.

use std::cell::RefCell;
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
pub fn document(name: &str, value: u64, dimensions: &[(&str, &str)], timestamp_ms: i64) -> Value {
    document_of(&[(name, &[value])], dimensions, timestamp_ms)
}

/// One EMF document carrying several metrics of the same dimensions: one log line for all
/// of them. A metric with one value is written as a number; with several, as an array, which
/// CloudWatch takes as that many data points (at most [`MAX_VALUES`]). Counts are whole, so
/// they are written without a fraction (`1`, not `1.0`).
pub fn document_of(
    metrics: &[(&str, &[u64])],
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
    for (name, values) in metrics {
        let value = match values {
            [one] => json!(one),
            many => json!(many),
        };
        root.insert((*name).into(), value);
    }
    Value::Object(root)
}

/// The most values one metric carries in one document (the EMF specification's limit).
pub const MAX_VALUES: usize = 100;

pub fn count(metric: Metric, value: usize, dimensions: &[(&str, &str)]) {
    counts(&[(metric, value)], dimensions);
}

/// Several counts of the same dimensions, in one line (or, inside [`gathered`], in its lines).
pub fn counts(metrics: &[(Metric, usize)], dimensions: &[(&str, &str)]) {
    if !enabled() {
        return;
    }
    let metrics: Vec<(&'static str, u64)> = metrics
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(metric, v)| (metric.name(), *v as u64))
        .collect();
    if metrics.is_empty() {
        return;
    }
    let held = GATHERED.try_with(|g| g.borrow_mut().add(&metrics, dimensions));
    if held.is_ok() {
        return;
    }
    let values: Vec<(&str, [u64; 1])> = metrics.iter().map(|(n, v)| (*n, [*v])).collect();
    let values: Vec<(&str, &[u64])> = values.iter().map(|(n, v)| (*n, &v[..])).collect();
    write(&document_of(
        &values,
        dimensions,
        chrono::Utc::now().timestamp_millis(),
    ));
}

fn write(doc: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{doc}");
}

tokio::task_local! {
    /// The counts of the [`gathered`] future running on this task.
    static GATHERED: RefCell<Gathered>;
}

/// Counts held until the end of a [`gathered`] future, by dimensions, in the order they
/// first came.
#[derive(Default)]
struct Gathered(Vec<Group>);

struct Group {
    dimensions: Vec<(String, String)>,
    metrics: Vec<(&'static str, Vec<u64>)>,
}

impl Gathered {
    fn add(&mut self, metrics: &[(&'static str, u64)], dimensions: &[(&str, &str)]) {
        let same = |g: &&mut Group| {
            g.dimensions.len() == dimensions.len()
                && g.dimensions
                    .iter()
                    .zip(dimensions)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        };
        let group = match self.0.iter_mut().find(same) {
            Some(g) => g,
            None => {
                self.0.push(Group {
                    dimensions: dimensions
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    metrics: Vec::new(),
                });
                self.0.last_mut().expect("just pushed")
            }
        };
        for (name, value) in metrics {
            match group.metrics.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(*value),
                None => group.metrics.push((name, vec![*value])),
            }
        }
    }

    /// The documents: one per set of dimensions, more when a metric has over [`MAX_VALUES`].
    fn documents(&self, timestamp_ms: i64) -> Vec<Value> {
        let mut docs = Vec::new();
        for group in &self.0 {
            let dims: Vec<(&str, &str)> = group
                .dimensions
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let most = group
                .metrics
                .iter()
                .map(|(_, v)| v.len())
                .max()
                .unwrap_or(0);
            for start in (0..most).step_by(MAX_VALUES) {
                let part: Vec<(&str, &[u64])> = group
                    .metrics
                    .iter()
                    .filter(|(_, v)| v.len() > start)
                    .map(|(n, v)| (*n, &v[start..v.len().min(start + MAX_VALUES)]))
                    .collect();
                docs.push(document_of(&part, &dims, timestamp_ms));
            }
        }
        docs
    }
}

/// Runs `f`, holding the counts it makes on this task until it ends, then writes them: one
/// line per set of dimensions instead of one per count. For a worker batch of ten
/// unsubscribes, one `OutboundCalls` line instead of ten. Counts made on other tasks (a
/// spawned task) are written at once, as outside it.
pub async fn gathered<F: std::future::Future>(f: F) -> F::Output {
    if !enabled() {
        return f.await;
    }
    let (out, held) = GATHERED
        .scope(RefCell::new(Gathered::default()), async {
            let out = f.await;
            (out, GATHERED.with(|g| g.take()))
        })
        .await;
    for doc in held.documents(chrono::Utc::now().timestamp_millis()) {
        write(&doc);
    }
    out
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
            1,
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
            &[("WebhooksReceived", &[1]), ("EventsQueued", &[4])],
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
        assert!(
            !d.to_string().contains("4.0"),
            "a whole number, written without a fraction: {d}"
        );
    }

    /// A batch's counts: one document per set of dimensions, in the order they first came,
    /// each metric's values an array of its data points (a single one stays a number).
    #[test]
    fn gathered_counts_are_one_document_per_set_of_dimensions() {
        let mut g = Gathered::default();
        let ok = [("Target", "sparkloop"), ("Outcome", "ok")];
        for _ in 0..3 {
            g.add(&[("OutboundCalls", 1)], &ok);
        }
        g.add(&[("DedupeHits", 1)], &[("Provider", "loops")]);
        g.add(
            &[("OutboundCalls", 1)],
            &[("Target", "sparkloop"), ("Outcome", "retry")],
        );
        let docs = g.documents(9);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["OutboundCalls"], json!([1, 1, 1]));
        assert_eq!(docs[0]["Outcome"], "ok");
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Target", "Outcome"])
        );
        assert_eq!(docs[1]["DedupeHits"], json!(1));
        assert_eq!(docs[1]["Provider"], "loops");
        assert_eq!(docs[2]["OutboundCalls"], json!(1));
        assert_eq!(docs[2]["Outcome"], "retry");
        assert!(docs.iter().all(|d| d["_aws"]["Timestamp"] == 9));
    }

    /// EMF takes at most 100 values per metric in a document: more go into further ones.
    #[test]
    fn over_a_hundred_values_split_into_documents() {
        let mut g = Gathered::default();
        for _ in 0..(MAX_VALUES + 5) {
            g.add(&[("Retries", 1)], &[("Reason", "sparkloop")]);
        }
        g.add(&[("Parked", 1)], &[("Reason", "sparkloop")]);
        let docs = g.documents(0);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["Retries"].as_array().unwrap().len(), MAX_VALUES);
        assert_eq!(docs[0]["Parked"], json!(1));
        assert_eq!(docs[1]["Retries"].as_array().unwrap().len(), 5);
        assert!(docs[1].get("Parked").is_none());
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "Retries", "Unit": "Count"}])
        );
    }
}
