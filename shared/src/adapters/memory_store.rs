//! In-memory store with the same semantics as the DynamoDB adapter (for `sparkbridge dev`).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::dedupe::{decide, Acquire, LeaseRequest, Record, Status};
use crate::core::rules::Signal;
use crate::ports::{IdempotencyStore, StoreError, SubscriberStore};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub deliveries: u64,
    pub opens: u64,
    pub clicks: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    leases: Mutex<HashMap<String, Record>>,
    counters: Mutex<HashMap<String, Counters>>,
    contacts: Mutex<HashMap<String, String>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lease(&self, key: &str) -> Option<Record> {
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    pub fn counters(&self, email: &str) -> Counters {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&email.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let decision = decide(leases.get(key), req);
        if decision == Acquire::Acquired {
            leases.insert(key.to_string(), req.record());
        }
        Ok(decision)
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        _outcome: &str,
    ) -> Result<bool, StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get_mut(key) {
            Some(r) if r.status == Status::InProgress && r.owner == owner => {
                r.status = Status::Completed;
                r.expires_at = keep_until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get(key) {
            Some(r) if r.status == Status::InProgress && r.owner == owner => {
                leases.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl SubscriberStore for MemoryStore {
    async fn record_signal(
        &self,
        email: &str,
        signal: Signal,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut all = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let c = all.entry(email.to_ascii_lowercase()).or_default();
        match signal {
            Signal::Delivery => c.deliveries += 1,
            Signal::Open => c.opens += 1,
            Signal::Click => c.clicks += 1,
        }
        Ok(())
    }

    async fn observe_contact(
        &self,
        contact_key: &str,
        email: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .contacts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(contact_key.to_string(), email.to_string()))
    }
}
