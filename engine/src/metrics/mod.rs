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
    ComponentMetrics, LatencySummary, QueueMetrics, StreamMetrics, TaskMetricsSnapshot,
    TaskPlacement, TopologyMetrics,
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
}

/// Tuples one task emitted on one of its output streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamCounts {
    pub(crate) emitted: u64,
    pub(crate) transferred: u64,
}

/// The shared copy of one output stream's counts.
#[derive(Debug)]
pub(crate) struct SharedStreamCounts {
    pub(crate) name: String,
    emitted: AtomicU64,
    transferred: AtomicU64,
}

/// The shared copy of one task's metrics.
#[derive(Debug)]
pub(crate) struct SharedTaskMetrics {
    pub(crate) task: TaskId,
    pub(crate) component: usize,
    pub(crate) placement: TaskPlacement,
    counters: CachePadded<[AtomicU64; 6]>,
    /// Per output stream, in the component's output order.
    streams: Box<[SharedStreamCounts]>,
    execute_latency: Mutex<Histogram<u64>>,
    complete_latency: Mutex<Histogram<u64>>,
}

impl SharedTaskMetrics {
    pub(crate) fn new(
        task: TaskId,
        component: usize,
        placement: TaskPlacement,
        streams: Vec<String>,
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
                })
                .collect(),
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
            })
            .collect()
    }

    pub(crate) fn counters(&self) -> TaskCounters {
        let [emitted, transferred, executed, acked, failed, pending] = self
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
    execute_latency: Histogram<u64>,
    complete_latency: Histogram<u64>,
    histograms_dirty: bool,
    /// Executions left until the next sampled one.
    sample_countdown: u32,
    sample_every: u32,
}

impl TaskMeter {
    pub(crate) fn new(sample_every: u32, output_streams: usize) -> Self {
        Self {
            counters: TaskCounters::default(),
            published: TaskCounters::default(),
            streams: vec![StreamCounts::default(); output_streams],
            execute_latency: new_histogram(),
            complete_latency: new_histogram(),
            histograms_dirty: false,
            sample_countdown: 1,
            sample_every: sample_every.max(1),
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

    #[inline]
    pub(crate) fn record_complete(&mut self, nanos: u64) {
        self.complete_latency.saturating_record(nanos.max(1));
        self.histograms_dirty = true;
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
        ];
        for (counter, value) in shared.counters.iter().zip(current) {
            counter.store(value, Ordering::Relaxed);
        }
        // A stream's counts change only with the task's emitted total, so they are
        // published only when it did.
        if self.counters.emitted != self.published.emitted {
            for (shared, counts) in shared.streams.iter().zip(&self.streams) {
                shared.emitted.store(counts.emitted, Ordering::Relaxed);
                shared
                    .transferred
                    .store(counts.transferred, Ordering::Relaxed);
            }
        }
        self.published = self.counters;
    }

    /// Merges the histograms into the shared copies and clears them.
    pub(crate) fn publish_histograms(&mut self, shared: &SharedTaskMetrics) {
        if !self.histograms_dirty {
            return;
        }
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
