//! The worker mode of `squall-bench`: `squall-bench worker --plan FILE`, started for each
//! worker of a run between workers.
//!
//! The process is a topology program in worker mode ([`squall::app`]): it reads the plan,
//! builds the topology from the plan's arguments (a `squall-bench` command line naming one
//! scenario), runs its share of the executors, writes heartbeats, and stops cleanly on
//! SIGTERM. Before anything reads the stamp clock it starts it at the epoch in
//! [`EPOCH_ENV`], so its stamps compare with the other workers'.
//!
//! Beside the worker runs an agent that answers the coordinator: for each line read on
//! standard input, `sample`, `reset` (forget the latency recorded so far), `stop` (stop the
//! sources) or `latencies` (a sample with the latencies recorded since the last reset) — and,
//! built with the `stage-trace` feature, `trace` (write the stage stamps to
//! [`STAGE_TRACE_FILE`]; `reset` forgets them too) — it writes one [`Sample`] as a line of
//! JSON on standard output, taken after doing what was asked. When standard input closes the
//! coordinator is gone, and the process exits.
//!
//! A word count's spouts and count bolts report their figures when the worker stops, so a
//! worker that stopped cleanly writes them to
//! [`FILE_NAME`](super::word_counts::FILE_NAME) in its working directory before it exits.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use squall::builtin::clock;
use squall::builtin::topologies::BuiltinTopology;

use super::word_counts::WorkerWordCounts;
use crate::args::RateSpec;
use crate::cli::BenchCli;
use crate::report::LatencyNanos;

/// The environment variable holding the stamp clock's epoch: nanoseconds of wall-clock time
/// since the Unix epoch.
pub const EPOCH_ENV: &str = "SQUALL_BENCH_EPOCH_NS";

/// The file, in its working directory, a worker writes its stage stamps to when asked
/// (`trace`, in builds with the `stage-trace` feature).
pub const STAGE_TRACE_FILE: &str = "stage-trace.txt";

/// The first argument that selects the worker mode.
const WORKER_MODE: &str = "worker";

/// A worker's counters and latency at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken, on the stamp clock shared by the workers.
    pub at_nanos: u64,
    /// Tuples that reached this worker's sinks so far.
    pub received: u64,
    /// Tuples this worker's sources emitted so far.
    pub emitted: u64,
    /// Tuple trees this worker's sources saw fail so far.
    pub failed: u64,
    /// Latency of the stamped tuples that reached this worker's sinks since the last reset.
    pub latency: LatencyNanos,
    /// For a `latencies` request: those latencies as `(nanoseconds, count)` for every
    /// bucket of the histogram that recorded any, so the coordinator can merge the workers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Vec<(u64, u64)>>,
}

/// Whether this process was started as a worker (its first argument is `worker`).
pub fn is_worker_mode() -> bool {
    std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == WORKER_MODE)
}

