//! `relay`: DynamoDB Streams (outbox inserts) → the SQS queues.
pub use community::relay::{relay, SqsOutbound};
