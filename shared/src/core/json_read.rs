//! JSON read the way `serde_json::Value` reads it, without building a `Value`: strings are
//! borrowed from the body where they have no escapes, and what is only checked is not kept.
//! The ingest parsers use these so that one pass gives the dedupe ids the `Value`-based
//! reading gave (each parser has a test comparing the two).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Number, Value};

/// The four characters JSON allows around a value (RFC 8259, section 2).
pub(crate) const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// One JSON value of the head, as `Value` would read it: a string (borrowed when it has no
/// escapes), null, or any other value as its `Value`. Read with `deserialize_any`, the call
/// `Value` itself makes, so what it accepts and refuses is what `Value` accepts and refuses.
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Null,
    Other(Value),
}

impl Scalar<'_> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `text_of` of the same value read as a `Value`.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Str(s) => Cow::Borrowed(s),
            Scalar::Null => Cow::Borrowed(""),
            Scalar::Other(v) => Cow::Owned(v.to_string()),
        }
    }
}

impl From<Value> for Scalar<'_> {
    fn from(v: Value) -> Self {
        match v {
            Value::String(s) => Scalar::Str(Cow::Owned(s)),
            Value::Null => Scalar::Null,
            other => Scalar::Other(other),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Value::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Scalar::Other)
    }
}

/// An object key, read as `Value` reads keys (`deserialize_str`). serde_json gives the key
/// that marks a raw value (`$serde_json::private::RawValue`) a meaning of its own inside
/// `Value`; it is refused here, so such a body is read by the `Value` head instead.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Key::checked(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Key::checked(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Key::checked(Cow::Owned(v))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'a> Key<'a> {
    fn checked<E: de::Error>(k: Cow<'a, str>) -> Result<Self, E> {
        if k == RAW_VALUE_TOKEN {
            return Err(E::custom("a raw value marker: read by the Value head"));
        }
        Ok(Key(k))
    }
}

/// A value checked as `Value` would read it (numbers in range, strings that decode, nesting
/// within serde_json's limit), and dropped: nothing is allocated for it.
pub(crate) struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

pub(crate) struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_key::<Key>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Checked)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Checked)
    }
}

/// A whole JSON value as `Value` holds it (objects sorted by key, the last of a repeated key
/// kept, numbers as `Number`), with borrowed strings. It writes exactly what `Value` writes,
/// so a hash of it equals the hash of `value.to_string()`.
#[derive(Debug, PartialEq)]
pub(crate) enum Tree<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Tree<'a>>),
    /// Sorted by key, each key once: what `Value`'s map holds, without a tree of nodes.
    Object(Vec<(Cow<'a, str>, Tree<'a>)>),
}

impl<'a> Tree<'a> {
    /// `Value::get` with a key.
    pub(crate) fn get(&self, key: &str) -> Option<&Tree<'a>> {
        match self {
            Tree::Object(entries) => entries
                .binary_search_by(|(k, _)| k.as_ref().cmp(key))
                .ok()
                .map(|i| &entries[i].1),
            _ => None,
        }
    }

    /// `Value::as_i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Tree::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The text of a field: a string as it is, null as nothing, anything else as JSON.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Tree::Str(s) => Cow::Borrowed(s),
            Tree::Null => Cow::Borrowed(""),
            other => {
                Cow::Owned(serde_json::to_string(other).expect("a JSON tree always serializes"))
            }
        }
    }

    /// SHA-256 (hex) of the value as serde_json writes it. Written to a buffer first: the
    /// serializer writes a byte or two at a time, each a call into the hasher otherwise.
    pub(crate) fn sha256_hex(&self) -> String {
        let mut json = Vec::with_capacity(512);
        serde_json::to_writer(&mut json, self).expect("a JSON tree always serializes");
        crate::core::envelope::sha256_hex(&json)
    }
}

