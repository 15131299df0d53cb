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

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::core::dedupe::{decide, Acquire, LeaseRequest, Record, Status};
use crate::core::lifecycle::{
    ReferralStatus, SignalEntry, StateWrite, SubscriberState, Transition, TransitionResult,
};
use crate::core::reconcile::Checkpoint;
use crate::ports::{ContactAddress, IdempotencyStore, StoreError, SubscriberStore};

pub const INDEX: &str = "by_deadline";
const SCREENING: &str = "screening";
/// Signals are kept this long (longer than any screening period).
const SIGNAL_RETENTION_SECS: i64 = 90 * 86_400;
/// An ESP contact's address is kept this long after it was last recorded (it is recorded
/// again whenever it changes or has been forgotten); only email-change detection reads it.
const CONTACT_RETENTION_SECS: i64 = 400 * 86_400;

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

    /// Creates the table with its TTL (for `sparkbridge dev --aws` and tests); idempotent.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
        };
        if self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(unavailable)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(INDEX)
            .key_schema(key("gsi1pk", KeyType::Hash)?)
            .key_schema(key("gsi1sk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(unavailable)?;
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("gsi1pk")?)
            .attribute_definitions(attr("gsi1sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .global_secondary_indexes(index)
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

/// Forward only (`core::lifecycle`): a status of a higher rank, or the first one.
const TRANSITION_CONDITION: &str = "attribute_not_exists(status_rank) OR status_rank < :rank";

/// A transition as an update of the subscriber item.
struct TransitionChange {
    expression: String,
    names: Option<HashMap<String, String>>,
    values: HashMap<String, AttributeValue>,
}

fn transition_change(t: &Transition) -> TransitionChange {
    let mut sets: Vec<&str> = vec![
        "email = :email",
        "referral_status = :st",
        "status_rank = :rank",
        "updated_at = :at",
        "history = list_append(if_not_exists(history, :empty), :h)",
    ];
    let mut values = HashMap::from([
        (":email".to_string(), s(t.email.to_ascii_lowercase())),
        (":st".to_string(), s(t.status.as_str())),
        (":rank".to_string(), n(t.status.rank())),
        (":at".to_string(), s(ts(t.at))),
        (":empty".to_string(), AttributeValue::L(vec![])),
        (
            ":h".to_string(),
            history_line(t.at, &format!("{} ({})", t.status.as_str(), t.cause)),
        ),
    ]);
    let mut names = None;
    for (set, placeholder, value) in [
        ("sparkloop_id = :sid", ":sid", &t.sparkloop_id),
        ("campaign_id = :cid", ":cid", &t.campaign_id),
        ("partner_id = :pid", ":pid", &t.partner_id),
        ("#source = :src", ":src", &t.source),
    ] {
        if let Some(v) = value {
            sets.push(set);
            values.insert(placeholder.to_string(), s(v));
            if placeholder == ":src" {
                // SOURCE is a DynamoDB reserved word.
                names = Some(HashMap::from([(
                    "#source".to_string(),
                    "source".to_string(),
                )]));
            }
        }
    }
    let expression = match t.screening {
        Some((start, deadline)) => {
            sets.extend([
                "screening_started_at = :start",
                "screening_deadline = :deadline",
                "gsi1pk = :screening",
                "gsi1sk = :deadline",
            ]);
            values.insert(":start".to_string(), s(ts(start)));
            values.insert(":deadline".to_string(), s(ts(deadline)));
            values.insert(":screening".to_string(), s(SCREENING));
            format!("SET {}", sets.join(", "))
        }
        // Leaving pending leaves the screening index.
        None => format!("SET {} REMOVE gsi1pk, gsi1sk", sets.join(", ")),
    };
    TransitionChange {
        expression,
        names,
        values,
    }
}

/// The subscriber's ESP status, with a history line.
const ESP_STATUS_EXPRESSION: &str = "SET email = if_not_exists(email, :email), esp_status = :st, \
     esp_status_at = :at, history = list_append(if_not_exists(history, :empty), :h)";

fn esp_status_values(
    email: &str,
    status: &str,
    at: DateTime<Utc>,
) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":email".to_string(), s(email.to_ascii_lowercase())),
        (":st".to_string(), s(status)),
        (":at".to_string(), s(ts(at))),
        (":empty".to_string(), AttributeValue::L(vec![])),
        (":h".to_string(), history_line(at, &format!("esp {status}"))),
    ])
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

