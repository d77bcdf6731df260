//! The scenarios between two worker processes (`net-mio`, `net-uring`, `net-shm`), the raw
//! loopback TCP reference they are compared with (`tcp-raw`), and the word counts spread
//! over worker processes (`wordcount --workers N`).
//!
//! # Two worker processes
//!
//! A network scenario runs the payload topology (payload spout → null bolt, shuffle grouping)
//! with every record exactly [`RECORD_BYTES`] bytes long, in two worker processes on this
//! host: the spouts (and the acker, if any) in the *source* worker, the null bolts in the
//! *sink* worker, so every tuple crosses the transport the scenario names. Both workers are
//! this program started again as a topology program in worker mode, `squall-bench worker
//! --plan FILE`, with the topology's worker key in `SQUALL_WORKER_KEY`: exactly how a supervisor
//! starts a worker (see `squall::cluster::plan`). The plan's `args` are the `squall-bench`
//! arguments that shape the topology, so both workers build the same one.
//!
//! This process only coordinates: it plans, starts and stops the workers and asks them for
//! their counters and latency over their standard input and output ([`worker`]). It sleeps
//! in between, so the two workers have the machine to themselves.
//!
//! # Latency across processes
//!
//! The source worker stamps a sample of its tuples and the sink worker records the time since
//! the stamp. Each process's stamp clock counts from its own epoch, so this process hands both
//! workers the wall-clock time of its epoch and they start their clocks there
//! ([`squall::builtin::clock::start_clock_at`]): their stamps then compare to within tens of
//! nanoseconds.
//!
//! # Figures
//!
//! Tuples/s are counted at the sink over the timed window, and timed by the sink worker's
//! clock. Bytes/s are tuples/s times [`RECORD_BYTES`]: the encoded tuples, without the
//! transport's framing (each record also carries an 8-byte header and padding to 8 bytes in
//! a BATCH frame, [`WIRE_BYTES_PER_TUPLE`] in all). After the window the sources stop, and
//! the run fails unless every tuple the sources emitted reaches the sink.
//!
//! # Word counts over workers
//!
//! `wordcount --workers N` (and `wordcount-str`) deals the spouts and the count bolts out over
//! N workers in turn ([`Placement::DealtOut`]), at least one of each per worker, linked by
//! `--transport`. Fields grouping sends each word to the one count task that owns it, in the
//! same worker or across the link. Tuples/s are counted at all the count tasks together over
//! the window, and latency merges the histograms of all the workers. After the window every
//! worker's spouts stop, every emitted word must reach a counter, and once the workers have
//! stopped their counts are checked together, exactly, against what all their spouts emitted
//! ([`word_counts`]).

mod placement;
mod process;
mod raw_tcp;
pub mod stage_timeline;
mod tls;
pub mod word_counts;
pub mod worker;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use squall::builtin::clock;
use squall::builtin::counts::CountCheck;
use squall::builtin::latency::MAX_TRACKED_NANOS;
use squall::builtin::topologies::BuiltinOptions;
use squall::cluster::{TopologyDescription, WorkerPlan, WorkerSlot};
use squall::metrics::LatencySummary;

use crate::args::RateSpec;
use crate::cli::BenchCli;
use crate::progress::{ProgressLine, measurement_text};
use crate::report::{CountsVerified, LatencyNanos, NetworkFigures, ScenarioReport};
use crate::scenario::{Scenario, WorkerLink};

pub use placement::Placement;
use process::{Request, WorkerProcess};
use word_counts::WorkerWordCounts;
pub use worker::{is_worker_mode, worker_main};

/// Encoded bytes of every tuple record of the network scenarios: the 16-byte record header,
/// a bytes field of 70 bytes (75 encoded) and a `u64` stamp (9 encoded).
pub const RECORD_BYTES: usize = 100;

/// Bytes each tuple takes in a BATCH frame: an 8-byte record header (destination task and
/// length) and the record padded to a multiple of 8 (`docs/wire-protocol.md`).
pub const WIRE_BYTES_PER_TUPLE: usize = 8 + RECORD_BYTES.next_multiple_of(8);

