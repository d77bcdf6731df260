//! The scenarios between two worker processes (`net-mio`, `net-uring`, `net-shm`) and the raw
//! loopback TCP reference they are compared with (`tcp-raw`).
//!
//! # Two worker processes
//!
//! A network scenario runs the payload topology (payload spout → null bolt, shuffle grouping)
//! with every record exactly [`RECORD_BYTES`] bytes long, in two worker processes on this
//! host: the spouts (and the acker, if any) in the *source* worker, the null bolts in the
//! *sink* worker, so every tuple crosses the transport the scenario names. Both workers are
//! this program started again as a topology program in worker mode, `squall-bench worker
//! --plan FILE`, with the cluster secret in `SQUALL_CLUSTER_SECRET`: exactly how a supervisor
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

mod raw_tcp;
pub mod stage_timeline;
pub mod worker;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use squall::builtin::clock;
use squall::builtin::topologies::BuiltinOptions;
use squall::cluster::plan::SECRET_ENV;
use squall::cluster::{TopologyDescription, WorkerPlan, WorkerSlot};

use crate::args::RateSpec;
use crate::cli::BenchCli;
use crate::format;
use crate::progress::ProgressLine;
use crate::report::{LatencyNanos, NetworkFigures, ScenarioReport};
use crate::scenario::{Scenario, WorkerLink};

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

/// Longest wait for a worker to exit after SIGTERM (it drains for up to 5 s first).
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the live progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Length of the unthrottled run that finds the maximum rate for `--rate N%`.
const PROBE_WINDOW: Duration = Duration::from_secs(2);

/// Whether `scenario` is run by this module.
pub fn handles(scenario: Scenario) -> bool {
    scenario == Scenario::TcpRaw || scenario.worker_link().is_some()
}

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

/// The topology options of a network scenario for a command line and a rate: those of the
/// in-process scenarios. Each worker pins its executors only if it has more cores than
/// threads; two workers of one host do not know of each other and would pin theirs to the
/// same cores, so the network scenarios leave placement to the scheduler.
fn topology_options(cli: &BenchCli, rate: Option<u64>) -> BuiltinOptions {
    let mut options = super::options(cli, rate);
    options.config.pinning = squall::Pinning::Never;
    options
}

