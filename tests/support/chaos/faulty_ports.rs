//! Fault-injecting and counting wrappers for the ports.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use sparkbridge::core::dedupe::{Acquire, LeaseRequest};
use sparkbridge::core::StateWrite;
use sparkbridge::local::{BatchSource, Delivery, SourceError};
use sparkbridge::ports::{
    EventQueue, IdempotencyStore, OutboundMessage, QueueError, StoreError, WorkQueue,
};

use super::faults::{lock, Counter, Faults};

/// Outcome counters of the idempotency store as the worker saw them, and a short history
/// per key for explaining anomalies.
#[derive(Default, Debug)]
pub struct StoreStats {
    pub acquire: Counter,
    pub complete: Counter,
    pub release: Counter,
    pub injected: Counter,
    inner: Mutex<StoreTrack>,
    /// The first few errors the store returned.
    pub errors: Mutex<Vec<String>>,
}

#[derive(Default, Debug)]
struct StoreTrack {
    /// Owner -> (key, whether its last `complete` failed).
    last_complete: HashMap<String, (String, bool)>,
    /// Key -> times acquired.
    acquired: HashMap<String, u32>,
    /// Key -> the live holder as the store decided it (owner, lease end in epoch ms).
    holder: HashMap<String, (String, i64)>,
    /// Keys granted to a second owner while the first held a live lease (never legal).
    double_grants: Vec<String>,
    /// Key -> (ms since start, what happened).
    history: HashMap<String, Vec<(u64, String)>>,
    start: Option<Instant>,
}

impl StoreTrack {
    fn note(&mut self, key: &str, what: String) {
        let start = *self.start.get_or_insert_with(Instant::now);
        self.history
            .entry(key.to_string())
            .or_default()
            .push((start.elapsed().as_millis() as u64, what));
    }
}

fn short(owner: &str) -> &str {
    &owner[..owner.len().min(8)]
}

impl StoreStats {
    /// Keys whose last completion attempt failed: the worker acknowledged them with
    /// "complete failed" and left the lease IN_PROGRESS until it expires.
    pub fn gave_up(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.inner)
            .last_complete
            .values()
            .filter(|(_, failed)| *failed)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// How often each key was acquired (>1: retried after a release, or taken over).
    pub fn acquisitions(&self) -> HashMap<String, u32> {
        lock(&self.inner).acquired.clone()
    }

    /// Keys the store granted to a second owner while another held a live lease.
    pub fn double_grants(&self) -> Vec<String> {
        lock(&self.inner).double_grants.clone()
    }

