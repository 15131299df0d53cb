//! A SparkLoop webhook as the worker reads it: the kept payload parsed once into typed parts,
//! and the event it is, from the kind ingest read (SparkLoop names it in `type`, some
//! deliveries in `event`) or the repair the reconciler queued. Field meanings are in
//! docs/providers/sparkloop.md.

use serde::Deserialize;
use serde_json::Value;

use crate::core::kind::{InternalKind, Kind, SparkloopKind};
use crate::core::lenient::{boolean, payload, raw, shaped, text};
use crate::core::property::Property;
use crate::core::subscriber::ReferralStatus;

/// The parts of a SparkLoop payload the worker uses; each is absent when missing or of
/// another shape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Webhook {
    #[serde(default, deserialize_with = "shaped")]
    pub subscriber: Option<Person>,
    #[serde(default, deserialize_with = "shaped")]
    pub referrer: Option<Person>,
    #[serde(default, deserialize_with = "shaped")]
    pub campaign: Option<Campaign>,
    #[serde(default, deserialize_with = "text")]
    pub campaign_id: Option<String>,
    #[serde(default, deserialize_with = "shaped")]
    pub partner: Option<Partner>,
    #[serde(default, deserialize_with = "shaped")]
    pub reward: Option<Reward>,
    #[serde(default, deserialize_with = "text")]
    pub coupon_code: Option<String>,
    /// Written by earlier versions of the reconciler into a rebuilt `new_partner_referral`
    /// (`"esp_add"`), before repairs had their own kinds; still read for messages queued then.
    #[serde(default, deserialize_with = "text")]
    pub repair: Option<String>,
}

/// A subscriber or a referrer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Person {
    #[serde(default, deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub first_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub referral_status: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub referral_code: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub referral_link: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub partner_id: Option<String>,
    /// Passed on to the ESP as sent.
    #[serde(default, deserialize_with = "raw")]
    pub tot_referrals: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Campaign {
    #[serde(default, deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "boolean")]
    pub upscribe: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Partner {
    #[serde(default, deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Reward {
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
}

/// What a SparkLoop event (or a repair rebuilt from SparkLoop's API) asks of the ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparkloopEvent {
    /// A partner referral at `status` (`None`: a `sync_subscriber` without a status we know).
    /// `add`: a verified referral whose contact was never added must be added, not updated.
    Referral {
        status: Option<ReferralStatus>,
        add: bool,
    },
    /// Someone referred a subscriber: update the referrer's counts.
    NewReferral,
    /// A referrer's reward, recorded in this property.
    Reward(Property),
    /// Nothing for the ESP to do (`new_offer_lead`, other kinds).
    NoEffect,
}

impl Webhook {
    pub fn parse(json: &str) -> Webhook {
        payload(json)
    }

    /// The status the subscriber object states (SparkLoop writes `confirmed` for verified).
    pub fn stated_status(&self) -> Option<ReferralStatus> {
        self.subscriber
            .as_ref()
            .and_then(|s| s.referral_status.as_deref())
            .and_then(ReferralStatus::parse)
    }