/// How long the workers may take to connect and deliver a first tuple.
const FIRST_TUPLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest wait, after the sources stop, for every emitted tuple to reach the sink.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the live progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Length of the unthrottled run that finds the maximum rate for `--rate N%`.
const PROBE_WINDOW: Duration = Duration::from_secs(2);

/// The scenarios to run: `scenarios`, with the raw TCP reference moved (or added) just
/// before the first scenario between workers, so every run that measures the transports also
/// measures what loopback TCP itself does, and relates the transports to it.
pub fn with_reference(scenarios: Vec<Scenario>) -> Vec<Scenario> {
    let Some(first) = scenarios.iter().position(|s| s.worker_link().is_some()) else {
        return scenarios;
    };
    let mut ordered: Vec<Scenario> = scenarios[..first]
        .iter()
        .copied()
        .filter(|&s| s != Scenario::TcpRaw)
        .collect();
    ordered.push(Scenario::TcpRaw);
    ordered.extend(
        scenarios[first..]
            .iter()
            .filter(|&&s| s != Scenario::TcpRaw),
    );
    ordered
}

/// Relates the reports of one run: remembers the raw TCP reference's byte rate in `raw` and
/// gives every later report between workers its ratio to it.
pub fn relate_to_reference(report: &mut ScenarioReport, raw: &mut Option<f64>) {
    let Some(network) = report.network.as_mut() else {
        return;
    };
    if report.scenario == Scenario::TcpRaw.name() {
        *raw = Some(network.bytes_per_sec);
    } else if let Some(raw) = *raw {
        network.raw_tcp_bytes_per_sec = Some(raw);
        network.raw_tcp_ratio = Some(network.bytes_per_sec / raw.max(1e-9));
    }
}

/// The topology options of a run between workers for a command line and a rate: those of the
/// in-process scenarios. Each worker pins its executors only if it has more cores than
/// threads; workers of one host do not know of each other and would pin theirs to the same
/// cores, so runs between workers leave placement to the scheduler.
fn topology_options(cli: &BenchCli, rate: Option<u64>) -> BuiltinOptions {
    let mut options = super::options(cli, rate);
    options.config.pinning = squall::Pinning::Never;
    options
}

/// Runs the raw TCP reference, `tcp-raw`.
///
/// # Errors
/// When the loopback connection fails.
pub fn run_raw_tcp(cli: &BenchCli, scenario: Scenario) -> anyhow::Result<ScenarioReport> {
    let mut progress = super::progress_line(cli);
    raw_tcp::run(cli, scenario, &mut progress)
}

/// How one run spreads its topology over worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    scenario: Scenario,
    link: WorkerLink,
    placement: Placement,
}

