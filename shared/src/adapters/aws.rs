//! Shared AWS SDK configuration: built once per execution environment.

use aws_config::BehaviorVersion;

/// Loads region, credentials and `AWS_ENDPOINT_URL` (moto, LocalStack) from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Reads a required environment variable with a message that names it.
pub fn required_env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("environment variable {name} is not set"))
}
