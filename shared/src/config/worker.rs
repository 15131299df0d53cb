//! The worker function: its queues, table, API clients and [`WorkerConfig`].

use super::{
    ConfigError, Env, EspConfig, SecretsConfig, SparkLoopConfig, WorkQueueConfig, TABLE_NAME,
};
use crate::core::backoff::{BackoffPolicy, RetryBudget, MAX_RETRY_WINDOW_SECS};
use crate::core::rules::RulesConfig;
use crate::screener::ScreeningConfig;
use crate::worker::WorkerConfig;

/// `worker`: everything it reads at start-up.
#[derive(Debug, Clone)]
pub struct WorkerFunctionConfig {
    /// `TABLE_NAME` (required).
    pub table_name: String,
    pub queues: WorkQueueConfig,
    /// `SPARKLOOP_API_KEY` and the ESP's key, from the environment or `SECRETS_ARN`.
    pub secrets: SecretsConfig,
    pub sparkloop: SparkLoopConfig,
    pub esp: EspConfig,
    pub worker: WorkerConfig,
}

impl WorkerFunctionConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            queues: WorkQueueConfig::from_env(env)?,
            secrets: SecretsConfig::from_env(env)?,
            sparkloop: SparkLoopConfig::from_env(env),
            esp: EspConfig::from_env(env)?,
            worker: WorkerConfig::from_env(env)?,
        })
    }
}

impl WorkerConfig {
    /// `CONFIRM_SIGNUPS`, the screening periods (see [`ScreeningConfig::from_env`]),
    /// `RETRY_BASE_DELAY_SECS`, `RETRY_MAX_DELAY_SECS`, `RETRY_WINDOW_SECS`, `MAX_ATTEMPTS`,
    /// `REDRIVE_MAX_RECEIVE_COUNT`, `HTTP_TIMEOUT_SECS`, `DEDUPE_WINDOW_DAYS`,
    /// `WORKER_CONCURRENCY`, `LEASE_SECS`, `DETECT_EMAIL_CHANGES`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let base_secs = env.number("RETRY_BASE_DELAY_SECS", d.backoff.base_secs)?;
        Ok(Self {
            rules: RulesConfig {
                confirm_signups: env.flag("CONFIRM_SIGNUPS"),
                lifecycle: ScreeningConfig::from_env(env)?.lifecycle(),
            },
            backoff: BackoffPolicy {
                base_secs,
                cap_secs: env.number("RETRY_MAX_DELAY_SECS", d.backoff.cap_secs)?,
            },
            retry: retry_budget(env)?,
            call_reserve_ms: env.number("HTTP_TIMEOUT_SECS", 10i64)?.max(1) * 1000 + 2_000,
            settle_ms: d.settle_ms,
            window_secs: env.number("DEDUPE_WINDOW_DAYS", 30i64)?.max(1) * 86_400,
            concurrency: env.number("WORKER_CONCURRENCY", d.concurrency)?.max(1),
            lease_budget_ms: env.number("LEASE_SECS", 60i64)? * 1000,
            detect_email_changes: env.flag("DETECT_EMAIL_CHANGES"),
        })
    }
}