impl From<Value> for Tree<'static> {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => Tree::Null,
            Value::Bool(b) => Tree::Bool(b),
            Value::Number(n) => Tree::Number(n),
            Value::String(s) => Tree::Str(Cow::Owned(s)),
            Value::Array(a) => Tree::Array(a.into_iter().map(Tree::from).collect()),
            Value::Object(o) => {
                let mut entries: Vec<(Cow<str>, Tree)> = o
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Tree::from(v)))
                    .collect();
                // already in key order unless serde_json's `preserve_order` is on
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Tree::Object(entries)
            }
        }
    }
}

impl Serialize for Tree<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Null => s.serialize_unit(),
            Tree::Bool(b) => s.serialize_bool(*b),
            Tree::Number(n) => n.serialize(s),
            Tree::Str(v) => s.serialize_str(v),
            Tree::Array(a) => s.collect_seq(a),
            Tree::Object(entries) => s.collect_map(entries.iter().map(|(k, v)| (k, v))),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Tree<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Tree::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Tree::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // as `Value` does: a float JSON cannot write is null
        Ok(Number::from_f64(v).map_or(Tree::Null, Tree::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Tree::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Tree::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Tree::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Tree::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Tree::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        sort_keeping_the_last(&mut entries, |a, b| a.0.cmp(&b.0));
        Ok(Tree::Object(entries))
    }
}

/// Object entries as `Value`'s map holds them: sorted by key, the last of a repeated key kept.
/// Reversed, a stable sort puts the last one first among its equals, and `dedup_by` keeps the
/// first. `by_key` orders entries by their keys.
fn sort_keeping_the_last<T>(entries: &mut Vec<T>, by_key: impl Fn(&T, &T) -> Ordering) {
    entries.reverse();
    entries.sort_by(&by_key);
    entries.dedup_by(|a, b| by_key(a, b) == Ordering::Equal);
}

/// A value read for a few of its fields and for the SHA-256 of what `Value` writes of it
/// (SparkLoop's subscriber), without decoding what it only copies. An object of scalars is
/// read flat: each value that `Value` writes back exactly as it was sent (a string without
/// escapes, an integer of at most 18 digits, `true`, `false`, `null`) is kept as its text, any
/// other scalar is read into a [`Tree`]. An object or array inside that object is refused
/// (read on its own, a nested value would get serde_json's whole nesting limit again), so
/// such a body is read by the `Value` head. Any other value is a [`Tree`].
#[derive(Debug, PartialEq)]
pub(crate) enum Fields<'a> {
    /// Sorted by key, each key once, as in [`Tree::Object`].
    Flat(Vec<Field<'a>>),
    Tree(Tree<'a>),
}

#[derive(Debug, PartialEq)]
pub(crate) struct Field<'a> {
    /// The key's first eight bytes, big-endian and zero-padded: ordered as the keys are up
    /// to a tie, so that sorting and finding compare integers first.
    rank: u64,
    key: Cow<'a, str>,
    value: Sent<'a>,
}

/// A scalar of a flat object.
#[derive(Debug, PartialEq)]
enum Sent<'a> {
    /// The JSON text as sent, which is what `Value` writes of it.
    Verbatim(&'a str),
    /// Boxed: rare, and it would double the size of every field.
    Read(Box<Tree<'a>>),
}

impl<'a> Sent<'a> {
    fn read(raw: &'a str) -> Result<Self, serde_json::Error> {
        let verbatim = match raw.as_bytes().first() {
            Some(b'"') => !raw.contains('\\'),
            Some(b'n' | b't' | b'f') => true,
            Some(b'{' | b'[') => {
                return Err(de::Error::custom("a nested value: read by the Value head"))
            }
            _ => is_short_integer(raw),
        };
        if verbatim {
            Ok(Sent::Verbatim(raw))
        } else {
            serde_json::from_str(raw).map(|tree| Sent::Read(Box::new(tree)))
        }
    }

    fn text(&self) -> Cow<'_, str> {
        match self {
            Sent::Verbatim(raw) if raw.starts_with('"') => Cow::Borrowed(&raw[1..raw.len() - 1]),
            Sent::Verbatim("null") => Cow::Borrowed(""),
            Sent::Verbatim(raw) => Cow::Borrowed(raw),
            Sent::Read(tree) => tree.text(),
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Sent::Verbatim(raw) => raw.parse().ok(),
            Sent::Read(tree) => tree.as_i64(),
        }
    }
}

