//! `POST /webhooks/loops`: Standard Webhooks signature, then one envelope per delivery.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

use super::{enqueue, finish, single_header, IngestError};
use crate::core::envelope::{Envelope, Provider};
use crate::core::loops::{self, SigningKeys, SigningKeysError};
use crate::core::secrets::LOOPS_SIGNING_SECRET;
use crate::ports::EventQueue;
use crate::secrets::{Live, Secrets};

pub struct LoopsIngest {
    queue: Arc<dyn EventQueue>,
    /// Read per request: a rotation in the secret reaches it without a restart.
    keys: Live<SigningKeys>,
}

impl LoopsIngest {
    pub fn new(queue: Arc<dyn EventQueue>, keys: SigningKeys) -> Self {
        Self {
            queue,
            keys: Live::fixed(keys),
        }
    }

    /// Reads `LOOPS_SIGNING_SECRET` (one or more `whsec_` secrets, comma-separated) from
    /// `secrets`, and again whenever the secret changes.
    pub fn from_secrets(
        queue: Arc<dyn EventQueue>,
        secrets: &Secrets,
    ) -> Result<Self, SigningKeysError> {
        let keys = secrets.live(|v| SigningKeys::parse(v.text(LOOPS_SIGNING_SECRET)))?;
        Ok(Self { queue, keys })
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
            .get()
            .await
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
