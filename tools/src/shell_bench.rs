//! The `shell-bolt` scenario of `squall-bench`: a Python (pystorm) bolt in the path.
//!
//! Constant spout → shell bolt running `examples/bench/identity_bolt.py` (passed to
//! `python3 -c`, so nothing is written to disk) → null bolt. Every tuple is tracked and the
//! spout keeps at most [`MAX_PENDING`] trees in flight: a shell bolt does not slow its
//! inputs down by itself, so the pending limit is what bounds the tuples queued for the
//! subprocess.

use squall::builtin::components::{ConstSpout, NullBolt, SinkProbes};
use squall::builtin::topologies::{BuiltinOptions, BuiltinTopology};
use squall::multilang::{ShellBolt, ShellSpec};
use squall::{TopologyBuilder, TopologyError};

/// The pystorm bolt of the scenario.
pub const IDENTITY_BOLT: &str = include_str!("../../examples/bench/identity_bolt.py");

/// Tracked trees in flight per spout task.
pub const MAX_PENDING: u32 = 1_000;

/// Builds the scenario's topology (`options.middle` shell bolt tasks).
///
/// # Errors
/// When the options make an invalid topology.
pub fn build(name: &str, options: &BuiltinOptions) -> Result<BuiltinTopology, TopologyError> {
    let mut config = options.config.clone();
    if config.ackers == Some(0) {
        config.ackers = None;
    }
    config.max_spout_pending = Some(MAX_PENDING);
    let mut source = options.source.clone();
    source.tracked = true;
    let sinks = SinkProbes::default();
    let mut builder = TopologyBuilder::new();
    let spout_source = source.clone();
    builder.set_spout(
        "const",
        move || ConstSpout::new(1, spout_source.clone()),
        options.spouts,
    );
    let identity = ShellSpec::new("python3", ["-c", IDENTITY_BOLT]).output(&["value", "stamp"]);
    builder
        .set_bolt(
            "python",
            move || ShellBolt::new(identity.clone()),
            options.middle,
        )
        .shuffle_grouping("const");
    let probes = sinks.clone();
    builder
        .set_bolt("null", move || NullBolt::new(&probes), options.sinks)
        .shuffle_grouping("python");
    Ok(BuiltinTopology {
        topology: builder.build(name, config)?,
        source,
        sinks,
        words: None,
        sinks_hold_tuples: false,
    })
}
