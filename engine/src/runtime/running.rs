//! The handle of a running topology: life-cycle, metrics, errors, drain and kill.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::run_state::{RunState, TaskError, TopologyState};
use crate::metrics::{
    ComponentMetrics, QueueMetrics, RingCounters, SharedTaskMetrics, TaskCounters,
    TaskMetricsSnapshot, TopologyMetrics, new_histogram,
};
use crate::topology::{ComponentKind, Topology};

/// A ring between two threads, for queue figures.
#[derive(Debug)]
pub(crate) struct RingInfo {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) counters: Arc<RingCounters>,
}

/// What [`RunningTopology::kill`] found.
#[derive(Debug, Clone)]
pub struct KillReport {
    /// Whether everything in flight was processed before the threads stopped.
    pub drained: bool,
    /// How long the kill took.
    pub took: Duration,
    /// Every error the topology's tasks reported.
    pub errors: Vec<TaskError>,
}

/// A topology running in this process.
///
/// Dropping the handle stops the topology at once (without draining) and joins its threads.
#[derive(Debug)]
pub struct RunningTopology {
    topology: Arc<Topology>,
    run_state: Arc<RunState>,
    threads: Vec<JoinHandle<()>>,
    metrics: Vec<Arc<SharedTaskMetrics>>,
    rings: Vec<RingInfo>,
    started: Instant,
    pinned: bool,
}

impl RunningTopology {
    pub(crate) fn new(
        topology: Arc<Topology>,
        run_state: Arc<RunState>,
        threads: Vec<JoinHandle<()>>,
        metrics: Vec<Arc<SharedTaskMetrics>>,
        rings: Vec<RingInfo>,
        started: Instant,
        pinned: bool,
    ) -> Self {
        Self {
            topology,
            run_state,
            threads,
            metrics,
            rings,
            started,
            pinned,
        }
    }

    /// The topology.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// Number of executor threads.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Whether the executor threads are pinned to cores.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// The current life-cycle state.
    pub fn state(&self) -> TopologyState {
        self.run_state.state()
    }

    /// Resumes asking spouts for tuples.
    pub fn activate(&self) {
        self.run_state.set_state(TopologyState::Active);
    }

    /// Stops asking spouts for tuples; what is in flight keeps flowing.
    pub fn deactivate(&self) {
        self.run_state.set_state(TopologyState::Inactive);
    }

    /// Every error reported so far (the first thousand).
    pub fn errors(&self) -> Vec<TaskError> {
        self.run_state.errors()
    }

    /// How many errors were reported.
    pub fn error_count(&self) -> u64 {
        self.run_state.error_count()
    }

