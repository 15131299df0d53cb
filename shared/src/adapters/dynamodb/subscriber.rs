//! The subscriber store: subscriber items, their signals (read through the index),
//! contact addresses and the reconciler's checkpoints.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::keys::{
    contact_key_of, email_value, history_line, n, parse_ts, s, signals_key, sub_key, ts, SCREENING,
};
use super::writes::{transition_change, TRANSITION_CONDITION};
use super::{conditional, unavailable, DynamoStore, INDEX};
use crate::core::reconcile::Checkpoint;
use crate::core::{
    ReferralStatus, Signal, SignalEntry, SubscriberState, Transition, TransitionResult,
};
use crate::ports::{ContactAddress, StoreError, SubscriberStore};

impl DynamoStore {
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
        let pk = s(signals_key(email));
        let items = self
            .query_index("gsi1pk = :pk", HashMap::from([(":pk".to_string(), pk)]))
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(SignalEntry {
                    kind: Signal::parse(item.get("kind")?.as_s().ok()?)?,
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
            .expression_attribute_values(":email", email_value(email))
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
