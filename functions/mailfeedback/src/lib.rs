//! `mailfeedback`: the `mail_feedback` queue's consumer (SES's bounces and
//! complaints, through the configuration set's SNS topic, raw delivery →
//! suppressed addresses and marketing's figures; `community::mail::feedback`).
pub use community::mail::feedback::FeedbackConsumer;
