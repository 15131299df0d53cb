//! `GET|POST /webhooks/esputnik`: Basic auth (or `?token=`), then one envelope per array
//! element. eSputnik holds back every later event until a request gets 200, so once a request
//! authenticates, nothing in its body can make it fail: what cannot be understood is parked.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use chrono_tz::Tz;
use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};

use super::{empty_ok, enqueue, finish, single_header, IngestError};
use crate::config::EsputnikWebhookConfig;
use crate::core::envelope::{Envelope, Provider};
use crate::core::esputnik::{self, WebhookAuth, WebhookAuthConfigError};
use crate::core::secrets::{
    ESPUTNIK_WEBHOOK_PASSWORD, ESPUTNIK_WEBHOOK_TOKEN, ESPUTNIK_WEBHOOK_USER,
};
use crate::ports::EventQueue;
use crate::secrets::{Live, Secrets};

pub struct EsputnikIngest {
    queue: Arc<dyn EventQueue>,
    /// Read per request: a rotation in the secret reaches it without a restart.
    auth: Live<WebhookAuth>,
    tz: Tz,
}

impl EsputnikIngest {
    pub fn new(queue: Arc<dyn EventQueue>, auth: WebhookAuth, tz: Tz) -> Self {
        Self {
            queue,
            auth: Live::fixed(auth),
            tz,
        }
    }

    /// The webhook credentials (`ESPUTNIK_WEBHOOK_USER`/`_PASSWORD`, `ESPUTNIK_WEBHOOK_TOKEN`)
    /// from `secrets`, read again whenever the secret changes; `webhook` says whether none
    /// may be configured and which time zone eSputnik's local times are in.
    pub fn from_secrets(
        queue: Arc<dyn EventQueue>,
        secrets: &Secrets,
        webhook: EsputnikWebhookConfig,
    ) -> Result<Self, WebhookAuthConfigError> {
        let allow_unauthenticated = webhook.allow_unauthenticated;
        let auth = secrets.live(move |v| {
            WebhookAuth::new(
                v.get(ESPUTNIK_WEBHOOK_USER).cloned(),
                v.get(ESPUTNIK_WEBHOOK_PASSWORD).cloned(),
                v.get(ESPUTNIK_WEBHOOK_TOKEN).cloned(),
                allow_unauthenticated,
            )
        })?;
        Ok(Self {
            queue,
            auth,
            tz: webhook.timezone,
        })
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        // eSputnik checks the URL with a GET when the webhook is saved.
        if req.method() == Method::GET {
            tracing::info!(provider = "esputnik", outcome = "url_check", "webhook");
            return empty_ok();
        }
        let started = Instant::now();
        finish("esputnik", started, self.accept(req).await)
    }

    async fn accept(&self, req: Request) -> Result<Vec<Envelope>, IngestError> {
        if req.method() != Method::POST {
            return Err(IngestError::MethodNotAllowed { allow: "GET, POST" });
        }
        let token = req
            .query_string_parameters_ref()
            .and_then(|q| q.first("token").map(str::to_string));
        self.auth
            .get()
            .await
            .check(
                single_header(req.headers(), "authorization"),
                token.as_deref(),
            )
            .map_err(|e| IngestError::Unauthorized(e.to_string()))?;
        let received_at = Utc::now();
        let envelopes: Vec<Envelope> = esputnik::split(req.body().as_ref(), self.tz)
            .into_iter()
            .map(|el| Envelope::new(Provider::Esputnik, el.dedupe_id, received_at, el.event))
            .collect();
        // an element over the queue's size is kept in reference form and still answered 200
        enqueue(self.queue.as_ref(), &envelopes).await?;
        Ok(envelopes)
    }
}
