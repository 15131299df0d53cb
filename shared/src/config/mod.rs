//! Configuration: every setting the functions read from the environment, with the names used
//! when deployed, read in this module only (but for whether metrics are emitted at all,
//! `telemetry::metrics`). Each function has one typed struct
//! ([`IngestLoopsConfig`], [`IngestEsputnikConfig`], [`IngestSparkloopConfig`],
//! [`WorkerFunctionConfig`], [`ScreenerFunctionConfig`], [`ReconcilerFunctionConfig`]) built
//! from an [`Env`] read once at start-up; the handlers and clients take the values it holds.
//! `sparkbridge config check` builds the same structs, so a setting is checked in one place.
//!
//! Errors name the variable and never show a secret's value.

mod clients;
mod ingest;
mod reconciler;
mod screener;
mod secrets;
mod sender;
mod telemetry;
mod worker;

pub use clients::{
    EspChoice, EspConfig, QueueConfig, SparkLoopClientConfig, SparkLoopConfig, WorkQueueConfig,
    TABLE_NAME,
};
pub use ingest::{
    EsputnikWebhookConfig, IngestEsputnikConfig, IngestLoopsConfig, IngestSparkloopConfig,
};
pub use reconciler::ReconcilerFunctionConfig;
pub use screener::ScreenerFunctionConfig;
pub use secrets::{SecretRef, SecretsConfig, SECRETS_ARN, SECRETS_TTL_SECS};
pub use telemetry::LogSettings;
pub use worker::WorkerFunctionConfig;

use std::collections::BTreeMap;
use std::str::FromStr;

/// What is wrong with a setting. `name` is the variable; `value_hint` is how its value is
/// shown (quoted text or a number), `None` where it is not shown (JSON documents, secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    #[error("{name}{} {reason}", shown(.value_hint))]
    Invalid {
        name: &'static str,
        value_hint: Option<String>,
        reason: String,
    },
}

fn shown(hint: &Option<String>) -> String {
    hint.as_ref().map(|v| format!("={v}")).unwrap_or_default()
}

impl ConfigError {
    /// `name` holds `value` (shown quoted), which is wrong because of `reason`.
    pub fn quoted(name: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            value_hint: Some(format!("{value:?}")),
            reason: reason.into(),
        }
    }

    /// `name` holds `value` (shown as it reads, for numbers), which is wrong because of `reason`.
    pub fn shown(
        name: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            name,
            value_hint: Some(value.to_string()),
            reason: reason.into(),
        }
    }

    /// `name` is wrong because of `reason`; its value is not repeated.
    pub fn unshown(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            value_hint: None,
            reason: reason.into(),
        }
    }

    /// The variable the error is about.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Missing { name } | Self::Invalid { name, .. } => name,
        }
    }
}

/// Why a function cannot start: its settings, or what they name (the secret, the webhook
/// secrets). Each `functions/*/src/main.rs` builds its handler into this; the runtime prints
/// a returned error's `Debug` in the function's log, so that is the message, quoted (as a
/// boxed `String` prints).
#[derive(thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::StartError),
    #[error(transparent)]
    LoopsSecret(#[from] crate::core::loops::SigningKeysError),
    #[error(transparent)]
    EsputnikAuth(#[from] crate::core::esputnik::WebhookAuthConfigError),
    #[error(transparent)]
    SparkloopToken(#[from] crate::ingest::sparkloop::NoToken),
}

impl std::fmt::Debug for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// The environment variables, read once: every `from_env` here takes one, so the process
/// environment is read in one place ([`Env::process`]) and tests pass their own.
/// Variables whose name or value is not UTF-8 count as unset.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The process environment, now.
    pub fn process() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    /// Only these variables (tests, and `sparkbridge` commands that set some themselves).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Sets `name` (`sparkbridge dev` and `send` fill in development defaults this way).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value as set (possibly blank).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value as set, unless blank (whitespace only).
    pub fn non_blank(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// A required variable: unset or blank is an error that names it.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.non_blank(name)
            .map(str::to_string)
            .ok_or(ConfigError::Missing { name })
    }

    /// A boolean flag: `true`/`1`/`yes`/`on` (any case) are on, anything else off.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on"
            )
        })
    }

    /// A number, `default` when unset or blank; a malformed value is an error that names
    /// the variable.
    pub fn number<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        Ok(self.optional_number(name)?.unwrap_or(default))
    }

    /// A number, `None` when unset or blank.
    pub fn optional_number<T: FromStr>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.non_blank(name)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| ConfigError::quoted(name, v, "is not a valid number"))
            })
            .transpose()
    }

    /// An API base URL, checked by [`check_api_url`] (`SPARKBRIDGE_ALLOW_HTTP` allows http).
    pub fn api_url(&self, name: &'static str, url: &str) -> Result<(), ConfigError> {
        check_api_url(name, url, self.flag("SPARKBRIDGE_ALLOW_HTTP"))
    }
}

