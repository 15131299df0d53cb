//! The reconciler: walks SparkLoop's referrals (newest first, back to a horizon), looks each
//! up in the ESP and in our state, and queues the webhook that was missed for every
//! divergence. Respects each API's rate limit (the clients' limiters), retries 429/5xx with
//! back-off, and saves a checkpoint after each page so a run cut off by the Lambda timeout
//! resumes where it stopped.
//!
//! Two guards stand between what it reads and what it queues. A side whose reads fail (a
//! wrong URL or key, or an API that keeps failing) stops the run, and nothing derived from
//! it in the run is queued. SparkLoop unsubscribes, which cost a referral, are held until the
//! end of the run and queued only if they are at most `RECONCILE_MAX_UNSUBSCRIBE_SHARE` of
//! the referrals compared (or the operator forces them). While a run holds unsubscribes its
//! checkpoint does not move past the page of the first, so a refused or interrupted run
//! finds them again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant, SystemTime};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::core::mask::mask_email;
use crate::core::outbound::CallOutcome;
use crate::core::reconcile::{
    compare, repair_envelope, unsubscribe_share_exceeded, Checkpoint, EspContact, Finding,
    ReadFailures, Referral, Repair, Side, MAX_CONSECUTIVE_FAILED_READS,
};
use crate::ingest::to_message;
use crate::ports::{
    EspApi, EventQueue, OutboundMessage, QueueError, SparkLoopApi, StoreError, SubscriberStore,
};
use crate::telemetry::metrics;
use futures::stream::{self, StreamExt};

const CHECKPOINT: &str = "reconcile";
const LOOKUP_CONCURRENCY: usize = 8;
/// The setting that caps SparkLoop unsubscribes per run.
pub const MAX_UNSUBSCRIBE_SHARE_VAR: &str = "RECONCILE_MAX_UNSUBSCRIBE_SHARE";

/// Read from the environment by `crate::config` (`ReconcileConfig::from_env`).
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// How far back to look (`RECONCILE_SINCE_DAYS`, default 37: the longest screening
    /// period, 30 days, plus a week).
    pub since: Duration,
    pub per_page: u32,
    /// Attempts per API call on 429/5xx/timeouts before the call counts as failed.
    pub attempts: u32,
    pub base_delay: StdDuration,
    /// Stop with a checkpoint after this many pages (`RECONCILE_MAX_PAGES`); the next run
    /// resumes. Keeps each run short, like the Lambda deadline does.
    pub max_pages: Option<u32>,
    /// Resume from a saved checkpoint (the scheduled runs). Off when an operator asks for a
    /// given horizon; dry runs never resume, so they always show the whole window.
    pub resume: bool,
    /// The most SparkLoop unsubscribes one run queues, as a share of the referrals it
    /// compared (`RECONCILE_MAX_UNSUBSCRIBE_SHARE`, default 0.05). Over it, none is queued.
    pub max_unsubscribe_share: f64,
    /// Queue SparkLoop unsubscribes over `max_unsubscribe_share` (`sparkbridge reconcile
    /// --force`; the scheduled function never forces).
    pub force: bool,
    /// Failed reads in a row (each after its retries) that stop a side.
    pub max_failed_reads: u32,
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
            max_unsubscribe_share: 0.05,
            force: false,
            max_failed_reads: MAX_CONSECUTIVE_FAILED_READS,
        }
    }
}

