//! The `main` of a topology program: one binary that runs its topology locally, describes it
//! to the control plane, or runs as one of its workers on a cluster.
//!
//! ```no_run
//! use std::sync::Arc;
//! use squall_core::{Topology, TopologyBuilder, TopologyConfig};
//!
//! fn build(args: &[String]) -> Result<Arc<Topology>, squall_core::ComponentError> {
//!     let mut builder = TopologyBuilder::new();
//!     // ... spouts and bolts, possibly shaped by `args` ...
//!     Ok(builder.build("my-topology", TopologyConfig::default())?)
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     squall_cluster::app::main(build)
//! }
//! ```
//!
//! The program then understands:
//!
//! - `local [--duration SECS] [-- ARGS]`: runs the topology in this process, printing a line of
//!   figures every second, until the duration passes or it is interrupted;
//! - `describe [-- ARGS]`: prints the topology's [`TopologyDescription`] as JSON (what
//!   `squall submit` sends to nimbus);
//! - `worker --plan FILE`: runs as the worker the plan file describes, with its topology's
//!   worker key in `SQUALL_WORKER_KEY` (see [`crate::worker_key`]): it writes heartbeats, follows
//!   the plan file as it changes, and stops cleanly on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, Subcommand};
use squall_net::ClusterSecret;

use crate::observe::advertised;
use crate::observe::exposition::{CONTENT_TYPE, Exposition};
use crate::observe::http::{Handler, HttpReply, HttpServer};
use crate::observe::worker_series::{WorkerLabels, write_worker};
use crate::worker_key::WorkerKey;
use crate::worker_stop::WORKER_STOP_DRAIN;
use crate::{TopologyDescription, WorkerHeartbeat, WorkerPlan};
use squall_core::component::ComponentError;
use squall_core::topology::Topology;
use squall_core::worker::{PlanChange, Worker, WorkerOptions};

/// Environment variable holding the `ip:port` a worker serves its `/metrics` on (set by
/// its supervisor from `supervisor.worker_metrics_bind`; unset or empty: not served).
pub const WORKER_METRICS_ENV: &str = "SQUALL_WORKER_METRICS_BIND";

/// How long a local run lets in-flight tuples drain when it stops.
const LOCAL_STOP_DRAIN: Duration = Duration::from_secs(5);

