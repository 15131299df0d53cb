//! Item keys and attribute values: every key prefix and timestamp format stored in the
//! table is written here, so the two stores cannot disagree on them.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::core::Email;

/// `gsi1pk` of a subscriber under screening (the screener queries it by deadline).
pub(super) const SCREENING: &str = "screening";

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn idem_key(key: &str) -> String {
    format!("idem#{key}")
}

pub(super) fn contact_key_of(contact_key: &str) -> String {
    format!("contact#{contact_key}")
}

pub(super) fn sub_key(email: &str) -> String {
    format!("sub#{}", Email::new(email))
}

/// The signals of one subscriber (`gsi1pk`).
pub(super) fn signals_key(email: &str) -> String {
    format!("sig#{}", Email::new(email))
}

/// An address as the subscriber items store it.
pub(super) fn email_value(email: &str) -> AttributeValue {
    s(Email::new(email).into_string())
}

/// Sortable UTC timestamps for index keys.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(super) fn parse_ts(v: Option<&AttributeValue>) -> Option<DateTime<Utc>> {
    v.and_then(|v| v.as_s().ok())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

pub(super) fn history_line(at: DateTime<Utc>, what: &str) -> AttributeValue {
    AttributeValue::L(vec![s(format!("{} {what}", ts(at)))])
}