    /// What happened to `key`, one line per store call.
    pub fn history(&self, key: &str) -> String {
        lock(&self.inner)
            .history
            .get(key)
            .map(|h| {
                h.iter()
                    .map(|(ms, what)| format!("{ms}ms {what}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn error(&self, what: &str, e: &StoreError) {
        let mut errs = lock(&self.errors);
        if errs.len() < 10 {
            let text = e.to_string();
            errs.push(format!("{what}: {}", &text[..text.len().min(300)]));
        }
    }
}

/// Wraps an `IdempotencyStore`: counts outcomes, keeps a history per key, detects double
/// grants, and injects faults (before: nothing written; after: written, but the caller sees
/// `Unavailable`).
pub struct ChaosStore {
    inner: Arc<dyn IdempotencyStore>,
    faults: Mutex<Faults>,
    pub stats: Arc<StoreStats>,
    /// How many more times `complete` fails for a key (crash-window tests).
    pub fail_complete_for: Mutex<BTreeMap<String, u32>>,
}

impl ChaosStore {
    pub fn new(inner: Arc<dyn IdempotencyStore>, faults: Faults) -> Self {
        Self {
            inner,
            faults: Mutex::new(faults),
            stats: Arc::default(),
            fail_complete_for: Mutex::default(),
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    fn fault(&self) -> Option<bool> {
        lock(&self.faults).decide()
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault ({what})"))
}

fn fault_label(fault: Option<bool>) -> &'static str {
    match fault {
        Some(true) => " [fault before]",
        Some(false) => " [fault after]",
        None => "",
    }
}

#[async_trait]
impl IdempotencyStore for ChaosStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        let fault = self.fault();
        if fault == Some(true) {
            self.stats.injected.add("acquire.before");
            self.stats.acquire.add("err");
            lock(&self.stats.inner).note(key, "acquire err [fault before]".into());
            return Err(injected("before"));
        }
        let r = self.inner.acquire(key, req).await;
        {
            let mut t = lock(&self.stats.inner);
            let label = match &r {
                Ok(Acquire::Acquired) => {
                    *t.acquired.entry(key.to_string()).or_default() += 1;
                    let now = Utc::now().timestamp_millis();
                    if let Some((prev, until)) = t.holder.get(key).cloned() {
                        // 50 ms of slack for clocks read at different moments.
                        if now + 50 < until && prev != req.owner {
                            t.double_grants.push(key.to_string());
                        }
                    }
                    t.holder
                        .insert(key.to_string(), (req.owner.clone(), req.lease_until_ms));
                    format!(
                        "acquired by {} for {}ms",
                        short(&req.owner),
                        req.lease_until_ms - req.now_ms
                    )
                }
                Ok(Acquire::Duplicate { .. }) => "duplicate".into(),
                Ok(Acquire::InProgress { .. }) => "in_progress".into(),
                Ok(Acquire::Conflict { .. }) => "conflict".into(),
                Err(_) => "acquire err".into(),
            };
            t.note(key, format!("{label}{}", fault_label(fault)));
        }
        if let Err(e) = &r {
            self.stats.error("acquire", e);
        }
        if fault == Some(false) {
            self.stats.injected.add("acquire.after");
            self.stats.acquire.add("err");
            return Err(injected("after"));
        }
        self.stats.acquire.add(match &r {
            Ok(Acquire::Acquired) => "acquired",
            Ok(Acquire::Duplicate { .. }) => "duplicate",
            Ok(Acquire::InProgress { .. }) => "in_progress",
            Ok(Acquire::Conflict { .. }) => "conflict",
            Err(_) => "err",
        });
        r
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
        writes: &[StateWrite],
    ) -> Result<bool, StoreError> {
        let forced = match lock(&self.fail_complete_for).get_mut(key) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        let fault = if forced { Some(true) } else { self.fault() };
        self.forget_holder(key, owner, fault);
        let inner = match fault {
            Some(true) => None,
            _ => Some(
                self.inner
                    .complete(key, owner, keep_until, outcome, writes)
                    .await,
            ),
        };
        {
            let mut t = lock(&self.stats.inner);
            let label = match &inner {
                None => "complete err".to_string(),
                Some(Ok(true)) => "completed".into(),
                Some(Ok(false)) => "complete: lease lost".into(),
                Some(Err(_)) => "complete err".into(),
            };
            t.note(
                key,
                format!("{label} by {}{}", short(owner), fault_label(fault)),
            );
        }
        let before = if forced {
            "complete.forced"
        } else {
            "complete.before"
        };
        let r = self.settle(
            "complete",
            before,
            fault,
            inner,
            &self.stats.complete,
            "completed",
        );
        lock(&self.stats.inner)
            .last_complete
            .insert(owner.to_string(), (key.to_string(), r.is_err()));
        r
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let fault = self.fault();
        self.forget_holder(key, owner, fault);
        let inner = if fault == Some(true) {
            None
        } else {
            Some(self.inner.release(key, owner).await)
        };
        {
            let mut t = lock(&self.stats.inner);
            let label = match &inner {
                Some(Ok(true)) => "released",
                Some(Ok(false)) => "release: lease lost",
                _ => "release err",
            };
            t.note(
                key,
                format!("{label} by {}{}", short(owner), fault_label(fault)),
            );
        }
        self.settle(
            "release",
            "release.before",
            fault,
            inner,
            &self.stats.release,
            "released",
        )
    }
}

impl ChaosStore {
    /// Once the write may reach the store (no fault before it), the holder may be gone at any
    /// moment (the SDK may retry a write that already happened), so a later grant is no
    /// longer a double grant.
    fn forget_holder(&self, key: &str, owner: &str, fault: Option<bool>) {
        if fault != Some(true) {
            let mut t = lock(&self.stats.inner);
            if t.holder.get(key).is_some_and(|(o, _)| o == owner) {
                t.holder.remove(key);
            }
        }
    }

    /// The answer of a `complete` or `release`: the injected error (counted as `before`, or
    /// `<op>.after`) or the inner store's; errors recorded, outcomes counted.
    fn settle(
        &self,
        op: &'static str,
        before: &'static str,
        fault: Option<bool>,
        inner: Option<Result<bool, StoreError>>,
        outcomes: &Counter,
        done: &'static str,
    ) -> Result<bool, StoreError> {
        let r = match (fault, inner) {
            (Some(true), _) => {
                self.stats.injected.add(before);
                Err(injected("before"))
            }
            (Some(false), _) => {
                self.stats.injected.add(format!("{op}.after"));
                Err(injected("after"))
            }
            (None, Some(r)) => r,
            (None, None) => unreachable!("no fault means the inner store was called"),
        };
        if let Err(e) = &r {
            self.stats.error(op, e);
        }
        outcomes.add(match &r {
            Ok(true) => done,
            Ok(false) => "lease_lost",
            Err(_) => "err",
        });
        r
    }
}

/// Spreads keys over several stores (one DynamoDB table each). DynamoDB partitions by key
/// anyway; on moto this keeps each table small, because moto deep-copies the whole table on
/// every TransactWriteItems (O(table size), and not thread-safe: "dictionary changed size
/// during iteration" answers 500 under concurrency).
pub struct ShardedStore {
    pub shards: Vec<Arc<dyn IdempotencyStore>>,
}

impl ShardedStore {
    fn shard(&self, key: &str) -> &Arc<dyn IdempotencyStore> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() % self.shards.len() as u64) as usize]
    }
}

#[async_trait]
impl IdempotencyStore for ShardedStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        self.shard(key).acquire(key, req).await
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
        writes: &[StateWrite],
    ) -> Result<bool, StoreError> {
        self.shard(key)
            .complete(key, owner, keep_until, outcome, writes)
            .await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        self.shard(key).release(key, owner).await
    }
}

