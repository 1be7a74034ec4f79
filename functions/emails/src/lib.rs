//! `emails`: the emails queue's consumer (events → French mails via SES).
pub use community::mail::EmailsConsumer;
