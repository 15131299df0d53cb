//! The pure core: no AWS SDK, no HTTP client, no clock reads (time is passed in).

pub mod backoff;
pub mod dedupe;
mod email;
pub mod envelope;
pub mod esputnik;
pub(crate) mod json_read;
mod kind;
pub(crate) mod lenient;
pub mod lifecycle;
pub mod loops;
pub(crate) mod mask;
pub mod outbound;
mod property;
pub mod reconcile;
pub mod rules;
pub mod secret;
pub mod secrets;
pub mod sender;
pub mod sparkloop;
pub mod sqs_text;
mod subscriber;
pub(crate) mod time;

pub use email::Email;
pub use envelope::{Envelope, Normalized, Provider, Subscriber};
pub use kind::{EsputnikKind, InternalKind, Kind, LoopsKind, SparkloopKind, PARKED, UNKNOWN};
pub use property::{Properties, Property};
pub use subscriber::{
    ReferralStatus, Signal, SignalEntry, StateWrite, SubscriberState, Transition, TransitionResult,
};
