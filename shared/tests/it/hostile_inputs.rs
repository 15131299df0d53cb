//! Hostile inputs shared by the hostile-input property tests:
//! `shared/tests/it/hostile_parsers.rs` (the pure parsers and verifiers) and
//! `tests/it/hostile.rs` (the ingest handlers, which include this file with `#[path]`). Only
//! `proptest`, `serde`, `serde_json` and `shared` are used, so both crates can compile it.
//!
//! What is covered: arbitrary bytes (mostly invalid UTF-8), odd Unicode (BOM, NUL, bidi
//! overrides, line/paragraph separators, combining marks, the last code point), JSON-ish
//! token soup (lone surrogate escapes, `1e400`, duplicate keys), well-formed JSON of any
//! shape, provider-shaped events whose fields have the wrong types or extreme values, byte
//! mutations of valid events, and nesting far deeper than serde_json's recursion limit (128).

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{json, Map, Value};

/// Cases per property: `PROPTEST_CASES` when set (as in `loops_oracle.rs`), else 10,000.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// The configuration every hostile property uses: `cases` cases, no regression files.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters that break naive code: NUL and other controls, BOM, bidi override, zero-width
/// space, replacement character, line/paragraph separators, NEL, combining acute, emoji, the
/// last code point, the edges of the surrogate gap, JSON metacharacters.
pub const ODD_CHARS: &[char] = &[
    '\u{0}',
    '\u{1}',
    '\u{7}',
    '\u{8}',
    '\t',
    '\n',
    '\u{b}',
    '\u{c}',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{ad}',
    '\u{301}',
    '\u{200b}',
    '\u{200d}',
    '\u{202e}',
    '\u{2028}',
    '\u{2029}',
    '\u{d7ff}',
    '\u{e000}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{1f600}',
    '\u{10ffff}',
    '"',
    '\\',
    '/',
    '\'',
    '{',
    '}',
    '[',
    ']',
    ':',
    ',',
    '@',
    '%',
    '=',
    '+',
    ' ',
    'é',
    'ß',
    'İ',
    'ı',
    'Ω',
    '中',
    'ы',
];

pub fn odd_char() -> BoxedStrategy<char> {
    prop_oneof![
        3 => (b' '..=b'~').prop_map(char::from),
        2 => proptest::sample::select(ODD_CHARS),
        1 => any::<char>(),
    ]
    .boxed()
}

pub fn odd_string(max: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(odd_char(), 0..=max)
        .prop_map(String::from_iter)
        .boxed()
}

/// Extreme integers, including the bounds of chrono's representable years.
pub fn extreme_i64() -> BoxedStrategy<i64> {
    prop_oneof![
        any::<i64>(),
        proptest::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            1_734_425_918,
            253_402_300_799,    // 9999-12-31T23:59:59Z
            8_210_266_876_799,  // chrono's last second (+262142-12-31)
            8_210_266_876_800,  // one past it
            -8_334_601_228_800, // chrono's first second (-262143-01-01)
            -8_334_601_228_801, // one before it
            i64::MAX - 1,
            i64::MAX,
        ]),
    ]
    .boxed()
}

pub fn json_number() -> BoxedStrategy<Value> {
    prop_oneof![
        extreme_i64().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
    ]
    .boxed()
}

/// Keys the parsers look for, so random objects hit the interesting fields.
pub const KEYS: &[&str] = &[
    "eventName",
    "eventTime",
    "contactIdentity",
    "contact",
    "id",
    "email",
    "userId",
    "webhookSchemaVersion",
    "type",
    "event",
    "subscriber",
    "campaign",
    "campaign_id",
    "reward",
    "referrer",
    "tot_referrals",
    "created_at",
    "referral_status",
    "uuid",
    "activityStatus",
    "activityDateTime",
    "contactId",
    "externalCustomerId",
    "iid",
    "messageInstanceId",
    "clickEventLink",
    "sms",
    "v",
    "payload",
    "",
];

pub fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => odd_string(12),
    ]
    .boxed()
}

fn known_name() -> BoxedStrategy<String> {
    let mut names: Vec<&'static str> = Vec::new();
    names.extend_from_slice(sparkbridge::core::loops::KNOWN_EVENTS);
    names.extend_from_slice(sparkbridge::core::esputnik::KNOWN_STATUSES);
    names.extend_from_slice(sparkbridge::core::sparkloop::KNOWN_TYPES);
    names.extend_from_slice(&["unknown", "parked", "UNSUBSCRIBED ", "email.Unsubscribed"]);
    proptest::sample::select(names)
        .prop_map(str::to_string)
        .boxed()
}

