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
use crate::core::secrets::SPARKLOOP_WEBHOOK_TOKEN;
use crate::core::sparkloop;
use crate::ports::EventQueue;
use crate::secrets::{Live, Secrets};

pub struct SparkloopIngest {
    queue: Arc<dyn EventQueue>,
    /// One token, or several during a rotation. Read per request: a rotation in the secret
    /// reaches it without a restart.
    tokens: Live<Vec<Secret>>,
}

impl SparkloopIngest {
    pub fn new(queue: Arc<dyn EventQueue>, token: Secret) -> Self {
        Self {
            queue,
            tokens: Live::fixed(vec![token]),
        }
    }

    /// Reads `SPARKLOOP_WEBHOOK_TOKEN` (comma-separated to accept an old and a new token
    /// while rotating) from `secrets`, and again whenever the secret changes; refuses to
    /// start without one.
    pub fn from_secrets(queue: Arc<dyn EventQueue>, secrets: &Secrets) -> Result<Self, NoToken> {
        let tokens = secrets.live(|v| parse_tokens(v.text(SPARKLOOP_WEBHOOK_TOKEN)))?;
        Ok(Self { queue, tokens })
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
            Some(t) if !token_matches(&self.tokens.get().await, t.as_bytes()) => {
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

/// `SPARKLOOP_WEBHOOK_TOKEN` holds no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SPARKLOOP_WEBHOOK_TOKEN is not set (copy it from SparkLoop's Webhooks page)")]
pub struct NoToken;

/// The configured tokens (comma-separated); none is an error.
fn parse_tokens(raw: &str) -> Result<Vec<Secret>, NoToken> {
    let tokens: Vec<Secret> = raw
        .split(',')
        .filter_map(|t| Secret::from_opt(Some(t.to_string())))
        .collect();
    if tokens.is_empty() {
        return Err(NoToken);
    }
    Ok(tokens)
}

/// Compares with every configured token (no early exit), each in constant time.
fn token_matches(tokens: &[Secret], presented: &[u8]) -> bool {
    tokens
        .iter()
        .fold(false, |found, t| found | t.matches(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_tokens_during_rotation() {
        let tokens = parse_tokens(" old , new,").unwrap();
        assert!(token_matches(&tokens, b"old"));
        assert!(token_matches(&tokens, b"new"));
        assert!(!token_matches(&tokens, b"other"));
        assert!(!token_matches(&tokens, b"old,new"));
        assert_eq!(parse_tokens(" , ").unwrap_err(), NoToken);
    }
}
