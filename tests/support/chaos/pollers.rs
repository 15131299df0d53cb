//! Pollers: Lambda's SQS event source, with invocations killed at their deadline.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sparkbridge::local::{BatchSource, Delivery, SourceError};
use sparkbridge::worker::Worker;

#[derive(Default, Debug)]
pub struct PollStats {
    pub invocations: AtomicU64,
    pub records: AtomicU64,
    pub empty_polls: AtomicU64,
    pub poll_errors: AtomicU64,
    /// Invocations that ran past their budget and were dropped, as Lambda kills a timed-out
    /// invocation (nothing of that batch is deleted).
    pub killed: AtomicU64,
}

/// One invocation (see `Pollers::spawn`).
pub async fn invoke(
    source: &dyn BatchSource,
    worker: &Worker,
    budget: Duration,
    stats: &PollStats,
) {
    let batch = match source.receive().await {
        Ok(b) => b,
        Err(_) => {
            stats.poll_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    };
    if batch.is_empty() {
        stats.empty_polls.fetch_add(1, Ordering::Relaxed);
        return;
    }
    stats.invocations.fetch_add(1, Ordering::Relaxed);
    stats
        .records
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let ev = sparkbridge::local::sqs_event(&batch);
    let deadline = Utc::now().timestamp_millis() + budget.as_millis() as i64;
    let Ok(resp) = tokio::time::timeout(budget, worker.handle(&ev, deadline)).await else {
        stats.killed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let failed: BTreeSet<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for d in &batch {
        if !failed.contains(d.id.as_str()) && source.delete(&d.receipt).await.is_err() {
            stats.poll_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct Pollers {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<PollStats>,
}

impl Pollers {
    /// `n` concurrent pollers, each doing what Lambda's SQS event source mapping does:
    /// receive a batch, invoke the handler with a deadline `budget` away and **kill the
    /// invocation at that deadline** (nothing of the batch is deleted then), otherwise delete
    /// every record not reported failed, carrying on past a failed delete.
    ///
    /// Like `sparkbridge::local::poll_once`, but the kill is aligned with the handler's deadline
    /// (poll_once's budget also covers the receive, so a timer around it would let a handler
    /// outlive its deadline, and its leases, by up to the long-poll wait), and a failed
    /// delete does not skip the rest of the batch.
    pub fn spawn(
        source: Arc<dyn BatchSource>,
        worker: Arc<Worker>,
        n: usize,
        budget: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PollStats::default());
        let handles = (0..n)
            .map(|_| {
                let (source, worker, stop, stats) =
                    (source.clone(), worker.clone(), stop.clone(), stats.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        invoke(source.as_ref(), &worker, budget, &stats).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            handles,
            stats,
        }
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            let _ = h.await;
        }
    }

    pub fn line(&self) -> String {
        let s = &self.stats;
        format!(
            "invocations={} records={} empty_polls={} poll_errors={} killed_invocations={}",
            s.invocations.load(Ordering::Relaxed),
            s.records.load(Ordering::Relaxed),
            s.empty_polls.load(Ordering::Relaxed),
            s.poll_errors.load(Ordering::Relaxed),
            s.killed.load(Ordering::Relaxed),
        )
    }
}

/// An SQS batch source that deletes the way Lambda's event source mapping does: in
/// `DeleteMessageBatch` calls of up to 10 receipts (flushed when 10 are pending or every
/// 100 ms), not one `DeleteMessage` per record as `sparkbridge::local::SqsSource` does. A failed
/// flush only means the messages come back after their visibility timeout.
pub struct BatchDeleteSqsSource {
    receive: sparkbridge::local::SqsSource,
    pending: tokio::sync::Mutex<Vec<String>>,
    pub flushes: AtomicU64,
    pub flush_failures: AtomicU64,
}

impl BatchDeleteSqsSource {
    pub fn start(client: aws_sdk_sqs::Client, url: String, visibility_secs: i32) -> Arc<Self> {
        let me = Arc::new(Self {
            receive: sparkbridge::local::SqsSource {
                client,
                url,
                visibility_secs,
            },
            pending: tokio::sync::Mutex::new(Vec::new()),
            flushes: AtomicU64::new(0),
            flush_failures: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(me) = weak.upgrade() else { return };
                let batch: Vec<String> = std::mem::take(&mut *me.pending.lock().await);
                for chunk in batch.chunks(10) {
                    me.flush(chunk).await;
                }
            }
        });
        me
    }

    async fn flush(&self, receipts: &[String]) {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        let entries: Vec<_> = receipts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .ok()
            })
            .collect();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let out = self
            .receive
            .client
            .delete_message_batch()
            .queue_url(&self.receive.url)
            .set_entries(Some(entries))
            .send()
            .await;
        match out {
            Ok(o) if o.failed().is_empty() => {}
            _ => {
                self.flush_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[async_trait]
impl BatchSource for BatchDeleteSqsSource {
    async fn receive(&self) -> Result<Vec<Delivery>, SourceError> {
        self.receive.receive().await
    }

    async fn delete(&self, receipt: &str) -> Result<(), SourceError> {
        let full = {
            let mut p = self.pending.lock().await;
            p.push(receipt.to_string());
            if p.len() >= 10 {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        if let Some(batch) = full {
            self.flush(&batch).await;
        }
        Ok(())
    }
}