pub fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number(),
        odd_string(24).prop_map(Value::String),
        known_name().prop_map(Value::String),
    ]
    .boxed()
}

/// Any well-formed JSON value, up to 6 levels deep (deeper nesting has its own generator).
pub fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// Field values of the wrong type (or the right type with hostile content).
pub fn hostile_value() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => json_leaf(),
        1 => json_value(),
    ]
    .boxed()
}

fn maybe(obj: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    if let Some(v) = value {
        obj.insert(name.to_string(), v);
    }
}

fn extras() -> BoxedStrategy<Vec<(String, Value)>> {
    proptest::collection::vec((key(), hostile_value()), 0..3).boxed()
}

/// A Loops-shaped object: a known or odd `eventName`, `eventTime` of any type and range,
/// a `contactIdentity` whose fields may have any type.
pub fn loops_event() -> BoxedStrategy<Value> {
    let name = prop_oneof![
        3 => proptest::sample::select(sparkbridge::core::loops::KNOWN_EVENTS).prop_map(|s| json!(s)),
        1 => hostile_value(),
    ];
    let time = prop_oneof![extreme_i64().prop_map(Value::from), hostile_value()];
    let identity = prop_oneof![
        3 => (
            proptest::option::of(hostile_value()),
            proptest::option::of(prop_oneof![odd_string(20).prop_map(Value::String), hostile_value()]),
            proptest::option::of(hostile_value()),
        )
            .prop_map(|(id, email, user)| {
                let mut o = Map::new();
                maybe(&mut o, "id", id);
                maybe(&mut o, "email", email);
                maybe(&mut o, "userId", user);
                Value::Object(o)
            }),
        1 => hostile_value(),
    ];
    (
        proptest::option::of(name),
        proptest::option::of(time),
        proptest::option::of(identity),
        extras(),
    )
        .prop_map(|(name, time, identity, extra)| {
            let mut o = Map::new();
            for (k, v) in extra {
                o.insert(k, v);
            }
            maybe(&mut o, "eventName", name);
            maybe(&mut o, "eventTime", time);
            maybe(&mut o, "contactIdentity", identity);
            Value::Object(o)
        })
        .boxed()
}

/// `activityDateTime` texts: documented, offset, fractional, out of range, DST gaps in
/// Europe/Kyiv and America/New_York, leap seconds, the edges of chrono's years, junk.
pub fn esputnik_datetime() -> BoxedStrategy<String> {
    let listed = proptest::sample::select(vec![
        "2023-09-14T08:30:03",
        "2023-09-14 08:30:03.250",
        "2023-09-14T08:30:03+02:00",
        "2023-09-14T08:30:03Z",
        "2023-03-26T03:30:00",
        "2023-03-12T02:30:00",
        "2023-10-29T03:30:00",
        "2016-12-31T23:59:60",
        "2016-12-31T23:59:60.999999999",
        "+262142-12-31T23:59:59",
        "262142-12-31T23:59:59",
        "-262143-01-01T00:00:00",
        "+262143-01-01T00:00:00",
        "9999-12-31T23:59:59.999999999+14:00",
        "0000-01-01T00:00:00-14:00",
        "2023-02-30T00:00:00",
        "2023-13-01T00:00:00",
        "2023-09-14T24:00:00",
        "",
        "T",
        "yesterday",
    ])
    .prop_map(str::to_string);
    let built = (
        -300_000i64..300_000,
        0u32..15,
        0u32..33,
        0u32..26,
        0u32..62,
        0u32..62,
        proptest::sample::select(vec![
            "",
            ".5",
            ".123456789",
            ".1234567890123",
            "Z",
            "+23:59",
            "-24:00",
            "+05:30",
        ]),
        any::<bool>(),
    )
        .prop_map(|(y, mo, d, h, mi, s, tail, space)| {
            let sep = if space { ' ' } else { 'T' };
            format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{tail}")
        });
    prop_oneof![2 => listed, 2 => built, 1 => odd_string(30)].boxed()
}

