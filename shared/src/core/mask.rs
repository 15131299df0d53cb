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

/// Masks every address inside free text (an API's error message may echo one), then
/// sanitizes: what the worker logs from outside.
pub fn scrub(text: &str) -> String {
    let local = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
    let domain = |c: char| c.is_alphanumeric() || ".-".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| local(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let end = at
            + 1
            + rest[at + 1..]
                .char_indices()
                .find(|(_, c)| !domain(*c))
                .map_or(rest.len() - at - 1, |(i, _)| i);
        let (user, host) = (&rest[start..at], &rest[at + 1..end]);
        if !user.is_empty() && !host.is_empty() {
            out.push_str(&rest[..start]);
            out.push_str(&mask_email(&rest[start..end]));
            rest = &rest[end..];
        } else {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    sanitize(&out)
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
    fn scrubs_addresses_inside_text() {
        for (input, want) in [
            (
                r#"422: {"error":"jane.doe@example.com is not a subscriber"}"#,
                r#"422: {"error":"j***@e***.com is not a subscriber"}"#,
            ),
            ("a@b.c and x+1@y.org", "a***@b***.c and x***@y***.org"),
            ("no address @ all", "no address @ all"),
            ("trailing@", "trailing@"),
            ("@leading", "@leading"),
            ("line\nbreak a@b.c\n", "line?break a***@b***.c?"),
            ("é@ü.de", "é***@ü***.de"),
        ] {
            assert_eq!(scrub(input), want, "{input:?}");
        }
    }

    #[test]
    fn never_contains_the_address() {
        let m = mask_email("secret.person@private-domain.org");
        assert!(!m.contains("secret.person"));
        assert!(!m.contains("private-domain"));
    }
}
