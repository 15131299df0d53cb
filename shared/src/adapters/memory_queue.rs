//! An in-memory queue with SQS semantics that matter to the bridge: visibility timeouts,
//! receive counts and redrive to a dead-letter queue. The embedded default of `sparkbridge dev`.
//! Messages are stored as SQS would accept them (`sqs::sqs_safe`), so dev sees what a
//! deployment sees.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::adapters::sqs::sqs_safe;
use crate::ports::{EventQueue, OutboundMessage, QueueError};

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receive_count: u32,
    visible_at: Instant,
    receipt: Option<String>,
}

/// A message handed to a consumer; it stays invisible until deleted or its timeout ends.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub receive_count: u32,
}

#[derive(Default)]
struct State {
    seq: u64,
    /// Oldest first. Received messages stay in place, so the ones in flight sit near the
    /// front: finding and removing one by its receipt is cheap however long the backlog.
    main: VecDeque<StoredMessage>,
    dlq: Vec<StoredMessage>,
}

pub struct MemoryQueue {
    state: Mutex<State>,
    arrived: Notify,
    visibility: Duration,
    max_receive_count: u32,
    max_bytes: usize,
}

impl MemoryQueue {
    pub fn new(visibility: Duration, max_receive_count: u32, max_bytes: usize) -> Self {
        Self {
            state: Mutex::default(),
            arrived: Notify::new(),
            visibility,
            max_receive_count,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receives up to `max` visible messages. A message received more than the redrive limit
    /// moves to the DLQ instead, as SQS does.
    pub fn receive(&self, max: usize) -> Vec<ReceivedMessage> {
        let now = Instant::now();
        let mut st = self.lock();
        let st = &mut *st;
        let mut out = Vec::new();
        let mut i = 0;
        while i < st.main.len() && out.len() < max {
            if st.main[i].visible_at > now {
                i += 1;
                continue;
            }
            if st.main[i].receive_count >= self.max_receive_count {
                if let Some(mut m) = st.main.remove(i) {
                    m.receipt = None;
                    st.dlq.push(m);
                }
                continue;
            }
            st.seq += 1;
            let receipt = format!("rcpt-{}", st.seq);
            let m = &mut st.main[i];
            m.receive_count += 1;
            m.visible_at = now + self.visibility;
            m.receipt = Some(receipt.clone());
            out.push(ReceivedMessage {
                id: m.id.clone(),
                receipt,
                body: m.body.clone(),
                attributes: m.attributes.clone(),
                receive_count: m.receive_count,
            });
            i += 1;
        }
        out
    }

    /// Waits until a message may have become available, or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.arrived.notified()).await;
    }

    pub fn delete(&self, receipt: &str) -> bool {
        let mut st = self.lock();
        // A receipt names one message (each receive issues a new one).
        match st
            .main
            .iter()
            .position(|m| m.receipt.as_deref() == Some(receipt))
        {
            Some(i) => st.main.remove(i).is_some(),
            None => false,
        }
    }

    pub fn change_visibility(&self, receipt: &str, secs: u64) -> bool {
        let mut st = self.lock();
        match st
            .main
            .iter_mut()
            .find(|m| m.receipt.as_deref() == Some(receipt))
        {
            Some(m) => {
                m.visible_at = Instant::now() + Duration::from_secs(secs);
                true
            }
            None => false,
        }
    }

    pub fn send_to_dlq(&self, message: OutboundMessage) {
        let message = sqs_safe(message);
        let mut st = self.lock();
        st.seq += 1;
        let id = format!("dlq-{}", st.seq);
        st.dlq.push(StoredMessage {
            id,
            body: message.body,
            attributes: message.attributes,
            receive_count: 0,
            visible_at: Instant::now(),
            receipt: None,
        });
    }

    pub fn dlq(&self) -> Vec<StoredMessage> {
        self.lock().dlq.clone()
    }

    pub fn remove_from_dlq(&self, id: &str) -> Option<StoredMessage> {
        let mut st = self.lock();
        let pos = st.dlq.iter().position(|m| m.id == id)?;
        Some(st.dlq.remove(pos))
    }

    /// Messages on the main queue, visible or not.
    pub fn depth(&self) -> usize {
        self.lock().main.len()
    }

    /// `messages` are already as SQS would accept them (`enqueue` made them so).
    fn push(&self, messages: Vec<OutboundMessage>) {
        let mut st = self.lock();
        let now = Instant::now();
        for m in messages {
            st.seq += 1;
            let id = format!("msg-{}", st.seq);
            st.main.push_back(StoredMessage {
                id,
                body: m.body,
                attributes: m.attributes,
                receive_count: 0,
                visible_at: now,
                receipt: None,
            });
        }
        drop(st);
        self.arrived.notify_waiters();
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn enqueue(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        // sized as SQS would see them: escaping makes a body longer
        let messages: Vec<OutboundMessage> = messages.into_iter().map(sqs_safe).collect();
        if let Some(m) = messages.iter().find(|m| m.size() > self.max_bytes) {
            return Err(QueueError::TooLarge {
                size: m.size(),
                max: self.max_bytes,
            });
        }
        self.push(messages);
        Ok(())
    }

    fn max_message_bytes(&self) -> usize {
        self.max_bytes
    }
}

#[async_trait]
impl crate::ports::WorkQueue for MemoryQueue {
    async fn delay(&self, receipt_handle: &str, secs: u64) -> Result<(), QueueError> {
        self.change_visibility(receipt_handle, secs);
        Ok(())
    }

    async fn park(&self, message: OutboundMessage) -> Result<(), QueueError> {
        self.send_to_dlq(message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> OutboundMessage {
        OutboundMessage {
            body: body.into(),
            attributes: BTreeMap::from([("kind".into(), "k".into())]),
        }
    }

    #[tokio::test]
    async fn visibility_receive_count_and_redrive() {
        let q = MemoryQueue::new(Duration::from_secs(60), 2, 1_000);
        q.enqueue(vec![msg("a"), msg("b")]).await.unwrap();
        let got = q.receive(10);
        assert_eq!(got.len(), 2);
        assert!(q.receive(10).is_empty(), "in flight messages are invisible");
        assert!(q.delete(&got[0].receipt));
        assert!(!q.delete(&got[0].receipt), "a receipt works once");
        assert!(q.change_visibility(&got[1].receipt, 0));
        let again = q.receive(10);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
        assert_eq!(again[0].attributes["kind"], "k");
        assert!(
            !q.change_visibility(&got[1].receipt, 0),
            "old receipts expire on redelivery"
        );
        q.change_visibility(&again[0].receipt, 0);
        assert!(
            q.receive(10).is_empty(),
            "third receive redrives to the DLQ"
        );
        assert_eq!(q.dlq().len(), 1);
        assert_eq!(q.dlq()[0].body, "b");
        assert_eq!(q.depth(), 0);
        let id = q.dlq()[0].id.clone();
        assert!(q.remove_from_dlq(&id).is_some());
        assert!(q.dlq().is_empty());
    }

    #[tokio::test]
    async fn deletes_take_only_their_message_and_keep_the_backlog_in_order() {
        let q = MemoryQueue::new(Duration::from_secs(60), 5, 1_000);
        let bodies: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        q.enqueue(bodies.iter().map(|b| msg(b)).collect())
            .await
            .unwrap();
        let first = q.receive(10);
        // deleted out of order, as concurrent records finish
        for m in first.iter().rev().step_by(2) {
            assert!(q.delete(&m.receipt));
        }
        assert_eq!(q.depth(), 45);
        let next: Vec<String> = q.receive(50).into_iter().map(|m| m.body).collect();
        assert_eq!(next, bodies[10..].to_vec(), "the backlog, oldest first");
        let kept: Vec<&str> = first
            .iter()
            .rev()
            .skip(1)
            .step_by(2)
            .map(|m| m.receipt.as_str())
            .collect();
        for r in kept {
            assert!(q.delete(r), "the undeleted in-flight ones are still there");
        }
        assert_eq!(q.depth(), 40);
    }

    #[tokio::test]
    async fn refuses_oversized_messages() {
        let q = MemoryQueue::new(Duration::from_secs(1), 3, 10);
        assert!(matches!(
            q.enqueue(vec![msg("x".repeat(100).as_str())]).await,
            Err(QueueError::TooLarge { .. })
        ));
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn stores_messages_as_sqs_would_accept_them() {
        let q = MemoryQueue::new(Duration::from_secs(60), 3, 1_000);
        let raw = OutboundMessage {
            body: "{\"name\":\"x\u{ffff}\"}".into(),
            attributes: BTreeMap::from([("kind".into(), "k\u{fffe}".into())]),
        };
        q.enqueue(vec![raw.clone()]).await.unwrap();
        let got = q.receive(10);
        assert_eq!(got[0].body, r#"{"name":"x\uffff"}"#);
        assert_eq!(got[0].attributes["kind"], "k\u{fffd}");
        crate::ports::WorkQueue::park(&q, raw).await.unwrap();
        assert_eq!(q.dlq()[0].body, r#"{"name":"x\uffff"}"#);
        assert_eq!(q.dlq()[0].attributes["kind"], "k\u{fffd}");
        // the size limit applies to the message as stored: 3 bytes become 6
        let tight = MemoryQueue::new(Duration::from_secs(60), 3, "\"\\uffff\"".len() + 3);
        let m = |body: &str| OutboundMessage {
            body: body.into(),
            attributes: BTreeMap::new(),
        };
        assert!(tight.enqueue(vec![m("\"\u{ffff}\"")]).await.is_ok());
        assert!(matches!(
            tight.enqueue(vec![m("\"\u{ffff}\u{ffff}\"")]).await,
            Err(QueueError::TooLarge { .. })
        ));
    }
}
