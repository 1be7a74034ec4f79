//! `insights`: the insights queue's consumer (SQS batches → marketing's
//! aggregates and the members' activity counters).
pub use community::insights::InsightsConsumer;