/// One eSputnik activity object with fields of any type and range.
pub fn esputnik_activity() -> BoxedStrategy<Value> {
    let status = prop_oneof![
        3 => proptest::sample::select(sparkbridge::core::esputnik::KNOWN_STATUSES).prop_map(|s| json!(s)),
        1 => hostile_value(),
    ];
    let when = prop_oneof![3 => esputnik_datetime().prop_map(Value::String), 1 => hostile_value()];
    (
        proptest::option::of(status),
        proptest::option::of(when),
        proptest::option::of(hostile_value()),
        proptest::option::of(prop_oneof![
            odd_string(20).prop_map(Value::String),
            hostile_value()
        ]),
        proptest::option::of(hostile_value()),
        proptest::option::of(hostile_value()),
        extras(),
    )
        .prop_map(|(status, when, contact, email, iid, link, extra)| {
            let mut o = Map::new();
            for (k, v) in extra {
                o.insert(k, v);
            }
            maybe(&mut o, "activityStatus", status);
            maybe(&mut o, "activityDateTime", when);
            maybe(&mut o, "contactId", contact);
            maybe(&mut o, "email", email);
            maybe(&mut o, "iid", iid);
            maybe(&mut o, "clickEventLink", link);
            Value::Object(o)
        })
        .boxed()
}

/// A SparkLoop-shaped object: `type`/`event`, `subscriber`, `campaign`, `reward`, `referrer`
/// with fields of any type.
pub fn sparkloop_event() -> BoxedStrategy<Value> {
    let kind = prop_oneof![
        3 => proptest::sample::select(sparkbridge::core::sparkloop::KNOWN_TYPES).prop_map(|s| json!(s)),
        1 => hostile_value(),
    ];
    let subscriber = prop_oneof![
        3 => (
            proptest::option::of(hostile_value()),
            proptest::option::of(hostile_value()),
            proptest::option::of(prop_oneof![odd_string(20).prop_map(Value::String), hostile_value()]),
            proptest::option::of(extreme_i64().prop_map(Value::from)),
            proptest::option::of(hostile_value()),
        )
            .prop_map(|(id, uuid, email, created, status)| {
                let mut o = Map::new();
                maybe(&mut o, "id", id);
                maybe(&mut o, "uuid", uuid);
                maybe(&mut o, "email", email);
                maybe(&mut o, "created_at", created);
                maybe(&mut o, "referral_status", status);
                Value::Object(o)
            }),
        1 => hostile_value(),
    ];
    (
        proptest::option::of(kind),
        any::<bool>(),
        proptest::option::of(subscriber),
        proptest::option::of(hostile_value()),
        proptest::option::of(hostile_value()),
        extras(),
    )
        .prop_map(|(kind, as_event, subscriber, campaign, reward, extra)| {
            let mut o = Map::new();
            for (k, v) in extra {
                o.insert(k, v);
            }
            maybe(&mut o, if as_event { "event" } else { "type" }, kind);
            maybe(&mut o, "subscriber", subscriber);
            maybe(&mut o, "campaign", campaign);
            maybe(&mut o, "reward", reward);
            Value::Object(o)
        })
        .boxed()
}

/// JSON-ish token soup: mostly invalid JSON that gets far into the parser (lone surrogate
/// escapes, out-of-range numbers, duplicate keys, BOM, NUL, unterminated strings).
pub const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\n",
    "\t",
    "\r\n",
    "\"",
    "\\",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "01",
    "1e400",
    "-1e-400",
    "123456789012345678901234567890",
    "1.5",
    "NaN",
    "\"eventName\"",
    "\"email.unsubscribed\"",
    "\"eventTime\"",
    "\"contactIdentity\"",
    "\"email\"",
    "\"a@b.c\"",
    "\"id\"",
    "\"type\"",
    "\"event\"",
    "\"subscriber\"",
    "\"sync_subscriber\"",
    "\"new_referral\"",
    "\"activityStatus\"",
    "\"UNSUBSCRIBED\"",
    "\"activityDateTime\"",
    "\"2023-09-14T08:30:03\"",
    "\"+262142-12-31T23:59:59\"",
    "\"contactId\"",
    "\"\\ud800\"",
    "\"\\udfff\\ud800\"",
    "\"\\u0000\"",
    "\"\\uZZZZ\"",
    "\"\\x41\"",
    "\u{feff}",
    "\u{0}",
    "\"\u{202e}\"",
    "\"\u{1f600}\"",
    "\u{2028}",
    "/*",
    "*/",
    "//",
    "'",
    "\"unterminated",
];

pub fn fragments() -> BoxedStrategy<String> {
    proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..48)
        .prop_map(|v| v.concat())
        .boxed()
}

