//! A Loops event as the rules read it: what its kind means for SparkLoop, and the one payload
//! field they use (the send id that ties an open to its delivery). docs/providers/loops.md.

use serde::Deserialize;

use crate::core::kind::LoopsKind;
use crate::core::lenient::{payload, shaped, string};
use crate::core::subscriber::Signal;

/// What a Loops event means for SparkLoop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopsEvent {
    /// The subscriber left: unsubscribed, deleted, hard-bounced or reported spam.
    Departure,
    /// A confirmed signup (Loops sends these only after double opt-in).
    Signup,
    /// An engagement signal counted during screening.
    Engagement(Signal),
    /// Nothing SparkLoop needs.
    NoEffect,
}

impl LoopsKind {
    pub fn event(self) -> LoopsEvent {
        use LoopsKind::*;
        match self {
            EmailUnsubscribed | ContactUnsubscribed | ContactDeleted | EmailHardBounced
            | EmailSpamReported => LoopsEvent::Departure,
            ContactCreated | MailingListSubscribed => LoopsEvent::Signup,
            EmailOpened => LoopsEvent::Engagement(Signal::Open),
            EmailClicked => LoopsEvent::Engagement(Signal::Click),
            EmailDelivered => LoopsEvent::Engagement(Signal::Delivery),
            MailingListUnsubscribed
            | CampaignEmailSent
            | LoopEmailSent
            | TransactionalEmailSent
            | EmailSoftBounced
            | EmailResubscribed
            | TestEvent => LoopsEvent::NoEffect,
        }
    }
}

/// The payload fields the rules read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LoopsPayload {
    #[serde(default, deserialize_with = "shaped")]
    pub email: Option<EmailSend>,
}

/// One sent email (`email` in Loops' email events).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EmailSend {
    #[serde(default, deserialize_with = "string")]
    pub id: Option<String>,
}

impl LoopsPayload {
    pub fn parse(json: &str) -> LoopsPayload {
        payload(json)
    }

    /// The id of the individual send, which ties opens to deliveries.
    pub fn send_id(self) -> Option<String> {
        self.email.and_then(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantNames;

    #[test]
    fn every_kind_has_a_meaning_and_departures_are_the_documented_five() {
        let departures: Vec<&str> = LoopsKind::VARIANTS
            .iter()
            .copied()
            .filter(|name| name.parse::<LoopsKind>().unwrap().event() == LoopsEvent::Departure)
            .collect();
        assert_eq!(
            departures,
            [
                "contact.unsubscribed",
                "contact.deleted",
                "email.hardBounced",
                "email.unsubscribed",
                "email.spamReported"
            ]
        );
    }

    #[test]
    fn the_send_id_is_a_string_or_absent() {
        let id = |body: &str| LoopsPayload::parse(body).send_id();
        assert_eq!(id(r#"{"email":{"id":"s1"}}"#).as_deref(), Some("s1"));
        assert_eq!(id(r#"{"email":{"id":7}}"#), None);
        assert_eq!(id(r#"{"email":"x"}"#), None);
        assert_eq!(id("{}"), None);
    }
}