/// Runs `scenario` in worker processes linked by `link`, its executors placed by
/// `placement`, as the command line says.
///
/// # Errors
/// When the workers fail, lose tuples, or count words wrong.
pub fn run(
    cli: &BenchCli,
    scenario: Scenario,
    link: WorkerLink,
    placement: Placement,
) -> anyhow::Result<ScenarioReport> {
    let cli = &placement.shape(cli);
    if cli.tls && link != WorkerLink::Mio {
        bail!(
            "--tls links workers over TCP with the mio driver; {} links cannot run it",
            link.name()
        );
    }
    let link_name = if cli.tls {
        format!("{}+tls", link.name())
    } else {
        link.name().to_owned()
    };
    let layout = Layout {
        scenario,
        link,
        placement,
    };
    let mut progress = super::progress_line(cli);
    let warmup = cli.warmup.get();
    let rate = match cli.rate {
        None => None,
        Some(RateSpec::PerSecond(rate)) => Some(rate),
        Some(RateSpec::FractionOfMax(fraction)) => {
            let label = format!("{scenario} (finding the maximum rate)");
            let probe = run_workers(cli, layout, None, &label, PROBE_WINDOW, &mut progress)?;
            Some(((probe.rate() * fraction) as u64).max(1))
        }
    };
    let mut measured = run_workers(
        cli,
        layout,
        rate,
        scenario.name(),
        cli.duration.get(),
        &mut progress,
    )?;
    let stage_timeline = measured.stage_timeline.take();
    let network = (placement == Placement::SourcesApartFromBolts).then(|| NetworkFigures {
        link: link_name.clone(),
        record_bytes: RECORD_BYTES as u64,
        wire_bytes_per_tuple: WIRE_BYTES_PER_TUPLE as u64,
        bytes_per_sec: measured.rate() * RECORD_BYTES as f64,
        raw_tcp_bytes_per_sec: None,
        raw_tcp_ratio: None,
        emitted: Some(measured.emitted),
        stage_timeline,
    });
    Ok(ScenarioReport {
        scenario: scenario.name().to_owned(),
        tuples_per_sec: measured.rate(),
        latency_ns: measured.latency,
        complete_latency_ns: None,
        acking: false,
        failed: measured.failed,
        executors: measured.executors,
        pinned: false,
        tuples: measured.tuples,
        duration_secs: measured.seconds,
        warmup_secs: warmup.as_secs_f64(),
        target_rate: rate,
        latency_sample_every: cli.sample_every,
        counts: measured.counts.map(|check| CountsVerified {
            total: check.total,
            distinct_words: check.distinct_words,
        }),
        network,
        workers: Some(placement.workers()),
        transport: Some(link_name),
        drpc: None,
        postgres: None,
        interference: None,
        plots: crate::report::Plots::default(),
    })
}

/// The report of `scenario` with its network figures and the tuples counted over a window
/// of `seconds`; no latency, no failures, two executors, no target rate.
fn report(
    scenario: Scenario,
    figures: NetworkFigures,
    tuples: u64,
    seconds: f64,
    warmup: Duration,
) -> ScenarioReport {
    ScenarioReport {
        scenario: scenario.name().to_owned(),
        tuples_per_sec: tuples as f64 / seconds.max(1e-9),
        latency_ns: LatencyNanos::default(),
        complete_latency_ns: None,
        acking: false,
        failed: 0,
        executors: 2,
        pinned: false,
        tuples,
        duration_secs: seconds,
        warmup_secs: warmup.as_secs_f64(),
        target_rate: None,
        latency_sample_every: 0,
        counts: None,
        network: Some(figures),
        workers: None,
        transport: None,
        drpc: None,
        postgres: None,
        interference: None,
        plots: crate::report::Plots::default(),
    }
}

/// What one run between workers measured.
#[derive(Debug)]
struct Measured {
    tuples: u64,
    seconds: f64,
    latency: LatencyNanos,
    emitted: u64,
    failed: u64,
    executors: usize,
    counts: Option<CountCheck>,
    stage_timeline: Option<stage_timeline::StageTimeline>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.tuples as f64 / self.seconds.max(1e-9)
    }
}

/// The `squall-bench` arguments that shape the topology, for the workers' plans.
fn topology_args(cli: &BenchCli, scenario: Scenario, rate: Option<u64>) -> Vec<String> {
    let threads = match cli.threads.0 {
        squall::Chaining::Auto => "auto".to_owned(),
        squall::Chaining::Never => "never".to_owned(),
        squall::Chaining::Threads(threads) => threads.to_string(),
        squall::Chaining::Lanes(lanes) => format!("lanes:{lanes}"),
    };
    let mut args = vec![
        scenario.name().to_owned(),
        "--spouts".to_owned(),
        cli.spouts.to_string(),
        "--sinks".to_owned(),
        cli.sinks.to_string(),
        "--sample-every".to_owned(),
        cli.sample_every.to_string(),
        "--wait".to_owned(),
        cli.wait.name().to_owned(),
        "--threads".to_owned(),
        threads,
    ];
    if let Some(rate) = rate {
        args.extend(["--rate".to_owned(), rate.to_string()]);
    }
    args
}