/// Runs this process as a worker; see the [module docs](self).
pub fn worker_main() -> ExitCode {
    if let Err(error) = start_clock() {
        eprintln!("squall-bench worker: {error:#}");
        return ExitCode::FAILURE;
    }
    let first_built = OnceLock::new();
    let exit = squall::app::main(|args| {
        let built = topology(args).map_err(|error| format!("{error:#}"))?;
        if first_built.set(built.clone()).is_ok() {
            let probes = built.clone();
            std::thread::Builder::new()
                .name("squall-bench-agent".to_owned())
                .spawn(move || serve(&probes))?;
        }
        Ok(built.topology)
    });
    if exit != ExitCode::SUCCESS {
        return exit;
    }
    let Some(probe) = first_built.get().and_then(|built| built.words.as_ref()) else {
        return exit;
    };
    let written = std::env::current_dir()
        .context("finding the working directory")
        .and_then(|dir| WorkerWordCounts::of(probe).write_into(&dir));
    match written {
        Ok(()) => exit,
        Err(error) => {
            eprintln!("squall-bench worker: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn start_clock() -> anyhow::Result<()> {
    let text = std::env::var(EPOCH_ENV)
        .with_context(|| format!("{EPOCH_ENV} is not set: workers are started by squall-bench"))?;
    let nanos: u64 = text
        .parse()
        .with_context(|| format!("{EPOCH_ENV}={text:?} is not a number of nanoseconds"))?;
    if !clock::start_clock_at(UNIX_EPOCH + Duration::from_nanos(nanos)) {
        bail!("cannot start the stamp clock at {EPOCH_ENV}={nanos}");
    }
    Ok(())
}

/// The topology a plan's arguments describe.
fn topology(args: &[String]) -> anyhow::Result<BuiltinTopology> {
    let command_line = std::iter::once("squall-bench".to_owned()).chain(args.iter().cloned());
    let cli = BenchCli::try_parse_from(command_line)
        .with_context(|| format!("the plan's arguments {args:?}"))?;
    let [scenario] = cli.scenarios[..] else {
        bail!("the plan's arguments {args:?} name more or less than one scenario");
    };
    let rate = match cli.rate {
        None => None,
        Some(RateSpec::PerSecond(rate)) => Some(rate),
        Some(RateSpec::FractionOfMax(_)) => {
            bail!("a worker takes an absolute --rate, found {args:?}")
        }
    };
    super::super::build(scenario, &super::topology_options(&cli, rate))
}

fn sample(built: &BuiltinTopology) -> Sample {
    Sample {
        at_nanos: clock::monotonic_nanos(),
        received: built.sinks.received.total(),
        emitted: built.source.emitted.total(),
        failed: built.source.failed.total(),
        latency: built.sinks.latency.summary().into(),
        recorded: None,
    }
}

/// `(nanoseconds, count)` for every bucket of `histogram` that recorded any.
fn recorded(histogram: &Histogram<u64>) -> Vec<(u64, u64)> {
    histogram
        .iter_recorded()
        .map(|bucket| (bucket.value_iterated_to(), bucket.count_at_value()))
        .collect()
}

/// Writes the stage stamps taken so far to [`STAGE_TRACE_FILE`]; a failure leaves the
/// file incomplete, which the coordinator reports.
#[cfg(feature = "stage-trace")]
fn write_stage_trace() {
    let written = std::fs::File::create(STAGE_TRACE_FILE).and_then(|file| {
        let mut out = std::io::BufWriter::new(file);
        squall::stage_trace::write_events(&mut out)?;
        out.flush()
    });
    if let Err(error) = written {
        eprintln!("squall-bench worker: cannot write {STAGE_TRACE_FILE}: {error}");
    }
}

/// Answers the coordinator until it goes away, then ends the process.
fn serve(built: &BuiltinTopology) {
    let mut answers = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "sample" => {}
            "reset" => {
                built.sinks.latency.reset();
                #[cfg(feature = "stage-trace")]
                squall::stage_trace::clear();
            }
            "stop" => built.source.switch.turn_off(),
            "latencies" => {}
            #[cfg(feature = "stage-trace")]
            "trace" => write_stage_trace(),
            other => {
                eprintln!("squall-bench worker: unknown request {other:?}");
                break;
            }
        }
        let mut answer = sample(built);
        if line.trim() == "latencies" {
            answer.recorded = Some(recorded(&built.sinks.latency.snapshot()));
        }
        let answer = serde_json::to_string(&answer).expect("a sample serialises");
        if writeln!(answers, "{answer}")
            .and_then(|()| answers.flush())
            .is_err()
        {
            break;
        }
    }
    // Nobody is left to stop this worker or read its figures.
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall::builtin::latency::MAX_TRACKED_NANOS;

    #[test]
    fn recorded_latencies_merge_into_the_same_percentiles() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, MAX_TRACKED_NANOS, 3).expect("ok");
        for nanos in [900, 1_000, 1_000, 25_000, 4_000_000] {
            histogram.record(nanos).expect("in range");
        }
        let mut merged = Histogram::<u64>::new_with_bounds(1, MAX_TRACKED_NANOS, 3).expect("ok");
        for (nanos, count) in recorded(&histogram) {
            merged.record_n(nanos, count).expect("in range");
        }
        assert_eq!(merged.len(), 5);
        for quantile in [0.5, 0.9, 0.99, 1.0] {
            assert_eq!(
                merged.value_at_quantile(quantile),
                histogram.value_at_quantile(quantile)
            );
        }
    }
}
