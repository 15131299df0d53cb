//! An eSputnik activity as the rules read it: what its status means for SparkLoop, and the
//! payload fields they use. docs/providers/esputnik.md.

use serde::Deserialize;

use crate::core::kind::EsputnikKind;
use crate::core::lenient::{boolean, payload, string, text};
use crate::core::subscriber::Signal;

/// What an eSputnik activity status means for SparkLoop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsputnikEvent {
    /// The subscriber left (unsubscribed, reported spam).
    Departure,
    /// Not delivered: a departure when the bounce is hard.
    Undelivered,
    Engagement(Signal),
    NoEffect,
}

impl EsputnikKind {
    pub fn event(self) -> EsputnikEvent {
        use EsputnikKind::*;
        match self {
            Unsubscribed | Spam => EsputnikEvent::Departure,
            Undelivered => EsputnikEvent::Undelivered,
            Read => EsputnikEvent::Engagement(Signal::Open),
            Clicked => EsputnikEvent::Engagement(Signal::Click),
            Delivered => EsputnikEvent::Engagement(Signal::Delivery),
            SubscriptionChanged | Sent => EsputnikEvent::NoEffect,
        }
    }
}

/// The activity fields the rules read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    #[serde(default, deserialize_with = "string")]
    pub media_type: Option<String>,
    #[serde(default, deserialize_with = "boolean")]
    pub hard_bounce: Option<bool>,
    #[serde(default, deserialize_with = "string")]
    pub status_description: Option<String>,
    /// The id of the individual send, which ties opens to deliveries.
    #[serde(default, deserialize_with = "text")]
    pub message_instance_id: Option<String>,
}

impl Activity {
    pub fn parse(json: &str) -> Activity {
        payload(json)
    }

    /// An email activity (eSputnik also reports SMS, push and others); no media type is email.
    pub fn is_email(&self) -> bool {
        self.media_type
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case("email"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_leniently() {
        let a = Activity::parse(
            r#"{"mediaType":"EMAIL","hardBounce":true,"statusDescription":"550 5.1.1","messageInstanceId":4702518}"#,
        );
        assert!(a.is_email());
        assert_eq!(a.hard_bounce, Some(true));
        assert_eq!(a.status_description.as_deref(), Some("550 5.1.1"));
        assert_eq!(a.message_instance_id.as_deref(), Some("4702518"));
        let sms = Activity::parse(r#"{"mediaType":"sms","hardBounce":"yes"}"#);
        assert!(!sms.is_email());
        assert_eq!(sms.hard_bounce, None);
        assert!(Activity::parse(r#"{"mediaType":5}"#).is_email());
    }
}
