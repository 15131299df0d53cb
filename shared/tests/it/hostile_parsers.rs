//! Hostile input for every parser and verifier of the pure core: arbitrary bytes, invalid
//! UTF-8, odd Unicode, JSON token soup, wrong-typed fields, extreme numbers and dates,
//! nesting far past serde_json's recursion limit, and bodies of 1-5 MB. Nothing may panic
//! (a panic in an ingest Lambda is a 502 and a retry storm); what is refused must be refused
//! for the right reason; what is accepted must survive the trip through the queue.
//!
//! 10,000 cases per property unless `PROPTEST_CASES` says otherwise; no regression files.

use crate::hostile_inputs::*;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use chrono::Utc;
use chrono_tz::Tz;
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use serde_json::Value;
use sha2::Sha256;
use sparkbridge::core::envelope::{
    sha256_hex, Envelope, Normalized, Provider, KIND_PARKED, KIND_UNKNOWN,
};
use sparkbridge::core::esputnik::{self, AuthError, WebhookAuth, KNOWN_STATUSES};
use sparkbridge::core::loops::{
    self, SignatureError, SigningKeys, SigningKeysError, KNOWN_EVENTS, TOLERANCE_SECS,
};
use sparkbridge::core::secret::Secret;
use sparkbridge::core::sparkloop::{self, KNOWN_TYPES};

