//! The queue worker: parse each record on its own, dedupe on provider + dedupe id, apply the
//! rules, make the calls, then acknowledge, back off through the queue, or park on the DLQ.

mod config;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use futures::stream::{self, StreamExt};

pub use config::WorkerConfig;

use crate::core::backoff::{visibility_left, Attempt, NextStep};
use crate::core::dedupe::{Acquire, LeaseRequest};
use crate::core::envelope::{truncate, Envelope, ENVELOPE_VERSION};
use crate::core::mask::{scrub, MaskedOpt, Sanitized};
use crate::core::outbound::CallOutcome;
use crate::core::rules::{self, Action, Decision, Known, Reads};
use crate::core::{ReferralStatus, StateWrite, Transition, TransitionResult};
use crate::ports::{
    EspApi, IdempotencyStore, OutboundMessage, SparkLoopApi, SubscriberStore, WorkQueue,
};
use crate::telemetry::metrics;

pub struct Worker {
    pub store: Arc<dyn IdempotencyStore>,
    pub subscribers: Arc<dyn SubscriberStore>,
    pub sparkloop: Arc<dyn SparkLoopApi>,
    pub esp: Arc<dyn EspApi>,
    pub queue: Arc<dyn WorkQueue>,
    pub cfg: WorkerConfig,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done (processed, duplicate, ignored or parked): delete from the queue.
    Ack(String),
    /// Report as a batch item failure after setting its visibility to `delay_secs`.
    Retry {
        reason: String,
        delay_secs: Option<u64>,
    },
}

struct Record<'a> {
    msg: &'a SqsMessage,
    id: String,
    receive_count: u32,
    envelope: Result<Envelope, String>,
}

/// The invocation a batch runs in: its deadline, and when the handler got it.
struct Batch {
    deadline_ms: i64,
    started: Instant,
}

impl Batch {
    fn left_ms(&self) -> i64 {
        self.deadline_ms - Utc::now().timestamp_millis()
    }

    /// Seconds this invocation has held its messages (SQS counts its 12-hour visibility limit
    /// from the receive).
    fn held_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// Visibility of a record handed back unstarted because the invocation's deadline is near:
/// short, since nothing failed.
const NOT_STARTED_DELAY_SECS: u64 = 2;

impl Worker {
    /// Processes one SQS batch. Records of one subscriber run in order; different
    /// subscribers run concurrently (bounded by `WORKER_CONCURRENCY`). Nothing is started
    /// that could not finish before `deadline_ms`: those records go back unstarted.
    /// The batch's metrics are written together when it ends ([`metrics::gathered`]).
    pub async fn handle(&self, event: &SqsEvent, deadline_ms: i64) -> SqsBatchResponse {
        metrics::gathered(self.run_batch(event, deadline_ms)).await
    }

    async fn run_batch(&self, event: &SqsEvent, deadline_ms: i64) -> SqsBatchResponse {
        let batch = Batch {
            deadline_ms,
            started: Instant::now(),
        };
        self.check_lease_covers(deadline_ms);
        let groups = self.group_by_subscriber(event);
        // Futures are built first, then polled: a closure returning a borrowing future would
        // not be Send for every lifetime, which spawning the worker requires.
        let futures: Vec<_> = groups
            .into_iter()
            .map(|group| self.group(group, &batch))
            .collect();
        let results: Vec<Vec<(String, Verdict)>> = stream::iter(futures)
            .buffer_unordered(self.cfg.concurrency)
            .collect()
            .await;
        let mut resp = SqsBatchResponse::default();
        for (id, verdict) in results.into_iter().flatten() {
            if let Verdict::Retry { .. } = verdict {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                resp.batch_item_failures.push(f);
            }
        }
        resp
    }

