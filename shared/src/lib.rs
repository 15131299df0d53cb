//! sparkbridge: connects an email service provider (Loops, eSputnik) to SparkLoop.
//!
//! `core` is pure (no AWS, no HTTP): provider parsing and verification, the normalized
//! envelope, and the rules. `ports` are the narrow traits the handlers need; `adapters`
//! implement them over SQS, DynamoDB, reqwest and in memory. `ingest` and `worker` are the
//! Lambda handlers, shared by the functions and by `sparkbridge dev`.

pub mod adapters;
pub mod config;
pub mod core;
pub mod ingest;
#[cfg(feature = "dev")]
pub mod local;
pub mod ports;
pub mod reconcile;
pub mod screener;
pub mod secrets;
pub mod telemetry;
pub mod worker;
