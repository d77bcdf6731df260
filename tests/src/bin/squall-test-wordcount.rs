//! A word-count topology program for the multi-worker and cluster tests: every message is
//! tracked, its outcome is logged durably, so a test can check after crashes that nothing
//! acknowledged was lost and everything was processed at least once.
//!
//! Arguments (after the mode): `--messages N --state-dir DIR [--spouts S] [--relays R]
//! [--counters C] [--workers W] [--timeout-ms T] [--pending P] [--rate R]` (R: messages per
//! second per spout task, 0 for as fast as possible).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use squall::{ComponentError, Topology, TopologyBuilder, TopologyConfig};
use squall_tests::ledger::{LedgerArgs, LedgerBolt, LedgerSpout, RelayBolt};

fn build(args: &[String]) -> Result<Arc<Topology>, ComponentError> {
    let args = LedgerArgs::parse(args)?;
    let mut builder = TopologyBuilder::new();
    let spout_args = args.clone();
    builder.set_spout(
        "messages",
        move || LedgerSpout::new(&spout_args),
        args.spouts,
    );
    builder
        .set_bolt("relay", || RelayBolt, args.relays)
        .shuffle_grouping("messages");
    let bolt_args = args.clone();
    builder
        .set_bolt("count", move || LedgerBolt::new(&bolt_args), args.counters)
        .fields_grouping("relay", &["word"]);
    let config = TopologyConfig::default()
        .with_workers(args.workers)
        .with_message_timeout(Duration::from_millis(args.timeout_ms))
        .with_max_spout_pending(args.pending);
    Ok(builder.build("wordcount", config)?)
}

fn main() -> ExitCode {
    squall::app::main(build)
}
