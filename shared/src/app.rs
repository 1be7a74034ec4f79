//! The state every function's Router is built from: its storage port and
//! settings. Generic over the table, so the same handlers run on DynamoDB
//! (Lambda) and on the embedded store (local server, tests).

use crate::config::Settings;
use crate::store::Table;
use std::sync::Arc;

pub struct App<T> {
    pub table: T,
    pub settings: Arc<Settings>,
}

impl<T: Clone> Clone for App<T> {
    fn clone(&self) -> Self {
        App {
            table: self.table.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<T: Table> App<T> {
    pub fn new(table: T, settings: Settings) -> Self {
        App {
            table,
            settings: Arc::new(settings),
        }
    }
}