/// Wraps the worker's queue port (back-off, parking) with faults.
pub struct ChaosWorkQueue {
    pub inner: Arc<dyn WorkQueue>,
    pub faults: Faults,
    pub injected: Counter,
}

#[async_trait]
impl WorkQueue for ChaosWorkQueue {
    async fn delay(&self, receipt: &str, secs: u64) -> Result<(), QueueError> {
        match self.faults.decide() {
            Some(true) => {
                self.injected.add("delay.before");
                Err(QueueError::Unavailable("injected".into()))
            }
            Some(false) => {
                let _ = self.inner.delay(receipt, secs).await;
                self.injected.add("delay.after");
                Err(QueueError::Unavailable("injected".into()))
            }
            None => self.inner.delay(receipt, secs).await,
        }
    }

    async fn park(&self, message: OutboundMessage) -> Result<(), QueueError> {
        match self.faults.decide() {
            Some(true) => {
                self.injected.add("park.before");
                Err(QueueError::Unavailable("injected".into()))
            }
            Some(false) => {
                let _ = self.inner.park(message).await;
                self.injected.add("park.after");
                Err(QueueError::Unavailable("injected".into()))
            }
            None => self.inner.park(message).await,
        }
    }
}

/// Wraps the ingest side (`EventQueue`) with faults; the feeder retries like a provider
/// retries a webhook answered 503.
pub struct ChaosEventQueue {
    pub inner: Arc<dyn EventQueue>,
    pub faults: Faults,
    pub injected: Counter,
}

#[async_trait]
impl EventQueue for ChaosEventQueue {
    async fn enqueue(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        match self.faults.decide() {
            Some(true) => {
                self.injected.add("enqueue.before");
                Err(QueueError::Unavailable("injected".into()))
            }
            Some(false) => {
                let _ = self.inner.enqueue(messages).await;
                self.injected.add("enqueue.after");
                Err(QueueError::Unavailable("injected".into()))
            }
            None => self.inner.enqueue(messages).await,
        }
    }

    fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes()
    }
}

/// Wraps a `BatchSource`: counts receives and deletes, records the highest receive count,
/// injects faults, and can "crash" between the handler and the deletes (`skip_deletes`).
pub struct ChaosSource {
    pub inner: Arc<dyn BatchSource>,
    pub faults: Faults,
    pub received: AtomicU64,
    pub deleted: AtomicU64,
    pub max_receive_count: AtomicU64,
    pub injected: Counter,
    pub skip_deletes: AtomicBool,
}

impl ChaosSource {
    pub fn new(inner: Arc<dyn BatchSource>, faults: Faults) -> Self {
        Self {
            inner,
            faults,
            received: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            max_receive_count: AtomicU64::new(0),
            injected: Counter::default(),
            skip_deletes: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl BatchSource for ChaosSource {
    async fn receive(&self) -> Result<Vec<Delivery>, SourceError> {
        let fault = self.faults.decide();
        if fault == Some(true) {
            self.injected.add("receive.before");
            return Err(SourceError::Receive("injected (before)".into()));
        }
        let got = self.inner.receive().await?;
        if fault == Some(false) {
            self.injected.add("receive.after");
            return Err(SourceError::Receive("injected (after)".into()));
        }
        self.received.fetch_add(got.len() as u64, Ordering::Relaxed);
        for d in &got {
            self.max_receive_count
                .fetch_max(d.receive_count as u64, Ordering::Relaxed);
        }
        Ok(got)
    }

    async fn delete(&self, receipt: &str) -> Result<(), SourceError> {
        if self.skip_deletes.load(Ordering::SeqCst) {
            return Ok(());
        }
        let fault = self.faults.decide();
        if fault == Some(true) {
            self.injected.add("delete.before");
            return Err(SourceError::Delete("injected (before)".into()));
        }
        self.inner.delete(receipt).await?;
        if fault == Some(false) {
            self.injected.add("delete.after");
            return Err(SourceError::Delete("injected (after)".into()));
        }
        self.deleted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