    /// The batch's records in groups that must run in order, in the batch's order.
    fn group_by_subscriber<'a>(&self, event: &'a SqsEvent) -> Vec<Vec<Record<'a>>> {
        let mut groups: Vec<Vec<Record>> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for msg in &event.records {
            let rec = Record {
                msg,
                id: msg.message_id.clone().unwrap_or_default(),
                receive_count: msg
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                envelope: parse_envelope(msg.body.as_deref()),
            };
            let key = rec
                .envelope
                .as_ref()
                .ok()
                .and_then(|e| self.ordering_key(e));
            match key {
                Some(k) => match by_key.get(&k) {
                    Some(&i) => groups[i].push(rec),
                    None => {
                        by_key.insert(k, groups.len());
                        groups.push(vec![rec]);
                    }
                },
                None => groups.push(vec![rec]),
            }
        }
        groups
    }

    /// With email-change detection on, one ESP contact's events are ordered by the contact,
    /// whichever address (old or new) they carry.
    fn ordering_key(&self, env: &Envelope) -> Option<String> {
        match (
            &env.subscriber.esp_contact_id,
            self.cfg.detect_email_changes,
        ) {
            (Some(id), true) => Some(format!("contact#{}#{id}", env.provider)),
            _ => env.subscriber.ordering_key(),
        }
    }

    /// A lease shorter than the invocation lets a slow holder be taken over while it still
    /// works, and both make the calls. Said once per execution environment.
    fn check_lease_covers(&self, deadline_ms: i64) {
        static WARNED: std::sync::Once = std::sync::Once::new();
        let remaining_ms = deadline_ms - Utc::now().timestamp_millis();
        if remaining_ms > self.cfg.lease_budget_ms + 1_000 {
            WARNED.call_once(|| {
                tracing::warn!(
                    lease_secs = self.cfg.lease_budget_ms / 1000,
                    invocation_secs = remaining_ms / 1000,
                    "LEASE_SECS is shorter than the invocation's time limit: a slow record can be \
                     taken over while it still runs and its calls repeated; set LEASE_SECS to at \
                     least the function timeout"
                )
            });
        }
    }

    /// One subscriber's records, in order. Once one is retried, the ones after it are not
    /// attempted: they go back with it, each a second later, so none overtakes it.
    async fn group(&self, group: Vec<Record<'_>>, batch: &Batch) -> Vec<(String, Verdict)> {
        let mut out = Vec::with_capacity(group.len());
        let mut behind: Option<u64> = None;
        for rec in group {
            let verdict = match behind {
                Some(after) => {
                    self.hold_back(
                        &rec,
                        batch,
                        after + 1,
                        "held behind an earlier record of this subscriber",
                    )
                    .await
                }
                None if batch.left_ms() < self.cfg.call_reserve_ms => {
                    self.hold_back(
                        &rec,
                        batch,
                        NOT_STARTED_DELAY_SECS,
                        "not started: the invocation's deadline is near",
                    )
                    .await
                }
                None => self.record(&rec, batch).await,
            };
            if let Verdict::Retry { delay_secs, .. } = &verdict {
                behind = Some(delay_secs.unwrap_or(0));
            }
            out.push((rec.id.clone(), verdict));
        }
        out
    }

    /// Hands a record back unstarted, visible again after `delay` seconds. Spends no budget:
    /// nothing was attempted.
    async fn hold_back(
        &self,
        rec: &Record<'_>,
        batch: &Batch,
        delay: u64,
        why: &'static str,
    ) -> Verdict {
        let started = Instant::now();
        let settled = self.wait(rec, batch, why, delay).await;
        self.finish(rec, Outcome::without_actions(settled), started)
            .await
    }

    async fn record(&self, rec: &Record<'_>, batch: &Batch) -> Verdict {
        let started = Instant::now();
        let outcome = match &rec.envelope {
            // Not ours to interpret, and no retry will change it: kept on the DLQ, visible,
            // with why.
            Err(e) => {
                Outcome::without_actions(self.park(rec, format!("unparseable body: {e}")).await)
            }
            Ok(env) => self.envelope(rec, env, batch).await,
        };
        self.finish(rec, outcome, started).await
    }

    /// Sets the back-off, writes the record's one log line, and gives SQS its answer.
    async fn finish(&self, rec: &Record<'_>, mut outcome: Outcome, started: Instant) -> Verdict {
        let verdict = outcome.settled.verdict();
        outcome
            .asides
            .extend(self.set_visibility(rec, &verdict).await);
        log_record(rec, &outcome, &verdict, started);
        verdict
    }

    /// Queue-driven back-off: the failed message becomes visible again after its delay.
    async fn set_visibility(&self, rec: &Record<'_>, verdict: &Verdict) -> Option<Aside> {
        let Verdict::Retry {
            reason,
            delay_secs: Some(secs),
        } = verdict
        else {
            return None;
        };
        let mut aside = None;
        if let Some(receipt) = rec.msg.receipt_handle.as_deref() {
            if let Err(e) = self.queue.delay(receipt, *secs).await {
                aside = Some(Aside::BackoffNotSet(e.to_string()));
            }
        }
        metrics::count(metrics::Metric::Retries, 1, &[("Reason", reason)]);
        aside
    }

    /// One envelope: decide (see [`Deciding`]), take the lease, act, settle.
    async fn envelope(&self, rec: &Record<'_>, env: &Envelope, batch: &Batch) -> Outcome {
        if env.v != ENVELOPE_VERSION {
            let reason = format!("unsupported envelope version {}", env.v);
            return Outcome::without_actions(self.park(rec, reason).await);
        }
        let deciding = self.deciding(env);
        let key = env.idempotency_key();
        let lease = self.lease_request(env, batch);
        let leading = match &deciding {
            Deciding::BeforeLease(decision) => leading_transition(decision),
            Deciding::AfterLease(_) => None,
        };
        let acquired = match self.acquire(&key, &lease, leading).await {
            Ok(a) => a,
            Err(e) => {
                let reason = format!("store: {e}");
                return Outcome::without_actions(self.retry(rec, env, batch, reason, None).await);
            }
        };
        let dedupe = acquired.label();
        let mut outcome = match acquired {
            Acquired::Held { transition_applied } => {
                let held = Held {
                    key,
                    lease,
                    transition_applied,
                };
                self.held(rec, env, batch, &held, deciding).await
            }
            Acquired::Refused(refusal) => {
                Outcome::without_actions(self.refused(rec, env, batch, refusal, &lease).await)
            }
        };
        outcome.dedupe = Some(dedupe);
        outcome
    }

    /// When to decide. The worker decides once per attempt:
    ///
    /// - before the lease, when the rules read nothing stored for `env` (`rules::reads` is
    ///   empty: every SparkLoop event, and ESP events without email-change detection or a
    ///   signup confirm). The decision depends on the envelope and the settings alone, so it
    ///   is the one a later look would make, and a leading status transition can be written
    ///   with the lease (one round trip fewer).
    /// - after the lease otherwise, with what was read. Reading before it would spend reads
    ///   on duplicates and on copies another invocation is processing, which the lease write
    ///   alone answers, and would gain nothing: the lease makes this event ours, not the
    ///   subscriber's state.
    fn deciding(&self, env: &Envelope) -> Deciding {
        let reads = rules::reads(env, &self.cfg.rules, self.cfg.detect_email_changes);
        if reads == Reads::default() {
            Deciding::BeforeLease(rules::decide(env, &Known::default(), &self.cfg.rules))
        } else {
            Deciding::AfterLease(reads)
        }
    }

    /// This attempt's lease: until the invocation's deadline, at most `lease_budget_ms`.
    fn lease_request(&self, env: &Envelope, batch: &Batch) -> LeaseRequest {
        let now_ms = Utc::now().timestamp_millis();
        LeaseRequest {
            owner: lease_owner(),
            payload_hash: env.payload_hash(),
            now_ms,
            lease_until_ms: batch.deadline_ms.min(now_ms + self.cfg.lease_budget_ms),
            expires_at: now_ms / 1000 + self.cfg.window_secs,
        }
    }

    /// The lease. A status transition leading the decision made before it is written in the
    /// same DynamoDB transaction (two round trips per SparkLoop event, not three). A refusal
    /// of either falls back to one at a time: the transition is then applied as an action.
    async fn acquire(
        &self,
        key: &str,
        lease: &LeaseRequest,
        leading: Option<&Transition>,
    ) -> Result<Acquired, crate::ports::StoreError> {
        if let Some(t) = leading {
            if self.store.acquire_applying(key, lease, t).await? {
                return Ok(Acquired::Held {
                    transition_applied: true,
                });
            }
        }
        let refusal = match self.store.acquire(key, lease).await? {
            Acquire::Acquired => {
                return Ok(Acquired::Held {
                    transition_applied: false,
                })
            }
            Acquire::Duplicate { other_bytes } => Refusal::Duplicate { other_bytes },
            Acquire::InProgress { lease_until_ms } => Refusal::InProgress { lease_until_ms },
            Acquire::Conflict { stored_hash } => Refusal::Conflict { stored_hash },
        };
        Ok(Acquired::Refused(refusal))
    }

    /// A record whose lease was refused: a duplicate, a copy in progress elsewhere, or a
    /// dedupe id reused with other bytes.
    async fn refused(
        &self,
        rec: &Record<'_>,
        env: &Envelope,
        batch: &Batch,
        refusal: Refusal,
        lease: &LeaseRequest,
    ) -> Settled {
        match refusal {
            Refusal::Duplicate { other_bytes } => {
                metrics::count(
                    metrics::Metric::DedupeHits,
                    1,
                    &[("Provider", env.provider.as_str())],
                );
                Settled::Duplicate {
                    note: other_bytes.map(|stored| {
                        format!(
                            "completed earlier with other bytes: stored sha256 {stored}, this \
                             sha256 {}",
                            lease.payload_hash
                        )
                    }),
                }
            }
            Refusal::InProgress { lease_until_ms } => {
                // Coming back before the holder's lease ends would only spend an attempt.
                let wait = secs_until(lease_until_ms, lease.now_ms);
                self.wait(rec, batch, "in progress elsewhere", wait).await
            }
            Refusal::Conflict { stored_hash } => {
                let reason = format!(
                    "dedupe id reused with a different payload (stored sha256 {stored_hash})"
                );
                self.park(rec, reason).await
            }
        }
    }

    /// The lease is ours: read and decide if that waited for the lease, act, settle.
    async fn held(
        &self,
        rec: &Record<'_>,
        env: &Envelope,
        batch: &Batch,
        held: &Held,
        deciding: Deciding,
    ) -> Outcome {
        let (decision, contact_write) = match deciding {
            Deciding::BeforeLease(decision) => (decision, None),
            Deciding::AfterLease(reads) => match self.known(env, reads).await {
                Ok((known, write)) => (rules::decide(env, &known, &self.cfg.rules), write),
                Err(e) => {
                    let aside = self.release(held).await;
                    let mut outcome =
                        Outcome::without_actions(self.retry(rec, env, batch, e, None).await);
                    outcome.asides.extend(aside);
                    return outcome;
                }
            },
        };
        let acted = self
            .act(env, decision, contact_write, held.transition_applied, batch)
            .await;
        self.settle(rec, env, batch, held, acted).await
    }

    /// Ends a held record: completes it with its state writes, or gives the lease back and
    /// retries, waits or parks.
    async fn settle(
        &self,
        rec: &Record<'_>,
        env: &Envelope,
        batch: &Batch,
        held: &Held,
        acted: Acted,
    ) -> Outcome {
        let Acted { effects, end } = acted;
        let (settled, aside, finished) = match end {
            Ok(finished) => {
                let (settled, aside) = self
                    .complete(rec, env, batch, held, finished, &effects)
                    .await;
                (settled, aside, Some(finished))
            }
            Err(failure) => {
                let aside = self.release(held).await;
                (self.failed(rec, env, batch, failure).await, aside, None)
            }
        };
        Outcome {
            dedupe: None,
            calls: effects.calls,
            finished,
            settled,
            asides: aside.into_iter().collect(),
        }
    }

    /// Records the completion with the state writes. If that fails before any call was made,
    /// the lease is given back and the record retried: nothing is lost or repeated.
    async fn complete(
        &self,
        rec: &Record<'_>,
        env: &Envelope,
        batch: &Batch,
        held: &Held,
        finished: Finished,
        effects: &Effects,
    ) -> (Settled, Option<Aside>) {
        let keep_until = Utc::now().timestamp() + self.cfg.window_secs;
        let label = finished.label();
        let written = self
            .write_completion(
                &held.key,
                &held.lease.owner,
                keep_until,
                label,
                &effects.writes,
            )
            .await;
        match written {
            Ok(true) => (finished.settled(), None),
            Ok(false) => (finished.settled(), Some(Aside::LeaseLost)),
            Err(e) if !effects.made_calls => {
                let aside = self.release(held).await;
                let reason = format!("complete failed: {e}");
                (self.retry(rec, env, batch, reason, None).await, aside)
            }
            // The calls were made but not recorded. Keep the message: once our lease ends,
            // the next attempt takes it over, repeats the calls (safe, see
            // docs/reliability.md) and completes with the state writes.
            Err(e) => {
                let wait = secs_until(held.lease.lease_until_ms, Utc::now().timestamp_millis());
                let reason = format!("complete failed after the calls: {e}");
                (self.retry(rec, env, batch, reason, Some(wait)).await, None)
            }
        }
    }

    /// A failed attempt whose lease was given back.
    async fn failed(
        &self,
        rec: &Record<'_>,
        env: &Envelope,
        batch: &Batch,
        failure: Failure,
    ) -> Settled {
        match failure {
            Failure::Deadline => {
                self.wait(
                    rec,
                    batch,
                    "stopped before a call: the invocation's deadline is near",
                    NOT_STARTED_DELAY_SECS,
                )
                .await
            }
            Failure::Permanent(reason) => self.park(rec, reason).await,
            Failure::Retry {
                reason,
                retry_after,
            } => self.retry(rec, env, batch, reason, retry_after).await,
        }
    }

    /// Completing after the calls were made is worth a few quick retries: giving up leaves
    /// the lease IN_PROGRESS, and the attempt after it ends repeats the calls.
    async fn write_completion(
        &self,
        key: &str,
        owner: &str,
        keep_until: i64,
        label: &str,
        writes: &[StateWrite],
    ) -> Result<bool, crate::ports::StoreError> {
        quick_retries("complete", || {
            self.store.complete(key, owner, keep_until, label, writes)
        })
        .await
    }

    /// Gives the lease back so the retry (or a copy) need not wait for it to end. Failing is
    /// not fatal: the lease then ends on its own, later.
    async fn release(&self, held: &Held) -> Option<Aside> {
        let (key, owner) = (held.key.as_str(), held.lease.owner.as_str());
        quick_retries("release", || self.store.release(key, owner))
            .await
            .err()
            .map(|e| Aside::ReleaseFailed(e.to_string()))
    }

    /// What the rules need to know before deciding: the contact's recorded address (with
    /// email-change detection) and, for a signup confirm, when the subscriber last left.
    async fn known(
        &self,
        env: &Envelope,
        reads: Reads,
    ) -> Result<(Known, Option<StateWrite>), String> {
        let mut known = Known::default();
        let email = env.subscriber.email.as_deref();
        if let (true, Some(email)) = (reads.left_at, email) {
            known.left_at = self
                .subscribers
                .left_at(email)
                .await
                .map_err(|e| format!("store: {e}"))?;
        }
        let (true, Some(id), Some(email)) = (reads.contact, &env.subscriber.esp_contact_id, email)
        else {
            return Ok((known, None));
        };
        let contact_key = format!("{}#{id}", env.provider);
        let recorded = self
            .subscribers
            .contact_email(&contact_key)
            .await
            .map_err(|e| format!("store: {e}"))?;
        known.previous_email = recorded.as_ref().map(|r| r.email.clone());
        known.previous_email_at = recorded.as_ref().and_then(|r| r.at);
        // as the rules compare: a change of case alone is no change, and not written again;
        // an event older than the recorded address writes nothing
        let same = recorded
            .as_ref()
            .is_some_and(|r| r.email.eq_ignore_ascii_case(email));
        let write = (!same && !rules::is_older_than_recorded(env, &known)).then(|| {
            StateWrite::ContactEmail {
                contact_key,
                email: email.to_string(),
                at: env.occurred_at.unwrap_or(env.received_at),
            }
        });
        Ok((known, write))
    }

    /// Carries out the decision, once the lease is ours. `transition_applied`: its leading
    /// transition was written with the lease.
    async fn act(
        &self,
        env: &Envelope,
        decision: Decision,
        contact_write: Option<StateWrite>,
        transition_applied: bool,
        batch: &Batch,
    ) -> Acted {
        let mut effects = Effects {
            writes: contact_write.into_iter().collect(),
            ..Effects::default()
        };
        let end = match decision {
            Decision::Ignore(why) => {
                // acknowledged and counted: an unexpected rise shows an event type nobody maps
                metrics::count(
                    metrics::Metric::EventsIgnored,
                    1,
                    &[("Provider", env.provider.as_str())],
                );
                Ok(Finished::Ignored(why))
            }
            Decision::Park(reason) => Err(Failure::Permanent(reason)),
            Decision::Act(actions) => {
                self.actions(&actions, transition_applied, batch, &mut effects)
                    .await
            }
        };
        Acted { effects, end }
    }

    /// Runs the actions in order. State writes are collected for the completion; a stale
    /// transition stops the rest (the ESP must not act on an out-of-date status).
    async fn actions(
        &self,
        actions: &[Action],
        mut transition_applied: bool,
        batch: &Batch,
        effects: &mut Effects,
    ) -> Result<Finished, Failure> {
        for action in actions {
            if let Action::Transition(t) = action {
                if std::mem::take(&mut transition_applied) {
                    effects.note_transition(t, &TransitionResult::Applied);
                    continue;
                }
            }
            if let Some(stored) = self.action(action, batch, effects).await? {
                return Ok(Finished::Stale(stored));
            }
        }
        Ok(Finished::Done)
    }

    /// One action; `Some(stored)` when it was a transition found stale against `stored`.
    async fn action(
        &self,
        action: &Action,
        batch: &Batch,
        effects: &mut Effects,
    ) -> Result<Option<ReferralStatus>, Failure> {
        let store_failed = |e: crate::ports::StoreError| Failure::Retry {
            reason: format!("store: {e}"),
            retry_after: None,
        };
        match action {
            Action::SparkLoop { target, call } => {
                let outcome = self
                    .before_deadline(batch, self.sparkloop.call(target, call))
                    .await?;
                effects.made_calls = true;
                Self::outcome("sparkloop", call.name(), outcome, effects)?;
            }
            Action::Esp(call) => {
                let outcome = self.before_deadline(batch, self.esp.call(call)).await?;
                effects.made_calls = true;
                Self::outcome(self.esp.name(), call.name(), outcome, effects)?;
            }
            Action::State(w) => effects.writes.push(w.clone()),
            Action::MarkLeft { email, at } => {
                self.subscribers
                    .mark_left(email, *at)
                    .await
                    .map_err(store_failed)?;
                effects.calls.push("state.left=marked".into());
            }
            Action::UnsubscribeIfLeftSince {
                target,
                email,
                since,
            } => {
                self.unsubscribe_if_left(target, email, *since, batch, effects)
                    .await?
            }
            Action::Transition(t) => {
                let result = self
                    .subscribers
                    .apply_transition(t)
                    .await
                    .map_err(store_failed)?;
                effects.note_transition(t, &result);
                if let TransitionResult::Stale(stored) = result {
                    return Ok(Some(stored));
                }
            }
        }
        Ok(None)
    }

    /// Closes the race of a confirm with an unsubscribe in flight: the unsubscribe marks its
    /// departure before calling, so a mark seen now means SparkLoop may have heard the
    /// unsubscribe before our confirm; unsubscribing again puts the later effect last.
    async fn unsubscribe_if_left(
        &self,
        target: &str,
        email: &str,
        since: chrono::DateTime<Utc>,
        batch: &Batch,
        effects: &mut Effects,
    ) -> Result<(), Failure> {
        let left = self
            .subscribers
            .left_at(email)
            .await
            .map_err(|e| Failure::Retry {
                reason: format!("store: {e}"),
                retry_after: None,
            })?;
        if left.is_none_or(|at| at < since) {
            return Ok(());
        }
        let call = crate::core::outbound::SparkLoopCall::Unsubscribe;
        let outcome = self
            .before_deadline(batch, self.sparkloop.call(target, &call))
            .await?;
        Self::outcome("sparkloop", call.name(), outcome, effects)
    }

    /// Starts a call only when it can end before the invocation's deadline: the client's
    /// timeout ends the request itself, and this bounds a rate limiter's wait too.
    async fn before_deadline(
        &self,
        batch: &Batch,
        call: impl std::future::Future<Output = CallOutcome>,
    ) -> Result<CallOutcome, Failure> {
        let left = batch.left_ms();
        if left < self.cfg.call_reserve_ms {
            return Err(Failure::Deadline);
        }
        let budget = std::time::Duration::from_millis((left - self.cfg.settle_ms).max(0) as u64);
        Ok(tokio::time::timeout(budget, call)
            .await
            .unwrap_or_else(|_| CallOutcome::Retry {
                reason: "the invocation's deadline came before the call ended".into(),
                retry_after: None,
            }))
    }

    /// Counts and notes an outbound call, and turns its outcome into a failure if needed.
    fn outcome(
        target: &str,
        call: &str,
        outcome: CallOutcome,
        effects: &mut Effects,
    ) -> Result<(), Failure> {
        metrics::count(
            metrics::Metric::OutboundCalls,
            1,
            &[("Target", target), ("Outcome", outcome.label())],
        );
        effects
            .calls
            .push(format!("{target}.{call}={}", outcome.label()));
        match outcome {
            CallOutcome::Retry {
                reason,
                retry_after,
            } => Err(Failure::Retry {
                reason: format!("{target} {call}: {reason}"),
                retry_after,
            }),
            CallOutcome::Permanent { status, body } => Err(Failure::Permanent(format!(
                "{target} {call} answered {status}: {body}"
            ))),
            _ => Ok(()),
        }
    }

    /// Backs off through the queue while the retry budget lasts (`RETRY_WINDOW_SECS` after the
    /// event was received, `MAX_ATTEMPTS` when set), then parks with the last error.
    async fn retry(
        &self,
        rec: &Record<'_>,
        env: &Envelope,
        batch: &Batch,
        reason: String,
        retry_after: Option<u64>,
    ) -> Settled {
        let delay =
            self.cfg
                .backoff
                .delay_secs(rec.receive_count, rand::random::<f64>(), retry_after);
        let attempt = Attempt {
            receive_count: rec.receive_count,
            age_secs: Utc::now()
                .signed_duration_since(env.received_at)
                .num_seconds(),
            held_secs: batch.held_secs(),
        };
        match self.cfg.retry.next(attempt, delay) {
            NextStep::GiveUp(why) => self.park(rec, format!("{why}; last error: {reason}")).await,
            NextStep::RetryIn(secs) => Settled::Retried {
                error: reason,
                delay_secs: secs,
            },
        }
    }

    /// Comes back after `secs` without spending the retry budget: nothing was attempted. On
    /// the last receive the queue's redrive allows, it is parked instead, with why, rather
    /// than moved to the DLQ by SQS without a word.
    async fn wait(&self, rec: &Record<'_>, batch: &Batch, why: &'static str, secs: u64) -> Settled {
        let redrive = self.cfg.retry.redrive_max_receives;
        if redrive > 0 && rec.receive_count >= redrive {
            let reason = format!(
                "{why}, at receive {} (the queue's redrive count)",
                rec.receive_count
            );
            let mut parked = self.park(rec, reason).await;
            if let Settled::Parked { waited, .. } = &mut parked {
                *waited = Some(why);
            }
            return parked;
        }
        Settled::Waiting {
            why,
            delay_secs: secs.min(visibility_left(batch.held_secs())),
        }
    }

    /// Sends the record to the DLQ with its reason and acknowledges it. If even that fails,
    /// the record is retried so nothing is lost.
    async fn park(&self, rec: &Record<'_>, reason: String) -> Settled {
        let mut attributes: BTreeMap<String, String> = rec
            .msg
            .message_attributes
            .iter()
            .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
            .collect();
        attributes.insert("error".into(), truncate(&reason, 1_000));
        attributes.insert("attempts".into(), rec.receive_count.to_string());
        attributes.insert("parked_at".into(), Utc::now().to_rfc3339());
        attributes.insert("source_message_id".into(), rec.id.clone());
        let message = OutboundMessage {
            body: rec.msg.body.clone().unwrap_or_default(),
            attributes,
        };
        let park_error = match self.queue.park(message).await {
            Ok(()) => {
                metrics::count(metrics::Metric::Parked, 1, &[]);
                None
            }
            Err(e) => Some(e.to_string()),
        };
        Settled::Parked {
            reason,
            waited: None,
            park_error,
        }
    }
}

