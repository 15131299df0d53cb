//! Loops webhook payloads (`eventName`-tagged JSON objects).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::envelope::{Normalized, Subscriber, KIND_UNKNOWN};

/// Every event Loops documents (loops.md §4). Anything else is queued as `unknown`.
pub const KNOWN_EVENTS: &[&str] = &[
    "contact.created",
    "contact.unsubscribed",
    "contact.deleted",
    "contact.mailingList.subscribed",
    "contact.mailingList.unsubscribed",
    "campaign.email.sent",
    "loop.email.sent",
    "transactional.email.sent",
    "email.delivered",
    "email.softBounced",
    "email.hardBounced",
    "email.opened",
    "email.clicked",
    "email.unsubscribed",
    "email.resubscribed",
    "email.spamReported",
    "testing.testEvent",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object with a string eventName")]
    NoEventName,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "eventName")]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<serde_json::Value>,
    /// Read leniently: a wrong-typed field must not turn an unsubscribe into a 400.
    #[serde(rename = "contactIdentity", default)]
    contact_identity: Option<serde_json::Value>,
}

#[derive(Default)]
struct ContactIdentity {
    id: Option<String>,
    email: Option<String>,
    user_id: Option<String>,
}

/// Parses a verified body. Only structure we rely on is checked; the rest stays in the payload.
pub fn parse(body: &[u8]) -> Result<Normalized, ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let payload: Box<RawValue> =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    // serde would also read a struct from a JSON array: insist on an object.
    if !payload.get().trim_start().starts_with('{') {
        return Err(ParseError::NoEventName);
    }
    let head: Head = serde_json::from_str(payload.get()).map_err(|_| ParseError::NoEventName)?;
    let kind = if KNOWN_EVENTS.contains(&head.event_name.as_str()) {
        head.event_name
    } else {
        KIND_UNKNOWN.to_string()
    };
    let identity: ContactIdentity = head
        .contact_identity
        .map(|v| {
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            ContactIdentity {
                id: text("id"),
                email: text("email"),
                user_id: text("userId"),
            }
        })
        .unwrap_or_default();
    let occurred_at = head
        .event_time
        .and_then(|v| v.as_i64())
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
    Ok(Normalized {
        kind,
        subscriber: Subscriber {
            email: identity.email.filter(|e| !e.is_empty()),
            esp_contact_id: identity.id,
            sparkloop_id: None,
            external_id: identity.user_id,
        },
        occurred_at,
        parked: None,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_event_parses_to_its_own_kind() {
        for name in KNOWN_EVENTS {
            let body = format!(
                r#"{{"eventName":"{name}","eventTime":1734425918,"webhookSchemaVersion":"1.0.0","contactIdentity":{{"id":"cm4","email":"test@example.com","userId":null}}}}"#
            );
            let n = parse(body.as_bytes()).unwrap();
            assert_eq!(n.kind, *name);
            assert_eq!(n.subscriber.email.as_deref(), Some("test@example.com"));
            assert_eq!(n.subscriber.esp_contact_id.as_deref(), Some("cm4"));
            assert_eq!(n.occurred_at.unwrap().timestamp(), 1_734_425_918);
            assert_eq!(n.payload.get(), body, "payload is kept verbatim");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, ParseError>)] = &[
            (
                r#"{"eventName":"contact.created","contact":{"id":"x","email":"a@b.c","favoriteColor":"blue"},"contactIdentity":{"id":"x","email":"a@b.c","userId":"u1"}}"#,
                Ok("contact.created"),
            ),
            (
                r#"{"eventName":"testing.testEvent","eventTime":1734425918,"message":"test","webhookSchemaVersion":"1.0.0"}"#,
                Ok("testing.testEvent"),
            ),
            (
                r#"{"eventName":"contact.somethingNew","contactIdentity":{"id":"x","email":"a@b.c","userId":null}}"#,
                Ok("unknown"),
            ),
            (r#"{"eventName":"email.opened"}"#, Ok("email.opened")),
            (
                r#"{"eventName":"email.unsubscribed","contactIdentity":{"userId":42,"email":"a@b.c"}}"#,
                Ok("email.unsubscribed"),
            ),
            (
                r#"{"eventName":"email.opened","eventTime":"soon"}"#,
                Ok("email.opened"),
            ),
            (r#"{"eventName":42}"#, Err(ParseError::NoEventName)),
            (r#"{"event":"email.opened"}"#, Err(ParseError::NoEventName)),
            (
                r#"[{"eventName":"email.opened"}]"#,
                Err(ParseError::NoEventName),
            ),
            (r#""email.opened""#, Err(ParseError::NoEventName)),
            (r#"["email.opened"]"#, Err(ParseError::NoEventName)),
        ];
        for (body, want) in cases {
            let got = parse(body.as_bytes()).map(|n| n.kind);
            match (got, want) {
                (Ok(k), Ok(w)) => assert_eq!(k, *w, "{body}"),
                (Err(e), Err(w)) => assert_eq!(&e, w, "{body}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn not_json_says_why() {
        for body in [&b"{"[..], b"", b"not json", b"\xff\xfe"] {
            assert!(
                matches!(parse(body), Err(ParseError::NotJson(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn user_id_and_missing_identity() {
        let n = parse(br#"{"eventName":"contact.deleted","contactIdentity":{"id":"c1","email":"a@b.c","userId":"u-9"}}"#).unwrap();
        assert_eq!(n.subscriber.external_id.as_deref(), Some("u-9"));
        let n = parse(br#"{"eventName":"contact.deleted"}"#).unwrap();
        assert_eq!(n.subscriber, Subscriber::default());
    }
}