/// Why a run queued none of some repairs it found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// One side's reads failed: the run stopped, and no repair derived from that side in
    /// the run was queued (the SparkLoop unsubscribes it held, and the page it was on).
    ReadsFailed {
        side: Side,
        /// `sparkloop`, `loops` or `esputnik`.
        api: String,
        /// The HTTP status of the last failure, when the API answered.
        status: Option<u16>,
        /// The URL read, without its query.
        url: Option<String>,
        /// The API's answer or the transport error, shortened.
        detail: String,
        failed_in_a_row: u32,
    },
    /// More SparkLoop unsubscribes than `max_share` of the referrals compared.
    UnsubscribeShare {
        unsubscribes: usize,
        compared: usize,
        max_share: f64,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ReadsFailed {
                side,
                api,
                status,
                url,
                detail,
                failed_in_a_row,
            } => {
                let what = match side {
                    Side::Sparkloop => "SparkLoop's referral list",
                    Side::Esp => "ESP lookups",
                };
                write!(f, "{what} failed ({api}")?;
                if let Some(url) = url {
                    write!(f, " GET {url}")?;
                }
                match status {
                    Some(s) => write!(f, " answered HTTP {s}")?,
                    None => write!(f, " did not answer")?,
                }
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                write!(
                    f,
                    "; {failed_in_a_row} failed read(s) in a row): the run stopped, and queued none of the SparkLoop unsubscribes it held nor anything from the page it stopped on"
                )
            }
            Refusal::UnsubscribeShare {
                unsubscribes,
                compared,
                max_share,
            } => write!(
                f,
                "{unsubscribes} SparkLoop unsubscribes for {compared} referrals compared ({:.1}%) exceed {MAX_UNSUBSCRIBE_SHARE_VAR} ({:.1}%); none was queued (check the ESP's answers, then `sparkbridge reconcile --force` queues them)",
                share(*unsubscribes, *compared) * 100.0,
                max_share * 100.0
            ),
        }
    }
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        if part == 0 {
            0.0
        } else {
            1.0
        }
    } else {
        part as f64 / whole as f64
    }
}

/// A run that did not finish as asked.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A guard refused repairs; `summary` is what the run saw and what it did queue.
    #[error("reconcile refused: {refusal}")]
    Refused {
        refusal: Refusal,
        summary: Box<Summary>,
    },
    #[error("state table: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl ReconcileError {
    /// The run's summary, when it got far enough to have one.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            ReconcileError::Refused { summary, .. } => Some(summary),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub checked: usize,
    pub in_agreement: usize,
    /// Repairs queued (a dry run: that would be), per kind.
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
    /// Why some repairs found were not queued, if any were not.
    #[serde(default)]
    pub refused: Option<Refusal>,
    /// Repairs found but not queued because of `refused`, per kind.
    #[serde(default)]
    pub not_queued: BTreeMap<String, usize>,
    /// Their lines, like `repairs` (the first [`MAX_LISTED`]).
    #[serde(default)]
    pub not_queued_repairs: Vec<String>,
}

/// Repairs listed one by one in a summary; the counts in `repaired` cover them all.
pub const MAX_LISTED: usize = 1_000;

impl Summary {
    pub fn total_repaired(&self) -> usize {
        self.repaired.values().sum()
    }

    pub fn total_not_queued(&self) -> usize {
        self.not_queued.values().sum()
    }

    /// Referrals compared with the ESP (checked less failed lookups).
    pub fn compared(&self) -> usize {
        self.checked - self.failed
    }

    fn queued(&mut self, found: &[Found]) {
        for f in found {
            *self
                .repaired
                .entry(f.repair.as_str().to_string())
                .or_default() += 1;
            if self.repairs.len() < MAX_LISTED {
                self.repairs.push(f.line.clone());
            }
        }
    }

    fn not_queued(&mut self, found: &[Found]) {
        for f in found {
            *self
                .not_queued
                .entry(f.repair.as_str().to_string())
                .or_default() += 1;
            if self.not_queued_repairs.len() < MAX_LISTED {
                self.not_queued_repairs.push(f.line.clone());
            }
        }
    }
}

/// The reconciler function: its clients and settings, built once per execution environment.
pub struct Reconciler {
    pub sparkloop: Arc<dyn SparkLoopApi>,
    pub esp: Arc<dyn EspApi>,
    pub store: Arc<dyn SubscriberStore>,
    pub queue: Arc<dyn EventQueue>,
    pub cfg: ReconcileConfig,
    /// `RECONCILE_DRY_RUN`: report the repairs, queue none.
    pub dry_run: bool,
}