/// Names only: values may be secrets.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Env")
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// API base URLs must be https: a configurable URL is an SSRF and key-leak vector. Plain
/// http is allowed for loopback fakes in development and tests, or with `allow_http`
/// (`SPARKBRIDGE_ALLOW_HTTP=true`).
pub fn check_api_url(name: &'static str, url: &str, allow_http: bool) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::quoted(name, url, format!("is not a URL: {e}")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_http => Ok(()),
        _ => Err(ConfigError::quoted(name, url, "must be an https:// URL")),
    }
}

/// Variables as a test sets them.
#[cfg(test)]
type Vars = &'static [(&'static str, &'static str)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls() {
        let ok = |u: &str| check_api_url("X", u, false).is_ok();
        assert!(ok("https://api.sparkloop.app"));
        assert!(ok("http://127.0.0.1:8080"));
        assert!(ok("http://localhost:1"));
        assert!(!ok("http://169.254.169.254/latest"));
        assert!(!ok("ftp://x"));
        assert!(!ok("http://127.0.0.1.evil.com"));
        assert!(!ok("http://localhost.evil.com"));
        assert!(ok("http://[::1]:9/"));
        assert!(!ok("not a url"));
        assert!(check_api_url("X", "http://169.254.169.254/latest", true).is_ok());
        assert!(check_api_url("X", "ftp://x", true).is_err());
        assert_eq!(
            check_api_url("X", "http://example.com", false)
                .unwrap_err()
                .to_string(),
            r#"X="http://example.com" must be an https:// URL"#
        );
    }

    #[test]
    fn flags_numbers_and_required_values_name_the_variable() {
        let env = Env::from_pairs([
            ("ON", " Yes "),
            ("OFF", "enabled"),
            ("N", " 42 "),
            ("BAD", "4 2"),
            ("BLANK", "  "),
        ]);
        assert!(env.flag("ON"));
        assert!(!env.flag("OFF"));
        assert!(!env.flag("UNSET"));
        assert_eq!(env.number("N", 7u32), Ok(42));
        assert_eq!(env.number("BLANK", 7u32), Ok(7), "blank is unset");
        assert_eq!(env.number("UNSET", 7u32), Ok(7));
        assert_eq!(
            env.number("BAD", 7u32).unwrap_err().to_string(),
            r#"BAD="4 2" is not a valid number"#
        );
        assert_eq!(env.optional_number::<u32>("UNSET"), Ok(None));
        assert_eq!(env.required("N").as_deref(), Ok(" 42 "));
        for unset in ["BLANK", "UNSET"] {
            let err = env.required(unset).unwrap_err();
            assert_eq!(err.name(), unset);
            assert_eq!(
                err.to_string(),
                format!("environment variable {unset} is not set")
            );
        }
    }

    #[test]
    fn a_start_up_error_reads_as_its_message_where_the_runtime_prints_it() {
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            StartupError::from(ConfigError::Missing { name: "TABLE_NAME" }).into();
        assert_eq!(
            format!("Error: {boxed:?}"),
            r#"Error: "environment variable TABLE_NAME is not set""#
        );
    }

    #[test]
    fn debug_shows_names_never_values() {
        let env = Env::from_pairs([("SPARKLOOP_API_KEY", "hunter2")]);
        assert_eq!(format!("{env:?}"), r#"Env(["SPARKLOOP_API_KEY"])"#);
    }
}
