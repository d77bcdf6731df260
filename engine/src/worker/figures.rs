//! The figures a worker reports in its heartbeat: per task counts, per stream counts,
//! latency histograms, ring occupancy, remote link counts and its latest task errors.
//!
//! Histograms travel as their non-empty buckets, so whoever reads several heartbeats merges
//! them exactly: the same buckets as if every value had been recorded in one histogram.

use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{TopologyMetrics, new_histogram};
use crate::runtime::TaskError;
use squall_net::transport::TransportStats;

/// How many of a worker's task errors its heartbeat carries (the latest ones).
pub const ERRORS_REPORTED: usize = 10;

/// The non-empty buckets of a latency histogram, as `(highest value of the bucket, count)`
/// pairs in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LatencyBuckets(pub Vec<(u64, u64)>);

impl LatencyBuckets {
    /// The buckets of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Self(
            histogram
                .iter_recorded()
                .map(|bucket| {
                    (
                        histogram.highest_equivalent(bucket.value_iterated_to()),
                        bucket.count_at_value(),
                    )
                })
                .collect(),
        )
    }

    /// Adds these buckets to `histogram` (made with the bounds every latency histogram of
    /// the engine has: see [`TopologyMetrics::empty_histogram`]).
    pub fn add_to(&self, histogram: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            histogram.saturating_record_n(value.max(1), count);
        }
    }

    /// The histogram these buckets describe.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut histogram = new_histogram();
        self.add_to(&mut histogram);
        histogram
    }
}

/// What one task emitted on one output stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFigures {
    /// The stream.
    pub stream: String,
    /// Tuples emitted on it.
    pub emitted: u64,
    /// Records sent to target tasks on it.
    pub transferred: u64,
    /// Trees rooted on it that completed (spouts).
    #[serde(default)]
    pub acked: u64,
    /// Trees rooted on it that failed or timed out (spouts).
    #[serde(default)]
    pub failed: u64,
}

/// What one bolt task did with the tuples of one input stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFigures {
    /// The component emitting the stream.
    pub component: String,
    /// The stream.
    pub stream: String,
    /// Its tuples executed.
    pub executed: u64,
    /// Its tuples acked.
    pub acked: u64,
    /// Its tuples failed.
    pub failed: u64,
}

/// One task's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFigures {
    /// The task id.
    pub task: u32,
    /// Its component.
    pub component: String,
    /// Its executor (index into the topology's executors).
    pub executor: usize,
    /// The executor thread of the worker running it.
    pub thread: usize,
    /// The core that thread is pinned to, if pinned.
    pub core: Option<usize>,
    /// Tuples emitted.
    pub emitted: u64,
    /// Records sent to target tasks.
    pub transferred: u64,
    /// Tuples executed (bolts) or handed to `ack`/`fail` (spouts).
    pub executed: u64,
    /// Tuples acked (bolts) or trees completed (spouts).
    pub acked: u64,
    /// Tuples failed (bolts) or trees failed or timed out (spouts).
    pub failed: u64,
    /// Trees in flight (spouts).
    pub pending: u64,
    /// Nanoseconds it was held back by backpressure (see
    /// [`TaskCounters::backpressured_nanos`](crate::metrics::TaskCounters::backpressured_nanos)).
    #[serde(default)]
    pub backpressured_nanos: u64,
    /// Per output stream.
    pub streams: Vec<StreamFigures>,
    /// Per input stream (bolts).
    #[serde(default)]
    pub inputs: Vec<InputFigures>,
    /// Execute latency (bolts; a sample of executions).
    pub execute_latency: LatencyBuckets,
    /// Complete latency (spouts; every tree).
    pub complete_latency: LatencyBuckets,
}

/// Occupancy of one ring between two executor threads of the worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFigures {
    /// Producing thread.
    pub from_thread: usize,
    /// Consuming thread.
    pub to_thread: usize,
    /// Records waiting in it.
    pub depth: u64,
    /// Records that went through it.
    pub total: u64,
}

/// What the worker's links to its peers moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFigures {
    /// BATCH frames sent.
    pub frames_sent: u64,
    /// Records sent.
    pub records_sent: u64,
    /// Bytes of the BATCH frames sent.
    #[serde(default)]
    pub bytes_sent: u64,
    /// BATCH frames received.
    pub frames_received: u64,
    /// Records received.
    pub records_received: u64,
    /// Bytes of the BATCH frames received.
    #[serde(default)]
    pub bytes_received: u64,
    /// Records dropped because no peer frame could hold them.
    pub records_dropped: u64,
    /// Times a link had records to send and no credit left.
    pub credit_stalls: u64,
}

