//! The integration tests, one module per area, in one test binary: each test binary links
//! the AWS SDK, so one binary links it once instead of once per area. Run one area with its
//! module path, e.g. `cargo test -p sparkbridge-tests --test it -- worker::`.
//!
//! The chaos runs (chaos.rs) are a binary of their own: libtest runs the tests of one binary
//! in parallel threads, and for minutes a chaos run keeps both cores and moto busy (a moto
//! call takes about 160 ms during `chaos_on_moto`, docs/reliability.md), which would break
//! the timing bounds of the tests here (a lease, a deadline, a visibility timeout) beside it.
//! Cargo runs the binaries one after the other.

mod crash_windows;
mod hostile;
mod ingest;
mod lifecycle;
mod reconcile;
mod template;
mod worker;
