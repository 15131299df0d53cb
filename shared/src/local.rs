//! What Lambda's SQS event source mapping does, for running the worker outside Lambda
//! (`sparkbridge dev`, load and chaos runs): receive a batch, build the `SqsEvent` Lambda
//! would deliver, invoke the same worker handler, delete what it did not report as failed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};

use crate::adapters::memory_queue::MemoryQueue;
use crate::worker::Worker;

/// One received message, whichever queue it came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub receipt: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receive_count: u32,
}

/// A queue call of a local poller that failed, with the queue's answer. What was not deleted
/// is delivered again (and deduped), as with Lambda's event source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("receive failed: {0}")]
    Receive(String),
    #[error("delete failed: {0}")]
    Delete(String),
}

/// Why one poll did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Receive(SourceError),
    /// The batch was handled; these of its messages stay on the queue.
    #[error("{failed} of {batch} deletes failed: {first}")]
    Deletes {
        failed: usize,
        batch: usize,
        first: SourceError,
    },
}

#[async_trait]
pub trait BatchSource: Send + Sync {
    /// Up to 10 messages; may wait a little when the queue is empty.
    async fn receive(&self) -> Result<Vec<Delivery>, SourceError>;
    async fn delete(&self, receipt: &str) -> Result<(), SourceError>;
}

/// Builds the event Lambda would deliver for these messages.
pub fn sqs_event(deliveries: &[Delivery]) -> SqsEvent {
    let mut ev = SqsEvent::default();
    for d in deliveries {
        let mut m = SqsMessage::default();
        m.message_id = Some(d.id.clone());
        m.receipt_handle = Some(d.receipt.clone());
        m.body = Some(d.body.clone());
        m.attributes.insert(
            "ApproximateReceiveCount".into(),
            d.receive_count.to_string(),
        );
        for (k, v) in &d.attributes {
            let mut a = SqsMessageAttribute::default();
            a.string_value = Some(v.clone());
            a.data_type = Some("String".into());
            m.message_attributes.insert(k.clone(), a);
        }
        ev.records.push(m);
    }
    ev
}

/// Processes one batch; returns how many messages it received.
pub async fn poll_once(
    source: &dyn BatchSource,
    worker: &Worker,
    invocation_budget: Duration,
) -> Result<usize, PollError> {
    let batch = source.receive().await.map_err(PollError::Receive)?;
    if batch.is_empty() {
        return Ok(0);
    }
    let ev = sqs_event(&batch);
    let deadline = chrono::Utc::now().timestamp_millis() + invocation_budget.as_millis() as i64;
    let resp = worker.handle(&ev, deadline).await;
    let failed: HashSet<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    // Every delete is tried: one that fails only means that message is delivered again
    // (and deduped), but stopping at it would redeliver the rest of the batch too.
    let mut errors = Vec::new();
    for d in &batch {
        if !failed.contains(d.id.as_str()) {
            if let Err(e) = source.delete(&d.receipt).await {
                errors.push(e);
            }
        }
    }
    let failed = errors.len();
    match errors.into_iter().next() {
        None => Ok(batch.len()),
        Some(first) => Err(PollError::Deletes {
            failed,
            batch: batch.len(),
            first,
        }),
    }
}

/// Runs pollers until the task is dropped. `pollers` stands for the event source mapping's
/// concurrent invocations.
pub async fn run(
    source: Arc<dyn BatchSource>,
    worker: Arc<Worker>,
    pollers: usize,
    invocation_budget: Duration,
) {
    let mut tasks = Vec::new();
    for _ in 0..pollers.max(1) {
        let (source, worker) = (source.clone(), worker.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = poll_once(source.as_ref(), &worker, invocation_budget).await {
                    tracing::warn!(error = %e, "poll failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// How long a poller of the in-memory queue waits, once a message is in, for the rest of a
/// batch of [`MAX_BATCH`]: the deployed event source waits up to a second
/// (`MaximumBatchingWindowInSeconds` in template.yaml), which would slow a local test for
/// nothing. Under load a poller takes full batches instead of one message each, so each
/// invocation's fixed cost is shared by ten events.
pub const MEMORY_BATCHING_WINDOW: Duration = Duration::from_millis(2);

/// The template's `BatchSize`.
pub const MAX_BATCH: usize = 10;

#[async_trait]
impl BatchSource for MemoryQueue {
    async fn receive(&self) -> Result<Vec<Delivery>, SourceError> {
        let mut got = MemoryQueue::receive(self, MAX_BATCH);
        if got.is_empty() {
            self.wait(Duration::from_millis(200)).await;
            got = MemoryQueue::receive(self, MAX_BATCH);
        }
        if !got.is_empty() {
            let until = tokio::time::Instant::now() + MEMORY_BATCHING_WINDOW;
            while got.len() < MAX_BATCH {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                self.wait(left).await;
                got.extend(MemoryQueue::receive(self, MAX_BATCH - got.len()));
            }
        }
        Ok(got
            .into_iter()
            .map(|m| Delivery {
                id: m.id,
                receipt: m.receipt,
                body: m.body,
                attributes: m.attributes,
                receive_count: m.receive_count,
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), SourceError> {
        MemoryQueue::delete(self, receipt);
        Ok(())
    }
}

/// Polls a real SQS queue (AWS or moto) with long polling.
pub struct SqsSource {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
    pub visibility_secs: i32,
}

#[async_trait]
impl BatchSource for SqsSource {
    async fn receive(&self) -> Result<Vec<Delivery>, SourceError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(MAX_BATCH as i32)
            .wait_time_seconds(2)
            .visibility_timeout(self.visibility_secs)
            .message_attribute_names("All")
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .map_err(|e| {
                SourceError::Receive(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Delivery {
                id: m.message_id().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                attributes: m
                    .message_attributes()
                    .map(|a| a.iter().filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_string()))).collect())
                    .unwrap_or_default(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), SourceError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| {
                SourceError::Delete(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{EventQueue, OutboundMessage};

    fn queue() -> MemoryQueue {
        MemoryQueue::new(Duration::from_secs(60), 5, 256 * 1024)
    }

    async fn send(q: &MemoryQueue, n: usize) {
        let messages = (0..n)
            .map(|i| OutboundMessage {
                body: format!("m{i}"),
                attributes: BTreeMap::new(),
            })
            .collect();
        q.enqueue(messages).await.expect("in memory");
    }

    #[tokio::test(start_paused = true)]
    async fn a_poller_takes_what_arrives_within_the_batching_window_in_one_batch() {
        let q = Arc::new(queue());
        send(&q, 1).await;
        let later = q.clone();
        tokio::spawn(async move {
            tokio::time::sleep(MEMORY_BATCHING_WINDOW / 2).await;
            send(&later, 3).await;
        });
        let got = BatchSource::receive(q.as_ref()).await.unwrap();
        assert_eq!(got.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_message_waits_no_longer_than_the_batching_window() {
        let q = queue();
        send(&q, 1).await;
        let start = tokio::time::Instant::now();
        let got = BatchSource::receive(&q).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(start.elapsed(), MEMORY_BATCHING_WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_taken_at_once_and_the_rest_left_for_the_next() {
        let q = queue();
        send(&q, MAX_BATCH + 2).await;
        let start = tokio::time::Instant::now();
        let got = BatchSource::receive(&q).await.unwrap();
        assert_eq!(got.len(), MAX_BATCH);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(BatchSource::receive(&q).await.unwrap().len(), 2);
    }
}
