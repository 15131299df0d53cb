//! SQS adapter for the queue ports.

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;

use crate::core::sqs_text;
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

/// `message` as SQS accepts it: in the body (always a JSON envelope) every character SQS
/// refuses is written as its JSON escape, so the body still reads as the same JSON value; in
/// attribute values it is replaced by U+FFFD (`core::sqs_text`). Every send goes through
/// this, so no provider text (an authenticated body with a raw U+FFFF, an error message
/// quoting one) can make SQS refuse a message and ingest answer 503 for the same bytes forever.
pub fn sqs_safe(message: OutboundMessage) -> OutboundMessage {
    let clean = sqs_text::is_clean(&message.body)
        && message.attributes.values().all(|v| sqs_text::is_clean(v));
    if clean {
        return message;
    }
    OutboundMessage {
        body: sqs_text::into_json_body(message.body),
        attributes: message
            .attributes
            .into_iter()
            .map(|(k, v)| (k, sqs_text::into_attribute_value(v)))
            .collect(),
    }
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
        // sized as sent: escaping makes a body longer
        let messages: Vec<OutboundMessage> = messages.into_iter().map(sqs_safe).collect();
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

    #[test]
    fn messages_are_made_sqs_safe_before_sending() {
        let m = OutboundMessage {
            body: "{\"payload\":{\"name\":\"a\u{ffff}b\u{fffe}\"}}".into(),
            attributes: [
                ("kind".to_string(), "unknown".to_string()),
                (
                    "parked_reason".to_string(),
                    "bad \u{ffff} \u{1}".to_string(),
                ),
            ]
            .into(),
        };
        let safe = sqs_safe(m.clone());
        assert_eq!(safe.body, r#"{"payload":{"name":"a\uffffb\ufffe"}}"#);
        assert_eq!(safe.attributes["kind"], "unknown");
        assert_eq!(safe.attributes["parked_reason"], "bad \u{fffd} \u{fffd}");
        let a: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        let b: serde_json::Value = serde_json::from_str(&safe.body).unwrap();
        assert_eq!(a, b, "the body means the same JSON");
        assert_eq!(sqs_safe(safe.clone()), safe, "nothing left to change");
    }
}

impl SqsQueue {
    /// The queue `cfg` names (`QUEUE_URL`, `MAX_MESSAGE_BYTES`); `aws` is loaded once and
    /// shared by every client.
    pub fn from_conf(aws: &aws_config::SdkConfig, cfg: &crate::config::QueueConfig) -> Self {
        Self::new(
            Client::new(aws),
            cfg.queue_url.clone(),
            cfg.max_message_bytes,
        )
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

    /// The queues `cfg` names (`QUEUE_URL`, `DLQ_URL`).
    pub fn from_conf(aws: &aws_config::SdkConfig, cfg: &crate::config::WorkQueueConfig) -> Self {
        Self::new(Client::new(aws), cfg.queue_url.clone(), cfg.dlq_url.clone())
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
        let message = sqs_safe(message);
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
