//! JSON read the way `serde_json::Value` reads it, without building a `Value`: strings are
//! borrowed from the body where they have no escapes, and what is only checked is not kept.
//! The ingest parsers use these so that one pass gives the dedupe ids the `Value`-based
//! reading gave (each parser has a test comparing the two).

use std::borrow::Cow;

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
    pub(crate) fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.to_string(),
            Scalar::Null => String::new(),
            Scalar::Other(v) => v.to_string(),
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
    pub(crate) fn text(&self) -> String {
        match self {
            Tree::Str(s) => s.to_string(),
            Tree::Null => String::new(),
            other => serde_json::to_string(other).expect("a JSON tree always serializes"),
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
        // `Value` keeps the last of a repeated key: reversed, a stable sort puts the last one
        // first among its equals, and `dedup_by` keeps the first.
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(Tree::Object(entries))
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
                assert_eq!(tree.get(key).map(Tree::text), want, "{text} {key}");
                assert_eq!(
                    tree.get(key).and_then(Tree::as_i64),
                    value.get(key).and_then(Value::as_i64)
                );
            }
        }
    }

    #[test]
    fn a_key_that_marks_a_raw_value_is_refused() {
        assert!(serde_json::from_str::<Tree>(r#"{"$serde_json::private::RawValue":"1"}"#).is_err());
    }
}
