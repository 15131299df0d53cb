//! SparkLoop webhook payloads.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::core::envelope::{derive_dedupe_id, sha256_hex, Normalized, Subscriber};
use crate::core::json_read::{Checked, CheckedVisitor, Fields, Key, Scalar, Tree};
use crate::core::kind::{Kind, SparkloopKind};
use crate::core::time;

/// Event types SparkLoop documents (docs/providers/sparkloop.md): the names of
/// `SparkloopKind`. Others are queued as `unknown`.
pub const KNOWN_TYPES: &[&str] = <SparkloopKind as strum::VariantNames>::VARIANTS;

/// The one thing that refuses an authenticated SparkLoop body: it is not JSON. Any JSON is
/// kept (an unknown shape as kind `unknown`): SparkLoop retries a refused delivery only a few
/// times, then the event is lost.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
}

/// The fields the dedupe key and the envelope are made of, borrowed from the body where they
/// are strings without escapes. The subscriber is kept whole: `sync_subscriber`'s key hashes
/// it as serde_json writes it.
#[derive(Deserialize, Default)]
struct Head<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    event: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    subscriber: Option<Fields<'a>>,
    #[serde(default, borrow)]
    campaign: Option<Ids<'a>>,
    #[serde(default, borrow)]
    campaign_id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    reward: Option<Ids<'a>>,
    #[serde(default, borrow)]
    referrer: Option<Ids<'a>>,
}

/// The head as it was read before the one-pass parser, every field a `serde_json::Value`: the
/// second pass for a body the one-pass head cannot read, so that the same bytes always give
/// the same dedupe id.
#[derive(Deserialize, Default)]
struct ValueHead {
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

impl From<ValueHead> for Head<'_> {
    fn from(h: ValueHead) -> Self {
        Head {
            kind: h.kind.map(Scalar::from),
            event: h.event.map(Scalar::from),
            subscriber: h.subscriber.map(|v| Tree::from(v).into()),
            campaign: h.campaign.as_ref().map(Ids::from),
            campaign_id: h.campaign_id.map(Scalar::from),
            reward: h.reward.as_ref().map(Ids::from),
            referrer: h.referrer.as_ref().map(Ids::from),
        }
    }
}

/// Parses an authenticated body into the normalized event and its dedupe id. Any JSON value is
/// an event: one that is not an object, has no string `type` (or `event`), or a type SparkLoop
/// does not document, is kind `unknown`, kept.
///
/// One pass over the body, as for Loops (`loops::parse`): the head borrows what it lifts and
/// the payload is the body's text. It accepts exactly the bodies the `Value` head accepts (the
/// same deserializer routines check every field), and a body it refuses is read again the old
/// way, so no body changes its dedupe id.
pub fn parse(body: &[u8]) -> Result<(String, Normalized), ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let json = crate::core::loops::trim_json_whitespace(text);
    // serde would also read a struct from a JSON array (positionally): objects only.
    if json.starts_with('{') {
        if let Ok(head) = serde_json::from_str::<Head>(json) {
            // SAFETY: as in `loops::parse`: `json` was read whole by `from_str` (every field
            // checked at least as strictly as `Box<RawValue>` checks it) and has no whitespace
            // around it, so it is one well-formed JSON value as `from_string_unchecked` asks.
            let payload = unsafe { RawValue::from_string_unchecked(json.to_owned()) };
            return Ok(normalize(head, payload));
        }
    }
    parse_with_value_head(text)
}

/// The second pass: the body kept whole, its head read into `Value`s (what `parse` did before
/// it read the head in one pass).
fn parse_with_value_head(text: &str) -> Result<(String, Normalized), ParseError> {
    let payload: Box<RawValue> =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let head: ValueHead = if payload.get().starts_with('{') {
        serde_json::from_str(payload.get()).unwrap_or_default()
    } else {
        ValueHead::default()
    };
    Ok(normalize(head.into(), payload))
}

fn normalize(head: Head<'_>, payload: Box<RawValue>) -> (String, Normalized) {
    let type_name = head
        .kind
        .as_ref()
        .or(head.event.as_ref())
        .and_then(Scalar::as_str)
        .unwrap_or("");
    let kind = type_name
        .parse::<SparkloopKind>()
        .map_or(Kind::Unknown, Kind::Sparkloop);
    let sub = head.subscriber.as_ref();
    let field = |k: &str| sub.and_then(|o| o.text(k)).filter(|s| !s.is_empty());
    fn id_of<'s>(v: Option<&'s Scalar<'_>>) -> Option<Cow<'s, str>> {
        v.map(Scalar::text).filter(|s| !s.is_empty())
    }
    let subscriber = Subscriber {
        email: field("email").map(Cow::into_owned),
        esp_contact_id: None,
        sparkloop_id: field("id").or_else(|| field("uuid")).map(Cow::into_owned),
        external_id: None,
    };
    // Unix seconds. Anything else (a float, a string, milliseconds sent as seconds, a number
    // beyond what RFC 3339 can write) is no time: absent, and the receipt time stands in.
    let occurred_at = sub
        .and_then(|s| s.as_i64("created_at"))
        .and_then(time::from_unix_secs);
    let campaign = id_of(head.campaign.as_ref().and_then(|c| c.id.as_ref()))
        .or_else(|| head.campaign_id.as_ref().map(Scalar::text));
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
    let dedupe_id = if kind == Kind::Unknown || subscriber.sparkloop_id.is_none() {
        sha256_hex(payload.get().as_bytes())
    } else {
        derive_dedupe_id(&[
            kind.as_str(),
            subscriber.sparkloop_id.as_deref().unwrap_or(""),
            campaign.as_deref().unwrap_or(""),
            field("referral_status").as_deref().unwrap_or(""),
            id_of(head.reward.as_ref().and_then(|r| r.id.as_ref()))
                .as_deref()
                .unwrap_or(""),
            id_of(head.referrer.as_ref().and_then(|r| r.id.as_ref()))
                .as_deref()
                .unwrap_or(""),
            id_of(
                head.referrer
                    .as_ref()
                    .and_then(|r| r.tot_referrals.as_ref()),
            )
            .as_deref()
            .unwrap_or(""),
            field("tot_referrals")
                .filter(|_| {
                    matches!(
                        kind,
                        Kind::Sparkloop(
                            SparkloopKind::RewardUnlocked | SparkloopKind::RewardRedeemed
                        )
                    )
                })
                .as_deref()
                .unwrap_or(""),
            &sub.filter(|_| kind == Kind::Sparkloop(SparkloopKind::SyncSubscriber))
                .map(Fields::sha256_hex)
                .unwrap_or_default(),
        ])
    };
    (
        dedupe_id,
        Normalized {
            kind,
            subscriber,
            occurred_at,
            parked: None,
            payload,
        },
    )
}