impl Reconciler {
    /// Time kept before the invocation's deadline to save the checkpoint and answer.
    pub const STOP_BEFORE_DEADLINE: StdDuration = StdDuration::from_secs(30);

    /// One scheduled run, stopping [`Self::STOP_BEFORE_DEADLINE`] before `deadline` with a
    /// checkpoint (the next run resumes there), logged as one line. A run that refuses
    /// repairs still logs what it saw and queued, then ends with the error.
    pub async fn scheduled_run(&self, deadline: SystemTime) -> Result<Summary, ReconcileError> {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let stop_at = Instant::now() + left.saturating_sub(Self::STOP_BEFORE_DEADLINE);
        let deps = Deps {
            sparkloop: self.sparkloop.as_ref(),
            esp: self.esp.as_ref(),
            store: self.store.as_ref(),
            queue: self.queue.as_ref(),
        };
        let result = run(
            &deps,
            &self.cfg,
            Utc::now(),
            self.dry_run,
            Some(stop_at),
            &|_| {},
        )
        .await;
        if let Some(summary) = result
            .as_ref()
            .ok()
            .or_else(|| result.as_ref().err().and_then(|e| e.summary()))
        {
            tracing::info!(
                checked = summary.checked,
                in_agreement = summary.in_agreement,
                repaired = summary.total_repaired(),
                not_queued = summary.total_not_queued(),
                failed = summary.failed,
                complete = summary.complete,
                refused = summary
                    .refused
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                "reconcile run"
            );
        }
        result
    }
}

pub struct Deps<'a> {
    pub sparkloop: &'a dyn SparkLoopApi,
    pub esp: &'a dyn EspApi,
    pub store: &'a dyn SubscriberStore,
    pub queue: &'a dyn EventQueue,
}

/// A repair found: its queue message and its line for the summary.
struct Found {
    repair: Repair,
    line: String,
    message: OutboundMessage,
}

/// Retries a call on retryable outcomes with exponential back-off (honouring Retry-After);
/// the last failure when it does not succeed.
async fn with_retries<T, F, Fut>(
    cfg: &ReconcileConfig,
    what: &str,
    mut f: F,
) -> Result<T, CallOutcome>
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
            Err(other) => return Err(other),
        }
    }
}

/// The refusal for a side's failed read.
fn reads_failed(
    side: Side,
    api: &str,
    url: Option<String>,
    failure: &CallOutcome,
    in_a_row: u32,
) -> Refusal {
    let (status, detail) = match failure {
        CallOutcome::Permanent { status, body } => (Some(*status), body.as_str()),
        // "HTTP 503": the status says it all; "timeout", "connection failed": no status
        CallOutcome::Retry { reason, .. } => match reason.strip_prefix("HTTP ") {
            Some(code) => (code.parse().ok(), ""),
            None => (None, reason.as_str()),
        },
        other => (None, other.label()),
    };
    let detail: String = detail
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect();
    Refusal::ReadsFailed {
        side,
        api: api.to_string(),
        status,
        url,
        detail,
        failed_in_a_row: in_a_row,
    }
}