impl From<TransportStats> for LinkFigures {
    fn from(stats: TransportStats) -> Self {
        Self {
            frames_sent: stats.batches_sent,
            records_sent: stats.records_sent,
            bytes_sent: stats.bytes_sent,
            frames_received: stats.batches_received,
            records_received: stats.records_received,
            bytes_received: stats.bytes_received,
            records_dropped: stats.records_dropped,
            credit_stalls: stats.credit_exhausted,
        }
    }
}

/// A task error as a heartbeat carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFigures {
    /// The task.
    pub task: u32,
    /// Its component.
    pub component: String,
    /// The error, with its kind (`task 3 of split panicked: ...`).
    pub message: String,
    /// When it was reported, ms since the Unix epoch.
    pub time_ms: u64,
}

impl From<&TaskError> for ErrorFigures {
    fn from(error: &TaskError) -> Self {
        Self {
            task: error.task.0,
            component: error.component.clone(),
            message: error.to_string(),
            time_ms: error
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64),
        }
    }
}

/// Everything a worker reports about what it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerFigures {
    /// Seconds since the worker's executors started.
    pub uptime_secs: u64,
    /// Per task, by task id.
    pub tasks: Vec<TaskFigures>,
    /// Per ring between its threads.
    pub queues: Vec<QueueFigures>,
    /// Its links to peer workers.
    pub links: LinkFigures,
    /// Its latest task errors (up to [`ERRORS_REPORTED`]).
    pub errors: Vec<ErrorFigures>,
}

impl WorkerFigures {
    /// The figures of `metrics`, `links` and `errors` (the latest are kept).
    pub fn new(metrics: &TopologyMetrics, links: LinkFigures, errors: &[TaskError]) -> Self {
        let tasks = metrics
            .tasks
            .iter()
            .map(|task| TaskFigures {
                task: task.task.0,
                component: task.component.clone(),
                executor: task.placement.executor,
                thread: task.placement.thread,
                core: task.placement.core,
                emitted: task.counters.emitted,
                transferred: task.counters.transferred,
                executed: task.counters.executed,
                acked: task.counters.acked,
                failed: task.counters.failed,
                pending: task.counters.pending,
                backpressured_nanos: task.counters.backpressured_nanos,
                streams: task
                    .streams
                    .iter()
                    .map(|stream| StreamFigures {
                        stream: stream.stream.clone(),
                        emitted: stream.emitted,
                        transferred: stream.transferred,
                        acked: stream.acked,
                        failed: stream.failed,
                    })
                    .collect(),
                inputs: task
                    .inputs
                    .iter()
                    .map(|input| InputFigures {
                        component: input.component.clone(),
                        stream: input.stream.clone(),
                        executed: input.executed,
                        acked: input.acked,
                        failed: input.failed,
                    })
                    .collect(),
                execute_latency: LatencyBuckets::of(&task.execute_latency),
                complete_latency: LatencyBuckets::of(&task.complete_latency),
            })
            .collect();
        let queues = metrics
            .queues
            .iter()
            .map(|queue| QueueFigures {
                from_thread: queue.from_thread,
                to_thread: queue.to_thread,
                depth: queue.depth,
                total: queue.total,
            })
            .collect();
        let skip = errors.len().saturating_sub(ERRORS_REPORTED);
        Self {
            uptime_secs: metrics.uptime_secs as u64,
            tasks,
            queues,
            links,
            errors: errors[skip..].iter().map(ErrorFigures::from).collect(),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Merging bucket lists gives exactly the histogram of all the values.
        #[test]
        fn buckets_merge_exactly(
            first in proptest::collection::vec(1u64..10_000_000_000, 0..200),
            second in proptest::collection::vec(1u64..10_000_000_000, 0..200),
        ) {
            let mut all = new_histogram();
            let mut one = new_histogram();
            let mut two = new_histogram();
            for &value in &first {
                all.record(value).unwrap();
                one.record(value).unwrap();
            }
            for &value in &second {
                all.record(value).unwrap();
                two.record(value).unwrap();
            }
            let mut merged = LatencyBuckets::of(&one).histogram();
            LatencyBuckets::of(&two).add_to(&mut merged);
            prop_assert_eq!(merged.len(), all.len());
            for quantile in [0.5, 0.9, 0.99, 0.999, 1.0] {
                prop_assert_eq!(merged.value_at_quantile(quantile), all.value_at_quantile(quantile));
            }
            prop_assert_eq!(LatencyBuckets::of(&merged), LatencyBuckets::of(&all));
        }
    }
}
