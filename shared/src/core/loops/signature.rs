//! Standard Webhooks verification (the scheme Loops uses), with `hmac` + `sha2`.
//!
//! Signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`; the key is the base64
//! part of a `whsec_` secret. The header lists space-separated `v1,<base64>` entries and any
//! one matching is enough, which is how rotation works on the sender's side. Several of our
//! own secrets may be configured (comma-separated) for rotation on the receiver's side.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Allowed distance between `webhook-timestamp` and now, both directions (the Standard
/// Webhooks libraries' window): replays older than this are refused.
pub const TOLERANCE_SECS: i64 = 300;

/// At most this many signature entries are examined: a header with thousands of entries
/// must not turn one request into thousands of HMAC checks.
const MAX_SIGNATURE_ENTRIES: usize = 16;

/// A `v1` signature is an HMAC-SHA256: 32 bytes.
const DIGEST_BYTES: usize = 32;

/// The 32 bytes of a base64 signature entry; `None` for anything else (not base64, or
/// another length: such an entry can never match).
fn decode_digest(b64: &str) -> Option<[u8; DIGEST_BYTES]> {
    // 32 bytes are 43 or 44 base64 characters; longer text is some other length.
    if b64.len() > 44 {
        return None;
    }
    let mut buf = [0u8; 48];
    let n = LENIENT_B64.decode_slice(b64, &mut buf).ok()?;
    (n == DIGEST_BYTES).then(|| {
        let mut digest = [0u8; DIGEST_BYTES];
        digest.copy_from_slice(&buf[..DIGEST_BYTES]);
        digest
    })
}

/// Secrets are base64 with or without padding: Loops does not document which it issues.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningKeysError {
    #[error("LOOPS_SIGNING_SECRET is empty")]
    Empty,
    #[error("LOOPS_SIGNING_SECRET entry {0} is not base64 after the whsec_ prefix")]
    NotBase64(usize),
    #[error(
        "LOOPS_SIGNING_SECRET entry {entry} decodes to {bytes} bytes; a signing key has at least \
         {MIN_KEY_BYTES} (the secrets Loops issues have 24 or more)"
    )]
    TooShort { entry: usize, bytes: usize },
}

/// Shortest key accepted: a key anyone could guess would make every signature forgeable.
/// Standard Webhooks issues 24 to 64 bytes; 16 (128 bits) leaves room for hand-made test keys.
pub const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a unix time in seconds")]
    InvalidTimestamp,
    #[error("webhook-timestamp is more than {TOLERANCE_SECS} s away from now")]
    TimestampOutOfTolerance,
    #[error("no webhook-signature entry matches")]
    NoMatch,
}

/// One or more HMAC keys; `Debug` never prints them.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Vec<HmacSha256>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} key(s))", self.keys.len())
    }
}

