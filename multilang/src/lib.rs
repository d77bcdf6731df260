//! Components in any language: the host side of Storm's multi-lang protocol.
//!
//! A [`ShellSpout`] or [`ShellBolt`] runs a subprocess (one per task) and talks to it over
//! its stdin and stdout in JSON messages, each followed by a line `end`, exactly as Storm
//! does, so components written for Storm — with `pystorm`, Storm's own `storm.py`, or any
//! other multi-lang library — run unchanged. `docs/multilang.md` describes the protocol as
//! Squall speaks it, including where it follows Storm's behaviour on points the protocol
//! leaves open.
//!
//! The pieces, from the wire up:
//!
//! - [`framing`] cuts the subprocess's output into messages, [`protocol`] decodes them into
//!   [`ShellCommand`]s and encodes what the subprocess is sent, [`values`] maps tuple values
//!   to and from JSON. All three are pure functions over text, property-tested.
//! - A subprocess is served by three threads (writer, reader, stderr logger), so the
//!   executor thread never waits on it; the reader wakes the executor through its
//!   [`ExecutorWaker`](squall_core::context::ExecutorWaker) when a message arrives.
//! - [`environment`] withholds the worker's secrets (the cluster secret, the worker key)
//!   from every subprocess's environment.
//! - The spout and bolt keep the bookkeeping: message ids for spouts, in-flight inputs and
//!   their anchors for bolts, heartbeats, restarts.
//!
//! ```no_run
//! use squall_multilang::{ShellBolt, ShellSpec, ShellSpout};
//! use squall_core::{TopologyBuilder, TopologyConfig};
//!
//! let sentences = ShellSpec::new("python3", ["sentence_spout.py"]).output(&["sentence"]);
//! let split = ShellSpec::new("python3", ["split_bolt.py"]).output(&["word"]);
//! let mut builder = TopologyBuilder::new();
//! builder.set_spout("sentences", move || ShellSpout::new(sentences.clone()), 1);
//! builder
//!     .set_bolt("split", move || ShellBolt::new(split.clone()), 2)
//!     .shuffle_grouping("sentences")
//!     .set("topology.multilang.heartbeat.timeout", 10);
//! let topology = builder.build("words", TopologyConfig::default()).unwrap();
//! let running = squall_core::run(topology).unwrap();
//! ```

mod bolt;
pub mod environment;
pub mod framing;
mod handshake;
pub mod pid_dir;
mod process;
pub mod protocol;
mod restart;
mod runner;
mod spec;
mod spout;
pub mod values;
mod window_bolt;

pub use bolt::ShellBolt;
pub use process::{LaunchError, MessageError};
pub use protocol::{EmitCommand, LogLevel, ProtocolError, ShellCommand, SpoutCommand};
pub use spec::{
    ARTIFACT_DIR_KEY, DEFAULT_HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_KEY, Launch,
    MAX_MESSAGE_BYTES_KEY, RestartPolicy, STORM_SUBPROCESS_TIMEOUT_KEY, ShellSpec,
};
pub use spout::ShellSpout;
pub use values::ValueError;
pub use window_bolt::{ShellWindowBolt, WINDOW_STREAM};
