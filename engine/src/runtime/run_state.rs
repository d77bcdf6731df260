//! State shared by the threads of one running topology: its life-cycle state, the errors its
//! tasks reported, and the per-thread progress counters that tell when it has drained.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use crossbeam_utils::CachePadded;
use squall_ringbuf::WaitStrategy;

use super::congestion::PeerCongestion;
use crate::ids::TaskId;

/// Life-cycle state of a running topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TopologyState {
    /// Spouts are asked for tuples.
    Active = 0,
    /// Spouts are not asked for tuples; everything in flight still flows.
    Inactive = 1,
    /// Threads are stopping.
    Stopping = 2,
}

impl TopologyState {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => TopologyState::Active,
            1 => TopologyState::Inactive,
            _ => TopologyState::Stopping,
        }
    }
}

/// What went wrong in a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskErrorKind {
    /// The component's code panicked.
    Panic,
    /// `open` or `prepare` returned an error.
    StartFailed,
    /// An emit was refused (unknown stream, wrong number of fields, ...).
    Emit,
    /// A record that is not a well-formed tuple reached the task.
    MalformedRecord,
    /// The component reported an error itself.
    Reported,
}

/// An error reported by a task, with where it happened.
#[derive(Debug, Clone)]
pub struct TaskError {
    /// The topology.
    pub topology: String,
    /// The component.
    pub component: String,
    /// The task.
    pub task: TaskId,
    /// What kind of error.
    pub kind: TaskErrorKind,
    /// The message (a panic's payload, an error's text).
    pub message: String,
    /// When it was reported.
    pub at: SystemTime,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            TaskErrorKind::Panic => "panicked",
            TaskErrorKind::StartFailed => "failed to start",
            TaskErrorKind::Emit => "emit refused",
            TaskErrorKind::MalformedRecord => "malformed record",
            TaskErrorKind::Reported => "reported an error",
        };
        write!(
            f,
            "topology {:?}, component {:?}, task {}: {kind}: {}",
            self.topology, self.component, self.task, self.message
        )
    }
}

/// Progress counters of one executor thread, published once per pass of its loop.
#[derive(Debug, Default)]
pub(crate) struct ThreadProgress {
    /// Records taken out of rings fed by this worker's threads and the thread's own queue,
    /// and processed. Records from peer workers are left out, as their sends are counted
    /// (or rather not) in other processes.
    pub(crate) processed: CachePadded<AtomicU64>,
    /// Records written to rings of this worker's threads or the own queue; records for peer
    /// workers are left out.
    pub(crate) sent: AtomicU64,
    /// The last run_state epoch the thread acted on.
    pub(crate) seen_epoch: AtomicU64,
    /// Whether the thread has exited.
    pub(crate) exited: AtomicBool,
}

/// Most errors kept per topology; later ones are counted and logged only.
const MAX_KEPT_ERRORS: usize = 1000;

/// Shared run_state block of one running topology.
pub(crate) struct RunState {
    pub(crate) topology: String,
    state: AtomicU8,
    /// Bumped on every state change, so threads notice with one relaxed load.
    epoch: AtomicU64,
    doorbells: OnceLock<Vec<Arc<dyn WaitStrategy>>>,
    errors: Mutex<Vec<TaskError>>,
    error_count: AtomicU64,
    /// Set when a task's failure stopped the topology.
    pub(crate) stopped_by: Mutex<Option<TaskError>>,
    pub(crate) threads: Vec<ThreadProgress>,
    /// Bumped when a peer worker is lost, after its bit is appended to `lost_peers`.
    peer_losses: AtomicU64,
    /// Peers some thread has records waiting for.
    pub(crate) congestion: PeerCongestion,
    /// The bit (`tree_workers`) of each peer lost, in order: threads fail the trees routed
    /// through the lost links.
    lost_peers: Mutex<Vec<u64>>,
}

impl fmt::Debug for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunState")
            .field("topology", &self.topology)
            .field("state", &self.state())
            .field("errors", &self.error_count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RunState {
    pub(crate) fn new(topology: String, threads: usize) -> Self {
        Self {
            topology,
            state: AtomicU8::new(TopologyState::Active as u8),
            epoch: AtomicU64::new(0),
            doorbells: OnceLock::new(),
            errors: Mutex::new(Vec::new()),
            error_count: AtomicU64::new(0),
            stopped_by: Mutex::new(None),
            threads: (0..threads).map(|_| ThreadProgress::default()).collect(),
            peer_losses: AtomicU64::new(0),
            congestion: PeerCongestion::new(threads),
            lost_peers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn set_doorbells(&self, doorbells: Vec<Arc<dyn WaitStrategy>>) {
        let _ = self.doorbells.set(doorbells);
    }

    #[inline]
    pub(crate) fn state(&self) -> TopologyState {
        TopologyState::from_u8(self.state.load(Ordering::Acquire))
    }

    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Changes the state (never back from `Stopping`) and wakes every thread.
    pub(crate) fn set_state(&self, state: TopologyState) {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current == TopologyState::Stopping as u8 || current == state as u8 {
                return;
            }
            match self.state.compare_exchange(
                current,
                state as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.wake_all();
    }

    /// How many peer losses were signalled.
    #[inline]
    pub(crate) fn peer_losses(&self) -> u64 {
        self.peer_losses.load(Ordering::Acquire)
    }

    /// Signals that the link to the peer worker of bit `peer` was lost: the trees routed
    /// through it fail (they replay at once instead of waiting for their timeout).
    pub(crate) fn peer_lost(&self, peer: u64) {
        let mut lost = self
            .lost_peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lost.push(peer);
        self.peer_losses.store(lost.len() as u64, Ordering::Release);
        drop(lost);
        self.wake_all();
    }

    /// The bits of the peers lost after the first `seen` losses.
    pub(crate) fn lost_peers_since(&self, seen: u64) -> Vec<u64> {
        let lost = self
            .lost_peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lost.get(seen as usize..).unwrap_or_default().to_vec()
    }

    pub(crate) fn wake_all(&self) {
        for doorbell in self.doorbells.get().into_iter().flatten() {
            doorbell.notify();
        }
    }

    pub(crate) fn report(&self, error: TaskError) {
        tracing::error!(
            topology = %error.topology,
            component = %error.component,
            task = error.task.0,
            "{error}"
        );
        self.error_count.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() < MAX_KEPT_ERRORS {
            errors.push(error);
        }
    }

    pub(crate) fn errors(&self) -> Vec<TaskError> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn error_count(&self) -> u64 {
        self.error_count.load(Ordering::Relaxed)
    }

    /// Stops the topology because of `error`.
    pub(crate) fn stop_because(&self, error: TaskError) {
        self.stopped_by
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
        self.set_state(TopologyState::Stopping);
    }
}
