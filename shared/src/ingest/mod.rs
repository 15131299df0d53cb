//! The ingest handlers: authenticate, parse, build envelopes, queue, answer.
//! One module per provider; the shared request flow and answers live here.

mod error;
pub mod esputnik;
pub mod loops;
pub mod sparkloop;

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::time::Instant;

use lambda_http::http::{header, HeaderMap, StatusCode};
use lambda_http::{Body, Response};

pub use error::IngestError;

use crate::adapters::sqs::sqs_safe;
use crate::core::envelope::{truncate, Envelope};
use crate::core::mask::{MaskedOpt, Sanitized};
use crate::ports::{EventQueue, OutboundMessage};
use crate::telemetry::metrics;

/// Message attributes copied from the envelope, so the DLQ can be read without parsing bodies.
/// The message is already as SQS accepts it (`adapters::sqs::sqs_safe`: characters SQS refuses
/// escaped in the body, replaced in attributes), so its size is the size the queue sees; the
/// queue adapters apply the same rule to whatever else they are given.
pub fn to_message(env: &Envelope) -> OutboundMessage {
    let mut attributes = BTreeMap::from([
        ("provider".to_string(), env.provider.to_string()),
        ("kind".to_string(), env.kind.to_string()),
        ("dedupe_id".to_string(), env.dedupe_id.clone()),
    ]);
    if let Some(reason) = &env.parked {
        attributes.insert("parked_reason".to_string(), truncate(reason, 256));
    }
    sqs_safe(OutboundMessage {
        body: env.to_json(),
        attributes,
    })
}

/// Queues every envelope, all or nothing from the provider's point of view: any failure
/// answers non-2xx so the provider retries, and the worker's dedupe absorbs what got through.
/// Returns the largest envelope queued in its parked reference form, if any.
pub(crate) async fn enqueue(
    queue: &dyn EventQueue,
    envelopes: &[Envelope],
) -> Result<Option<KeptOversize>, IngestError> {
    let max = queue.max_message_bytes();
    let mut kept: Option<KeptOversize> = None;
    let mut messages = Vec::with_capacity(envelopes.len());
    for e in envelopes {
        let (message, oversize) = fit_message(e, max)?;
        if let Some(size) = oversize {
            kept = Some(KeptOversize {
                size: size.max(kept.map_or(0, |k| k.size)),
                max,
            });
        }
        messages.push(message);
    }
    queue.enqueue(messages).await.map_err(IngestError::from)?;
    Ok(kept)
}

/// An event over the queue's size that was queued in its parked reference form. Loops and
/// SparkLoop are answered 413 once it is queued (the event is kept either way); eSputnik 200,
/// since a refused request would hold back every later event behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeptOversize {
    pub size: usize,
    pub max: usize,
}

impl From<KeptOversize> for IngestError {
    fn from(k: KeptOversize) -> Self {
        IngestError::KeptOversize {
            size: k.size,
            max: k.max,
        }
    }
}

/// The message for an envelope and, when the envelope is over the queue's size, the message
/// for its parked reference form instead with the envelope's size (the head shrinks until it
/// fits: escaping can make text grow).
fn fit_message(
    env: &Envelope,
    max: usize,
) -> Result<(OutboundMessage, Option<usize>), IngestError> {
    let message = to_message(env);
    if message.size() <= max {
        return Ok((message, None));
    }
    metrics::count(
        metrics::Metric::Oversize,
        1,
        &[("Provider", env.provider.as_str())],
    );
    let mut head = max / 2;
    loop {
        let reference = to_message(&env.oversize_reference(head, max));
        if reference.size() <= max {
            return Ok((reference, Some(message.size())));
        }
        if head == 0 {
            // even without its payload the envelope is too large (huge ids or addresses)
            return Err(IngestError::TooLarge {
                size: message.size(),
                max,
            });
        }
        head /= 2;
    }
}

/// The value of a header that must appear at most once. A repeated header is ambiguous
/// (which one did the signer mean?), so it reads as absent and fails authentication.
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

pub(crate) fn empty_ok() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::Empty)
        .expect("static response")
}

