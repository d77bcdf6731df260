//! The `drpc` scenario of `squall-bench`: the identity function served by a topology in
//! this process, called through an in-process DRPC server over loopback TCP.
//!
//! Four phases, each a warm-up and a timed window: one client calling in a loop, 64
//! clients calling in a loop (requests/s and latency of each), 64 calls kept in flight on
//! one connection of the asynchronous client, then 64 clients sending at a fixed total rate
//! (`--rate`, default half the 64-client rate), latency counted from each request's
//! intended send time so stalls are not hidden.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use squall::cluster::Secret;
use squall::cluster::drpc::{DrpcServer, DrpcServerConfig};
use squall::drpc::{
    AsyncDrpcClient, DrpcClient, DrpcServers, DrpcSpout, ReturnResultsBolt, SpoutShape,
};
use squall::{Bolt, BoltOutput, OutputDeclarer, TopologyBuilder, TopologyConfig, Tuple};

use crate::args::RateSpec;
use crate::cli::BenchCli;
use crate::progress::ProgressLine;
use crate::report::{LatencyNanos, ScenarioReport};
use crate::scenario::Scenario;

/// Clients of the concurrent and paced phases.
pub const CONCURRENT_CLIENTS: usize = 64;

/// A secret for the in-process server and topology only.
const BENCH_SECRET: &str = "squall-bench in-process DRPC secret";

/// One phase's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DrpcPhase {
    /// Concurrent clients.
    pub clients: usize,
    /// Answered requests per second over the timed window.
    pub requests_per_sec: f64,
    /// Call latency over the timed window.
    pub latency_ns: LatencyNanos,
    /// Calls that ended with an error.
    pub errors: u64,
}

/// The figures of the `drpc` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DrpcFigures {
    /// One client calling in a loop.
    pub single_client: DrpcPhase,
    /// [`CONCURRENT_CLIENTS`] clients calling in a loop.
    pub concurrent: DrpcPhase,
    /// [`CONCURRENT_CLIENTS`] calls kept in flight on one connection of the asynchronous
    /// client (absent from reports written before it was measured).
    #[serde(default)]
    pub pipelined: Option<DrpcPhase>,
    /// The same clients at a fixed total rate.
    pub paced: DrpcPhase,
    /// That rate, requests per second.
    pub paced_rate: u64,
}

impl DrpcFigures {
    /// The phases in one line: requests/s, p50 and p99 of each.
    pub fn summary(&self) -> String {
        let phase = |what: &str, phase: &DrpcPhase| {
            format!(
                "{what} {} p50 {} p99 {}",
                crate::format::rate(phase.requests_per_sec),
                crate::format::latency(phase.latency_ns.p50),
                crate::format::latency(phase.latency_ns.p99)
            )
        };
        let mut parts = vec![
            phase("1 client", &self.single_client),
            phase(
                &format!("{} clients", self.concurrent.clients),
                &self.concurrent,
            ),
        ];
        if let Some(pipelined) = &self.pipelined {
            parts.push(phase(&format!("async ×{}", pipelined.clients), pipelined));
        }
        parts.push(phase(
            &format!("at {}", crate::format::rate(self.paced_rate as f64)),
            &self.paced,
        ));
        let errors = self.single_client.errors
            + self.concurrent.errors
            + self.pipelined.map_or(0, |phase| phase.errors)
            + self.paced.errors;
        parts.push(format!("{errors} errors"));
        parts.join("; ")
    }
}

/// `[args, return-info]` → the same, anchored: the identity function.
struct Identity;

impl Bolt for Identity {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["result", "return-info"]);
    }
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if let (Ok(argument), Ok(info)) = (input.get_str(0), input.get_str(1)) {
            output.emit_anchored(input, &[argument.into(), info.into()]);
        }
        output.ack(input);
    }
}