#[allow(clippy::too_many_lines)] // one walk over the pages; its checkpoint, held unsubscribes and refusal are shared by every step
/// One run. `stop_at` is when to stop and save a checkpoint (the Lambda deadline minus a
/// margin); `progress` is called after each page. A dry run changes nothing, checkpoint
/// included, and refuses what a run would refuse.
pub async fn run(
    deps: &Deps<'_>,
    cfg: &ReconcileConfig,
    now: DateTime<Utc>,
    dry_run: bool,
    stop_at: Option<Instant>,
    progress: &(dyn Fn(&Summary) + Sync),
) -> Result<Summary, ReconcileError> {
    let mut summary = Summary {
        dry_run,
        ..Default::default()
    };
    let checkpoint = if dry_run || !cfg.resume {
        None
    } else {
        deps.store.checkpoint(CHECKPOINT).await?
    };
    let (mut page, since, started_at) = match &checkpoint {
        Some(cp) => {
            summary.resumed_from_page = Some(cp.next_page);
            (cp.next_page, cp.since, cp.started_at)
        }
        None => (1, now - cfg.since, now),
    };
    let cp_at = |next_page| Checkpoint {
        next_page,
        since,
        started_at,
    };
    // SparkLoop unsubscribes found so far, queued at the end of the run if the guards pass.
    let mut held: Vec<Found> = Vec::new();
    let mut esp_failures = ReadFailures::new(cfg.max_failed_reads);
    let mut refusal: Option<Refusal> = None;
    loop {
        let out_of_time = stop_at.is_some_and(|t| Instant::now() >= t);
        let out_of_pages = cfg.max_pages.is_some_and(|m| summary.pages >= m);
        if out_of_time || out_of_pages {
            // The checkpoint for `page` was saved when the previous page finished (or is
            // the one this run resumed from), unless unsubscribes are held: see below.
            break;
        }
        let listing = match with_retries(cfg, "list referrals", || {
            deps.sparkloop.referrals(page, cfg.per_page)
        })
        .await
        {
            Ok(listing) => listing,
            Err(failure) => {
                refusal = Some(reads_failed(
                    Side::Sparkloop,
                    "sparkloop",
                    deps.sparkloop.referrals_url(),
                    &failure,
                    1,
                ));
                break;
            }
        };
        summary.pages += 1;
        // Newest first: the first referral older than the horizon ends the walk.
        let in_window: Vec<&Referral> = listing
            .referrals
            .iter()
            .take_while(|r| r.created_at.is_none_or(|c| c >= since))
            .collect();
        let past_horizon = in_window.len() < listing.referrals.len();
        // Lookups of one page run a few at a time; the clients' limiters keep each API's pace.
        // Read in order as they finish, so a failing side stops the page at once.
        let mut lookups = std::pin::pin!(stream::iter(in_window.iter().copied())
            .map(|r| async move {
                let esp = with_retries(cfg, "ESP lookup", || deps.esp.lookup(&r.email)).await;
                let local = deps.store.get(&r.email).await;
                (r, esp, local)
            })
            .buffered(LOOKUP_CONCURRENCY));
        let mut page_repairs: Vec<Found> = Vec::new();
        let mut page_unsubscribes: Vec<Found> = Vec::new();
        while let Some((r, esp, local)) = lookups.next().await {
            summary.checked += 1;
            let esp = match esp {
                Ok(c) => {
                    esp_failures.succeeded();
                    c
                }
                Err(failure) => {
                    tracing::warn!(email = %mask_email(&r.email), error = ?failure, "lookup failed; skipped");
                    summary.failed += 1;
                    if esp_failures.failed(&failure) {
                        refusal = Some(reads_failed(
                            Side::Esp,
                            deps.esp.name(),
                            deps.esp.lookup_url(),
                            &failure,
                            esp_failures.in_a_row(),
                        ));
                        break;
                    }
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
                    tracing::info!(email = %mask_email(&r.email), repair = repair.as_str(), esp = ?esp, dry_run, "divergence");
                    let found = found(repair, r, esp, now);
                    if repair == Repair::SparkloopUnsubscribe {
                        page_unsubscribes.push(found);
                    } else {
                        page_repairs.push(found);
                    }
                }
            }
        }
        if refusal.is_some() {
            // Nothing from the page the side failed on is queued; the checkpoint stays before it.
            summary.not_queued(&page_repairs);
            summary.not_queued(&page_unsubscribes);
            break;
        }
        if !dry_run && !page_repairs.is_empty() {
            deps.queue
                .enqueue(page_repairs.iter().map(|f| f.message.clone()).collect())
                .await?;
        }
        summary.queued(&page_repairs);
        held.extend(page_unsubscribes);
        progress(&summary);
        if past_horizon || page >= listing.total_pages || listing.referrals.is_empty() {
            summary.complete = true;
            break;
        }
        page += 1;
        // While unsubscribes are held, the checkpoint stays before the page of the first:
        // a run that is refused or dies finds them again.
        if !dry_run && held.is_empty() {
            deps.store
                .save_checkpoint(CHECKPOINT, Some(&cp_at(page)))
                .await?;
        }
    }
    if refusal.is_none()
        && !cfg.force
        && unsubscribe_share_exceeded(held.len(), summary.compared(), cfg.max_unsubscribe_share)
    {
        refusal = Some(Refusal::UnsubscribeShare {
            unsubscribes: held.len(),
            compared: summary.compared(),
            max_share: cfg.max_unsubscribe_share,
        });
    }
    if let Some(refusal) = refusal {
        summary.not_queued(&held);
        summary.refused = Some(refusal.clone());
        progress(&summary);
        emit(&summary);
        metrics::count(metrics::Metric::ReconcileRefused, 1, &[]);
        tracing::error!(
            refusal = %refusal,
            checked = summary.checked,
            queued = summary.total_repaired(),
            not_queued = summary.total_not_queued(),
            dry_run,
            "reconcile refused"
        );
        return Err(ReconcileError::Refused {
            refusal,
            summary: Box::new(summary),
        });
    }
    if !dry_run {
        if !held.is_empty() {
            deps.queue
                .enqueue(held.iter().map(|f| f.message.clone()).collect())
                .await?;
        }
        let cp = (!summary.complete).then(|| cp_at(page));
        deps.store.save_checkpoint(CHECKPOINT, cp.as_ref()).await?;
    }
    summary.queued(&held);
    progress(&summary);
    emit(&summary);
    Ok(summary)
}

