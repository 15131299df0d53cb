//! `POST /webhooks/loops`: Standard Webhooks signature, then one envelope per delivery.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

use super::{enqueue, finish, single_header, IngestError};
use crate::core::envelope::{Envelope, Provider};
use crate::core::loops::{self, SigningKeys};
use crate::ports::EventQueue;

pub struct LoopsIngest {
    queue: Arc<dyn EventQueue>,
    keys: SigningKeys,
}

impl LoopsIngest {
    pub fn new(queue: Arc<dyn EventQueue>, keys: SigningKeys) -> Self {
        Self { queue, keys }
    }

    /// Reads `LOOPS_SIGNING_SECRET` (one or more `whsec_` secrets, comma-separated).
    pub fn from_env(queue: Arc<dyn EventQueue>) -> Result<Self, String> {
        let csv = std::env::var("LOOPS_SIGNING_SECRET").unwrap_or_default();
        let keys = SigningKeys::parse(&csv).map_err(|e| e.to_string())?;
        Ok(Self::new(queue, keys))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        finish("loops", started, self.accept(req).await)
    }

    async fn accept(&self, req: Request) -> Result<Vec<Envelope>, IngestError> {
        if req.method() != Method::POST {
            return Err(IngestError::MethodNotAllowed { allow: "POST" });
        }
        let h = req.headers();
        let id = single_header(h, "webhook-id");
        let body: &[u8] = req.body().as_ref();
        self.keys
            .verify(
                id,
                single_header(h, "webhook-timestamp"),
                single_header(h, "webhook-signature"),
                body,
                Utc::now().timestamp(),
            )
            .map_err(|e| IngestError::Unauthorized(e.to_string()))?;
        let event = loops::parse(body).map_err(|e| IngestError::BadRequest(e.to_string()))?;
        // Loops documents webhook-id as the id to deduplicate deliveries on.
        let dedupe_id = id
            .expect("verified requests carry a webhook-id")
            .to_string();
        let envelopes = vec![Envelope::new(Provider::Loops, dedupe_id, Utc::now(), event)];
        if let Some(kept) = enqueue(self.queue.as_ref(), &envelopes).await? {
            return Err(kept.into());
        }
        Ok(envelopes)
    }
}
