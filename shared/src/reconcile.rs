//! The reconciler: walks SparkLoop's referrals (newest first, back to a horizon), looks each
//! up in the ESP and in our state, and queues the webhook that was missed for every
//! divergence. Respects each API's rate limit (the clients' limiters), retries 429/5xx with
//! back-off, and saves a checkpoint after each page so a run cut off by the Lambda timeout
//! resumes where it stopped.

use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::config::number;
use crate::core::mask::mask_email;
use crate::core::outbound::CallOutcome;
use crate::core::reconcile::{compare, repair_envelope, Checkpoint, Finding, Referral};
use crate::ingest::to_message;
use crate::ports::{EspApi, EventQueue, SparkLoopApi, SubscriberStore};
use crate::telemetry::metrics;
use futures::stream::{self, StreamExt};

const CHECKPOINT: &str = "reconcile";
const LOOKUP_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// How far back to look (`RECONCILE_SINCE_DAYS`, default 37: the longest screening
    /// period, 30 days, plus a week).
    pub since: Duration,
    pub per_page: u32,
    /// Attempts per API call on 429/5xx/timeouts before the run stops (and can resume).
    pub attempts: u32,
    pub base_delay: StdDuration,
    /// Stop with a checkpoint after this many pages (`RECONCILE_MAX_PAGES`); the next run
    /// resumes. Keeps each run short, like the Lambda deadline does.
    pub max_pages: Option<u32>,
    /// Resume from a saved checkpoint (the scheduled runs). Off when an operator asks for a
    /// given horizon; dry runs never resume, so they always show the whole window.
    pub resume: bool,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            since: Duration::days(37),
            per_page: 100,
            attempts: 5,
            base_delay: StdDuration::from_secs(2),
            max_pages: None,
            resume: true,
        }
    }
}

