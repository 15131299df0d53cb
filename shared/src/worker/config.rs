//! Worker settings (read from the environment by `crate::config`, names as deployed).

use crate::core::backoff::{BackoffPolicy, RetryBudget};
use crate::core::rules::RulesConfig;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub rules: RulesConfig,
    pub backoff: BackoffPolicy,
    /// `RETRY_WINDOW_SECS` (72 h), `MAX_ATTEMPTS` (0 = no count limit) and
    /// `REDRIVE_MAX_RECEIVE_COUNT`: how long a retryable failure is retried before parking.
    pub retry: RetryBudget,
    /// Time kept free before the invocation's deadline to start a record or a call: the HTTP
    /// client's timeout (`HTTP_TIMEOUT_SECS`) plus a margin to settle and answer.
    pub call_reserve_ms: i64,
    /// Kept free after a call to settle the record and answer Lambda (1.5 s): a call still
    /// running this close to the deadline is given up and retried.
    pub settle_ms: i64,
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
            retry: RetryBudget::default(),
            call_reserve_ms: 12_000,
            settle_ms: 1_500,
            window_secs: 30 * 86_400,
            concurrency: 10,
            lease_budget_ms: 60_000,
            detect_email_changes: false,
        }
    }
}
