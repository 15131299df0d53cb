//! Times no sane provider sends, and none may panic on: Unix seconds across the whole i64
//! range (milliseconds sent as seconds, `created_at` = 8210266012800), unsigned and float
//! numbers, numbers as text, dates at year 9999 or with five and six digits, in zones whose
//! offset pushes them past a year boundary; and screening periods of any length. A panic in
//! an ingest Lambda is a 502 and a retry storm; in the worker, a message that never completes.
//!
//! Every parser keeps a time only inside what RFC 3339 can write (0000-01-01 to 9999-12-31,
//! UTC) and treats anything else as absent; `lifecycle::plan` clamps a screening deadline to
//! that range; `lifecycle::screen` saturates instead of overflowing.
//!
//! 10,000 cases per property unless `PROPTEST_CASES` says otherwise; no regression files.

use std::collections::BTreeMap;

use crate::hostile_inputs::{cases, config, extreme_i64};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use serde_json::Value;
use sparkbridge::core::envelope::{Envelope, Normalized, Provider, Subscriber, ENVELOPE_VERSION};
use sparkbridge::core::lifecycle::{self, Criteria, LifecycleConfig};
use sparkbridge::core::{esputnik, loops, sparkloop};
use sparkbridge::core::{ReferralStatus, SubscriberState};

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z, written out independently.
fn first() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("0000-01-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn last() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999999Z")
        .unwrap()
        .to_utc()
}

fn in_range(t: DateTime<Utc>) -> bool {
    first() <= t && t <= last()
}

