//! The pure core: no AWS SDK, no HTTP client, no clock reads (time is passed in).

pub mod backoff;
pub mod dedupe;
pub mod email;
pub mod envelope;
pub mod esputnik;
pub mod kind;
pub mod lenient;
pub mod lifecycle;
pub mod loops;
pub mod mask;
pub mod outbound;
pub mod property;
pub mod reconcile;
pub mod rules;
pub mod secret;
pub mod secrets;
pub mod sender;
pub mod sparkloop;
pub mod sqs_text;
pub mod subscriber;
pub mod time;

pub use envelope::{Envelope, Normalized, Provider, Subscriber};
pub use kind::Kind;
