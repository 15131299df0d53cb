//! DynamoDB adapter: idempotency leases and subscriber facts in one table (`pk` string key).
//!
//! One table, one sparse index (`by_deadline`: `gsi1pk`, `gsi1sk`). Items:
//! - `idem#<provider>#<dedupe id>`: lease records (get/put/update/delete by key);
//! - `sub#<email>`: the subscriber (referral status, screening dates, counters, history);
//!   while a referral is screened it carries `gsi1pk = "screening"`, `gsi1sk = deadline`, so
//!   the screener queries the due ones without scanning;
//! - `sig#<email>#...`: one engagement signal each (`gsi1pk = "sig#<email>"`, `gsi1sk = time`),
//!   read per subscriber through the index, expired by TTL after 90 days;
//! - `contact#<provider>#<id>`: the last address of an ESP contact (email-change detection).
//!
//! One table because every access is by key or through the one index, and one table means
//! one IAM grant, one PITR setting and one TTL attribute.

mod keys;
mod lease;
mod subscriber;
#[cfg(feature = "dev")]
mod table;
mod writes;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::Client;

use crate::ports::StoreError;

pub const INDEX: &str = "by_deadline";

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

/// A conditional write's answer: `Ok(true)` when it landed, `Ok(false)` when its condition
/// refused it (the lease was lost, or a newer value is already there).
fn conditional<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(se))
            if se.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table named `table` (`TABLE_NAME`, read by `crate::config`); `aws` is loaded once
    /// and shared by every client.
    pub fn from_conf(aws: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(aws), table)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
