//! Checkpointed state: stateful bolts whose key-value state survives failures, and the
//! barriers that make every input count in it exactly once.
//!
//! A topology with a stateful bolt is *checkpointed*: the builder runs every spout and bolt
//! in a wrapper that speaks the checkpoint protocol.
//!
//! - **Barriers start at the sources.** Every checkpoint interval each spout task records
//!   its source's position under the next checkpoint number and emits a barrier, in band,
//!   after the tuples it emitted so far, to every task downstream.
//! - **Tasks align.** A task with several upstream tasks holds what comes after a barrier
//!   on one channel until the barrier arrived on all of them. Then a stateful task hands
//!   the keys changed since the last checkpoint to its writer thread (the bolt pauses for
//!   that copy, not for the write), and every task forwards the barrier, anchored to the
//!   ones it received.
//! - **A checkpoint commits when its last barrier tree completes.** A stateful task acks
//!   its barriers once its changes are durable; when a spout's barrier tree completes, the
//!   spout reports the checkpoint to the ledger, and the checkpoint is committed the moment
//!   every spout task has reported it. One ledger update decides it, so the commit is
//!   atomic across tasks.
//! - **A failure rolls everything back.** A failed tuple or barrier, a task that starts
//!   or restarts, starts a new *generation* in the ledger from the newest committed
//!   checkpoint. Spouts go back to their position in it and emit a rollback barrier; each
//!   task, once the rollback barrier arrived on every channel, restores the checkpoint and
//!   discards whatever still arrives from the old generation.
//!
//! With [`ReplayableSpout`]s, every input therefore affects the committed state exactly
//! once. A plain [`Spout`](crate::Spout) can take part, but cannot go back: after a
//! rollback, what it emitted since the restored checkpoint is not emitted again unless it
//! replays it itself on `fail`, so those inputs count at most once.
//!
//! ```
//! use squall_core::state::{KeyValueState, StatefulBolt};
//! use squall_core::{BoltOutput, Tuple};
//!
//! /// Counts words; the counts survive failures.
//! struct Counter;
//!
//! impl StatefulBolt for Counter {
//!     fn execute(&mut self, input: &Tuple<'_>, state: &mut KeyValueState, output: &mut BoltOutput<'_>) {
//!         if let Ok(word) = input.get_str(0) {
//!             state.add_u64(word.as_bytes(), 1);
//!         }
//!         output.ack(input);
//!     }
//! }
//! ```

mod align;
pub mod backend;
mod bolt;
pub mod embedded;
pub mod kv;
mod spout;

use std::sync::Arc;
use std::time::Duration;

pub use backend::{
    CheckpointLedger, LedgerRecord, LedgerView, StateBackend, StateError, TaskStore,
};
pub use bolt::StatefulBolt;
pub(crate) use bolt::{CheckpointedBolt, Wrapped};
pub use embedded::EmbeddedBackend;
pub use kv::{Delta, Entries, KeyValueState};
pub(crate) use spout::{CheckpointingSpout, Source};
pub use spout::{ReplayOutput, ReplayableSpout};

use crate::topology::{ComponentKind, Topology};

/// The stream barriers travel on, from every component of a checkpointed topology.
pub const BARRIER_STREAM: &str = "__barrier";

/// The fields of a barrier: its generation, its checkpoint (for a rollback barrier: the
/// checkpoint restored) and whether it is a rollback barrier (1) or a checkpoint (0).
pub const BARRIER_FIELDS: [&str; 3] = ["generation", "checkpoint", "rollback"];

/// How a checkpointed topology takes its checkpoints.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// How often the sources start a checkpoint.
    pub interval: Duration,
    /// Where checkpoints and the ledger are kept.
    pub backend: Arc<dyn StateBackend>,
}

impl Default for Checkpointing {
    /// Every second, in the embedded backend ([`EmbeddedBackend::from_env`]).
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            backend: Arc::new(EmbeddedBackend::from_env()),
        }
    }
}

/// A task's store and the topology's ledger, opened for a task that starts.
pub(crate) struct Books {
    pub(crate) store: Box<dyn TaskStore>,
    pub(crate) ledger: Box<dyn CheckpointLedger>,
    /// The generation this start began, and the checkpoint it starts from.
    pub(crate) view: LedgerView,
}

/// Opens the task's store and the ledger, and starts a new generation: a task that starts
/// has lost whatever it held or emitted, so everyone goes back to the last committed
/// checkpoint. A source task (`source`: its index over every source task) claims its
/// place with that generation, superseding any older incarnation still running.
pub(crate) fn open_books(
    backend: &Arc<dyn StateBackend>,
    context: &crate::context::TopologyContext,
    source: Option<usize>,
) -> Result<Books, StateError> {
    let topology = context.topology();
    let store = backend.task_store(
        topology.name(),
        context.component_id(),
        context.task_index(),
    )?;
    let mut ledger = backend.ledger(topology.name(), source_tasks(topology))?;
    let view = match source {
        Some(source) => ledger.claim(source)?,
        None => {
            let seen = ledger.view()?.generation;
            ledger.roll_back(seen)?
        }
    };
    Ok(Books {
        store,
        ledger,
        view,
    })
}

/// How many spout tasks the topology has: the ledger waits for all of them.
pub(crate) fn source_tasks(topology: &Topology) -> usize {
    topology
        .components()
        .iter()
        .filter(|component| component.kind() == ComponentKind::Spout)
        .map(|component| component.task_count())
        .sum()
}
