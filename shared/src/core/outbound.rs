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

/// What a refusal can mean for a call, so "already" is read per call, not per API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Puts the target in a state (unsubscribe, reject, confirm, the ESP upserts): a 409 or an
    /// "already ..." answer means the state already holds, so the call's goal is met.
    State,
    /// Sets a value another record may hold (an email address): a 409 or "already taken"
    /// means it was refused, and is parked for a person instead of acknowledged.
    Value,
}

impl SparkLoopCall {
    pub fn goal(&self) -> Goal {
        match self {
            SparkLoopCall::ChangeEmail { .. } => Goal::Value,
            _ => Goal::State,
        }
    }

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

/// Classifies an HTTP answer to a call with `goal`. `body` is (the start of) the response
/// text. 404 is "not a subscriber there" for every call: nothing to unsubscribe, reject,
/// confirm (most signups are not referrals) or re-address.
pub fn classify(goal: Goal, status: u16, body: &str, retry_after: Option<u64>) -> CallOutcome {
    let lower = body.to_ascii_lowercase();
    let state_holds = goal == Goal::State;
    match status {
        200..=299 => CallOutcome::Done,
        404 => CallOutcome::NotFound,
        409 if state_holds => CallOutcome::AlreadyDone,
        400 | 422
            if state_holds && (lower.contains("already") || lower.contains("not pending")) =>
        {
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
            assert_eq!(
                classify(Goal::State, status, body, ra),
                want,
                "{status} {body}"
            );
        }
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(7));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
        assert!(CallOutcome::NotFound.is_success() && !retry(500, None).is_success());
    }

    #[test]
    fn a_refused_value_is_parked_where_a_held_state_is_done() {
        let change = SparkLoopCall::ChangeEmail {
            new_email: "b@x.io".into(),
        };
        let taken = r#"{"error":"Email has already been taken"}"#;
        let cases = [
            (&change, 400, taken, "permanent"),
            (&change, 422, taken, "permanent"),
            (&change, 409, "", "permanent"),
            (&change, 404, "", "not_found"),
            (&change, 429, "", "retry"),
            (&change, 200, "", "done"),
            (&SparkLoopCall::Unsubscribe, 409, "", "already_done"),
            (
                &SparkLoopCall::Reject,
                400,
                r#"{"error":"Subscriber is not pending"}"#,
                "already_done",
            ),
            (
                &SparkLoopCall::Confirm,
                422,
                r#"{"error":"already confirmed"}"#,
                "already_done",
            ),
            (&SparkLoopCall::Confirm, 404, "", "not_found"),
        ];
        for (call, status, body, want) in cases {
            let got = classify(call.goal(), status, body, None);
            assert_eq!(got.label(), want, "{} {status} {body}", call.name());
        }
    }
}
