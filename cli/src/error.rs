//! What a `sparkbridge` command fails with: printed on one line (`error: ...`), exit code 1.

use sparkbridge::config::ConfigError;
use sparkbridge::core::esputnik::WebhookAuthConfigError;
use sparkbridge::core::loops::SigningKeysError;
use sparkbridge::core::sender::SendError;
use sparkbridge::ingest::sparkloop::NoToken;
use sparkbridge::ports::StoreError;
use sparkbridge::reconcile::ReconcileError;
use sparkbridge::screener::ScreenerError;
use sparkbridge::secrets::StartError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting is missing or malformed, as the functions would refuse it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    LoopsSecret(#[from] SigningKeysError),
    #[error(transparent)]
    EsputnikAuth(#[from] WebhookAuthConfigError),
    #[error(transparent)]
    SparkloopToken(#[from] NoToken),
    /// The secret in `SECRETS_ARN` cannot be used.
    #[error(transparent)]
    Secrets(#[from] StartError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Screener(#[from] ScreenerError),
    /// `send` and `smoke` cannot authenticate a delivery.
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An AWS call failed: the SDK's error with its context.
    #[error("{0}")]
    Aws(String),
    /// An HTTP request failed or was answered with something unexpected.
    #[error("{0}")]
    Http(String),
    /// A file, sample or answer is not what the command reads.
    #[error("{0}")]
    Unreadable(String),
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// The command ran and what it checks failed (`config check`, `smoke`, `send`, `dev`).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// An AWS SDK error, with the service's code and message.
    pub fn aws<E: std::error::Error + 'static>(e: E) -> Self {
        Self::Aws(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
    }
}
