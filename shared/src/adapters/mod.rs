//! Implementations of the ports: AWS (SQS, DynamoDB, Secrets Manager), HTTP (reqwest) and
//! in-memory. The in-memory ones are for development and tests (the `dev` feature, and
//! this crate's own unit tests).

pub mod aws;
pub mod dynamodb;
pub mod esp;
#[cfg(any(test, feature = "dev"))]
pub mod memory_queue;
#[cfg(any(test, feature = "dev"))]
pub mod memory_secrets;
#[cfg(any(test, feature = "dev"))]
pub mod memory_store;
pub mod secretsmanager;
pub mod sparkloop;
pub mod sqs;
