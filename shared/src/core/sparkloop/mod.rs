//! SparkLoop webhooks: a static `SparkLoop-Token` and `type`-tagged JSON objects.

mod event;
mod webhook;

pub use event::{parse, ParseError, KNOWN_TYPES};
pub use webhook::{Campaign, Partner, Person, Reward, SparkloopEvent, Webhook};
