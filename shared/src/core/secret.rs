//! Constant-time comparisons for shared secrets (tokens, Basic auth credentials).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configured secret. Its `Debug` never prints the value, so it cannot leak through logs.
/// Its digest is computed once, when it is configured: each check then hashes only what the
/// request presents.
#[derive(Clone)]
pub struct Secret {
    value: String,
    digest: [u8; 32],
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let digest = Sha256::digest(value.as_bytes()).into();
        Self { value, digest }
    }

    /// Reads an environment-style value: absent or blank means "not configured".
    pub fn from_opt(value: Option<String>) -> Option<Self> {
        value
            .filter(|v| !v.trim().is_empty())
            .map(|v| Self::new(v.trim()))
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Compares in constant time, including when lengths differ: both sides are compared as
    /// SHA-256 digests, so neither the content nor the length of the secret leaks through
    /// timing.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(candidate).into();
        words(&presented).ct_eq(&words(&self.digest)).into()
    }
}

/// A digest as four words: `subtle` compares a slice element by element, each behind an
/// optimization barrier, so four words cost an eighth of 32 bytes, in constant time all the
/// same.
fn words(digest: &[u8; 32]) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(8)) {
        *word = u64::from_ne_bytes(bytes.try_into().expect("chunks of 8"));
    }
    words
}

impl Default for Secret {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("tok_123");
        assert!(s.matches(b"tok_123"));
        for bad in [&b"tok_124"[..], b"tok_12", b"tok_1234", b"", b"TOK_123"] {
            assert!(!s.matches(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_empty_secret_matches_only_an_empty_candidate() {
        let s = Secret::default();
        assert!(s.matches(b""));
        assert!(!s.matches(b" "));
    }

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    #[test]
    fn blank_is_not_configured() {
        assert!(Secret::from_opt(Some("  ".into())).is_none());
        assert!(Secret::from_opt(None).is_none());
        assert_eq!(Secret::from_opt(Some(" x ".into())).unwrap().expose(), "x");
    }
}