/// How a deeply nested document is built.
#[derive(Debug, Clone, Copy)]
pub enum Nest {
    /// `[[[...]]]`
    Arrays,
    /// `{"a":{"a":...1...}}`
    Objects,
    /// `[{"a":[{"a":...}]}]`
    Mixed,
    /// Nesting in an ignored field of a Loops event.
    InLoopsExtra,
    /// Nesting as Loops' `eventTime` (a field the parser reads).
    InLoopsEventTime,
    /// Nesting in an ignored field of the first of two eSputnik elements.
    InEsputnikExtra,
    /// Nesting as eSputnik's `contactId` (a field the parser reads).
    InEsputnikContactId,
    /// Nesting in an ignored field of a SparkLoop event.
    InSparkloopExtra,
    /// Nesting as SparkLoop's `subscriber` (a field the parser reads).
    InSparkloopSubscriber,
}

pub const NESTS: &[Nest] = &[
    Nest::Arrays,
    Nest::Objects,
    Nest::Mixed,
    Nest::InLoopsExtra,
    Nest::InLoopsEventTime,
    Nest::InEsputnikExtra,
    Nest::InEsputnikContactId,
    Nest::InSparkloopExtra,
    Nest::InSparkloopSubscriber,
];

fn nested(depth: usize, style: Nest, closed: bool) -> String {
    let (open, leaf, close): (&str, &str, &str) = match style {
        Nest::Objects => ("{\"a\":", "1", "}"),
        Nest::Mixed => ("[{\"a\":", "1", "}]"),
        _ => ("[", "", "]"),
    };
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + 1);
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str(leaf);
    if closed {
        for _ in 0..depth {
            s.push_str(close);
        }
    }
    s
}

/// A document nested `depth` levels deep; `closed: false` leaves it unterminated.
pub fn deep(depth: usize, style: Nest, closed: bool) -> String {
    let inner = nested(depth, style, closed);
    let end = |s: &str| if closed { s.to_string() } else { String::new() };
    match style {
        Nest::Arrays | Nest::Objects | Nest::Mixed => inner,
        Nest::InLoopsExtra => format!(
            r#"{{"eventName":"email.unsubscribed","contactIdentity":{{"id":"c1","email":"a@b.c"}},"x":{inner}{}"#,
            end("}")
        ),
        Nest::InLoopsEventTime => format!(
            r#"{{"eventName":"email.opened","eventTime":{inner}{}"#,
            end("}")
        ),
        Nest::InEsputnikExtra => format!(
            r#"[{{"activityStatus":"READ","email":"a@b.c","x":{inner}{}"#,
            end(r#"},{"activityStatus":"SPAM"}]"#)
        ),
        Nest::InEsputnikContactId => format!(
            r#"[{{"activityStatus":"READ","contactId":{inner}{}"#,
            end("}]")
        ),
        Nest::InSparkloopExtra => format!(
            r#"{{"type":"new_referral","subscriber":{{"id":"sub_1"}},"x":{inner}{}"#,
            end("}")
        ),
        Nest::InSparkloopSubscriber => format!(
            r#"{{"type":"sync_subscriber","subscriber":{inner}{}"#,
            end("}")
        ),
    }
}

pub fn deep_nesting(max_depth: usize) -> BoxedStrategy<String> {
    (
        prop_oneof![
            2 => 100usize..160, // around serde_json's recursion limit of 128
            1 => 0usize..=max_depth,
        ],
        proptest::sample::select(NESTS),
        any::<bool>(),
    )
        .prop_map(|(d, s, c)| deep(d, s, c))
        .boxed()
}

/// A valid provider-shaped body of any of the three providers.
pub fn provider_body() -> BoxedStrategy<String> {
    prop_oneof![
        loops_event().prop_map(|v| v.to_string()),
        sparkloop_event().prop_map(|v| v.to_string()),
        proptest::collection::vec(esputnik_activity(), 0..5)
            .prop_map(|v| Value::Array(v).to_string()),
        esputnik_activity().prop_map(|v| v.to_string()),
    ]
    .boxed()
}

/// Byte-level damage to a valid body: flip, delete, insert, truncate.
pub fn mutated() -> BoxedStrategy<Vec<u8>> {
    (
        provider_body(),
        proptest::collection::vec((0u8..4, any::<usize>(), any::<u8>()), 1..5),
    )
        .prop_map(|(body, ops)| {
            let mut b = body.into_bytes();
            for (op, pos, byte) in ops {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let i = pos % b.len();
                match op {
                    0 => b[i] ^= byte | 1,
                    1 => {
                        b.remove(i);
                    }
                    2 => b.insert(i, byte),
                    _ => b.truncate(i),
                }
            }
            b
        })
        .boxed()
}

/// A JSON array of `elements` (returned as their exact texts) with odd whitespace between
/// them, so a test knows how many elements the body has.
pub fn json_array() -> BoxedStrategy<(Vec<String>, String)> {
    let element = prop_oneof![
        4 => esputnik_activity().prop_map(|v| v.to_string()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => (1usize..3_000, proptest::sample::select(NESTS)).prop_map(|(d, s)| deep(d, s, true)),
        1 => odd_string(40).prop_map(|s| Value::String(s).to_string()),
    ];
    let ws = proptest::sample::select(vec!["", " ", "\n", "\t", "\r\n", "  \n "]);
    (proptest::collection::vec((element, ws.clone()), 0..12), ws)
        .prop_map(|(items, lead)| {
            let mut body = format!("{lead}[");
            for (i, (text, ws)) in items.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(ws);
                body.push_str(text);
                body.push_str(ws);
            }
            body.push(']');
            body.push_str(lead);
            (items.into_iter().map(|(t, _)| t).collect(), body)
        })
        .boxed()
}

/// Every kind of hostile body, at sizes up to a few kilobytes (plus deep nesting up to
/// 20,000 levels).
pub fn hostile_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..600),
        2 => odd_string(200).prop_map(String::into_bytes),
        2 => fragments().prop_map(String::into_bytes),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        3 => provider_body().prop_map(String::into_bytes),
        2 => mutated(),
        1 => json_array().prop_map(|(_, body)| body.into_bytes()),
        1 => deep_nesting(20_000).prop_map(String::into_bytes),
        1 => (provider_body(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(b, junk)| {
            // valid UTF-8 body with invalid bytes appended or prepended
            let mut out = b.into_bytes();
            if junk[0] % 2 == 0 {
                out.extend_from_slice(&junk);
            } else {
                let mut j = junk;
                j.extend_from_slice(&out);
                out = j;
            }
            out
        }),
    ]
    .boxed()
}

