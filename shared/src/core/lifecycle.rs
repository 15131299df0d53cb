//! Subscriber lifecycle: what SparkLoop tells us (referral status), what the ESP must do
//! about it, and the engagement screening. Pure: the stores and clients live in adapters.
//!
//! Ordering. Referral status only moves forward: pending (1) -> verified (2) -> rejected (3).
//! A status at or below the stored one is stale and changes nothing:
//! - `new_partner_pending_referral` after `sync_subscriber` rejected: stale, the contact is
//!   not added back (SparkLoop's terms forbid emailing rejected referrals);
//! - pending after verified: stale;
//! - verified after rejected: stale (rejection is final for us; a publisher who reinstates a
//!   referral in SparkLoop re-adds the contact by hand);
//! - rejected after verified: applied (rejected outranks everything: never email it);
//! - the same status again (a retry, or sync_subscriber echoing a pending referral): no new
//!   transition, but the ESP call is repeated, which is harmless (upsert / unsubscribe).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::envelope::Envelope;
use crate::core::property::{Properties, Property};
use crate::core::sparkloop::{SparkloopEvent, Webhook};
use crate::core::subscriber::{ReferralStatus, Signal, SignalEntry, SubscriberState, Transition};
use crate::core::time;

/// What the ESP must do (SparkLoop -> ESP). Property names are logical; each ESP client maps
/// them to the names configured for that ESP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EspCall {
    /// Add or update the contact (never re-subscribes an unsubscribed contact).
    Upsert {
        email: String,
        first_name: Option<String>,
        source: Option<String>,
        properties: Properties,
    },
    /// Unsubscribe the contact (rejected referrals must not be emailed).
    Unsubscribe {
        email: String,
        properties: Properties,
    },
    /// Update properties of an existing contact.
    Properties {
        email: String,
        properties: Properties,
    },
}

impl EspCall {
    pub fn name(&self) -> &'static str {
        match self {
            EspCall::Upsert { .. } => "upsert",
            EspCall::Unsubscribe { .. } => "unsubscribe",
            EspCall::Properties { .. } => "properties",
        }
    }

    pub fn email(&self) -> &str {
        match self {
            EspCall::Upsert { email, .. }
            | EspCall::Unsubscribe { email, .. }
            | EspCall::Properties { email, .. } => email,
        }
    }
}

/// The plan for one SparkLoop event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub transition: Option<Transition>,
    pub esp: Vec<EspCall>,
    pub note: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// Default screening period (`SCREENING_DAYS`, 14).
    pub screening_days: i64,
    /// Per-partner screening periods (`SCREENING_PARTNER_RULES`).
    pub partner_days: BTreeMap<String, i64>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            screening_days: 14,
            partner_days: BTreeMap::new(),
        }
    }
}

impl Plan {
    fn nothing(note: &'static str) -> Plan {
        Plan {
            note: Some(note),
            ..Plan::default()
        }
    }
}

