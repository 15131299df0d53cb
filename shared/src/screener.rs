//! The engagement screener: finds pending referrals near the end of their screening period
//! whose engagement is below the criteria and queues a reject for each (so dedupe, retries
//! and the DLQ apply). Off unless `SCREENING_ENABLED=true`: it rejects referrals the
//! publisher would otherwise pay for.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::core::envelope::{derive_dedupe_id, Envelope, Normalized, Provider, Subscriber};
use crate::core::lifecycle::{screen, Criteria, LifecycleConfig, Verdict};
use crate::core::{InternalKind, Kind};
use crate::ingest::to_message;
use crate::ports::{EventQueue, QueueError, StoreError, SubscriberStore};
use crate::telemetry::metrics;

/// Per-partner screening rules (`SCREENING_PARTNER_RULES`), keyed by SparkLoop partner id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerRule {
    #[serde(default)]
    pub days: Option<i64>,
    #[serde(flatten)]
    pub criteria: Criteria,
}

/// Read from the environment by `crate::config` (`ScreeningConfig::from_env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningConfig {
    pub enabled: bool,
    pub days: i64,
    pub before_end: Duration,
    pub criteria: Criteria,
    pub partners: BTreeMap<String, PartnerRule>,
}

impl Default for ScreeningConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            days: 14,
            before_end: Duration::hours(24),
            criteria: Criteria::default(),
            partners: BTreeMap::new(),
        }
    }
}

impl ScreeningConfig {
    /// The screening periods the worker records when a referral enters screening.
    pub fn lifecycle(&self) -> LifecycleConfig {
        LifecycleConfig {
            screening_days: self.days,
            partner_days: self
                .partners
                .iter()
                .filter_map(|(k, r)| r.days.map(|d| (k.clone(), d)))
                .collect(),
        }
    }

