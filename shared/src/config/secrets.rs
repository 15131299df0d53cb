//! Where the secret settings come from: the secret in `SECRETS_ARN` (read again after
//! `SECRETS_TTL_SECS`), or the environment (see `crate::secrets`).

use std::time::Duration;

use super::{ConfigError, Env};
use crate::core::secrets::{needs, Component, Needs, SecretValues, DEFAULT_TTL, KEYS};

/// The ARN (or name) of the secret holding the secret settings.
pub const SECRETS_ARN: &str = "SECRETS_ARN";
/// Seconds the values read from the secret are used before it is read again.
pub const SECRETS_TTL_SECS: &str = "SECRETS_TTL_SECS";

/// The secret settings of a function, as configured.
#[derive(Debug, Clone)]
pub struct SecretsConfig {
    /// The secret, when `SECRETS_ARN` is set.
    pub secret: Option<SecretRef>,
    /// `ESP` as set: which API key the worker and the reconciler need.
    pub esp: Option<String>,
    /// `DRY_RUN`: the worker and the reconciler can start without their API keys.
    pub dry_run: bool,
    /// The secret variables the environment sets (blank counts as unset): used without a
    /// secret, and for the keys a secret lacks.
    pub env: SecretValues,
}

/// The secret in `SECRETS_ARN` and how long its values are used (`SECRETS_TTL_SECS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub arn: String,
    pub ttl: Duration,
}

impl SecretsConfig {
    /// `SECRETS_TTL_SECS` is read only with `SECRETS_ARN`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secret = match Self::arn(env) {
            Some(arn) => Some(SecretRef {
                arn,
                ttl: Self::ttl(env)?,
            }),
            None => None,
        };
        Ok(Self {
            secret,
            ..Self::environment(env)
        })
    }

    /// The secret variables of the environment only, with no secret (development, tests).
    pub fn environment(env: &Env) -> Self {
        Self {
            secret: None,
            esp: env.get("ESP").map(str::to_string),
            dry_run: env.flag("DRY_RUN"),
            env: SecretValues::from_env(&KEYS, |k| env.get(k).map(str::to_string)),
        }
    }

    /// `SECRETS_ARN`, trimmed, when set.
    pub fn arn(env: &Env) -> Option<String> {
        env.get(SECRETS_ARN)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// `SECRETS_TTL_SECS` (default 300, at least 1).
    pub fn ttl(env: &Env) -> Result<Duration, ConfigError> {
        let secs = env.number(SECRETS_TTL_SECS, DEFAULT_TTL.as_secs())?;
        if secs == 0 {
            return Err(ConfigError::shown(
                SECRETS_TTL_SECS,
                0,
                "must be at least 1",
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    /// The keys `component` reads and those it cannot start without (they follow `ESP` and
    /// `DRY_RUN`).
    pub fn needs(&self, component: Component) -> Needs {
        needs(component, self.esp.as_deref(), self.dry_run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secrets::{LOOPS_API_KEY, SPARKLOOP_API_KEY};

    #[test]
    fn the_ttl_is_read_only_with_a_secret() {
        let without = SecretsConfig::from_env(&Env::from_pairs([
            ("SECRETS_TTL_SECS", "never"),
            ("SPARKLOOP_API_KEY", " k "),
            ("LOOPS_API_KEY", " "),
        ]))
        .unwrap();
        assert_eq!(without.secret, None);
        assert_eq!(without.env.text(SPARKLOOP_API_KEY), "k");
        assert!(without.env.get(LOOPS_API_KEY).is_none(), "blank is unset");

        let with = SecretsConfig::from_env(&Env::from_pairs([
            ("SECRETS_ARN", " arn:aws:secretsmanager:x "),
            ("ESP", "loops"),
        ]))
        .unwrap();
        assert_eq!(
            with.secret,
            Some(SecretRef {
                arn: "arn:aws:secretsmanager:x".into(),
                ttl: Duration::from_secs(300)
            })
        );
        assert_eq!(
            with.needs(Component::Worker).required,
            vec![SPARKLOOP_API_KEY, LOOPS_API_KEY]
        );

        for (ttl, want) in [
            ("0", "SECRETS_TTL_SECS=0 must be at least 1"),
            ("5m", r#"SECRETS_TTL_SECS="5m" is not a valid number"#),
        ] {
            let err = SecretsConfig::from_env(&Env::from_pairs([
                ("SECRETS_ARN", "arn"),
                ("SECRETS_TTL_SECS", ttl),
            ]))
            .unwrap_err();
            assert_eq!(
                (err.name(), err.to_string().as_str()),
                (SECRETS_TTL_SECS, want)
            );
        }
    }
}
