//! The state every function's Router is built from: its storage port and
//! settings. Generic over the table, so the same handlers run on DynamoDB
//! (Lambda) and on the embedded store (local server, tests).

use crate::config::Settings;
use crate::store::Table;
use crate::votes::Rollups;
use std::sync::Arc;

pub struct App<T> {
    pub table: T,
    pub settings: Arc<Settings>,
    pub rollups: Arc<Rollups>,
}

impl<T: Clone> Clone for App<T> {
    fn clone(&self) -> Self {
        App {
            table: self.table.clone(),
            settings: self.settings.clone(),
            rollups: self.rollups.clone(),
        }
    }
}

impl<T: Table> App<T> {
    pub fn new(table: T, settings: Settings) -> Self {
        App {
            table,
            settings: Arc::new(settings),
            rollups: Arc::new(Rollups::default()),
        }
    }
}
