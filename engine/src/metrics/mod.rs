//! Per-task counters and latency histograms, and the snapshots embedders read.
//!
//! Each task owns its counters and histograms on its executor thread and publishes them:
//! counters with one relaxed store each per pass of the executor loop (no read-modify-write,
//! no shared cache line between tasks), histograms by merging into a shared copy under a
//! lock about ten times a second. Reading a snapshot never slows the data path.
//!
//! Counts are exact. Execute latency is measured on one in
//! [`TopologyConfig::latency_sample_every`](crate::TopologyConfig::latency_sample_every)
//! executions (two clock reads cost about as much as a small bolt's `execute`; set it to 1
//! to measure every one); complete latency is measured on every tuple tree. Histograms of
//! several tasks or workers are merged bucket by bucket, never by averaging percentiles.

mod snapshot;

pub use snapshot::{
    ComponentMetrics, InputStreamMetrics, LatencySummary, QueueMetrics, StreamMetrics,
    TaskMetricsSnapshot, TaskPlacement, TopologyMetrics,
};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::ids::TaskId;

/// Longest latency the histograms track exactly (longer ones count as this): 10 minutes.
pub const MAX_TRACKED_NANOS: u64 = 600_000_000_000;

/// Significant decimal digits of the task histograms: values are exact to 1 %, which keeps
/// each histogram small (a few thousand buckets), so merging it into the shared copy and
/// clearing it stay cheap.
const SIGNIFICANT_DIGITS: u8 = 2;

/// Settled trees per recorded complete latency: one tree in this many is recorded, counted
/// as this many (see [`TaskMeter::record_complete`]).
const COMPLETE_STRIDE: u32 = 8;

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NANOS, SIGNIFICANT_DIGITS)
        .expect("constant bounds are valid")
}

/// The running totals a task counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounters {
    /// Tuples emitted (one per emit call, whatever the number of targets).
    pub emitted: u64,
    /// Records sent to target tasks (an emit to three tasks counts three).
    pub transferred: u64,
    /// Tuples executed (bolts) or handed to `ack`/`fail` (spouts).
    pub executed: u64,
    /// Tuples acked (bolts) or trees completed (spouts).
    pub acked: u64,
    /// Tuples failed (bolts) or trees failed or timed out (spouts).
    pub failed: u64,
    /// Tracked trees in flight (spouts).
    pub pending: u64,
    /// Nanoseconds the task could not emit (spouts) or take input (bolts) because an output
    /// ring of its executor thread, or the link to a peer its tuples reach, had no room.
    pub backpressured_nanos: u64,
}

/// Tuples one task emitted on one of its output streams, and (spouts) the trees rooted
/// there that completed or failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamCounts {
    pub(crate) emitted: u64,
    pub(crate) transferred: u64,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
}

/// What one bolt task did with the tuples of one input stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InputCounts {
    pub(crate) executed: u64,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
}

/// The shared copy of one input stream's counts.
#[derive(Debug)]
pub(crate) struct SharedInputCounts {
    /// The stream's topology-wide id.
    pub(crate) id: u16,
    /// The component emitting it.
    pub(crate) source: String,
    pub(crate) name: String,
    executed: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
}

