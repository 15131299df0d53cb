//! Worker settings from the environment (names as deployed).

use crate::config::{flag, number};
use crate::core::backoff::BackoffPolicy;
use crate::core::rules::RulesConfig;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub rules: RulesConfig,
    pub backoff: BackoffPolicy,
    /// `MAX_ATTEMPTS`: after this many receives a retryable failure is parked with its error.
    pub max_attempts: u32,
    /// `DEDUPE_WINDOW_DAYS` (default 30): how long a processed id is remembered.
    pub window_secs: i64,
    /// Records of one batch processed at once (`WORKER_CONCURRENCY`, default 10).
    pub concurrency: usize,
    /// Longest a lease is held when the invocation deadline is further away.
    pub lease_budget_ms: i64,
    /// `DETECT_EMAIL_CHANGES`: remember each ESP contact's address and pass changes to
    /// SparkLoop. Costs one consistent DynamoDB read per event (and a transactional write when
    /// the address is new or changed), so off by default.
    pub detect_email_changes: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            rules: RulesConfig::default(),
            backoff: BackoffPolicy::default(),
            max_attempts: 8,
            window_secs: 30 * 86_400,
            concurrency: 10,
            lease_budget_ms: 60_000,
            detect_email_changes: false,
        }
    }
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, String> {
        let d = Self::default();
        let base_secs = number("RETRY_BASE_DELAY_SECS", d.backoff.base_secs)?;
        Ok(Self {
            rules: RulesConfig {
                confirm_signups: flag("CONFIRM_SIGNUPS"),
                lifecycle: crate::screener::ScreeningConfig::from_env()?.lifecycle(),
            },
            backoff: BackoffPolicy {
                base_secs,
                cap_secs: number("RETRY_MAX_DELAY_SECS", d.backoff.cap_secs)?,
            },
            max_attempts: number("MAX_ATTEMPTS", d.max_attempts)?.max(1),
            window_secs: number("DEDUPE_WINDOW_DAYS", 30i64)?.max(1) * 86_400,
            concurrency: number("WORKER_CONCURRENCY", d.concurrency)?.max(1),
            lease_budget_ms: number("LEASE_SECS", 60i64)? * 1000,
            detect_email_changes: flag("DETECT_EMAIL_CHANGES"),
        })
    }
}