/// An integer `Value` holds as an `i64`/`u64` and writes back digit for digit: at most 18
/// digits (within both), and not `-0` (which `Value` reads as the float `-0.0`). JSON's grammar,
/// already checked, rules out leading zeros.
fn is_short_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && raw != "-0"
}

fn rank(key: &str) -> u64 {
    match key.as_bytes().first_chunk::<8>() {
        Some(head) => u64::from_be_bytes(*head),
        // byte by byte: a copy of a length not known when compiling is a call to memcpy
        None => key
            .bytes()
            .enumerate()
            .fold(0, |rank, (i, b)| rank | u64::from(b) << (56 - 8 * i)),
    }
}

impl<'a> Fields<'a> {
    /// `Tree::text` of the field `key`.
    pub(crate) fn text(&self, key: &str) -> Option<Cow<'_, str>> {
        match self {
            Fields::Flat(fields) => Self::find(fields, key).map(Sent::text),
            Fields::Tree(tree) => tree.get(key).map(Tree::text),
        }
    }

    /// `Tree::as_i64` of the field `key`.
    pub(crate) fn as_i64(&self, key: &str) -> Option<i64> {
        match self {
            Fields::Flat(fields) => Self::find(fields, key).and_then(Sent::as_i64),
            Fields::Tree(tree) => tree.get(key).and_then(Tree::as_i64),
        }
    }

    fn find<'f>(fields: &'f [Field<'a>], key: &str) -> Option<&'f Sent<'a>> {
        let r = rank(key);
        fields
            .iter()
            .find(|f| f.rank == r && f.key == key)
            .map(|f| &f.value)
    }

    /// `Tree::sha256_hex`: the same text, copied rather than written value by value.
    pub(crate) fn sha256_hex(&self) -> String {
        match self {
            Fields::Flat(fields) => crate::core::envelope::sha256_hex(&write_flat(fields)),
            Fields::Tree(tree) => tree.sha256_hex(),
        }
    }
}

/// The object as `Value` writes it: its fields are already in `Value`'s order.
fn write_flat(fields: &[Field]) -> Vec<u8> {
    let size: usize = fields
        .iter()
        .map(|f| f.key.len() + 4 + f.value.sent_len())
        .sum();
    let mut json = Vec::with_capacity(2 + size);
    json.push(b'{');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        write_key(field, &mut json);
        json.push(b':');
        match &field.value {
            Sent::Verbatim(raw) => json.extend_from_slice(raw.as_bytes()),
            Sent::Read(tree) => {
                serde_json::to_writer(&mut json, &**tree).expect("a JSON tree always serializes");
            }
        }
    }
    json.push(b'}');
    json
}

impl Sent<'_> {
    fn sent_len(&self) -> usize {
        match self {
            Sent::Verbatim(raw) => raw.len(),
            Sent::Read(_) => 16,
        }
    }
}

/// A key as serde_json writes it. One borrowed from the body had no escape sequence, and JSON
/// text holds no quote or control character unescaped, so it is written as sent; a key that
/// was unescaped is escaped again by serde_json. (Only serde_json reads `Fields`: it is made of
/// `RawValue`s.)
fn write_key(field: &Field, out: &mut Vec<u8>) {
    match &field.key {
        Cow::Borrowed(key) => {
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(key) => {
            serde_json::to_writer(out, key).expect("a string always serializes");
        }
    }
}

impl<'a> From<Tree<'a>> for Fields<'a> {
    fn from(tree: Tree<'a>) -> Self {
        Fields::Tree(tree)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldsVisitor)
    }
}