/// The `id` and `tot_referrals` of an object (`campaign`, `reward`, `referrer`), the last one
/// of each as `Value::get` finds it; a value that is not an object has neither. Everything
/// else is checked as `Value` would check it ([`Checked`]) and not kept.
#[derive(Default)]
struct Ids<'a> {
    id: Option<Scalar<'a>>,
    tot_referrals: Option<Scalar<'a>>,
}

impl From<&Value> for Ids<'_> {
    fn from(v: &Value) -> Self {
        let get = |k: &str| v.get(k).cloned().map(Scalar::from);
        Ids {
            id: get("id"),
            tot_referrals: get("tot_referrals"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Ids<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IdsVisitor)
    }
}

struct IdsVisitor;

impl<'de> Visitor<'de> for IdsVisitor {
    type Value = Ids<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ids = Ids::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_ref() {
                "id" => ids.id = Some(map.next_value()?),
                "tot_referrals" => ids.tot_referrals = Some(map.next_value()?),
                _ => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(ids)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        CheckedVisitor.visit_seq(seq).map(|_| Ids::default())
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(Ids::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Ids::default())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Ids::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Ids::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Ids::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Ids::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Ids::default())
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

    /// The one-pass head reads every body as the `Value` head does: same kind, subscriber,
    /// time, payload and dedupe id, including bodies only one of them can read.
    #[test]
    fn one_pass_and_value_head_agree() {
        let sync = PENDING.replace("new_partner_pending_referral", "sync_subscriber");
        let reward = r#"{"type":"reward_unlocked","campaign_id":7,"subscriber":{"id":"sub_1","tot_referrals":4},"reward":{"id":"rw","id":"rw2"},"referrer":{"id":"sub_0","tot_referrals":4.0}}"#;
        let bodies = [
            PENDING.to_string(),
            sync,
            reward.to_string(),
            format!("  {PENDING}\n"),
            // ids of other types: written as serde_json writes them
            r#"{"type":"new_referral","campaign":{"id":12.50},"subscriber":{"id":1e2,"email":null},"referrer":{"id":{"b":1,"a":[true,null]},"tot_referrals":18446744073709551615}}"#.into(),
            // escapes, in keys and values
            r#"{"typ\u0065":"new_referral","campaign":{"\u0069d":"c\"1\u00e9"},"subscriber":{"id":"sub_\u0031"}}"#.into(),
            // read by neither head: a number out of range, a lone surrogate, nesting past
            // serde_json's limit, a repeated head field
            r#"{"type":"new_referral","campaign":{"x":1e400},"subscriber":{"id":"sub_1"}}"#.into(),
            r#"{"type":"new_referral","referrer":{"x":"\ud800"},"subscriber":{"id":"sub_1"}}"#.into(),
            format!(r#"{{"type":"new_referral","reward":{}1{},"subscriber":{{"id":"sub_1"}}}}"#, "[".repeat(130), "]".repeat(130)),
            r#"{"type":"new_referral","type":"new_referral","subscriber":{"id":"sub_1"}}"#.into(),
            // a key serde_json's `Value` gives a meaning of its own
            r#"{"type":"new_referral","campaign":{"$serde_json::private::RawValue":"{\"id\":\"c9\"}"},"subscriber":{"id":"sub_1"}}"#.into(),
            r#"{"type":"new_referral","campaign":{"id":{"$serde_json::private::RawValue":"5"}},"subscriber":{"id":"sub_1"}}"#.into(),
            // other shapes
            r#"{"event":"new_referral","type":null,"campaign":[{"id":"c"}],"reward":"r","subscriber":{"uuid":"sub_9","created_at":1659536359}}"#.into(),
            r#"[{"type":"new_referral"}]"#.into(),
            "{}".into(),
        ];
        for body in &bodies {
            let (id, n) = parse(body.as_bytes()).unwrap();
            let (want_id, want) = parse_with_value_head(body).unwrap();
            assert_eq!(id, want_id, "{body}");
            assert_eq!(n.kind, want.kind, "{body}");
            assert_eq!(n.subscriber, want.subscriber, "{body}");
            assert_eq!(n.occurred_at, want.occurred_at, "{body}");
            assert_eq!(n.payload.get(), want.payload.get(), "{body}");
        }
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
