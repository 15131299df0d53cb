//! Outbound API calls as data, and the one place their answers are classified into
//! done / retry / park. The same classification serves SparkLoop and the ESP clients.

use serde::{Deserialize, Serialize};

/// What we ask SparkLoop to do (custom-integration doc, sparkloop.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SparkLoopCall {
    /// `PUT /v2/subscribers/:id/unsubscribe`
    Unsubscribe,
    /// `PUT /v2/subscribers/:id/reject`
    Reject,
    /// `PUT /v2/subscribers/:id {"status":"confirmed"}`
    Confirm,
    /// `PUT /v2/subscribers/:id {"email": new}`
    ChangeEmail { new_email: String },
}

impl SparkLoopCall {
    pub fn name(&self) -> &'static str {
        match self {
            SparkLoopCall::Unsubscribe => "unsubscribe",
            SparkLoopCall::Reject => "reject",
            SparkLoopCall::Confirm => "confirm",
            SparkLoopCall::ChangeEmail { .. } => "change_email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Done,
    /// 404: not a subscriber there. Done, but logged and counted.
    NotFound,
    /// The target already is in the requested state.
    AlreadyDone,
    /// 429, 5xx, 408, timeouts and connection errors.
    Retry {
        reason: String,
        retry_after: Option<u64>,
    },
    /// Any other 4xx: retrying cannot help. Parked with the API's own error text.
    Permanent {
        status: u16,
        body: String,
    },
}

impl CallOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            CallOutcome::Done => "done",
            CallOutcome::NotFound => "not_found",
            CallOutcome::AlreadyDone => "already_done",
            CallOutcome::Retry { .. } => "retry",
            CallOutcome::Permanent { .. } => "permanent",
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(
            self,
            CallOutcome::Done | CallOutcome::NotFound | CallOutcome::AlreadyDone
        )
    }
}

/// Classifies an HTTP answer. `body` is (the start of) the response text.
pub fn classify(status: u16, body: &str, retry_after: Option<u64>) -> CallOutcome {
    let lower = body.to_ascii_lowercase();
    match status {
        200..=299 => CallOutcome::Done,
        404 => CallOutcome::NotFound,
        409 => CallOutcome::AlreadyDone,
        400 | 422 if lower.contains("already") || lower.contains("not pending") => {
            CallOutcome::AlreadyDone
        }
        408 | 425 | 429 | 500..=599 => CallOutcome::Retry {
            reason: format!("HTTP {status}"),
            retry_after,
        },
        _ => CallOutcome::Permanent {
            status,
            body: body.chars().take(1_000).collect(),
        },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and ignored).
pub fn parse_retry_after(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| v.trim().parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_table() {
        let retry = |s: u16, ra| CallOutcome::Retry {
            reason: format!("HTTP {s}"),
            retry_after: ra,
        };
        let cases = [
            (200, "", None, CallOutcome::Done),
            (201, "{}", None, CallOutcome::Done),
            (204, "", None, CallOutcome::Done),
            (
                404,
                r#"{"error":"Subscriber not found!"}"#,
                None,
                CallOutcome::NotFound,
            ),
            (409, "", None, CallOutcome::AlreadyDone),
            (
                422,
                r#"{"error":"Subscriber is already unsubscribed"}"#,
                None,
                CallOutcome::AlreadyDone,
            ),
            (
                400,
                r#"{"error":"Subscriber is not pending"}"#,
                None,
                CallOutcome::AlreadyDone,
            ),
            (429, "", Some(12), retry(429, Some(12))),
            (500, "", None, retry(500, None)),
            (503, "", Some(3), retry(503, Some(3))),
            (408, "", None, retry(408, None)),
            (
                400,
                r#"{"error":"Subscriber uuid blank!"}"#,
                None,
                CallOutcome::Permanent {
                    status: 400,
                    body: r#"{"error":"Subscriber uuid blank!"}"#.into(),
                },
            ),
            (
                401,
                r#"{"error":"API key is missing!"}"#,
                None,
                CallOutcome::Permanent {
                    status: 401,
                    body: r#"{"error":"API key is missing!"}"#.into(),
                },
            ),
            (
                410,
                "",
                None,
                CallOutcome::Permanent {
                    status: 410,
                    body: String::new(),
                },
            ),
        ];
        for (status, body, ra, want) in cases {
            assert_eq!(classify(status, body, ra), want, "{status} {body}");
        }
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(7));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
        assert!(CallOutcome::NotFound.is_success() && !retry(500, None).is_success());
    }
}
