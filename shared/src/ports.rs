//! Narrow capabilities the handlers depend on. AWS and HTTP adapters implement them, as do
//! the in-memory adapters behind `sparkbridge dev`.

use std::collections::BTreeMap;

use async_trait::async_trait;

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
    /// Marks COMPLETED if `owner` still holds the lease; `Ok(false)` when it was lost.
    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes the record if `owner` still holds the lease; `Ok(false)` when it was lost.
    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError>;
}

/// Per-subscriber facts the rules use.
#[async_trait]
pub trait SubscriberStore: Send + Sync {
    /// Adds one engagement signal (open, click, delivery) to the subscriber's counters.
    async fn record_signal(
        &self,
        email: &str,
        signal: crate::core::rules::Signal,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError>;
    /// Remembers `email` for an ESP contact id and returns the address seen before, if any.
    async fn observe_contact(
        &self,
        contact_key: &str,
        email: &str,
    ) -> Result<Option<String>, StoreError>;
}

/// SparkLoop's API, reduced to the calls the custom integration needs.
#[async_trait]
pub trait SparkLoopApi: Send + Sync {
    async fn call(
        &self,
        target: &str,
        call: &crate::core::outbound::SparkLoopCall,
    ) -> crate::core::outbound::CallOutcome;
}

/// What the worker does with queue messages besides acknowledging them.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sets when the message becomes visible again (queue-driven back-off).
    async fn delay(&self, receipt_handle: &str, secs: u64) -> Result<(), QueueError>;
    /// Puts a message on the dead-letter queue, with its error in the attributes.
    async fn park(&self, message: OutboundMessage) -> Result<(), QueueError>;
}
