//! Helpers shared by the integration tests.

pub mod ledger;
pub mod workers;
