//! `POST /webhooks/sparkloop`: `SparkLoop-Token`, then one envelope per event; answers 200
//! with an empty body, as SparkLoop requires.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

use super::{enqueue, finish, single_header, IngestError};
use crate::core::envelope::{Envelope, Provider};
use crate::core::secret::Secret;
use crate::core::sparkloop;
use crate::ports::EventQueue;

pub struct SparkloopIngest {
    queue: Arc<dyn EventQueue>,
    /// One token, or several during a rotation.
    tokens: Vec<Secret>,
}

impl SparkloopIngest {
    pub fn new(queue: Arc<dyn EventQueue>, token: Secret) -> Self {
        Self {
            queue,
            tokens: vec![token],
        }
    }

    /// Reads `SPARKLOOP_WEBHOOK_TOKEN` (comma-separated to accept an old and a new token
    /// while rotating); refuses to start without one.
    pub fn from_env(queue: Arc<dyn EventQueue>) -> Result<Self, String> {
        let raw = std::env::var("SPARKLOOP_WEBHOOK_TOKEN").unwrap_or_default();
        let tokens: Vec<Secret> = raw
            .split(',')
            .filter_map(|t| Secret::from_opt(Some(t.to_string())))
            .collect();
        if tokens.is_empty() {
            return Err(
                "SPARKLOOP_WEBHOOK_TOKEN is not set (copy it from SparkLoop's Webhooks page)"
                    .into(),
            );
        }
        Ok(Self { queue, tokens })
    }

    /// Compares with every configured token (no early exit), each in constant time.
    fn token_matches(&self, presented: &[u8]) -> bool {
        self.tokens
            .iter()
            .fold(false, |found, t| found | t.matches(presented))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        finish("sparkloop", started, self.accept(req).await)
    }

    async fn accept(&self, req: Request) -> Result<Vec<Envelope>, IngestError> {
        if req.method() != Method::POST {
            return Err(IngestError::MethodNotAllowed { allow: "POST" });
        }
        match single_header(req.headers(), "sparkloop-token") {
            None => {
                return Err(IngestError::Unauthorized(
                    "missing SparkLoop-Token header".into(),
                ))
            }
            Some(t) if !self.token_matches(t.as_bytes()) => {
                return Err(IngestError::Unauthorized("wrong SparkLoop-Token".into()))
            }
            Some(_) => {}
        }
        let (dedupe_id, event) = sparkloop::parse(req.body().as_ref())
            .map_err(|e| IngestError::BadRequest(e.to_string()))?;
        let envelopes = vec![Envelope::new(
            Provider::Sparkloop,
            dedupe_id,
            Utc::now(),
            event,
        )];
        if let Some(kept) = enqueue(self.queue.as_ref(), &envelopes).await? {
            return Err(kept.into());
        }
        Ok(envelopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory_queue::MemoryQueue;

    #[test]
    fn several_tokens_during_rotation() {
        let queue = Arc::new(MemoryQueue::new(
            std::time::Duration::from_secs(1),
            3,
            1_000,
        ));
        let ingest = SparkloopIngest {
            queue,
            tokens: vec![Secret::new("old"), Secret::new("new")],
        };
        assert!(ingest.token_matches(b"old"));
        assert!(ingest.token_matches(b"new"));
        assert!(!ingest.token_matches(b"other"));
        assert!(!ingest.token_matches(b"old,new"));
    }
}
