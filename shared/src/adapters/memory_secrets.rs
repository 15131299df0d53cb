//! An in-memory secret: its text can be replaced (a rotation) or made unreadable (an outage),
//! and it counts its reads. Used by `sparkbridge config check` (the secret read once, checked
//! for every function) and by tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::core::secret::Secret;
use crate::ports::{SecretReadError, SecretSource};

#[derive(Debug, Default)]
pub struct MemorySecret {
    /// The text, or `None` while reads fail.
    text: Mutex<Option<Secret>>,
    reads: AtomicUsize,
}

impl MemorySecret {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: Mutex::new(Some(Secret::new(text))),
            reads: AtomicUsize::new(0),
        }
    }

    /// Replaces the text (`None`: reads fail from now on).
    pub fn set(&self, text: Option<&str>) {
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = text.map(Secret::new);
    }

    /// How many reads were made.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretSource for MemorySecret {
    async fn read(&self) -> Result<Secret, SecretReadError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.text
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| SecretReadError::Unavailable("unavailable (in-memory outage)".into()))
    }
}