fn retry_budget(env: &Env) -> Result<RetryBudget, ConfigError> {
    let d = RetryBudget::default();
    let window_secs = env.number("RETRY_WINDOW_SECS", d.window_secs)?;
    if !(1..=MAX_RETRY_WINDOW_SECS).contains(&window_secs) {
        return Err(ConfigError::shown(
            "RETRY_WINDOW_SECS",
            window_secs,
            format!(
                "must be between 1 and {MAX_RETRY_WINDOW_SECS} (12 days: parked messages must \
                 reach the DLQ before SQS's 14-day retention ends)"
            ),
        ));
    }
    Ok(RetryBudget {
        window_secs,
        max_attempts: env.number("MAX_ATTEMPTS", d.max_attempts)?,
        redrive_max_receives: env.number("REDRIVE_MAX_RECEIVE_COUNT", d.redrive_max_receives)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    const DEPLOYED: [(&str, &str); 3] = [
        ("TABLE_NAME", "state"),
        ("QUEUE_URL", "https://sqs/q"),
        ("DLQ_URL", "https://sqs/dlq"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Env {
        Env::from_pairs(DEPLOYED.iter().chain(extra).copied())
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let cfg = WorkerFunctionConfig::from_env(&with(&[])).unwrap();
        assert_eq!(cfg.table_name, "state");
        assert_eq!(cfg.queues.dlq_url, "https://sqs/dlq");
        let (w, d) = (cfg.worker, WorkerConfig::default());
        assert_eq!(w.retry, d.retry);
        assert_eq!(w.backoff, d.backoff);
        assert_eq!(
            (
                w.call_reserve_ms,
                w.window_secs,
                w.concurrency,
                w.lease_budget_ms
            ),
            (12_000, 30 * 86_400, 10, 60_000)
        );
        assert!(!w.rules.confirm_signups && !w.detect_email_changes);
        assert_eq!(cfg.esp.name(), "none");
    }

    #[test]
    fn settings_are_read_and_clamped() {
        let w = WorkerConfig::from_env(&with(&[
            ("CONFIRM_SIGNUPS", "yes"),
            ("HTTP_TIMEOUT_SECS", "0"),
            ("DEDUPE_WINDOW_DAYS", "-3"),
            ("WORKER_CONCURRENCY", "0"),
            ("LEASE_SECS", "20"),
            ("RETRY_WINDOW_SECS", "3600"),
            ("MAX_ATTEMPTS", "7"),
            ("SCREENING_DAYS", "7"),
            ("DETECT_EMAIL_CHANGES", "true"),
        ]))
        .unwrap();
        assert!(w.rules.confirm_signups && w.detect_email_changes);
        assert_eq!(w.rules.lifecycle.screening_days, 7);
        assert_eq!(w.call_reserve_ms, 3_000, "at least 1 s of timeout");
        assert_eq!(w.window_secs, 86_400, "at least a day");
        assert_eq!(w.concurrency, 1);
        assert_eq!(w.lease_budget_ms, 20_000);
        assert_eq!((w.retry.window_secs, w.retry.max_attempts), (3600, 7));
    }

    #[test]
    fn a_missing_or_invalid_variable_is_named() {
        let cases: [(Vars, &str, &str); 8] = [
            (
                &[],
                "TABLE_NAME",
                "environment variable TABLE_NAME is not set",
            ),
            (
                &[("TABLE_NAME", "t"), ("QUEUE_URL", "q")],
                "DLQ_URL",
                "environment variable DLQ_URL is not set",
            ),
            (
                &[("MAX_ATTEMPTS", "many")],
                "MAX_ATTEMPTS",
                r#"MAX_ATTEMPTS="many" is not a valid number"#,
            ),
            (
                &[("RETRY_WINDOW_SECS", "0")],
                "RETRY_WINDOW_SECS",
                "RETRY_WINDOW_SECS=0 must be between 1 and 1036800 (12 days: parked messages \
                 must reach the DLQ before SQS's 14-day retention ends)",
            ),
            (
                &[("RETRY_WINDOW_SECS", "1036801")],
                "RETRY_WINDOW_SECS",
                "RETRY_WINDOW_SECS=1036801 must be between 1 and 1036800",
            ),
            (
                &[("SCREENING_DAYS", "31")],
                "SCREENING_DAYS",
                "SCREENING_DAYS=31 must be between 1 and 30",
            ),
            (
                &[("ESP", "mailchimp")],
                "ESP",
                r#"ESP="mailchimp" must be loops or esputnik"#,
            ),
            (
                &[("SECRETS_ARN", "arn"), ("SECRETS_TTL_SECS", "x")],
                "SECRETS_TTL_SECS",
                r#"SECRETS_TTL_SECS="x" is not a valid number"#,
            ),
        ];
        for (vars, name, message) in cases {
            let env = if vars.iter().any(|(k, _)| *k == "TABLE_NAME") || vars.is_empty() {
                Env::from_pairs(vars.iter().copied())
            } else {
                Env::from_pairs(DEPLOYED.iter().chain(vars).copied())
            };
            let err = WorkerFunctionConfig::from_env(&env).unwrap_err();
            assert_eq!(err.name(), name, "{vars:?}");
            assert!(err.to_string().starts_with(message), "{err} for {vars:?}");
        }
    }
}
