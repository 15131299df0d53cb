//! The least any reader built on serde_json and sha2 does for SparkLoop's `sync_subscriber`
//! sample: BENCHMARKS.md's floor under `sparkloop_full`. Every step is what `sparkloop::parse`
//! cannot skip, done the cheapest way, and none of what makes the real reader exact:
//!
//! - one serde_json pass that finds each field the event and its dedupe id are made of,
//!   borrowing every value as raw text (no number read, no key unescaped, duplicates not
//!   handled, nothing the `Value` reading would refuse refused);
//! - the subscriber written as serde_json writes a `Value` (keys sorted, values as sent),
//!   assuming every value is one serde_json writes back unchanged;
//! - the two SHA-256 the dedupe id is defined by, each fed in one call from a buffer on the
//!   stack;
//! - the text the event keeps: the body as its payload, the email and the subscriber's id.
//!
//! The token check comes first, as in `sparkloop_full`.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// What the floor keeps: the dedupe id, the payload, the email and the id.
pub type Kept = (String, String, String, String);

/// The top-level fields the key and the event read, each raw.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    subscriber: Option<Fields<'a>>,
    #[serde(borrow)]
    campaign: Option<Ids<'a>>,
    #[serde(borrow)]
    campaign_id: Option<&'a RawValue>,
    #[serde(borrow)]
    reward: Option<Ids<'a>>,
    #[serde(borrow)]
    referrer: Option<Ids<'a>>,
}

#[derive(Deserialize)]
struct Ids<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    tot_referrals: Option<&'a RawValue>,
}

/// The subscriber's fields in the order sent.
struct Fields<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<&'de str>()? {
                    fields.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| text(v))
    }

    /// The object as serde_json writes a `Value`: keys in order, no spaces.
    fn canonical<'b>(&mut self, out: &'b mut [u8; 512]) -> Option<&'b [u8]> {
        self.0.sort_unstable_by_key(|(k, _)| *k);
        let mut n = 0;
        let mut put = |bytes: &[u8]| -> Option<()> {
            out.get_mut(n..n + bytes.len())?.copy_from_slice(bytes);
            n += bytes.len();
            Some(())
        };
        put(b"{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                put(b",")?;
            }
            put(b"\"")?;
            put(k.as_bytes())?;
            put(b"\":")?;
            put(v.get().as_bytes())?;
        }
        put(b"}")?;
        Some(&out[..n])
    }
}

/// A raw string without its quotes; null as nothing; anything else as sent.
fn text(raw: &RawValue) -> &str {
    let raw = raw.get();
    match raw.strip_prefix('"') {
        Some(s) => &s[..s.len() - 1],
        None if raw == "null" => "",
        None => raw,
    }
}

fn text_of(raw: Option<&RawValue>) -> &str {
    raw.map_or("", text)
}

/// The floor's work on `body`; `None` when the sample's shape is not there.
pub fn parse(body: &[u8]) -> Option<Kept> {
    let json = std::str::from_utf8(body).ok()?;
    let head: Head = serde_json::from_str(json).ok()?;
    let kind = text_of(head.kind.or(head.event));
    let mut sub = head.subscriber?;
    let id = sub.get("id")?.to_owned();
    let email = sub.get("email").unwrap_or_default().to_owned();
    let referral_status = sub.get("referral_status").unwrap_or_default();
    let campaign = head
        .campaign
        .as_ref()
        .and_then(|c| c.id)
        .or(head.campaign_id);
    let mut sub_hex = [0u8; 64];
    let mut buf = [0u8; 512];
    let digest: [u8; 32] = Sha256::digest(sub.canonical(&mut buf)?).into();
    hex::encode_to_slice(digest, &mut sub_hex).ok()?;
    let fields = [
        kind,
        &id,
        text_of(campaign),
        referral_status,
        text_of(head.reward.as_ref().and_then(|r| r.id)),
        text_of(head.referrer.as_ref().and_then(|r| r.id)),
        text_of(head.referrer.as_ref().and_then(|r| r.tot_referrals)),
        "",
        std::str::from_utf8(&sub_hex).ok()?,
    ];
    let mut key = [0u8; 512];
    let mut id_hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(key_text(&fields, &mut key)?), &mut id_hex).ok()?;
    let dedupe_id = std::str::from_utf8(&id_hex).ok()?.to_owned();
    Some((dedupe_id, json.to_owned(), email, id))
}

/// The fields length-prefixed, as `derive_dedupe_id` hashes them.
fn key_text<'b>(fields: &[&str], out: &'b mut [u8; 512]) -> Option<&'b [u8]> {
    let mut n = 0;
    for f in fields {
        out.get_mut(n..n + 8)?
            .copy_from_slice(&(f.len() as u64).to_be_bytes());
        out.get_mut(n + 8..n + 8 + f.len())?
            .copy_from_slice(f.as_bytes());
        n += 8 + f.len();
    }
    Some(&out[..n])
}