fn contact_key_of(contact_key: &str) -> String {
    format!("contact#{contact_key}")
}

fn sub_key(email: &str) -> String {
    format!("sub#{}", email.to_ascii_lowercase())
}

/// Sortable UTC timestamps for index keys.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_ts(v: Option<&AttributeValue>) -> Option<DateTime<Utc>> {
    v.and_then(|v| v.as_s().ok())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn history_line(at: DateTime<Utc>, what: &str) -> AttributeValue {
    AttributeValue::L(vec![s(format!("{} {what}", ts(at)))])
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

    fn state_items(
        &self,
        w: &StateWrite,
    ) -> Result<Vec<aws_sdk_dynamodb::types::TransactWriteItem>, StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        match w {
            StateWrite::Signal { email, entry } => {
                let email = email.to_ascii_lowercase();
                let msg = entry.message.clone().unwrap_or_default();
                let mut put = Put::builder()
                    .table_name(&self.table)
                    .item(
                        "pk",
                        s(format!(
                            "sig#{email}#{}#{}#{msg}",
                            entry.kind,
                            entry.at.timestamp_millis()
                        )),
                    )
                    .item("gsi1pk", s(format!("sig#{email}")))
                    .item("gsi1sk", s(format!("{}#{}", ts(entry.at), entry.kind)))
                    .item("kind", s(&entry.kind))
                    .item("at", s(ts(entry.at)))
                    .item(
                        "expires_at",
                        n(entry.at.timestamp() + SIGNAL_RETENTION_SECS),
                    );
                if let Some(m) = &entry.message {
                    put = put.item("message", s(m));
                }
                let counter = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(sub_key(&email)))
                    .update_expression("SET email = if_not_exists(email, :email), last_signal_at = :at ADD #counter :one")
                    .expression_attribute_names("#counter", &entry.kind)
                    .expression_attribute_values(":email", s(&email))
                    .expression_attribute_values(":at", s(ts(entry.at)))
                    .expression_attribute_values(":one", n(1));
                Ok(vec![
                    TransactWriteItem::builder()
                        .put(put.build().map_err(unavailable)?)
                        .build(),
                    TransactWriteItem::builder()
                        .update(counter.build().map_err(unavailable)?)
                        .build(),
                ])
            }
            StateWrite::EspStatus { email, status, at } => {
                let u = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(sub_key(email)))
                    .update_expression(ESP_STATUS_EXPRESSION)
                    .set_expression_attribute_values(Some(esp_status_values(email, status, *at)));
                Ok(vec![TransactWriteItem::builder()
                    .update(u.build().map_err(unavailable)?)
                    .build()])
            }
            StateWrite::ContactEmail {
                contact_key,
                email,
                at,
            } => {
                // An address seen at a later time is never replaced by an older one.
                let put = Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(contact_key_of(contact_key)))
                    .item("email", s(email))
                    .item("at", s(ts(*at)))
                    .condition_expression("attribute_not_exists(#at) OR #at <= :at")
                    .expression_attribute_names("#at", "at")
                    .expression_attribute_values(":at", s(ts(*at)))
                    .item(
                        "expires_at",
                        n(Utc::now().timestamp() + CONTACT_RETENTION_SECS),
                    );
                Ok(vec![TransactWriteItem::builder()
                    .put(put.build().map_err(unavailable)?)
                    .build()])
            }
        }
    }

    /// Every item of the index matching `condition`, across pages.
    async fn query_index(
        &self,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let res = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX)
                .key_condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            out.extend(res.items().iter().cloned());
            match res.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn signals(&self, email: &str) -> Result<Vec<SignalEntry>, StoreError> {
        let pk = s(format!("sig#{}", email.to_ascii_lowercase()));
        let items = self
            .query_index("gsi1pk = :pk", HashMap::from([(":pk".to_string(), pk)]))
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(SignalEntry {
                    kind: item
                        .get("kind")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                    message: item.get("message").and_then(|v| v.as_s().ok()).cloned(),
                    at: parse_ts(item.get("at"))?,
                })
            })
            .collect())
    }

    fn state_from(item: &HashMap<String, AttributeValue>) -> SubscriberState {
        let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        SubscriberState {
            email: get("email").unwrap_or_default(),
            sparkloop_id: get("sparkloop_id"),
            referral_status: get("referral_status").and_then(|s| ReferralStatus::parse(&s)),
            campaign_id: get("campaign_id"),
            partner_id: get("partner_id"),
            source: get("source"),
            screening_started_at: parse_ts(item.get("screening_started_at")),
            screening_deadline: parse_ts(item.get("screening_deadline")),
            esp_status: get("esp_status"),
            screened: get("screened"),
            signals: Vec::new(),
            history: item
                .get("history")
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                .unwrap_or_default(),
        }
    }
}

