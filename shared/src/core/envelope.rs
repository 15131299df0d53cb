//! The one message shape on the queue, whatever the provider.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Version of the envelope schema; bump on incompatible changes so old workers refuse
/// (and DLQ) what they cannot read instead of misreading it.
pub const ENVELOPE_VERSION: u32 = 1;

pub use crate::core::kind::Kind;
/// The name of `Kind::Unknown`.
pub const KIND_UNKNOWN: &str = crate::core::kind::UNKNOWN;
/// The name of `Kind::Parked`.
pub const KIND_PARKED: &str = crate::core::kind::PARKED;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Loops,
    Esputnik,
    Sparkloop,
    /// Events sparkbridge produces itself (screener rejects, reconciler repairs).
    Sparkbridge,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Loops => "loops",
            Provider::Esputnik => "esputnik",
            Provider::Sparkloop => "sparkloop",
            Provider::Sparkbridge => "sparkbridge",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "loops" => Ok(Provider::Loops),
            "esputnik" => Ok(Provider::Esputnik),
            "sparkloop" => Ok(Provider::Sparkloop),
            "sparkbridge" => Ok(Provider::Sparkbridge),
            other => Err(format!(
                "unknown provider {other:?} (expected loops, esputnik or sparkloop)"
            )),
        }
    }
}

/// Who the event is about, as far as the provider told us.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The ESP's contact id (Loops `contactIdentity.id`, eSputnik `contactId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esp_contact_id: Option<String>,
    /// SparkLoop's subscriber id (`sub_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparkloop_id: Option<String>,
    /// Loops `userId`, eSputnik `externalCustomerId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl Subscriber {
    /// The key that orders a subscriber's events in the worker: the `Email`, else an id.
    pub fn ordering_key(&self) -> Option<String> {
        self.email
            .as_deref()
            .map(|e| crate::core::email::Email::new(e).into_string())
            .or_else(|| self.esp_contact_id.clone())
            .or_else(|| self.sparkloop_id.clone())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    pub provider: Provider,
    /// The provider's event type (`email.unsubscribed`, `UNSUBSCRIBED`, `sync_subscriber`),
    /// sparkbridge's own (`screening.reject`, `reconcile.*`), or `unknown` / `parked`.
    pub kind: Kind,
    /// Stable across the provider's retries of one event, different across real events.
    pub dedupe_id: String,
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub subscriber: Subscriber,
    /// Why this message could not be understood at ingest; the worker sends it to the DLQ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
    /// The provider's payload exactly as received (for eSputnik, one array element).
    pub payload: Box<RawValue>,
}

/// What a provider parser extracts from one event; ingest adds the dedupe id and times.
#[derive(Debug)]
pub struct Normalized {
    pub kind: Kind,
    pub subscriber: Subscriber,
    pub occurred_at: Option<DateTime<Utc>>,
    pub parked: Option<String>,
    pub payload: Box<RawValue>,
}

impl Envelope {
    /// The envelope's JSON, as `serde_json::to_string` writes it, in a buffer sized for it
    /// up front: the payload is most of it, and growing from serde_json's 128 bytes copies
    /// the text three or four times.
    pub fn to_json(&self) -> String {
        let fields = self.dedupe_id.len() + self.parked.as_ref().map_or(0, String::len);
        let mut json = Vec::with_capacity(self.payload.get().len() + fields + 384);
        serde_json::to_writer(&mut json, self).expect("envelopes always serialize");
        String::from_utf8(json).expect("serde_json writes UTF-8")
    }

    pub fn new(
        provider: Provider,
        dedupe_id: String,
        received_at: DateTime<Utc>,
        n: Normalized,
    ) -> Self {
        Envelope {
            v: ENVELOPE_VERSION,
            provider,
            kind: n.kind,
            dedupe_id,
            received_at,
            occurred_at: n.occurred_at,
            subscriber: n.subscriber,
            parked: n.parked,
            payload: n.payload,
        }
    }

    /// sha256 of the raw payload, used to tell a true duplicate from a reused id.
    pub fn payload_hash(&self) -> String {
        sha256_hex(self.payload.get().as_bytes())
    }

    /// Payload as a JSON value, for rules that need fields the envelope does not lift.
    pub fn payload_value(&self) -> serde_json::Value {
        serde_json::from_str(self.payload.get()).unwrap_or(serde_json::Value::Null)
    }