/// Objects read flat; every other value handed to [`TreeVisitor`].
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(16);
        while let Some(Key(key)) = map.next_key()? {
            let raw: &'de serde_json::value::RawValue = map.next_value()?;
            let value = Sent::read(raw.get()).map_err(de::Error::custom)?;
            fields.push(Field {
                rank: rank(&key),
                key,
                value,
            });
        }
        sort_keeping_the_last(&mut fields, |a, b| {
            a.rank.cmp(&b.rank).then_with(|| a.key.cmp(&b.key))
        });
        Ok(Fields::Flat(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        TreeVisitor.visit_seq(seq).map(Fields::Tree)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        TreeVisitor.visit_bool(v).map(Fields::Tree)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        TreeVisitor.visit_i64(v).map(Fields::Tree)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        TreeVisitor.visit_u64(v).map(Fields::Tree)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        TreeVisitor.visit_f64(v).map(Fields::Tree)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        TreeVisitor.visit_borrowed_str(v).map(Fields::Tree)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        TreeVisitor.visit_str(v).map(Fields::Tree)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        TreeVisitor.visit_string(v).map(Fields::Tree)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        TreeVisitor.visit_unit().map(Fields::Tree)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        TreeVisitor.visit_none().map(Fields::Tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Every shape `Value` reads: the tree writes, finds and hashes what `Value` does.
    #[test]
    fn a_tree_writes_and_hashes_what_value_writes() {
        for text in [
            r#"{"id":"sub_1","b":null,"a":[1,-2,3.5,1e2,true,{"z":1,"y":"\u00e9\"q"}],"n":18446744073709551615}"#,
            r#"{"k":1,"k":2,"\u006b":3}"#,
            r#"{"id":{"b":{},"a":[]},"created_at":1659536359,"f":1.0,"g":-0.0,"h":12.50}"#,
            r#"[]"#,
            r#""plain""#,
            r#"0"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let tree: Tree = serde_json::from_str(text).unwrap();
            assert_eq!(
                serde_json::to_string(&tree).unwrap(),
                value.to_string(),
                "{text}"
            );
            assert_eq!(
                tree.sha256_hex(),
                hex::encode(Sha256::digest(value.to_string()))
            );
            assert_eq!(Tree::from(value.clone()), tree, "{text}");
            for key in ["id", "k", "created_at", "missing"] {
                let want = value.get(key).map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                });
                assert_eq!(
                    tree.get(key).map(|t| t.text().into_owned()),
                    want,
                    "{text} {key}"
                );
                assert_eq!(
                    tree.get(key).and_then(Tree::as_i64),
                    value.get(key).and_then(Value::as_i64)
                );
            }
        }
    }

    /// Objects of every kind of scalar, as sent or needing a reading: the flat reading finds,
    /// writes and hashes what `Value` does.
    #[test]
    fn flat_fields_find_and_hash_what_value_does() {
        for text in [
            r#"{"id":"sub_042448acb02a","first_name":null,"name":null,"email":"a@b.c","referral_code":"6363a0b5","referred":true,"tot_referrals":0,"referral_status":"rejected","last_reward":false,"created_at":1659536359}"#,
            r#"{"id":12,"uuid":"u\u00e9\"q\n","email":"\u0041@b.c","created_at":-5,"k":1.0,"l":1e2,"m":-0,"n":18446744073709551615,"o":999999999999999999,"p":-999999999999999999,"q":1000000000000000000,"r":12.50}"#,
            r#"{"k":1,"k":2,"\u006b":3,"referral_status":"a","referral_status":"b","":0,"referral_code":"c","referred":"d"}"#,
            r#"{"\u0000":1,"a\"b":2,"é":"ü","ab\u0000":3,"ab":4}"#,
            r#"{}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let fields: Fields = serde_json::from_str(text).unwrap();
            assert!(matches!(fields, Fields::Flat(_)), "{text}");
            assert_eq!(
                fields.sha256_hex(),
                hex::encode(Sha256::digest(value.to_string())),
                "{text}"
            );
            for key in [
                "id",
                "uuid",
                "email",
                "created_at",
                "k",
                "l",
                "m",
                "n",
                "o",
                "p",
                "q",
                "r",
                "referral_status",
                "\u{0}",
                "ab",
                "missing",
            ] {
                let want = value.get(key).map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                });
                assert_eq!(fields.text(key).map(Cow::into_owned), want, "{text} {key}");
                assert_eq!(
                    fields.as_i64(key),
                    value.get(key).and_then(Value::as_i64),
                    "{text} {key}"
                );
            }
        }
    }

    /// Values that are not a flat object are read as a `Tree` (or, nested in an object,
    /// refused); what `Value` refuses is refused.
    #[test]
    fn fields_of_other_shapes_are_trees_and_refusals_match_value() {
        for text in [r#""x""#, "[1,{}]", "7", "true"] {
            let fields: Fields = serde_json::from_str(text).unwrap();
            let tree: Tree = serde_json::from_str(text).unwrap();
            assert_eq!(fields, Fields::Tree(tree), "{text}");
        }
        for text in [
            r#"{"a":{"b":1}}"#,
            r#"{"a":[]}"#,
            r#"{"a":1e400}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"$serde_json::private::RawValue":"1"}"#,
        ] {
            assert!(serde_json::from_str::<Fields>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_key_that_marks_a_raw_value_is_refused() {
        assert!(serde_json::from_str::<Tree>(r#"{"$serde_json::private::RawValue":"1"}"#).is_err());
    }

    mod flat_against_value {
        use super::*;
        use proptest::prelude::*;

        const KEYS: [&str; 8] = [
            "id",
            "email",
            "ab",
            "ab\u{0}",
            "référence",
            "referral_status",
            "referred",
            "k\"",
        ];

        /// Every character as a `\uXXXX` escape (a pair for one outside the BMP).
        fn all_escaped(s: &str) -> String {
            let mut out = String::from("\"");
            for unit in s.encode_utf16() {
                out.push_str(&format!("\\u{unit:04x}"));
            }
            out + "\""
        }

        /// A scalar as JSON text, in the forms senders write.
        fn scalar_text() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
                any::<String>().prop_map(|s| all_escaped(&s)),
                "[a-z@.]{0,12}".prop_map(|s| format!("\"{s}\"")),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                any::<f64>()
                    .prop_filter("JSON writes finite numbers", |f| f.is_finite())
                    .prop_map(|f| serde_json::to_string(&f).unwrap()),
                prop::sample::select(vec![
                    "-0", "0", "1.0", "1e2", "12.50", "1E-2", "-0.0", "true", "false", "null"
                ])
                .prop_map(str::to_string),
            ]
        }

        fn key_text() -> impl Strategy<Value = String> {
            (prop::sample::select(KEYS.to_vec()), any::<bool>()).prop_map(|(k, escaped)| {
                if escaped {
                    all_escaped(k)
                } else {
                    serde_json::to_string(k).unwrap()
                }
            })
        }

        fn object_text() -> impl Strategy<Value = String> {
            let ws = prop::sample::select(vec!["", " ", "\n\t", "\r "]);
            prop::collection::vec((key_text(), scalar_text(), ws.clone(), ws), 0..12).prop_map(
                |fields| {
                    let body: Vec<String> = fields
                        .into_iter()
                        .map(|(k, v, a, b)| format!("{a}{k}{b}:{a}{v}{b}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                },
            )
        }

        proptest! {
            /// A flat object of any scalars, keys repeated or escaped, finds and hashes as
            /// `Value` does.
            #[test]
            fn flat_objects_read_as_value_reads_them(text in object_text()) {
                let value: Value = serde_json::from_str(&text).unwrap();
                let fields: Fields = serde_json::from_str(&text).unwrap();
                prop_assert!(matches!(fields, Fields::Flat(_)));
                prop_assert_eq!(
                    fields.sha256_hex(),
                    hex::encode(Sha256::digest(value.to_string()))
                );
                for key in KEYS {
                    let want = value.get(key).map(|v| match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    });
                    prop_assert_eq!(fields.text(key).map(Cow::into_owned), want, "{}", key);
                    prop_assert_eq!(fields.as_i64(key), value.get(key).and_then(Value::as_i64));
                }
            }
        }
    }
}
