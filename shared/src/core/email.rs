//! A subscriber's address as sparkbridge keys its records: one spelling per address.

use std::fmt;

/// An address trimmed and lower-cased (ASCII, as providers compare them), so every spelling of
/// one address finds one record. The stores build every subscriber, signal and departure key
/// from it; nothing else lower-cases an address for a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

impl Email {
    pub fn new(raw: &str) -> Email {
        Email(raw.trim().to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<&str> for Email {
    fn from(raw: &str) -> Self {
        Email::new(raw)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_address_are_one_email() {
        let cases = [
            ("Ann@Example.COM", "ann@example.com"),
            ("  ann@example.com\t", "ann@example.com"),
            ("ann@example.com", "ann@example.com"),
            // non-ASCII letters are kept as sent: providers compare them byte for byte
            ("Ünal@Example.com", "Ünal@example.com"),
            ("", ""),
        ];
        for (raw, key) in cases {
            assert_eq!(Email::new(raw).as_str(), key, "{raw:?}");
        }
        assert_eq!(Email::new("A@B.C"), Email::from(" a@b.c "));
    }
}