/// The properties that are present, in the order of `Property`.
fn properties<const N: usize>(pairs: [(Property, Option<Value>); N]) -> Properties {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// SparkLoop event -> state transition + ESP calls.
pub fn plan(env: &Envelope, cfg: &LifecycleConfig) -> Plan {
    let webhook = Webhook::parse(env.payload.get());
    match webhook.event(&env.kind) {
        SparkloopEvent::Referral { status, add } => referral(env, &webhook, status, add, cfg),
        SparkloopEvent::NewReferral => new_referral(&webhook),
        SparkloopEvent::Reward(property) => reward(env, &webhook, property),
        SparkloopEvent::NoEffect => Plan::nothing("no ESP effect"),
    }
}

/// A partner referral at `status`: record it and add, update or unsubscribe the contact.
fn referral(
    env: &Envelope,
    webhook: &Webhook,
    status: Option<ReferralStatus>,
    add: bool,
    cfg: &LifecycleConfig,
) -> Plan {
    let sub = webhook.subscriber.clone().unwrap_or_default();
    let Some(email) = sub.email.clone().or_else(|| env.subscriber.email.clone()) else {
        return Plan::nothing("referral event without an email");
    };
    let Some(status) = status else {
        return Plan::nothing("sync_subscriber without a known referral_status");
    };
    let campaign = webhook.campaign.clone().unwrap_or_default();
    let partner = webhook.partner.clone().unwrap_or_default();
    let partner_id = sub.partner_id.clone().or(partner.id);
    // A provider time outside what the store can write (a queued envelope may predate the
    // parsers' own check) is no time: the receipt time stands in.
    let at = env
        .occurred_at
        .and_then(time::within_range)
        .unwrap_or(env.received_at);
    let screening = (status == ReferralStatus::Pending).then(|| {
        let days = partner_id
            .as_ref()
            .and_then(|id| cfg.partner_days.get(id).copied())
            .unwrap_or(cfg.screening_days);
        // never panics: a period too long for any date ends at 9999-12-31T23:59:59Z
        (at, time::add_days_clamped(at, days))
    });
    let source = webhook.source();
    let mut base = properties([
        (Property::Status, Some(json!(status.as_str()))),
        (Property::SparkloopId, sub.id.clone().map(Value::String)),
        (Property::Partner, partner.name.map(Value::String)),
        (Property::Campaign, campaign.id.clone().map(Value::String)),
        (
            Property::ReferralCode,
            sub.referral_code.clone().map(Value::String),
        ),
    ]);
    let transition = Transition {
        email: email.clone(),
        status,
        sparkloop_id: sub.id.clone().or(sub.uuid.clone()),
        campaign_id: campaign.id.or_else(|| webhook.campaign_id.clone()),
        partner_id,
        source: Some(source.to_string()),
        screening,
        at,
        cause: env.kind.to_string(),
    };
    let call = match status {
        ReferralStatus::Pending => {
            base.insert(Property::Source, json!(source));
            EspCall::Upsert {
                email,
                first_name: sub.first_name,
                source: Some(source.into()),
                properties: base,
            }
        }
        // A contact never added must be added: an update finds nothing (eSputnik, without
        // field ids, would not even be called).
        ReferralStatus::Verified if add => EspCall::Upsert {
            email,
            first_name: None,
            source: Some(source.into()),
            properties: base,
        },
        ReferralStatus::Verified => EspCall::Properties {
            email,
            properties: base,
        },
        ReferralStatus::Rejected => EspCall::Unsubscribe {
            email,
            properties: base,
        },
    };
    Plan {
        transition: Some(transition),
        esp: vec![call],
        note: None,
    }
}

/// Someone was referred: the referrer's counts and link.
fn new_referral(webhook: &Webhook) -> Plan {
    let referrer = webhook.referrer.clone().unwrap_or_default();
    let Some(email) = referrer.email else {
        return Plan::nothing("new_referral without a referrer email");
    };
    Plan {
        esp: vec![EspCall::Properties {
            email,
            properties: properties([
                (Property::Referrals, referrer.tot_referrals),
                (
                    Property::ReferralLink,
                    referrer.referral_link.map(Value::String),
                ),
                (
                    Property::ReferralCode,
                    referrer.referral_code.map(Value::String),
                ),
            ]),
        }],
        ..Plan::default()
    }
}

/// A referrer's reward, unlocked or redeemed (`property` says which).
fn reward(env: &Envelope, webhook: &Webhook, property: Property) -> Plan {
    let sub = webhook.subscriber.clone().unwrap_or_default();
    let Some(email) = sub.email.or_else(|| env.subscriber.email.clone()) else {
        return Plan::nothing("reward event without an email");
    };
    let reward = webhook.reward.as_ref().and_then(|r| r.name.clone());
    Plan {
        esp: vec![EspCall::Properties {
            email,
            properties: properties([
                (Property::Referrals, sub.tot_referrals),
                (Property::ReferralLink, sub.referral_link.map(Value::String)),
                (
                    Property::Coupon,
                    webhook.coupon_code.clone().map(Value::String),
                ),
                (property, reward.map(Value::String)),
            ]),
        }],
        ..Plan::default()
    }
}

/// The engagement criteria a referral must meet during screening (SparkLoop's help-center
/// examples: "click once in the first two weeks", "open two of four emails in the first month").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criteria {
    #[serde(default)]
    pub min_opens: u32,
    #[serde(default)]
    pub min_clicks: u32,
    /// With `min_opens_of_first`: count opens of the first `first_emails` deliveries only.
    #[serde(default)]
    pub first_emails: u32,
    #[serde(default)]
    pub min_opens_of_first: u32,
    /// `true`: any one criterion suffices; `false` (default): every set criterion must hold.
    #[serde(default)]
    pub any: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passes,
    /// Below the criteria; the reason lists what was measured.
    Reject(String),
    /// Not yet near the end of screening, or not a pending referral.
    NotDue,
    /// Screening ended more than `before_end` ago without a verdict (the screener was off or
    /// down): SparkLoop has made its own assessment, a reject now would come too late.
    Expired,
}

