//! Secrets Manager adapter for the secret-settings port: one `GetSecretValue` per read.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_secretsmanager::Client;

use crate::core::secret::Secret;
use crate::ports::{SecretReadError, SecretSource};

/// Reads the current version (`AWSCURRENT`) of one secret, by ARN or name.
#[derive(Clone, Debug)]
pub struct SecretsManagerSource {
    client: Client,
    secret_id: String,
}

impl SecretsManagerSource {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }

    pub fn from_conf(conf: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        Self::new(Client::new(conf), secret_id)
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn read(&self) -> Result<Secret, SecretReadError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                // The service's code and message (AccessDeniedException, ResourceNotFound...),
                // or what kept the call from being answered.
                SecretReadError::Unavailable(match e.as_service_error() {
                    Some(service) => format!(
                        "{}: {}",
                        service.code().unwrap_or("error"),
                        service.message().unwrap_or("no message")
                    ),
                    None => DisplayErrorContext(&e).to_string(),
                })
            })?;
        out.secret_string().map(Secret::new).ok_or_else(|| {
            SecretReadError::Unavailable(
                "the secret has no SecretString (a binary secret is not read)".into(),
            )
        })
    }
}
