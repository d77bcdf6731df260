//! The tracked topology `squall drill` submits: every message acked and processed is logged
//! in a state directory, so the drill can tell what a fault lost. Arguments: see
//! [`squall_tools::drill::tracked`].

use std::process::ExitCode;

fn main() -> ExitCode {
    squall::app::main(squall_tools::drill::tracked::build_topology)
}
