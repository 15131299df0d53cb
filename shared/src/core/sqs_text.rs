//! The characters SQS accepts in a message body and in a string attribute value:
//! `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`. Anything else makes
//! SendMessage(Batch) fail, and since a provider retries the same bytes, an event carrying such
//! a character would be answered 503 forever. In a Rust string the refused characters are the
//! C0 controls other than tab, LF and CR, U+FFFE and U+FFFF (surrogates cannot occur).
//!
//! - Bodies are JSON (the envelope). Raw U+FFFE/U+FFFF are valid inside JSON strings, and a
//!   JSON string may spell any character as `\uXXXX`, so [`json_body`] writes each refused
//!   character as its escape: the text parses to the same JSON value. (Raw C0 controls are
//!   not valid JSON at all; they are escaped the same way so that nothing SQS refuses is ever
//!   sent, whatever the body.)
//! - Attribute values are plain text for an operator; [`attribute_value`] replaces each
//!   refused character with U+FFFD.
//!
//! Both are idempotent: their output contains no refused character, so applying them again
//! changes nothing.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether SQS accepts `c` in a message body or a string attribute value.
pub fn is_allowed(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}'
    )
}

/// Whether every character of `text` is accepted by SQS. Every body is checked on its way to
/// the queue, so the bytes are scanned first, without decoding: a refused character is a byte
/// below 0x20 (other than tab, LF, CR) or starts with 0xEF (U+F000 to U+FFFF, U+FFFE and
/// U+FFFF among them). Only text with such a byte is read character by character.
pub fn is_clean(text: &str) -> bool {
    let suspect = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF;
    // a fold without an early exit, which the compiler turns into a vector loop
    let any_suspect = text
        .as_bytes()
        .iter()
        .fold(false, |found, &b| found | suspect(b));
    !any_suspect || text.chars().all(is_allowed)
}

/// `body` with every refused character written as its JSON escape (`\uffff`); borrowed when
/// there is none. For JSON text the result parses to the same value.
pub fn json_body(body: &str) -> Cow<'_, str> {
    if is_clean(body) {
        return Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len() + 16);
    for c in body.chars() {
        if is_allowed(c) {
            out.push(c);
        } else {
            // every refused char is below U+10000: one `\uXXXX` escape, no surrogate pair
            write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a String never fails");
        }
    }
    Cow::Owned(out)
}

/// `value` with every refused character replaced by U+FFFD; borrowed when there is none.
pub fn attribute_value(value: &str) -> Cow<'_, str> {
    if is_clean(value) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .map(|c| if is_allowed(c) { c } else { '\u{FFFD}' })
            .collect(),
    )
}

/// [`json_body`] for an owned body: no copy when nothing changes.
pub fn into_json_body(body: String) -> String {
    match json_body(&body) {
        Cow::Borrowed(_) => body,
        Cow::Owned(escaped) => escaped,
    }
}

/// [`attribute_value`] for an owned value: no copy when nothing changes.
pub fn into_attribute_value(value: String) -> String {
    match attribute_value(&value) {
        Cow::Borrowed(_) => value,
        Cow::Owned(replaced) => replaced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn allowed_characters_by_table() {
        let cases = [
            ('\u{0}', false),
            ('\u{8}', false),
            ('\t', true),
            ('\n', true),
            ('\u{b}', false),
            ('\u{c}', false),
            ('\r', true),
            ('\u{1f}', false),
            (' ', true),
            ('\u{7f}', true),
            ('\u{85}', true),
            ('\u{d7ff}', true),
            ('\u{e000}', true),
            ('\u{fffd}', true),
            ('\u{fffe}', false),
            ('\u{ffff}', false),
            ('\u{10000}', true),
            ('\u{10ffff}', true),
        ];
        for (c, want) in cases {
            assert_eq!(is_allowed(c), want, "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn body_and_attribute_rewrites_by_table() {
        let cases = [
            ("", "", ""),
            (r#"{"a":"b"}"#, r#"{"a":"b"}"#, r#"{"a":"b"}"#),
            (
                "{\"a\":\"x\u{ffff}y\"}",
                r#"{"a":"x\uffffy"}"#,
                "{\"a\":\"x\u{fffd}y\"}",
            ),
            ("\u{fffe}", r"\ufffe", "\u{fffd}"),
            ("a\u{0}b\u{1f}", r"a\u0000b\u001f", "a\u{fffd}b\u{fffd}"),
            ("tab\tlf\ncr\r", "tab\tlf\ncr\r", "tab\tlf\ncr\r"),
            (
                "\u{fffd}\u{10ffff}é",
                "\u{fffd}\u{10ffff}é",
                "\u{fffd}\u{10ffff}é",
            ),
        ];
        for (input, body, attribute) in cases {
            assert_eq!(json_body(input), body, "{input:?}");
            assert_eq!(attribute_value(input), attribute, "{input:?}");
            assert_eq!(into_json_body(input.to_string()), body);
            assert_eq!(into_attribute_value(input.to_string()), attribute);
        }
        assert!(matches!(json_body("clean"), Cow::Borrowed(_)));
        assert!(matches!(attribute_value("clean"), Cow::Borrowed(_)));
    }

    /// Text weighted towards the characters SQS refuses and the edges of what it accepts.
    fn hostile_text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            3 => any::<char>(),
            2 => proptest::sample::select(vec![
                '\u{0}', '\u{1}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1f}', ' ',
                '"', '\\', '\u{d7ff}', '\u{e000}', '\u{f000}', '\u{feff}', '\u{fffd}',
                '\u{fffe}', '\u{ffff}',
                '\u{10000}', '\u{10ffff}',
            ]),
        ];
        proptest::collection::vec(c, 0..40).prop_map(String::from_iter)
    }

    /// JSON values whose strings (keys too) hold hostile text.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            hostile_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(hostile_text(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_json_body_keeps_its_value_and_only_allowed_characters(v in json_value(), pretty in any::<bool>()) {
            // serde_json escapes controls but writes U+FFFE/U+FFFF raw, as a provider may
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let body = json_body(&text);
            prop_assert!(body.chars().all(is_allowed), "{:?}", body);
            let back: Value = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(back, v);
            prop_assert_eq!(json_body(&body), body.clone(), "idempotent");
        }

        #[test]
        fn the_byte_scan_agrees_with_reading_each_character(s in hostile_text()) {
            prop_assert_eq!(is_clean(&s), s.chars().all(is_allowed));
        }

        #[test]
        fn any_text_comes_out_with_only_allowed_characters(s in hostile_text()) {
            let body = json_body(&s);
            let attribute = attribute_value(&s);
            prop_assert!(body.chars().all(is_allowed));
            prop_assert!(attribute.chars().all(is_allowed));
            prop_assert_eq!(attribute.chars().count(), s.chars().count(), "one for one");
            if s.chars().all(is_allowed) {
                prop_assert_eq!(&*body, s.as_str());
                prop_assert_eq!(&*attribute, s.as_str());
            }
            // a JSON string of the text, as an envelope field carries it, reads back the same
            let quoted = serde_json::to_string(&s).unwrap();
            let back: String = serde_json::from_str(&json_body(&quoted)).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
