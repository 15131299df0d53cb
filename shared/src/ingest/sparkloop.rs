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
    token: Secret,
}

impl SparkloopIngest {
    pub fn new(queue: Arc<dyn EventQueue>, token: Secret) -> Self {
        Self { queue, token }
    }

    /// Reads `SPARKLOOP_WEBHOOK_TOKEN`; refuses to start without it.
    pub fn from_env(queue: Arc<dyn EventQueue>) -> Result<Self, String> {
        let token = Secret::from_opt(std::env::var("SPARKLOOP_WEBHOOK_TOKEN").ok())
            .ok_or("SPARKLOOP_WEBHOOK_TOKEN is not set (copy it from SparkLoop's Webhooks page)")?;
        Ok(Self::new(queue, token))
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
            Some(t) if !self.token.matches(t.as_bytes()) => {
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
        enqueue(self.queue.as_ref(), &envelopes).await?;
        Ok(envelopes)
    }
}