fn identity_topology(servers: DrpcServers) -> anyhow::Result<Arc<squall::Topology>> {
    let mut builder = TopologyBuilder::new();
    let spout_servers = servers.clone();
    builder.set_spout(
        "requests",
        move || DrpcSpout::new("identity", spout_servers.clone(), SpoutShape::Plain),
        1,
    );
    builder
        .set_bolt("identity", || Identity, 1)
        .shuffle_grouping("requests");
    builder
        .set_bolt("return", move || ReturnResultsBolt::new(servers.clone()), 1)
        .shuffle_grouping("identity");
    Ok(builder.build("drpc-identity", TopologyConfig::default())?)
}

/// Call latencies from 1 ns to an hour, 3 significant digits.
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000_000, 3)?)
}

/// What one client thread measured in the timed window.
struct ClientRun {
    answered: u64,
    errors: u64,
    latency: Histogram<u64>,
}

/// Runs `clients` threads for `warmup` + `window`, each calling in a loop, or, with
/// `rate`, sending its share of `rate` requests per second on a fixed schedule.
fn phase(
    server: &str,
    secret: &Secret,
    clients: usize,
    rate: Option<u64>,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<DrpcPhase> {
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + window;
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|index| {
            let server = server.to_owned();
            let secret = secret.cluster_secret();
            let stop = stop.clone();
            let interval =
                rate.map(|rate| Duration::from_secs_f64(clients as f64 / rate.max(1) as f64));
            std::thread::spawn(move || -> anyhow::Result<ClientRun> {
                let mut client =
                    DrpcClient::connect(&server, &secret)?.with_timeout(Duration::from_secs(10));
                let mut run = ClientRun {
                    answered: 0,
                    errors: 0,
                    latency: latency_histogram()?,
                };
                let argument = format!("client {index}");
                // Paced clients start spread over one interval, not all at once.
                let mut intended = start
                    + interval.map_or(Duration::ZERO, |interval| {
                        interval.mul_f64(index as f64 / clients as f64)
                    });
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    if interval.is_some() {
                        if intended > now {
                            std::thread::sleep(intended - now);
                        }
                    } else {
                        intended = now;
                    }
                    let outcome = client.call("identity", &argument);
                    let done = Instant::now();
                    if intended >= measure_from && done <= end {
                        match outcome {
                            Ok(_) => {
                                run.answered += 1;
                                let nanos = (done - intended).as_nanos() as u64;
                                run.latency.saturating_record(nanos.max(1));
                            }
                            Err(_) => run.errors += 1,
                        }
                    }
                    if let Some(interval) = interval {
                        intended += interval;
                    }
                }
                Ok(run)
            })
        })
        .collect();
    let mut latency = latency_histogram()?;
    let (mut answered, mut errors) = (0, 0);
    for thread in threads {
        let run = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a DRPC client thread panicked"))??;
        answered += run.answered;
        errors += run.errors;
        latency.add(&run.latency)?;
    }
    stop.store(true, Ordering::Relaxed);
    Ok(DrpcPhase {
        clients,
        requests_per_sec: answered as f64 / window.as_secs_f64(),
        latency_ns: squall::metrics::LatencySummary::of(&latency).into(),
        errors,
    })
}