/// Runs `scenario` as the command line says.
///
/// # Errors
/// When the workers fail, lose tuples, or the options do not apply.
pub fn run(cli: &BenchCli, scenario: Scenario) -> anyhow::Result<ScenarioReport> {
    let mut progress = super::progress_line(cli);
    let warmup = cli.warmup.get();
    let window = cli.duration.get();
    let Some(link) = scenario.worker_link() else {
        return raw_tcp::run(cli, scenario, &mut progress);
    };
    if cli.acking {
        bail!(
            "{scenario} does not take --acking: complete latency is measured where the spouts \
             run, and this scenario reports what reaches the sink"
        );
    }
    let rate = match cli.rate {
        None => None,
        Some(RateSpec::PerSecond(rate)) => Some(rate),
        Some(RateSpec::FractionOfMax(fraction)) => {
            let label = format!("{scenario} (finding the maximum rate)");
            let probe = run_workers(
                cli,
                scenario,
                link,
                None,
                &label,
                PROBE_WINDOW,
                &mut progress,
            )?;
            Some(((probe.rate() * fraction) as u64).max(1))
        }
    };
    let measured = run_workers(
        cli,
        scenario,
        link,
        rate,
        scenario.name(),
        window,
        &mut progress,
    )?;
    let figures = NetworkFigures {
        link: link.name().to_owned(),
        record_bytes: RECORD_BYTES as u64,
        wire_bytes_per_tuple: WIRE_BYTES_PER_TUPLE as u64,
        bytes_per_sec: measured.rate() * RECORD_BYTES as f64,
        raw_tcp_bytes_per_sec: None,
        raw_tcp_ratio: None,
        emitted: Some(measured.emitted),
        stage_timeline: measured.stage_timeline,
    };
    Ok(ScenarioReport {
        latency_ns: measured.latency,
        failed: measured.failed,
        executors: measured.executors,
        target_rate: rate,
        latency_sample_every: cli.sample_every,
        ..report(scenario, figures, measured.tuples, measured.seconds, warmup)
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
    }
}

/// What one run of two workers measured.
#[derive(Debug)]
struct Measured {
    tuples: u64,
    seconds: f64,
    latency: LatencyNanos,
    emitted: u64,
    failed: u64,
    executors: usize,
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

/// The plans of the source worker (index 0: spouts and ackers) and the sink worker (index 1:
/// the bolts).
fn plans(
    description: &TopologyDescription,
    scenario: Scenario,
    link: WorkerLink,
    args: Vec<String>,
    dir: &Path,
) -> anyhow::Result<[WorkerPlan; 2]> {
    let mut slots = Vec::new();
    for index in 0..2 {
        let port = free_port()?;
        slots.push(WorkerSlot {
            id: format!("bench-{index}:{port}"),
            host: "127.0.0.1".to_owned(),
            port,
            executors: Vec::new(),
        });
    }
    for (executor, &component) in description.executor_components.iter().enumerate() {
        let source = description.components[component].kind != "bolt";
        slots[usize::from(!source)].executors.push(executor);
    }
    let plan = |this_worker| WorkerPlan {
        topology_id: format!("{}-{}", scenario.name(), std::process::id()),
        topology: description.name.clone(),
        cluster_id: "squall-bench".to_owned(),
        version: 1,
        workers: slots.clone(),
        this_worker,
        parallelism: Default::default(),
        artifact_dir: dir.to_owned(),
        transport: link.driver().to_owned(),
        args: args.clone(),
        active: true,
    };
    Ok([plan(0), plan(1)])
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

/// Plans and starts the two workers, waits for tuples to flow, warms up, measures over
/// `window`, stops the sources, checks that every tuple arrived, and stops the workers.
fn run_workers(
    cli: &BenchCli,
    scenario: Scenario,
    link: WorkerLink,
    rate: Option<u64>,
    label: &str,
    window: Duration,
    progress: &mut ProgressLine,
) -> anyhow::Result<Measured> {
    let built = super::build(scenario, &topology_options(cli, rate))?;
    let description = TopologyDescription::of(&built.topology);
    let dir = ScratchDir::create(&std::env::temp_dir(), scenario)?;
    let shm = match link {
        WorkerLink::SharedMemory => Some(ScratchDir::create(Path::new("/dev/shm"), scenario)?),
        _ => None,
    };
    let plans = plans(
        &description,
        scenario,
        link,
        topology_args(cli, scenario, rate),
        &dir.0,
    )?;
    let epoch = clock::epoch_wall_time()
        .duration_since(UNIX_EPOCH)
        .context("the wall clock is before 1970")?;
    let secret = run_secret();
    let mut workers = Vec::new();
    for (plan, name) in plans.iter().zip(["source", "sink"]) {
        let worker_dir = dir.0.join(name);
        std::fs::create_dir_all(&worker_dir)?;
        let plan_path = worker_dir.join("plan.json");
        plan.write(&plan_path)
            .with_context(|| format!("writing {}", plan_path.display()))?;
        workers.push(WorkerProcess::start(
            name,
            &worker_dir,
            &plan_path,
            &secret,
            epoch,
            shm.as_ref().map(|shm| shm.0.as_path()),
        )?);
    }
    let [source, sink] = &mut workers[..] else {
        unreachable!("two workers");
    };

    let first = Instant::now();
    while sink.request(Request::Sample)?.received == 0 {
        if first.elapsed() > FIRST_TUPLE_TIMEOUT {
            bail!(
                "{label}: no tuple reached the sink worker within {FIRST_TUPLE_TIMEOUT:?}\n{}\n{}",
                source.log_tail(),
                sink.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(cli.warmup.get());
    let start = sink.request(Request::Reset)?;
    // The source worker's reset forgets the stage stamps of the warm-up too.
    #[cfg(feature = "stage-trace")]
    source.request(Request::Reset)?;
    let started = Instant::now();
    let mut last = start.clone();
    while started.elapsed() < window {
        std::thread::sleep(PROGRESS_EVERY.min(window.saturating_sub(started.elapsed())));
        let now = sink.request(Request::Sample)?;
        let recent = (now.received - last.received) as f64
            / (now.at_nanos.saturating_sub(last.at_nanos) as f64 * 1e-9).max(1e-9);
        progress.update(&format!(
            "{label}: {:>5.1}s  {:>11}  p50 {:>9}  p99 {:>9}  total {}",
            started.elapsed().as_secs_f64(),
            format::rate(recent),
            format::latency(now.latency.p50),
            format::latency(now.latency.p99),
            format::count(now.received - start.received),
        ));
        last = now;
    }
    let end = sink.request(Request::Sample)?;
    progress.finish();

    source.request(Request::Stop)?;
    let drain_started = Instant::now();
    let emitted = loop {
        let emitted = source.request(Request::Sample)?.emitted;
        let received = sink.request(Request::Sample)?.received;
        if received == emitted && source.request(Request::Sample)?.emitted == emitted {
            break emitted;
        }
        if received > emitted {
            bail!("{label}: the sink counted {received} tuples but the sources emitted {emitted}");
        }
        if drain_started.elapsed() > DRAIN_TIMEOUT {
            bail!(
                "{label}: {} of {emitted} tuples still missing at the sink {DRAIN_TIMEOUT:?} after \
                 the sources stopped\n{}\n{}",
                emitted - received,
                source.log_tail(),
                sink.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let failed = source.request(Request::Sample)?.failed;
    #[cfg(feature = "stage-trace")]
    let stage_timeline = Some(stage_timeline_of(&mut workers)?);
    #[cfg(not(feature = "stage-trace"))]
    let stage_timeline = None;
    for worker in &mut workers {
        worker.stop()?;
    }
    Ok(Measured {
        tuples: end.received - start.received,
        seconds: end.at_nanos.saturating_sub(start.at_nanos) as f64 * 1e-9,
        latency: end.latency,
        emitted,
        failed,
        executors: description.executor_components.len(),
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
        let path = worker.log.with_file_name(worker::STAGE_TRACE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        stamps
            .add_lines(&text)
            .with_context(|| format!("in {}", path.display()))?;
    }
    Ok(stamps.timeline(squall::stage_trace::sample_every()))
}

/// What the coordinator asks a worker; see [`worker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// The worker's counters and latency now.
    Sample,
    /// Forget the latency recorded so far, then sample.
    Reset,
    /// Stop the sources, then sample.
    Stop,
    /// Write the stage stamps taken since the last reset to [`worker::STAGE_TRACE_FILE`],
    /// then sample.
    #[cfg(feature = "stage-trace")]
    Trace,
}

impl Request {
    fn as_str(self) -> &'static str {
        match self {
            Request::Sample => "sample",
            Request::Reset => "reset",
            Request::Stop => "stop",
            #[cfg(feature = "stage-trace")]
            Request::Trace => "trace",
        }
    }
}

/// One worker process, killed if still running when dropped.
#[derive(Debug)]
struct WorkerProcess {
    name: &'static str,
    child: Child,
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
    log: PathBuf,
}

impl WorkerProcess {
    fn start(
        name: &'static str,
        dir: &Path,
        plan: &Path,
        secret: &str,
        epoch: Duration,
        shm: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let program = std::env::current_exe().context("finding this program to start workers")?;
        let log = dir.join("worker.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .arg("worker")
            .arg("--plan")
            .arg(plan)
            .current_dir(dir)
            .env(SECRET_ENV, secret)
            .env(worker::EPOCH_ENV, epoch.as_nanos().to_string())
            .env(
                "SQUALL_LOG",
                std::env::var("SQUALL_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        match shm {
            Some(shm) => command.env("SQUALL_SHM_DIR", shm),
            None => command.env_remove("SQUALL_SHM_DIR"),
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("starting the {name} worker"))?;
        let requests = child.stdin.take().expect("stdin is piped");
        let answers = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Self {
            name,
            child,
            requests,
            answers,
            log,
        })
    }

    /// Asks the worker `request` and reads its answer.
    fn request(&mut self, request: Request) -> anyhow::Result<worker::Sample> {
        let asked =
            writeln!(self.requests, "{}", request.as_str()).and_then(|()| self.requests.flush());
        let mut line = String::new();
        let read = asked.and_then(|()| self.answers.read_line(&mut line));
        match read {
            Ok(0) | Err(_) => {
                let status = self.exit_status();
                bail!(
                    "the {} worker stopped answering ({status})\n{}",
                    self.name,
                    self.log_tail()
                )
            }
            Ok(_) => serde_json::from_str(&line)
                .with_context(|| format!("the {} worker answered {line:?}", self.name)),
        }
    }

    fn exit_status(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".to_owned(),
            Err(error) => error.to_string(),
        }
    }

    /// The end of the worker's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!(
            "--- {} worker log ({}) ---\n{tail}",
            self.name,
            self.log.display()
        )
    }

    /// Stops the worker as a supervisor does (SIGTERM: it drains and closes its connections)
    /// and checks that it exited cleanly.
    fn stop(&mut self) -> anyhow::Result<()> {
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("running kill")?;
        if !signalled.success() {
            let status = self.exit_status();
            bail!("could not signal the {} worker ({status})", self.name);
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!(
                    "the {} worker exited with {status}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the {} worker did not stop within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
        let [source, sink] = plans(
            &description,
            Scenario::NetMio,
            WorkerLink::Mio,
            vec![],
            &dir,
        )
        .expect("plans");
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
