//! Reconciliation: compare SparkLoop, the ESP and our own state for one referral, and say
//! what to repair. Every repair is an envelope the webhooks would have produced, so dedupe,
//! retries, back-off and the DLQ apply; its dedupe id is fixed per divergence, so running the
//! reconciler twice repairs once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::core::envelope::{derive_dedupe_id, Envelope, Normalized, Provider, Subscriber};
use crate::core::kind::{InternalKind, Kind, SparkloopKind};
use crate::core::outbound::CallOutcome;
use crate::core::subscriber::{ReferralStatus, SubscriberState};

/// One referral as SparkLoop lists it (`GET /v2/subscribers?type=referrals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub uuid: String,
    pub email: String,
    pub status: ReferralStatus,
    pub created_at: Option<DateTime<Utc>>,
}

/// The contact's state in the ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EspContact {
    Absent,
    Subscribed,
    Unsubscribed,
    /// The ESP could not tell (dry run, or no lookup available).
    Unknown,
}

impl EspContact {
    /// The serialized name, for dedupe ids and operator output.
    pub fn as_str(self) -> &'static str {
        match self {
            EspContact::Absent => "absent",
            EspContact::Subscribed => "subscribed",
            EspContact::Unsubscribed => "unsubscribed",
            EspContact::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repair {
    /// Pending or verified in SparkLoop, unsubscribed / bounced / deleted in the ESP.
    SparkloopUnsubscribe,
    /// Rejected in SparkLoop, still subscribed in the ESP.
    EspUnsubscribe,
    /// Pending or verified in SparkLoop, never added to the ESP.
    EspAdd,
    /// Our state is behind SparkLoop's.
    StateCorrection,
}

impl Repair {
    pub fn as_str(self) -> &'static str {
        match self {
            Repair::SparkloopUnsubscribe => "sparkloop_unsubscribe",
            Repair::EspUnsubscribe => "esp_unsubscribe",
            Repair::EspAdd => "esp_add",
            Repair::StateCorrection => "state_correction",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Agrees,
    Repair(Repair),
    /// Seen and reported, not repaired (our state is ahead of SparkLoop's).
    Report(String),
}

/// Compares one referral. `local` is our subscriber record, if any: its ESP status (written
/// only once an ESP call for the contact succeeded) tells a contact that was in the ESP and
/// later deleted (SparkLoop must hear of it) from one whose add never went through, parked or
/// still retrying (add it; unsubscribing it would cost the partner a real referral).
pub fn compare(r: &Referral, esp: EspContact, local: Option<&SubscriberState>) -> Finding {
    let known_here = local.and_then(|s| s.referral_status);
    if let Some(ours) = known_here {
        if ours.rank() > r.status.rank() {
            return Finding::Report(format!(
                "our state is {} but SparkLoop says {}",
                ours.as_str(),
                r.status.as_str()
            ));
        }
    }
    let was_in_esp = local.is_some_and(|s| s.esp_status.is_some());
    let finding = match (r.status, esp) {
        (ReferralStatus::Rejected, EspContact::Subscribed) => Some(Repair::EspUnsubscribe),
        (ReferralStatus::Rejected, _) => None,
        (_, EspContact::Unsubscribed) => Some(Repair::SparkloopUnsubscribe),
        (_, EspContact::Absent) if was_in_esp => Some(Repair::SparkloopUnsubscribe),
        (_, EspContact::Absent) => Some(Repair::EspAdd),
        (_, EspContact::Subscribed | EspContact::Unknown) => None,
    };
    match finding {
        Some(repair) => Finding::Repair(repair),
        None if known_here != Some(r.status) => Finding::Repair(Repair::StateCorrection),
        None => Finding::Agrees,
    }
}

/// The API a run reads: SparkLoop's referral list, or the ESP's contact lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Sparkloop,
    Esp,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Sparkloop => "sparkloop",
            Side::Esp => "esp",
        }
    }
}

/// Failed reads in a row (each after its own retries) that stop a side.
pub const MAX_CONSECUTIVE_FAILED_READS: u32 = 3;

/// Whether one failed read (after its retries) stops its side at once. Every permanent
/// failure does (a 3xx, 401, 403, 404, 405, an unreadable 200: a wrong URL or key answers
/// every read the same way) except 400 and 422, which can be about one contact's address.
/// Retryable failures (5xx, 429, timeouts) stop it only when they persist
/// ([`ReadFailures`]).
pub fn stops_side_at_once(failure: &CallOutcome) -> bool {
    match failure {
        CallOutcome::Permanent { status, .. } => !matches!(status, 400 | 422),
        _ => false,
    }
}