impl SharedInputCounts {
    pub(crate) fn new(id: u16, source: String, name: String) -> Self {
        Self {
            id,
            source,
            name,
            executed: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

/// The shared copy of one output stream's counts.
#[derive(Debug)]
pub(crate) struct SharedStreamCounts {
    pub(crate) name: String,
    emitted: AtomicU64,
    transferred: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
}

/// The shared copy of one task's metrics.
#[derive(Debug)]
pub(crate) struct SharedTaskMetrics {
    pub(crate) task: TaskId,
    pub(crate) component: usize,
    pub(crate) placement: TaskPlacement,
    counters: CachePadded<[AtomicU64; 7]>,
    /// Per output stream, in the component's output order.
    streams: Box<[SharedStreamCounts]>,
    /// Per input stream, in the component's input order.
    inputs: Box<[SharedInputCounts]>,
    execute_latency: Mutex<Histogram<u64>>,
    complete_latency: Mutex<Histogram<u64>>,
}

impl SharedTaskMetrics {
    pub(crate) fn new(
        task: TaskId,
        component: usize,
        placement: TaskPlacement,
        streams: Vec<String>,
        inputs: Vec<SharedInputCounts>,
    ) -> Self {
        Self {
            task,
            component,
            placement,
            counters: CachePadded::new(Default::default()),
            streams: streams
                .into_iter()
                .map(|name| SharedStreamCounts {
                    name,
                    emitted: AtomicU64::new(0),
                    transferred: AtomicU64::new(0),
                    acked: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                })
                .collect(),
            inputs: inputs.into_boxed_slice(),
            execute_latency: Mutex::new(new_histogram()),
            complete_latency: Mutex::new(new_histogram()),
        }
    }

    pub(crate) fn streams(&self) -> Vec<StreamMetrics> {
        self.streams
            .iter()
            .map(|stream| StreamMetrics {
                stream: stream.name.clone(),
                emitted: stream.emitted.load(Ordering::Relaxed),
                transferred: stream.transferred.load(Ordering::Relaxed),
                acked: stream.acked.load(Ordering::Relaxed),
                failed: stream.failed.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub(crate) fn inputs(&self) -> Vec<InputStreamMetrics> {
        self.inputs
            .iter()
            .map(|input| InputStreamMetrics {
                component: input.source.clone(),
                stream: input.name.clone(),
                executed: input.executed.load(Ordering::Relaxed),
                acked: input.acked.load(Ordering::Relaxed),
                failed: input.failed.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The largest id of the task's input streams plus one: the length of its meter's
    /// table of input counts.
    pub(crate) fn input_table_len(&self) -> usize {
        self.inputs
            .iter()
            .map(|input| usize::from(input.id) + 1)
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn counters(&self) -> TaskCounters {
        let [
            emitted,
            transferred,
            executed,
            acked,
            failed,
            pending,
            backpressured_nanos,
        ] = self
            .counters
            .each_ref()
            .map(|counter| counter.load(Ordering::Relaxed));
        TaskCounters {
            emitted,
            transferred,
            executed,
            acked,
            failed,
            pending,
            backpressured_nanos,
        }
    }

    pub(crate) fn execute_latency(&self) -> Histogram<u64> {
        self.execute_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn complete_latency(&self) -> Histogram<u64> {
        self.complete_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A task's own counting, on its executor thread.
#[derive(Debug)]
pub(crate) struct TaskMeter {
    pub(crate) counters: TaskCounters,
    published: TaskCounters,
    /// Per output stream, indexed like the task's stream routes.
    pub(crate) streams: Vec<StreamCounts>,
    /// Per input stream, indexed by the stream's topology-wide id: one bounds-checked index
    /// per tuple, no lookup. Ids of streams the task does not subscribe to (ticks) count
    /// here too but are never published.
    inputs: Vec<InputCounts>,
    /// Whether the task could not go on at the executor's last look (see
    /// `ExecutorThread::meter_backpressure`): the time until the next look is charged to it.
    pub(crate) backpressured: bool,
    execute_latency: Histogram<u64>,
    complete_latency: Histogram<u64>,
    /// Trees settled since a complete latency was last recorded, and the latest one's.
    complete_unrecorded: u32,
    complete_latest: u64,
    histograms_dirty: bool,
    /// Executions left until the next sampled one.
    sample_countdown: u32,
    sample_every: u32,
}

impl TaskMeter {
    pub(crate) fn new(sample_every: u32, output_streams: usize, input_table_len: usize) -> Self {
        Self {
            counters: TaskCounters::default(),
            published: TaskCounters::default(),
            streams: vec![StreamCounts::default(); output_streams],
            inputs: vec![InputCounts::default(); input_table_len],
            backpressured: false,
            execute_latency: new_histogram(),
            complete_latency: new_histogram(),
            complete_unrecorded: 0,
            complete_latest: 0,
            histograms_dirty: false,
            sample_countdown: 1,
            sample_every: sample_every.max(1),
        }
    }

    /// Counts an input tuple of stream `stream` executed.
    #[inline]
    pub(crate) fn input_executed(&mut self, stream: u16) {
        self.counters.executed += 1;
        if let Some(input) = self.inputs.get_mut(usize::from(stream)) {
            input.executed += 1;
        }
    }

    /// Counts an input tuple of stream `stream` acked.
    #[inline]
    pub(crate) fn input_acked(&mut self, stream: u16) {
        self.counters.acked += 1;
        if let Some(input) = self.inputs.get_mut(usize::from(stream)) {
            input.acked += 1;
        }
    }

    /// Counts `count` input tuples of stream `stream` executed and acked at once (see
    /// `InputBatch::read_then_ack`).
    #[inline]
    pub(crate) fn inputs_executed_and_acked(&mut self, stream: u16, count: u64) {
        self.counters.executed += count;
        self.counters.acked += count;
        if let Some(input) = self.inputs.get_mut(usize::from(stream)) {
            input.executed += count;
            input.acked += count;
        }
    }

    /// Counts an input tuple of stream `stream` failed.
    #[inline]
    pub(crate) fn input_failed(&mut self, stream: u16) {
        self.counters.failed += 1;
        if let Some(input) = self.inputs.get_mut(usize::from(stream)) {
            input.failed += 1;
        }
    }

    /// Counts a spout's tree rooted on output stream `stream` completed (`acked`) or failed.
    #[inline]
    pub(crate) fn tree_settled(&mut self, stream: u16, acked: bool) {
        let counts = self.streams.get_mut(usize::from(stream));
        if acked {
            self.counters.acked += 1;
            if let Some(counts) = counts {
                counts.acked += 1;
            }
        } else {
            self.counters.failed += 1;
            if let Some(counts) = counts {
                counts.failed += 1;
            }
        }
    }

    /// Whether this execution's latency is measured.
    #[inline]
    pub(crate) fn sample_execute(&mut self) -> bool {
        self.sample_countdown -= 1;
        if self.sample_countdown == 0 {
            self.sample_countdown = self.sample_every;
            true
        } else {
            false
        }
    }

    #[inline]
    pub(crate) fn record_execute(&mut self, nanos: u64) {
        self.execute_latency.saturating_record(nanos.max(1));
        self.histograms_dirty = true;
    }

    /// Counts a tree's complete latency. At high rates a histogram update per tree costs
    /// a spout a tenth of its time, so one tree in [`COMPLETE_STRIDE`] is recorded and
    /// stands for the trees since the last recorded one; the rest of a stride is recorded
    /// with the latest latency when the histograms are published. The count is exact at
    /// every publication; a spout settling at most one tree between two publications has
    /// each recorded with its own latency.
    #[inline]
    pub(crate) fn record_complete(&mut self, nanos: u64) {
        self.complete_latest = nanos;
        self.complete_unrecorded += 1;
        if self.complete_unrecorded == COMPLETE_STRIDE {
            self.record_unrecorded_completes();
        }
        self.histograms_dirty = true;
    }

    fn record_unrecorded_completes(&mut self) {
        if self.complete_unrecorded > 0 {
            self.complete_latency.saturating_record_n(
                self.complete_latest.max(1),
                u64::from(self.complete_unrecorded),
            );
            self.complete_unrecorded = 0;
        }
    }

    /// Publishes the counters that changed (one relaxed store each).
    #[inline]
    pub(crate) fn publish_counters(&mut self, shared: &SharedTaskMetrics) {
        if self.counters == self.published {
            return;
        }
        let current = [
            self.counters.emitted,
            self.counters.transferred,
            self.counters.executed,
            self.counters.acked,
            self.counters.failed,
            self.counters.pending,
            self.counters.backpressured_nanos,
        ];
        for (counter, value) in shared.counters.iter().zip(current) {
            counter.store(value, Ordering::Relaxed);
        }
        // A stream's counts change only with the task's totals of the same names, so they
        // are published only when those did.
        if (
            self.counters.emitted,
            self.counters.acked,
            self.counters.failed,
        ) != (
            self.published.emitted,
            self.published.acked,
            self.published.failed,
        ) {
            for (shared, counts) in shared.streams.iter().zip(&self.streams) {
                shared.emitted.store(counts.emitted, Ordering::Relaxed);
                shared
                    .transferred
                    .store(counts.transferred, Ordering::Relaxed);
                shared.acked.store(counts.acked, Ordering::Relaxed);
                shared.failed.store(counts.failed, Ordering::Relaxed);
            }
        }
        // Input counts change only with the task's totals of the same name.
        if (
            self.counters.executed,
            self.counters.acked,
            self.counters.failed,
        ) != (
            self.published.executed,
            self.published.acked,
            self.published.failed,
        ) {
            for shared in &shared.inputs {
                if let Some(counts) = self.inputs.get(usize::from(shared.id)) {
                    shared.executed.store(counts.executed, Ordering::Relaxed);
                    shared.acked.store(counts.acked, Ordering::Relaxed);
                    shared.failed.store(counts.failed, Ordering::Relaxed);
                }
            }
        }
        self.published = self.counters;
    }

    /// Merges the histograms into the shared copies and clears them.
    pub(crate) fn publish_histograms(&mut self, shared: &SharedTaskMetrics) {
        if !self.histograms_dirty {
            return;
        }
        self.record_unrecorded_completes();
        for (local, shared) in [
            (&mut self.execute_latency, &shared.execute_latency),
            (&mut self.complete_latency, &shared.complete_latency),
        ] {
            if !local.is_empty() {
                let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
                // Same bounds on both sides, so adding cannot fail.
                let _ = shared.add(&*local);
                local.reset();
            }
        }
        self.histograms_dirty = false;
    }
}

/// Counts of one ring between two threads, for queue-depth figures and idle checks.
#[derive(Debug, Default)]
pub(crate) struct RingCounters {
    /// Records published into the ring (stored by the producer after each publish).
    pub(crate) published: CachePadded<AtomicU64>,
    /// Records taken out of the ring (stored by the consumer after each release).
    pub(crate) consumed: CachePadded<AtomicU64>,
    /// Set by a producer that found the ring full and waits for room (the transport's
    /// inbound sink); the consumer wakes it after taking records out.
    pub(crate) producer_waiting: CachePadded<std::sync::atomic::AtomicBool>,
    /// The traced records from peer workers in the ring, for its consumer to stamp.
    #[cfg(feature = "stage-trace")]
    pub(crate) traced: squall_net::trace::InboundQueue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_counts_are_kept_per_stream_and_published_with_the_totals() {
        let shared = SharedTaskMetrics::new(
            TaskId(3),
            1,
            TaskPlacement {
                executor: 0,
                thread: 0,
                core: None,
            },
            Vec::new(),
            vec![
                SharedInputCounts::new(7, "src".into(), "even".into()),
                SharedInputCounts::new(5, "src".into(), "odd".into()),
            ],
        );
        let mut meter = TaskMeter::new(1, 0, shared.input_table_len());
        meter.input_executed(7);
        meter.input_acked(7);
        meter.input_executed(5);
        meter.input_failed(5);
        // A tick (stream 0) counts in the totals only.
        meter.input_executed(0);
        meter.backpressured = true;
        meter.counters.backpressured_nanos = 1_500;
        meter.publish_counters(&shared);
        let counters = shared.counters();
        assert_eq!(
            (counters.executed, counters.acked, counters.failed),
            (3, 1, 1)
        );
        assert_eq!(counters.backpressured_nanos, 1_500);
        let inputs = shared.inputs();
        assert_eq!(
            inputs
                .iter()
                .map(|input| (
                    input.stream.as_str(),
                    input.executed,
                    input.acked,
                    input.failed
                ))
                .collect::<Vec<_>>(),
            [("even", 1, 1, 0), ("odd", 1, 0, 1)]
        );
        assert!(inputs.iter().all(|input| input.component == "src"));
    }

    fn shared_metrics() -> SharedTaskMetrics {
        let placement = TaskPlacement {
            executor: 0,
            thread: 0,
            core: None,
        };
        SharedTaskMetrics::new(TaskId(1), 1, placement, Vec::new(), Vec::new())
    }

    #[test]
    fn complete_latencies_are_sampled_by_stride_and_counted_exactly_at_publication() {
        let shared = shared_metrics();
        let mut meter = TaskMeter::new(1, 1, 0);
        // Two strides and three more: the strides' last trees stand for them.
        for tree in 1..=u64::from(2 * COMPLETE_STRIDE + 3) {
            meter.record_complete(tree * 1_000);
        }
        assert_eq!(meter.complete_latency.len(), u64::from(2 * COMPLETE_STRIDE));
        assert_eq!(
            meter.complete_latency.count_at(8_000),
            u64::from(COMPLETE_STRIDE)
        );
        meter.publish_histograms(&shared);
        let published = shared.complete_latency();
        assert_eq!(published.len(), u64::from(2 * COMPLETE_STRIDE + 3));
        // The rest of the stride went in with the latest latency.
        assert_eq!(published.count_at(19_000), 3);
        assert_eq!(published.count_at(16_000), u64::from(COMPLETE_STRIDE));
        assert!(meter.complete_latency.is_empty());
    }

    #[test]
    fn a_tree_settled_alone_between_publications_is_recorded_with_its_own_latency() {
        let shared = shared_metrics();
        let mut meter = TaskMeter::new(1, 1, 0);
        for latency in [5_000, 70_000, 900_000] {
            meter.record_complete(latency);
            meter.publish_histograms(&shared);
        }
        let published = shared.complete_latency();
        assert_eq!(published.len(), 3);
        for latency in [5_000, 70_000, 900_000] {
            assert_eq!(published.count_at(latency), 1, "{latency} ns");
        }
    }
}
