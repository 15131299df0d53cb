//! SparkLoop webhook payloads.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::core::envelope::{derive_dedupe_id, sha256_hex, Normalized, Subscriber, KIND_UNKNOWN};
use crate::core::time;

/// Event types SparkLoop documents (sparkloop.md §2.3). Others are queued as `unknown`.
pub const KNOWN_TYPES: &[&str] = &[
    "sync_subscriber",
    "new_partner_pending_referral",
    "new_partner_referral",
    "new_referral",
    "reward_unlocked",
    "reward_redeemed",
    "new_offer_lead",
];

/// The one thing that refuses an authenticated SparkLoop body: it is not JSON. Any JSON is
/// kept (an unknown shape as kind `unknown`): SparkLoop retries a refused delivery only a few
/// times, then the event is lost.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
}

#[derive(Deserialize, Default)]
struct Head {
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    subscriber: Option<Value>,
    #[serde(default)]
    campaign: Option<Value>,
    #[serde(default)]
    campaign_id: Option<Value>,
    #[serde(default)]
    reward: Option<Value>,
    #[serde(default)]
    referrer: Option<Value>,
}

/// Parses an authenticated body into the normalized event and its dedupe id. Any JSON value is
/// an event: one that is not an object, has no string `type` (or `event`), or a type SparkLoop
/// does not document, is kind `unknown`, kept.
pub fn parse(body: &[u8]) -> Result<(String, Normalized), ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let payload: Box<RawValue> =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    // serde would also read a struct from a JSON array (positionally): objects only.
    let head: Head = if payload.get().trim_start().starts_with('{') {
        serde_json::from_str(payload.get()).unwrap_or_default()
    } else {
        Head::default()
    };
    let type_name = head
        .kind
        .as_ref()
        .or(head.event.as_ref())
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = if KNOWN_TYPES.contains(&type_name) {
        type_name.to_string()
    } else {
        KIND_UNKNOWN.to_string()
    };
    let sub = head.subscriber.as_ref();
    let field = |v: Option<&Value>, k: &str| {
        v.and_then(|o| o.get(k))
            .map(text_of)
            .filter(|s| !s.is_empty())
    };
    let subscriber = Subscriber {
        email: field(sub, "email"),
        esp_contact_id: None,
        sparkloop_id: field(sub, "id").or_else(|| field(sub, "uuid")),
        external_id: None,
    };
    // Unix seconds. Anything else (a float, a string, milliseconds sent as seconds, a number
    // beyond what RFC 3339 can write) is no time: absent, and the receipt time stands in.
    let occurred_at = sub
        .and_then(|s| s.get("created_at"))
        .and_then(Value::as_i64)
        .and_then(time::from_unix_secs);
    let campaign =
        field(head.campaign.as_ref(), "id").or_else(|| head.campaign_id.as_ref().map(text_of));
    // Why this key: SparkLoop's retries resend the same event, so these fields repeat; real
    // events differ in at least one of them: the type, the subscriber (one per referral), the
    // campaign, the referral status (pending -> verified/rejected for the same subscriber),
    // the reward and the referrer's count (each milestone is a new reward event).
    // `sync_subscriber` fires on every update of a subscriber, so two real events can agree
    // on all of those fields (a new name, a new count): its subscriber object is part of its
    // key, identical across retries of one update, different across updates (else a later
    // update would be parked as a payload conflict).
    // Unknown types and shapes fall back to the hash of the whole body, the same across
    // retries.
    let dedupe_id = if kind == KIND_UNKNOWN || subscriber.sparkloop_id.is_none() {
        sha256_hex(payload.get().as_bytes())
    } else {
        derive_dedupe_id(&[
            &kind,
            subscriber.sparkloop_id.as_deref().unwrap_or(""),
            campaign.as_deref().unwrap_or(""),
            field(sub, "referral_status").as_deref().unwrap_or(""),
            field(head.reward.as_ref(), "id").as_deref().unwrap_or(""),
            field(head.referrer.as_ref(), "id").as_deref().unwrap_or(""),
            field(head.referrer.as_ref(), "tot_referrals")
                .as_deref()
                .unwrap_or(""),
            field(sub, "tot_referrals")
                .filter(|_| kind.starts_with("reward_"))
                .as_deref()
                .unwrap_or(""),
            &sub.filter(|_| kind == "sync_subscriber")
                .map(|v| sha256_hex(v.to_string().as_bytes()))
                .unwrap_or_default(),
        ])
    };
    Ok((
        dedupe_id,
        Normalized {
            kind,
            subscriber,
            occurred_at,
            parked: None,
            payload,
        },
    ))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PENDING: &str = r#"{"type":"new_partner_pending_referral","campaign":{"id":"partner_campaign_de9c1c7c7bbc","referral_code":"1b5b5c4094","type":"partner_program","upscribe":true,"partner_program_id":"partner_program_5b925f623c28","publication_id":"pub_a6db3f666c55","created_at":1658780774},"subscriber":{"id":"sub_042448acb02a","first_name":null,"name":null,"email":"test12345@test.com","referral_code":"6363a0b5","referred":true,"tot_referrals":0,"referral_status":"pending","last_reward":null,"partner_id":"partner_0a8a45c403f8","created_at":1659536359},"partner":{"id":"partner_0a8a45c403f8","name":"Jason Resnickss","logo":"http://x"}}"#;

    #[test]
    fn every_type_by_table() {
        for t in KNOWN_TYPES
            .iter()
            .copied()
            .chain(["partner_referral_rejected"])
        {
            let body = format!(
                r#"{{"type":"{t}","subscriber":{{"id":"sub_1","email":"a@b.c","created_at":1659536359}}}}"#
            );
            let (_, n) = parse(body.as_bytes()).unwrap();
            let want = if KNOWN_TYPES.contains(&t) {
                t
            } else {
                "unknown"
            };
            assert_eq!(n.kind, want);
            assert_eq!(n.subscriber.sparkloop_id.as_deref(), Some("sub_1"));
            assert_eq!(n.subscriber.email.as_deref(), Some("a@b.c"));
        }
    }

    #[test]
    fn documented_pending_referral() {
        let (id, n) = parse(PENDING.as_bytes()).unwrap();
        assert_eq!(n.kind, "new_partner_pending_referral");
        assert_eq!(n.occurred_at.unwrap().timestamp(), 1_659_536_359);
        let (id2, _) = parse(PENDING.as_bytes()).unwrap();
        assert_eq!(id, id2, "a retry has the same key");
        let verified = PENDING
            .replace("new_partner_pending_referral", "new_partner_referral")
            .replace("\"pending\"", "\"verified\"");
        assert_ne!(parse(verified.as_bytes()).unwrap().0, id);
        let rejected = PENDING
            .replace("new_partner_pending_referral", "sync_subscriber")
            .replace("\"pending\"", "\"rejected\"");
        let (rid, rn) = parse(rejected.as_bytes()).unwrap();
        assert_eq!(rn.kind, "sync_subscriber");
        assert_ne!(rid, id);
    }

    #[test]
    fn sync_subscriber_updates_differ_and_retries_agree() {
        let update = |name: &str| {
            format!(
                r#"{{"type":"sync_subscriber","subscriber":{{"id":"sub_1","email":"a@b.c","name":"{name}","referral_status":"pending","tot_referrals":0}}}}"#
            )
        };
        let first = parse(update("Ann").as_bytes()).unwrap().0;
        assert_eq!(first, parse(update("Ann").as_bytes()).unwrap().0, "a retry");
        assert_ne!(
            first,
            parse(update("Anne").as_bytes()).unwrap().0,
            "another update"
        );
    }

    #[test]
    fn created_at_outside_what_rfc3339_writes_is_absent() {
        for (raw, want) in [
            ("1659536359", Some(1_659_536_359)),
            ("8210266012800", None), // milliseconds read as seconds: year 262,000
            ("1659536359000", None),
            ("253402300800", None),
            ("-9223372036854775808", None),
            ("18446744073709551615", None),
            ("1659536359.5", None),
            (r#""1659536359""#, None),
        ] {
            let body = format!(
                r#"{{"type":"new_partner_pending_referral","subscriber":{{"id":"sub_1","email":"a@b.c","created_at":{raw}}}}}"#
            );
            let (_, n) = parse(body.as_bytes()).unwrap();
            assert_eq!(n.occurred_at.map(|t| t.timestamp()), want, "{raw}");
        }
    }

    #[test]
    fn rewards_differ_by_reward() {
        let a = r#"{"type":"reward_unlocked","campaign_id":"MF1","subscriber":{"id":"sub_1","tot_referrals":4},"reward":{"id":"reward_a"}}"#;
        let b = r#"{"type":"reward_unlocked","campaign_id":"MF1","subscriber":{"id":"sub_1","tot_referrals":8},"reward":{"id":"reward_b"}}"#;
        assert_ne!(
            parse(a.as_bytes()).unwrap().0,
            parse(b.as_bytes()).unwrap().0
        );
    }

    #[test]
    fn shapes() {
        assert!(matches!(parse(b"nope"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b""), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b"{\"type\":"), Err(ParseError::NotJson(_))));
        // any JSON that is not a readable object is kept as unknown, keyed by its body hash
        for body in [
            &b"[1]"[..],
            b"\"x\"",
            b"null",
            b"42",
            br#"["new_referral",{"id":"sub_1"}]"#,
            br#"{"type":42,"subscriber":{"id":"sub_1"}}"#,
            br#"{"type":null,"subscriber":{"id":"sub_1"}}"#,
            br#"{"type":["new_referral"],"subscriber":{"id":"sub_1"}}"#,
            br#"{"type":"new_referral","type":"new_referral","subscriber":{"id":"sub_1"}}"#,
        ] {
            let (id, n) = parse(body).unwrap();
            assert_eq!(n.kind, "unknown", "{}", String::from_utf8_lossy(body));
            assert_eq!(id, sha256_hex(body));
        }
        // an object without a type is kept as unknown, keyed by its body hash
        let (id, n) = parse(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(n.kind, "unknown");
        assert_eq!(id, sha256_hex(br#"{"hello":"world"}"#));
        // the `event` fallback seen in third-party code
        assert_eq!(
            parse(br#"{"event":"new_referral","subscriber":{"uuid":"sub_9"}}"#)
                .unwrap()
                .1
                .kind,
            "new_referral"
        );
    }
}
