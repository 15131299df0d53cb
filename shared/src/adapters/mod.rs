//! Implementations of the ports: AWS (SQS, DynamoDB), HTTP (reqwest) and in-memory.

pub mod aws;
pub mod memory_queue;
pub mod sqs;
