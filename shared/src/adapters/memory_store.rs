//! In-memory store with the same semantics as the DynamoDB adapter (for `sparkbridge dev`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::dedupe::{decide, Acquire, LeaseRequest, Record, Status};
use crate::core::reconcile::Checkpoint;
use crate::core::Email;
use crate::core::{StateWrite, SubscriberState, Transition, TransitionResult};
use crate::ports::{ContactAddress, IdempotencyStore, StoreError, SubscriberStore};

#[derive(Default)]
struct Inner {
    leases: HashMap<String, Record>,
    subscribers: HashMap<String, SubscriberState>,
    /// Emails in the screening index, with their deadline.
    screening: HashMap<String, DateTime<Utc>>,
    contacts: HashMap<String, ContactAddress>,
    left: HashMap<String, DateTime<Utc>>,
    checkpoints: HashMap<String, Checkpoint>,
    /// Lease count at which expired records are next swept.
    sweep_at: usize,
}

/// Fewest leases worth a sweep.
const MIN_SWEEP: usize = 1024;

impl Inner {
    /// Drops records past their window, as DynamoDB's TTL does, once the map has doubled since
    /// the last sweep (amortized O(1)): a long `sparkbridge dev` run stays bounded by the
    /// dedupe window instead of growing with every event.
    fn sweep_expired(&mut self, now_ms: i64) {
        if self.leases.len() < self.sweep_at {
            return;
        }
        self.leases.retain(|_, r| !r.expired(now_ms));
        self.sweep_at = (self.leases.len() * 2).max(MIN_SWEEP);
    }
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lease(&self, key: &str) -> Option<Record> {
        self.lock().leases.get(key).cloned()
    }

    /// How many dedupe records are held, expired ones not yet swept included.
    pub fn lease_count(&self) -> usize {
        self.lock().leases.len()
    }
}

