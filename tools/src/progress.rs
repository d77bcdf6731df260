//! A live progress line: rewritten in place on a terminal, one line per second otherwise.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// How a [`ProgressLine`] shows its updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// One line rewritten in place with a carriage return (for a terminal).
    InPlace,
    /// One new line per update, at most one per [`LOG_INTERVAL`] (for logs and pipes).
    Log,
    /// No progress output at all.
    Silent,
}

/// The shortest time between two lines in [`ProgressStyle::Log`].
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

impl ProgressStyle {
    /// [`InPlace`](Self::InPlace) when standard output is a terminal, else [`Log`](Self::Log).
    pub fn for_stdout() -> Self {
        if io::stdout().is_terminal() {
            ProgressStyle::InPlace
        } else {
            ProgressStyle::Log
        }
    }
}

/// The text of a measurement's progress: `seconds` into its window, the recent rate, the
/// latency so far and the tuples counted.
pub fn measurement_text(
    label: &str,
    seconds: f64,
    recent_rate: f64,
    latency: &squall::metrics::LatencySummary,
    total: u64,
) -> String {
    format!(
        "{label}: {seconds:>5.1}s  {:>11}  p50 {:>9}  p99 {:>9}  total {}",
        crate::format::rate(recent_rate),
        crate::format::latency(latency.p50),
        crate::format::latency(latency.p99),
        crate::format::count(total),
    )
}

/// Writes progress updates to standard output in a [`ProgressStyle`].
#[derive(Debug)]
pub struct ProgressLine {
    style: ProgressStyle,
    last_log: Option<Instant>,
    shown: bool,
}

impl ProgressLine {
    /// A progress line in `style`.
    pub fn new(style: ProgressStyle) -> Self {
        Self {
            style,
            last_log: None,
            shown: false,
        }
    }

    /// Whether an [`update`](Self::update) now would show anything. Callers check it before
    /// they gather figures: reading a latency histogram is not free, and a measuring tool
    /// that reads one the progress line never shows takes cores from what it measures.
    pub fn wants_update(&self) -> bool {
        match self.style {
            ProgressStyle::InPlace => true,
            ProgressStyle::Log => self
                .last_log
                .is_none_or(|last| last.elapsed() >= LOG_INTERVAL),
            ProgressStyle::Silent => false,
        }
    }

    /// Shows `text` as the current progress (rate-limited in [`ProgressStyle::Log`]).
    pub fn update(&mut self, text: &str) {
        let mut out = io::stdout().lock();
        match self.style {
            ProgressStyle::InPlace => {
                // Carriage return, the text, then clear whatever a longer previous line left.
                let _ = write!(out, "\r{text}\x1b[K");
                let _ = out.flush();
                self.shown = true;
            }
            ProgressStyle::Log => {
                if self.wants_update() {
                    self.last_log = Some(Instant::now());
                    let _ = writeln!(out, "{text}");
                }
            }
            ProgressStyle::Silent => {}
        }
    }

    /// Ends the in-place line so that what follows starts on a fresh line.
    pub fn finish(&mut self) {
        if self.shown {
            let _ = writeln!(io::stdout());
            self.shown = false;
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_shows_its_rate_latency_and_total() {
        let latency = squall::metrics::LatencySummary {
            samples: 10,
            p50: 11_400,
            p99: 71_000,
            ..Default::default()
        };
        let text = measurement_text("const-null", 1.25, 1_000_000.0, &latency, 1_250_000);
        assert!(text.starts_with("const-null:   1.2s"), "{text}");
        for part in ["1.0 M/s", "11.40 µs", "71.00 µs", "total 1,250,000"] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn a_silent_line_never_wants_figures() {
        assert!(!ProgressLine::new(ProgressStyle::Silent).wants_update());
    }

    #[test]
    fn an_in_place_line_always_wants_figures() {
        assert!(ProgressLine::new(ProgressStyle::InPlace).wants_update());
    }

    #[test]
    fn a_log_line_wants_figures_once_per_interval() {
        let mut line = ProgressLine::new(ProgressStyle::Log);
        assert!(line.wants_update(), "the first line is always shown");
        line.last_log = Some(Instant::now());
        assert!(!line.wants_update(), "a line was just logged");
        line.last_log = Instant::now().checked_sub(LOG_INTERVAL);
        assert!(line.wants_update(), "an interval has passed");
    }
}
