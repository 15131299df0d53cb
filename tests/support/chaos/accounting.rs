//! Accounting: what took effect, what was lost, duplicated or parked.

use std::collections::{BTreeSet, HashMap};

use sparkbridge::core::envelope::Envelope;

use super::plan::Plan;

/// A parked message: its idempotency key and the worker's error attribute.
#[derive(Debug, Clone)]
pub struct Parked {
    pub key: String,
    pub error: String,
}

impl Parked {
    pub fn from_message(body: &str, attributes: &HashMap<String, String>) -> Self {
        let key = serde_json::from_str::<Envelope>(body)
            .map(|e| e.idempotency_key())
            .unwrap_or_else(|_| format!("unparseable:{body}"));
        Self {
            key,
            error: attributes.get("error").cloned().unwrap_or_default(),
        }
    }
}

#[derive(Debug)]
pub struct Accounting {
    pub events: usize,
    pub effects: u64,
    pub lost: Vec<String>,
    pub duplicated: Vec<(String, u32)>,
    /// Unique events on the DLQ.
    pub dlq: usize,
    pub dlq_messages: usize,
    /// DLQ entries that are not permanent failures (key, error).
    pub dlq_unexpected: Vec<(String, String)>,
    /// Permanent failures that are not on the DLQ.
    pub permanent_missing: Vec<String>,
    /// Effects at the fake for targets that must never succeed.
    pub permanent_effects: u64,
    /// Duplicate effects explained by answers lost to the client timeout or to a killed
    /// invocation (the fake answered 200, nobody read it): at-least-once by design.
    pub late_answer_duplicates: u64,
    /// Keys with duplicates the late answers do not explain.
    pub unexplained: Vec<String>,
}

impl Accounting {
    /// `timeouts`: per target, timeouts the worker saw; `hangs`: per target, deliberate
    /// hangs at the fake. Timeouts beyond the hangs were 200s answered too late.
    pub fn new(
        plan: &Plan,
        effects: &HashMap<String, u32>,
        dlq: &[Parked],
        timeouts: &HashMap<String, u32>,
        hangs: &HashMap<String, u32>,
    ) -> Self {
        let mut late_answer_duplicates = 0u64;
        let mut unexplained = Vec::new();
        let mut total = 0u64;
        let mut lost = Vec::new();
        let mut duplicated = Vec::new();
        let mut permanent_effects = 0u64;
        for e in &plan.events {
            let n = effects.get(&e.target).copied().unwrap_or(0);
            if e.permanent {
                permanent_effects += n as u64;
                continue;
            }
            total += n as u64;
            if n == 0 {
                lost.push(e.key.clone());
            }
            if n > 1 {
                duplicated.push((e.key.clone(), n));
                let late = timeouts
                    .get(&e.target)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(hangs.get(&e.target).copied().unwrap_or(0));
                late_answer_duplicates += (n - 1).min(late) as u64;
                if n - 1 > late {
                    unexplained.push(e.key.clone());
                }
            }
        }
        let permanent: BTreeSet<&str> = plan
            .events
            .iter()
            .filter(|e| e.permanent)
            .map(|e| e.key.as_str())
            .collect();
        let parked: BTreeSet<&str> = dlq.iter().map(|p| p.key.as_str()).collect();
        let mut unexpected: Vec<(String, String)> = dlq
            .iter()
            .filter(|p| !permanent.contains(p.key.as_str()))
            .map(|p| (p.key.clone(), p.error.clone()))
            .collect();
        unexpected.sort();
        Self {
            events: plan.good(),
            effects: total,
            lost,
            duplicated,
            dlq: parked.len(),
            dlq_messages: dlq.len(),
            dlq_unexpected: unexpected,
            permanent_missing: permanent
                .difference(&parked)
                .map(|s| s.to_string())
                .collect(),
            permanent_effects,
            late_answer_duplicates,
            unexplained,
        }
    }

    /// Duplicate effects (every effect beyond the first).
    pub fn duplicates(&self) -> u64 {
        self.duplicated.iter().map(|(_, n)| (n - 1) as u64).sum()
    }

    /// Duplicates the late answers do not explain: a dedupe failure.
    pub fn unexplained_duplicates(&self) -> u64 {
        self.duplicates() - self.late_answer_duplicates
    }

    /// `events=N effects=N lost=0 duplicates=0 dlq=K`
    pub fn line(&self) -> String {
        format!(
            "events={} effects={} lost={} duplicates={} dlq={}",
            self.events,
            self.effects,
            self.lost.len(),
            self.duplicated
                .iter()
                .map(|(_, n)| (n - 1) as u64)
                .sum::<u64>(),
            self.dlq
        )
    }

    pub fn detail(&self) -> String {
        format!(
            "duplicates_from_late_answers={} unexplained_duplicates={} dlq_messages={} dlq_not_permanent={} permanent_missing_from_dlq={} permanent_effects={}",
            self.late_answer_duplicates,
            self.unexplained_duplicates(),
            self.dlq_messages,
            self.dlq_unexpected.len(),
            self.permanent_missing.len(),
            self.permanent_effects
        )
    }

    /// Exactly once: no loss, no duplicate, the DLQ holds exactly the permanent failures.
    pub fn is_clean(&self) -> bool {
        self.duplicated.is_empty() && self.is_at_least_once_clean()
    }

    /// As `is_clean`, but duplicates caused by answers lost to the client timeout are
    /// allowed (at-least-once): only a duplicate the dedupe should have stopped fails it.
    pub fn is_at_least_once_clean(&self) -> bool {
        self.lost.is_empty()
            && self.unexplained_duplicates() == 0
            && self.dlq_unexpected.is_empty()
            && self.permanent_missing.is_empty()
            && self.permanent_effects == 0
            && self.effects == self.events as u64 + self.duplicates()
    }
}