fn line(at: DateTime<Utc>, what: &str) -> String {
    format!("{} {what}", at.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

fn entry<'a>(inner: &'a mut Inner, email: &str) -> &'a mut SubscriberState {
    let key = Email::new(email).into_string();
    inner
        .subscribers
        .entry(key.clone())
        .or_insert_with(|| SubscriberState {
            email: key,
            ..Default::default()
        })
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        let mut inner = self.lock();
        inner.sweep_expired(req.now_ms);
        let decision = decide(inner.leases.get(key), req);
        if decision == Acquire::Acquired {
            inner.leases.insert(key.to_string(), req.record());
        }
        Ok(decision)
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        _outcome: &str,
        writes: &[StateWrite],
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.leases.get_mut(key) {
            Some(r) if r.status == Status::InProgress && r.owner == owner => {
                r.status = Status::Completed;
                r.expires_at = keep_until;
            }
            _ => return Ok(false),
        }
        for w in writes {
            match w {
                StateWrite::Signal { email, entry: e } => {
                    entry(&mut inner, email).signals.push(e.clone())
                }
                StateWrite::EspStatus { email, status, at } => {
                    let s = entry(&mut inner, email);
                    s.esp_status = Some(status.clone());
                    s.history.push(line(*at, &format!("esp {status}")));
                }
                StateWrite::ContactEmail {
                    contact_key,
                    email,
                    at,
                } => {
                    let newer = inner
                        .contacts
                        .get(contact_key)
                        .and_then(|c| c.at)
                        .is_some_and(|stored| stored > *at);
                    if !newer {
                        let address = ContactAddress {
                            email: email.clone(),
                            at: Some(*at),
                        };
                        inner.contacts.insert(contact_key.clone(), address);
                    }
                }
            }
        }
        Ok(true)
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.leases.get(key) {
            Some(r) if r.status == Status::InProgress && r.owner == owner => {
                inner.leases.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl SubscriberStore for MemoryStore {
    async fn apply_transition(&self, t: &Transition) -> Result<TransitionResult, StoreError> {
        let mut inner = self.lock();
        let s = entry(&mut inner, &t.email);
        if let Some(old) = s.referral_status {
            if old == t.status {
                return Ok(TransitionResult::Same);
            }
            if old.rank() > t.status.rank() {
                return Ok(TransitionResult::Stale(old));
            }
        }
        s.referral_status = Some(t.status);
        s.sparkloop_id = t.sparkloop_id.clone().or(s.sparkloop_id.take());
        s.campaign_id = t.campaign_id.clone().or(s.campaign_id.take());
        s.partner_id = t.partner_id.clone().or(s.partner_id.take());
        s.source = t.source.clone().or(s.source.take());
        s.history
            .push(line(t.at, &format!("{} ({})", t.status.as_str(), t.cause)));
        let email = s.email.clone();
        match t.screening {
            Some((start, deadline)) => {
                s.screening_started_at = Some(start);
                s.screening_deadline = Some(deadline);
                inner.screening.insert(email, deadline);
            }
            None => {
                inner.screening.remove(&email);
            }
        }
        Ok(TransitionResult::Applied)
    }

    async fn get(&self, email: &str) -> Result<Option<SubscriberState>, StoreError> {
        Ok(self
            .lock()
            .subscribers
            .get(Email::new(email).as_str())
            .cloned())
    }

    async fn screening_candidates(
        &self,
        due_before: DateTime<Utc>,
    ) -> Result<Vec<SubscriberState>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .screening
            .iter()
            .filter(|(_, deadline)| **deadline <= due_before)
            .filter_map(|(email, _)| inner.subscribers.get(email).cloned())
            .collect())
    }

    async fn mark_screened(&self, email: &str, note: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = Email::new(email).into_string();
        inner.screening.remove(&key);
        if let Some(s) = inner.subscribers.get_mut(&key) {
            s.screened = Some(note.to_string());
            s.history
                .push(line(Utc::now(), &format!("screened: {note}")));
        }
        Ok(())
    }

    async fn contact_email(&self, contact_key: &str) -> Result<Option<ContactAddress>, StoreError> {
        Ok(self.lock().contacts.get(contact_key).cloned())
    }

    async fn left_at(&self, email: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.lock().left.get(Email::new(email).as_str()).copied())
    }

    async fn mark_left(&self, email: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let mark = inner
            .left
            .entry(Email::new(email).into_string())
            .or_insert(at);
        *mark = (*mark).max(at);
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(name).cloned())
    }

    async fn save_checkpoint(&self, name: &str, cp: Option<&Checkpoint>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match cp {
            Some(cp) => inner.checkpoints.insert(name.to_string(), cp.clone()),
            None => inner.checkpoints.remove(name),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: usize, now_ms: i64, window_s: i64) -> LeaseRequest {
        LeaseRequest {
            owner: format!("owner-{key}"),
            payload_hash: "h".into(),
            now_ms,
            lease_until_ms: now_ms + 30_000,
            expires_at: now_ms / 1000 + window_s,
        }
    }

    async fn complete_all(store: &MemoryStore, keys: std::ops::Range<usize>, now_ms: i64) {
        for k in keys {
            let key = format!("k{k}");
            let req = request(k, now_ms, 60);
            assert_eq!(store.acquire(&key, &req).await.unwrap(), Acquire::Acquired);
            assert!(store
                .complete(&key, &req.owner, req.expires_at, "ok", &[])
                .await
                .unwrap());
        }
    }

    #[tokio::test]
    async fn expired_records_are_swept_and_live_ones_kept() {
        let store = MemoryStore::new();
        let t0 = 1_700_000_000_000;
        complete_all(&store, 0..3 * MIN_SWEEP, t0).await;
        assert_eq!(store.lease_count(), 3 * MIN_SWEEP);
        // two minutes on, the first batch is past its 60 s window: the next sweep drops it
        let t1 = t0 + 120_000;
        complete_all(&store, 3 * MIN_SWEEP..6 * MIN_SWEEP + 1, t1).await;
        assert!(
            store.lease_count() <= 3 * MIN_SWEEP + 1,
            "{}",
            store.lease_count()
        );
        // a live record is still a duplicate after the sweep
        let live = format!("k{}", 3 * MIN_SWEEP);
        assert_eq!(
            store.acquire(&live, &request(0, t1, 60)).await.unwrap(),
            Acquire::Duplicate { other_bytes: None }
        );
    }
}
