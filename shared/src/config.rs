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
