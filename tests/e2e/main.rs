//! End-to-end tests: each starts the `community` binary (the local server) as a process on a
//! fresh data directory and talks HTTP to it.

mod support;

mod answers;
mod campaigns;
mod docs_page;
mod durability;
mod flows;
mod one_of_each;