/// How often a worker looks at its plan file.
const PLAN_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Parser)]
#[command(about = "A Squall topology program")]
struct AppCli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run the topology in this process.
    Local {
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        duration: Option<f64>,
        /// Arguments for the topology.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Print the topology's description as JSON.
    Describe {
        /// Arguments for the topology.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run as a worker of a cluster.
    Worker {
        /// The worker plan file.
        #[arg(long)]
        plan: PathBuf,
    },
}

/// Runs a topology program: see the [module docs](self). `build` makes the topology from the
/// program's topology arguments.
pub fn main<F>(build: F) -> ExitCode
where
    F: Fn(&[String]) -> Result<Arc<Topology>, ComponentError>,
{
    init_logging();
    let cli = AppCli::parse();
    let result = match cli.mode {
        Mode::Local { duration, args } => {
            run_local(&build, &args, duration.map(Duration::from_secs_f64))
        }
        Mode::Describe { args } => describe(&build, &args),
        Mode::Worker { plan } => run_worker(&build, &plan),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = std::env::var("SQUALL_LOG").unwrap_or_else(|_| "info".to_owned());
    let format = crate::logging::LogFormat::from_env().unwrap_or_else(|error| {
        eprintln!(
            "{}: {error}; logging as text",
            crate::logging::LOG_FORMAT_ENV
        );
        crate::logging::LogFormat::Text
    });
    if let Err(error) = crate::logging::init(&filter, format) {
        eprintln!("SQUALL_LOG: {error}");
    }
}

fn describe<F>(build: &F, args: &[String]) -> Result<(), ComponentError>
where
    F: Fn(&[String]) -> Result<Arc<Topology>, ComponentError>,
{
    let topology = build(args)?;
    let description = TopologyDescription::of(&topology);
    println!("{}", serde_json::to_string_pretty(&description)?);
    Ok(())
}

/// Registers SIGTERM and SIGINT; the flag turns true when one arrives.
fn stop_flag() -> Result<Arc<AtomicBool>, ComponentError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

fn run_local<F>(
    build: &F,
    args: &[String],
    duration: Option<Duration>,
) -> Result<(), ComponentError>
where
    F: Fn(&[String]) -> Result<Arc<Topology>, ComponentError>,
{
    let topology = build(args)?;
    let stop = stop_flag()?;
    let running = squall_core::run(topology)?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    while !stop.load(Ordering::Relaxed)
        && duration.is_none_or(|duration| started.elapsed() < duration)
        && !running.has_stopped()
    {
        std::thread::sleep(Duration::from_millis(50));
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let metrics = running.metrics();
            let line: Vec<String> = metrics
                .components
                .iter()
                .map(|component| {
                    format!(
                        "{}: {} emitted, {} executed, {} acked, {} failed",
                        component.component,
                        component.counters.emitted,
                        component.counters.executed,
                        component.counters.acked,
                        component.counters.failed
                    )
                })
                .collect();
            println!(
                "{:>6.1}s  {}",
                started.elapsed().as_secs_f64(),
                line.join(" | ")
            );
        }
    }
    let stopped_by = running.stopped_by();
    let report = running.kill(LOCAL_STOP_DRAIN);
    println!(
        "stopped after {:.1}s; {} in flight drained; {} task errors",
        started.elapsed().as_secs_f64(),
        if report.drained {
            "everything"
        } else {
            "not everything"
        },
        report.errors.len()
    );
    match stopped_by {
        Some(error) => Err(error.to_string().into()),
        None => Ok(()),
    }
}

/// The key of the worker's data plane, from the environment.
fn transport_secret_from_env() -> Result<ClusterSecret, ComponentError> {
    Ok(WorkerKey::from_env()?.transport_secret())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// The worker's latest heartbeat, with its labels, for its `/metrics`.
type LatestBeat = Arc<Mutex<Option<(WorkerLabels, WorkerHeartbeat)>>>;

/// Serves the worker's `/metrics` on the address its supervisor gave it, if any.
fn start_worker_metrics(
    plan: &WorkerPlan,
    latest: &LatestBeat,
) -> Result<Option<HttpServer>, ComponentError> {
    let bind = std::env::var(WORKER_METRICS_ENV).unwrap_or_default();
    if bind.is_empty() {
        return Ok(None);
    }
    let latest = Arc::clone(latest);
    let handler: Handler = Arc::new(move |request| {
        if request.path != "/metrics" {
            return HttpReply::error(404, &format!("no such resource: {}", request.path));
        }
        let mut page = Exposition::new();
        if let Some((labels, beat)) = &*latest.lock().unwrap_or_else(PoisonError::into_inner) {
            write_worker(&mut page, labels, beat);
        }
        HttpReply::ok(CONTENT_TYPE, page.finish())
    });
    let server = HttpServer::start(&bind, "squall-worker-metrics", handler)
        .map_err(|error| format!("{WORKER_METRICS_ENV}: {error}"))?;
    tracing::info!(
        metrics = %server.local_addr(),
        slot = %plan.this_slot().id,
        "worker serving /metrics"
    );
    Ok(Some(server))
}

fn run_worker<F>(build: &F, plan_path: &Path) -> Result<(), ComponentError>
where
    F: Fn(&[String]) -> Result<Arc<Topology>, ComponentError>,
{
    let stop = stop_flag()?;
    let secret = transport_secret_from_env()?;
    let options = WorkerOptions {
        secret,
        shared_memory_dir: std::env::var_os("SQUALL_SHM_DIR").map(PathBuf::from),
        driver: None,
        in_process: None,
        tls: crate::tls::worker_link_tls_from_env()?,
    };
    let heartbeat_dir = std::env::current_dir()?;
    let mut plan_seen = modified(plan_path);
    let plan = WorkerPlan::read(plan_path)?;
    let topology = build(&plan.args)?;
    let mut worker = Worker::start(Arc::clone(&topology), plan, options.clone())?;
    let latest: LatestBeat = Arc::new(Mutex::new(None));
    let metrics_server = start_worker_metrics(worker.plan(), &latest)?;
    let metrics_endpoint = metrics_server
        .as_ref()
        .map(|server| advertised(server.local_addr(), &worker.plan().this_slot().host));
    let mut last_heartbeat = Instant::now() - Duration::from_secs(3600);
    let heartbeat_every = Duration::from_millis(WorkerHeartbeat::INTERVAL_MS);
    let mut last_poll = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            tracing::info!("stopping on request");
            let report = worker.shutdown(WORKER_STOP_DRAIN);
            tracing::info!(
                drained = report.drained,
                took_ms = report.took.as_millis() as u64,
                "worker stopped"
            );
            return Ok(());
        }
        if let Some(failure) = worker.running().stopped_by() {
            worker.shutdown(Duration::ZERO);
            return Err(format!("the topology stopped: {failure}").into());
        }
        // Checked before every heartbeat: a worker whose transport died must not tell its
        // supervisor it is well.
        if let Some(failure) = worker.transport_failed() {
            worker.shutdown(Duration::ZERO);
            return Err(format!("the transport stopped: {failure}").into());
        }
        if last_heartbeat.elapsed() >= heartbeat_every {
            last_heartbeat = Instant::now();
            let beat = worker.heartbeat(metrics_endpoint.clone());
            if let Err(error) = beat.write_into(&heartbeat_dir) {
                tracing::warn!("cannot write the heartbeat: {error}");
            }
            let plan = worker.plan();
            let labels = WorkerLabels {
                topology: plan.topology.clone(),
                topology_id: plan.topology_id.clone(),
                host: plan.this_slot().host.clone(),
                port: plan.this_slot().port,
            };
            *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some((labels, beat));
        }
        if last_poll.elapsed() >= PLAN_POLL {
            last_poll = Instant::now();
            let now_modified = modified(plan_path);
            if now_modified != plan_seen {
                plan_seen = now_modified;
                match WorkerPlan::read(plan_path) {
                    Err(error) => tracing::warn!("ignoring the new plan: {error}"),
                    Ok(plan) => match worker.follow(plan.clone())? {
                        PlanChange::Reassigned => {
                            tracing::info!(
                                version = plan.version,
                                "executors moved: restarting the worker with the new plan"
                            );
                            worker.shutdown(Duration::from_millis(500));
                            worker = Worker::start(Arc::clone(&topology), plan, options.clone())?;
                        }
                        PlanChange::PeersMoved => {
                            tracing::info!("following peers to their new addresses")
                        }
                        PlanChange::None => {}
                    },
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
