//! Running a built-in topology for a warm-up and a timed window, and measuring it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use squall::builtin::counts::CountCheck;
use squall::builtin::topologies::BuiltinTopology;
use squall::metrics::TopologyMetrics;
use squall::topology::ComponentKind;

use crate::interference::{Interference, InterferenceReading};
use crate::progress::{ProgressLine, measurement_text};

/// How often the live progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Longest wait for what is in flight to drain after the sources stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run measured over its timed window.
#[derive(Debug)]
pub struct Measurement {
    /// Tuples that reached the sinks in the window.
    pub tuples: u64,
    /// Length of the window.
    pub seconds: f64,
    /// Latency from stamp to sink, over the window.
    pub latency: Histogram<u64>,
    /// Emit-to-ack latency of tracked trees, over the window (empty without acking).
    pub complete_latency: Histogram<u64>,
    /// Trees failed or timed out during the whole run.
    pub failed: u64,
    /// Executor threads.
    pub threads: usize,
    /// Whether they were pinned.
    pub pinned: bool,
    /// The exact count check of word counts.
    pub counts: Option<CountCheck>,
    /// `(seconds into the window, tuples per second since the point before)`, one point per
    /// progress refresh.
    pub throughput: Vec<(f64, f64)>,
    /// What took the cores from the executors during the window (`None` where `/proc` does
    /// not tell).
    pub interference: Option<Interference>,
}

impl Measurement {
    /// Tuples per second at the sinks.
    pub fn rate(&self) -> f64 {
        self.tuples as f64 / self.seconds.max(1e-9)
    }
}

fn spout_complete_latency(
    metrics: &TopologyMetrics,
    topology: &squall::Topology,
) -> Histogram<u64> {
    let mut total = squall::metrics::TopologyMetrics::empty_histogram();
    for component in topology.components() {
        if component.kind() == ComponentKind::Spout
            && let Some(figures) = metrics.component(component.id())
        {
            let _ = total.add(&figures.complete_latency);
        }
    }
    total
}

/// Runs `built` for `warmup` then `window`, showing progress as `label`; stops the sources,
/// drains, and checks word counts exactly.
///
/// # Errors
/// When the topology cannot start, reports task errors, fails to drain, or counts wrong.
pub fn measure(
    built: &BuiltinTopology,
    label: &str,
    warmup: Duration,
    window: Duration,
    progress: &mut ProgressLine,
) -> anyhow::Result<Measurement> {
    let topology = std::sync::Arc::clone(&built.topology);
    let running = squall::run(std::sync::Arc::clone(&topology))
        .with_context(|| format!("starting {label}"))?;
    let threads = running.thread_count();
    let pinned = running.is_pinned();

    std::thread::sleep(warmup);
    built.sinks.latency.reset();
    let start_metrics = running.metrics();
    let start_count = built.sinks.received.total();
    let interference_at_start = InterferenceReading::now();
    let start = Instant::now();
    let mut last = (start, start_count);
    let mut throughput = Vec::new();
    while start.elapsed() < window {
        std::thread::sleep(PROGRESS_EVERY.min(window.saturating_sub(start.elapsed())));
        let now = Instant::now();
        let count = built.sinks.received.total();
        let recent = (count - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
        last = (now, count);
        throughput.push((now.duration_since(start).as_secs_f64(), recent));
        if progress.wants_update() {
            progress.update(&measurement_text(
                label,
                start.elapsed().as_secs_f64(),
                recent,
                &built.sinks.latency.summary(),
                count - start_count,
            ));
        }
        if running.has_stopped() {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let tuples = built.sinks.received.total() - start_count;
    let interference = interference_at_start
        .zip(InterferenceReading::now())
        .map(|(start, end)| start.until(&end));
    let latency = built.sinks.latency.snapshot();
    let end_metrics = running.metrics();
    progress.finish();

    built.source.switch.turn_off();
    if built.sinks_hold_tuples {
        // Tuples held in windows are counted when their windows close, not when the rings
        // drain.
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while built.sinks.received.total() < built.source.emitted.total()
            && Instant::now() < deadline
            && !running.has_stopped()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Some(failure) = running.stopped_by() {
        bail!("{label} stopped: {failure}");
    }
    let report = running.kill(DRAIN_TIMEOUT);
    if let Some(error) = report.errors.first() {
        bail!(
            "{label}: {} task errors, the first: {error}",
            report.errors.len()
        );
    }
    if !report.drained {
        bail!("{label}: tuples still in flight {DRAIN_TIMEOUT:?} after the sources stopped");
    }
    let mut complete_latency = spout_complete_latency(&end_metrics, &topology);
    let _ = complete_latency.subtract(spout_complete_latency(&start_metrics, &topology));
    let counts = match &built.words {
        Some(probe) => Some(
            probe
                .verify()
                .with_context(|| format!("{label}: word counts are wrong"))?,
        ),
        None => None,
    };
    Ok(Measurement {
        tuples,
        seconds,
        latency,
        complete_latency,
        failed: built.source.failed.total(),
        threads,
        pinned,
        counts,
        throughput,
        interference,
    })
}
