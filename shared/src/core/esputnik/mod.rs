//! eSputnik (Yespo): Basic-auth or URL-token webhooks carrying arrays of activity events.

mod activity;
mod auth;
mod event;

pub use activity::{Activity, EsputnikEvent};
pub use auth::{AuthError, WebhookAuth, WebhookAuthConfigError};
pub use event::{split, Element, KNOWN_STATUSES};
