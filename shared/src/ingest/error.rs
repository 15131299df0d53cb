//! Everything an ingest request can fail with, and the one place that maps it to an answer.

use lambda_http::http::StatusCode;

use crate::ports::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("payload of {size} bytes exceeds the queue's {max}-byte message limit")]
    TooLarge { size: usize, max: usize },
    /// Over the queue's size, but kept: queued in its parked reference form for an operator.
    #[error("payload of {size} bytes exceeds the queue's {max}-byte message limit; it was kept in reference form and parked for an operator, do not resend")]
    KeptOversize { size: usize, max: usize },
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("queue unavailable, retry later")]
    QueueUnavailable(String),
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge { .. } | IngestError::KeptOversize { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::QueueUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Short machine-readable reason, used in logs, metrics and the JSON error body.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Unauthorized(_) => "unauthorized",
            IngestError::BadRequest(_) => "malformed",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::KeptOversize { .. } => "too_large_kept",
            IngestError::MethodNotAllowed { .. } => "method_not_allowed",
            IngestError::QueueUnavailable(_) => "queue_unavailable",
        }
    }
}

impl From<QueueError> for IngestError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::TooLarge { size, max } => IngestError::TooLarge { size, max },
            QueueError::Unavailable(detail) => IngestError::QueueUnavailable(detail),
        }
    }
}