/// Decides one referral at `now`. Only pending referrals whose deadline is within
/// `before_end` either side of `now` are judged; signals are counted from the start of
/// screening.
pub fn screen(
    state: &SubscriberState,
    criteria: &Criteria,
    now: DateTime<Utc>,
    before_end: Duration,
) -> Verdict {
    let (Some(ReferralStatus::Pending), Some(start), Some(deadline)) = (
        state.referral_status,
        state.screening_started_at,
        state.screening_deadline,
    ) else {
        return Verdict::NotDue;
    };
    // Compared as `deadline ± before_end`, saturating at chrono's ends: a huge window or a
    // far deadline reads as "not due" or "judged", never as a panic.
    let (low, high) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let negative = before_end < Duration::zero();
    let due_from = deadline
        .checked_sub_signed(before_end)
        .unwrap_or(if negative { high } else { low });
    let judged_until = deadline
        .checked_add_signed(before_end)
        .unwrap_or(if negative { low } else { high });
    if now < due_from {
        return Verdict::NotDue;
    }
    if now > judged_until {
        return Verdict::Expired;
    }
    let measured = Measured::of(state, start, deadline, criteria.first_emails);
    verdict(criteria, &measured)
}

/// What a referral did during its screening period.
#[derive(Clone, Copy)]
struct Measured {
    opens: u32,
    clicks: u32,
    /// Distinct deliveries among the first `first_emails` that were opened.
    opened_first: u32,
}

impl Measured {
    fn of(
        state: &SubscriberState,
        start: DateTime<Utc>,
        deadline: DateTime<Utc>,
        first_emails: u32,
    ) -> Measured {
        let in_window = |kind: Signal| {
            state
                .signals
                .iter()
                .filter(move |e| e.kind == kind && e.at >= start && e.at <= deadline)
        };
        let mut deliveries: Vec<&SignalEntry> = in_window(Signal::Delivery).collect();
        deliveries.sort_by_key(|e| e.at);
        let first: Vec<&str> = deliveries
            .iter()
            .take(first_emails as usize)
            .filter_map(|e| e.message.as_deref())
            .collect();
        let mut opened_first: Vec<&str> = in_window(Signal::Open)
            .filter_map(|e| e.message.as_deref())
            .filter(|m| first.contains(m))
            .collect();
        opened_first.sort_unstable();
        opened_first.dedup();
        Measured {
            opens: in_window(Signal::Open).count() as u32,
            clicks: in_window(Signal::Click).count() as u32,
            opened_first: opened_first.len() as u32,
        }
    }
}

