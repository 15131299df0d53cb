//! Our Loops verifier against the `standardwebhooks` crate as an oracle: whatever the oracle
//! signs, we accept; any one-byte change to the body, id, timestamp or signature we refuse.

use base64::Engine;
use proptest::prelude::*;
use sparkbridge::core::loops::{SignatureError, SigningKeys, TOLERANCE_SECS};
use standardwebhooks::Webhook;

const NOW: i64 = 1_764_000_000;

fn alnum(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![b'a'..=b'z', b'A'..=b'Z', b'0'..=b'9', Just(b'_')],
        len,
    )
    .prop_map(|v| String::from_utf8(v).unwrap())
}

/// Replaces the byte at `pos` with a different byte from `alphabet`.
fn mutate(s: &[u8], pos: usize, pick: usize, alphabet: &[u8]) -> Vec<u8> {
    let mut out = s.to_vec();
    let i = pos % out.len();
    let choices: Vec<u8> = alphabet.iter().copied().filter(|c| *c != out[i]).collect();
    out[i] = choices[pick % choices.len()];
    out
}

const DIGITS: &[u8] = b"0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const IDCHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn agrees_with_the_standardwebhooks_oracle(
        key in proptest::collection::vec(any::<u8>(), 24..=64),
        id in alnum(1..40),
        skew in -(TOLERANCE_SECS - 1)..(TOLERANCE_SECS - 1),
        body in "\\PC{0,300}",
        pos in any::<usize>(),
        pick in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(&key));
        let oracle = Webhook::new(&secret).expect("oracle accepts padded secrets");
        let body = body.into_bytes(); // the oracle signs UTF-8 payloads only
        let ts = NOW + skew;
        let ts_s = ts.to_string();
        let sig = oracle.sign(&id, ts, &body).expect("oracle signs");
        let ours = SigningKeys::parse(&secret).unwrap();
        prop_assert_eq!(ours.sign(&id, ts, &body), sig.clone(), "same signature as the oracle");
        prop_assert_eq!(ours.verify(Some(&id), Some(&ts_s), Some(&sig), &body, NOW), Ok(()));

        // one byte of the body
        if !body.is_empty() {
            let mut b = body.clone();
            let i = pos % b.len();
            b[i] ^= flip;
            prop_assert_eq!(ours.verify(Some(&id), Some(&ts_s), Some(&sig), &b, NOW), Err(SignatureError::NoMatch));
        }
        // one byte of the id
        let id2 = String::from_utf8(mutate(id.as_bytes(), pos, pick, IDCHARS)).unwrap();
        prop_assert_eq!(ours.verify(Some(&id2), Some(&ts_s), Some(&sig), &body, NOW), Err(SignatureError::NoMatch));
        // one byte of the timestamp (whatever the error, it is refused)
        let ts2 = String::from_utf8(mutate(ts_s.as_bytes(), pos, pick, DIGITS)).unwrap();
        prop_assert!(ours.verify(Some(&id), Some(&ts2), Some(&sig), &body, NOW).is_err());
        // one byte of the base64 signature (after "v1,")
        let sig_bytes = sig.as_bytes();
        let b64_len = sig_bytes.len() - 3 - 1; // keep the final '=' padding in place
        let mut s2 = sig_bytes.to_vec();
        let mutated = mutate(&sig_bytes[3..3 + b64_len], pos, pick, B64);
        s2[3..3 + b64_len].copy_from_slice(&mutated);
        let s2 = String::from_utf8(s2).unwrap();
        prop_assert_eq!(ours.verify(Some(&id), Some(&ts_s), Some(&s2), &body, NOW), Err(SignatureError::NoMatch));
    }
}
