//! The result of one benchmark scenario, as a table row or as one JSON object.

use serde::{Deserialize, Serialize};
use squall::metrics::LatencySummary;

use crate::bench::network::stage_timeline::StageTimeline;
use crate::format;
use crate::interference::Interference;

/// Latency percentiles in nanoseconds, from an HDR histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct LatencyNanos {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Number of latencies recorded (a sample of all tuples).
    pub samples: u64,
}

impl From<LatencySummary> for LatencyNanos {
    fn from(summary: LatencySummary) -> Self {
        Self {
            p50: summary.p50,
            p90: summary.p90,
            p99: summary.p99,
            p999: summary.p999,
            max: summary.max,
            mean: summary.mean,
            samples: summary.samples,
        }
    }
}

/// What a scenario between two worker processes moved, or what the raw TCP reference moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkFigures {
    /// How the workers were linked: `mio`, `io-uring` or `shared-memory`; `raw-tcp` for the
    /// reference.
    pub link: String,
    /// Encoded bytes of each tuple record (for the reference: the bytes counted as one
    /// tuple).
    pub record_bytes: u64,
    /// Bytes each tuple takes on the link: the record with its header and padding in a BATCH
    /// frame (frame headers left out).
    pub wire_bytes_per_tuple: u64,
    /// Record bytes that reached the sink per second (for the reference: bytes read per
    /// second).
    pub bytes_per_sec: f64,
    /// Bytes per second of the raw TCP reference in the same run (`null` when it did not run
    /// before this scenario).
    pub raw_tcp_bytes_per_sec: Option<f64>,
    /// `bytes_per_sec / raw_tcp_bytes_per_sec`.
    pub raw_tcp_ratio: Option<f64>,
    /// Tuples the sources emitted over the whole run, every one of them counted at the sink
    /// (`null` for the reference).
    pub emitted: Option<u64>,
    /// Where a sample of the records spent their time between the workers (only from a
    /// build with the `stage-trace` feature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_timeline: Option<StageTimeline>,
}

impl NetworkFigures {
    /// The table's last column for this scenario.
    fn summary(&self) -> String {
        let mut text = if self.link == "raw-tcp" {
            format!(
                "{} (raw loopback TCP, large writes)",
                format::bytes_rate(self.bytes_per_sec)
            )
        } else {
            format!(
                "{} of {}-byte records over {}",
                format::bytes_rate(self.bytes_per_sec),
                self.record_bytes,
                self.link
            )
        };
        if let (Some(ratio), false) = (self.raw_tcp_ratio, self.link == "raw-tcp") {
            text.push_str(&format!(" = {ratio:.2}x raw TCP"));
        }
        if let Some(emitted) = self.emitted {
            text.push_str(&format!("; all {} emitted arrived", format::count(emitted)));
        }
        text
    }
}

/// Exact word counts confirmed at the end of a word-count scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CountsVerified {
    /// Words counted, equal to words emitted.
    pub total: u64,
    /// Distinct words counted.
    pub distinct_words: usize,
}

