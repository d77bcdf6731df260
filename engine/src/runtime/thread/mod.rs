//! An executor thread: runs the tasks of one or more executors, drains their input rings in
//! batches, calls the spouts, and publishes what they emit.
//!
//! One pass of the loop:
//!
//! 1. act on a life-cycle change (activate, deactivate, stop);
//! 2. move overflowed records into output rings;
//! 3. drain the ack rings (acker traffic), always — acks must flow for anything to
//!    complete, whatever the backpressure;
//! 4. unless an output is backlogged, drain the data rings, then ask the spouts for tuples
//!    (a backlogged output stops the thread from taking new work, which is how backpressure
//!    travels upstream without dropping anything);
//! 5. after every batch, process what the thread's tasks sent to each other;
//! 6. run due timers (ticks, tree timeouts), publish every output and the metrics;
//! 7. when nothing happened, wait on the thread's doorbell until input arrives, the state
//!    changes or a timer is due.

mod backpressure;
mod dispatch;
mod publish_clock;
mod spouts;
mod task_cell;
mod task_order;
mod watch;

pub(crate) use task_cell::TaskCell;

use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_ringbuf::WaitStrategy;
use squall_ringbuf::record::RecordConsumer;

use super::acker_traffic::AckerTraffic;
use super::emitter::Emitter;
use super::outputs::Outputs;
use super::run_state::{RunState, TaskError, TaskErrorKind, TopologyState};
use super::start::Plane;
use super::tree_root::RootLayout;
use crate::config::PanicPolicy;
use crate::context::ExecutorWaker;
use crate::ids::TaskId;
use crate::metrics::{RingCounters, SharedTaskMetrics};
use crate::topology::Topology;
use publish_clock::PublishClock;
use watch::RunStateWatch;

/// One input ring of a thread.
///
/// Aligned to two cache lines for the reason [`OutputPort`](super::ports::OutputPort) is:
/// the reader's position, written per batch, must not share a line with another thread's.
#[repr(align(128))]
pub(crate) struct InputPort {
    pub(crate) consumer: RecordConsumer,
    pub(crate) counters: Arc<RingCounters>,
    /// Records taken out so far.
    pub(crate) consumed: u64,
    /// The carrier feeding this ring from peer workers, told when it waits for room here
    /// (otherwise it would look again only at its next retry tick).
    pub(crate) producer: Option<Arc<dyn crate::runtime::carrier::PeerCarrier>>,
}

impl InputPort {
    /// Whether peer workers feed this ring (through the transport) rather than threads of
    /// this worker.
    #[inline]
    fn is_from_peers(&self) -> bool {
        self.producer.is_some()
    }

    #[inline]
    fn has_records(&self) -> bool {
        self.counters
            .published
            .load(std::sync::atomic::Ordering::Acquire)
            != self.consumed
    }
}

/// Everything a thread needs, assembled by the worker before it is spawned.
pub(crate) struct ThreadSetup {
    pub(crate) index: usize,
    pub(crate) topology: Arc<Topology>,
    pub(crate) run_state: Arc<RunState>,
    pub(crate) doorbell: Arc<dyn WaitStrategy>,
    pub(crate) tasks: Vec<(TaskId, Arc<SharedTaskMetrics>)>,
    /// Where the thread's records go, its ring to itself included.
    pub(crate) outputs: Outputs,
    /// The reading end of the thread's ring to itself.
    pub(crate) local_input: RecordConsumer,
    pub(crate) data_inputs: Vec<InputPort>,
    pub(crate) ack_inputs: Vec<InputPort>,
    /// Keep reading data inputs while an output is backlogged (threads on a cycle of the
    /// data graph, which would otherwise wait on each other forever).
    pub(crate) read_while_backlogged: bool,
    /// Per component: the peers (as a mask) its tuples can reach.
    pub(crate) peer_reach: Arc<[u64]>,
    pub(crate) worker_tasks: Arc<[TaskId]>,
    /// The worker bits of trees (see `tree_workers`).
    pub(crate) tree_workers: crate::runtime::tree_workers::TreeWorkers,
    pub(crate) core: Option<core_affinity::CoreId>,
    pub(crate) started: Instant,
    pub(crate) seed: u64,
}