impl ReconcileConfig {
    pub fn from_env() -> Result<Self, String> {
        let d = Self::default();
        Ok(Self {
            since: Duration::days(number("RECONCILE_SINCE_DAYS", 37i64)?),
            per_page: number("RECONCILE_PAGE_SIZE", d.per_page)?.clamp(1, 200),
            max_pages: std::env::var("RECONCILE_MAX_PAGES")
                .ok()
                .map(|_| number("RECONCILE_MAX_PAGES", 0u32))
                .transpose()?,
            ..d
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub checked: usize,
    pub in_agreement: usize,
    pub repaired: BTreeMap<String, usize>,
    pub reported: Vec<String>,
    pub failed: usize,
    pub pages: u32,
    pub complete: bool,
    pub resumed_from_page: Option<u32>,
    pub dry_run: bool,
    /// One line per repair (kind, SparkLoop id, masked email, what each side said), the first
    /// [`MAX_LISTED`] of them: what a dry run would do, or what a run queued.
    pub repairs: Vec<String>,
}

/// Repairs listed one by one in a summary; the counts in `repaired` cover them all.
pub const MAX_LISTED: usize = 1_000;

impl Summary {
    pub fn total_repaired(&self) -> usize {
        self.repaired.values().sum()
    }
}

pub struct Deps<'a> {
    pub sparkloop: &'a dyn SparkLoopApi,
    pub esp: &'a dyn EspApi,
    pub store: &'a dyn SubscriberStore,
    pub queue: &'a dyn EventQueue,
}

/// Retries a call on retryable outcomes with exponential back-off (honouring Retry-After).
async fn with_retries<T, F, Fut>(cfg: &ReconcileConfig, what: &str, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallOutcome>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(CallOutcome::Retry {
                reason,
                retry_after,
            }) if attempt + 1 < cfg.attempts => {
                let wait = retry_after
                    .map(StdDuration::from_secs)
                    .unwrap_or(cfg.base_delay * 2u32.pow(attempt));
                tracing::info!(
                    what,
                    reason,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited or failing; backing off"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(other) => return Err(format!("{what}: {other:?}")),
        }
    }
}

/// One run. `stop_at` is when to stop and save a checkpoint (the Lambda deadline minus a
/// margin); `progress` is called after each page. A dry run changes nothing, checkpoint included.
pub async fn run(
    deps: &Deps<'_>,
    cfg: &ReconcileConfig,
    now: DateTime<Utc>,
    dry_run: bool,
    stop_at: Option<Instant>,
    progress: &(dyn Fn(&Summary) + Sync),
) -> Result<Summary, String> {
    let mut summary = Summary {
        dry_run,
        ..Default::default()
    };
    let checkpoint = if dry_run || !cfg.resume {
        None
    } else {
        deps.store
            .checkpoint(CHECKPOINT)
            .await
            .map_err(|e| e.to_string())?
    };
    let (mut page, since, started_at) = match &checkpoint {
        Some(cp) => {
            summary.resumed_from_page = Some(cp.next_page);
            (cp.next_page, cp.since, cp.started_at)
        }
        None => (1, now - cfg.since, now),
    };
    loop {
        let out_of_time = stop_at.is_some_and(|t| Instant::now() >= t);
        let out_of_pages = cfg.max_pages.is_some_and(|m| summary.pages >= m);
        if out_of_time || out_of_pages {
            // The checkpoint for `page` was saved when the previous page finished (or is
            // the one this run resumed from): the next run starts here.
            emit(&summary);
            return Ok(summary);
        }
        let listing = with_retries(cfg, "list referrals", || {
            deps.sparkloop.referrals(page, cfg.per_page)
        })
        .await?;
        summary.pages += 1;
        // Newest first: the first referral older than the horizon ends the walk.
        let in_window: Vec<&Referral> = listing
            .referrals
            .iter()
            .take_while(|r| !r.created_at.is_some_and(|c| c < since))
            .collect();
        let past_horizon = in_window.len() < listing.referrals.len();
        // Lookups of one page run a few at a time; the clients' limiters keep each API's pace.
        let looked_up: Vec<_> = stream::iter(in_window.iter().copied())
            .map(|r| async move {
                let esp = with_retries(cfg, "ESP lookup", || deps.esp.lookup(&r.email)).await;
                let local = deps.store.get(&r.email).await.map_err(|e| e.to_string());
                (r, esp, local)
            })
            .buffered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        let mut repairs = Vec::new();
        for (r, esp, local) in looked_up {
            summary.checked += 1;
            let esp = match esp {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(email = %mask_email(&r.email), error = %e, "lookup failed; skipped");
                    summary.failed += 1;
                    continue;
                }
            };
            let local = local?;
            match compare(r, esp, local.as_ref()) {
                Finding::Agrees => summary.in_agreement += 1,
                Finding::Report(what) => summary
                    .reported
                    .push(format!("{}: {what}", mask_email(&r.email))),
                Finding::Repair(repair) => {
                    *summary
                        .repaired
                        .entry(repair.as_str().to_string())
                        .or_default() += 1;
                    tracing::info!(email = %mask_email(&r.email), repair = repair.as_str(), esp = ?esp, dry_run, "divergence");
                    if summary.repairs.len() < MAX_LISTED {
                        summary.repairs.push(format!(
                            "{} {} {} (SparkLoop {}, ESP {})",
                            repair.as_str(),
                            r.uuid,
                            mask_email(&r.email),
                            r.status.as_str(),
                            esp.as_str()
                        ));
                    }
                    repairs.push(to_message(&repair_envelope(repair, r, esp, now)));
                }
            }
        }
        if !dry_run && !repairs.is_empty() {
            deps.queue
                .enqueue(repairs)
                .await
                .map_err(|e| e.to_string())?;
        }
        progress(&summary);
        if past_horizon || page >= listing.total_pages || listing.referrals.is_empty() {
            if !dry_run {
                deps.store
                    .save_checkpoint(CHECKPOINT, None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            summary.complete = true;
            break;
        }
        page += 1;
        if !dry_run {
            let cp = Checkpoint {
                next_page: page,
                since,
                started_at,
            };
            deps.store
                .save_checkpoint(CHECKPOINT, Some(&cp))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    emit(&summary);
    Ok(summary)
}

/// Checked and repaired per kind; `ReconcileRepairedTotal` (no dimensions) feeds the alarm.
fn emit(summary: &Summary) {
    metrics::count("ReconcileChecked", summary.checked, &[]);
    for (kind, n) in &summary.repaired {
        metrics::count("ReconcileRepaired", *n, &[("Kind", kind)]);
    }
    metrics::count("ReconcileRepairedTotal", summary.total_repaired(), &[]);
}