    /// What is queued in place of an authenticated event too large for the queue: its size,
    /// sha256 and first `head_bytes` bytes, parked with the reason (an operator fetches the
    /// rest from the provider). Refusing it instead would lose it, and would hold back every
    /// later eSputnik event behind the refused request.
    pub fn oversize_reference(&self, head_bytes: usize, max_bytes: usize) -> Envelope {
        let raw = self.payload.get();
        let mut end = head_bytes.min(raw.len());
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        let reference = serde_json::json!({
            "oversize": {
                "bytes": raw.len(),
                "sha256": sha256_hex(raw.as_bytes()),
                "head": &raw[..end],
            }
        });
        // Provider-controlled text is clipped too, so the reference always fits: a refused
        // eSputnik request would hold back every later event behind it.
        let clip = |v: &Option<String>| v.as_deref().map(|s| truncate(s, REFERENCE_FIELD_BYTES));
        Envelope {
            kind: match &self.kind {
                Kind::Other(name) => Kind::Other(truncate(name, REFERENCE_FIELD_BYTES)),
                kind => kind.clone(),
            },
            dedupe_id: truncate(&self.dedupe_id, REFERENCE_FIELD_BYTES),
            subscriber: Subscriber {
                email: clip(&self.subscriber.email),
                esp_contact_id: clip(&self.subscriber.esp_contact_id),
                sparkloop_id: clip(&self.subscriber.sparkloop_id),
                external_id: clip(&self.subscriber.external_id),
            },
            parked: Some(format!(
                "payload of {} bytes is over the queue's message size ({max_bytes}); kept as its \
                 size, sha256 and first {end} bytes",
                raw.len()
            )),
            payload: serde_json::value::to_raw_value(&reference)
                .expect("a JSON value always serializes"),
            ..self.clone()
        }
    }

    /// The idempotency key: provider + dedupe id.
    pub fn idempotency_key(&self) -> String {
        format!("{}#{}", self.provider, self.dedupe_id)
    }
}

/// At most `max` bytes of `s` (on a char boundary), with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Longest identifier or kind kept in an oversize reference.
pub const REFERENCE_FIELD_BYTES: usize = 1_024;

pub fn sha256_hex(bytes: &[u8]) -> String {
    digest_hex(&Sha256::digest(bytes).into())
}

/// Lower-case hex of a SHA-256 digest, as `hex::encode` writes it, without its char-by-char
/// collecting (a tenth of a SparkLoop parse).
pub(crate) fn digest_hex(digest: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(digest, &mut out).expect("64 bytes hold 32 in hex");
    String::from_utf8(out.to_vec()).expect("hex is ASCII")
}

/// Hashes identifying fields into a dedupe id. Fields are length-prefixed so that
/// ("ab","c") and ("a","bc") cannot collide.
pub fn derive_dedupe_id(fields: &[&str]) -> String {
    let mut h = Sha256::new();
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    digest_hex(&h.finalize().into())
}

/// A raw JSON value holding `text` as a JSON string, for payloads that were not JSON.
pub fn raw_string(text: &str) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(text).expect("a string always serializes"))
        .expect("a serialized string is valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_hex_writes_what_hex_encode_writes() {
        for bytes in [&b""[..], b"a", &[0xff; 70]] {
            let digest: [u8; 32] = Sha256::digest(bytes).into();
            assert_eq!(digest_hex(&digest), hex::encode(digest));
        }
    }

    #[test]
    fn dedupe_ids_do_not_collide_on_concatenation() {
        assert_ne!(
            derive_dedupe_id(&["ab", "c"]),
            derive_dedupe_id(&["a", "bc"])
        );
        assert_eq!(derive_dedupe_id(&["a", "b"]), derive_dedupe_id(&["a", "b"]));
    }

    #[test]
    fn envelope_round_trips_with_the_payload_verbatim() {
        let raw = r#"{"b": 1,  "a":[2]}"#;
        let env = Envelope {
            v: ENVELOPE_VERSION,
            provider: Provider::Loops,
            kind: Kind::parse("email.opened"),
            dedupe_id: "msg_1".into(),
            received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            occurred_at: None,
            subscriber: Subscriber {
                email: Some("a@b.c".into()),
                ..Default::default()
            },
            parked: None,
            payload: RawValue::from_string(raw.into()).unwrap(),
        };
        let json = env.to_json();
        assert_eq!(json, serde_json::to_string(&env).unwrap());
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back.payload.get(), raw);
        let parked = Envelope {
            parked: Some("a reason".into()),
            occurred_at: Some(env.received_at),
            ..env
        };
        assert_eq!(parked.to_json(), serde_json::to_string(&parked).unwrap());
        assert_eq!(back.payload_hash(), sha256_hex(raw.as_bytes()));
        assert_eq!(back.idempotency_key(), "loops#msg_1");
    }

    #[test]
    fn ordering_key_prefers_lowercased_email() {
        let s = Subscriber {
            email: Some("A@B.C".into()),
            esp_contact_id: Some("1".into()),
            ..Default::default()
        };
        assert_eq!(s.ordering_key().as_deref(), Some("a@b.c"));
        let s = Subscriber {
            esp_contact_id: Some("1".into()),
            ..Default::default()
        };
        assert_eq!(s.ordering_key().as_deref(), Some("1"));
        assert_eq!(Subscriber::default().ordering_key(), None);
    }

    #[test]
    fn raw_string_keeps_non_json_text() {
        let r = raw_string("not \"json\"\n");
        let v: String = serde_json::from_str(r.get()).unwrap();
        assert_eq!(v, "not \"json\"\n");
    }
}
