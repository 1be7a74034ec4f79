//! The community backend's shared crate: domain, ports and adapters, and the
//! HTTP boundary every function uses. Business logic lives here, once.

pub mod access;
pub mod ambassadors;
pub mod app;
pub mod auth;
pub mod campaigns;
pub mod cards;
pub mod comments;
pub mod committee;
pub mod config;
pub mod contests;
pub mod contrib;
pub mod digests;
pub mod domain;
pub mod draw;
pub mod error;
pub mod events;
pub mod gdpr;
pub mod http;
pub mod ideas;
pub mod identity;
pub mod insights;
pub mod lambda;
pub mod live;
pub mod loyalty;
pub mod mail;
pub mod members;
pub mod metrics;
pub mod mine;
pub mod moderation;
pub mod observe;
pub mod points;
pub mod products;
pub mod programme;
pub mod queue;
pub mod ratelimit;
pub mod receipt;
pub mod relay;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod thresholds;
pub mod tokens;
pub mod votes;

pub use app::App;