/// Keeps `in_flight` calls going on one connection of the asynchronous client for
/// `warmup` + `window`, each task calling again as soon as its answer comes.
fn pipelined_phase(
    server: &str,
    secret: &Secret,
    in_flight: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<DrpcPhase> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async client's runtime")?;
    let key = squall::drpc::DrpcKey::cluster(secret.cluster_secret());
    let client = Arc::new(
        AsyncDrpcClient::connect_blocking(server, &key)?.with_timeout(Duration::from_secs(10)),
    );
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let runs = runtime.block_on(async {
        let tasks: Vec<_> = (0..in_flight)
            .map(|index| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut run = ClientRun {
                        answered: 0,
                        errors: 0,
                        latency: latency_histogram()?,
                    };
                    let argument = format!("call {index}");
                    loop {
                        let sent = Instant::now();
                        if sent >= end {
                            break;
                        }
                        let outcome = client.call("identity", &argument).await;
                        let done = Instant::now();
                        if sent >= measure_from && done <= end {
                            match outcome {
                                Ok(_) => {
                                    run.answered += 1;
                                    let nanos = (done - sent).as_nanos() as u64;
                                    run.latency.saturating_record(nanos.max(1));
                                }
                                Err(_) => run.errors += 1,
                            }
                        }
                    }
                    anyhow::Ok(run)
                })
            })
            .collect();
        let mut runs = Vec::with_capacity(tasks.len());
        for task in tasks {
            runs.push(task.await.context("an async DRPC call task panicked")??);
        }
        anyhow::Ok(runs)
    })?;
    let mut latency = latency_histogram()?;
    let (mut answered, mut errors) = (0, 0);
    for run in runs {
        answered += run.answered;
        errors += run.errors;
        latency.add(&run.latency)?;
    }
    Ok(DrpcPhase {
        clients: in_flight,
        requests_per_sec: answered as f64 / window.as_secs_f64(),
        latency_ns: squall::metrics::LatencySummary::of(&latency).into(),
        errors,
    })
}

/// Runs the scenario as the command line says.
///
/// # Errors
/// When the server or topology cannot start, or a client cannot connect.
pub fn run(cli: &BenchCli, progress: &mut ProgressLine) -> anyhow::Result<ScenarioReport> {
    let secret = Secret::new(BENCH_SECRET, "squall-bench")?;
    let server = DrpcServer::start(DrpcServerConfig::local(), secret.clone())
        .context("starting the DRPC server")?;
    let address = server.address().to_string();
    let servers = DrpcServers::new(vec![address.clone()], secret.cluster_secret())
        .map_err(anyhow::Error::msg)?;
    let running = squall::run(identity_topology(servers)?)?;
    let (warmup, window) = (cli.warmup.get(), cli.duration.get());
    progress.update("drpc: one client");
    let single_client = phase(&address, &secret, 1, None, warmup, window)?;
    progress.update(&format!("drpc: {CONCURRENT_CLIENTS} clients"));
    let concurrent = phase(&address, &secret, CONCURRENT_CLIENTS, None, warmup, window)?;
    progress.update(&format!(
        "drpc: {CONCURRENT_CLIENTS} calls on one async connection"
    ));
    let pipelined = pipelined_phase(&address, &secret, CONCURRENT_CLIENTS, warmup, window)?;
    let paced_rate = match cli.rate {
        Some(RateSpec::PerSecond(rate)) => rate,
        Some(RateSpec::FractionOfMax(fraction)) => (concurrent.requests_per_sec * fraction) as u64,
        None => (concurrent.requests_per_sec / 2.0) as u64,
    }
    .max(1);
    progress.update(&format!("drpc: {paced_rate} requests/s"));
    let paced = phase(
        &address,
        &secret,
        CONCURRENT_CLIENTS,
        Some(paced_rate),
        warmup,
        window,
    )?;
    progress.finish();
    let metrics = running.metrics();
    let (threads, pinned) = (running.thread_count(), running.is_pinned());
    running.kill(Duration::from_secs(5));
    server.stop();
    let failed = metrics
        .component("requests")
        .map_or(0, |figures| figures.counters.failed);
    Ok(ScenarioReport {
        scenario: Scenario::Drpc.name().to_owned(),
        tuples_per_sec: concurrent.requests_per_sec,
        latency_ns: paced.latency_ns,
        complete_latency_ns: None,
        acking: true,
        failed,
        executors: threads,
        pinned,
        tuples: (concurrent.requests_per_sec * window.as_secs_f64()) as u64,
        duration_secs: window.as_secs_f64(),
        warmup_secs: warmup.as_secs_f64(),
        target_rate: Some(paced_rate),
        latency_sample_every: 1,
        counts: None,
        network: None,
        workers: None,
        transport: None,
        drpc: Some(DrpcFigures {
            single_client,
            concurrent,
            pipelined: Some(pipelined),
            paced,
            paced_rate,
        }),
        postgres: None,
        interference: None,
        plots: crate::report::Plots::default(),
    })
}
