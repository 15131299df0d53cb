//! Loops webhook payloads (`eventName`-tagged JSON objects).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::envelope::{Normalized, Subscriber};
use crate::core::kind::{Kind, LoopsKind};
use crate::core::time;

/// Every event Loops documents (docs/providers/loops.md, section 4): the names of `LoopsKind`.
/// Anything else is queued as `unknown`.
pub const KNOWN_EVENTS: &[&str] = <LoopsKind as strum::VariantNames>::VARIANTS;

/// The one thing that refuses a signed Loops body: it is not JSON. Any JSON Loops signed is
/// kept (an unknown shape as kind `unknown`), since Loops documents no retries and a refused
/// event would be lost.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
}

/// The fields we lift, borrowed from the body: nothing is allocated for what is skipped.
/// Every field is read leniently (raw, then only a string counts), so no field's type can
/// turn an event into a refusal.
#[derive(Deserialize, Default)]
struct Head<'a> {
    #[serde(rename = "eventName", default, borrow)]
    event_name: Option<&'a RawValue>,
    #[serde(rename = "eventTime", default, borrow)]
    event_time: Option<&'a RawValue>,
    /// Read leniently: a wrong-typed field must not turn an unsubscribe into a 400.
    #[serde(rename = "contactIdentity", default, borrow)]
    contact_identity: Option<&'a RawValue>,
}

/// `contactIdentity`'s fields, each kept only when it is a string.
#[derive(Deserialize, Default)]
struct ContactIdentity<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    email: Option<&'a RawValue>,
    #[serde(rename = "userId", default, borrow)]
    user_id: Option<&'a RawValue>,
}

/// A JSON string's value; anything else (number, null, object...) is no value. A string
/// without escapes is its own text between the quotes (valid JSON has no control characters
/// or quotes there), so only escaped strings are decoded.
fn text(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw?.get();
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(inner.to_string());
    }
    serde_json::from_str::<String>(raw).ok()
}

/// The JSON text of a body without the whitespace JSON allows around it: what a
/// `Box<RawValue>` of the body holds.
pub(crate) fn trim_json_whitespace(text: &str) -> &str {
    text.trim_matches(crate::core::json_read::JSON_WHITESPACE)
}

/// Parses a verified body. Only structure we rely on is checked; the rest stays in the payload.
/// Any JSON value is an event: one that is not an object, or has no string `eventName` (absent,
/// null, a number...), or an `eventName` Loops does not document, is kind `unknown`, kept.
///
/// One pass over the body: the head is read from it, borrowing the fields it lifts, and the
/// payload is the body's text itself. A body whose head cannot be read (not an object, a
/// repeated `eventName`, not JSON) takes a second pass that keeps it whole or says why it is
/// not JSON.
pub fn parse(body: &[u8]) -> Result<Normalized, ParseError> {
    let text_body = std::str::from_utf8(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let json = trim_json_whitespace(text_body);
    // serde would also read a struct from a JSON array (positionally): objects only.
    if json.starts_with('{') {
        if let Ok(head) = serde_json::from_str::<Head>(json) {
            // SAFETY: `serde_json::from_str` read the head from all of `json` and checked that
            // nothing but whitespace follows it, and `json` has none around it: `json` is one
            // well-formed JSON value (every field the head skips or borrows is checked the way
            // `Box<RawValue>` checks it) with no leading or trailing whitespace, which is what
            // `from_string_unchecked` asks for.
            let payload = unsafe { RawValue::from_string_unchecked(json.to_owned()) };
            return Ok(normalize(head, payload));
        }
    }
    let payload: Box<RawValue> =
        serde_json::from_str(text_body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    Ok(normalize(Head::default(), payload))
}

fn normalize(head: Head<'_>, payload: Box<RawValue>) -> Normalized {
    let kind = head
        .event_name
        .and_then(|raw| text(Some(raw)))
        .and_then(|name| name.parse::<LoopsKind>().ok())
        .map_or(Kind::Unknown, Kind::Loops);
    let identity: ContactIdentity = head
        .contact_identity
        .filter(|raw| raw.get().starts_with('{'))
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default();
    // Unix seconds. Anything else (a float, a string, milliseconds sent as seconds, a number
    // beyond what RFC 3339 can write) is no time: absent, and the receipt time stands in.
    let occurred_at = head
        .event_time
        .and_then(|raw| raw.get().parse::<i64>().ok())
        .and_then(time::from_unix_secs);
    let subscriber = Subscriber {
        email: text(identity.email).filter(|e| !e.is_empty()),
        esp_contact_id: text(identity.id),
        sparkloop_id: None,
        external_id: text(identity.user_id),
    };
    Normalized {
        kind,
        subscriber,
        occurred_at,
        parked: None,
        payload,
    }
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
            // unknown shapes: kept as unknown, never refused
            (r#"{"eventName":42}"#, Ok("unknown")),
            (r#"{"eventName":null}"#, Ok("unknown")),
            (r#"{"eventName":["email.opened"]}"#, Ok("unknown")),
            (r#"{"event":"email.opened"}"#, Ok("unknown")),
            (
                r#"{"eventName":"email.opened","eventName":"email.clicked"}"#,
                Ok("unknown"),
            ),
            (r#"{}"#, Ok("unknown")),
            (r#"[{"eventName":"email.opened"}]"#, Ok("unknown")),
            (r#""email.opened""#, Ok("unknown")),
            (r#"["email.opened"]"#, Ok("unknown")),
            (r#"null"#, Ok("unknown")),
            (r#"42"#, Ok("unknown")),
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
    fn an_object_without_a_string_event_name_keeps_its_identity_and_time() {
        for name in ["", r#""eventName":null,"#, r#""eventName":7,"#] {
            let body = format!(
                r#"{{{name}"eventTime":1734425918,"contactIdentity":{{"id":"c1","email":"a@b.c","userId":null}}}}"#
            );
            let n = parse(body.as_bytes()).unwrap();
            assert_eq!(n.kind, Kind::Unknown, "{body}");
            assert_eq!(n.subscriber.email.as_deref(), Some("a@b.c"), "{body}");
            assert_eq!(n.occurred_at.unwrap().timestamp(), 1_734_425_918);
            assert_eq!(n.payload.get(), body, "payload is kept verbatim");
        }
    }

    #[test]
    fn event_times_outside_what_rfc3339_writes_are_absent() {
        for (raw, want) in [
            ("1734425918", Some(1_734_425_918)),
            ("253402300799", Some(253_402_300_799)), // 9999-12-31T23:59:59Z
            ("253402300800", None),
            ("1734425918000", None), // milliseconds
            ("8210266012800", None),
            ("9223372036854775807", None),
            ("-9223372036854775808", None),
            ("99999999999999999999", None),
            ("-62167219201", None),
            ("1734425918.5", None),
            ("1e9", None),
            (r#""1734425918""#, None),
            ("null", None),
        ] {
            let body = format!(r#"{{"eventName":"email.opened","eventTime":{raw}}}"#);
            let n = parse(body.as_bytes()).unwrap();
            assert_eq!(n.occurred_at.map(|t| t.timestamp()), want, "{raw}");
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
