//! SparkLoop webhooks: a static `SparkLoop-Token` and `type`-tagged JSON objects.

mod event;

pub use event::{parse, ParseError, KNOWN_TYPES};
