//! `thresholds`: the thresholds queue's consumer (vote events → roll-up,
//! threshold check, the idea's move to the committee).
pub use community::thresholds::ThresholdsConsumer;
