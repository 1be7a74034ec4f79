//! End-to-end tests: each starts the `local` server binary as a process on a
//! fresh data directory and talks HTTP to it.

mod support;

mod campaigns;
mod durability;
mod flows;
