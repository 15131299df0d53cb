//! DynamoDB adapter: idempotency leases and subscriber facts in one table (`pk` string key).
//!
//! Items: `idem#<provider>#<dedupe id>` (lease records) and `contact#<provider>#<id>`,
//! `sub#<email>` (subscriber facts). One table, because every access is a single-key read or
//! write and one table means one IAM grant, one PITR setting and one TTL attribute.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::core::dedupe::{decide, Acquire, LeaseRequest, Record, Status};
use crate::core::rules::Signal;
use crate::ports::{IdempotencyStore, StoreError, SubscriberStore};

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

fn idem_key(key: &str) -> String {
    format!("idem#{key}")
}

fn parse_record(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let get_s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let get_n = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let status = get_s("status")
        .and_then(|s| Status::parse(&s))
        .ok_or_else(|| StoreError::Corrupt("status".into()))?;
    Ok(Record {
        status,
        owner: get_s("owner").unwrap_or_default(),
        lease_until_ms: get_n("lease_until_ms").unwrap_or(0),
        payload_hash: get_s("payload_hash").unwrap_or_default(),
        expires_at: get_n("expires_at").ok_or_else(|| StoreError::Corrupt("expires_at".into()))?,
    })
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// `TABLE_NAME` from the environment.
    pub async fn from_env() -> Result<Self, String> {
        let table = crate::adapters::aws::required_env("TABLE_NAME")?;
        Ok(Self::new(
            Client::new(&crate::adapters::aws::sdk_config().await),
            table,
        ))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its TTL (for `sparkbridge dev --aws` and tests); idempotent.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        let exists = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok();
        if exists {
            return Ok(());
        }
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(unavailable)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        // One conditional write decides; on refusal the stored item comes back (ALL_OLD),
        // so no second read is needed. The condition is `core::dedupe::decide` in DynamoDB terms.
        let rec = req.record();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(idem_key(key)))
            .item("status", s(rec.status.as_str()))
            .item("owner", s(&rec.owner))
            .item("lease_until_ms", n(rec.lease_until_ms))
            .item("payload_hash", s(&rec.payload_hash))
            .item("expires_at", n(rec.expires_at))
            .item("updated_at_ms", n(req.now_ms))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_s \
                 OR (#status = :in_progress AND lease_until_ms < :now_ms AND payload_hash = :hash)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now_s", n(req.now_ms / 1000))
            .expression_attribute_values(":now_ms", n(req.now_ms))
            .expression_attribute_values(":in_progress", s(Status::InProgress.as_str()))
            .expression_attribute_values(":hash", s(&rec.payload_hash))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Acquire::Acquired),
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(e) => {
                    let old = e.item().ok_or_else(|| {
                        StoreError::Corrupt("condition failed without ALL_OLD item".into())
                    })?;
                    let existing = parse_record(old)?;
                    match decide(Some(&existing), req) {
                        // The condition refused what the decision allows: the record changed
                        // in between (a clock edge or a racing writer). Let the queue retry.
                        Acquire::Acquired => Ok(Acquire::InProgress),
                        other => Ok(other),
                    }
                }
                _ => Err(unavailable(SdkError::ServiceError(se))),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(idem_key(key)))
            .update_expression("SET #status = :completed, expires_at = :keep, outcome = :outcome REMOVE lease_until_ms")
            .condition_expression("#status = :in_progress AND #owner = :me")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":completed", s(Status::Completed.as_str()))
            .expression_attribute_values(":in_progress", s(Status::InProgress.as_str()))
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":keep", n(keep_until))
            .expression_attribute_values(":outcome", s(outcome))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(idem_key(key)))
            .condition_expression("#status = :in_progress AND #owner = :me")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", s(Status::InProgress.as_str()))
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl SubscriberStore for DynamoStore {
    async fn record_signal(
        &self,
        email: &str,
        signal: Signal,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("sub#{}", email.to_ascii_lowercase())))
            .update_expression("ADD #counter :one SET last_signal_at = :at")
            .expression_attribute_names("#counter", signal.as_str())
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn observe_contact(
        &self,
        contact_key: &str,
        email: &str,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("contact#{contact_key}")))
            .update_expression("SET email = :email")
            .expression_attribute_values(":email", s(email))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .attributes()
            .and_then(|a| a.get("email"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }
}
