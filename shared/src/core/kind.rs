//! Every event kind an envelope can carry: the provider event names ingest knows, the kinds
//! sparkbridge queues itself, and `unknown` / `parked`. On the wire (the envelope's `kind`, the
//! SQS `kind` attribute, logs) a kind is its name, exactly as the provider spells it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strum::{EnumString, IntoStaticStr, VariantNames};

/// Loops `eventName`s (docs/providers/loops.md, section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, VariantNames)]
pub enum LoopsKind {
    #[strum(serialize = "contact.created")]
    ContactCreated,
    #[strum(serialize = "contact.unsubscribed")]
    ContactUnsubscribed,
    #[strum(serialize = "contact.deleted")]
    ContactDeleted,
    #[strum(serialize = "contact.mailingList.subscribed")]
    MailingListSubscribed,
    #[strum(serialize = "contact.mailingList.unsubscribed")]
    MailingListUnsubscribed,
    #[strum(serialize = "campaign.email.sent")]
    CampaignEmailSent,
    #[strum(serialize = "loop.email.sent")]
    LoopEmailSent,
    #[strum(serialize = "transactional.email.sent")]
    TransactionalEmailSent,
    #[strum(serialize = "email.delivered")]
    EmailDelivered,
    #[strum(serialize = "email.softBounced")]
    EmailSoftBounced,
    #[strum(serialize = "email.hardBounced")]
    EmailHardBounced,
    #[strum(serialize = "email.opened")]
    EmailOpened,
    #[strum(serialize = "email.clicked")]
    EmailClicked,
    #[strum(serialize = "email.unsubscribed")]
    EmailUnsubscribed,
    #[strum(serialize = "email.resubscribed")]
    EmailResubscribed,
    #[strum(serialize = "email.spamReported")]
    EmailSpamReported,
    #[strum(serialize = "testing.testEvent")]
    TestEvent,
}

/// eSputnik `activityStatus`es (docs/providers/esputnik.md, section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, VariantNames)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum EsputnikKind {
    Delivered,
    Undelivered,
    Read,
    Clicked,
    Unsubscribed,
    Spam,
    SubscriptionChanged,
    Sent,
}

/// SparkLoop webhook `type`s (docs/providers/sparkloop.md, section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum SparkloopKind {
    SyncSubscriber,
    NewPartnerPendingReferral,
    NewPartnerReferral,
    NewReferral,
    RewardUnlocked,
    RewardRedeemed,
    NewOfferLead,
}

/// Kinds sparkbridge queues itself: the screener's rejects and the reconciler's repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumString, IntoStaticStr, VariantNames)]
pub enum InternalKind {
    /// A referral that missed the engagement criteria: reject it in SparkLoop.
    #[strum(serialize = "screening.reject")]
    ScreeningReject,
    /// An ESP-side departure a webhook missed: unsubscribe the referral in SparkLoop.
    #[strum(serialize = "reconcile.unsubscribe")]
    ReconcileUnsubscribe,
    /// A referral SparkLoop has that never reached the ESP: add the contact.
    #[strum(serialize = "reconcile.esp_add")]
    ReconcileEspAdd,
    /// A rejected referral still subscribed in the ESP: unsubscribe the contact.
    #[strum(serialize = "reconcile.esp_unsubscribe")]
    ReconcileEspUnsubscribe,
    /// Our recorded status is behind SparkLoop's: record it (and do what that status does).
    #[strum(serialize = "reconcile.state_correction")]
    ReconcileStateCorrection,
}

impl InternalKind {
    /// The name on the wire; also part of the dedupe ids sparkbridge derives for its own events.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The kind of one envelope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    Loops(LoopsKind),
    Esputnik(EsputnikKind),
    Sparkloop(SparkloopKind),
    Internal(InternalKind),
    /// A valid, authenticated event whose type ingest does not know: kept, never dropped.
    Unknown,
    /// An authenticated element ingest could not understand at all (kept with its raw text).
    Parked,
    /// A name this version does not know (a newer version queued it): kept as written; the
    /// worker parks it rather than guessing.
    Other(String),
}

