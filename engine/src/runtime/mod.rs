//! Running topologies: executor threads, the rings between them, routing and acking.

pub(crate) mod acking;
mod anchor;
mod collector;
pub(crate) mod control;
pub(crate) mod emitter;
pub(crate) mod plan;
pub(crate) mod ports;
mod running;
pub(crate) mod thread;
pub(crate) mod worker;

pub use anchor::{Anchor, Tuple};
pub use collector::{BoltOutput, SpoutOutput, StreamHandle};
pub use control::{TaskError, TaskErrorKind, TopologyState};
pub use emitter::EmitError;
pub use running::{KillReport, RunningTopology};
pub use worker::StartError;
