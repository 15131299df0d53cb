//! Shared AWS SDK configuration: built once per execution environment.

use aws_config::BehaviorVersion;

/// Loads region, credentials and `AWS_ENDPOINT_URL` (moto, LocalStack) from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}
