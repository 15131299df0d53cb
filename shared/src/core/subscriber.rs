//! The subscriber model: what sparkbridge records about a subscriber (referral status,
//! engagement signals, ESP status) and the writes that change it. `lifecycle`, `rules`,
//! `reconcile` and the stores depend on this module; it depends on none of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferralStatus {
    Pending,
    Verified,
    Rejected,
}

impl ReferralStatus {
    pub fn rank(self) -> i64 {
        match self {
            ReferralStatus::Pending => 1,
            ReferralStatus::Verified => 2,
            ReferralStatus::Rejected => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReferralStatus::Pending => "pending",
            ReferralStatus::Verified => "verified",
            ReferralStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ReferralStatus::Pending),
            "verified" | "confirmed" => Some(ReferralStatus::Verified),
            "rejected" => Some(ReferralStatus::Rejected),
            _ => None,
        }
    }
}

/// One engagement signal, kept while a referral is screened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalEntry {
    pub kind: Signal,
    /// The ESP's id of the individual send (Loops `email.id`, eSputnik `messageInstanceId`),
    /// which ties an open to the delivery it belongs to.
    #[serde(default)]
    pub message: Option<String>,
    pub at: DateTime<Utc>,
}

/// The subscriber record (DynamoDB item `sub#<email>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriberState {
    pub email: String,
    pub sparkloop_id: Option<String>,
    pub referral_status: Option<ReferralStatus>,
    pub campaign_id: Option<String>,
    pub partner_id: Option<String>,
    pub source: Option<String>,
    pub screening_started_at: Option<DateTime<Utc>>,
    pub screening_deadline: Option<DateTime<Utc>>,
    pub esp_status: Option<String>,
    pub screened: Option<String>,
    #[serde(default)]
    pub signals: Vec<SignalEntry>,
    #[serde(default)]
    pub history: Vec<String>,
}

impl SubscriberState {
    pub fn count_since(&self, kind: Signal, since: DateTime<Utc>) -> usize {
        self.signals
            .iter()
            .filter(|s| s.kind == kind && s.at >= since)
            .count()
    }
}

/// A referral status change to record, conditional on moving forward.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub email: String,
    pub status: ReferralStatus,
    pub sparkloop_id: Option<String>,
    pub campaign_id: Option<String>,
    pub partner_id: Option<String>,
    pub source: Option<String>,
    /// Set when the referral enters screening.
    pub screening: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub at: DateTime<Utc>,
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionResult {
    Applied,
    /// Already at this status: the event is a repeat.
    Same,
    /// A later status is stored: nothing changes and no ESP call is made.
    Stale(ReferralStatus),
}

/// Writes folded into the completion of an event (one DynamoDB transaction), so they happen
/// exactly when the event is marked processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWrite {
    Signal {
        email: String,
        entry: SignalEntry,
    },
    EspStatus {
        email: String,
        status: String,
        at: DateTime<Utc>,
    },
    /// The address now seen for an ESP contact id (email-change detection). Written with the
    /// completion, so a change whose SparkLoop call failed is seen again on the retry; `at` is
    /// the event's time, and the write never replaces an address seen at a later time.
    ContactEmail {
        contact_key: String,
        email: String,
        at: DateTime<Utc>,
    },
}

/// An engagement signal counted during screening; stored by its plural name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Signal {
    #[serde(rename = "deliveries")]
    Delivery,
    #[serde(rename = "opens")]
    Open,
    #[serde(rename = "clicks")]
    Click,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Delivery, Signal::Open, Signal::Click];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Delivery => "deliveries",
            Signal::Open => "opens",
            Signal::Click => "clicks",
        }
    }

    /// The signal stored under `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Signal {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