/// Everything measured in one scenario run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// Scenario name, e.g. `const-null`.
    pub scenario: String,
    /// Tuples that reached the sink per second during the timed window.
    pub tuples_per_sec: f64,
    /// Emit-to-sink latency over the timed window.
    pub latency_ns: LatencyNanos,
    /// Emit-to-ack latency of the spouts' tuple trees (`null` without acking).
    pub complete_latency_ns: Option<LatencyNanos>,
    /// Whether every tuple tree was tracked.
    pub acking: bool,
    /// Tuple trees failed or timed out during the run.
    pub failed: u64,
    /// Executor threads the topology ran on.
    pub executors: usize,
    /// Whether every executor was pinned to its own core.
    pub pinned: bool,
    /// Tuples that reached the sink during the timed window.
    pub tuples: u64,
    /// Length of the timed window in seconds.
    pub duration_secs: f64,
    /// Length of the warm-up before it in seconds.
    pub warmup_secs: f64,
    /// The constant send rate in tuples per second, or `null` when the spout ran flat out.
    pub target_rate: Option<u64>,
    /// One tuple in this many carries a latency stamp.
    pub latency_sample_every: u64,
    /// The exact count check of word-count scenarios (`null` for the others).
    pub counts: Option<CountsVerified>,
    /// Bytes moved between worker processes (only in the reports of those scenarios).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkFigures>,
    /// Worker processes the topology ran in (absent when it ran in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// How those workers were linked: `mio`, `io-uring` or `shared-memory` (absent when the
    /// topology ran in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// The phases of the `drpc` scenario (only in its report): `tuples_per_sec` is then the
    /// 64-client request rate and `latency_ns` the latency at `target_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drpc: Option<crate::drpc_bench::DrpcFigures>,
    /// The phases of the `postgres` scenario (only in its report): `tuples_per_sec` is then
    /// the batched rate of acknowledged rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<crate::postgres_bench::PostgresFigures>,
    /// What took the cores from the executors during the timed window: the hypervisor's
    /// steal, their wait for a core, their preemptions (absent where `/proc` does not tell,
    /// and for topologies in other processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interference: Option<Interference>,
    /// What the HTML report plots (`--report`); absent from JSON when nothing was taken.
    #[serde(skip_serializing_if = "Plots::is_empty")]
    pub plots: Plots,
}

/// A scenario's figures over its run, for the HTML report's plots.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plots {
    /// `(seconds into the measured window, tuples per second since the point before)`.
    pub throughput: Vec<(f64, f64)>,
    /// `(percentile 0–100, latency in ns)`: the latency distribution, from its HDR histogram.
    pub latency_percentiles: Vec<(f64, u64)>,
}

impl Plots {
    /// Whether there is nothing to plot.
    pub fn is_empty(&self) -> bool {
        self.throughput.is_empty() && self.latency_percentiles.is_empty()
    }

    /// The percentiles of `histogram` an HDR percentile plot draws: dense in the tail, up to
    /// the largest value.
    pub fn percentiles_of(histogram: &hdrhistogram::Histogram<u64>) -> Vec<(f64, u64)> {
        if histogram.is_empty() {
            return Vec::new();
        }
        let mut points: Vec<(f64, u64)> = histogram
            .iter_quantiles(2)
            .map(|step| {
                (
                    step.quantile_iterated_to() * 100.0,
                    histogram.highest_equivalent(step.value_iterated_to()),
                )
            })
            .filter(|(percentile, _)| *percentile < 100.0)
            .collect();
        points.push((100.0, histogram.max()));
        points
    }
}

/// A latency for the table, or a dash when nothing was measured.
fn latency(nanos: u64) -> String {
    if nanos == 0 {
        "-".to_owned()
    } else {
        format::latency(nanos)
    }
}

impl ScenarioReport {
    /// The report as one line of JSON.
    pub fn to_json_line(&self) -> String {
        // A struct of numbers, strings and options always serialises.
        serde_json::to_string(self).expect("a scenario report serialises to JSON")
    }

    /// The column titles matching [`table_row`](Self::table_row).
    pub fn table_header() -> String {
        format!(
            "{:<16} {:>11} {:>10} {:>10} {:>10} {:>10} {:>9} {:>6}  {}",
            "scenario", "tuples/s", "p50", "p99", "p99.9", "max", "executors", "pinned", "counts"
        )
    }

