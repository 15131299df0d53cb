//! Queue-driven retry delays: capped exponential back-off with full jitter.

/// SQS refuses a visibility timeout above 12 hours.
pub const SQS_MAX_VISIBILITY_SECS: u64 = 43_200;

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
}
