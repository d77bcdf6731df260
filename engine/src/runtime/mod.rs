//! Running topologies: executor threads, the rings between them, routing and acking.

pub(crate) mod acker_traffic;
pub(crate) mod acking;
mod anchor;
pub(crate) mod carrier;
mod collector;
pub(crate) mod congestion;
mod emit_batch;
pub(crate) mod emitter;
mod input_batch;
pub(crate) mod outputs;
pub(crate) mod placement;
pub(crate) mod ports;
pub(crate) mod run_state;
mod running;
mod slot_ledgers;
pub(crate) mod start;
#[cfg(test)]
pub(crate) mod task_fixture;
pub(crate) mod thread;
pub(crate) mod tree_root;
pub(crate) mod tree_workers;

pub use anchor::{Anchor, Tuple};
pub use collector::{BoltOutput, SpoutOutput, StreamHandle};
pub use emitter::EmitError;
pub use input_batch::InputBatch;
pub use run_state::{TaskError, TaskErrorKind, TopologyState};
pub use running::{KillReport, RunningTopology};
pub use start::{EXECUTOR_THREAD_NAME_PREFIX, StartError};