    /// The report as one row of a human-readable table.
    pub fn table_row(&self) -> String {
        let mut name = match self.target_rate {
            Some(rate) => format!(
                "{}@{}",
                self.scenario,
                format::rate(rate as f64).replace(' ', "")
            ),
            None => self.scenario.clone(),
        };
        if self.acking {
            name.push_str("+ack");
        }
        let counts = match &self.counts {
            Some(counts) => format!(
                "exact ({} words, {} distinct)",
                format::count(counts.total),
                counts.distinct_words
            ),
            None => "-".to_owned(),
        };
        let counts = match &self.postgres {
            Some(postgres) => postgres.summary(),
            None => match (&self.drpc, &self.network, self.workers, &self.transport) {
                (Some(drpc), ..) => drpc.summary(),
                (None, Some(network), _, _) => network.summary(),
                (None, None, Some(workers), Some(transport)) => {
                    format!("{counts}; {workers} workers over {transport}")
                }
                (None, None, _, _) => counts,
            },
        };
        let counts = match &self.complete_latency_ns {
            Some(complete) => format!(
                "{counts}; complete p50 {} p99 {}; {} failed",
                format::latency(complete.p50),
                format::latency(complete.p99),
                self.failed
            ),
            None => counts,
        };
        let counts = match &self.interference {
            Some(taken) if taken.steal_ms >= 1.0 || taken.executor_run_delay_ms >= 1.0 => format!(
                "{counts}; cores taken: {:.0} ms stolen by the host, executors waited {:.1} ms \
                 ({} preemptions)",
                taken.steal_ms, taken.executor_run_delay_ms, taken.executor_preemptions
            ),
            _ => counts,
        };
        format!(
            "{:<16} {:>11} {:>10} {:>10} {:>10} {:>10} {:>9} {:>6}  {}",
            name,
            format::rate(self.tuples_per_sec),
            latency(self.latency_ns.p50),
            latency(self.latency_ns.p99),
            latency(self.latency_ns.p999),
            latency(self.latency_ns.max),
            self.executors,
            if self.pinned { "yes" } else { "no" },
            counts
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> ScenarioReport {
        ScenarioReport {
            scenario: "const-null".into(),
            tuples_per_sec: 52_000_000.0,
            complete_latency_ns: None,
            acking: false,
            failed: 0,
            latency_ns: LatencyNanos {
                p50: 900,
                p90: 1_500,
                p99: 4_000,
                p999: 9_000,
                max: 120_000,
                mean: 1_000.5,
                samples: 1_000,
            },
            executors: 2,
            pinned: true,
            tuples: 260_000_000,
            duration_secs: 5.0,
            warmup_secs: 1.0,
            target_rate: None,
            latency_sample_every: 1_024,
            counts: None,
            network: None,
            workers: None,
            transport: None,
            drpc: None,
            postgres: None,
            interference: None,
            plots: Plots::default(),
        }
    }

    #[test]
    fn percentiles_cover_the_distribution_up_to_its_largest_value() {
        let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for value in 1..=10_000u64 {
            histogram.record(value).unwrap();
        }
        let points = Plots::percentiles_of(&histogram);
        assert_eq!(points.last(), Some(&(100.0, histogram.max())));
        assert!(histogram.max() >= 10_000);
        assert!(
            points
                .windows(2)
                .all(|pair| pair[0].0 <= pair[1].0 && pair[0].1 <= pair[1].1)
        );
        assert!(points.iter().any(|&(percentile, _)| percentile > 99.9));
        assert!(Plots::percentiles_of(&hdrhistogram::Histogram::<u64>::new(3).unwrap()).is_empty());
    }

    #[test]
    fn json_has_the_documented_keys() {
        let json: serde_json::Value =
            serde_json::from_str(&sample().to_json_line()).expect("valid JSON");
        assert_eq!(json["scenario"], "const-null");
        assert_eq!(json["tuples_per_sec"], 52_000_000.0);
        assert_eq!(json["latency_ns"]["p50"], 900);
        assert_eq!(json["latency_ns"]["p99"], 4_000);
        assert_eq!(json["latency_ns"]["p999"], 9_000);
        assert_eq!(json["latency_ns"]["max"], 120_000);
        assert_eq!(json["executors"], 2);
        assert_eq!(json["pinned"], true);
        assert!(json["counts"].is_null());
        assert!(json["target_rate"].is_null());
        for key in ["network", "workers", "transport"] {
            assert!(
                json.get(key).is_none(),
                "only scenarios between workers have {key}"
            );
        }
    }

    #[test]
    fn cores_taken_from_the_executors_are_shown_when_they_amount_to_a_millisecond() {
        let mut report = sample();
        report.interference = Some(Interference {
            steal_ms: 0.0,
            executor_run_delay_ms: 0.4,
            executor_preemptions: 2,
        });
        assert!(!report.table_row().contains("cores taken"));
        report.interference = Some(Interference {
            steal_ms: 40.0,
            executor_run_delay_ms: 4.25,
            executor_preemptions: 7,
        });
        assert!(
            report.table_row().ends_with(
                "cores taken: 40 ms stolen by the host, executors waited 4.2 ms (7 preemptions)"
            ),
            "{}",
            report.table_row()
        );
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json_line()).expect("valid JSON");
        assert_eq!(json["interference"]["steal_ms"], 40.0);
        assert_eq!(json["interference"]["executor_preemptions"], 7);
    }

    #[test]
    fn a_word_count_over_workers_says_how_many_and_how_linked() {
        let mut report = sample();
        report.scenario = "wordcount".into();
        report.counts = Some(CountsVerified {
            total: 1_000,
            distinct_words: 10,
        });
        report.workers = Some(2);
        report.transport = Some("mio".into());
        assert!(
            report
                .table_row()
                .ends_with("exact (1,000 words, 10 distinct); 2 workers over mio"),
            "{}",
            report.table_row()
        );
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json_line()).expect("valid JSON");
        assert_eq!(json["workers"], 2);
        assert_eq!(json["transport"], "mio");
        assert_eq!(json["counts"]["total"], 1_000);
        let one_worker: serde_json::Value =
            serde_json::from_str(&sample().to_json_line()).expect("valid JSON");
        let keys = |json: &serde_json::Value| -> Vec<String> {
            json.as_object()
                .expect("an object")
                .keys()
                .cloned()
                .collect()
        };
        let mut expected = keys(&one_worker);
        expected.extend(["transport".to_owned(), "workers".to_owned()]);
        expected.sort();
        let mut spread = keys(&json);
        spread.sort();
        assert_eq!(
            spread, expected,
            "the one-worker fields, the worker count and the link"
        );
    }