pub const UNKNOWN: &str = "unknown";
pub const PARKED: &str = "parked";

impl Kind {
    /// The kind named `name`. Names are unique across providers, so no provider is needed.
    pub fn parse(name: &str) -> Kind {
        match name {
            UNKNOWN => return Kind::Unknown,
            PARKED => return Kind::Parked,
            _ => {}
        }
        LoopsKind::from_str(name)
            .map(Kind::Loops)
            .or_else(|_| EsputnikKind::from_str(name).map(Kind::Esputnik))
            .or_else(|_| SparkloopKind::from_str(name).map(Kind::Sparkloop))
            .or_else(|_| InternalKind::from_str(name).map(Kind::Internal))
            .unwrap_or_else(|_| Kind::Other(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Kind::Loops(k) => k.into(),
            Kind::Esputnik(k) => k.into(),
            Kind::Sparkloop(k) => k.into(),
            Kind::Internal(k) => k.into(),
            Kind::Unknown => UNKNOWN,
            Kind::Parked => PARKED,
            Kind::Other(name) => name,
        }
    }
}

impl From<&str> for Kind {
    fn from(name: &str) -> Self {
        Kind::parse(name)
    }
}

impl From<LoopsKind> for Kind {
    fn from(k: LoopsKind) -> Self {
        Kind::Loops(k)
    }
}

impl From<EsputnikKind> for Kind {
    fn from(k: EsputnikKind) -> Self {
        Kind::Esputnik(k)
    }
}

impl From<SparkloopKind> for Kind {
    fn from(k: SparkloopKind) -> Self {
        Kind::Sparkloop(k)
    }
}

impl From<InternalKind> for Kind {
    fn from(k: InternalKind) -> Self {
        Kind::Internal(k)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Kind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<String> for Kind {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Kind> for String {
    fn eq(&self, other: &Kind) -> bool {
        self == other.as_str()
    }
}

/// Kinds sort by name, as their names did.
impl Ord for Kind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Kind::parse(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_name() -> Vec<&'static str> {
        [
            LoopsKind::VARIANTS,
            EsputnikKind::VARIANTS,
            SparkloopKind::VARIANTS,
            InternalKind::VARIANTS,
            &[UNKNOWN, PARKED],
        ]
        .concat()
    }

    #[test]
    fn every_name_parses_to_a_known_kind_and_prints_back_the_same() {
        for name in every_name() {
            let kind = Kind::parse(name);
            assert!(!matches!(kind, Kind::Other(_)), "{name}");
            assert_eq!(kind.as_str(), name);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn names_are_unique_across_providers() {
        let mut names = every_name();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
    }

    #[test]
    fn an_unknown_name_is_kept_as_written() {
        for name in ["SOMETHING_NEW", "Email.Unsubscribed", "", "reconcile."] {
            assert_eq!(Kind::parse(name), Kind::Other(name.to_string()));
            assert_eq!(Kind::parse(name).as_str(), name);
        }
    }

    #[test]
    fn wire_names_are_the_providers_spelling() {
        let cases: [(Kind, &str); 6] = [
            (
                LoopsKind::MailingListSubscribed.into(),
                "contact.mailingList.subscribed",
            ),
            (LoopsKind::EmailSpamReported.into(), "email.spamReported"),
            (
                EsputnikKind::SubscriptionChanged.into(),
                "SUBSCRIPTION_CHANGED",
            ),
            (
                SparkloopKind::NewPartnerPendingReferral.into(),
                "new_partner_pending_referral",
            ),
            (InternalKind::ScreeningReject.into(), "screening.reject"),
            (
                InternalKind::ReconcileUnsubscribe.into(),
                "reconcile.unsubscribe",
            ),
        ];
        for (kind, name) in cases {
            assert_eq!(kind.as_str(), name);
        }
    }
}