    fn criteria_for(&self, partner: Option<&str>) -> &Criteria {
        match partner.and_then(|p| self.partners.get(p)) {
            Some(rule) if rule.criteria != Criteria::default() => &rule.criteria,
            _ => &self.criteria,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScreenReport {
    pub checked: usize,
    pub passed: usize,
    pub not_due: usize,
    /// Pending referrals whose screening ended before they were judged: reported, not rejected.
    #[serde(default)]
    pub expired: usize,
    /// (email, why) for each referral below the criteria.
    pub rejected: Vec<(String, String)>,
    /// Referrals below the criteria whose ESP add never succeeded: never emailed, so their
    /// engagement says nothing. Reported and counted, left pending.
    #[serde(default)]
    pub not_emailed: Vec<String>,
    pub dry_run: bool,
}

/// The envelope that asks the worker to reject a referral. Its dedupe id is fixed per
/// referral and screening period, so repeated runs cannot reject twice.
pub fn reject_envelope(
    email: &str,
    sparkloop_id: Option<&str>,
    started: Option<DateTime<Utc>>,
    reason: &str,
    now: DateTime<Utc>,
) -> Envelope {
    let started_text = started.map(|s| s.to_rfc3339()).unwrap_or_default();
    let payload = json!({"email": email, "sparkloop_id": sparkloop_id, "reason": reason, "screening_started_at": started_text});
    Envelope::new(
        Provider::Sparkbridge,
        derive_dedupe_id(&[
            InternalKind::ScreeningReject.as_str(),
            &email.to_ascii_lowercase(),
            &started_text,
        ]),
        now,
        Normalized {
            kind: Kind::Internal(InternalKind::ScreeningReject),
            subscriber: Subscriber {
                email: Some(email.into()),
                sparkloop_id: sparkloop_id.map(Into::into),
                ..Default::default()
            },
            occurred_at: Some(now),
            parked: None,
            payload: serde_json::value::RawValue::from_string(payload.to_string())
                .expect("json! is valid JSON"),
        },
    )
}

/// What stopped a screening run: the state table or the queue failed. The run is retried by
/// the next schedule; what it already queued is deduped by the worker.
#[derive(Debug, thiserror::Error)]
pub enum ScreenerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The screener function: its clients and settings, built once per execution environment.
pub struct Screener {
    pub store: Arc<dyn SubscriberStore>,
    pub queue: Arc<dyn EventQueue>,
    pub cfg: ScreeningConfig,
    /// `SCREENING_DRY_RUN`: report the rejects, queue none.
    pub dry_run: bool,
}

impl Screener {
    /// One scheduled run, logged as one line.
    pub async fn scheduled_run(&self, now: DateTime<Utc>) -> Result<ScreenReport, ScreenerError> {
        let r = run(&self.store, &self.queue, &self.cfg, now, self.dry_run).await?;
        tracing::info!(
            checked = r.checked,
            passed = r.passed,
            not_due = r.not_due,
            expired = r.expired,
            rejected = r.rejected.len(),
            dry_run = r.dry_run,
            "screening run"
        );
        Ok(r)
    }
}

pub async fn run(
    store: &Arc<dyn SubscriberStore>,
    queue: &Arc<dyn EventQueue>,
    cfg: &ScreeningConfig,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<ScreenReport, ScreenerError> {
    let mut report = ScreenReport {
        dry_run,
        ..Default::default()
    };
    if !cfg.enabled && !dry_run {
        tracing::info!("screening is off (SCREENING_ENABLED is not true); nothing to do");
        return Ok(report);
    }
    let candidates = store.screening_candidates(now + cfg.before_end).await?;
    for state in candidates {
        report.checked += 1;
        match screen(
            &state,
            cfg.criteria_for(state.partner_id.as_deref()),
            now,
            cfg.before_end,
        ) {
            Verdict::NotDue => report.not_due += 1,
            Verdict::Expired => {
                report.expired += 1;
                tracing::warn!(email = %crate::core::mask::mask_email(&state.email), deadline = ?state.screening_deadline, dry_run, "screening ended before this referral was judged; not rejected (too late for SparkLoop)");
                if !dry_run {
                    store
                        .mark_screened(&state.email, "screening ended before it was judged")
                        .await?;
                }
            }
            Verdict::Passes => {
                report.passed += 1;
                if !dry_run {
                    store.mark_screened(&state.email, "passed").await?;
                }
            }
            Verdict::Reject(_) if state.esp_status.is_none() => {
                tracing::warn!(email = %crate::core::mask::mask_email(&state.email), dry_run, "below the screening criteria, but never added to the ESP (so never emailed): not rejected");
                if !dry_run {
                    metrics::count(metrics::Metric::ScreeningNotEmailed, 1, &[]);
                }
                report.not_emailed.push(state.email.clone());
            }
            Verdict::Reject(why) => {
                tracing::info!(email = %crate::core::mask::mask_email(&state.email), reason = %why, dry_run, "below the screening criteria");
                if !dry_run {
                    let env = reject_envelope(
                        &state.email,
                        state.sparkloop_id.as_deref(),
                        state.screening_started_at,
                        &why,
                        now,
                    );
                    queue.enqueue(vec![to_message(&env)]).await?;
                    store
                        .mark_screened(&state.email, &format!("reject queued: {why}"))
                        .await?;
                    metrics::count(metrics::Metric::ScreeningRejects, 1, &[]);
                }
                report.rejected.push((state.email.clone(), why));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory_queue::MemoryQueue;
    use crate::adapters::memory_store::MemoryStore;
    use crate::core::{ReferralStatus, Transition};

    fn config() -> ScreeningConfig {
        ScreeningConfig {
            enabled: true,
            // everyone else: no criteria, never rejected
            partners: serde_json::from_str(
                r#"{"partner_strict": {"min_clicks": 1}, "partner_quick": {"days": 7}}"#,
            )
            .unwrap(),
            ..ScreeningConfig::default()
        }
    }

    #[test]
    fn partner_rules_choose_criteria_and_periods() {
        let cfg = config();
        assert_eq!(cfg.criteria_for(Some("partner_strict")).min_clicks, 1);
        // a rule with only a period keeps the default criteria
        assert_eq!(cfg.criteria_for(Some("partner_quick")), &cfg.criteria);
        assert_eq!(cfg.criteria_for(None), &cfg.criteria);
        let l = cfg.lifecycle();
        assert_eq!(l.screening_days, 14);
        assert_eq!(
            l.partner_days,
            BTreeMap::from([("partner_quick".into(), 7)])
        );
    }

    /// Records that the referral's ESP add succeeded, as the worker's completion does.
    async fn added_to_esp(store: &MemoryStore, email: &str) {
        use crate::core::dedupe::LeaseRequest;
        use crate::core::StateWrite;
        use crate::ports::IdempotencyStore;
        let lease = LeaseRequest {
            owner: "w".into(),
            payload_hash: "h".into(),
            now_ms: 0,
            lease_until_ms: i64::MAX,
            expires_at: i64::MAX / 2_000,
        };
        store.acquire(email, &lease).await.unwrap();
        let added = StateWrite::EspStatus {
            email: email.into(),
            status: "added (new_partner_pending_referral)".into(),
            at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        assert!(store
            .complete(email, "w", 0, "done", &[added])
            .await
            .unwrap());
    }

    /// Three referrals due now without a click: only the strict partner's that was emailed
    /// is rejected; the one whose ESP add never succeeded is reported as not emailed.
    #[tokio::test]
    async fn each_referral_is_judged_by_its_partners_rule() {
        let memory_store = Arc::new(MemoryStore::new());
        let store: Arc<dyn SubscriberStore> = memory_store.clone();
        let memory = Arc::new(MemoryQueue::new(
            std::time::Duration::from_secs(30),
            5,
            262_144,
        ));
        let queue: Arc<dyn EventQueue> = memory.clone();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for (email, partner) in [
            ("s@x.io", "partner_strict"),
            ("o@x.io", "partner_other"),
            ("never@x.io", "partner_strict"),
        ] {
            store
                .apply_transition(&Transition {
                    email: email.into(),
                    status: ReferralStatus::Pending,
                    sparkloop_id: Some(format!("sub_{partner}")),
                    campaign_id: None,
                    partner_id: Some(partner.into()),
                    source: None,
                    screening: Some((now - Duration::days(14), now + Duration::hours(2))),
                    at: now - Duration::days(14),
                    cause: "test".into(),
                })
                .await
                .unwrap();
        }
        added_to_esp(&memory_store, "s@x.io").await;
        added_to_esp(&memory_store, "o@x.io").await;
        let report = run(&store, &queue, &config(), now, false).await.unwrap();
        assert_eq!((report.checked, report.passed), (3, 1));
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].0, "s@x.io");
        assert_eq!(report.rejected[0].1, "clicks 0/1");
        assert_eq!(report.not_emailed, ["never@x.io"]);
        assert_eq!(
            memory.depth(),
            1,
            "one reject queued, none for the referral never emailed"
        );
        let left = store
            .screening_candidates(now + Duration::days(1))
            .await
            .unwrap();
        assert!(
            left.iter().any(|s| s.email == "never@x.io"),
            "the referral never emailed stays pending"
        );
    }
}
