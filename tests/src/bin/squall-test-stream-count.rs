//! A checkpointed word count reading a Redis stream, for the cluster's exactly-once test.
//! Arguments: see [`squall_tests::stream_count::StreamCountArgs`].

use std::process::ExitCode;

fn main() -> ExitCode {
    squall::app::main(squall_tests::stream_count::build_topology)
}