#[async_trait]
impl SubscriberStore for DynamoStore {
    async fn apply_transition(&self, t: &Transition) -> Result<TransitionResult, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let change = transition_change(t);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sub_key(&t.email)))
            .update_expression(change.expression)
            .condition_expression(TRANSITION_CONDITION)
            .set_expression_attribute_names(change.names)
            .set_expression_attribute_values(Some(change.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(TransitionResult::Applied),
            Err(SdkError::ServiceError(se)) => match se.err() {
                UpdateItemError::ConditionalCheckFailedException(e) => {
                    let old = e
                        .item()
                        .and_then(|i| i.get("referral_status"))
                        .and_then(|v| v.as_s().ok())
                        .and_then(|s| ReferralStatus::parse(s));
                    Ok(match old {
                        Some(old) if old != t.status => TransitionResult::Stale(old),
                        _ => TransitionResult::Same,
                    })
                }
                _ => Err(unavailable(SdkError::ServiceError(se))),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get(&self, email: &str) -> Result<Option<SubscriberState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(sub_key(email)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let mut state = Self::state_from(item);
        state.signals = self.signals(email).await?;
        Ok(Some(state))
    }

    async fn screening_candidates(
        &self,
        due_before: DateTime<Utc>,
    ) -> Result<Vec<SubscriberState>, StoreError> {
        let values = HashMap::from([
            (":pk".to_string(), s(SCREENING)),
            (":due".to_string(), s(ts(due_before))),
        ]);
        let items = self
            .query_index("gsi1pk = :pk AND gsi1sk <= :due", values)
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for email in items
            .iter()
            .filter_map(|i| i.get("email").and_then(|v| v.as_s().ok()))
        {
            if let Some(state) = self.get(email).await? {
                out.push(state);
            }
        }
        Ok(out)
    }

    async fn mark_screened(&self, email: &str, note: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sub_key(email)))
            .update_expression(
                "SET screened = :note, history = list_append(if_not_exists(history, :empty), :h) REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":note", s(note))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":h", history_line(now, &format!("screened: {note}")))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn left_at(&self, email: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(sub_key(email)))
            .projection_expression("left_at")
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item().and_then(|i| parse_ts(i.get("left_at"))))
    }

    async fn mark_left(&self, email: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sub_key(email)))
            .update_expression("SET email = if_not_exists(email, :email), left_at = :at")
            .condition_expression("attribute_not_exists(left_at) OR left_at < :at")
            .expression_attribute_values(":email", s(email.to_ascii_lowercase()))
            .expression_attribute_values(":at", s(ts(at)))
            .send()
            .await;
        // refused: a later mark is already there
        conditional(result).map(|_| ())
    }

    async fn contact_email(&self, contact_key: &str) -> Result<Option<ContactAddress>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(contact_key_of(contact_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let now = Utc::now().timestamp();
        let item = out.item().filter(|i| {
            // TTL only collects garbage: an expired record counts as absent.
            i.get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .is_none_or(|t| t >= now)
        });
        Ok(item.and_then(|i| {
            let email = i.get("email").and_then(|v| v.as_s().ok())?.clone();
            Some(ContactAddress {
                email,
                at: parse_ts(i.get("at")),
            })
        }))
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("checkpoint#{name}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .item()
            .and_then(|i| i.get("value"))
            .and_then(|v| v.as_s().ok())
            .and_then(|v| serde_json::from_str(v).ok()))
    }

    async fn save_checkpoint(&self, name: &str, cp: Option<&Checkpoint>) -> Result<(), StoreError> {
        let key = s(format!("checkpoint#{name}"));
        match cp {
            Some(cp) => {
                let value =
                    serde_json::to_string(cp).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", key)
                    .item("value", s(value))
                    .item("expires_at", n(Utc::now().timestamp() + 7 * 86_400))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", key)
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }
}
