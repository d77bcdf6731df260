//! The tracked topology and its ledger, shared with `squall drill` (see
//! [`squall_tools::drill::tracked`] and [`squall_tools::drill::ledger`]).

pub use squall_tools::drill::ledger::LedgerCheck;
pub use squall_tools::drill::tracked::{
    LedgerArgs, LedgerBolt, LedgerSpout, RelayBolt, WORDS, build_topology, word_of,
};