/// Counts a side's failed reads in a row: a side stops at the first failure that
/// [`stops_side_at_once`], or after `limit` failures in a row of any kind. A read that
/// succeeds resets the count.
#[derive(Debug, Clone)]
pub struct ReadFailures {
    in_a_row: u32,
    limit: u32,
}

impl ReadFailures {
    pub fn new(limit: u32) -> Self {
        Self {
            in_a_row: 0,
            limit: limit.max(1),
        }
    }

    pub fn succeeded(&mut self) {
        self.in_a_row = 0;
    }

    /// Records a failed read; true when its side must stop.
    pub fn failed(&mut self, failure: &CallOutcome) -> bool {
        self.in_a_row += 1;
        stops_side_at_once(failure) || self.in_a_row >= self.limit
    }

    pub fn in_a_row(&self) -> u32 {
        self.in_a_row
    }
}

/// Whether `unsubscribes` SparkLoop unsubscribes exceed `max_share` of the `compared`
/// referrals (exactly at the share is allowed).
pub fn unsubscribe_share_exceeded(unsubscribes: usize, compared: usize, max_share: f64) -> bool {
    // the epsilon keeps 29 of 100 within 0.29, whose product is 28.999...
    unsubscribes as f64 > max_share * compared as f64 + 1e-9
}

