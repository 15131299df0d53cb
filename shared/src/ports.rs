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
