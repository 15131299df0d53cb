//! The screener function, and the screening settings the worker shares with it.

use std::collections::BTreeMap;

use chrono::Duration;

use super::{ConfigError, Env, QueueConfig, TABLE_NAME};
use crate::core::lifecycle::Criteria;
use crate::screener::ScreeningConfig;

/// `screener`: everything it reads at start-up.
#[derive(Debug, Clone)]
pub struct ScreenerFunctionConfig {
    /// `TABLE_NAME` (required).
    pub table_name: String,
    pub queue: QueueConfig,
    pub screening: ScreeningConfig,
    /// `SCREENING_DRY_RUN`: report the rejects, queue none.
    pub dry_run: bool,
}

impl ScreenerFunctionConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            queue: QueueConfig::from_env(env)?,
            screening: ScreeningConfig::from_env(env)?,
            dry_run: env.flag("SCREENING_DRY_RUN"),
        })
    }
}

impl ScreeningConfig {
    /// `SCREENING_ENABLED`, `SCREENING_DAYS` (14), `REJECT_BEFORE_END_HOURS` (24),
    /// `SCREENING_MIN_OPENS`, `SCREENING_MIN_CLICKS`, `SCREENING_FIRST_EMAILS`,
    /// `SCREENING_MIN_OPENS_OF_FIRST`, `SCREENING_MATCH` (`all` | `any`),
    /// `SCREENING_PARTNER_RULES` (JSON: `{"partner_id": {"days": 7, "min_clicks": 1}}`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let days = env.number("SCREENING_DAYS", 14i64)?;
        if !(1..=30).contains(&days) {
            return Err(ConfigError::shown(
                "SCREENING_DAYS",
                days,
                "must be between 1 and 30",
            ));
        }
        let any = match env.get("SCREENING_MATCH").unwrap_or_default() {
            "" | "all" => false,
            "any" => true,
            other => {
                return Err(ConfigError::quoted(
                    "SCREENING_MATCH",
                    other,
                    "must be all or any",
                ))
            }
        };
        let partners = match env.non_blank("SCREENING_PARTNER_RULES") {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                ConfigError::unshown("SCREENING_PARTNER_RULES", format!("is not valid: {e}"))
            })?,
            None => BTreeMap::new(),
        };
        Ok(Self {
            enabled: env.flag("SCREENING_ENABLED"),
            days,
            before_end: Duration::hours(env.number("REJECT_BEFORE_END_HOURS", 24i64)?),
            criteria: Criteria {
                min_opens: env.number("SCREENING_MIN_OPENS", 0u32)?,
                min_clicks: env.number("SCREENING_MIN_CLICKS", 0u32)?,
                first_emails: env.number("SCREENING_FIRST_EMAILS", 0u32)?,
                min_opens_of_first: env.number("SCREENING_MIN_OPENS_OF_FIRST", 0u32)?,
                any,
            },
            partners,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    const DEPLOYED: [(&str, &str); 2] = [("TABLE_NAME", "state"), ("QUEUE_URL", "https://sqs/q")];

    #[test]
    fn screening_settings_are_read() {
        let cfg = ScreenerFunctionConfig::from_env(&Env::from_pairs(DEPLOYED.into_iter().chain([
            ("SCREENING_ENABLED", "true"),
            ("SCREENING_DRY_RUN", "1"),
            ("SCREENING_DAYS", "7"),
            ("REJECT_BEFORE_END_HOURS", "12"),
            ("SCREENING_MIN_CLICKS", "1"),
            ("SCREENING_MATCH", "any"),
            ("SCREENING_PARTNER_RULES", r#"{"p1": {"days": 3}}"#),
        ])))
        .unwrap();
        assert!(cfg.dry_run);
        let s = cfg.screening;
        assert!(s.enabled);
        assert_eq!((s.days, s.before_end), (7, Duration::hours(12)));
        assert!(s.criteria.any);
        assert_eq!(s.criteria.min_clicks, 1);
        assert_eq!(s.partners["p1"].days, Some(3));
        assert_eq!(
            ScreeningConfig::from_env(&Env::default()),
            Ok(ScreeningConfig::default())
        );
    }

    #[test]
    fn a_missing_or_invalid_variable_is_named() {
        let cases: [(Vars, &str, &str); 7] = [
            (
                &[("QUEUE_URL", "q")],
                "TABLE_NAME",
                "environment variable TABLE_NAME is not set",
            ),
            (
                &[("TABLE_NAME", "t")],
                "QUEUE_URL",
                "environment variable QUEUE_URL is not set",
            ),
            (
                &[("SCREENING_DAYS", "0")],
                "SCREENING_DAYS",
                "SCREENING_DAYS=0 must be between 1 and 30",
            ),
            (
                &[("SCREENING_DAYS", "two")],
                "SCREENING_DAYS",
                r#"SCREENING_DAYS="two" is not a valid number"#,
            ),
            (
                &[("SCREENING_MATCH", "ANY")],
                "SCREENING_MATCH",
                r#"SCREENING_MATCH="ANY" must be all or any"#,
            ),
            (
                &[("SCREENING_PARTNER_RULES", "[1]")],
                "SCREENING_PARTNER_RULES",
                "SCREENING_PARTNER_RULES is not valid: ",
            ),
            (
                &[("SCREENING_MIN_OPENS", "-1")],
                "SCREENING_MIN_OPENS",
                r#"SCREENING_MIN_OPENS="-1" is not a valid number"#,
            ),
        ];
        for (vars, name, message) in cases {
            let env = if vars
                .iter()
                .any(|(k, _)| *k == "TABLE_NAME" || *k == "QUEUE_URL")
            {
                Env::from_pairs(vars.iter().copied())
            } else {
                Env::from_pairs(DEPLOYED.iter().chain(vars).copied())
            };
            let err = ScreenerFunctionConfig::from_env(&env).unwrap_err();
            assert_eq!(err.name(), name, "{vars:?}");
            assert!(err.to_string().starts_with(message), "{err} for {vars:?}");
        }
    }
}
