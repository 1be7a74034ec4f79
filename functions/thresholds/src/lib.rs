//! `thresholds`: the vote aggregator on the table's stream (vote record
//! changes → the idea's count, the threshold check, the idea's move to the
//! committee). See `community::thresholds`.
pub use community::thresholds::stream_batch;