    #[test]
    fn network_figures_are_shown_and_serialised() {
        let mut report = sample();
        report.scenario = "net-mio".into();
        report.tuples_per_sec = 10_000_000.0;
        report.network = Some(NetworkFigures {
            link: "mio".into(),
            record_bytes: 100,
            wire_bytes_per_tuple: 112,
            bytes_per_sec: 1e9,
            raw_tcp_bytes_per_sec: Some(4e9),
            raw_tcp_ratio: Some(0.25),
            emitted: Some(61_000_000),
            stage_timeline: None,
        });
        let row = report.table_row();
        assert!(
            row.ends_with("1.00 GB/s of 100-byte records over mio = 0.25x raw TCP; all 61,000,000 emitted arrived"),
            "{row}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json_line()).expect("valid JSON");
        assert_eq!(json["network"]["bytes_per_sec"], 1e9);
        assert_eq!(json["network"]["raw_tcp_ratio"], 0.25);
        let mut raw = sample();
        raw.latency_ns = LatencyNanos::default();
        assert!(
            raw.table_row().contains("       -          -"),
            "no latency: a dash"
        );
    }

    #[test]
    fn table_rows_line_up_with_the_header() {
        let row = sample().table_row();
        assert!(row.starts_with("const-null "), "{row}");
        assert!(row.contains("52.0 M/s"), "{row}");
        assert!(row.contains("4.00 µs"), "{row}");
        let header = ScenarioReport::table_header();
        assert_eq!(
            header.find("tuples/s").map(|i| i + 8),
            row.find("M/s").map(|i| i + 3)
        );
    }
}