    /// Where a partner referral came from, in the values SparkLoop's native integrations write
    /// to `RH_SOURCE`. Upscribe is flagged on the campaign; other partner referrals that reach a
    /// custom integration as pending arrive through Magic Links.
    pub fn source(&self) -> &'static str {
        if self.campaign.as_ref().and_then(|c| c.upscribe) == Some(true) {
            "sparkloop-upscribe"
        } else {
            "sparkloop-magic"
        }
    }

    /// What this payload, queued under `kind`, asks of the ESP.
    pub fn event(&self, kind: &Kind) -> SparkloopEvent {
        use SparkloopEvent::*;
        let legacy_add = self.repair.as_deref() == Some("esp_add");
        match kind {
            Kind::Sparkloop(k) => match k {
                SparkloopKind::NewPartnerPendingReferral => Referral {
                    status: Some(ReferralStatus::Pending),
                    add: false,
                },
                SparkloopKind::NewPartnerReferral => Referral {
                    status: Some(ReferralStatus::Verified),
                    add: legacy_add,
                },
                SparkloopKind::SyncSubscriber => Referral {
                    status: self.stated_status(),
                    add: legacy_add,
                },
                SparkloopKind::NewReferral => NewReferral,
                SparkloopKind::RewardUnlocked => Reward(Property::Reward),
                SparkloopKind::RewardRedeemed => Reward(Property::RewardRedeemed),
                SparkloopKind::NewOfferLead => NoEffect,
            },
            Kind::Internal(InternalKind::ReconcileEspAdd) => Referral {
                status: self.stated_status(),
                add: true,
            },
            Kind::Internal(
                InternalKind::ReconcileEspUnsubscribe | InternalKind::ReconcileStateCorrection,
            ) => Referral {
                status: self.stated_status(),
                add: false,
            },
            _ => NoEffect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kind::{InternalKind as I, SparkloopKind as S};
    use ReferralStatus::*;

    #[allow(clippy::too_many_lines)] // a table test: one row per case reads better than helpers
    #[test]
    fn events_by_kind_and_payload() {
        let sync = |status: &str| format!(r#"{{"subscriber":{{"referral_status":"{status}"}}}}"#);
        let legacy = r#"{"repair":"esp_add","subscriber":{"referral_status":"verified"}}"#;
        let referral = |status, add| SparkloopEvent::Referral { status, add };
        let cases: Vec<(Kind, String, SparkloopEvent)> = vec![
            (
                S::NewPartnerPendingReferral.into(),
                "{}".into(),
                referral(Some(Pending), false),
            ),
            (
                S::NewPartnerReferral.into(),
                "{}".into(),
                referral(Some(Verified), false),
            ),
            (
                S::NewPartnerReferral.into(),
                legacy.into(),
                referral(Some(Verified), true),
            ),
            (
                S::SyncSubscriber.into(),
                sync("rejected"),
                referral(Some(Rejected), false),
            ),
            (
                S::SyncSubscriber.into(),
                sync("confirmed"),
                referral(Some(Verified), false),
            ),
            (
                S::SyncSubscriber.into(),
                sync("weird"),
                referral(None, false),
            ),
            (
                S::NewReferral.into(),
                "{}".into(),
                SparkloopEvent::NewReferral,
            ),
            (
                S::RewardUnlocked.into(),
                "{}".into(),
                SparkloopEvent::Reward(Property::Reward),
            ),
            (
                S::RewardRedeemed.into(),
                "{}".into(),
                SparkloopEvent::Reward(Property::RewardRedeemed),
            ),
            (
                S::NewOfferLead.into(),
                "{}".into(),
                SparkloopEvent::NoEffect,
            ),
            (
                I::ReconcileEspAdd.into(),
                sync("verified"),
                referral(Some(Verified), true),
            ),
            (
                I::ReconcileEspAdd.into(),
                sync("pending"),
                referral(Some(Pending), true),
            ),
            (
                I::ReconcileEspUnsubscribe.into(),
                sync("rejected"),
                referral(Some(Rejected), false),
            ),
            (
                I::ReconcileStateCorrection.into(),
                sync("pending"),
                referral(Some(Pending), false),
            ),
            (
                I::ScreeningReject.into(),
                "{}".into(),
                SparkloopEvent::NoEffect,
            ),
            (Kind::Unknown, sync("pending"), SparkloopEvent::NoEffect),
        ];
        for (kind, body, want) in cases {
            assert_eq!(Webhook::parse(&body).event(&kind), want, "{kind} {body}");
        }
    }

    #[test]
    fn ids_read_from_strings_or_numbers_and_odd_shapes_read_as_absent() {
        let w = Webhook::parse(
            r#"{"subscriber":{"id":12,"email":"","tot_referrals":null},"campaign":"c","partner":{"id":"p","name":7}}"#,
        );
        let sub = w.subscriber.unwrap();
        assert_eq!(sub.id.as_deref(), Some("12"));
        assert_eq!(sub.email, None);
        assert_eq!(sub.tot_referrals, Some(Value::Null));
        assert_eq!(w.campaign, None);
        let partner = w.partner.unwrap();
        assert_eq!(
            (partner.id.as_deref(), partner.name.as_deref()),
            (Some("p"), Some("7"))
        );
    }

    #[test]
    fn upscribe_campaigns_are_the_upscribe_source() {
        let source = |body: &str| Webhook::parse(body).source();
        assert_eq!(
            source(r#"{"campaign":{"upscribe":true}}"#),
            "sparkloop-upscribe"
        );
        assert_eq!(
            source(r#"{"campaign":{"upscribe":"true"}}"#),
            "sparkloop-magic"
        );
        assert_eq!(source("{}"), "sparkloop-magic");
    }
}