impl SigningKeys {
    /// Parses `whsec_<base64>[,whsec_<base64>...]`. The prefix is optional; blanks are skipped.
    pub fn parse(csv: &str) -> Result<Self, SigningKeysError> {
        let mut keys = Vec::new();
        for (i, entry) in csv
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            let b64 = entry.strip_prefix("whsec_").unwrap_or(entry);
            let key = LENIENT_B64
                .decode(b64)
                .map_err(|_| SigningKeysError::NotBase64(i + 1))?;
            if key.len() < MIN_KEY_BYTES {
                return Err(SigningKeysError::TooShort {
                    entry: i + 1,
                    bytes: key.len(),
                });
            }
            keys.push(HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length"));
        }
        if keys.is_empty() {
            return Err(SigningKeysError::Empty);
        }
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies one delivery. `now` is unix seconds (passed in so tests control the clock).
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let id = id
            .filter(|s| !s.is_empty())
            .ok_or(SignatureError::MissingHeader("webhook-id"))?;
        let ts_text = timestamp
            .filter(|s| !s.is_empty())
            .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
        let signatures = signatures
            .filter(|s| !s.is_empty())
            .ok_or(SignatureError::MissingHeader("webhook-signature"))?;
        if !ts_text.bytes().all(|b| b.is_ascii_digit()) || ts_text.len() > 12 {
            return Err(SignatureError::InvalidTimestamp);
        }
        let ts: i64 = ts_text
            .parse()
            .map_err(|_| SignatureError::InvalidTimestamp)?;
        if (now - ts).abs() > TOLERANCE_SECS {
            return Err(SignatureError::TimestampOutOfTolerance);
        }
        // The candidates, decoded onto the stack: an entry that is not base64, or does not
        // decode to a SHA-256's 32 bytes, can never match and is dropped here.
        let mut candidates = [[0u8; DIGEST_BYTES]; MAX_SIGNATURE_ENTRIES];
        let mut count = 0;
        for b64 in signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .take(MAX_SIGNATURE_ENTRIES)
        {
            if let Some(digest) = decode_digest(b64) {
                candidates[count] = digest;
                count += 1;
            }
        }
        let candidates = &candidates[..count];
        if candidates.is_empty() {
            return Err(SignatureError::NoMatch);
        }
        for key in &self.keys {
            // The key's inner and outer padded blocks were hashed once, when the secret was
            // read (`Hmac::new_from_slice`): each request clones that state and hashes only
            // its own bytes.
            let mut mac = key.clone();
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(ts_text.as_bytes());
            mac.update(b".");
            mac.update(body);
            let expected = mac.finalize().into_bytes();
            // Constant time: every byte of every candidate is compared, without a branch on
            // any of them; `subtle` turns the result into a `Choice` at the end.
            let mut matched = subtle::Choice::from(0);
            for c in candidates {
                let diff = c
                    .iter()
                    .zip(expected.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b));
                matched |= subtle::ConstantTimeEq::ct_eq(&diff, &0u8);
            }
            if bool::from(matched) {
                return Ok(());
            }
        }
        Err(SignatureError::NoMatch)
    }

    /// Signs like a Standard Webhooks sender, with the first key (the CLI's `send`, tests).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.keys[0].clone();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_A: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    // The published Standard Webhooks vectors (aws-rust-lambda.md §9.3) and the derived Loops one.
    #[test]
    fn published_vectors() {
        let vectors = [
            (
                SECRET_A,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            (
                SECRET_A,
                "msg_loops_test_1",
                1_734_425_918,
                r#"{"eventName":"testing.testEvent","eventTime":1734425918,"message":"test","webhookSchemaVersion":"1.0.0"}"#,
                "v1,e8sgyk8C9h2spCKNXMLdpOHAgwuw1bhziXJft+JKT3c=",
            ),
        ];
        for (secret, id, ts, body, sig) in vectors {
            let keys = SigningKeys::parse(secret).unwrap();
            assert_eq!(keys.sign(id, ts, body.as_bytes()), sig);
            let ts_s = ts.to_string();
            assert_eq!(
                keys.verify(Some(id), Some(&ts_s), Some(sig), body.as_bytes(), ts),
                Ok(())
            );
        }
    }

    fn vector_a() -> (SigningKeys, &'static str, &'static [u8], String) {
        let keys = SigningKeys::parse(SECRET_A).unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let now = 1_700_000_000;
        let sig = keys.sign("msg_1", now, body);
        (keys, "msg_1", body, sig)
    }

    #[allow(clippy::too_many_lines)] // a table test: one row per case reads better than helpers
    #[test]
    fn negative_cases_by_table() {
        let (keys, id, body, good) = vector_a();
        let now = 1_700_000_000i64;
        let ts = now.to_string();
        let decoys = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=";
        let with_valid = format!("v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {good} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=");
        let prefix = good[..8].to_string();
        let v2 = good.replacen("v1,", "v2,", 1);
        let old = (now - 301).to_string();
        let future = (now + 301).to_string();
        let edge_old = (now - 300).to_string();
        let old_sig = keys.sign(id, now - 301, body);
        let future_sig = keys.sign(id, now + 301, body);
        let edge_sig = keys.sign(id, now - 300, body);
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            &'a [u8],
            Result<(), SignatureError>,
        );
        let cases: Vec<Case> = vec![
            ("valid", Some(id), Some(&ts), Some(&good), body, Ok(())),
            (
                "wrong signature",
                Some(id),
                Some(&ts),
                Some("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU="),
                body,
                Err(SignatureError::NoMatch),
            ),
            (
                "decoys only",
                Some(id),
                Some(&ts),
                Some(decoys),
                body,
                Err(SignatureError::NoMatch),
            ),
            (
                "decoys + valid",
                Some(id),
                Some(&ts),
                Some(&with_valid),
                body,
                Ok(()),
            ),
            (
                "partial: empty",
                Some(id),
                Some(&ts),
                Some("v1,"),
                body,
                Err(SignatureError::NoMatch),
            ),
            (
                "partial: prefix",
                Some(id),
                Some(&ts),
                Some(&prefix),
                body,
                Err(SignatureError::NoMatch),
            ),
            (
                "unknown version",
                Some(id),
                Some(&ts),
                Some(&v2),
                body,
                Err(SignatureError::NoMatch),
            ),
            (
                "too old",
                Some(id),
                Some(&old),
                Some(&old_sig),
                body,
                Err(SignatureError::TimestampOutOfTolerance),
            ),
            (
                "in the future",
                Some(id),
                Some(&future),
                Some(&future_sig),
                body,
                Err(SignatureError::TimestampOutOfTolerance),
            ),
            (
                "edge of window",
                Some(id),
                Some(&edge_old),
                Some(&edge_sig),
                body,
                Ok(()),
            ),
            (
                "missing id",
                None,
                Some(&ts),
                Some(&good),
                body,
                Err(SignatureError::MissingHeader("webhook-id")),
            ),
            (
                "missing timestamp",
                Some(id),
                None,
                Some(&good),
                body,
                Err(SignatureError::MissingHeader("webhook-timestamp")),
            ),
            (
                "missing signature",
                Some(id),
                Some(&ts),
                None,
                body,
                Err(SignatureError::MissingHeader("webhook-signature")),
            ),
            (
                "non-numeric timestamp",
                Some(id),
                Some("17e8"),
                Some(&good),
                body,
                Err(SignatureError::InvalidTimestamp),
            ),
            (
                "negative timestamp",
                Some(id),
                Some("-1"),
                Some(&good),
                body,
                Err(SignatureError::InvalidTimestamp),
            ),
            (
                "body changed by one byte",
                Some(id),
                Some(&ts),
                Some(&good),
                br#"{"email":"test@example.com","username":"test_usEr"}"#,
                Err(SignatureError::NoMatch),
            ),
            (
                "body re-serialized",
                Some(id),
                Some(&ts),
                Some(&good),
                br#"{"email": "test@example.com", "username": "test_user"}"#,
                Err(SignatureError::NoMatch),
            ),
            (
                "other id",
                Some("msg_2"),
                Some(&ts),
                Some(&good),
                body,
                Err(SignatureError::NoMatch),
            ),
        ];
        for (name, i, t, s, b, want) in cases {
            assert_eq!(keys.verify(i, t, s, b, now), want, "{name}");
        }
    }

    #[test]
    fn any_configured_secret_may_match_for_rotation() {
        let old = SigningKeys::parse(SECRET_A).unwrap();
        let new = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let both = SigningKeys::parse(&format!(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, {SECRET_A}"
        ))
        .unwrap();
        assert_eq!(both.len(), 2);
        let now = 1_700_000_000;
        for signer in [&old, &new] {
            let sig = signer.sign("m", now, b"{}");
            assert_eq!(
                both.verify(Some("m"), Some(&now.to_string()), Some(&sig), b"{}", now),
                Ok(())
            );
        }
        let sig = old.sign("m", now, b"{}");
        assert_eq!(
            new.verify(Some("m"), Some(&now.to_string()), Some(&sig), b"{}", now),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn secrets_are_checked_at_startup() {
        assert!(SigningKeys::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_ok());
        // unpadded and prefix-less forms decode to the same key
        let a = SigningKeys::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let b = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_ne!(a.sign("x", 1, b""), b.sign("x", 1, b""));
        // 18 bytes, no padding needed; 17 bytes without its '='
        let unpadded = SigningKeys::parse("whsec_YWJjZGVmZ2hpamtsbW5vcHFy").unwrap();
        let padded_less = SigningKeys::parse("whsec_YWJjZGVmZ2hpamtsbW5vcHE").unwrap();
        assert_eq!(
            padded_less.sign("x", 1, b""),
            SigningKeys::parse("whsec_YWJjZGVmZ2hpamtsbW5vcHE=")
                .unwrap()
                .sign("x", 1, b"")
        );
        assert_ne!(unpadded.sign("x", 1, b""), padded_less.sign("x", 1, b""));
        assert_eq!(SigningKeys::parse("").unwrap_err(), SigningKeysError::Empty);
        assert_eq!(
            SigningKeys::parse(" , ").unwrap_err(),
            SigningKeysError::Empty
        );
        assert_eq!(
            SigningKeys::parse("whsec_").unwrap_err(),
            SigningKeysError::TooShort { entry: 1, bytes: 0 }
        );
        // "abc": 3 bytes is no key
        assert_eq!(
            SigningKeys::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD,whsec_YWJj").unwrap_err(),
            SigningKeysError::TooShort { entry: 2, bytes: 3 }
        );
        assert_eq!(
            SigningKeys::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD,whsec_!!!").unwrap_err(),
            SigningKeysError::NotBase64(2)
        );
        assert_eq!(format!("{:?}", a), "SigningKeys(1 key(s))");
    }
}