/// The criteria against what was measured.
fn verdict(criteria: &Criteria, m: &Measured) -> Verdict {
    let Measured {
        opens,
        clicks,
        opened_first,
    } = *m;
    let mut checks: Vec<(bool, String)> = Vec::new();
    if criteria.min_opens > 0 {
        checks.push((
            opens >= criteria.min_opens,
            format!("opens {opens}/{}", criteria.min_opens),
        ));
    }
    if criteria.min_clicks > 0 {
        checks.push((
            clicks >= criteria.min_clicks,
            format!("clicks {clicks}/{}", criteria.min_clicks),
        ));
    }
    if criteria.first_emails > 0 && criteria.min_opens_of_first > 0 {
        checks.push((
            opened_first >= criteria.min_opens_of_first,
            format!(
                "opened {opened_first} of the first {} emails (need {})",
                criteria.first_emails, criteria.min_opens_of_first
            ),
        ));
    }
    if checks.is_empty() {
        return Verdict::Passes; // no criteria configured: never reject
    }
    let pass = if criteria.any {
        checks.iter().any(|c| c.0)
    } else {
        checks.iter().all(|c| c.0)
    };
    if pass {
        Verdict::Passes
    } else {
        Verdict::Reject(
            checks
                .into_iter()
                .map(|c| c.1)
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::envelope::{Provider, Subscriber, ENVELOPE_VERSION};
    use serde_json::value::RawValue;

    fn env(kind: &str, payload: Value) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            provider: Provider::Sparkloop,
            kind: kind.into(),
            dedupe_id: "d".into(),
            received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            occurred_at: None,
            subscriber: Subscriber::default(),
            parked: None,
            payload: RawValue::from_string(payload.to_string()).unwrap(),
        }
    }

    fn partner(kind: &str, status: &str, upscribe: bool) -> Envelope {
        env(
            kind,
            json!({"type": kind, "campaign": {"id": "pc_1", "upscribe": upscribe},
            "subscriber": {"id": "sub_1", "email": "r@x.io", "first_name": "Ann", "referral_status": status, "partner_id": "partner_a", "referral_code": "c0de"},
            "partner": {"id": "partner_a", "name": "Partner A"}}),
        )
    }

    #[allow(clippy::too_many_lines)] // a table test: one row per case reads better than helpers
    #[test]
    fn partner_referrals_by_table() {
        let cfg = LifecycleConfig {
            screening_days: 14,
            partner_days: BTreeMap::from([("partner_a".into(), 7)]),
        };
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let cases = [
            (
                "new_partner_pending_referral",
                "pending",
                true,
                ReferralStatus::Pending,
                "upsert",
            ),
            (
                "new_partner_pending_referral",
                "pending",
                false,
                ReferralStatus::Pending,
                "upsert",
            ),
            (
                "new_partner_referral",
                "verified",
                false,
                ReferralStatus::Verified,
                "properties",
            ),
            (
                "sync_subscriber",
                "rejected",
                false,
                ReferralStatus::Rejected,
                "unsubscribe",
            ),
            (
                "sync_subscriber",
                "pending",
                false,
                ReferralStatus::Pending,
                "upsert",
            ),
            (
                "sync_subscriber",
                "confirmed",
                false,
                ReferralStatus::Verified,
                "properties",
            ),
        ];
        for (kind, status, upscribe, want_status, want_call) in cases {
            let plan = plan(&partner(kind, status, upscribe), &cfg);
            let t = plan.transition.as_ref().unwrap();
            assert_eq!(t.status, want_status, "{kind} {status}");
            assert_eq!(t.email, "r@x.io");
            assert_eq!(t.sparkloop_id.as_deref(), Some("sub_1"));
            assert_eq!(t.partner_id.as_deref(), Some("partner_a"));
            assert_eq!(plan.esp.len(), 1);
            assert_eq!(plan.esp[0].name(), want_call, "{kind} {status}");
            if want_status == ReferralStatus::Pending {
                assert_eq!(
                    t.screening,
                    Some((t0, t0 + Duration::days(7))),
                    "per-partner period"
                );
                let EspCall::Upsert {
                    source,
                    properties,
                    first_name,
                    ..
                } = &plan.esp[0]
                else {
                    panic!()
                };
                assert_eq!(
                    source.as_deref(),
                    Some(if upscribe {
                        "sparkloop-upscribe"
                    } else {
                        "sparkloop-magic"
                    })
                );
                assert_eq!(properties[&Property::Status], "pending");
                assert_eq!(first_name.as_deref(), Some("Ann"));
            }
        }
        let p = plan(
            &env(
                "sync_subscriber",
                json!({"subscriber": {"email": "r@x.io", "referral_status": "weird"}}),
            ),
            &cfg,
        );
        assert_eq!((p.transition, p.esp.len()), (None, 0));
        let p = plan(
            &env("new_partner_pending_referral", json!({"subscriber": {}})),
            &cfg,
        );
        assert_eq!(p.note, Some("referral event without an email"));
    }

    #[test]
    fn repairs_are_planned_as_the_missed_webhook_and_an_add_always_adds() {
        use crate::core::reconcile::{repair_envelope, EspContact, Referral, Repair};
        let cfg = LifecycleConfig::default();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let referral = |status| Referral {
            uuid: "sub_1".into(),
            email: "r@x.io".into(),
            status,
            created_at: DateTime::from_timestamp(1_700_000_000, 0),
        };
        use ReferralStatus::*;
        let cases = [
            (Repair::EspAdd, Pending, "upsert"),
            (Repair::EspAdd, Verified, "upsert"),
            (Repair::StateCorrection, Pending, "upsert"),
            (Repair::StateCorrection, Verified, "properties"),
            (Repair::StateCorrection, Rejected, "unsubscribe"),
            (Repair::EspUnsubscribe, Rejected, "unsubscribe"),
        ];
        for (repair, status, call) in cases {
            let env = repair_envelope(repair, &referral(status), EspContact::Absent, now);
            let p = plan(&env, &cfg);
            let t = p.transition.as_ref().expect("a transition");
            assert_eq!(
                (t.status, t.sparkloop_id.as_deref(), p.esp[0].name()),
                (status, Some("sub_1"), call),
                "{repair:?} {status:?}"
            );
            assert_eq!(t.cause, env.kind.as_str());
        }
        // queued before repairs had their own kinds: the flag in the payload still adds
        let legacy = env(
            "new_partner_referral",
            json!({"repair": "esp_add", "subscriber": {"email": "r@x.io", "id": "sub_1"}}),
        );
        assert_eq!(plan(&legacy, &cfg).esp[0].name(), "upsert");
    }

    #[test]
    fn referral_program_events_update_properties() {
        let cfg = LifecycleConfig::default();
        let p = plan(
            &env(
                "new_referral",
                json!({"subscriber": {"email": "new@x.io"}, "referrer": {"email": "adv@x.io", "tot_referrals": 4, "referral_link": "https://l", "referral_code": "f9"}}),
            ),
            &cfg,
        );
        assert_eq!(p.transition, None);
        let EspCall::Properties { email, properties } = &p.esp[0] else {
            panic!()
        };
        assert_eq!(email, "adv@x.io");
        assert_eq!(properties[&Property::Referrals], 4);
        assert_eq!(properties[&Property::ReferralLink], "https://l");
        let p = plan(
            &env(
                "reward_unlocked",
                json!({"coupon_code": "9w", "subscriber": {"email": "adv@x.io", "tot_referrals": 4}, "reward": {"name": "Report"}}),
            ),
            &cfg,
        );
        let EspCall::Properties { properties, .. } = &p.esp[0] else {
            panic!()
        };
        assert_eq!(
            (
                properties[&Property::Reward].as_str(),
                properties[&Property::Coupon].as_str()
            ),
            (Some("Report"), Some("9w"))
        );
        let p = plan(
            &env(
                "reward_redeemed",
                json!({"subscriber": {"email": "adv@x.io"}, "reward": {"name": "Shirt"}}),
            ),
            &cfg,
        );
        let EspCall::Properties { properties, .. } = &p.esp[0] else {
            panic!()
        };
        assert_eq!(properties[&Property::RewardRedeemed], "Shirt");
        assert!(!properties.contains_key(&Property::Reward));
        assert_eq!(
            plan(&env("new_offer_lead", json!({})), &cfg).note,
            Some("no ESP effect")
        );
    }

    fn pending(start: i64, days: i64, signals: &[(&str, Option<&str>, i64)]) -> SubscriberState {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        SubscriberState {
            email: "r@x.io".into(),
            referral_status: Some(ReferralStatus::Pending),
            screening_started_at: Some(t(start)),
            screening_deadline: Some(t(start + days * 86_400)),
            signals: signals
                .iter()
                .map(|(k, m, at)| SignalEntry {
                    kind: Signal::parse(k).expect("a signal name"),
                    message: m.map(Into::into),
                    at: t(*at),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[allow(clippy::too_many_lines)] // a table test: one row per case reads better than helpers
    #[test]
    fn screening_by_table() {
        let day = 86_400;
        let now = DateTime::from_timestamp(13 * day + 3_600, 0).unwrap(); // 23 h before a 14-day deadline
        let window = Duration::hours(24);
        let click_once = Criteria {
            min_clicks: 1,
            ..Default::default()
        };
        let two_of_four = Criteria {
            first_emails: 4,
            min_opens_of_first: 2,
            ..Default::default()
        };
        let opens_or_clicks = Criteria {
            min_opens: 3,
            min_clicks: 1,
            any: true,
            ..Default::default()
        };
        let both = Criteria {
            min_opens: 1,
            min_clicks: 1,
            ..Default::default()
        };
        let none = Criteria::default();
        let d = |m: &'static str, at| ("deliveries", Some(m), at);
        let o = |m: &'static str, at| ("opens", Some(m), at);
        let c = |at| ("clicks", None, at);
        let cases: Vec<(&str, SubscriberState, &Criteria, bool)> = vec![
            (
                "no click",
                pending(0, 14, &[o("m1", 10)]),
                &click_once,
                false,
            ),
            ("one click", pending(0, 14, &[c(100)]), &click_once, true),
            (
                "click before screening started",
                pending(1_000, 14, &[c(10)]),
                &click_once,
                false,
            ),
            (
                "opened 2 of first 4",
                pending(
                    0,
                    14,
                    &[
                        d("m1", 1),
                        d("m2", 2),
                        d("m3", 3),
                        d("m4", 4),
                        d("m5", 5),
                        o("m1", 6),
                        o("m3", 7),
                    ],
                ),
                &two_of_four,
                true,
            ),
            (
                "opened only the 5th and one of the first",
                pending(
                    0,
                    14,
                    &[
                        d("m1", 1),
                        d("m2", 2),
                        d("m3", 3),
                        d("m4", 4),
                        d("m5", 5),
                        o("m5", 6),
                        o("m1", 7),
                    ],
                ),
                &two_of_four,
                false,
            ),
            (
                "same email opened twice counts once",
                pending(0, 14, &[d("m1", 1), o("m1", 2), o("m1", 3)]),
                &two_of_four,
                false,
            ),
            (
                "any: a click is enough",
                pending(0, 14, &[c(5)]),
                &opens_or_clicks,
                true,
            ),
            (
                "any: neither",
                pending(0, 14, &[o("m", 5)]),
                &opens_or_clicks,
                false,
            ),
            (
                "all: open but no click",
                pending(0, 14, &[o("m", 5)]),
                &both,
                false,
            ),
            ("all: both", pending(0, 14, &[o("m", 5), c(6)]), &both, true),
            (
                "no criteria never rejects",
                pending(0, 14, &[]),
                &none,
                true,
            ),
        ];
        for (name, state, criteria, passes) in cases {
            let v = screen(&state, criteria, now, window);
            assert_eq!(matches!(v, Verdict::Passes), passes, "{name}: {v:?}");
            assert_ne!(v, Verdict::NotDue, "{name}");
        }
        // not due yet, and not pending
        let early = DateTime::from_timestamp(5 * day, 0).unwrap();
        assert_eq!(
            screen(&pending(0, 14, &[]), &click_once, early, window),
            Verdict::NotDue
        );
        // judged up to `window` after the deadline (a screener that was down an hour), not later
        let day14 = DateTime::from_timestamp(14 * day, 0).unwrap();
        for (at, want_expired) in [
            (day14 + window - chrono::Duration::seconds(1), false),
            (day14 + window + chrono::Duration::seconds(1), true),
            (day14 + chrono::Duration::days(60), true),
        ] {
            let v = screen(&pending(0, 14, &[]), &click_once, at, window);
            assert_eq!(v == Verdict::Expired, want_expired, "{at}: {v:?}");
        }
        let mut verified = pending(0, 14, &[]);
        verified.referral_status = Some(ReferralStatus::Verified);
        assert_eq!(screen(&verified, &click_once, now, window), Verdict::NotDue);
        let Verdict::Reject(why) = screen(&pending(0, 14, &[]), &both, now, window) else {
            panic!()
        };
        assert_eq!(why, "opens 0/1, clicks 0/1");
    }

    #[test]
    fn statuses() {
        assert!(ReferralStatus::Rejected.rank() > ReferralStatus::Verified.rank());
        assert!(ReferralStatus::Verified.rank() > ReferralStatus::Pending.rank());
        assert_eq!(
            ReferralStatus::parse("confirmed"),
            Some(ReferralStatus::Verified)
        );
        for s in [
            ReferralStatus::Pending,
            ReferralStatus::Verified,
            ReferralStatus::Rejected,
        ] {
            assert_eq!(ReferralStatus::parse(s.as_str()), Some(s));
        }
    }
}
