//! What a DRPC server counts, as plain data: calls per function and how each ended, how
//! long each took, and per published stream what its publishers dropped and how many slow
//! subscribers were dropped. [`exposition`] writes them, with the request and stream
//! gauges, as a Prometheus page.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use squall_drpc::CallError;

use crate::observe::exposition::{Exposition, MetricKind};

/// Functions counted by name; calls of further functions are counted under
/// [`OTHER_FUNCTIONS`], so clients naming ever new functions cannot grow the figures without
/// bound.
pub const MAX_FUNCTIONS: usize = 256;

/// The label of calls beyond [`MAX_FUNCTIONS`] functions.
pub const OTHER_FUNCTIONS: &str = "(other)";

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The topology answered.
    Answered,
    /// The topology failed the request.
    Failed,
    /// No answer came in time.
    TimedOut,
    /// The server refused it: a bad function name, or the server stopping.
    Refused,
}

impl CallOutcome {
    const ALL: [CallOutcome; 4] = [
        CallOutcome::Answered,
        CallOutcome::Failed,
        CallOutcome::TimedOut,
        CallOutcome::Refused,
    ];

    /// How a call that ended with `answer` ended.
    pub fn of<T>(answer: &Result<T, CallError>) -> Self {
        match answer {
            Ok(_) => CallOutcome::Answered,
            Err(CallError::Failed { .. }) => CallOutcome::Failed,
            Err(CallError::Timeout { .. }) => CallOutcome::TimedOut,
            Err(
                CallError::Invalid { .. } | CallError::Unauthenticated | CallError::ShuttingDown,
            ) => CallOutcome::Refused,
        }
    }

    fn label(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Failed => "failed",
            CallOutcome::TimedOut => "timed_out",
            CallOutcome::Refused => "refused",
        }
    }
}

#[derive(Debug)]
struct FunctionFigures {
    outcomes: [u64; CallOutcome::ALL.len()],
    /// Nanoseconds from a call's arrival to its end, whatever the outcome.
    latency: Histogram<u64>,
}

