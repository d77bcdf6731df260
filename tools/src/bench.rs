//! `squall-bench`: runs the named scenarios and reports throughput and latency.

use std::time::Duration;

use anyhow::Context;
use squall::builtin::components::SourceOptions;
use squall::builtin::pacing::TuplesPerSecond;
use squall::builtin::topologies::{self, BuiltinOptions, BuiltinTopology};
use squall::window::{Extent, WindowSpec};
use squall::{TopologyConfig, WaitStrategyKind};

use crate::args::RateSpec;
use crate::cli::BenchCli;
use crate::measure::{Measurement, measure};
use crate::progress::{ProgressLine, ProgressStyle};
use crate::report::{CountsVerified, LatencyNanos, Plots, ScenarioReport};
use crate::scenario::Scenario;
use deployment::{Deployment, deployment};

pub mod deployment;
pub mod network;

/// The window of `wordcount-windowed`'s counters.
const WORDCOUNT_WINDOW: Duration = Duration::from_millis(100);

/// Length of the unthrottled run that finds the maximum rate for `--rate N%`.
const PROBE_WINDOW: Duration = Duration::from_secs(2);

/// The topology options a command line asks for.
fn options(cli: &BenchCli, rate: Option<u64>) -> BuiltinOptions {
    let mut config = TopologyConfig::default()
        .with_ackers(usize::from(cli.acking))
        .with_wait_strategy(cli.wait)
        .with_chaining(cli.threads.0);
    if cli.max_pending > 0 {
        config = config.with_max_spout_pending(cli.max_pending);
    }
    if cli.wait == WaitStrategyKind::BusySpin {
        config.spout_idle_backoff = Duration::from_micros(1);
    }
    let spouts = cli.spouts as usize;
    let per_spout = rate.and_then(|rate| TuplesPerSecond::new((rate / spouts as u64).max(1)));
    BuiltinOptions {
        config,
        source: SourceOptions {
            rate: per_spout,
            stamp_every: u32::try_from(cli.sample_every).unwrap_or(u32::MAX),
            tracked: cli.acking,
            ..SourceOptions::default()
        },
        spouts,
        middle: cli.middle as usize,
        sinks: cli.sinks as usize,
        ..BuiltinOptions::default()
    }
}

/// Builds the topology of `scenario`.
///
/// # Errors
/// When the options make an invalid topology.
pub fn build(scenario: Scenario, options: &BuiltinOptions) -> anyhow::Result<BuiltinTopology> {
    let name = scenario.name();
    let built = match scenario {
        Scenario::ConstNull => topologies::const_null(name, options),
        Scenario::ConstIdNull => topologies::const_id_null(name, options),
        Scenario::Wordcount => topologies::wordcount(name, false, options),
        Scenario::WordcountStr => topologies::wordcount(name, true, options),
        Scenario::WordcountWindowed => {
            let spec = WindowSpec::tumbling(Extent::Time(WORDCOUNT_WINDOW))?;
            topologies::wordcount_windowed(name, &spec, options)
        }
        Scenario::WordcountStateful => {
            // Checkpoints commit as their barriers' trees complete: always tracked.
            let mut options = options.clone();
            options.config.ackers = Some(options.config.ackers.unwrap_or(1).max(1));
            options.source.tracked = true;
            topologies::wordcount_stateful(name, stateful_checkpointing()?, &options)
        }
        Scenario::NetMio | Scenario::NetUring | Scenario::NetShm => {
            topologies::payload_null(name, network::RECORD_BYTES, options)
        }
        Scenario::TcpRaw | Scenario::Drpc | Scenario::Postgres => {
            anyhow::bail!("{name} is not a built-in topology")
        }
        Scenario::ShellBolt => crate::shell_bench::build(name, options),
    };
    built.with_context(|| format!("building scenario {name}"))
}

/// Checkpoints of `wordcount-stateful`: every second, in the embedded backend, in a
/// directory of this process emptied first (so no earlier run's counts are restored).
fn stateful_checkpointing() -> anyhow::Result<squall::state::Checkpointing> {
    let dir = std::env::temp_dir().join(format!("squall-bench-state-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    Ok(squall::state::Checkpointing {
        interval: std::time::Duration::from_secs(1),
        backend: std::sync::Arc::new(squall::state::EmbeddedBackend::new(dir)),
    })
}

fn latency_nanos(histogram: &hdrhistogram::Histogram<u64>) -> LatencyNanos {
    squall::metrics::LatencySummary::of(histogram).into()
}

/// The live progress line of a scenario (silent when printing JSON).
fn progress_line(cli: &BenchCli) -> ProgressLine {
    ProgressLine::new(if cli.json {
        ProgressStyle::Silent
    } else {
        ProgressStyle::for_stdout()
    })
}

/// Runs one scenario as the command line says.
///
/// # Errors
/// When the topology fails, does not drain, or counts wrong.
pub fn run_scenario(cli: &BenchCli, scenario: Scenario) -> anyhow::Result<ScenarioReport> {
    if scenario == Scenario::Drpc {
        return crate::drpc_bench::run(cli, &mut progress_line(cli));
    }
    if scenario == Scenario::Postgres {
        return crate::postgres_bench::run(cli, &mut progress_line(cli));
    }
    match deployment(cli, scenario)? {
        Deployment::InProcess => {}
        Deployment::RawTcp => return network::run_raw_tcp(cli, scenario),
        Deployment::Workers { link, placement } => {
            return network::run(cli, scenario, link, placement);
        }
    }
    let mut progress = progress_line(cli);
    let warmup = cli.warmup.get();
    let rate = match cli.rate {
        None => None,
        Some(RateSpec::PerSecond(rate)) => Some(rate),
        Some(RateSpec::FractionOfMax(fraction)) => {
            let probe = build(scenario, &options(cli, None))?;
            let label = format!("{} (finding the maximum rate)", scenario.name());
            let max = measure(&probe, &label, warmup, PROBE_WINDOW, &mut progress)?.rate();
            Some(((max * fraction) as u64).max(1))
        }
    };
    let built = build(scenario, &options(cli, rate))?;
    let measured: Measurement = measure(
        &built,
        scenario.name(),
        warmup,
        cli.duration.get(),
        &mut progress,
    )?;
    Ok(ScenarioReport {
        scenario: scenario.name().to_owned(),
        tuples_per_sec: measured.rate(),
        latency_ns: latency_nanos(&measured.latency),
        complete_latency_ns: (cli.acking || scenario.always_tracks())
            .then(|| latency_nanos(&measured.complete_latency)),
        acking: cli.acking || scenario.always_tracks(),
        failed: measured.failed,
        executors: measured.threads,
        pinned: measured.pinned,
        tuples: measured.tuples,
        duration_secs: measured.seconds,
        warmup_secs: warmup.as_secs_f64(),
        target_rate: rate,
        latency_sample_every: cli.sample_every,
        counts: measured.counts.map(|check| CountsVerified {
            total: check.total,
            distinct_words: check.distinct_words,
        }),
        network: None,
        workers: None,
        transport: None,
        drpc: None,
        postgres: None,
        interference: measured.interference,
        plots: Plots {
            latency_percentiles: Plots::percentiles_of(&measured.latency),
            throughput: measured.throughput,
        },
    })
}
