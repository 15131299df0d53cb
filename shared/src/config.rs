//! Configuration read from the environment, with the names used when deployed.

/// Reads a boolean flag: `true`/`1`/`yes`/`on` (any case) are on, anything else off.
pub fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        )
    })
}

/// Reads a number, falling back to `default` when unset; a malformed value is an error
/// that names the variable.
pub fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid number")),
        _ => Ok(default),
    }
}

/// API base URLs must be https: a configurable URL is an SSRF and key-leak vector. Plain
/// http is allowed for loopback fakes in development and tests, or with
/// `SPARKBRIDGE_ALLOW_HTTP=true`.
pub fn check_api_url(name: &str, url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{name}={url:?} is not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || flag("SPARKBRIDGE_ALLOW_HTTP") => Ok(()),
        _ => Err(format!("{name}={url:?} must be an https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls() {
        assert!(check_api_url("X", "https://api.sparkloop.app").is_ok());
        assert!(check_api_url("X", "http://127.0.0.1:8080").is_ok());
        assert!(check_api_url("X", "http://localhost:1").is_ok());
        assert!(check_api_url("X", "http://169.254.169.254/latest").is_err());
        assert!(check_api_url("X", "ftp://x").is_err());
        assert!(check_api_url("X", "http://127.0.0.1.evil.com").is_err());
        assert!(check_api_url("X", "http://localhost.evil.com").is_err());
        assert!(check_api_url("X", "http://[::1]:9/").is_ok());
        assert!(check_api_url("X", "not a url").is_err());
    }
}
