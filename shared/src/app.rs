//! The state every function's Router is built from: its storage port, its
//! settings (fixed, or read from the table at run time: `crate::live`) and,
//! on AWS, the verifier of tokens sent to public routes. Generic over the
//! table, so the same handlers run on DynamoDB (Lambda) and on the embedded
//! store (local server, tests).

use crate::config::Settings;
use crate::live::{Live, Overrides, RefreshError};
use crate::store::Table;
use crate::tokens::TokenVerifier;
use std::sync::Arc;

pub struct App<T> {
    pub table: T,
    live: Arc<Live>,
    /// Verifies a bearer token that reached a route without API Gateway's
    /// authorizer (the public routes); None where something in front
    /// already did (the local server) or no token is verified.
    pub verifier: Option<Arc<TokenVerifier>>,
}

impl<T: Clone> Clone for App<T> {
    fn clone(&self) -> Self {
        App {
            table: self.table.clone(),
            live: self.live.clone(),
            verifier: self.verifier.clone(),
        }
    }
}

impl<T> App<T> {
    /// The settings now (cheap: a lock and an `Arc` clone). Refreshed at
    /// the boundaries by [`App::refresh`].
    pub fn settings(&self) -> Arc<Settings> {
        self.live.get()
    }

    /// The same settings and verifier over another table (a wrapper of
    /// this one: tests that count or fail store calls).
    pub fn with_table<U>(&self, table: U) -> App<U> {
        App {
            table,
            live: self.live.clone(),
            verifier: self.verifier.clone(),
        }
    }
}

impl<T: Table> App<T> {
    /// An app whose settings never change (tests, one-off commands).
    pub fn new(table: T, settings: Settings) -> Self {
        App {
            table,
            live: Arc::new(Live::fixed(settings)),
            verifier: None,
        }
    }

    /// An app whose settings are the campaign applied to its table, read
    /// again every `ttl` (`crate::live`), over `base` (the built-in files
    /// and the deployment's environment).
    pub fn from_table(
        table: T,
        base: Settings,
        overrides: Overrides,
        ttl: std::time::Duration,
    ) -> Self {
        App {
            table,
            live: Arc::new(Live::from_table(base, overrides, ttl)),
            verifier: None,
        }
    }

    pub fn with_verifier(mut self, v: Option<TokenVerifier>) -> Self {
        self.verifier = v.map(Arc::new);
        self
    }

    /// Reads the applied settings again if they are older than the TTL; a
    /// no-op for fixed settings. Called at every boundary: an HTTP request,
    /// a consumer batch, a scheduled run.
    pub async fn refresh(&self) -> Result<(), RefreshError> {
        self.live.refresh(&self.table).await
    }

    /// [`App::refresh`] where an error must not stop the work: the current
    /// settings stay and the error is logged.
    pub async fn refresh_or_keep(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "settings not refreshed; the current ones stay");
        }
    }
}
