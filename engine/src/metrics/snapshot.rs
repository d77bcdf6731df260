//! Point-in-time figures of a running topology.

use hdrhistogram::Histogram;

use super::TaskCounters;
use crate::ids::TaskId;

/// Percentiles of a latency histogram, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Values recorded.
    pub samples: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

impl LatencySummary {
    /// The summary of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            samples: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// Where a task runs inside its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskPlacement {
    /// Index of its executor in [`Topology::executors`](crate::topology::Topology::executors).
    pub executor: usize,
    /// Index of the executor thread (in this worker) running it.
    pub thread: usize,
    /// The core that thread is pinned to, if pinned.
    pub core: Option<usize>,
}

/// What one task emitted on one output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMetrics {
    /// The stream's name.
    pub stream: String,
    /// Tuples emitted on it.
    pub emitted: u64,
    /// Records sent to target tasks on it.
    pub transferred: u64,
    /// Trees rooted on it that completed (spouts).
    pub acked: u64,
    /// Trees rooted on it that failed or timed out (spouts).
    pub failed: u64,
}

/// What one bolt task did with the tuples of one input stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputStreamMetrics {
    /// The component emitting the stream.
    pub component: String,
    /// The stream's name.
    pub stream: String,
    /// Its tuples executed.
    pub executed: u64,
    /// Its tuples acked.
    pub acked: u64,
    /// Its tuples failed.
    pub failed: u64,
}

/// One task's figures.
#[derive(Debug, Clone)]
pub struct TaskMetricsSnapshot {
    /// The task.
    pub task: TaskId,
    /// Its component's id.
    pub component: String,
    /// Where it runs.
    pub placement: TaskPlacement,
    /// Its totals.
    pub counters: TaskCounters,
    /// Its counts per output stream.
    pub streams: Vec<StreamMetrics>,
    /// Its counts per input stream (bolts), in subscription order.
    pub inputs: Vec<InputStreamMetrics>,
    /// Execute latency of a sample of its tuples (bolts).
    pub execute_latency: Histogram<u64>,
    /// Emit-to-ack latency of its tuple trees (spouts).
    pub complete_latency: Histogram<u64>,
}

/// One component's figures, summed over its tasks.
#[derive(Debug, Clone)]
pub struct ComponentMetrics {
    /// The component's id.
    pub component: String,
    /// Totals over its tasks.
    pub counters: TaskCounters,
    /// Execute latency of a sample of its tuples (bolts).
    pub execute_latency: Histogram<u64>,
    /// Emit-to-ack latency of its tuple trees (spouts).
    pub complete_latency: Histogram<u64>,
}

/// Occupancy of one ring between two executor threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMetrics {
    /// Producing thread (index in this worker).
    pub from_thread: usize,
    /// Consuming thread.
    pub to_thread: usize,
    /// Records published and not yet taken.
    pub depth: u64,
    /// Records that went through the ring.
    pub total: u64,
}

/// Figures of a whole topology.
#[derive(Debug, Clone)]
pub struct TopologyMetrics {
    /// Seconds since the topology started.
    pub uptime_secs: f64,
    /// Per task.
    pub tasks: Vec<TaskMetricsSnapshot>,
    /// Per component, in the topology's component order.
    pub components: Vec<ComponentMetrics>,
    /// Per ring.
    pub queues: Vec<QueueMetrics>,
}

impl TopologyMetrics {
    /// An empty histogram with the bounds every latency histogram here uses.
    pub fn empty_histogram() -> Histogram<u64> {
        super::new_histogram()
    }

    /// The figures of the component `id`.
    pub fn component(&self, id: &str) -> Option<&ComponentMetrics> {
        self.components
            .iter()
            .find(|metrics| metrics.component == id)
    }
}