pub(crate) fn error_response(err: &IngestError) -> Response<Body> {
    let body = serde_json::json!({ "error": err.to_string(), "reason": err.reason() }).to_string();
    let mut b = Response::builder()
        .status(err.status())
        .header(header::CONTENT_TYPE, "application/json");
    if let IngestError::MethodNotAllowed { allow } = err {
        b = b.header(header::ALLOW, *allow);
    }
    if let IngestError::QueueUnavailable(_) = err {
        b = b.header(header::RETRY_AFTER, "30");
    }
    b.body(Body::Text(body)).expect("static response")
}

/// One structured log line and the metrics for a finished request; returns the answer.
pub(crate) fn finish(
    provider: &'static str,
    started: Instant,
    result: Result<Vec<Envelope>, IngestError>,
) -> Response<Body> {
    // Microseconds are precise enough, and a third of the digits of the full float.
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    match result {
        Ok(envs) => {
            // Each field is written straight into the log line: nothing is built for it
            // on the request path. No `status`: `queued` is always 200.
            tracing::info!(
                provider,
                outcome = "queued",
                events = envs.len(),
                kind = %joined(&envs, |e, f| Sanitized(e.kind.as_str()).fmt(f)),
                dedupe_id = %joined(&envs, |e, f| f.write_str(&e.dedupe_id)),
                email = %joined(&envs, |e, f| MaskedOpt(e.subscriber.email.as_deref()).fmt(f)),
                latency_ms,
                "webhook"
            );
            metrics::webhook_received(provider, envs.len());
            empty_ok()
        }
        Err(err) => {
            let detail = match &err {
                IngestError::QueueUnavailable(d) => d.clone(),
                other => other.to_string(),
            };
            let status = err.status().as_u16();
            if status >= 500 {
                tracing::error!(provider, outcome = err.reason(), status, error = %Sanitized(&detail), latency_ms, "webhook");
            } else {
                tracing::warn!(provider, outcome = err.reason(), status, error = %Sanitized(&detail), latency_ms, "webhook");
            }
            metrics::webhook_refused(provider, err.reason());
            error_response(&err)
        }
    }
}

/// One field per envelope, comma-separated, written as the log line is.
struct Joined<'a, F>(&'a [Envelope], F);

fn joined<F>(envs: &[Envelope], field: F) -> Joined<'_, F>
where
    F: Fn(&Envelope, &mut fmt::Formatter<'_>) -> fmt::Result,
{
    Joined(envs, field)
}

impl<F> Display for Joined<'_, F>
where
    F: Fn(&Envelope, &mut fmt::Formatter<'_>) -> fmt::Result,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, env) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            (self.1)(env, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::core::envelope::{Envelope, Provider};
    use crate::telemetry::{dispatch, LevelFilter, LogFormat};

    use crate::telemetry::CapturedLog as Buf;

    /// One INFO line per queued webhook, with the fields the operations guide names and
    /// nothing `outcome` already says (`status`, always 200 when queued).
    #[test]
    fn a_queued_webhook_is_one_line_with_the_documented_fields() {
        let body = serde_json::json!({
            "type": "new_partner_referral",
            "campaign": {"id": "c1"},
            "subscriber": {"id": "sub_1", "email": "line@example.com",
                           "referral_status": "pending", "partner_id": "p"},
            "partner": {"id": "p"}
        })
        .to_string();
        let (id, n) = crate::core::sparkloop::parse(body.as_bytes()).unwrap();
        let env = Envelope::new(Provider::Sparkloop, id, chrono::Utc::now(), n);
        let buf = Buf::default();
        let w = buf.clone();
        let sub = dispatch(LogFormat::Json, LevelFilter::INFO, false, move || w.clone());
        let status = tracing::dispatcher::with_default(&sub, || {
            super::finish("sparkloop", Instant::now(), Ok(vec![env])).status()
        });
        assert_eq!(status, 200);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let fields = lines[0]["fields"].as_object().unwrap();
        let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "dedupe_id",
                "email",
                "events",
                "kind",
                "latency_ms",
                "message",
                "outcome",
                "provider"
            ]
        );
        assert_eq!(fields["outcome"], "queued");
        assert_eq!(fields["kind"], "new_partner_referral");
        assert_ne!(fields["email"], "line@example.com", "masked");
    }
}
