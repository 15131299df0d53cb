//! Masking of personal data before it reaches a log line.

/// `jane.doe@example.com` -> `j***@e***.com`. Keeps enough to tell addresses apart in a
/// log search without revealing them; anything that is not an address is masked whole.
pub fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return "***".to_string();
    };
    let first = |s: &str| s.chars().next().map(|c| c.to_string()).unwrap_or_default();
    let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
    let tld = if tld.is_empty() {
        String::new()
    } else {
        format!(".{}", sanitize(tld))
    };
    format!(
        "{}***@{}***{}",
        sanitize(&first(local)),
        sanitize(&first(host)),
        tld
    )
}

/// Masks an optional address, for log fields.
pub fn mask_opt(email: Option<&str>) -> String {
    email.map(mask_email).unwrap_or_else(|| "-".to_string())
}

/// Keeps log lines single-line and printable: attacker-controlled text must not forge entries.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_by_table() {
        for (input, want) in [
            ("jane.doe@example.com", "j***@e***.com"),
            ("a@b.co.uk", "a***@b***.uk"),
            ("test+5@loops.so", "t***@l***.so"),
            ("no-at-sign", "***"),
            ("@example.com", "***@e***.com"),
            ("x@localhost", "x***@l***"),
            ("\n@\r.com", "?***@?***.com"),
        ] {
            assert_eq!(mask_email(input), want, "{input}");
        }
        assert_eq!(mask_opt(None), "-");
    }

    #[test]
    fn never_contains_the_address() {
        let m = mask_email("secret.person@private-domain.org");
        assert!(!m.contains("secret.person"));
        assert!(!m.contains("private-domain"));
    }
}
