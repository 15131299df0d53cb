//! Times from providers, kept inside what RFC 3339 can write: 0000-01-01T00:00:00Z to
//! 9999-12-31T23:59:59.999999999Z. chrono itself reaches year ±262143, but the state table
//! stores times as `%Y-%m-%dT...` text (sortable index keys) and reads them back with an RFC
//! 3339 parser, which takes four-digit years only; a time outside the range would be written
//! and then silently read back as absent. Every function here is total: no panics, whatever
//! the input.

use chrono::{DateTime, TimeDelta, Utc};

/// 0000-01-01T00:00:00Z.
pub const EARLIEST_SECS: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z.
pub const LATEST_SECS: i64 = 253_402_300_799;

/// The earliest time kept: 0000-01-01T00:00:00Z.
pub fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp(EARLIEST_SECS, 0).expect("year 0 is within chrono's range")
}

/// The latest time kept: 9999-12-31T23:59:59.999999999Z.
pub fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp(LATEST_SECS, 999_999_999).expect("year 9999 is within chrono's range")
}

/// `t` when RFC 3339 can write it, else `None`: a provider time that far out (milliseconds
/// sent as seconds, a sentinel such as year 9999 in another zone) is no usable time, and is
/// treated as absent.
pub fn within_range(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (earliest()..=latest()).contains(&t).then_some(t)
}

/// Unix seconds as a time, `None` outside the range (see [`within_range`]).
pub fn from_unix_secs(secs: i64) -> Option<DateTime<Utc>> {
    (EARLIEST_SECS..=LATEST_SECS)
        .contains(&secs)
        .then(|| DateTime::from_timestamp(secs, 0))
        .flatten()
}

/// `start` plus `days` days, clamped to the range: a period too long for any time (a huge
/// `SCREENING_DAYS` or partner rule, or one that `TimeDelta` cannot even hold) ends at
/// [`latest`], a hugely negative one at [`earliest`].
pub fn add_days_clamped(start: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    TimeDelta::try_days(days)
        .and_then(|d| start.checked_add_signed(d))
        .map_or_else(
            || if days < 0 { earliest() } else { latest() },
            |end| end.clamp(earliest(), latest()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_the_four_digit_years() {
        assert_eq!(earliest().to_rfc3339(), "0000-01-01T00:00:00+00:00");
        assert_eq!(latest().to_rfc3339(), "9999-12-31T23:59:59.999999999+00:00");
        for t in [earliest(), latest()] {
            let text = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert!(DateTime::parse_from_rfc3339(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn unix_seconds_by_table() {
        let cases = [
            (0, Some("1970-01-01T00:00:00+00:00")),
            (1_734_425_918, Some("2024-12-17T08:58:38+00:00")),
            (LATEST_SECS, Some("9999-12-31T23:59:59+00:00")),
            (LATEST_SECS + 1, None),
            (EARLIEST_SECS, Some("0000-01-01T00:00:00+00:00")),
            (EARLIEST_SECS - 1, None),
            (1_734_425_918_000, None), // milliseconds sent as seconds
            (8_210_266_012_800, None),
            (i64::MAX, None),
            (i64::MIN, None),
        ];
        for (secs, want) in cases {
            assert_eq!(
                from_unix_secs(secs).map(|t| t.to_rfc3339()).as_deref(),
                want,
                "{secs}"
            );
        }
    }

    #[test]
    fn adding_days_clamps_by_table() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let start = t(1_700_000_000);
        let cases = [
            (start, 14, t(1_700_000_000 + 14 * 86_400)),
            (start, 0, start),
            (start, -1, t(1_700_000_000 - 86_400)),
            (start, 10_000_000, latest()),
            (start, i64::MAX, latest()),
            (start, -10_000_000, earliest()),
            (start, i64::MIN, earliest()),
            (latest(), 1, latest()),
            (DateTime::<Utc>::MAX_UTC, 14, latest()),
            (DateTime::<Utc>::MIN_UTC, -14, earliest()),
            (DateTime::<Utc>::MIN_UTC, 14, earliest()),
        ];
        for (start, days, want) in cases {
            assert_eq!(add_days_clamped(start, days), want, "{start} + {days} days");
        }
    }

    proptest! {
        #[test]
        fn adding_days_never_panics_and_stays_in_range(secs in any::<i64>(), nanos in 0u32..2_000_000_000, days in any::<i64>()) {
            let start = DateTime::from_timestamp(secs, nanos).unwrap_or(DateTime::<Utc>::MAX_UTC);
            let end = add_days_clamped(start, days);
            prop_assert!(within_range(end).is_some());
            if let Some(plain) = TimeDelta::try_days(days).and_then(|d| start.checked_add_signed(d)) {
                if within_range(plain).is_some() {
                    prop_assert_eq!(end, plain, "inside the range nothing changes");
                }
            }
            prop_assert_eq!(from_unix_secs(secs).is_some(), (EARLIEST_SECS..=LATEST_SECS).contains(&secs));
        }
    }
}
