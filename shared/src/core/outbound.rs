//! Outbound API calls as data, and the one place their answers are classified into
//! done / retry / park. The same classification serves SparkLoop and the ESP clients.

use serde::{Deserialize, Serialize};

/// What we ask SparkLoop to do (docs/providers/sparkloop.md, sections 2 and 5).
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

/// What a 404 means for a call. Only SparkLoop answers a call on a subscriber identifier with
/// "no such subscriber"; anywhere else a 404 is a wrong URL or route, and reading it as done
/// would acknowledge every call while none is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// SparkLoop `/v2/subscribers/:identifier`: not a subscriber there, nothing to do.
    NotASubscriber,
    /// ESP APIs and list endpoints: a failure, parked with the body.
    Failure,
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
    /// Not made: a dry run (no API key, or `DRY_RUN`) only noted it. Counts as done, and says
    /// so in the record's line and the `OutboundCalls` metric, where `done` would claim a call
    /// that never left.
    DryRun,
    /// 404 from SparkLoop on a subscriber identifier: not a subscriber there. Done, but
    /// logged and counted.
    NotFound,
    /// The target already is in the requested state.
    AlreadyDone,
    /// 429, 5xx, 408, timeouts and connection errors.
    Retry {
        reason: String,
        retry_after: Option<u64>,
    },
    /// Any other 4xx, a 404 that does not mean "not a subscriber", and every 3xx (redirects
    /// are never followed): retrying cannot help. Parked with the API's own error text.
    Permanent {
        status: u16,
        body: String,
    },
}

impl CallOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            CallOutcome::Done => "done",
            CallOutcome::DryRun => "dry_run",
            CallOutcome::NotFound => "not_found",
            CallOutcome::AlreadyDone => "already_done",
            CallOutcome::Retry { .. } => "retry",
            CallOutcome::Permanent { .. } => "permanent",
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(
            self,
            CallOutcome::Done
                | CallOutcome::DryRun
                | CallOutcome::NotFound
                | CallOutcome::AlreadyDone
        )
    }
}

/// Classifies an HTTP answer to a call with `goal`. `body` is (the start of) the response
/// text. A 404 is "not a subscriber there" only where `missing` says so, and only when the
/// body reads as an API answer (empty or JSON): an HTML page is a route that does not exist.
pub fn classify(
    goal: Goal,
    missing: Missing,
    status: u16,
    body: &str,
    retry_after: Option<u64>,
) -> CallOutcome {
    let lower = body.to_ascii_lowercase();
    let state_holds = goal == Goal::State;
    match status {
        200..=299 => CallOutcome::Done,
        404 if missing == Missing::NotASubscriber && reads_as_api_answer(body) => {
            CallOutcome::NotFound
        }
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

fn reads_as_api_answer(body: &str) -> bool {
    let t = body.trim_start();
    t.is_empty() || t.starts_with('{') || t.starts_with('[')
}

/// A redirect is never followed (it would forward the API key to another host, and turn a
/// POST into a GET): it is a permanent failure that names where it pointed.
pub fn redirect_refused(status: u16, location: Option<&str>) -> CallOutcome {
    CallOutcome::Permanent {
        status,
        body: format!(
            "redirect to {} not followed: check the configured API URL",
            location.unwrap_or("(no Location)")
        ),
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
                classify(Goal::State, Missing::NotASubscriber, status, body, ra),
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
        assert!(CallOutcome::DryRun.is_success());
        assert_eq!(CallOutcome::DryRun.label(), "dry_run");
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
            let got = classify(call.goal(), Missing::NotASubscriber, status, body, None);
            assert_eq!(got.label(), want, "{} {status} {body}", call.name());
        }
    }

    #[test]
    fn a_404_is_done_only_for_a_sparkloop_subscriber_answered_as_an_api() {
        let json = r#"{"error":"Subscriber not found!"}"#;
        let html =
            "<!DOCTYPE html><html><body>The page you were looking for doesn't exist</body></html>";
        for (missing, body, want) in [
            (Missing::NotASubscriber, json, "not_found"),
            (Missing::NotASubscriber, "", "not_found"),
            (Missing::NotASubscriber, html, "permanent"),
            (Missing::Failure, json, "permanent"),
            (Missing::Failure, "", "permanent"),
            (Missing::Failure, html, "permanent"),
        ] {
            let got = classify(Goal::State, missing, 404, body, None);
            assert_eq!(got.label(), want, "{missing:?} {body}");
        }
        match classify(Goal::State, Missing::Failure, 404, json, None) {
            CallOutcome::Permanent { status, body } => {
                assert_eq!((status, body.as_str()), (404, json))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redirects_are_permanent_and_name_their_target() {
        for status in [301, 302, 307, 308] {
            let got = classify(Goal::State, Missing::NotASubscriber, status, "", None);
            assert_eq!(got.label(), "permanent", "{status}");
        }
        let refused = redirect_refused(301, Some("https://elsewhere.example/v2"));
        match refused {
            CallOutcome::Permanent { status, body } => {
                assert_eq!(status, 301);
                assert!(body.contains("https://elsewhere.example/v2"), "{body}");
            }
            other => panic!("{other:?}"),
        }
    }
}
