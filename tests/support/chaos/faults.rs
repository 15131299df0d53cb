//! Fault dice and named counters, shared by every chaos tool.

use std::collections::BTreeMap;
use std::sync::Mutex;

pub(super) fn roll() -> f64 {
    rand::random::<f64>()
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Probabilities of a fault per call: `before` the effect (the call does nothing) and `after`
/// it (the effect happened, the caller sees an error).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub before: f64,
    pub after: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        before: 0.0,
        after: 0.0,
    };

    /// `Some(true)`: fail before; `Some(false)`: fail after; `None`: no fault.
    pub(super) fn decide(&self) -> Option<bool> {
        let r = roll();
        if r < self.before {
            Some(true)
        } else if r < self.before + self.after {
            Some(false)
        } else {
            None
        }
    }
}

/// Named counters.
#[derive(Default, Debug)]
pub struct Counter(Mutex<BTreeMap<String, u64>>);

impl Counter {
    pub fn add(&self, key: impl Into<String>) {
        self.add_n(key, 1);
    }

    pub fn add_n(&self, key: impl Into<String>, n: u64) {
        *lock(&self.0).entry(key.into()).or_default() += n;
    }

    pub fn get(&self, key: &str) -> u64 {
        lock(&self.0).get(key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        lock(&self.0).values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        lock(&self.0).clone()
    }

    /// `a=1 b=2`, for report lines.
    pub fn line(&self) -> String {
        let snap = self.snapshot();
        if snap.is_empty() {
            return "-".into();
        }
        snap.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
