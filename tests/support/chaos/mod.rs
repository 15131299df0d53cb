//! Chaos tools: a fault-injecting proxy in front of moto, fake SparkLoop / Loops /
//! eSputnik APIs that inject faults and count effects per target, fault-injecting wrappers for
//! the in-memory ports, a delivery plan with duplicates, pollers that run the worker the way
//! Lambda's SQS event source does, and the final accounting.
//!
//! Every injected fault is decided BEFORE the request takes effect unless it is counted as an
//! "after" fault: then the effect happened and only the answer is replaced by an error, the
//! case of a response lost on the way back.
//!
//! One file per tool (`aws_proxy`, `fake_apis`, `faulty_ports`, `pollers`, `plan`,
//! `accounting`), `faults` and `serve` for what they share; everything public is re-exported
//! here, so callers name `sparkbridge_tests::chaos::X` whichever file holds it.

use std::time::{Duration, Instant};

mod accounting;
mod aws_proxy;
mod fake_apis;
mod faults;
mod faulty_ports;
mod plan;
mod pollers;
mod serve;

pub use accounting::*;
pub use aws_proxy::*;
pub use fake_apis::*;
pub use faults::*;
pub use faulty_ports::*;
pub use plan::*;
pub use pollers::*;

/// Parses the chaos env knobs: `CHAOS_EVENTS`, `CHAOS_SEED`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints `line()` to stderr every `every` until the returned handle is aborted (long runs).
pub fn progress(
    every: Duration,
    line: impl Fn() -> String + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            eprintln!(
                "[chaos {:>5.0}s] {}",
                started.elapsed().as_secs_f64(),
                line()
            );
        }
    })
}
