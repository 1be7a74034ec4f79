//! `points`: the points queue's consumer (SQS batches → the ledger).
pub use community::points::PointsConsumer;
