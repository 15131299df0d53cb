//! Queue-driven retry delays: capped exponential back-off with full jitter, for as long as
//! the retry window lasts.

/// SQS refuses a visibility timeout above 12 hours, counted from the receive that handed the
/// message out (time already spent on it included).
pub const SQS_MAX_VISIBILITY_SECS: u64 = 43_200;
/// `RETRY_WINDOW_SECS` default: an effect is retried for 72 hours after it was received.
pub const DEFAULT_RETRY_WINDOW_SECS: u64 = 259_200;
/// The longest retry window allowed: 12 days, inside SQS's 14-day retention, so a message is
/// always parked (and kept 14 more days on the DLQ) before the queue would drop it.
pub const MAX_RETRY_WINDOW_SECS: u64 = 1_036_800;
/// Slack kept below SQS's 12-hour limit for the time between the receive and the handler's
/// start (the event source's batching window) that the handler cannot see.
const VISIBILITY_SLACK_SECS: u64 = 60;

/// How long a retryable failure is retried. Only real attempts count: waiting for another
/// worker's lease, or for the next invocation near a deadline, never spends the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// `RETRY_WINDOW_SECS`: retried until this long after the event was received.
    pub window_secs: u64,
    /// `MAX_ATTEMPTS`: receives before parking; 0 = no count limit (the window decides).
    pub max_attempts: u32,
    /// `REDRIVE_MAX_RECEIVE_COUNT`: the queue's redrive count, when known (0 = unknown). The
    /// last receive SQS allows is parked by the worker, with its error, instead of being
    /// moved to the DLQ by SQS without one.
    pub redrive_max_receives: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            window_secs: DEFAULT_RETRY_WINDOW_SECS,
            max_attempts: 0,
            redrive_max_receives: 0,
        }
    }
}

/// Where one failed attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// SQS's `ApproximateReceiveCount` (1 for the first).
    pub receive_count: u32,
    /// Seconds since the event was received by ingest (the envelope's `received_at`).
    pub age_secs: i64,
    /// Seconds this delivery has been held since the handler got it.
    pub held_secs: u64,
}

/// What to do after a retryable failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Make the message visible again after this many seconds.
    RetryIn(u64),
    /// The budget is spent: park with this explanation (the last error is added to it).
    GiveUp(String),
}

impl RetryBudget {
    /// The step after a failed attempt; `delay` is the back-off's wish (jitter, Retry-After).
    /// The delay never takes the next attempt past the window's end, nor SQS's 12-hour limit.
    pub fn next(&self, attempt: Attempt, delay: u64) -> NextStep {
        if self.max_attempts > 0 && attempt.receive_count >= self.max_attempts {
            return NextStep::GiveUp(format!(
                "gave up after {} attempts (MAX_ATTEMPTS)",
                attempt.receive_count
            ));
        }
        if self.redrive_max_receives > 0 && attempt.receive_count >= self.redrive_max_receives {
            return NextStep::GiveUp(format!(
                "gave up at receive {} (the queue's redrive count)",
                attempt.receive_count
            ));
        }
        let window = i64::try_from(self.window_secs).unwrap_or(i64::MAX);
        let left = window.saturating_sub(attempt.age_secs.max(0));
        if left <= 0 {
            return NextStep::GiveUp(format!(
                "gave up after {} attempts: the retry window of {} s (RETRY_WINDOW_SECS) ended",
                attempt.receive_count, self.window_secs
            ));
        }
        NextStep::RetryIn(
            delay
                .min(left as u64)
                .min(visibility_left(attempt.held_secs)),
        )
    }
}

/// SQS's largest redrive count (`maxReceiveCount`).
pub const SQS_MAX_RECEIVE_COUNT: u32 = 1_000;

impl RetryBudget {
    /// The smallest redrive count that never moves a message to the DLQ while it is still
    /// inside its window: with full jitter an attempt waits half the cap on average, so the
    /// window holds about `2 × window / cap` attempts once the back-off is capped; four times
    /// that, plus 50 receives for the back-off's first rungs, lease waits and records handed
    /// back near a deadline, keeps a safe margin (the worker itself parks at the window's end).
    /// `template.yaml`'s `RedriveMaxReceiveCount` default is held to this by a test.
    pub fn redrive_count(&self, backoff: &BackoffPolicy) -> u32 {
        let capped = (4 * self.window_secs).div_ceil(backoff.cap_secs.max(1));
        let by_window = u32::try_from(capped.saturating_add(50)).unwrap_or(u32::MAX);
        by_window
            .max(self.max_attempts.saturating_add(2))
            .min(SQS_MAX_RECEIVE_COUNT)
    }
}

/// The longest visibility SQS still accepts for a delivery held `held_secs` already.
pub fn visibility_left(held_secs: u64) -> u64 {
    SQS_MAX_VISIBILITY_SECS.saturating_sub(held_secs.saturating_add(VISIBILITY_SLACK_SECS))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base_secs: u64,
    pub cap_secs: u64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base_secs: 30,
            cap_secs: 3_600,
        }
    }
}

