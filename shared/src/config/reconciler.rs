//! The reconciler function (and `sparkbridge reconcile`, which reads the same settings).

use chrono::Duration;

use super::{ConfigError, Env, EspConfig, QueueConfig, SecretsConfig, SparkLoopConfig, TABLE_NAME};
use crate::reconcile::{ReconcileConfig, MAX_UNSUBSCRIBE_SHARE_VAR};

/// `reconciler`: everything it reads at start-up.
#[derive(Debug, Clone)]
pub struct ReconcilerFunctionConfig {
    /// `TABLE_NAME` (required).
    pub table_name: String,
    pub queue: QueueConfig,
    /// `SPARKLOOP_API_KEY` and the ESP's key, from the environment or `SECRETS_ARN`.
    pub secrets: SecretsConfig,
    pub sparkloop: SparkLoopConfig,
    pub esp: EspConfig,
    pub reconcile: ReconcileConfig,
    /// `RECONCILE_DRY_RUN`: report the repairs, queue none.
    pub dry_run: bool,
}

impl ReconcilerFunctionConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            queue: QueueConfig::from_env(env)?,
            secrets: SecretsConfig::from_env(env)?,
            sparkloop: SparkLoopConfig::from_env(env),
            esp: EspConfig::from_env(env)?,
            reconcile: ReconcileConfig::from_env(env)?,
            dry_run: env.flag("RECONCILE_DRY_RUN"),
        })
    }
}

impl ReconcileConfig {
    /// `RECONCILE_SINCE_DAYS` (37), `RECONCILE_PAGE_SIZE` (100, 1 to 200),
    /// `RECONCILE_MAX_PAGES` (set: at most that many pages per run),
    /// `RECONCILE_MAX_UNSUBSCRIBE_SHARE` (0.05, 0 to 1).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let share = env.number(MAX_UNSUBSCRIBE_SHARE_VAR, d.max_unsubscribe_share)?;
        if !(0.0..=1.0).contains(&share) {
            return Err(ConfigError::shown(
                MAX_UNSUBSCRIBE_SHARE_VAR,
                share,
                "must be between 0 and 1 (0.05 is 5%)",
            ));
        }
        Ok(Self {
            since: Duration::days(env.number("RECONCILE_SINCE_DAYS", 37i64)?),
            per_page: env.number("RECONCILE_PAGE_SIZE", d.per_page)?.clamp(1, 200),
            max_pages: match env.get("RECONCILE_MAX_PAGES") {
                Some(_) => Some(env.number("RECONCILE_MAX_PAGES", 0u32)?),
                None => None,
            },
            max_unsubscribe_share: share,
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYED: [(&str, &str); 2] = [("TABLE_NAME", "state"), ("QUEUE_URL", "https://sqs/q")];

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        Env::from_pairs(DEPLOYED.iter().chain(extra).copied())
    }

    #[test]
    fn reconcile_settings_are_read() {
        let cfg = ReconcilerFunctionConfig::from_env(&env(&[
            ("RECONCILE_DRY_RUN", "true"),
            ("RECONCILE_SINCE_DAYS", "10"),
            ("RECONCILE_PAGE_SIZE", "500"),
            ("RECONCILE_MAX_UNSUBSCRIBE_SHARE", "0.2"),
            ("RECONCILE_MAX_PAGES", ""),
        ]))
        .unwrap();
        assert!(cfg.dry_run);
        let r = cfg.reconcile;
        assert_eq!(r.since, Duration::days(10));
        assert_eq!(r.per_page, 200, "at most 200 a page");
        assert_eq!(r.max_unsubscribe_share, 0.2);
        assert_eq!(r.max_pages, Some(0), "set, even blank, limits the pages");
        assert!(r.resume && !r.force);
        let d = ReconcileConfig::from_env(&Env::default()).unwrap();
        assert_eq!(
            (d.since, d.per_page, d.max_pages),
            (Duration::days(37), 100, None)
        );
    }

    #[test]
    fn a_missing_or_invalid_variable_is_named() {
        for (vars, name, message) in [
            (
                &[("RECONCILE_MAX_UNSUBSCRIBE_SHARE", "1.5")][..],
                "RECONCILE_MAX_UNSUBSCRIBE_SHARE",
                "RECONCILE_MAX_UNSUBSCRIBE_SHARE=1.5 must be between 0 and 1 (0.05 is 5%)",
            ),
            (
                &[("RECONCILE_MAX_UNSUBSCRIBE_SHARE", "NaN")],
                "RECONCILE_MAX_UNSUBSCRIBE_SHARE",
                "RECONCILE_MAX_UNSUBSCRIBE_SHARE=NaN must be between 0 and 1",
            ),
            (
                &[("RECONCILE_SINCE_DAYS", "a month")],
                "RECONCILE_SINCE_DAYS",
                r#"RECONCILE_SINCE_DAYS="a month" is not a valid number"#,
            ),
            (
                &[("RECONCILE_MAX_PAGES", "all")],
                "RECONCILE_MAX_PAGES",
                r#"RECONCILE_MAX_PAGES="all" is not a valid number"#,
            ),
        ] {
            let err = ReconcilerFunctionConfig::from_env(&env(vars)).unwrap_err();
            assert_eq!(err.name(), name, "{vars:?}");
            assert!(err.to_string().starts_with(message), "{err} for {vars:?}");
        }
        let err = ReconcilerFunctionConfig::from_env(&Env::from_pairs([("TABLE_NAME", "t")]))
            .unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "QUEUE_URL" });
        // SparkLoop's client settings stop a start only once there is a key to call with
        let cfg =
            ReconcilerFunctionConfig::from_env(&env(&[("SPARKLOOP_API_URL", "http://x")])).unwrap();
        assert_eq!(
            cfg.sparkloop.client.unwrap_err().name(),
            "SPARKLOOP_API_URL"
        );
    }
}
