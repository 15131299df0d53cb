//! Implementations of the ports: AWS (SQS, DynamoDB, Secrets Manager), HTTP (reqwest) and
//! in-memory.

pub mod aws;
pub mod dynamodb;
pub mod esp;
pub mod memory_queue;
pub mod memory_secrets;
pub mod memory_store;
pub mod secretsmanager;
pub mod sparkloop;
pub mod sqs;