impl BackoffPolicy {
    /// Delay before the next attempt. `receive_count` is SQS's `ApproximateReceiveCount` of
    /// the attempt that just failed (1 for the first); `unit` is a uniform random number in
    /// [0, 1) (passed in so tests are deterministic). A server's `Retry-After` is a floor.
    pub fn delay_secs(&self, receive_count: u32, unit: f64, retry_after: Option<u64>) -> u64 {
        let exp = receive_count.saturating_sub(1).min(32);
        let ceiling = self
            .base_secs
            .saturating_mul(1u64 << exp)
            .min(self.cap_secs);
        let jittered = (ceiling as f64 * unit.clamp(0.0, 1.0)).floor() as u64;
        jittered
            .max(retry_after.unwrap_or(0))
            .min(SQS_MAX_VISIBILITY_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_table() {
        let p = BackoffPolicy {
            base_secs: 30,
            cap_secs: 600,
        };
        for (count, unit, retry_after, want) in [
            (1, 0.999_999, None, 29),
            (1, 0.5, None, 15),
            (2, 0.999_999, None, 59),
            (3, 0.5, None, 60),
            (5, 0.999_999, None, 479),
            (6, 0.999_999, None, 599),  // capped at 600
            (40, 0.999_999, None, 599), // no overflow on huge counts
            (1, 0.0, None, 0),          // full jitter may retry at once
            (1, 0.0, Some(120), 120),   // Retry-After is a floor
            (6, 0.9, Some(5), 540),
            (1, 0.5, Some(100_000), SQS_MAX_VISIBILITY_SECS),
            (0, 0.5, None, 15),
        ] {
            assert_eq!(
                p.delay_secs(count, unit, retry_after),
                want,
                "count={count} unit={unit} ra={retry_after:?}"
            );
        }
    }

    #[test]
    fn never_exceeds_the_cap_without_retry_after() {
        let p = BackoffPolicy::default();
        for c in 0..100 {
            for u in [0.0, 0.3, 0.999] {
                assert!(p.delay_secs(c, u, None) <= p.cap_secs);
            }
        }
    }

    fn attempt(receive_count: u32, age_secs: i64, held_secs: u64) -> Attempt {
        Attempt {
            receive_count,
            age_secs,
            held_secs,
        }
    }

    #[test]
    fn retries_for_the_window_then_gives_up() {
        let b = RetryBudget::default();
        assert_eq!(b.next(attempt(50, 3_600, 0), 900), NextStep::RetryIn(900));
        // an hour's back-off near the end is cut to the window's end: one last try there
        assert_eq!(
            b.next(attempt(90, 259_200 - 120, 0), 3_600),
            NextStep::RetryIn(120)
        );
        for age in [259_200, 259_201, i64::MAX] {
            match b.next(attempt(90, age, 0), 10) {
                NextStep::GiveUp(why) => assert!(why.contains("RETRY_WINDOW_SECS"), "{why}"),
                other => panic!("{age}: {other:?}"),
            }
        }
        // a clock behind received_at is no reason to give up
        assert_eq!(b.next(attempt(1, -5_000, 0), 30), NextStep::RetryIn(30));
    }

    #[test]
    fn max_attempts_zero_means_no_count_limit() {
        let b = RetryBudget::default();
        assert_eq!(b.next(attempt(u32::MAX, 10, 0), 5), NextStep::RetryIn(5));
        let counted = RetryBudget {
            max_attempts: 8,
            ..b
        };
        assert!(
            matches!(counted.next(attempt(8, 10, 0), 5), NextStep::GiveUp(w) if w.contains("MAX_ATTEMPTS"))
        );
        assert_eq!(counted.next(attempt(7, 10, 0), 5), NextStep::RetryIn(5));
    }

    #[test]
    fn the_last_receive_before_redrive_is_parked_by_the_worker() {
        let b = RetryBudget {
            redrive_max_receives: 350,
            ..RetryBudget::default()
        };
        assert_eq!(b.next(attempt(349, 10, 0), 5), NextStep::RetryIn(5));
        assert!(
            matches!(b.next(attempt(350, 10, 0), 5), NextStep::GiveUp(w) if w.contains("redrive"))
        );
    }

    #[test]
    fn visibility_stays_inside_twelve_hours_of_the_receive() {
        use NextStep::RetryIn;
        let b = RetryBudget {
            window_secs: MAX_RETRY_WINDOW_SECS,
            ..RetryBudget::default()
        };
        // a Retry-After of a day asks more than SQS allows
        let RetryIn(d) = b.next(attempt(1, 0, 0), 86_400) else {
            panic!()
        };
        assert!(d <= SQS_MAX_VISIBILITY_SECS && d > 40_000, "{d}");
        // 11 h 59 min already spent on this delivery: what is left, never more
        let RetryIn(d) = b.next(attempt(1, 0, 43_140), 86_400) else {
            panic!()
        };
        assert_eq!(d, 0);
        let RetryIn(d) = b.next(attempt(1, 0, 30_000), 86_400) else {
            panic!()
        };
        assert_eq!(d, 43_200 - 30_000 - 60);
    }

    #[test]
    fn the_redrive_count_outlasts_the_window() {
        let backoff = BackoffPolicy::default();
        let b = RetryBudget::default();
        assert_eq!(b.redrive_count(&backoff), 4 * 72 + 50);
        let tiny_cap = BackoffPolicy {
            base_secs: 1,
            cap_secs: 1,
        };
        assert_eq!(b.redrive_count(&tiny_cap), SQS_MAX_RECEIVE_COUNT);
        let counted = RetryBudget {
            max_attempts: 900,
            ..b
        };
        assert_eq!(counted.redrive_count(&backoff), 902);
    }
}
