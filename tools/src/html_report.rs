//! `squall-bench --report FILE.html`: one self-contained HTML file (inline SVG, no scripts,
//! nothing fetched) with the scenarios of a run side by side: a throughput bar per scenario,
//! throughput over time, and the latency percentile distribution as an HDR percentile plot
//! (the x axis spreads the tail: 90%, 99%, 99.9%... are equally far apart).

use std::fmt::Write as _;

use crate::format;
use crate::report::ScenarioReport;

/// Width and height of every plot, in pixels.
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
/// Room for the axes' labels.
const LEFT: f64 = 80.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 20.0;
const RIGHT: f64 = 20.0;

/// Line colours, one per scenario (repeating past the end).
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The label of a scenario: its name with the rate it was paced at and whether it acked,
/// as the table shows it.
fn label(report: &ScenarioReport) -> String {
    report
        .table_row()
        .split_whitespace()
        .next()
        .unwrap_or(&report.scenario)
        .to_owned()
}

fn colour(index: usize) -> &'static str {
    COLOURS[index % COLOURS.len()]
}

/// A plot area: maps data coordinates onto pixels and draws the frame.
struct Plot {
    svg: String,
    x_max: f64,
    y_max: f64,
}

impl Plot {
    fn new(title: &str, x_max: f64, y_max: f64) -> Self {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img"><title>{}</title><rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="#fff" stroke="#999"/>"##,
            escape(title),
            WIDTH - LEFT - RIGHT,
            HEIGHT - TOP - BOTTOM,
        );
        Self {
            svg,
            x_max: if x_max > 0.0 { x_max } else { 1.0 },
            y_max: if y_max > 0.0 { y_max * 1.05 } else { 1.0 },
        }
    }

    fn x(&self, value: f64) -> f64 {
        LEFT + value / self.x_max * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, value: f64) -> f64 {
        HEIGHT - BOTTOM - value / self.y_max * (HEIGHT - TOP - BOTTOM)
    }

    fn x_tick(&mut self, value: f64, text: &str) {
        let x = self.x(value);
        let _ = write!(
            self.svg,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ccc"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            TOP,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 14.0,
            escape(text)
        );
    }

    fn y_ticks(&mut self, show: impl Fn(f64) -> String) {
        for step in 0..=4 {
            let value = self.y_max * f64::from(step) / 4.0;
            let y = self.y(value);
            let _ = write!(
                self.svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                escape(&show(value))
            );
        }
    }

    fn axis_names(&mut self, x: &str, y: &str) {
        let _ = write!(
            self.svg,
            r##"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle">{}</text><text x="14" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"##,
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            HEIGHT - 6.0,
            escape(x),
            TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
            TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
            escape(y)
        );
    }

    fn line(&mut self, points: &[(f64, f64)], colour: &str, name: &str) {
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.x(x), self.y(y)))
            .collect();
        let _ = write!(
            self.svg,
            r#"<polyline class="series" data-scenario="{}" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            escape(name),
            path.join(" ")
        );
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>");
        self.svg
    }
}

fn legend(reports: &[&ScenarioReport]) -> String {
    let mut html = String::from(r#"<p class="legend">"#);
    for (index, report) in reports.iter().enumerate() {
        let _ = write!(
            html,
            r#"<span style="color:{}">&#9632; {}</span> "#,
            colour(index),
            escape(&label(report))
        );
    }
    html.push_str("</p>");
    html
}

fn throughput_bars(reports: &[ScenarioReport]) -> String {
    let max = reports
        .iter()
        .map(|report| report.tuples_per_sec)
        .fold(0.0, f64::max);
    let bar_height = 22.0;
    let height = TOP + reports.len() as f64 * (bar_height + 8.0) + 10.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img"><title>Throughput</title>"#
    );
    let span = WIDTH - 260.0 - RIGHT;
    for (index, report) in reports.iter().enumerate() {
        let y = TOP + index as f64 * (bar_height + 8.0);
        let width = if max > 0.0 {
            report.tuples_per_sec / max * span
        } else {
            0.0
        };
        let _ = write!(
            svg,
            r#"<text x="150" y="{:.1}" font-size="12" text-anchor="end">{}</text><rect class="bar" data-scenario="{}" x="160" y="{y:.1}" width="{width:.1}" height="{bar_height}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            y + 15.0,
            escape(&label(report)),
            escape(&report.scenario),
            colour(index),
            166.0 + width,
            y + 15.0,
            escape(&format::rate(report.tuples_per_sec))
        );
    }
    svg.push_str("</svg>");
    svg
}

fn throughput_over_time(reports: &[&ScenarioReport]) -> String {
    let x_max = reports
        .iter()
        .flat_map(|report| report.plots.throughput.iter().map(|point| point.0))
        .fold(0.0, f64::max);
    let y_max = reports
        .iter()
        .flat_map(|report| report.plots.throughput.iter().map(|point| point.1))
        .fold(0.0, f64::max);
    let mut plot = Plot::new("Throughput over time", x_max, y_max);
    plot.y_ticks(format::rate);
    for step in 0..=5 {
        let secs = x_max * f64::from(step) / 5.0;
        plot.x_tick(secs, &format!("{secs:.1} s"));
    }
    plot.axis_names("time in the measured window", "tuples/s");
    for (index, report) in reports.iter().enumerate() {
        plot.line(&report.plots.throughput, colour(index), &report.scenario);
    }
    plot.finish()
}

