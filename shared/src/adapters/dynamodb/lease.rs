//! The idempotency store: one lease item per event (`idem#<provider>#<dedupe id>`), with
//! the subscriber writes that ride in its completion's transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::keys::{idem_key, n, s, sub_key};
use super::writes::{
    esp_status_values, transition_change, ESP_STATUS_EXPRESSION, TRANSITION_CONDITION,
};
use super::{conditional, unavailable, DynamoStore};
use crate::core::dedupe::{decide, Acquire, LeaseRequest, Record, Status};
use crate::core::{StateWrite, Transition};
use crate::ports::{IdempotencyStore, StoreError};

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

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn acquire(&self, key: &str, req: &LeaseRequest) -> Result<Acquire, StoreError> {
        // One conditional write decides; on refusal the stored item comes back (ALL_OLD),
        // so no second read is needed. The condition is `core::dedupe::decide` in DynamoDB terms.
        let (item, values) = lease_item(key, req);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(ACQUIRE_CONDITION)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
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
                        // Our own token: the first write succeeded and its answer was lost.
                        Acquire::Acquired if existing.owner == req.owner => Ok(Acquire::Acquired),
                        // The condition refused what the decision allows: the record changed
                        // in between (a clock edge or a racing writer). Let the queue retry.
                        Acquire::Acquired => Ok(Acquire::InProgress {
                            lease_until_ms: existing.lease_until_ms,
                        }),
                        other => Ok(other),
                    }
                }
                _ => Err(unavailable(SdkError::ServiceError(se))),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Both writes in one transaction (one round trip instead of two). Any refusal cancels
    /// it whole: the caller then acquires and transitions one at a time, which reads why.
    async fn acquire_applying(
        &self,
        key: &str,
        req: &LeaseRequest,
        t: &Transition,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let (item, values) = lease_item(key, req);
        let lease = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(ACQUIRE_CONDITION)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(unavailable)?;
        let change = transition_change(t);
        let transition = Update::builder()
            .table_name(&self.table)
            .key("pk", s(sub_key(&t.email)))
            .update_expression(change.expression)
            .condition_expression(TRANSITION_CONDITION)
            .set_expression_attribute_names(change.names)
            .set_expression_attribute_values(Some(change.values))
            .build()
            .map_err(unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(lease).build())
            .transact_items(TransactWriteItem::builder().update(transition).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        outcome: &str,
        writes: &[StateWrite],
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        if writes.is_empty() {
            // The common case stays a plain UpdateItem: one round trip.
            return self.complete_alone(key, owner, keep_until, outcome).await;
        }
        if writes
            .iter()
            .all(|w| matches!(w, StateWrite::EspStatus { .. }))
        {
            // An ESP status (an ESP-side unsubscribe, or an ESP call that succeeded) is a
            // fact about the contact, true whether or not this attempt's completion lands: it
            // is written on its own, first, as a plain UpdateItem (1 WRU), then the completion
            // (1 WRU); a transaction of the two costs 2 WRU per item. A status write that fails
            // fails the completion, so the retry writes it again; a completion lost after it
            // only repeats it (one more history line).
            for w in writes {
                let StateWrite::EspStatus { email, status, at } = w else {
                    unreachable!("only ESP statuses here");
                };
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(sub_key(email)))
                    .update_expression(ESP_STATUS_EXPRESSION)
                    .set_expression_attribute_values(Some(esp_status_values(email, status, *at)))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            return self.complete_alone(key, owner, keep_until, outcome).await;
        }
        // State writes ride in the same transaction: they happen exactly when the event is
        // marked processed, and not at all if the lease was lost.
        let complete = Update::builder()
            .table_name(&self.table)
            .key("pk", s(idem_key(key)))
            .update_expression(COMPLETE_EXPRESSION)
            .condition_expression(OWNER_CONDITION)
            .set_expression_attribute_names(Some(complete_names()))
            .set_expression_attribute_values(Some(complete_values(owner, keep_until, outcome)))
            .build()
            .map_err(unavailable)?;
        let mut items = vec![TransactWriteItem::builder().update(complete).build()];
        for w in writes {
            items.extend(self.state_items(w)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                let refused: Vec<bool> = match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(t) => t
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code() == Some("ConditionalCheckFailed"))
                        .collect(),
                    _ => Vec::new(),
                };
                match refused.split_first() {
                    // the lease was lost: nothing was written
                    Some((true, _)) => Ok(false),
                    // Only a contact address carries a condition among the state writes: a
                    // newer address is already recorded, which stays; complete without it.
                    Some((false, rest)) if rest.contains(&true) => {
                        let kept: Vec<StateWrite> = writes
                            .iter()
                            .filter(|w| !matches!(w, StateWrite::ContactEmail { .. }))
                            .cloned()
                            .collect();
                        self.complete(key, owner, keep_until, outcome, &kept).await
                    }
                    _ => Err(unavailable(SdkError::ServiceError(se))),
                }
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
        conditional(result)
    }
}

/// `core::dedupe::decide` in DynamoDB terms (with `#status` = status).
const ACQUIRE_CONDITION: &str = "attribute_not_exists(pk) OR expires_at < :now_s \
     OR (#status = :in_progress AND lease_until_ms < :now_ms AND payload_hash = :hash)";

/// The lease item a request writes, and the values its condition reads.
fn lease_item(
    key: &str,
    req: &LeaseRequest,
) -> (
    HashMap<String, AttributeValue>,
    HashMap<String, AttributeValue>,
) {
    let rec = req.record();
    let item = HashMap::from([
        ("pk".to_string(), s(idem_key(key))),
        ("status".to_string(), s(rec.status.as_str())),
        ("owner".to_string(), s(&rec.owner)),
        ("lease_until_ms".to_string(), n(rec.lease_until_ms)),
        ("payload_hash".to_string(), s(&rec.payload_hash)),
        ("expires_at".to_string(), n(rec.expires_at)),
        ("updated_at_ms".to_string(), n(req.now_ms)),
    ]);
    let values = HashMap::from([
        (":now_s".to_string(), n(req.now_ms / 1000)),
        (":now_ms".to_string(), n(req.now_ms)),
        (":in_progress".to_string(), s(Status::InProgress.as_str())),
        (":hash".to_string(), s(&rec.payload_hash)),
    ]);
    (item, values)
}

const COMPLETE_EXPRESSION: &str =
    "SET #status = :completed, expires_at = :keep, outcome = :outcome REMOVE lease_until_ms";
const OWNER_CONDITION: &str = "#status = :in_progress AND #owner = :me";

fn complete_names() -> HashMap<String, String> {
    HashMap::from([
        ("#status".into(), "status".into()),
        ("#owner".into(), "owner".into()),
    ])
}

fn complete_values(owner: &str, keep_until: i64, outcome: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":completed".into(), s(Status::Completed.as_str())),
        (":in_progress".into(), s(Status::InProgress.as_str())),
        (":me".into(), s(owner)),
        (":keep".into(), n(keep_until)),
        (":outcome".into(), s(outcome)),
    ])
}

impl DynamoStore {
    /// The completion on its own: one conditional UpdateItem; `false` when the lease is no
    /// longer ours.
    async fn complete_alone(
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
            .update_expression(COMPLETE_EXPRESSION)
            .condition_expression(OWNER_CONDITION)
            .set_expression_attribute_names(Some(complete_names()))
            .set_expression_attribute_values(Some(complete_values(owner, keep_until, outcome)))
            .send()
            .await;
        conditional(result)
    }
}