/// A port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The plan of every worker of `layout`, in worker order.
fn plans(
    description: &TopologyDescription,
    layout: Layout,
    args: Vec<String>,
    dir: &Path,
) -> anyhow::Result<Vec<WorkerPlan>> {
    let mut slots = Vec::new();
    for (index, executors) in layout
        .placement
        .executors(description)
        .into_iter()
        .enumerate()
    {
        let port = free_port()?;
        slots.push(WorkerSlot {
            id: format!("bench-{index}:{port}"),
            host: "127.0.0.1".to_owned(),
            port,
            executors,
        });
    }
    let plan = |this_worker| WorkerPlan {
        topology_id: format!("{}-{}", layout.scenario.name(), std::process::id()),
        topology: description.name.clone(),
        cluster_id: "squall-bench".to_owned(),
        version: 1,
        workers: slots.clone(),
        this_worker,
        parallelism: Default::default(),
        artifact_dir: dir.to_owned(),
        transport: layout.link.driver().to_owned(),
        args: args.clone(),
        active: true,
    };
    Ok((0..slots.len()).map(plan).collect())
}

/// A directory removed with everything in it when dropped.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create(parent: &Path, scenario: Scenario) -> anyhow::Result<Self> {
        let path = parent.join(format!("squall-bench-{}-{scenario}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cluster secret for one run, never written to disk.
fn run_secret() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("squall-bench run {} {nanos}", std::process::id())
}

/// The figures of all the workers of a run at one moment, added up.
#[derive(Debug)]
struct Totals {
    /// When the last worker asked took its sample, on the shared stamp clock.
    at_nanos: u64,
    received: u64,
    emitted: u64,
    failed: u64,
    /// The latencies of all workers, merged (empty unless asked for).
    latencies: Histogram<u64>,
}

/// The worker processes of one run.
#[derive(Debug)]
struct Workers(Vec<WorkerProcess>);

impl Workers {
    /// Asks every worker `request` and adds up the answers.
    fn ask(&mut self, request: Request) -> anyhow::Result<Totals> {
        let mut totals = Totals {
            at_nanos: 0,
            received: 0,
            emitted: 0,
            failed: 0,
            latencies: Histogram::new_with_bounds(1, MAX_TRACKED_NANOS, 3)
                .context("a latency histogram")?,
        };
        for worker in &mut self.0 {
            let sample = worker.request(request)?;
            totals.at_nanos = sample.at_nanos;
            totals.received += sample.received;
            totals.emitted += sample.emitted;
            totals.failed += sample.failed;
            for &(nanos, count) in sample.recorded.iter().flatten() {
                totals
                    .latencies
                    .record_n(nanos.min(MAX_TRACKED_NANOS), count)
                    .with_context(|| {
                        format!("the {} worker's latency {nanos} ns", worker.name())
                    })?;
            }
        }
        Ok(totals)
    }

    /// The end of every worker's log, for error messages.
    fn log_tails(&self) -> String {
        let tails: Vec<String> = self.0.iter().map(WorkerProcess::log_tail).collect();
        tails.join("\n")
    }
}

/// Plans and starts the workers, waits for tuples to flow, warms up, measures over `window`,
/// stops the sources, checks that every tuple arrived, stops the workers, and checks the
/// word counts of all of them together.
fn run_workers(
    cli: &BenchCli,
    layout: Layout,
    rate: Option<u64>,
    label: &str,
    window: Duration,
    progress: &mut ProgressLine,
) -> anyhow::Result<Measured> {
    let scenario = layout.scenario;
    let built = super::build(scenario, &topology_options(cli, rate))?;
    let description = TopologyDescription::of(&built.topology);
    let dir = ScratchDir::create(&std::env::temp_dir(), scenario)?;
    let shm = match layout.link {
        WorkerLink::SharedMemory => Some(ScratchDir::create(Path::new("/dev/shm"), scenario)?),
        _ => None,
    };
    let plans = plans(
        &description,
        layout,
        topology_args(cli, scenario, rate),
        &dir.0,
    )?;
    let epoch = clock::epoch_wall_time()
        .duration_since(UNIX_EPOCH)
        .context("the wall clock is before 1970")?;
    let secret = squall::cluster::Secret::new(run_secret(), "the run's secret")
        .context("making the run's secret")?;
    let worker_env = if cli.tls {
        tls::throwaway_certificates(&dir.0)?
    } else {
        Vec::new()
    };
    let mut workers = Workers(Vec::new());
    for (index, plan) in plans.iter().enumerate() {
        let name = layout.placement.worker_name(index);
        let worker_dir = dir.0.join(&name);
        std::fs::create_dir_all(&worker_dir)?;
        let plan_path = worker_dir.join("plan.json");
        plan.write(&plan_path)
            .with_context(|| format!("writing {}", plan_path.display()))?;
        workers.0.push(WorkerProcess::start(
            name,
            &worker_dir,
            &plan_path,
            &secret.worker_key(&plan.topology_id),
            epoch,
            shm.as_ref().map(|shm| shm.0.as_path()),
            &worker_env,
        )?);
    }

    let first = Instant::now();
    while workers.ask(Request::Sample)?.received == 0 {
        if first.elapsed() > FIRST_TUPLE_TIMEOUT {
            bail!(
                "{label}: no tuple reached a sink within {FIRST_TUPLE_TIMEOUT:?}\n{}",
                workers.log_tails()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(cli.warmup.get());
    let start = workers.ask(Request::Reset)?;
    let started = Instant::now();
    let mut last = (start.at_nanos, start.received);
    while started.elapsed() < window {
        std::thread::sleep(PROGRESS_EVERY.min(window.saturating_sub(started.elapsed())));
        // The workers list their latencies (a walk of a histogram, on the cores their
        // executors need) only for a progress line that shows them.
        let shown = progress.wants_update();
        let now = workers.ask(if shown {
            Request::Latencies
        } else {
            Request::Sample
        })?;
        if shown {
            let recent = (now.received - last.1) as f64
                / (now.at_nanos.saturating_sub(last.0) as f64 * 1e-9).max(1e-9);
            progress.update(&measurement_text(
                label,
                started.elapsed().as_secs_f64(),
                recent,
                &LatencySummary::of(&now.latencies),
                now.received - start.received,
            ));
        }
        last = (now.at_nanos, now.received);
    }
    let end = workers.ask(Request::Latencies)?;
    progress.finish();

    workers.ask(Request::Stop)?;
    let emitted = drain(&mut workers, label)?;
    let failed = workers.ask(Request::Sample)?.failed;
    #[cfg(feature = "stage-trace")]
    let stage_timeline = Some(stage_timeline_of(&mut workers.0)?);
    #[cfg(not(feature = "stage-trace"))]
    let stage_timeline = None;
    // Every worker drains for a while when it stops; they stop together so that the waits
    // overlap.
    for worker in &mut workers.0 {
        worker.terminate()?;
    }
    for worker in &mut workers.0 {
        worker.wait_for_exit()?;
    }
    let counts = match &built.words {
        None => None,
        Some(probe) => {
            for worker in &workers.0 {
                WorkerWordCounts::read_from(worker.dir())
                    .with_context(|| {
                        format!("{label}: the {} worker's word counts", worker.name())
                    })?
                    .add_to(probe);
            }
            Some(
                probe
                    .verify()
                    .with_context(|| format!("{label}: word counts are wrong"))?,
            )
        }
    };
    Ok(Measured {
        tuples: end.received - start.received,
        seconds: end.at_nanos.saturating_sub(start.at_nanos) as f64 * 1e-9,
        latency: LatencySummary::of(&end.latencies).into(),
        emitted,
        failed,
        executors: description.executor_components.len(),
        counts,
        stage_timeline,
    })
}

/// Has every worker write out its stage stamps, and joins them.
#[cfg(feature = "stage-trace")]
fn stage_timeline_of(
    workers: &mut [WorkerProcess],
) -> anyhow::Result<stage_timeline::StageTimeline> {
    let mut stamps = stage_timeline::Stamps::default();
    for worker in workers {
        worker.request(Request::Trace)?;
        let path = worker.dir().join(worker::STAGE_TRACE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        stamps
            .add_lines(&text)
            .with_context(|| format!("in {}", path.display()))?;
    }
    Ok(stamps.timeline(squall::stage_trace::sample_every()))
}

/// Waits, once the sources were told to stop, until every tuple they emitted reached a sink;
/// returns how many they emitted.
fn drain(workers: &mut Workers, label: &str) -> anyhow::Result<u64> {
    let started = Instant::now();
    // A spout in the middle of a call when told to stop still emits; the figures settle when
    // the sources emitted nothing between two samples.
    let mut emitted_before = None;
    loop {
        let now = workers.ask(Request::Sample)?;
        let settled = emitted_before == Some(now.emitted);
        if settled && now.received == now.emitted {
            return Ok(now.emitted);
        }
        if settled && now.received > now.emitted {
            bail!(
                "{label}: the sinks counted {} tuples but the sources emitted {}",
                now.received,
                now.emitted
            );
        }
        if started.elapsed() > DRAIN_TIMEOUT {
            bail!(
                "{label}: {} of {} tuples still missing at the sinks {DRAIN_TIMEOUT:?} after \
                 the sources stopped\n{}",
                now.emitted.saturating_sub(now.received),
                now.emitted,
                workers.log_tails()
            );
        }
        emitted_before = Some(now.emitted);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_reference_comes_before_the_first_scenario_between_workers() {
        assert_eq!(
            with_reference(vec![
                Scenario::ConstNull,
                Scenario::NetShm,
                Scenario::NetMio
            ]),
            [
                Scenario::ConstNull,
                Scenario::TcpRaw,
                Scenario::NetShm,
                Scenario::NetMio
            ]
        );
        assert_eq!(
            with_reference(vec![Scenario::NetMio, Scenario::TcpRaw, Scenario::NetShm]),
            [Scenario::TcpRaw, Scenario::NetMio, Scenario::NetShm]
        );
        assert_eq!(
            with_reference(vec![
                Scenario::TcpRaw,
                Scenario::ConstNull,
                Scenario::NetUring
            ]),
            [Scenario::ConstNull, Scenario::TcpRaw, Scenario::NetUring]
        );
        assert_eq!(with_reference(vec![Scenario::TcpRaw]), [Scenario::TcpRaw]);
        assert_eq!(
            with_reference(vec![Scenario::Wordcount]),
            [Scenario::Wordcount]
        );
    }

    #[test]
    fn records_are_a_hundred_bytes() {
        assert_eq!(
            squall::builtin::components::PayloadSpout::record_len(70),
            RECORD_BYTES
        );
        assert_eq!(WIRE_BYTES_PER_TUPLE, 112);
    }

    #[test]
    fn workers_rebuild_the_topology_from_their_plan() {
        let cli = BenchCli::try_parse_from([
            "squall-bench",
            "net-mio",
            "--spouts",
            "2",
            "--sinks",
            "3",
            "--wait",
            "busy-spin",
            "--threads",
            "never",
            "--sample-every",
            "8",
        ])
        .expect("parses");
        let args = topology_args(&cli, Scenario::NetMio, Some(1_000));
        let again =
            BenchCli::try_parse_from(std::iter::once("squall-bench".to_owned()).chain(args))
                .expect("the workers parse the plan's arguments");
        assert_eq!(again.scenarios, [Scenario::NetMio]);
        assert_eq!((again.spouts, again.sinks, again.sample_every), (2, 3, 8));
        assert_eq!(again.wait, cli.wait);
        assert_eq!(again.threads, cli.threads);
        assert_eq!(again.rate, Some(RateSpec::PerSecond(1_000)));

        let built = super::super::build(Scenario::NetMio, &topology_options(&again, Some(1_000)))
            .expect("builds");
        let description = TopologyDescription::of(&built.topology);
        let dir = std::env::temp_dir();
        let layout = Layout {
            scenario: Scenario::NetMio,
            link: WorkerLink::Mio,
            placement: Placement::SourcesApartFromBolts,
        };
        let [source, sink] =
            <[WorkerPlan; 2]>::try_from(plans(&description, layout, vec![], &dir).expect("plans"))
                .expect("two workers");
        assert_eq!(source.workers, sink.workers);
        assert_eq!((source.this_worker, sink.this_worker), (0, 1));
        let kinds = |worker: &WorkerSlot| -> Vec<&str> {
            worker
                .executors
                .iter()
                .map(|&executor| {
                    let component = description.executor_components[executor];
                    description.components[component].kind.as_str()
                })
                .collect()
        };
        assert_eq!(kinds(&source.workers[0]), ["spout", "spout"]);
        assert_eq!(kinds(&source.workers[1]), ["bolt", "bolt", "bolt"]);
        assert!(source.check_against(&built.topology).is_ok());
    }

    #[test]
    fn a_word_count_over_workers_gives_each_worker_a_spout_and_a_counter() {
        let cli = BenchCli::try_parse_from(["squall-bench", "wordcount", "--workers", "2"])
            .expect("parses");
        let placement = Placement::DealtOut(2);
        let shaped = placement.shape(&cli);
        let args = topology_args(&shaped, Scenario::Wordcount, None);
        let again =
            BenchCli::try_parse_from(std::iter::once("squall-bench".to_owned()).chain(args))
                .expect("the workers parse the plan's arguments");
        assert_eq!((again.spouts, again.sinks), (2, 2));
        let built = super::super::build(Scenario::Wordcount, &topology_options(&again, None))
            .expect("builds");
        let description = TopologyDescription::of(&built.topology);
        let layout = Layout {
            scenario: Scenario::Wordcount,
            link: WorkerLink::SharedMemory,
            placement,
        };
        let plans = plans(&description, layout, vec![], &std::env::temp_dir()).expect("plans");
        assert_eq!(plans.len(), 2);
        for (index, plan) in plans.iter().enumerate() {
            assert_eq!(plan.this_worker, index);
            assert_eq!(
                plan.transport, "mio",
                "shared memory is set up by the mio loop"
            );
            let mut components: Vec<&str> = plan.workers[index]
                .executors
                .iter()
                .map(|&executor| {
                    let component = description.executor_components[executor];
                    description.components[component].id.as_str()
                })
                .collect();
            components.sort_unstable();
            assert_eq!(components, ["count", "words"]);
            assert!(plan.check_against(&built.topology).is_ok());
        }
    }

    #[test]
    fn later_reports_are_related_to_the_reference() {
        let report = |scenario: Scenario, bytes_per_sec: f64| {
            let figures = NetworkFigures {
                link: "mio".to_owned(),
                record_bytes: RECORD_BYTES as u64,
                wire_bytes_per_tuple: WIRE_BYTES_PER_TUPLE as u64,
                bytes_per_sec,
                raw_tcp_bytes_per_sec: None,
                raw_tcp_ratio: None,
                emitted: None,
                stage_timeline: None,
            };
            let tuples = bytes_per_sec as u64 / RECORD_BYTES as u64;
            report(scenario, figures, tuples, 1.0, Duration::ZERO)
        };
        let mut raw = None;
        let mut before = report(Scenario::NetMio, 1e9);
        relate_to_reference(&mut before, &mut raw);
        assert_eq!(before.network.as_ref().and_then(|n| n.raw_tcp_ratio), None);
        relate_to_reference(&mut report(Scenario::TcpRaw, 4e9), &mut raw);
        assert_eq!(raw, Some(4e9));
        let mut after = report(Scenario::NetMio, 1e9);
        relate_to_reference(&mut after, &mut raw);
        let network = after.network.expect("network figures");
        assert_eq!(network.raw_tcp_ratio, Some(0.25));
        assert_eq!(network.raw_tcp_bytes_per_sec, Some(4e9));
    }
}
