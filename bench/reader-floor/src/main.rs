//! `reader-floor [ITERATIONS]`: the time per check of SparkLoop's `sync_subscriber` sample body
//! (events/sparkloop/sync_subscriber.json) checked, nothing kept: read into `IgnoredAny` by
//! serde_json and by sonic-rs, and skipped by jiter's own reader (`Jiter::next_skip`, then
//! `finish` for nothing after it); three rounds, each reader in turn. Run it pinned:
//! `taskset -c 1`.

use std::hint::black_box;
use std::time::Instant;

use serde::de::IgnoredAny;

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/sparkloop/sync_subscriber.json"
    );
    let sample = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let sample: serde_json::Value = serde_json::from_str(&sample).expect("the sample is JSON");
    let body = sample["body"].as_str().expect("the sample has a body");
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    println!("{} bytes, {n} iterations a round", body.len());
    for round in 1..=3 {
        let serde_ns = per_check(n, || {
            serde_json::from_str::<IgnoredAny>(black_box(body)).expect("JSON");
        });
        let sonic_ns = per_check(n, || {
            sonic_rs::from_str::<IgnoredAny>(black_box(body)).expect("JSON");
        });
        let jiter_ns = per_check(n, || {
            let mut j = jiter::Jiter::new(black_box(body.as_bytes()));
            j.next_skip().expect("JSON");
            j.finish().expect("one value");
        });
        println!(
            "round {round}: serde_json {serde_ns:.0} ns, sonic-rs {sonic_ns:.0} ns, \
             jiter {jiter_ns:.0} ns"
        );
    }
}

fn per_check(n: u32, check: impl Fn()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        check();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}