/// A running executor thread's state.
pub(crate) struct ExecutorThread {
    index: usize,
    topology: Arc<Topology>,
    run_state: Arc<RunState>,
    doorbell: Arc<dyn WaitStrategy>,
    tasks: Vec<TaskCell>,
    /// Index into `tasks` of each task id of the topology (`u16::MAX`: not on this thread).
    cell_of_task: Box<[u16]>,
    emitter: Emitter,
    /// The reading end of the ring from this thread to itself (taken out while draining).
    local_input: Option<RecordConsumer>,
    data_inputs: Vec<InputPort>,
    ack_inputs: Vec<InputPort>,
    read_while_backlogged: bool,
    started: Instant,
    /// Nanoseconds since `started`, read once per batch of input records: ackers and
    /// settling spouts stamp with it instead of reading the clock per record.
    batch_clock: u64,
    /// The pass at which some task was last held back by backpressure, if the latest was.
    backpressure_since: Option<u64>,
    /// What the thread last saw of the run state, and the congestion it published.
    watch: RunStateWatch,
    state: TopologyState,
    /// Records processed (published to the run_state block for drain detection).
    processed: u64,
    /// When the tasks' histograms are next merged into their shared copies.
    publish_clock: PublishClock,
    /// Scratch record for tick tuples.
    tick_record: Vec<u8>,
    /// Scratch list of timed-out messages.
    expired: Vec<crate::runtime::acking::PendingTree>,
    input_batch: usize,
    /// Tuples the input batch being processed may still hand out: `input_batch` bounds
    /// tuples, not records, as a packed record carries many (see `process_guarded`).
    tuples_left: usize,
    /// On a thread with two or more bolts that take runs, one count per cell: their input
    /// is then held back and run in task order (see `task_order`).
    task_order_counts: Option<Box<[u16]>>,
    spout_batch: usize,
    spout_idle_backoff_nanos: u64,
    /// Set by the [`ExecutorWaker`] of this thread's tasks; ends a wait.
    woken: Arc<std::sync::atomic::AtomicBool>,
}

/// How long a thread with a backlogged output sleeps before it looks again. With the default
/// 50 µs timer slack, a 50 µs timeout slept about this long; executor threads now sleep
/// their timeouts to the microsecond, so the figure is explicit.
const BACKLOG_RECHECK_NANOS: u64 = 100_000;