/// Bodies of 1-5 MB: random bytes, a huge array of activities, one huge string field, a huge
/// unterminated nesting, a huge run of whitespace.
/// How many shapes `huge` makes (random bytes, an eSputnik array, one padded event, deep
/// nesting, whitespace around `{}`, odd characters).
pub const HUGE_SHAPES: u8 = 6;

pub fn huge_body() -> BoxedStrategy<Vec<u8>> {
    (1_000_000usize..=5_000_000, 0u8..HUGE_SHAPES, any::<u64>())
        .prop_map(|(size, shape, seed)| huge(size, shape, seed))
        .boxed()
}

/// Deterministic huge body of about `size` bytes (`seed` varies the bytes).
pub fn huge(size: usize, shape: u8, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        // xorshift64: fast, deterministic filler
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    match shape {
        0 => (0..size).map(|_| next() as u8).collect(),
        1 => {
            let one = r#"{"activityStatus":"DELIVERED","contactId":1,"email":"u@x.io","iid":"i","activityDateTime":"2023-09-14T08:30:03"}"#;
            let n = size / (one.len() + 1);
            let mut s = String::with_capacity(size + 2);
            s.push('[');
            for i in 0..n {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(one);
            }
            s.push(']');
            s.into_bytes()
        }
        2 => format!(
            r#"{{"eventName":"email.opened","type":"new_referral","activityStatus":"READ","pad":"{}"}}"#,
            "x".repeat(size)
        )
        .into_bytes(),
        3 => "[".repeat(size).into_bytes(),
        4 => {
            let mut v = vec![b' '; size];
            v.extend_from_slice(b"{}");
            v
        }
        _ => (0..size)
            .map(|_| ODD_CHARS[(next() % ODD_CHARS.len() as u64) as usize])
            .collect::<String>()
            .into_bytes(),
    }
}

/// What SQS accepts in a message body or a string attribute value, written from its
/// documentation: `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`.
pub fn sqs_accepts(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(
            u32::from(c),
            0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF
        )
    })
}

/// JSON `text` as it is queued: U+FFFE and U+FFFF written as JSON escapes, the only
/// characters SQS refuses that valid JSON can hold raw (controls it cannot).
pub fn escaped(text: &str) -> String {
    text.replace('\u{fffe}', "\\ufffe")
        .replace('\u{ffff}', "\\uffff")
}

/// Whether `body` is JSON (UTF-8 text holding one JSON value), decided without the parsers.
pub fn is_json(body: &[u8]) -> bool {
    std::str::from_utf8(body)
        .ok()
        .is_some_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
}