/// The x position of percentile `p` (0–100) on an HDR percentile plot: log10 of 1/(1-p).
fn tail_position(percentile: f64) -> f64 {
    let remaining = (1.0 - percentile / 100.0).max(1e-7);
    (1.0 / remaining).log10()
}

fn latency_distribution(reports: &[&ScenarioReport]) -> String {
    let x_max = reports
        .iter()
        .flat_map(|report| report.plots.latency_percentiles.iter())
        .map(|&(percentile, _)| tail_position(percentile))
        .fold(0.0, f64::max);
    let y_max = reports
        .iter()
        .flat_map(|report| report.plots.latency_percentiles.iter())
        .map(|&(_, nanos)| nanos as f64)
        .fold(0.0, f64::max);
    let mut plot = Plot::new("Latency by percentile", x_max, y_max);
    plot.y_ticks(|nanos| format::latency(nanos as u64));
    for (percentile, text) in [
        (0.0, "0%"),
        (90.0, "90%"),
        (99.0, "99%"),
        (99.9, "99.9%"),
        (99.99, "99.99%"),
        (99.999, "99.999%"),
    ] {
        if tail_position(percentile) <= x_max + 1e-9 {
            plot.x_tick(tail_position(percentile), text);
        }
    }
    plot.axis_names("percentile", "latency");
    for (index, report) in reports.iter().enumerate() {
        let points: Vec<(f64, f64)> = report
            .plots
            .latency_percentiles
            .iter()
            .map(|&(percentile, nanos)| (tail_position(percentile), nanos as f64))
            .collect();
        plot.line(&points, colour(index), &report.scenario);
    }
    plot.finish()
}

/// The HTML report of `reports`, run with `command`.
pub fn render(reports: &[ScenarioReport], command: &str) -> String {
    let mut html = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>squall-bench report</title><style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:right}th:first-child,td:first-child{text-align:left}pre{background:#f4f4f4;padding:.5em}.legend span{margin-right:1em}</style></head><body><h1>squall-bench report</h1>"#,
    );
    let _ = write!(html, "<pre>{}</pre>", escape(command));
    html.push_str("<h2>Scenarios</h2><table><thead><tr>");
    for heading in [
        "scenario",
        "tuples/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "executors",
    ] {
        let _ = write!(html, "<th>{heading}</th>");
    }
    html.push_str("</tr></thead><tbody>");
    for report in reports {
        let latency = report.latency_ns;
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&label(report)),
            escape(&format::rate(report.tuples_per_sec)),
            escape(&format::latency(latency.p50)),
            escape(&format::latency(latency.p99)),
            escape(&format::latency(latency.p999)),
            escape(&format::latency(latency.max)),
            report.executors
        );
    }
    html.push_str("</tbody></table><h2>Throughput</h2>");
    html.push_str(&throughput_bars(reports));
    let over_time: Vec<&ScenarioReport> = reports
        .iter()
        .filter(|report| !report.plots.throughput.is_empty())
        .collect();
    if !over_time.is_empty() {
        html.push_str("<h2>Throughput over time</h2>");
        html.push_str(&legend(&over_time));
        html.push_str(&throughput_over_time(&over_time));
    }
    let distributions: Vec<&ScenarioReport> = reports
        .iter()
        .filter(|report| !report.plots.latency_percentiles.is_empty())
        .collect();
    if !distributions.is_empty() {
        html.push_str("<h2>Latency distribution</h2>");
        html.push_str(&legend(&distributions));
        html.push_str(&latency_distribution(&distributions));
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_spreads_evenly() {
        assert!((tail_position(90.0) - 1.0).abs() < 1e-9);
        assert!((tail_position(99.0) - 2.0).abs() < 1e-9);
        assert!((tail_position(99.9) - 3.0).abs() < 1e-6);
        assert_eq!(tail_position(0.0), 0.0);
        assert!(tail_position(100.0).is_finite());
    }

    #[test]
    fn a_report_plots_every_scenario_and_escapes_text() {
        let mut first = crate::report::tests::sample();
        first.plots.throughput = vec![(0.25, 1.0e6), (0.5, 1.2e6), (0.75, 1.1e6)];
        first.plots.latency_percentiles = vec![(0.0, 300), (50.0, 500), (99.0, 5_000)];
        let mut second = first.clone();
        second.scenario = "wordcount<&>".to_owned();
        second.tuples_per_sec /= 2.0;
        let html = render(
            &[first, second],
            "squall-bench const-null wordcount --report r.html",
        );
        assert!(html.starts_with("<!doctype html>"));
        assert_eq!(html.matches(r#"class="bar""#).count(), 2);
        // One line per scenario in each of the two plots.
        assert_eq!(html.matches(r#"<polyline class="series""#).count(), 4);
        assert!(html.contains("wordcount&lt;&amp;&gt;"));
        assert!(!html.contains("wordcount<&>"));
        assert!(html.contains("99%"));
        assert!(!html.contains("<script"), "the report runs no scripts");
    }
}
