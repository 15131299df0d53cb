//! The ingest functions: the queue they send to, their webhook secrets, and eSputnik's
//! webhook settings.

use chrono_tz::Tz;

use super::{ConfigError, Env, QueueConfig, SecretsConfig};

/// `ingest-loops`: `QUEUE_URL`, `MAX_MESSAGE_BYTES`, and `LOOPS_SIGNING_SECRET` (one or more
/// `whsec_` secrets, comma-separated) from the environment or `SECRETS_ARN`.
#[derive(Debug, Clone)]
pub struct IngestLoopsConfig {
    pub queue: QueueConfig,
    pub secrets: SecretsConfig,
}

impl IngestLoopsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue: QueueConfig::from_env(env)?,
            secrets: SecretsConfig::from_env(env)?,
        })
    }
}

/// `ingest-esputnik`: the queue, the webhook credentials (`ESPUTNIK_WEBHOOK_USER`/`_PASSWORD`,
/// `ESPUTNIK_WEBHOOK_TOKEN`, from the environment or `SECRETS_ARN`), and [`EsputnikWebhookConfig`].
#[derive(Debug, Clone)]
pub struct IngestEsputnikConfig {
    pub queue: QueueConfig,
    pub secrets: SecretsConfig,
    pub webhook: EsputnikWebhookConfig,
}

impl IngestEsputnikConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue: QueueConfig::from_env(env)?,
            secrets: SecretsConfig::from_env(env)?,
            webhook: EsputnikWebhookConfig::from_env(env)?,
        })
    }
}

/// How eSputnik's webhooks are read, beside their credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EsputnikWebhookConfig {
    /// `ESPUTNIK_ALLOW_UNAUTHENTICATED` (`true` or `1`): start with no credentials configured.
    pub allow_unauthenticated: bool,
    /// `ESPUTNIK_TIMEZONE` (IANA name, default UTC): the zone of eSputnik's local times.
    pub timezone: Tz,
}

impl Default for EsputnikWebhookConfig {
    fn default() -> Self {
        Self {
            allow_unauthenticated: false,
            timezone: Tz::UTC,
        }
    }
}

impl EsputnikWebhookConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let allow_unauthenticated = env
            .get("ESPUTNIK_ALLOW_UNAUTHENTICATED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let name = env
            .get("ESPUTNIK_TIMEZONE")
            .filter(|s| !s.is_empty())
            .unwrap_or("UTC");
        let timezone = name.parse().map_err(|_| {
            ConfigError::quoted(
                "ESPUTNIK_TIMEZONE",
                name,
                "is not an IANA time zone (e.g. UTC, Europe/Kyiv)",
            )
        })?;
        Ok(Self {
            allow_unauthenticated,
            timezone,
        })
    }
}

/// `ingest-sparkloop`: the queue, and `SPARKLOOP_WEBHOOK_TOKEN` (comma-separated to accept an
/// old and a new token while rotating) from the environment or `SECRETS_ARN`.
#[derive(Debug, Clone)]
pub struct IngestSparkloopConfig {
    pub queue: QueueConfig,
    pub secrets: SecretsConfig,
}

impl IngestSparkloopConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue: QueueConfig::from_env(env)?,
            secrets: SecretsConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    const QUEUE: (&str, &str) = ("QUEUE_URL", "https://sqs/q");

    #[test]
    fn each_ingest_function_names_what_it_lacks() {
        type Build = fn(&Env) -> Result<(), ConfigError>;
        let functions: [(&str, Build); 3] = [
            ("ingest-loops", |e| IngestLoopsConfig::from_env(e).map(drop)),
            ("ingest-esputnik", |e| {
                IngestEsputnikConfig::from_env(e).map(drop)
            }),
            ("ingest-sparkloop", |e| {
                IngestSparkloopConfig::from_env(e).map(drop)
            }),
        ];
        let cases: [(Vars, Option<(&str, &str)>); 5] = [
            (&[QUEUE], None),
            (
                &[],
                Some(("QUEUE_URL", "environment variable QUEUE_URL is not set")),
            ),
            (
                &[QUEUE, ("MAX_MESSAGE_BYTES", "1e6")],
                Some((
                    "MAX_MESSAGE_BYTES",
                    r#"MAX_MESSAGE_BYTES="1e6" is not a valid number"#,
                )),
            ),
            (
                &[QUEUE, ("SECRETS_ARN", "arn"), ("SECRETS_TTL_SECS", "0")],
                Some(("SECRETS_TTL_SECS", "SECRETS_TTL_SECS=0 must be at least 1")),
            ),
            (&[QUEUE, ("SECRETS_TTL_SECS", "0")], None),
        ];
        for (function, build) in functions {
            for (vars, want) in &cases {
                let got = build(&Env::from_pairs(vars.iter().copied()));
                let got = got.as_ref().err().map(|e| (e.name(), e.to_string()));
                let want = want.map(|(n, m)| (n, m.to_string()));
                assert_eq!(got, want, "{function} {vars:?}");
            }
        }
    }

    #[test]
    fn esputnik_reads_its_time_zone_and_the_unauthenticated_switch() {
        let cfg = IngestEsputnikConfig::from_env(&Env::from_pairs([
            QUEUE,
            ("ESPUTNIK_TIMEZONE", "Europe/Kyiv"),
            ("ESPUTNIK_ALLOW_UNAUTHENTICATED", "TRUE"),
        ]))
        .unwrap();
        assert_eq!(cfg.webhook.timezone, chrono_tz::Europe::Kyiv);
        assert!(cfg.webhook.allow_unauthenticated);
        for (value, on) in [
            ("1", true),
            ("true", true),
            ("yes", false),
            (" true", false),
        ] {
            let env = Env::from_pairs([("ESPUTNIK_ALLOW_UNAUTHENTICATED", value)]);
            assert_eq!(
                EsputnikWebhookConfig::from_env(&env)
                    .unwrap()
                    .allow_unauthenticated,
                on,
                "{value:?}"
            );
        }
        assert_eq!(
            EsputnikWebhookConfig::from_env(&Env::from_pairs([("ESPUTNIK_TIMEZONE", "")])),
            Ok(EsputnikWebhookConfig::default())
        );
        let err =
            EsputnikWebhookConfig::from_env(&Env::from_pairs([("ESPUTNIK_TIMEZONE", "Kyiv")]))
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"ESPUTNIK_TIMEZONE="Kyiv" is not an IANA time zone (e.g. UTC, Europe/Kyiv)"#
        );
    }
}
