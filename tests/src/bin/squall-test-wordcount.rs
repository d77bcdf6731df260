//! A word-count topology program for the multi-worker and cluster tests: every message is
//! tracked, its outcome is logged durably, so a test can check after crashes that nothing
//! acknowledged was lost and everything was processed at least once. Arguments: see
//! [`squall_tools::drill::tracked`].

use std::process::ExitCode;

fn main() -> ExitCode {
    squall::app::main(squall_tools::drill::tracked::build_topology)
}
