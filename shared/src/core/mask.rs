//! Masking of personal data before it reaches a log line.

use std::fmt::{self, Write};

/// `jane.doe@example.com` -> `j***@e***.com`. Keeps enough to tell addresses apart in a
/// log search without revealing them; anything that is not an address is masked whole.
pub fn mask_email(email: &str) -> String {
    Masked(email).to_string()
}

/// [`mask_email`] as it is written, for log fields: nothing is allocated.
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((local, domain)) = self.0.rsplit_once('@') else {
            return f.write_str("***");
        };
        let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
        let first = |s: &str| s.chars().next().map(printable);
        if let Some(c) = first(local) {
            f.write_char(c)?;
        }
        f.write_str("***@")?;
        if let Some(c) = first(host) {
            f.write_char(c)?;
        }
        f.write_str("***")?;
        if !tld.is_empty() {
            f.write_char('.')?;
            Sanitized(tld).fmt(f)?;
        }
        Ok(())
    }
}

/// An optional address as it is written in a log field: the masked address, or `-`.
#[derive(Clone, Copy)]
pub struct MaskedOpt<'a>(pub Option<&'a str>);

impl fmt::Display for MaskedOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(email) => Masked(email).fmt(f),
            None => f.write_str("-"),
        }
    }
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
    s.chars().map(printable).collect()
}

fn printable(c: char) -> char {
    if c.is_control() {
        '?'
    } else {
        c
    }
}

/// [`sanitize`] as it is written, for log fields: nothing is allocated.
#[derive(Clone, Copy)]
pub struct Sanitized<'a>(pub &'a str);

impl fmt::Display for Sanitized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((i, c)) = rest.char_indices().find(|(_, c)| c.is_control()) {
            f.write_str(&rest[..i])?;
            f.write_char('?')?;
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
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
        assert_eq!(MaskedOpt(None).to_string(), "-");
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
    fn sanitized_writes_what_sanitize_returns() {
        for input in [
            "",
            "plain",
            "a\nb\rc\u{0}d",
            "\u{7f}é\u{85}z",
            "\n",
            "tab\tend\u{1b}[31m",
        ] {
            let want: String = input
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            assert_eq!(sanitize(input), want, "{input:?}");
            assert_eq!(Sanitized(input).to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn never_contains_the_address() {
        let m = mask_email("secret.person@private-domain.org");
        assert!(!m.contains("secret.person"));
        assert!(!m.contains("private-domain"));
    }
}
