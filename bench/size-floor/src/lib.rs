//! What the size-floor binaries share: reading the Lambda event and the queue's address.
//! Kept to the standard library and serde_json so it adds nothing to what is weighed.

use serde_json::Value;

/// The environment variable naming the queue every SQS variant sends to.
pub const QUEUE_URL_VAR: &str = "QUEUE_URL";

/// Why a binary cannot start or answer.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// A variable the Lambda environment always sets (or the stack must set) is missing.
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
}

/// Reads a required environment variable.
pub fn env(name: &'static str) -> Result<String, FloorError> {
    std::env::var(name).map_err(|_| FloorError::MissingEnv(name))
}

/// The body of an API Gateway / function URL event, or the whole event as JSON when it has none.
pub fn body(event: &Value) -> String {
    match event.get("body") {
        Some(Value::String(s)) => s.clone(),
        _ => event.to_string(),
    }
}