/// The envelope that performs a repair.
pub fn repair_envelope(
    repair: Repair,
    r: &Referral,
    esp: EspContact,
    now: DateTime<Utc>,
) -> Envelope {
    let esp_text = esp.as_str();
    let dedupe_id = derive_dedupe_id(&[
        "reconcile",
        repair.as_str(),
        &r.uuid,
        r.status.as_str(),
        esp_text,
    ]);
    let created = r.created_at.map(|t| t.timestamp());
    let subscriber = Subscriber {
        email: Some(r.email.clone()),
        sparkloop_id: Some(r.uuid.clone()),
        ..Default::default()
    };
    // Each repair has its own kind. A SparkLoop-side repair is sparkbridge's own event; the
    // others carry the SparkLoop webhook that was missed, rebuilt from the API, and are
    // planned as that webhook would be (`sparkloop::Webhook::event`).
    let (provider, kind, payload) = match repair {
        Repair::SparkloopUnsubscribe => (
            Provider::Sparkbridge,
            InternalKind::ReconcileUnsubscribe,
            json!({"email": r.email, "sparkloop_id": r.uuid, "esp": esp_text, "reconciled": true}),
        ),
        Repair::EspUnsubscribe | Repair::EspAdd | Repair::StateCorrection => {
            let webhook = match r.status {
                ReferralStatus::Pending => SparkloopKind::NewPartnerPendingReferral,
                ReferralStatus::Verified => SparkloopKind::NewPartnerReferral,
                ReferralStatus::Rejected => SparkloopKind::SyncSubscriber,
            };
            let kind = match repair {
                Repair::EspAdd => InternalKind::ReconcileEspAdd,
                Repair::EspUnsubscribe => InternalKind::ReconcileEspUnsubscribe,
                _ => InternalKind::ReconcileStateCorrection,
            };
            (
                Provider::Sparkloop,
                kind,
                json!({"type": Kind::from(webhook), "reconciled": true,
                       "subscriber": {"id": r.uuid, "email": r.email, "referral_status": r.status.as_str(), "created_at": created}}),
            )
        }
    };
    Envelope::new(
        provider,
        dedupe_id,
        now,
        Normalized {
            kind: kind.into(),
            subscriber,
            occurred_at: r.created_at,
            parked: None,
            payload: serde_json::value::RawValue::from_string(payload.to_string())
                .expect("json! is valid JSON"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReferralStatus::*;

    fn referral(status: ReferralStatus) -> Referral {
        Referral {
            uuid: "sub_1".into(),
            email: "a@b.c".into(),
            status,
            created_at: DateTime::from_timestamp(1_700_000_000, 0),
        }
    }

    fn local(status: ReferralStatus) -> SubscriberState {
        SubscriberState {
            email: "a@b.c".into(),
            referral_status: Some(status),
            ..Default::default()
        }
    }

    /// Our record once an ESP call for the contact succeeded.
    fn added(status: ReferralStatus) -> SubscriberState {
        SubscriberState {
            esp_status: Some("added (new_partner_pending_referral)".into()),
            ..local(status)
        }
    }

    #[test]
    fn by_table() {
        use EspContact::*;
        use Finding::Repair as R;
        let cases: Vec<(ReferralStatus, EspContact, Option<SubscriberState>, Finding)> = vec![
            (Pending, Subscribed, Some(local(Pending)), Finding::Agrees),
            (
                Pending,
                Unsubscribed,
                Some(local(Pending)),
                R(Repair::SparkloopUnsubscribe),
            ),
            (
                Pending,
                Absent,
                Some(added(Pending)),
                R(Repair::SparkloopUnsubscribe),
            ),
            // the add was parked or is still retrying: add it, never unsubscribe it
            (Pending, Absent, Some(local(Pending)), R(Repair::EspAdd)),
            (Verified, Absent, Some(local(Verified)), R(Repair::EspAdd)),
            (Pending, Absent, None, R(Repair::EspAdd)),
            (Verified, Absent, None, R(Repair::EspAdd)),
            (
                Verified,
                Unsubscribed,
                Some(local(Verified)),
                R(Repair::SparkloopUnsubscribe),
            ),
            (
                Rejected,
                Subscribed,
                Some(local(Rejected)),
                R(Repair::EspUnsubscribe),
            ),
            (Rejected, Subscribed, None, R(Repair::EspUnsubscribe)),
            (
                Rejected,
                Unsubscribed,
                Some(local(Rejected)),
                Finding::Agrees,
            ),
            (Rejected, Absent, None, R(Repair::StateCorrection)),
            (Pending, Subscribed, None, R(Repair::StateCorrection)),
            (
                Verified,
                Subscribed,
                Some(local(Pending)),
                R(Repair::StateCorrection),
            ),
            (Pending, Unknown, Some(local(Pending)), Finding::Agrees),
            (
                Pending,
                Subscribed,
                Some(local(Rejected)),
                Finding::Report("our state is rejected but SparkLoop says pending".into()),
            ),
        ];
        for (status, esp, state, want) in cases {
            assert_eq!(
                compare(&referral(status), esp, state.as_ref()),
                want,
                "{status:?} {esp:?} {state:?}"
            );
        }
    }

    #[test]
    fn a_wrong_url_or_key_stops_a_side_at_the_first_failed_read() {
        let permanent = |status: u16| CallOutcome::Permanent {
            status,
            body: String::new(),
        };
        for status in [200, 301, 302, 401, 403, 404, 405, 410] {
            let mut f = ReadFailures::new(MAX_CONSECUTIVE_FAILED_READS);
            assert!(f.failed(&permanent(status)), "{status}");
        }
        // a 400 or 422 can be about one address: it stops the side only when it persists
        for status in [400, 422] {
            let mut f = ReadFailures::new(3);
            assert!(!f.failed(&permanent(status)) && !f.failed(&permanent(status)));
            assert!(f.failed(&permanent(status)), "third in a row");
        }
    }

    #[test]
    fn retryable_failures_stop_a_side_only_when_they_persist() {
        let retry = CallOutcome::Retry {
            reason: "HTTP 503".into(),
            retry_after: None,
        };
        let mut f = ReadFailures::new(3);
        assert!(!f.failed(&retry));
        assert!(!f.failed(&retry));
        f.succeeded();
        assert_eq!(f.in_a_row(), 0, "a read that succeeds resets the count");
        assert!(!f.failed(&retry) && !f.failed(&retry));
        assert!(f.failed(&retry), "three in a row");
    }

    #[test]
    fn unsubscribe_share_allows_up_to_the_share_and_no_more() {
        assert!(!unsubscribe_share_exceeded(5, 100, 0.05));
        assert!(unsubscribe_share_exceeded(6, 100, 0.05));
        assert!(!unsubscribe_share_exceeded(29, 100, 0.29), "float rounding");
        assert!(!unsubscribe_share_exceeded(0, 0, 0.05));
        assert!(unsubscribe_share_exceeded(1, 0, 0.05), "nothing compared");
        assert!(unsubscribe_share_exceeded(1, 1000, 0.0));
        assert!(!unsubscribe_share_exceeded(1000, 1000, 1.0));
    }

    #[test]
    fn esp_contact_names_are_its_serialized_names() {
        use EspContact::*;
        for c in [Absent, Subscribed, Unsubscribed, Unknown] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn repairs_have_their_own_kinds_and_carry_the_webhooks_that_were_missed() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let e = repair_envelope(
            Repair::EspUnsubscribe,
            &referral(Rejected),
            EspContact::Subscribed,
            now,
        );
        assert_eq!(
            (e.provider, e.kind.as_str()),
            (Provider::Sparkloop, "reconcile.esp_unsubscribe")
        );
        assert_eq!(
            e.payload_value()["subscriber"]["referral_status"],
            "rejected"
        );
        let (id, parsed) = crate::core::sparkloop::parse(e.payload.get().as_bytes()).unwrap();
        assert_eq!(
            parsed.kind, "sync_subscriber",
            "the payload is the webhook that was missed"
        );
        assert!(!id.is_empty());
        let add = repair_envelope(Repair::EspAdd, &referral(Pending), EspContact::Absent, now);
        assert_eq!(add.kind, "reconcile.esp_add");
        assert_eq!(add.payload_value()["type"], "new_partner_pending_referral");
        assert!(
            add.payload_value().get("repair").is_none(),
            "no flag in the payload"
        );
        let fix = repair_envelope(
            Repair::StateCorrection,
            &referral(Verified),
            EspContact::Subscribed,
            now,
        );
        assert_eq!(fix.kind, "reconcile.state_correction");
        let unsub = repair_envelope(
            Repair::SparkloopUnsubscribe,
            &referral(Pending),
            EspContact::Unsubscribed,
            now,
        );
        assert_eq!(
            (unsub.provider, unsub.kind.as_str()),
            (
                Provider::Sparkbridge,
                InternalKind::ReconcileUnsubscribe.as_str()
            )
        );
        // the same divergence always has the same id; another divergence another
        let again = repair_envelope(
            Repair::EspUnsubscribe,
            &referral(Rejected),
            EspContact::Subscribed,
            now + chrono::Duration::days(1),
        );
        assert_eq!(again.dedupe_id, e.dedupe_id);
        assert_ne!(unsub.dedupe_id, e.dedupe_id);
    }
}

/// One page of SparkLoop's referrals, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferralPage {
    pub referrals: Vec<Referral>,
    pub total_pages: u32,
}

/// Where a cut-off run resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub next_page: u32,
    pub since: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

/// Reads SparkLoop's list response. Entries without an email or a known status are skipped.
pub fn parse_referral_page(body: &serde_json::Value) -> ReferralPage {
    let referrals = body
        .get("subscribers")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|s| {
                    Some(Referral {
                        uuid: s.get("uuid").or_else(|| s.get("id"))?.as_str()?.to_string(),
                        email: s.get("email")?.as_str()?.to_string(),
                        status: ReferralStatus::parse(s.get("referral_status")?.as_str()?)?,
                        created_at: s
                            .get("created_at")
                            .and_then(|c| c.as_str())
                            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                            .map(|d| d.with_timezone(&Utc)),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let total_pages = body
        .pointer("/meta/total_pages")
        .and_then(|v| v.as_u64())
        .unwrap_or(1) as u32;
    ReferralPage {
        referrals,
        total_pages,
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn parses_the_documented_list_shape() {
        let body = json!({"subscribers": [
            {"uuid": "sub_4bc1056297", "email": "drago@sparkloop.app", "referral_status": "verified", "created_at": "2021-03-24T11:55:02.113Z"},
            {"uuid": "sub_2", "email": "x@y.z", "referral_status": "weird"},
            {"uuid": "sub_3", "referral_status": "pending"}
        ], "meta": {"per_page": 50, "page": 1, "total_pages": 7, "total_subscribers": 320}});
        let page = parse_referral_page(&body);
        assert_eq!(page.total_pages, 7);
        assert_eq!(page.referrals.len(), 1);
        assert_eq!(page.referrals[0].status, ReferralStatus::Verified);
        assert_eq!(
            page.referrals[0].created_at.unwrap().timestamp(),
            1_616_586_902
        );
        assert_eq!(
            parse_referral_page(&json!({})),
            ReferralPage {
                referrals: vec![],
                total_pages: 1
            }
        );
    }
}