impl ExecutorThread {
    /// Builds the thread's tasks (on the calling thread, which should be the executor thread
    /// itself) and starts them.
    pub(crate) fn new(setup: ThreadSetup) -> Self {
        if let Some(core) = setup.core
            && !core_affinity::set_for_current(core)
        {
            tracing::warn!(
                thread = setup.index,
                core = core.id,
                "could not pin executor thread"
            );
        }
        // The thread's timed waits end at spouts' next bursts and timers, often tens of
        // microseconds away: the default slack would double them.
        if !squall_ringbuf::wait::tighten_timer_slack() {
            tracing::debug!(thread = setup.index, "timer slack left at the default");
        }
        let now = setup.started.elapsed().as_nanos() as u64;
        let mut rng = fastrand::Rng::with_seed(setup.seed);
        let task_count = setup.topology.task_count();
        let mut cell_of_task = vec![u16::MAX; task_count + 1].into_boxed_slice();
        let mut tasks = Vec::with_capacity(setup.tasks.len());
        let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = {
            let (woken, doorbell) = (Arc::clone(&woken), Arc::clone(&setup.doorbell));
            ExecutorWaker::new(move || {
                woken.store(true, std::sync::atomic::Ordering::Release);
                doorbell.notify();
            })
        };
        for (index, (task, shared)) in setup.tasks.into_iter().enumerate() {
            cell_of_task[task.index()] = index as u16;
            let mut cell = TaskCell::new(
                &setup.topology,
                task,
                &setup.worker_tasks,
                shared,
                &mut rng,
                now,
            );
            cell.context.set_waker(waker.clone());
            let component = setup.topology.component_of(task).expect("task").index();
            cell.out.peer_reach = setup.peer_reach[component];
            tasks.push(cell);
        }
        let ackers = setup
            .topology
            .acker()
            .map_or(TaskId(0)..TaskId(0), |acker| {
                TaskId(acker.tasks.start)..TaskId(acker.tasks.end)
            });
        let acker_traffic = AckerTraffic::new(
            ackers,
            task_count,
            |task| setup.tree_workers.peer_of(task) == 0,
            RootLayout::of(&setup.topology),
        );
        let config = setup.topology.config();
        let mut thread = Self {
            index: setup.index,
            run_state: setup.run_state,
            doorbell: setup.doorbell,
            tasks,
            cell_of_task,
            emitter: Emitter::new(
                setup.outputs,
                acker_traffic,
                rng.u64(..),
                setup.tree_workers,
            ),
            local_input: Some(setup.local_input),
            data_inputs: setup.data_inputs,
            ack_inputs: setup.ack_inputs,
            read_while_backlogged: setup.read_while_backlogged,
            started: setup.started,
            batch_clock: now,
            backpressure_since: None,
            watch: RunStateWatch::default(),
            state: TopologyState::Active,
            processed: 0,
            publish_clock: PublishClock::new(now),
            tick_record: Vec::with_capacity(64),
            expired: Vec::new(),
            input_batch: config.input_batch,
            tuples_left: 0,
            task_order_counts: None,
            spout_batch: config.spout_batch,
            spout_idle_backoff_nanos: u64::try_from(config.spout_idle_backoff.as_nanos())
                .unwrap_or(u64::MAX),
            woken,
            topology: setup.topology,
        };
        if thread.run_state.state() == TopologyState::Inactive {
            thread.state = TopologyState::Inactive;
        }
        for index in 0..thread.tasks.len() {
            thread.start_task(index, now);
        }
        let batch_bolts = thread.tasks.iter().filter(|cell| cell.takes_runs()).count();
        if batch_bolts >= 2 {
            thread.task_order_counts = Some(vec![0; thread.tasks.len()].into_boxed_slice());
            thread.input_batch = task_order::ordered_input_batch(thread.input_batch, batch_bolts);
        }
        thread
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Starts a task; a spout is then activated if the topology is active.
    fn start_task(&mut self, index: usize, now: u64) {
        if let Err(failure) = self.tasks[index].start(now) {
            let error = self.task_error(index, TaskErrorKind::StartFailed, failure.0);
            self.fail_task(error);
        } else if self.state == TopologyState::Active {
            self.set_spout_active(index, true);
        }
    }

    fn task_error(&self, index: usize, kind: TaskErrorKind, message: String) -> TaskError {
        let cell = &self.tasks[index];
        TaskError {
            topology: self.topology.name().to_owned(),
            component: cell.out.component_id.clone(),
            task: cell.out.task,
            kind,
            message,
            at: std::time::SystemTime::now(),
        }
    }

    /// Reports a task failure and applies the panic policy's effect on the topology.
    fn fail_task(&self, error: TaskError) {
        match self.topology.config().on_panic {
            PanicPolicy::StopTopology => {
                self.run_state.report(error.clone());
                self.run_state.stop_because(error);
            }
            PanicPolicy::RestartTask => self.run_state.report(error),
        }
    }

    /// Runs the loop until the topology stops, then stops the tasks.
    pub(crate) fn run(mut self) {
        loop {
            if !self.observe_state() {
                break;
            }
            let mut progress = self.emitter.outputs.flush_overflow();
            progress |= self.drain_inputs(Plane::Ack);
            if !self.emitter.outputs.stops_reading() || self.read_while_backlogged {
                progress |= self.drain_inputs(Plane::Data);
            }
            let now = self.now_nanos();
            self.meter_backpressure(now);
            if self.state == TopologyState::Active && !self.emitter.outputs.is_locally_backlogged()
            {
                progress |= self.run_spouts(now);
            }
            progress |= self.poll_bolts();
            let next_timer = self.run_timers(now);
            self.drain_local();
            self.emitter.outputs.publish_all();
            self.publish_congestion();
            self.publish_progress(now);
            if !progress {
                // Idle: let snapshots see recent histograms before sleeping — at most every
                // few milliseconds, since a thread may go idle thousands of times a second.
                if self.publish_clock.idle_due(now) {
                    for cell in &mut self.tasks {
                        cell.out.meter.publish_histograms(&cell.shared);
                    }
                }
                self.wait(next_timer);
            }
        }
        // A killed topology's spouts are deactivated before they close, as in Storm.
        self.set_spouts_active(false);
        self.flush_acker_traffic();
        self.emitter.outputs.publish_all();
        for index in 0..self.tasks.len() {
            if let Some(panic) = self.tasks[index].stop() {
                let error = self.task_error(
                    index,
                    TaskErrorKind::Panic,
                    format!("while stopping: {panic}"),
                );
                self.run_state.report(error);
            }
        }
        self.publish_progress(self.now_nanos());
        self.run_state.threads[self.index]
            .exited
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Acts on a state change; returns false when the thread must stop.
    fn observe_state(&mut self) -> bool {
        if let Some(lost) = self.watch.new_peer_losses(&self.run_state) {
            let now = self.now_nanos();
            self.peers_lost(&lost, now);
        }
        let Some(epoch) = self.watch.new_epoch(&self.run_state) else {
            return true;
        };
        let state = self.run_state.state();
        if state == TopologyState::Stopping {
            return false;
        }
        if state != self.state {
            self.state = state;
            self.set_spouts_active(state == TopologyState::Active);
        }
        self.run_state.threads[self.index]
            .seen_epoch
            .store(epoch, std::sync::atomic::Ordering::Release);
        true
    }

    /// Publishes the progress counters (sent before processed: see `RunState`).
    fn publish_progress(&mut self, now: u64) {
        use std::sync::atomic::Ordering;
        let progress = &self.run_state.threads[self.index];
        progress
            .sent
            .store(self.emitter.outputs.records_sent, Ordering::Release);
        progress.processed.store(self.processed, Ordering::Release);
        for cell in &mut self.tasks {
            cell.out.meter.publish_counters(&cell.shared);
        }
        if self.publish_clock.periodic_due(now) {
            for cell in &mut self.tasks {
                cell.out.meter.publish_histograms(&cell.shared);
            }
        }
    }

    fn has_input(&self) -> bool {
        self.woken.swap(false, std::sync::atomic::Ordering::AcqRel)
            || self.watch.sees_news(&self.run_state)
            || self.ack_inputs.iter().any(InputPort::has_records)
            || ((!self.emitter.outputs.stops_reading() || self.read_while_backlogged)
                && self.data_inputs.iter().any(InputPort::has_records))
    }

    /// Tells the worker's other threads which peers this one has records waiting for, when
    /// that changed; wakes them when a peer is no longer congested, so that the spouts
    /// feeding it resume.
    fn publish_congestion(&mut self) {
        let congested = self.emitter.outputs.congested_peers();
        self.watch
            .publish_congestion(&self.run_state, self.index, congested);
    }

    fn wait(&mut self, until_nanos: u64) {
        let now = self.now_nanos();
        if until_nanos <= now {
            return;
        }
        // A backlogged output frees up without a doorbell ring: look again soon, but not so
        // soon that the look-ups take the core from the threads that drain the backlog.
        let limit = if self.emitter.outputs.is_backlogged() {
            BACKLOG_RECHECK_NANOS
        } else {
            until_nanos - now
        };
        let timeout = Duration::from_nanos(limit.min(until_nanos - now));
        let doorbell = Arc::clone(&self.doorbell);
        doorbell.wait_until(timeout, &mut || self.has_input());
    }
}