    /// The failure that stopped the topology, if its panic policy stopped it.
    pub fn stopped_by(&self) -> Option<TaskError> {
        self.run_state
            .stopped_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether every executor thread has exited.
    pub fn has_stopped(&self) -> bool {
        self.run_state
            .threads
            .iter()
            .all(|thread| thread.exited.load(Ordering::Acquire))
    }

    /// Figures of every task, component and ring, as of now.
    pub fn metrics(&self) -> TopologyMetrics {
        let components = self.topology.components();
        let mut per_component: Vec<ComponentMetrics> = components
            .iter()
            .map(|component| ComponentMetrics {
                component: component.id().to_owned(),
                counters: TaskCounters::default(),
                execute_latency: new_histogram(),
                complete_latency: new_histogram(),
            })
            .collect();
        let mut tasks = Vec::with_capacity(self.metrics.len());
        for shared in &self.metrics {
            let counters = shared.counters();
            let component = &mut per_component[shared.component];
            let sum = &mut component.counters;
            sum.emitted += counters.emitted;
            sum.transferred += counters.transferred;
            sum.executed += counters.executed;
            sum.acked += counters.acked;
            sum.failed += counters.failed;
            sum.pending += counters.pending;
            sum.backpressured_nanos += counters.backpressured_nanos;
            let execute_latency = shared.execute_latency();
            let complete_latency = shared.complete_latency();
            // Same bounds on both sides, so adding cannot fail.
            let _ = component.execute_latency.add(&execute_latency);
            let _ = component.complete_latency.add(&complete_latency);
            tasks.push(TaskMetricsSnapshot {
                task: shared.task,
                component: components[shared.component].id().to_owned(),
                placement: shared.placement,
                counters,
                streams: shared.streams(),
                inputs: shared.inputs(),
                execute_latency,
                complete_latency,
            });
        }
        let queues = self
            .rings
            .iter()
            .map(|ring| {
                let consumed = ring.counters.consumed.load(Ordering::Relaxed);
                let published = ring.counters.published.load(Ordering::Relaxed);
                QueueMetrics {
                    from_thread: ring.from,
                    to_thread: ring.to,
                    depth: published.saturating_sub(consumed),
                    total: published,
                }
            })
            .collect();
        TopologyMetrics {
            uptime_secs: self.started.elapsed().as_secs_f64(),
            tasks,
            components: per_component,
            queues,
        }
    }

    /// Whether nothing is in flight: every thread has acted on the latest state change,
    /// every record sent between this process's threads has been processed, and no spout
    /// of this process waits for a tree.
    ///
    /// Records crossing to or from peer workers are not counted: the other end is in
    /// another process, so the counts would never balance. What matters of them is still
    /// covered: a tracked record keeps its spout's tree pending until it is acked or failed
    /// (by its timeout, or at once when the peer is lost), and an untracked one was never
    /// promised to arrive.
    pub fn is_drained(&self) -> bool {
        let snapshot = || {
            let epoch = self.run_state.epoch();
            let caught_up = self.run_state.threads.iter().all(|thread| {
                thread.exited.load(Ordering::Acquire)
                    || thread.seen_epoch.load(Ordering::Acquire) == epoch
            });
            // Processed before sent: a thread stores sent first, so a processed count seen
            // here comes with at least the sends that preceded it.
            let processed: u64 = self
                .run_state
                .threads
                .iter()
                .map(|thread| thread.processed.load(Ordering::Acquire))
                .sum();
            let sent: u64 = self
                .run_state
                .threads
                .iter()
                .map(|thread| thread.sent.load(Ordering::Acquire))
                .sum();
            let pending: u64 = self
                .metrics
                .iter()
                .filter(|shared| {
                    self.topology.components()[shared.component].kind() == ComponentKind::Spout
                })
                .map(|shared| shared.counters().pending)
                .sum();
            (caught_up && processed == sent && pending == 0, processed)
        };
        let (quiet, processed) = snapshot();
        if !quiet {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
        let (still_quiet, processed_again) = snapshot();
        still_quiet && processed == processed_again
    }

    /// Waits until [`is_drained`](Self::is_drained) or `timeout`; returns whether drained.
    pub fn wait_until_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_drained() {
                return true;
            }
            if Instant::now() >= deadline || self.has_stopped() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Deactivates the spouts, lets what is in flight finish for up to `drain_timeout`, then
    /// stops every thread (spouts `close`, bolts `cleanup`) and joins them.
    pub fn kill(mut self, drain_timeout: Duration) -> KillReport {
        let started = Instant::now();
        self.deactivate();
        let drained = self.wait_until_drained(drain_timeout);
        self.stop_and_join();
        KillReport {
            drained,
            took: started.elapsed(),
            errors: self.run_state.errors(),
        }
    }

    /// Waits until the topology stops by itself (a task failure under the stop policy) or
    /// `timeout` passes; returns whether it stopped.
    pub fn wait_until_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.has_stopped() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.has_stopped()
    }

    fn stop_and_join(&mut self) {
        self.run_state.set_state(TopologyState::Stopping);
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                tracing::error!(
                    topology = self.topology.name(),
                    "an executor thread panicked outside any task"
                );
            }
        }
    }
}

impl Drop for RunningTopology {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