/// A timestamp as a JSON literal: integers of any size and sign, milliseconds, floats,
/// numbers past i64 and u64, numbers as strings, dates as strings, other types.
fn timestamp_literal() -> BoxedStrategy<String> {
    prop_oneof![
        4 => extreme_i64().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => (0i64..300_000_000_000).prop_map(|s| (s * 1_000).to_string()),
        1 => any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(|n| n.to_string()),
        1 => extreme_i64().prop_map(|n| format!("\"{n}\"")),
        1 => proptest::sample::select(vec![
            "8210266012800",
            "1734425918000",
            "1734425918.5",
            "1.7e9",
            "1e308",
            "-1e308",
            "123456789012345678901234567890",
            "-123456789012345678901234567890",
            "-0",
            "0.0",
            "\"2024-12-17T08:58:38Z\"",
            "\"9999-12-31T23:59:59\"",
            "\"\"",
            "null",
            "true",
            "{}",
            "[1734425918]",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// `activityDateTime` texts around the edges of the four-digit years and of chrono's range.
fn datetime_text() -> BoxedStrategy<String> {
    let year = prop_oneof![
        Just(9999i64),
        Just(0i64),
        Just(10_000i64),
        Just(-1i64),
        Just(262_142i64),
        Just(262_143i64),
        Just(-262_143i64),
        Just(-262_144i64),
        -300_000i64..300_000,
    ];
    let tail = proptest::sample::select(vec![
        "",
        ".5",
        ".999999999",
        "Z",
        "+14:00",
        "-12:00",
        "+23:59",
        "-23:59",
    ]);
    (
        year,
        1u32..=12,
        1u32..=31,
        0u32..24,
        0u32..60,
        0u32..61,
        tail,
    )
        .prop_map(|(y, mo, d, h, mi, s, tail)| {
            let year = if y > 9999 {
                format!("+{y}")
            } else {
                format!("{y:04}")
            };
            format!("{year}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{tail}")
        })
        .boxed()
}

fn zone() -> BoxedStrategy<Tz> {
    proptest::sample::select(vec![
        Tz::UTC,
        "Pacific/Kiritimati".parse::<Tz>().unwrap(), // UTC+14
        "Etc/GMT+12".parse::<Tz>().unwrap(),         // UTC-12
        "Asia/Tokyo".parse::<Tz>().unwrap(),
        "America/New_York".parse::<Tz>().unwrap(),
    ])
    .boxed()
}

/// Screening periods in days: sane, huge, negative, and the ends of i64.
fn days() -> BoxedStrategy<i64> {
    prop_oneof![
        1 => 1i64..=30,
        2 => extreme_i64(),
        1 => proptest::sample::select(vec![
            0,
            -1,
            106_751_991_167_300,  // about TimeDelta's largest number of days
            106_751_991_167_301,
            -106_751_991_167_301,
            3_000_000,
            2_932_897,            // days from 1970 to 9999
        ]),
    ]
    .boxed()
}

/// Any instant chrono can hold, including its two ends.
fn instant() -> BoxedStrategy<DateTime<Utc>> {
    prop_oneof![
        3 => (extreme_i64(), 0u32..1_000_000_000).prop_map(|(s, n)| {
            DateTime::from_timestamp(s, n).unwrap_or(if s < 0 {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            })
        }),
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
        1 => (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
    ]
    .boxed()
}

fn delta() -> BoxedStrategy<TimeDelta> {
    prop_oneof![
        (-1_000i64..1_000).prop_map(TimeDelta::hours),
        any::<i64>().prop_map(|ms| TimeDelta::try_milliseconds(ms).unwrap_or(TimeDelta::MAX)),
        Just(TimeDelta::MAX),
        Just(TimeDelta::MIN),
    ]
    .boxed()
}

/// Whatever the parser made of it goes through the queue and back.
fn queued(provider: Provider, dedupe_id: String, n: Normalized) -> Envelope {
    let env = Envelope::new(provider, dedupe_id, Utc::now(), n);
    let msg = sparkbridge::ingest::to_message(&env);
    let back: Envelope = serde_json::from_str(&msg.body).expect("a queued envelope parses back");
    // chrono holds a leap second (":60") read in a local-mean-time zone as an instant that
    // serializes one second off: allow that second, as the hostile-parser tests do
    match (back.occurred_at, env.occurred_at) {
        (Some(b), Some(e)) => assert!((b - e).num_seconds().abs() <= 1, "{b} vs {e}"),
        (b, e) => assert_eq!(b, e),
    }
    back
}

fn pending_referral(created_at: &str, partner: &str) -> String {
    format!(
        r#"{{"type":"new_partner_pending_referral","campaign":{{"id":"pc_1","upscribe":true}},"subscriber":{{"id":"sub_1","email":"r@x.io","referral_status":"pending","partner_id":"{partner}","created_at":{created_at}}},"partner":{{"id":"{partner}","name":"P"}}}}"#
    )
}

/// The plan's screening period, when it has one, lies in the range and does not end before
/// it starts when the period is not negative.
fn check_plan(env: &Envelope, cfg: &LifecycleConfig, days: i64) -> Result<(), TestCaseError> {
    let plan = lifecycle::plan(env, cfg);
    if let Some((start, deadline)) = plan.transition.as_ref().and_then(|t| t.screening) {
        prop_assert!(in_range(deadline), "deadline {}", deadline);
        if in_range(start) && days >= 0 {
            prop_assert!(deadline >= start, "{} .. {}", start, deadline);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(cases()))]

    #[test]
    fn loops_event_time_of_any_kind_is_a_time_in_range_or_none(t in timestamp_literal()) {
        let body = format!(r#"{{"eventName":"email.opened","eventTime":{t},"contactIdentity":{{"email":"a@b.c"}}}}"#);
        match loops::parse(body.as_bytes()) {
            Ok(n) => {
                prop_assert!(n.occurred_at.is_none_or(in_range), "{}: {:?}", t, n.occurred_at);
                let env = queued(Provider::Loops, "msg_1".into(), n);
                prop_assert_eq!(env.kind, "email.opened");
            }
            Err(_) => prop_assert!(serde_json::from_str::<Value>(&body).is_err(), "{}", body),
        }
    }

    #[test]
    fn sparkloop_created_at_of_any_kind_never_panics_parsing_or_planning(
        t in timestamp_literal(),
        default_days in days(),
        partner_days in days(),
        per_partner in any::<bool>(),
    ) {
        let body = pending_referral(&t, "partner_a");
        match sparkloop::parse(body.as_bytes()) {
            Ok((id, n)) => {
                prop_assert!(n.occurred_at.is_none_or(in_range), "{}: {:?}", t, n.occurred_at);
                let env = queued(Provider::Sparkloop, id, n);
                let cfg = LifecycleConfig {
                    screening_days: default_days,
                    partner_days: if per_partner {
                        BTreeMap::from([("partner_a".to_string(), partner_days)])
                    } else {
                        BTreeMap::new()
                    },
                };
                let days = if per_partner { partner_days } else { default_days };
                check_plan(&env, &cfg, days)?;
                let plan = lifecycle::plan(&env, &cfg);
                let (start, _) = plan.transition.and_then(|t| t.screening).expect("a pending referral enters screening");
                prop_assert!(in_range(start), "the start is the event's time or its receipt: {}", start);
            }
            Err(_) => prop_assert!(serde_json::from_str::<Value>(&body).is_err(), "{}", body),
        }
    }

    #[test]
    fn esputnik_activity_date_time_of_any_kind_is_a_time_in_range_or_none(
        text in prop_oneof![3 => datetime_text().prop_map(|s| Value::String(s).to_string()), 1 => timestamp_literal()],
        tz in zone(),
    ) {
        let body = format!(r#"[{{"activityStatus":"READ","contactId":1,"email":"a@b.c","activityDateTime":{text}}}]"#);
        let els = esputnik::split(body.as_bytes(), tz);
        prop_assert_eq!(els.len(), 1);
        for el in els {
            prop_assert!(el.event.occurred_at.is_none_or(in_range), "{} in {}: {:?}", text, tz, el.event.occurred_at);
            queued(Provider::Esputnik, el.dedupe_id, el.event);
        }
    }

    #[test]
    fn plan_never_panics_on_any_event_time_or_screening_period(
        occurred in proptest::option::of(instant()),
        received in instant(),
        default_days in days(),
        partner_days in days(),
    ) {
        let payload = pending_referral("1659536359", "partner_a");
        let env = Envelope {
            v: ENVELOPE_VERSION,
            provider: Provider::Sparkloop,
            kind: "new_partner_pending_referral".into(),
            dedupe_id: "d".into(),
            received_at: received,
            occurred_at: occurred,
            subscriber: Subscriber::default(),
            parked: None,
            payload: serde_json::value::RawValue::from_string(payload).unwrap(),
        };
        for (cfg, days) in [
            (LifecycleConfig { screening_days: default_days, partner_days: BTreeMap::new() }, default_days),
            (LifecycleConfig { screening_days: 14, partner_days: BTreeMap::from([("partner_a".to_string(), partner_days)]) }, partner_days),
        ] {
            check_plan(&env, &cfg, days)?;
        }
    }

    #[test]
    fn screen_never_panics_on_any_deadline_now_or_window(
        start in instant(),
        deadline in instant(),
        now in instant(),
        before_end in delta(),
    ) {
        let state = SubscriberState {
            email: "r@x.io".into(),
            referral_status: Some(ReferralStatus::Pending),
            screening_started_at: Some(start),
            screening_deadline: Some(deadline),
            ..Default::default()
        };
        let criteria = Criteria { min_clicks: 1, ..Default::default() };
        lifecycle::screen(&state, &criteria, now, before_end);
    }
}

/// The values that used to overflow, one by one.
#[test]
fn the_known_overflows_are_handled() {
    // SparkLoop `created_at` in milliseconds: no time, the receipt time stands in
    let (id, n) = sparkloop::parse(pending_referral("8210266012800", "partner_a").as_bytes())
        .expect("valid JSON is accepted");
    assert_eq!(n.occurred_at, None);
    let env = queued(Provider::Sparkloop, id, n);
    let plan = lifecycle::plan(&env, &LifecycleConfig::default());
    let (start, deadline) = plan.transition.unwrap().screening.unwrap();
    assert_eq!(start, env.received_at);
    assert_eq!(deadline - start, TimeDelta::days(14));

    // an envelope that already carries a far time (queued before the parsers checked)
    let mut far = env.clone();
    far.occurred_at = DateTime::from_timestamp(8_210_266_012_800, 0);
    let (start, deadline) = lifecycle::plan(&far, &LifecycleConfig::default())
        .transition
        .unwrap()
        .screening
        .unwrap();
    assert_eq!(
        (start, deadline - start),
        (far.received_at, TimeDelta::days(14))
    );

    // a screening period no date can end: clamped to the last writable instant
    for days in [i64::MAX, 10_000_000, 106_751_991_167_301] {
        let cfg = LifecycleConfig {
            screening_days: days,
            partner_days: BTreeMap::new(),
        };
        let (_, deadline) = lifecycle::plan(&env, &cfg)
            .transition
            .unwrap()
            .screening
            .unwrap();
        assert_eq!(deadline, last(), "{days} days");
    }

    // year 9999 in a zone west of UTC is year 10000 in UTC: no time
    let ny: Tz = "America/New_York".parse().unwrap();
    let els = esputnik::split(
        br#"[{"activityStatus":"READ","contactId":1,"activityDateTime":"9999-12-31T23:59:59"}]"#,
        ny,
    );
    assert_eq!(els[0].event.kind, "READ");
    assert_eq!(els[0].event.occurred_at, None);
}
