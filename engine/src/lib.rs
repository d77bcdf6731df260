//! Squall: a real-time, fault-tolerant stream-processing engine in the Storm model.
//!
//! A *topology* is a graph of *spouts* (sources) and *bolts* (processing steps) joined by
//! *stream groupings*. Each component runs as a number of *tasks* spread over *executors*:
//! OS threads, pinned to cores when there are enough, that pass tuples to each other through
//! lock-free single-producer single-consumer rings. A tuple is encoded once, by the task
//! that emits it ([`mod@tuple`]), and read in place by every task that receives it.
//!
//! ```
//! use std::time::Duration;
//! use squall_core::{Bolt, BoltOutput, MessageId, Spout, SpoutOutput, TopologyBuilder, TopologyConfig, Tuple};
//!
//! /// Emits the numbers 1 to 100, each tracked until fully processed.
//! struct Numbers { next: u64, acked: std::sync::Arc<std::sync::atomic::AtomicU64> }
//! impl Spout for Numbers {
//!     fn declare_outputs(&self, d: &mut squall_core::OutputDeclarer) { d.declare(&["n"]); }
//!     fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) {
//!         if self.next < 100 {
//!             self.next += 1;
//!             out.emit_with_id(&[self.next.into()], MessageId(self.next));
//!         }
//!     }
//!     fn ack(&mut self, _id: MessageId, _out: &mut SpoutOutput<'_>) {
//!         self.acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     }
//! }
//!
//! /// Doubles each number, anchored to its input, and acks the input.
//! struct Double;
//! impl Bolt for Double {
//!     fn declare_outputs(&self, d: &mut squall_core::OutputDeclarer) { d.declare(&["n"]); }
//!     fn execute(&mut self, input: &Tuple<'_>, out: &mut BoltOutput<'_>) {
//!         let n = input.get_u64(0).unwrap();
//!         out.emit_anchored(input, &[(2 * n).into()]);
//!         out.ack(input);
//!     }
//! }
//!
//! struct Sink;
//! impl Bolt for Sink {
//!     fn execute(&mut self, input: &Tuple<'_>, out: &mut BoltOutput<'_>) { out.ack(input); }
//! }
//!
//! let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
//! let spout_acked = acked.clone();
//! let mut builder = TopologyBuilder::new();
//! builder.set_spout("numbers", move || Numbers { next: 0, acked: spout_acked.clone() }, 1);
//! builder.set_bolt("double", || Double, 2).shuffle_grouping("numbers");
//! builder.set_bolt("sink", || Sink, 1).fields_grouping("double", &["n"]);
//! let topology = builder.build("numbers", TopologyConfig::default()).unwrap();
//!
//! let running = squall_core::run(topology).unwrap();
//! let deadline = std::time::Instant::now() + Duration::from_secs(30);
//! while acked.load(std::sync::atomic::Ordering::Relaxed) < 100 && std::time::Instant::now() < deadline {
//!     std::thread::sleep(Duration::from_millis(10));
//! }
//! let report = running.kill(Duration::from_secs(10));
//! assert!(report.drained && report.errors.is_empty());
//! assert_eq!(acked.load(std::sync::atomic::Ordering::Relaxed), 100);
//! ```
#![forbid(unsafe_code)]

pub mod component;
pub mod config;
pub mod context;
pub mod grouping;
pub mod ids;
mod local;
pub mod metrics;
pub mod replay;
pub mod runtime;
pub mod state;
pub mod topology;
pub mod tuple;
pub mod value;
pub mod window;
pub mod worker;

#[cfg(test)]
mod testing;

pub use component::{Bolt, ComponentError, Spout};
pub use config::{Chaining, ComponentConfig, PanicPolicy, Pinning, TopologyConfig};
pub use context::{ExecutorWaker, TopologyContext};
pub use grouping::{CustomGrouping, EmittedFields, Grouping};
pub use ids::{DEFAULT_STREAM, MessageId, StreamId, TaskId};
pub use local::{LocalCluster, LocalClusterError, run};
pub use runtime::{
    Anchor, BoltOutput, EmitError, InputBatch, KillReport, RunningTopology, SpoutOutput,
    StartError, StreamHandle, TaskError, TaskErrorKind, TopologyState, Tuple,
};
/// Stage timestamps of the records between workers.
#[cfg(feature = "stage-trace")]
pub use squall_net::trace as stage_trace;
pub use squall_ringbuf::WaitStrategyKind;
pub use topology::{OutputDeclarer, Topology, TopologyBuilder, TopologyError};
pub use tuple::TupleRef;
pub use value::{OwnedValue, Value, ValueRef, ValueType};
