//! Helpers shared by the integration tests.

pub mod browser;
pub mod cluster;
pub mod databases;
pub mod drpc;
pub mod ledger;
pub mod netns;
pub mod stream_count;
pub mod tracked;
pub mod workers;
pub mod zookeeper;
