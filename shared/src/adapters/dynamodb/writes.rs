//! Writes to subscriber items (`sub#<email>`), signal items and contact items: the
//! expressions of a transition and of an ESP status, and the transaction items of each
//! `StateWrite`. Used alone (the subscriber store) and inside a lease's transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::keys::{
    contact_key_of, email_value, history_line, n, s, signals_key, sub_key, ts, SCREENING,
};
use super::{unavailable, DynamoStore};
use crate::core::Email;
use crate::core::{StateWrite, Transition};
use crate::ports::StoreError;

/// Signals are kept this long (longer than any screening period).
const SIGNAL_RETENTION_SECS: i64 = 90 * 86_400;
/// An ESP contact's address is kept this long after it was last recorded (it is recorded
/// again whenever it changes or has been forgotten); only email-change detection reads it.
const CONTACT_RETENTION_SECS: i64 = 400 * 86_400;

/// Forward only (`core::lifecycle`): a status of a higher rank, or the first one.
pub(super) const TRANSITION_CONDITION: &str =
    "attribute_not_exists(status_rank) OR status_rank < :rank";

/// A transition as an update of the subscriber item.
pub(super) struct TransitionChange {
    pub(super) expression: String,
    pub(super) names: Option<HashMap<String, String>>,
    pub(super) values: HashMap<String, AttributeValue>,
}

pub(super) fn transition_change(t: &Transition) -> TransitionChange {
    let mut sets: Vec<&str> = vec![
        "email = :email",
        "referral_status = :st",
        "status_rank = :rank",
        "updated_at = :at",
        "history = list_append(if_not_exists(history, :empty), :h)",
    ];
    let mut values = HashMap::from([
        (":email".to_string(), email_value(&t.email)),
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
pub(super) const ESP_STATUS_EXPRESSION: &str =
    "SET email = if_not_exists(email, :email), esp_status = :st, \
     esp_status_at = :at, history = list_append(if_not_exists(history, :empty), :h)";

pub(super) fn esp_status_values(
    email: &str,
    status: &str,
    at: DateTime<Utc>,
) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":email".to_string(), email_value(email)),
        (":st".to_string(), s(status)),
        (":at".to_string(), s(ts(at))),
        (":empty".to_string(), AttributeValue::L(vec![])),
        (":h".to_string(), history_line(at, &format!("esp {status}"))),
    ])
}

impl DynamoStore {
    pub(super) fn state_items(
        &self,
        w: &StateWrite,
    ) -> Result<Vec<aws_sdk_dynamodb::types::TransactWriteItem>, StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        match w {
            StateWrite::Signal { email, entry } => {
                let email = Email::new(email);
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
                    .item("gsi1pk", s(signals_key(email.as_str())))
                    .item("gsi1sk", s(format!("{}#{}", ts(entry.at), entry.kind)))
                    .item("kind", s(entry.kind.as_str()))
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
                    .key("pk", s(sub_key(email.as_str())))
                    .update_expression("SET email = if_not_exists(email, :email), last_signal_at = :at ADD #counter :one")
                    .expression_attribute_names("#counter", entry.kind.as_str())
                    .expression_attribute_values(":email", email_value(email.as_str()))
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
}
