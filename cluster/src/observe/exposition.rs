//! Writing figures in the Prometheus text exposition format (version 0.0.4).
//!
//! Samples of one metric family are grouped under its `# HELP` and `# TYPE` lines whatever
//! order they are added in, as the format requires.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the buckets latency histograms are exposed with.
pub const LATENCY_BUCKETS_SECS: [f64; 16] = [
    0.000_001, 0.000_005, 0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
    1.0, 5.0, 10.0, 60.0,
];

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets with `_sum` and `_count`.
    Histogram,
}

impl MetricKind {
    fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: MetricKind,
    samples: String,
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    fn family(&mut self, name: &str, kind: MetricKind, help: &str) -> &mut Family {
        let index = match self.families.iter().position(|family| family.name == name) {
            Some(index) => index,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    help: help.to_owned(),
                    kind,
                    samples: String::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[index]
    }

    /// Adds one sample of a counter or gauge.
    pub fn sample(
        &mut self,
        name: &str,
        kind: MetricKind,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let family = self.family(name, kind, help);
        write_sample(&mut family.samples, name, labels, None, value);
    }

    /// Adds a latency histogram (values in nanoseconds), exposed in seconds with the
    /// [`LATENCY_BUCKETS_SECS`] buckets.
    pub fn latency(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        histogram: &Histogram<u64>,
    ) {
        let family = self.family(name, MetricKind::Histogram, help);
        let bucket = format!("{name}_bucket");
        let mut below = 0u64;
        let mut recorded = histogram.iter_recorded().peekable();
        for bound in LATENCY_BUCKETS_SECS {
            let bound_nanos = (bound * 1e9) as u64;
            while let Some(value) = recorded.next_if(|value| {
                histogram.highest_equivalent(value.value_iterated_to()) <= bound_nanos
            }) {
                below += value.count_at_value();
            }
            write_sample(
                &mut family.samples,
                &bucket,
                labels,
                Some(&format_float(bound)),
                below as f64,
            );
        }
        write_sample(
            &mut family.samples,
            &bucket,
            labels,
            Some("+Inf"),
            histogram.len() as f64,
        );
        let sum = histogram.mean() * histogram.len() as f64 / 1e9;
        write_sample(
            &mut family.samples,
            &format!("{name}_sum"),
            labels,
            None,
            sum,
        );
        write_sample(
            &mut family.samples,
            &format!("{name}_count"),
            labels,
            None,
            histogram.len() as f64,
        );
    }

    /// The page's text.
    pub fn finish(self) -> String {
        let mut text = String::new();
        for family in self.families {
            let _ = writeln!(text, "# HELP {} {}", family.name, escape_help(&family.help));
            let _ = writeln!(text, "# TYPE {} {}", family.name, family.kind.name());
            text.push_str(&family.samples);
        }
        text
    }
}

fn write_sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    let le = le.map(|le| ("le", le));
    let mut all = labels.iter().copied().chain(le).peekable();
    if all.peek().is_some() {
        out.push('{');
        for (index, (label, value)) in all.enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_float(value));
}

fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text escapes backslash and line feed.
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_group_under_their_family_and_labels_are_escaped() {
        let mut page = Exposition::new();
        page.sample("a_total", MetricKind::Counter, "A.", &[("x", "1")], 3.0);
        page.sample("b", MetricKind::Gauge, "B.", &[], 0.5);
        page.sample(
            "a_total",
            MetricKind::Counter,
            "A.",
            &[("x", "q\"\\\n")],
            4.0,
        );
        assert_eq!(
            page.finish(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
             a_total{x=\"q\\\"\\\\\\n\"} 4\n# HELP b B.\n# TYPE b gauge\nb 0.5\n"
        );
    }

    #[test]
    fn latency_buckets_are_cumulative_and_end_with_the_count() {
        let mut histogram = squall_core::metrics::TopologyMetrics::empty_histogram();
        histogram.record(800).unwrap(); // 0.8 us
        histogram.record(2_000_000).unwrap(); // 2 ms
        histogram.record(2_000_000).unwrap();
        let mut page = Exposition::new();
        page.latency("l_seconds", "L.", &[("t", "1")], &histogram);
        let text = page.finish();
        assert!(
            text.contains("l_seconds_bucket{t=\"1\",le=\"0.000001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("l_seconds_bucket{t=\"1\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("l_seconds_bucket{t=\"1\",le=\"0.005\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("l_seconds_bucket{t=\"1\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("l_seconds_count{t=\"1\"} 3\n"), "{text}");
    }
}