impl FunctionFigures {
    fn new() -> Self {
        Self {
            outcomes: [0; CallOutcome::ALL.len()],
            // Two significant digits keep a function's histogram near 20 KiB; calls last
            // at most the request timeout, an hour here.
            latency: Histogram::new_with_bounds(1_000, 3_600_000_000_000, 2)
                .expect("the bounds are valid"),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct StreamFigures {
    publisher_dropped: u64,
    subscribers_dropped: u64,
}

/// One server's counts since it started.
#[derive(Debug, Default)]
pub struct ServerFigures {
    functions: BTreeMap<String, FunctionFigures>,
    streams: BTreeMap<String, StreamFigures>,
}

/// A published stream's gauges, as the server's streams know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGauges {
    /// The stream's full name.
    pub stream: String,
    /// Tuples published on it.
    pub published: u64,
    /// Subscribers now.
    pub subscribers: usize,
}

impl ServerFigures {
    /// No calls yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a call of `function` that ended as `outcome` after `took`.
    pub fn record_call(&mut self, function: &str, outcome: CallOutcome, took: Duration) {
        let name = if self.functions.contains_key(function) || self.functions.len() < MAX_FUNCTIONS
        {
            function
        } else {
            OTHER_FUNCTIONS
        };
        let figures = self
            .functions
            .entry(name.to_owned())
            .or_insert_with(FunctionFigures::new);
        figures.outcomes[outcome as usize] += 1;
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        figures.latency.saturating_record(nanos.max(1_000));
    }

    /// Counts `count` tuples a publisher of `stream` dropped.
    pub fn record_publisher_dropped(&mut self, stream: &str, count: u64) {
        if count > 0 {
            self.stream(stream).publisher_dropped += count;
        }
    }

    /// Counts `count` subscribers of `stream` dropped for being slow.
    pub fn record_subscribers_dropped(&mut self, stream: &str, count: u64) {
        if count > 0 {
            self.stream(stream).subscribers_dropped += count;
        }
    }

    fn stream(&mut self, stream: &str) -> &mut StreamFigures {
        self.streams.entry(stream.to_owned()).or_default()
    }

    /// Calls of `function` that ended as `outcome`.
    pub fn calls(&self, function: &str, outcome: CallOutcome) -> u64 {
        self.functions
            .get(function)
            .map_or(0, |figures| figures.outcomes[outcome as usize])
    }
}

/// The Prometheus page of a server: its figures, the requests open and waiting for a
/// spout, and the gauges of its published streams.
pub fn exposition(
    figures: &ServerFigures,
    open_requests: usize,
    waiting_requests: usize,
    streams: &[StreamGauges],
) -> String {
    let mut page = Exposition::new();
    page.sample(
        "squall_drpc_requests_open",
        MetricKind::Gauge,
        "Requests received and not yet answered.",
        &[],
        open_requests as f64,
    );
    page.sample(
        "squall_drpc_requests_waiting",
        MetricKind::Gauge,
        "Requests waiting for a topology's spout to fetch them.",
        &[],
        waiting_requests as f64,
    );
    for (function, function_figures) in &figures.functions {
        for outcome in CallOutcome::ALL {
            page.sample(
                "squall_drpc_calls_total",
                MetricKind::Counter,
                "Calls ended, by function and outcome (answered, failed, timed_out, refused).",
                &[("function", function), ("outcome", outcome.label())],
                function_figures.outcomes[outcome as usize] as f64,
            );
        }
        page.latency(
            "squall_drpc_call_seconds",
            "Time from a call's arrival to its end, whatever the outcome.",
            &[("function", function)],
            &function_figures.latency,
        );
    }
    let mut names: Vec<&str> = streams
        .iter()
        .map(|gauges| gauges.stream.as_str())
        .collect();
    names.extend(figures.streams.keys().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    for stream in names {
        let gauges = streams.iter().find(|gauges| gauges.stream == stream);
        let counted = figures.streams.get(stream).copied().unwrap_or_default();
        let labels = [("stream", stream)];
        page.sample(
            "squall_drpc_published_tuples_total",
            MetricKind::Counter,
            "Tuples published on the stream and offered to its subscribers.",
            &labels,
            gauges.map_or(0, |gauges| gauges.published) as f64,
        );
        page.sample(
            "squall_drpc_publisher_dropped_tuples_total",
            MetricKind::Counter,
            "Tuples the stream's publishers dropped before they reached this server.",
            &labels,
            counted.publisher_dropped as f64,
        );
        page.sample(
            "squall_drpc_subscribers",
            MetricKind::Gauge,
            "Subscribers of the stream now.",
            &labels,
            gauges.map_or(0, |gauges| gauges.subscribers) as f64,
        );
        page.sample(
            "squall_drpc_subscribers_dropped_total",
            MetricKind::Counter,
            "Subscribers dropped for falling behind the stream.",
            &labels,
            counted.subscribers_dropped as f64,
        );
    }
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_function_and_outcome() {
        let mut figures = ServerFigures::new();
        figures.record_call("reach", CallOutcome::Answered, Duration::from_millis(2));
        figures.record_call("reach", CallOutcome::Answered, Duration::from_millis(3));
        figures.record_call("reach", CallOutcome::TimedOut, Duration::from_secs(1));
        let page = exposition(&figures, 4, 1, &[]);
        assert!(page.contains("squall_drpc_requests_open 4\n"), "{page}");
        assert!(page.contains("squall_drpc_requests_waiting 1\n"), "{page}");
        assert!(
            page.contains("squall_drpc_calls_total{function=\"reach\",outcome=\"answered\"} 2\n"),
            "{page}"
        );
        assert!(
            page.contains("squall_drpc_calls_total{function=\"reach\",outcome=\"timed_out\"} 1\n"),
            "{page}"
        );
        assert!(
            page.contains("squall_drpc_call_seconds_bucket{function=\"reach\",le=\"0.005\"} 2\n"),
            "{page}"
        );
        assert!(
            page.contains("squall_drpc_call_seconds_count{function=\"reach\"} 3\n"),
            "{page}"
        );
    }

    #[test]
    fn functions_beyond_the_cap_are_counted_together() {
        let mut figures = ServerFigures::new();
        for index in 0..MAX_FUNCTIONS + 5 {
            figures.record_call(&format!("f{index}"), CallOutcome::Refused, Duration::ZERO);
        }
        figures.record_call("f0", CallOutcome::Answered, Duration::ZERO);
        assert_eq!(figures.functions.len(), MAX_FUNCTIONS + 1);
        assert_eq!(figures.calls(OTHER_FUNCTIONS, CallOutcome::Refused), 5);
        assert_eq!(figures.calls("f0", CallOutcome::Answered), 1);
    }

    #[test]
    fn streams_show_published_dropped_and_subscribers() {
        let mut figures = ServerFigures::new();
        figures.record_publisher_dropped("trending/top", 7);
        figures.record_subscribers_dropped("trending/top", 1);
        figures.record_publisher_dropped("quiet/s", 0);
        let gauges = [StreamGauges {
            stream: "trending/top".into(),
            published: 120,
            subscribers: 2,
        }];
        let page = exposition(&figures, 0, 0, &gauges);
        for line in [
            "squall_drpc_published_tuples_total{stream=\"trending/top\"} 120\n",
            "squall_drpc_publisher_dropped_tuples_total{stream=\"trending/top\"} 7\n",
            "squall_drpc_subscribers{stream=\"trending/top\"} 2\n",
            "squall_drpc_subscribers_dropped_total{stream=\"trending/top\"} 1\n",
        ] {
            assert!(page.contains(line), "{line} in {page}");
        }
        assert!(!page.contains("quiet/s"), "{page}");
    }
}
