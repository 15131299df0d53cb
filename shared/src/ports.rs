//! Narrow capabilities the handlers depend on. AWS and HTTP adapters implement them, as do
//! the in-memory adapters behind `sparkbridge dev`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::outbound::CallOutcome;
use crate::core::reconcile::{Checkpoint, EspContact, ReferralPage};

/// One message for the queue: the serialized envelope plus attributes an operator can read
/// without parsing the body (provider, kind, dedupe id, park reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
}

impl OutboundMessage {
    /// Bytes SQS counts against its message-size limit (body plus attribute names and values).
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + "String".len())
                .sum::<usize>()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("message of {size} bytes exceeds the queue's {max}-byte limit")]
    TooLarge { size: usize, max: usize },
}

/// Where ingest puts events. `enqueue` returns only once every message is durably accepted.
#[async_trait]
pub trait EventQueue: Send + Sync {
    async fn enqueue(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError>;
    /// The largest message the queue accepts.
    fn max_message_bytes(&self) -> usize;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is malformed: {0}")]
    Corrupt(String),
}

/// Dedupe leases: acquire, then complete or release, both conditional on the owner.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn acquire(
        &self,
        key: &str,
        req: &crate::core::dedupe::LeaseRequest,
    ) -> Result<crate::core::dedupe::Acquire, StoreError>;
    /// Marks COMPLETED if `owner` still holds the lease, together with `writes` (atomically:
    /// both or neither); `Ok(false)` when the lease was lost and nothing was written.
    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
        writes: &[crate::core::StateWrite],
    ) -> Result<bool, StoreError>;
    /// Deletes the record if `owner` still holds the lease; `Ok(false)` when it was lost.
    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError>;
    /// Acquires the lease and applies `t` in one write: `Ok(true)` when both happened,
    /// `Ok(false)` when either was refused (or the store cannot combine them) and nothing was
    /// written, so the caller acquires and transitions one at a time.
    async fn acquire_applying(
        &self,
        _key: &str,
        _req: &crate::core::dedupe::LeaseRequest,
        _t: &crate::core::Transition,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// An ESP contact's address as last recorded, and the time of the event that carried it
/// (`None` for records written before times were kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactAddress {
    pub email: String,
    pub at: Option<DateTime<Utc>>,
}

/// The subscriber records: referral status, screening, engagement, history.
#[async_trait]
pub trait SubscriberStore: Send + Sync {
    /// Records a referral status change if it moves forward (see `core::lifecycle`).
    async fn apply_transition(
        &self,
        t: &crate::core::Transition,
    ) -> Result<crate::core::TransitionResult, StoreError>;
    async fn get(&self, email: &str) -> Result<Option<crate::core::SubscriberState>, StoreError>;
    /// Pending referrals whose screening ends before `due_before`, without scanning the table.
    async fn screening_candidates(
        &self,
        due_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::core::SubscriberState>, StoreError>;
    /// Takes a referral out of the screening index once a decision is queued.
    async fn mark_screened(&self, email: &str, note: &str) -> Result<(), StoreError>;
    /// The address last recorded for an ESP contact id (`StateWrite::ContactEmail`), if any.
    async fn contact_email(&self, contact_key: &str) -> Result<Option<ContactAddress>, StoreError>;
    /// When the subscriber last left (unsubscribed, bounced hard, reported spam, was deleted),
    /// as marked before the SparkLoop unsubscribe is made.
    async fn left_at(&self, email: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Marks that the subscriber left at `at`; never moves an existing mark back in time.
    async fn mark_left(&self, email: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Where an interrupted reconcile run resumes.
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError>;
    /// Saves (or with `None` clears) the checkpoint.
    async fn save_checkpoint(&self, name: &str, cp: Option<&Checkpoint>) -> Result<(), StoreError>;
}

/// The ESP's contacts API (Loops or eSputnik), reduced to what the lifecycle needs.
#[async_trait]
pub trait EspApi: Send + Sync {
    fn name(&self) -> &'static str;
    async fn call(
        &self,
        call: &crate::core::lifecycle::EspCall,
    ) -> crate::core::outbound::CallOutcome;
    /// The contact's subscription state, for the reconciler.
    async fn lookup(&self, email: &str) -> Result<EspContact, CallOutcome>;
    /// The URL `lookup` reads, without its query (no address, no key), for reports.
    fn lookup_url(&self) -> Option<String> {
        None
    }
    /// One cheap authenticated read that proves the URL and the key; `None` when there is
    /// nothing to call (dry run, no key).
    async fn check_access(&self) -> Option<AccessCheck> {
        None
    }
}

/// The answer to one cheap authenticated read made to check a client's URL and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCheck {
    /// The URL called (the key is never part of it).
    pub url: String,
    pub outcome: Result<(), CallOutcome>,
}

/// SparkLoop's API, reduced to the calls the custom integration needs.
#[async_trait]
pub trait SparkLoopApi: Send + Sync {
    async fn call(
        &self,
        target: &str,
        call: &crate::core::outbound::SparkLoopCall,
    ) -> crate::core::outbound::CallOutcome;
    /// One page of referrals, newest first (`GET /v2/subscribers?type=referrals`).
    async fn referrals(&self, page: u32, per_page: u32) -> Result<ReferralPage, CallOutcome>;
    /// The URL `referrals` reads, without its query (no key), for reports.
    fn referrals_url(&self) -> Option<String> {
        None
    }
    /// One cheap authenticated read that proves the URL and the key; `None` when there is
    /// nothing to call (dry run, no key).
    async fn check_access(&self) -> Option<AccessCheck> {
        None
    }
}

/// What the worker does with queue messages besides acknowledging them.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sets when the message becomes visible again (queue-driven back-off).
    async fn delay(&self, receipt_handle: &str, secs: u64) -> Result<(), QueueError>;
    /// Puts a message on the dead-letter queue, with its error in the attributes.
    async fn park(&self, message: OutboundMessage) -> Result<(), QueueError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretReadError {
    /// The secret could not be read (access, network, no such secret). The message is the
    /// service's error, which never contains the secret's value.
    #[error("cannot read the secret: {0}")]
    Unavailable(String),
}

/// Where the secret settings are kept (one Secrets Manager secret, `SECRETS_ARN`).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's current text (a JSON object of variable names to values).
    async fn read(&self) -> Result<crate::core::secret::Secret, SecretReadError>;
}