const NOW: i64 = 1_764_000_000;
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Stack of the threads that run the handlers in production (tokio's worker default).
const HANDLER_STACK: usize = 2 * 1024 * 1024;

fn zones() -> [Tz; 4] {
    [
        Tz::UTC,
        "Europe/Kyiv".parse().unwrap(),
        "America/New_York".parse().unwrap(),
        "Pacific/Kiritimati".parse().unwrap(), // UTC+14, the largest offset
    ]
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whatever ingest accepts must come back out of the queue intact: the worker reads the
/// message with `serde_json::from_str::<Envelope>`. The message is one SQS accepts, and the
/// payload is the provider's text with only the characters SQS refuses escaped.
fn round_trips(provider: Provider, dedupe_id: String, n: Normalized) -> Result<(), TestCaseError> {
    let env = Envelope::new(provider, dedupe_id, Utc::now(), n);
    let msg = sparkbridge::ingest::to_message(&env);
    prop_assert!(
        sqs_accepts(&msg.body),
        "SQS refuses the body: {:?}",
        msg.body
    );
    for (k, v) in &msg.attributes {
        prop_assert!(
            sqs_accepts(k) && sqs_accepts(v),
            "SQS refuses {}={:?}",
            k,
            v
        );
    }
    let back: Envelope = serde_json::from_str(&msg.body)
        .map_err(|e| TestCaseError::fail(format!("queued envelope does not parse back: {e}")))?;
    prop_assert_eq!(
        back.payload.get(),
        escaped(env.payload.get()),
        "payload verbatim but for escapes"
    );
    if let (Ok(a), Ok(b)) = (
        serde_json::from_str::<Value>(back.payload.get()),
        serde_json::from_str::<Value>(env.payload.get()),
    ) {
        prop_assert_eq!(a, b, "the payload means the same JSON");
    }
    prop_assert_eq!(&back.kind, &env.kind);
    prop_assert_eq!(&back.dedupe_id, &env.dedupe_id);
    prop_assert_eq!(&back.subscriber, &env.subscriber);
    // chrono represents a leap second (":60") under a local-mean-time offset with seconds
    // (zones before ~1900) as an instant that prints one second off: allow that second.
    match (back.occurred_at, env.occurred_at) {
        (Some(b), Some(e)) => prop_assert!((b - e).num_seconds().abs() <= 1, "{} vs {}", b, e),
        (b, e) => prop_assert_eq!(b, e),
    }
    prop_assert_eq!(&back.parked, &env.parked);
    prop_assert_eq!(msg.attributes.get("kind"), Some(&env.kind.to_string()));
    Ok(())
}

/// JSON validity and shape, decided without the code under test's types.
fn json_shape(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .chars()
        .next()
}

// ---------------------------------------------------------------------------------------
// Loops: the payload parser
// ---------------------------------------------------------------------------------------

/// Loops: every JSON value is kept (an unknown shape as `unknown`); only what is not JSON is
/// refused.
fn check_loops_parse(body: &[u8]) -> Result<(), TestCaseError> {
    match loops::parse(body) {
        Ok(n) => {
            let shape = json_shape(body);
            prop_assert!(shape.is_some(), "only JSON is accepted");
            prop_assert!(KNOWN_EVENTS.contains(&n.kind.as_str()) || n.kind == KIND_UNKNOWN);
            if shape != Some('{') {
                prop_assert_eq!(&n.kind, KIND_UNKNOWN, "a JSON value that is not an object");
                prop_assert_eq!(&n.subscriber, &Default::default());
            }
            prop_assert!(n.parked.is_none());
            prop_assert!(n.subscriber.email.as_deref() != Some(""));
            prop_assert!(n
                .occurred_at
                .is_none_or(|t| (RFC3339_FIRST..=RFC3339_LAST).contains(&t.timestamp())));
            round_trips(Provider::Loops, "msg_1".into(), n)?;
        }
        Err(loops::ParseError::NotJson(_)) => prop_assert!(json_shape(body).is_none()),
    }
    Ok(())
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the provider times RFC 3339 can write.
const RFC3339_FIRST: i64 = -62_167_219_200;
const RFC3339_LAST: i64 = 253_402_300_799;

/// A provider's unix seconds as the parsers keep them: inside RFC 3339's years, else absent.
fn model_time(v: Option<&Value>) -> Option<chrono::DateTime<Utc>> {
    v.and_then(Value::as_i64)
        .filter(|s| (RFC3339_FIRST..=RFC3339_LAST).contains(s))
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
}

/// What the Loops parser reads from a well-formed value: the kind and the email. An object
/// without a string `eventName`, or any other value, is `unknown`.
fn loops_model(v: &Value) -> (String, Option<String>) {
    let Some(o) = v.as_object() else {
        return (KIND_UNKNOWN.to_string(), None);
    };
    let name = o.get("eventName").and_then(Value::as_str).unwrap_or("");
    // Read leniently (a wrong-typed field must not turn an unsubscribe into a 400): only a
    // string email inside an object counts; anything else is no email.
    let email = o
        .get("contactIdentity")
        .and_then(Value::as_object)
        .and_then(|ci| ci.get("email"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = if KNOWN_EVENTS.contains(&name) {
        name.to_string()
    } else {
        KIND_UNKNOWN.to_string()
    };
    (kind, email.filter(|e| !e.is_empty()))
}

// ---------------------------------------------------------------------------------------
// SparkLoop: the payload parser
// ---------------------------------------------------------------------------------------

/// SparkLoop: every JSON value is kept (an unknown shape as `unknown`, keyed by its hash);
/// only what is not JSON is refused.
fn check_sparkloop_parse(body: &[u8]) -> Result<(), TestCaseError> {
    match sparkloop::parse(body) {
        Ok((id, n)) => {
            let shape = json_shape(body);
            prop_assert!(shape.is_some(), "only JSON is accepted");
            prop_assert!(KNOWN_TYPES.contains(&n.kind.as_str()) || n.kind == KIND_UNKNOWN);
            if shape != Some('{') {
                prop_assert_eq!(&n.kind, KIND_UNKNOWN, "a JSON value that is not an object");
                prop_assert_eq!(&n.subscriber, &Default::default());
            }
            prop_assert!(n
                .occurred_at
                .is_none_or(|t| (RFC3339_FIRST..=RFC3339_LAST).contains(&t.timestamp())));
            prop_assert!(is_hex64(&id), "dedupe id is a sha256: {}", id);
            let (again, _) = sparkloop::parse(body).unwrap();
            prop_assert_eq!(&again, &id, "a retry has the same dedupe id");
            if n.kind == KIND_UNKNOWN || n.subscriber.sparkloop_id.is_none() {
                prop_assert_eq!(&id, &sha256_hex(n.payload.get().as_bytes()));
            }
            round_trips(Provider::Sparkloop, id, n)?;
        }
        Err(sparkloop::ParseError::NotJson(_)) => prop_assert!(json_shape(body).is_none()),
    }
    Ok(())
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// eSputnik: the splitter
// ---------------------------------------------------------------------------------------

fn check_split(body: &[u8], tz: Tz) -> Result<(), TestCaseError> {
    let els = esputnik::split(body, tz);
    let array_len = std::str::from_utf8(body)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<serde::de::IgnoredAny>>(t).ok())
        .map(|v| v.len());
    match array_len {
        Some(n) => prop_assert_eq!(els.len(), n, "one element per array element, none lost"),
        None => {
            prop_assert_eq!(
                els.len(),
                1,
                "a body that is not an array is exactly one element"
            );
            if json_shape(body) != Some('{') {
                prop_assert_eq!(
                    &els[0].event.kind,
                    KIND_PARKED,
                    "non-array, non-object is parked"
                );
            }
        }
    }
    let again = esputnik::split(body, tz);
    for (el, el2) in els.iter().zip(&again) {
        prop_assert!(is_hex64(&el.dedupe_id));
        prop_assert_eq!(
            &el.dedupe_id,
            &el2.dedupe_id,
            "a retry has the same dedupe ids"
        );
        prop_assert!(el
            .event
            .occurred_at
            .is_none_or(|t| (RFC3339_FIRST..=RFC3339_LAST).contains(&t.timestamp())));
        if el.event.kind == KIND_PARKED {
            prop_assert!(el.event.parked.as_deref().is_some_and(|r| !r.is_empty()));
        } else {
            prop_assert!(el.event.parked.is_none());
            prop_assert!(
                KNOWN_STATUSES.contains(&el.event.kind.as_str()) || el.event.kind == KIND_UNKNOWN
            );
        }
    }
    for el in els {
        round_trips(Provider::Esputnik, el.dedupe_id, el.event)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Loops: signing keys and signatures
// ---------------------------------------------------------------------------------------

const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Secrets: random text, `whsec_` + base64-ish text of every length (including lengths no
/// base64 has), real keys of 0-80 bytes in standard/URL-safe/unpadded base64, blank
/// entries, several entries, stray whitespace and prefixes.
fn secret_csv() -> BoxedStrategy<String> {
    let b64ish = proptest::collection::vec(
        proptest::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ .!".to_vec(),
        ),
        0..90,
    )
    .prop_map(|v| String::from_utf8(v).unwrap());
    let key =
        (proptest::collection::vec(any::<u8>(), 0..80), 0u8..4).prop_map(|(k, enc)| match enc {
            0 => base64::engine::general_purpose::STANDARD.encode(&k),
            1 => base64::engine::general_purpose::STANDARD_NO_PAD.encode(&k),
            2 => base64::engine::general_purpose::URL_SAFE.encode(&k),
            _ => hex::encode(&k),
        });
    let entry = prop_oneof![
        3 => (any::<bool>(), key).prop_map(|(p, k)| if p { format!("whsec_{k}") } else { k }),
        2 => b64ish.prop_map(|s| format!("whsec_{s}")),
        1 => odd_string(40),
        1 => proptest::sample::select(vec!["", " ", "whsec_", "whsec_=", "whsec_====", "whsec_A", "whsec_AA", "whsec_whsec_YWJj", "WHSEC_YWJj", " whsec_YWJj "]).prop_map(str::to_string),
    ];
    proptest::collection::vec(entry, 0..4)
        .prop_map(|v| v.join(","))
        .boxed()
}

/// What `SigningKeys::parse` must answer, written from the documented format.
fn keys_model(csv: &str) -> Result<Vec<Vec<u8>>, SigningKeysError> {
    let mut keys = Vec::new();
    for (i, e) in csv
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let b64 = e.strip_prefix("whsec_").unwrap_or(e);
        let key = LENIENT_B64
            .decode(b64)
            .map_err(|_| SigningKeysError::NotBase64(i + 1))?;
        if key.len() < 16 {
            return Err(SigningKeysError::TooShort {
                entry: i + 1,
                bytes: key.len(),
            });
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(SigningKeysError::Empty);
    }
    Ok(keys)
}

fn reference_sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Header values as an attacker would send them.
fn header_text() -> BoxedStrategy<String> {
    let b64 = proptest::collection::vec(any::<u8>(), 0..48)
        .prop_map(|b| base64::engine::general_purpose::STANDARD.encode(b));
    prop_oneof![
        2 => odd_string(60),
        1 => "[0-9]{0,20}",
        1 => "-?[0-9]{1,12}",
        2 => b64.clone().prop_map(|s| format!("v1,{s}")),
        1 => proptest::collection::vec(b64, 0..40).prop_map(|v| v.iter().map(|s| format!("v1,{s}")).collect::<Vec<_>>().join(" ")),
        1 => Just(String::new()),
    ]
    .boxed()
}

/// One junk entry of a `webhook-signature` header (at most 3 `v1,` entries of its own, so
/// that with 4 of them the genuine entry stays within the 16 the verifier examines).
fn junk_entry() -> BoxedStrategy<String> {
    let b64 = proptest::collection::vec(any::<u8>(), 0..48)
        .prop_map(|b| base64::engine::general_purpose::STANDARD.encode(b));
    prop_oneof![
        odd_string(12),
        b64.prop_map(|s| format!("v1,{s}")),
        "[a-z0-9]{1,3},[A-Za-z0-9+/=]{0,44}",
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(cases()))]

    #[test]
    fn loops_parse_survives_anything(body in hostile_body()) {
        check_loops_parse(&body)?;
    }

    #[test]
    fn loops_parse_reads_fields_of_any_type(v in loops_event()) {
        let body = v.to_string();
        let v: Value = serde_json::from_str(&body).unwrap(); // as the parser reads it
        check_loops_parse(body.as_bytes())?;
        let n = loops::parse(body.as_bytes()).expect("every JSON object is accepted");
        let (kind, email) = loops_model(&v);
        prop_assert_eq!(&n.kind, &kind, "{}", body);
        prop_assert_eq!(n.subscriber.email, email, "{}", body);
        prop_assert_eq!(n.occurred_at, model_time(v.get("eventTime")), "{}", body);
    }

    #[test]
    fn sparkloop_parse_survives_anything(body in hostile_body()) {
        check_sparkloop_parse(&body)?;
    }

    #[test]
    fn sparkloop_parse_reads_fields_of_any_type(v in sparkloop_event()) {
        let body = v.to_string();
        check_sparkloop_parse(body.as_bytes())?;
        let (_, n) = sparkloop::parse(body.as_bytes()).expect("every JSON object is accepted");
        // the model reads the body as the parser does: serde_json's default float parsing
        // does not give back every f64 bit for bit
        let v: Value = serde_json::from_str(&body).unwrap();
        let present = |k: &str| v.get(k).filter(|x| !x.is_null()); // serde reads null as absent
        let name = present("type")
            .or_else(|| present("event"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = if KNOWN_TYPES.contains(&name) { name } else { KIND_UNKNOWN };
        prop_assert_eq!(n.kind.as_str(), kind);
        let sub = v.get("subscriber");
        let field = |k: &str| sub.and_then(|s| s.get(k)).map(text_of).filter(|s| !s.is_empty());
        prop_assert_eq!(n.subscriber.email, field("email"));
        prop_assert_eq!(n.subscriber.sparkloop_id, field("id").or_else(|| field("uuid")));
        prop_assert_eq!(n.occurred_at, model_time(sub.and_then(|s| s.get("created_at"))));
    }

    #[test]
    fn esputnik_split_never_loses_an_element(body in hostile_body(), z in 0usize..4) {
        check_split(&body, zones()[z])?;
    }

    #[test]
    fn esputnik_split_keeps_every_element_of_an_array((elements, body) in json_array(), z in 0usize..4) {
        let els = esputnik::split(body.as_bytes(), zones()[z]);
        prop_assert_eq!(els.len(), elements.len(), "{}", body);
        for (el, text) in els.iter().zip(&elements) {
            prop_assert_eq!(el.event.payload.get(), text.as_str(), "element kept verbatim");
            let is_object = text.starts_with('{');
            if !is_object {
                prop_assert_eq!(&el.event.kind, KIND_PARKED);
            }
        }
        check_split(body.as_bytes(), zones()[z])?;
    }

    #[test]
    fn signing_keys_parse_is_err_or_a_non_empty_key(csv in secret_csv()) {
        let got = SigningKeys::parse(&csv);
        match (&got, keys_model(&csv)) {
            (Ok(keys), Ok(model)) => {
                prop_assert_eq!(keys.len(), model.len());
                prop_assert!(!keys.is_empty());
                prop_assert!(model.iter().all(|k| k.len() >= 16), "never a guessable key");
                // the first key is exactly the decoded bytes: signs like a reference HMAC
                prop_assert_eq!(keys.sign("msg_1", NOW, b"{}"), reference_sign(&model[0], "msg_1", &NOW.to_string(), b"{}"));
                prop_assert_eq!(format!("{keys:?}"), format!("SigningKeys({} key(s))", model.len()), "Debug hides the keys");
            }
            (Err(e), Err(m)) => prop_assert_eq!(e, &m),
            (got, model) => prop_assert!(false, "{csv:?}: got {got:?}, model {model:?}"),
        }
    }

    #[test]
    fn verify_refuses_arbitrary_headers(
        id in proptest::option::of(header_text()),
        ts in proptest::option::of(header_text()),
        sig in proptest::option::of(header_text()),
        body in hostile_body(),
    ) {
        let keys = SigningKeys::parse(SECRET).unwrap();
        prop_assert!(keys.verify(id.as_deref(), ts.as_deref(), sig.as_deref(), &body, NOW).is_err());
    }

    #[test]
    fn verify_accepts_only_this_body_id_and_a_fresh_timestamp(
        id in "[a-zA-Z0-9_]{1,40}",
        body in hostile_body(),
        other in hostile_body(),
        skew in -(TOLERANCE_SECS)..=TOLERANCE_SECS,
        stale in (TOLERANCE_SECS + 1)..100_000_000,
        past in any::<bool>(),
        junk in proptest::collection::vec(junk_entry(), 0..4),
    ) {
        let keys = SigningKeys::parse(SECRET).unwrap();
        let ts = NOW + skew;
        let ts_s = ts.to_string();
        let good = keys.sign(&id, ts, &body);
        // the real signature, alone or among junk entries: accepted
        prop_assert_eq!(keys.verify(Some(&id), Some(&ts_s), Some(&good), &body, NOW), Ok(()));
        let mixed = junk.iter().map(String::as_str).chain([good.as_str()]).collect::<Vec<_>>().join(" ");
        prop_assert_eq!(keys.verify(Some(&id), Some(&ts_s), Some(&mixed), &body, NOW), Ok(()));
        // a valid signature for another body
        if other != body {
            let theirs = keys.sign(&id, ts, &other);
            prop_assert_eq!(keys.verify(Some(&id), Some(&ts_s), Some(&theirs), &body, NOW), Err(SignatureError::NoMatch));
            prop_assert_eq!(keys.verify(Some(&id), Some(&ts_s), Some(&good), &other, NOW), Err(SignatureError::NoMatch));
        }
        // a replay: correctly signed, but its timestamp is outside the window
        let old = if past { NOW - stale } else { NOW + stale };
        let old_s = old.to_string();
        let replay = keys.sign(&id, old, &body);
        prop_assert_eq!(keys.verify(Some(&id), Some(&old_s), Some(&replay), &body, NOW), Err(SignatureError::TimestampOutOfTolerance));
        // the fresh timestamp under the old signature, or the old one under the fresh signature
        prop_assert!(keys.verify(Some(&id), Some(&ts_s), Some(&replay), &body, NOW).is_err());
        prop_assert!(keys.verify(Some(&id), Some(&old_s), Some(&good), &body, NOW).is_err());
        // another key, or another id
        let other_keys = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        prop_assert_eq!(other_keys.verify(Some(&id), Some(&ts_s), Some(&good), &body, NOW), Err(SignatureError::NoMatch));
        let id2 = format!("{id}x");
        prop_assert_eq!(keys.verify(Some(&id2), Some(&ts_s), Some(&good), &body, NOW), Err(SignatureError::NoMatch));
    }

    #[test]
    fn esputnik_auth_accepts_only_the_exact_credentials(
        user in "[^:]{1,24}",
        pass in odd_string(24).prop_filter("non-empty", |s| !s.is_empty()),
        token in odd_string(32).prop_filter("non-empty", |s| !s.is_empty()),
        mode in 0u8..3,
        header_kind in 0u8..12,
        token_kind in 0u8..6,
        junk in odd_string(60),
        junk_bytes in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let basic_cfg = mode != 1;
        let token_cfg = mode != 0;
        let auth = WebhookAuth::new(
            basic_cfg.then(|| Secret::new(user.clone())),
            basic_cfg.then(|| Secret::new(pass.clone())),
            token_cfg.then(|| Secret::new(token.clone())),
            false,
        ).unwrap();
        let good = format!("{user}:{pass}");
        let header: Option<String> = match header_kind {
            0 => None,
            1 => Some(junk.clone()),
            2 => Some(format!("Basic {}", b64(&junk_bytes))),
            3 => Some(format!("Basic {}", b64(good.as_bytes()))),
            4 => Some(format!("  bAsIc   {}  ", b64(good.as_bytes()))),
            5 => Some(format!("Basic {}", b64(format!("{good}{junk}x").as_bytes()))),
            6 => Some(format!("Basic {}", b64(format!("{user}x:{pass}").as_bytes()))),
            7 => Some(format!("Bearer {}", b64(good.as_bytes()))),
            8 => Some(format!("Basic {}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good.as_bytes()))),
            9 => Some(format!("Basic{}", b64(good.as_bytes()))),
            10 => Some(format!("Bearer {token}")),
            _ => Some(format!("Basic {}", b64(&[&[0xff, 0xfe][..], good.as_bytes()].concat()))),
        };
        let given_token: Option<String> = match token_kind {
            0 => None,
            1 => Some(junk.clone()),
            2 => Some(token.clone()),
            3 => Some(format!("{token}{}", if junk.is_empty() { "x" } else { junk.as_str() })),
            4 => Some(token.chars().skip(1).collect()),
            _ => Some(format!(" {token}")),
        };
        let got = auth.check(header.as_deref(), given_token.as_deref());
        // the model: exact token, or a Basic header that decodes to exactly user:pass
        let decode = |h: &str| -> Option<(String, String)> {
            let (scheme, rest) = h.trim().split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("basic") { return None; }
            let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (u, p) = text.split_once(':')?;
            Some((u.to_string(), p.to_string()))
        };
        let token_ok = token_cfg && given_token.as_deref() == Some(token.as_str());
        let basic_ok = basic_cfg && header.as_deref().and_then(decode) == Some((user.clone(), pass.clone()));
        let presented = (token_cfg && given_token.is_some()) || (basic_cfg && header.is_some());
        let want = if token_ok || basic_ok {
            Ok(())
        } else if presented {
            Err(AuthError::Wrong)
        } else {
            Err(AuthError::Missing)
        };
        prop_assert_eq!(got, want, "header {:?} token {:?}", header, given_token);
        if header_kind == 3 || header_kind == 4 {
            prop_assert_eq!(auth.check(header.as_deref(), None).is_ok(), basic_cfg);
        }
        if token_kind == 2 {
            prop_assert_eq!(auth.check(None, given_token.as_deref()).is_ok(), token_cfg);
        }
    }
}

/// Bodies of 1-5 MB: every shape once, then a handful of random cases, run by a `TestRunner`
/// of their own because the `proptest!` macro lets `PROPTEST_CASES` override any configured
/// count.
#[test]
fn huge_bodies_are_handled() {
    for shape in 0..HUGE_SHAPES {
        if let Err(e) = check_huge_body(&huge(1_200_000, shape, 7)) {
            panic!("shape {shape}: {e}");
        }
    }
    let mut runner = proptest::test_runner::TestRunner::new(config(cases().min(6)));
    runner
        .run(&huge_body(), |body| check_huge_body(&body))
        .unwrap();
}

fn check_huge_body(body: &[u8]) -> Result<(), TestCaseError> {
    check_loops_parse(body)?;
    check_sparkloop_parse(body)?;
    check_split(body, Tz::UTC)?;
    let keys = SigningKeys::parse(SECRET).unwrap();
    let sig = keys.sign("msg_1", NOW, body);
    let ts = NOW.to_string();
    prop_assert_eq!(
        keys.verify(Some("msg_1"), Some(&ts), Some(&sig), body, NOW),
        Ok(())
    );
    let huge_header = String::from_utf8_lossy(&body[..body.len().min(1_000_000)]).into_owned();
    prop_assert!(keys
        .verify(Some(&huge_header), Some(&ts), Some(&huge_header), body, NOW)
        .is_err());
    let auth = WebhookAuth::new(
        Some(Secret::new("u")),
        Some(Secret::new("p")),
        Some(Secret::new("t")),
        false,
    )
    .unwrap();
    prop_assert_eq!(
        auth.check(Some(&huge_header), Some(&huge_header)),
        Err(AuthError::Wrong)
    );
    Ok(())
}

/// Runs `f` on a thread with the stack the handlers get in production, so a recursion that
/// only fits in the test harness's stack would still fail here.
fn on_handler_stack<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::Builder::new()
        .stack_size(HANDLER_STACK)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no panic and no stack overflow");
}

#[test]
fn deep_nesting_is_an_error_or_kept_verbatim_never_a_stack_overflow() {
    on_handler_stack(|| {
        for depth in [127, 128, 129, 1_000, 10_000, 100_000] {
            for &style in NESTS {
                for closed in [true, false] {
                    let body = deep(depth, style, closed);
                    let b = body.as_bytes();
                    let ctx = format!("depth {depth}, {style:?}, closed {closed}");
                    check_loops_parse(b).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    check_sparkloop_parse(b).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let tzs = if depth <= 10_000 {
                        &zones()[..]
                    } else {
                        &zones()[..1]
                    };
                    for &tz in tzs {
                        check_split(b, tz).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    }
                    if !closed {
                        assert!(loops::parse(b).is_err(), "{ctx}");
                        assert!(sparkloop::parse(b).is_err(), "{ctx}");
                        let els = esputnik::split(b, Tz::UTC);
                        assert_eq!(els.len(), 1, "{ctx}");
                        assert_eq!(els[0].event.kind, KIND_PARKED, "{ctx}");
                        continue;
                    }
                    match style {
                        // Loops lifts eventTime as raw text (skipped iteratively), so a deep
                        // value there is no time, and the event is kept verbatim
                        Nest::InLoopsEventTime => {
                            let n = loops::parse(b).unwrap();
                            assert_eq!(n.kind, "email.opened", "{ctx}");
                            assert_eq!(n.occurred_at, None, "{ctx}");
                            assert_eq!(n.payload.get(), body, "{ctx}");
                        }
                        // nesting in a field the parser reads: serde_json's limit makes it an error
                        Nest::InEsputnikContactId if depth > 126 => {
                            let els = esputnik::split(b, Tz::UTC);
                            assert_eq!(els.len(), 1, "{ctx}");
                            assert_eq!(els[0].event.kind, KIND_PARKED, "{ctx}");
                        }
                        Nest::InSparkloopSubscriber if depth > 126 => {
                            let (_, n) = sparkloop::parse(b).unwrap();
                            assert_eq!(
                                n.kind, KIND_UNKNOWN,
                                "{ctx}: unreadable head is kept as unknown"
                            );
                        }
                        // nesting in a field nobody reads is skipped iteratively and kept verbatim
                        Nest::InLoopsExtra => {
                            let n = loops::parse(b).unwrap();
                            assert_eq!(n.kind, "email.unsubscribed", "{ctx}");
                            assert_eq!(n.payload.get(), body, "{ctx}");
                        }
                        Nest::InEsputnikExtra => {
                            let els = esputnik::split(b, Tz::UTC);
                            assert_eq!(els.len(), 2, "{ctx}");
                            assert_eq!(els[0].event.kind, "READ", "{ctx}");
                            assert_eq!(els[1].event.kind, "SPAM", "{ctx}");
                        }
                        Nest::InSparkloopExtra => {
                            let (_, n) = sparkloop::parse(b).unwrap();
                            assert_eq!(n.kind, "new_referral", "{ctx}");
                        }
                        // valid JSON of an unknown shape: kept verbatim as unknown
                        Nest::Arrays => {
                            let n = loops::parse(b).unwrap();
                            assert_eq!(n.kind, KIND_UNKNOWN, "{ctx}");
                            assert_eq!(n.payload.get(), body, "{ctx}");
                            let (_, n) = sparkloop::parse(b).unwrap();
                            assert_eq!(n.kind, KIND_UNKNOWN, "{ctx}");
                            assert_eq!(n.payload.get(), body, "{ctx}");
                            assert_eq!(esputnik::split(b, Tz::UTC).len(), 1, "{ctx}");
                        }
                        _ => {}
                    }
                }
            }
        }
    });
}

#[test]
fn signing_keys_refuse_what_is_not_a_key() {
    for bad in [
        "",
        ",",
        " , ,",
        "whsec_",
        "whsec_=",
        "whsec_====",
        "whsec_A",
        "whsec_abc-_",
        "whsec_!!!",
        "whsec_ YWJj",
        "whsec_YW Jj",
        "whsec_\u{feff}YWJj",
        "YWJj,whsec_",
    ] {
        assert!(SigningKeys::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn verify_refuses_timestamps_that_are_not_plain_seconds() {
    let keys = SigningKeys::parse(SECRET).unwrap();
    let body = b"{}";
    for ts in [
        "",
        " ",
        "+1764000000",
        "-1",
        "1764000000.0",
        "1764000000 ",
        " 1764000000",
        "0x1A",
        "1e9",
        "１７６４００００００",
        "9999999999999",
        "00000001764000000",
        "\u{0}",
    ] {
        let sig = reference_sign(
            &LENIENT_B64
                .decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
                .unwrap(),
            "m",
            ts,
            body,
        );
        assert!(
            keys.verify(Some("m"), Some(ts), Some(&sig), body, NOW)
                .is_err(),
            "{ts:?}"
        );
    }
}

#[test]
fn open_esputnik_auth_lets_anything_through_only_when_configured_so() {
    let open = WebhookAuth::new(None, None, None, true).unwrap();
    assert_eq!(open.check(Some("\u{0}garbage"), Some("")), Ok(()));
    // "allow unauthenticated" never weakens a configured mechanism
    let token = WebhookAuth::new(None, None, Some(Secret::new("t")), true).unwrap();
    assert_eq!(token.check(None, None), Err(AuthError::Missing));
    assert_eq!(token.check(None, Some("x")), Err(AuthError::Wrong));
}
