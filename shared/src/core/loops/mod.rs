//! Loops: Standard Webhooks signatures and the webhook payloads.

mod event;
mod signature;
mod webhook;

pub(crate) use event::trim_json_whitespace;
pub use event::{parse, ParseError, KNOWN_EVENTS};
pub use signature::{SignatureError, SigningKeys, SigningKeysError, TOLERANCE_SECS};
pub use webhook::{EmailSend, LoopsEvent, LoopsPayload};