/// When the worker decides; see [`Worker::deciding`].
enum Deciding {
    /// Decided before the lease: the rules read nothing stored for this event.
    BeforeLease(Decision),
    /// Decided after the lease, once these are read.
    AfterLease(Reads),
}

/// The decision's first action, when it is a status transition.
fn leading_transition(decision: &Decision) -> Option<&Transition> {
    match decision {
        Decision::Act(actions) => match actions.first() {
            Some(Action::Transition(t)) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

/// The lease step's outcome.
enum Acquired {
    /// Ours. `transition_applied`: the decision's leading transition was written with it.
    Held {
        transition_applied: bool,
    },
    Refused(Refusal),
}

/// Why the lease is not ours.
enum Refusal {
    /// Completed earlier; `other_bytes` is the stored payload hash when it differs.
    Duplicate { other_bytes: Option<String> },
    /// Another attempt holds it until `lease_until_ms`.
    InProgress { lease_until_ms: i64 },
    /// The dedupe id is held with a different payload.
    Conflict { stored_hash: String },
}

impl Acquired {
    /// The log line's `dedupe` field.
    fn label(&self) -> &'static str {
        match self {
            Acquired::Held { .. } => "acquired",
            Acquired::Refused(Refusal::Duplicate { .. }) => "duplicate",
            Acquired::Refused(Refusal::InProgress { .. }) => "in_progress",
            Acquired::Refused(Refusal::Conflict { .. }) => "conflict",
        }
    }
}

/// A lease this attempt holds.
struct Held {
    key: String,
    lease: LeaseRequest,
    transition_applied: bool,
}

/// What the actions did, up to where they ended.
#[derive(Default)]
struct Effects {
    /// The calls and state changes made, as `target.call=outcome`, for the log line.
    calls: Vec<String>,
    /// An external API was called: a failed completion must then keep the lease.
    made_calls: bool,
    /// Written with the completion.
    writes: Vec<StateWrite>,
}

impl Effects {
    fn note_transition(&mut self, t: &Transition, result: &TransitionResult) {
        let label = match result {
            TransitionResult::Applied => "applied",
            TransitionResult::Same => "same",
            TransitionResult::Stale(_) => "stale",
        };
        self.calls
            .push(format!("state.{}={label}", t.status.as_str()));
    }
}

/// The act step's outcome.
struct Acted {
    effects: Effects,
    end: Result<Finished, Failure>,
}

/// How a decision was carried out, when nothing failed.
#[derive(Debug, Clone, Copy)]
enum Finished {
    Done,
    /// Ignored by the rules, for this reason.
    Ignored(&'static str),
    /// A transition was stale against this stored status; the actions after it were skipped.
    Stale(ReferralStatus),
}

impl Finished {
    /// The completion's outcome as stored and logged.
    fn label(self) -> &'static str {
        match self {
            Finished::Ignored(_) => "ignored",
            Finished::Done | Finished::Stale(_) => "done",
        }
    }

    fn settled(self) -> Settled {
        match self {
            Finished::Ignored(_) => Settled::Ignored,
            Finished::Done | Finished::Stale(_) => Settled::Completed,
        }
    }

    fn note(self) -> Option<Cow<'static, str>> {
        match self {
            Finished::Done => None,
            Finished::Ignored(why) => Some(Cow::Borrowed(why)),
            Finished::Stale(stored) => Some(Cow::Owned(format!(
                "stale: the subscriber is already {}",
                stored.as_str()
            ))),
        }
    }
}

/// How a record ended: what SQS is told.
enum Settled {
    /// Carried out and recorded.
    Completed,
    /// Ignored by the rules, and recorded.
    Ignored,
    /// Completed earlier. `note` when with other bytes.
    Duplicate { note: Option<String> },
    /// Not attempted: back after `delay_secs`, its retry budget untouched.
    Waiting { why: &'static str, delay_secs: u64 },
    /// Failed: back after `delay_secs`.
    Retried { error: String, delay_secs: u64 },
    /// On the DLQ with `reason`; `waited` when it came there from a wait. When parking
    /// failed (`park_error`), reported failed without a back-off so SQS delivers it again.
    Parked {
        reason: String,
        waited: Option<&'static str>,
        park_error: Option<String>,
    },
}

impl Settled {
    fn verdict(&self) -> Verdict {
        let ack = |label: &str| Verdict::Ack(label.into());
        let retry = |reason: String, delay_secs| Verdict::Retry { reason, delay_secs };
        match self {
            Settled::Completed => ack("done"),
            Settled::Ignored => ack("ignored"),
            Settled::Duplicate { .. } => ack("duplicate"),
            Settled::Parked {
                park_error: None, ..
            } => ack("parked"),
            Settled::Parked {
                park_error: Some(e),
                ..
            } => retry(format!("park failed: {e}"), None),
            Settled::Waiting { delay_secs, .. } => retry("waiting".into(), Some(*delay_secs)),
            Settled::Retried { delay_secs, .. } => retry("retryable".into(), Some(*delay_secs)),
        }
    }

    /// The log line's `error`.
    fn error(&self) -> Option<&str> {
        match self {
            Settled::Retried { error, .. } => Some(error),
            Settled::Parked { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Something that went wrong on the way without changing what SQS is told; the log line's
/// `note` mentions it.
enum Aside {
    ReleaseFailed(String),
    LeaseLost,
    BackoffNotSet(String),
}

impl std::fmt::Display for Aside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Aside::ReleaseFailed(e) => write!(f, "release failed: {e}"),
            Aside::LeaseLost => f.write_str("lease lost before completing"),
            Aside::BackoffNotSet(e) => write!(f, "back-off not set: {e}"),
        }
    }
}

/// One record's end and the way there, as its log line reports it.
struct Outcome {
    /// The dedupe record's answer; `None` when the record never reached it.
    dedupe: Option<&'static str>,
    calls: Vec<String>,
    /// How the actions ended when nothing failed (the completion may still have).
    finished: Option<Finished>,
    settled: Settled,
    /// In the order they happened.
    asides: Vec<Aside>,
}

impl Outcome {
    /// Settled without acting.
    fn without_actions(settled: Settled) -> Self {
        Outcome {
            dedupe: None,
            calls: Vec::new(),
            finished: None,
            settled,
            asides: Vec::new(),
        }
    }

    /// The log line's `note`: why it waited, was ignored or stopped, then the asides.
    fn note(&self) -> Cow<'_, str> {
        let first: Option<Cow<str>> = match &self.settled {
            Settled::Duplicate { note: Some(note) } => Some(Cow::Borrowed(note)),
            Settled::Waiting { why, .. }
            | Settled::Parked {
                waited: Some(why), ..
            } => Some(Cow::Borrowed(why)),
            _ => self.finished.and_then(Finished::note),
        };
        let first = first.unwrap_or_default();
        if self.asides.is_empty() {
            return first;
        }
        let mut note = first.into_owned();
        for aside in &self.asides {
            // writing into a String cannot fail
            let _ = write!(note, " ({aside})");
        }
        Cow::Owned(note)
    }
}

enum Failure {
    /// Not started: the invocation's deadline is too near for another call.
    Deadline,
    Retry {
        reason: String,
        retry_after: Option<u64>,
    },
    Permanent(String),
}

/// A few quick retries of a store write whose failure would cost a long wait or a repeat.
async fn quick_retries<T, F, Fut>(what: &str, mut op: F) -> Result<T, crate::ports::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::ports::StoreError>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if attempt < 4 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// Whole seconds from `now_ms` until just after `until_ms` (at least 1).
fn secs_until(until_ms: i64, now_ms: i64) -> u64 {
    (until_ms.saturating_sub(now_ms).max(0) as u64).div_ceil(1000) + 1
}

fn parse_envelope(body: Option<&str>) -> Result<Envelope, String> {
    let body = body.ok_or("record without a body")?;
    serde_json::from_str(body).map_err(|e| e.to_string())
}

/// The record's one line, from its outcome. Written inside the invocation's span, not a span
/// of its own: a JSON line carries only its current span, and operators find a record's
/// invocation by `span.requestId`.
///
/// A field is on the INFO line when it says something: a note, an error, the calls and the
/// back-off only when there are some; `dedupe` unless it is the usual `acquired` or the
/// outcome itself (`duplicate`); `attempt` after the first; `message_id` (the SQS message,
/// for the batch's failures) when the record goes back or is parked. With DEBUG enabled
/// every line carries the last three.
fn log_record(rec: &Record<'_>, outcome: &Outcome, verdict: &Verdict, started: Instant) {
    let env = rec.envelope.as_ref().ok();
    let (label, delay) = match verdict {
        Verdict::Ack(label) => (label.as_str(), None),
        Verdict::Retry { delay_secs, .. } => ("retry", *delay_secs),
    };
    // Microseconds are precise enough, and a third of the digits of the full float.
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    let note = outcome.note();
    let verbose = tracing::enabled!(tracing::Level::DEBUG);
    let failed = matches!(label, "retry" | "parked");
    let dedupe = outcome
        .dedupe
        .filter(|d| verbose || (*d != "acquired" && *d != label));
    // One line per record, its fields written straight into it.
    let scrubbed = |text: &str| (!text.is_empty()).then(|| tracing::field::display(scrub(text)));
    tracing::info!(
        message_id = (verbose || failed).then_some(tracing::field::display(&rec.id)),
        attempt = (verbose || rec.receive_count > 1).then_some(rec.receive_count),
        provider = env.map(|e| e.provider.as_str()).unwrap_or("-"),
        kind = %Sanitized(env.map(|e| e.kind.as_str()).unwrap_or("-")),
        dedupe_id = %Sanitized(env.map(|e| e.dedupe_id.as_str()).unwrap_or("-")),
        email = %MaskedOpt(env.and_then(|e| e.subscriber.email.as_deref())),
        dedupe,
        calls = (!outcome.calls.is_empty()).then(|| tracing::field::display(Comma(&outcome.calls))),
        note = scrubbed(&note),
        error = outcome.settled.error().and_then(scrubbed),
        outcome = label,
        delay_secs = delay,
        latency_ms,
        "record"
    );
}

/// Comma-separated, written as the log line is.
struct Comma<'a>(&'a [String]);

impl std::fmt::Display for Comma<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// A fresh lease owner: a version 4 UUID from the thread's CSPRNG (seeded from the OS), where
/// `Uuid::new_v4` would make a system call for every lease.
fn lease_owner() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::{lease_owner, secs_until, Aside, Finished, Outcome, Settled, Verdict};
    use crate::core::ReferralStatus;

    #[test]
    fn every_lease_has_its_own_random_v4_owner() {
        let owners: std::collections::HashSet<String> = (0..1000).map(|_| lease_owner()).collect();
        assert_eq!(owners.len(), 1000);
        for owner in owners.iter().take(10) {
            let id = uuid::Uuid::parse_str(owner).expect("a UUID");
            assert_eq!(id.get_version(), Some(uuid::Version::Random), "{owner}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{owner}");
            assert_eq!(owner, &id.hyphenated().to_string());
        }
    }

    #[test]
    fn waits_until_just_after_the_lease() {
        for (until, now, want) in [
            (10_000, 10_000, 1), // ends now: come back in a second
            (10_001, 10_000, 2), // a millisecond left still rounds up
            (40_000, 10_000, 31),
            (5_000, 10_000, 1), // already over
            (i64::MIN, i64::MAX, 1),
        ] {
            assert_eq!(secs_until(until, now), want, "{until} {now}");
        }
    }

    fn outcome(finished: Option<Finished>, settled: Settled, asides: Vec<Aside>) -> Outcome {
        Outcome {
            finished,
            asides,
            ..Outcome::without_actions(settled)
        }
    }

    #[test]
    fn the_note_says_why_then_what_went_wrong_on_the_way() {
        let stale = Some(Finished::Stale(ReferralStatus::Verified));
        for (o, want) in [
            (outcome(None, Settled::Completed, vec![]), ""),
            (
                outcome(stale, Settled::Completed, vec![Aside::LeaseLost]),
                "stale: the subscriber is already verified (lease lost before completing)",
            ),
            (
                outcome(
                    None,
                    Settled::Retried {
                        error: "e".into(),
                        delay_secs: 3,
                    },
                    vec![
                        Aside::ReleaseFailed("r".into()),
                        Aside::BackoffNotSet("b".into()),
                    ],
                ),
                " (release failed: r) (back-off not set: b)",
            ),
            (
                // a failed completion keeps what the actions found
                outcome(
                    Some(Finished::Ignored("no SparkLoop effect")),
                    Settled::Retried {
                        error: "complete failed".into(),
                        delay_secs: 3,
                    },
                    vec![],
                ),
                "no SparkLoop effect",
            ),
            (
                outcome(
                    None,
                    Settled::Parked {
                        reason: "in progress elsewhere, at receive 5".into(),
                        waited: Some("in progress elsewhere"),
                        park_error: None,
                    },
                    vec![],
                ),
                "in progress elsewhere",
            ),
        ] {
            assert_eq!(o.note(), want);
        }
    }

    #[test]
    fn a_record_that_could_not_be_parked_goes_back_without_a_back_off() {
        let parked = |park_error: Option<&str>| Settled::Parked {
            reason: "bad".into(),
            waited: None,
            park_error: park_error.map(str::to_string),
        };
        assert_eq!(parked(None).verdict(), Verdict::Ack("parked".into()));
        assert_eq!(
            parked(Some("SQS down")).verdict(),
            Verdict::Retry {
                reason: "park failed: SQS down".into(),
                delay_secs: None
            }
        );
        assert_eq!(parked(Some("SQS down")).error(), Some("bad"));
    }
}
