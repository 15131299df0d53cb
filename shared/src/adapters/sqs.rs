//! SQS adapter for the queue ports.

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;

use crate::ports::{EventQueue, OutboundMessage, QueueError};

/// SQS's historical per-message and per-batch limit. AWS raised the maximum to 1 MiB in
/// 2025; `MAX_MESSAGE_BYTES` lets a deployment with a larger queue setting use it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;
const MAX_BATCH_ENTRIES: usize = 10;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
    max_bytes: usize,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>, max_bytes: usize) -> Self {
        Self {
            client,
            url: url.into(),
            max_bytes,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send_chunk(&self, chunk: &[OutboundMessage]) -> Result<(), QueueError> {
        let mut pending: Vec<(String, &OutboundMessage)> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m))
            .collect();
        // One retry of entries SQS refused for its own reasons (throttling, internal errors);
        // the SDK already retried the call as a whole.
        for attempt in 0..2 {
            let entries = pending
                .iter()
                .map(|(id, m)| entry(id, m))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                })?;
            let failed: Vec<_> = out.failed().iter().collect();
            if failed.is_empty() {
                return Ok(());
            }
            let reason = failed
                .iter()
                .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            if attempt == 1 || failed.iter().any(|f| f.sender_fault()) {
                return Err(QueueError::Unavailable(format!(
                    "SendMessageBatch refused {} entries: {reason}",
                    failed.len()
                )));
            }
            let failed_ids: Vec<String> = failed.iter().map(|f| f.id().to_string()).collect();
            pending.retain(|(id, _)| failed_ids.contains(id));
        }
        unreachable!("the loop returns on its second attempt")
    }
}

fn entry(id: &str, m: &OutboundMessage) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let mut b = SendMessageBatchRequestEntry::builder()
        .id(id)
        .message_body(&m.body);
    for (k, v) in &m.attributes {
        let attr = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        b = b.message_attributes(k, attr);
    }
    b.build()
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}

/// Groups messages into SendMessageBatch calls: at most 10 entries and `max` bytes each.
pub fn chunks(messages: &[OutboundMessage], max: usize) -> Vec<&[OutboundMessage]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let size = m.size();
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > max) {
            out.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn enqueue(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        if let Some(m) = messages.iter().find(|m| m.size() > self.max_bytes) {
            return Err(QueueError::TooLarge {
                size: m.size(),
                max: self.max_bytes,
            });
        }
        for chunk in chunks(&messages, self.max_bytes) {
            self.send_chunk(chunk).await?;
        }
        Ok(())
    }

    fn max_message_bytes(&self) -> usize {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> OutboundMessage {
        OutboundMessage {
            body: "x".repeat(n),
            attributes: Default::default(),
        }
    }

    #[test]
    fn chunking_respects_count_and_bytes() {
        let ten: Vec<_> = (0..25).map(|_| msg(10)).collect();
        let sizes: Vec<_> = chunks(&ten, 1_000).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<_> = (0..5).map(|_| msg(400)).collect();
        let sizes: Vec<_> = chunks(&big, 1_000).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(chunks(&[], 1_000).is_empty());
        let one = [msg(1_000)];
        assert_eq!(chunks(&one, 1_000).len(), 1);
    }
}

impl SqsQueue {
    /// `QUEUE_URL` (required) and `MAX_MESSAGE_BYTES` (default 262144) from the environment.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Result<Self, String> {
        let url = crate::adapters::aws::required_env("QUEUE_URL")?;
        let max = crate::config::number("MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)?;
        Ok(Self::new(Client::new(aws), url, max))
    }
}

/// The worker's side of SQS: back-off through visibility, and parking on the DLQ.
#[derive(Clone, Debug)]
pub struct SqsWorkQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
}

impl SqsWorkQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
        }
    }

    /// `QUEUE_URL` and `DLQ_URL` from the environment.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Result<Self, String> {
        let queue_url = crate::adapters::aws::required_env("QUEUE_URL")?;
        let dlq_url = crate::adapters::aws::required_env("DLQ_URL")?;
        Ok(Self::new(Client::new(aws), queue_url, dlq_url))
    }
}

#[async_trait]
impl crate::ports::WorkQueue for SqsWorkQueue {
    async fn delay(&self, receipt_handle: &str, secs: u64) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs.min(crate::core::backoff::SQS_MAX_VISIBILITY_SECS) as i32)
            .send()
            .await
            .map_err(|e| {
                QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(())
    }

    async fn park(&self, message: OutboundMessage) -> Result<(), QueueError> {
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&message.body);
        for (k, v) in &message.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| QueueError::Unavailable(e.to_string()))?;
            req = req.message_attributes(k, attr);
        }
        req.send().await.map_err(|e| {
            QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
        })?;
        Ok(())
    }
}