fn found(repair: Repair, r: &Referral, esp: EspContact, now: DateTime<Utc>) -> Found {
    Found {
        repair,
        line: format!(
            "{} {} {} (SparkLoop {}, ESP {})",
            repair.as_str(),
            r.uuid,
            mask_email(&r.email),
            r.status.as_str(),
            esp.as_str()
        ),
        message: to_message(&repair_envelope(repair, r, esp, now)),
    }
}

/// Checked and repaired per kind; `ReconcileRepairedTotal` (no dimensions) feeds the alarm.
fn emit(summary: &Summary) {
    metrics::count(metrics::Metric::ReconcileChecked, summary.checked, &[]);
    for (kind, n) in &summary.repaired {
        metrics::count(metrics::Metric::ReconcileRepaired, *n, &[("Kind", kind)]);
    }
    metrics::count(
        metrics::Metric::ReconcileRepairedTotal,
        summary.total_repaired(),
        &[],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::esp::DryRunEsp;
    use crate::adapters::memory_queue::MemoryQueue;
    use crate::adapters::memory_store::MemoryStore;
    use crate::adapters::sparkloop::DryRunSparkLoop;

    #[tokio::test]
    async fn a_scheduled_run_keeps_30_s_before_the_deadline() {
        let reconciler = Reconciler {
            sparkloop: Arc::new(DryRunSparkLoop),
            esp: Arc::new(DryRunEsp("none")),
            store: Arc::new(MemoryStore::new()),
            queue: Arc::new(MemoryQueue::new(StdDuration::from_secs(30), 5, 262_144)),
            cfg: ReconcileConfig::default(),
            dry_run: false,
        };
        let within_the_margin = SystemTime::now() + StdDuration::from_secs(29);
        let s = reconciler.scheduled_run(within_the_margin).await.unwrap();
        assert_eq!((s.pages, s.complete), (0, false), "no page read");
        let later = SystemTime::now() + StdDuration::from_secs(120);
        let s = reconciler.scheduled_run(later).await.unwrap();
        assert_eq!((s.pages, s.complete), (1, true));
    }
}
