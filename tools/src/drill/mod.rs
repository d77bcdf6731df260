//! `squall drill`: a fault drill. It starts a complete cluster on this machine (or uses an
//! existing one), submits a tracked topology whose ledger records every message acked and
//! processed, injects faults one after another, measures how long each takes to recover
//! from against its bound, and reports what was acknowledged, lost and duplicated.

pub mod args;
pub mod faults;
pub mod ledger;
pub mod local_cluster;
pub mod netns;
pub mod probe;
pub mod report;
pub mod session;
pub mod tracked;
pub mod zookeeper;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use squall::cluster::{ClusterConfig, NimbusClient};

use crate::drill::args::{DrillArgs, Network, START_WORKERS};
use crate::drill::faults::result;
use crate::drill::ledger::LedgerCheck;
use crate::drill::local_cluster::{LocalCluster, Timings};
use crate::drill::report::{DrillReport, FaultResult, Setting};
use crate::drill::session::{Recovery, Session};

/// The tracked topology's name.
pub const TOPOLOGY: &str = "squall-drill";
/// The tracked topology program looked for next to the `squall` binary.
pub const TOPOLOGY_PROGRAM: &str = "squall-drill-topology";

/// Spout tasks of the tracked topology.
const SPOUTS: u64 = 2;
/// How long the topology may take from submission to processing on every worker.
const SUBMIT_BOUND: Duration = Duration::from_secs(30);
/// How long killing the topology may take until it is gone.
const KILL_BOUND: Duration = Duration::from_secs(15);

/// Runs the drill, prints its report and says whether it passed.
pub fn main(args: &DrillArgs) -> ExitCode {
    match run(args) {
        Ok(report) => {
            if args.json {
                println!("{}", report_json(&report));
            } else {
                for line in report.to_text() {
                    println!("{line}");
                }
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("squall drill: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The report as JSON, with the verdict.
pub fn report_json(report: &DrillReport) -> serde_json::Value {
    let mut json = serde_json::to_value(report).unwrap_or_default();
    json["passed"] = report.passed().into();
    json["failures"] = report.failures().into();
    json
}

/// Runs the drill.
///
/// # Errors
/// When the cluster cannot be started or reached, or the topology cannot be submitted.
pub fn run(args: &DrillArgs) -> anyhow::Result<DrillReport> {
    let squall = std::env::current_exe().context("cannot find the squall binary")?;
    let program = match &args.topology {
        Some(program) => program.clone(),
        None => squall.with_file_name(TOPOLOGY_PROGRAM),
    };
    if !program.is_file() {
        anyhow::bail!(
            "the tracked topology program {} is missing: build it (cargo build -p \
             squall-tools --bin {TOPOLOGY_PROGRAM}) or name it with --topology",
            program.display()
        );
    }
    let dir = drill_dir()?;
    let outcome = drill(args, &squall, &program, &dir);
    let keep = args.keep || !outcome.as_ref().is_ok_and(DrillReport::passed);
    if keep {
        eprintln!("squall drill: files kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut report = outcome?;
    report.kept_files = keep.then(|| dir.display().to_string());
    Ok(report)
}

/// A fresh directory for the drill's files.
fn drill_dir() -> anyhow::Result<PathBuf> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let dir = std::env::temp_dir().join(format!("squall-drill-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Whether the supervisors get network namespaces.
fn use_namespaces(network: Network) -> anyhow::Result<bool> {
    match network {
        Network::Loopback => Ok(false),
        Network::Auto => Ok(netns::available()),
        Network::Namespaces if netns::available() => Ok(true),
        Network::Namespaces => {
            anyhow::bail!("network namespaces are not available: run as root with `ip netns`")
        }
    }
}

fn drill(
    args: &DrillArgs,
    squall: &Path,
    program: &Path,
    dir: &Path,
) -> anyhow::Result<DrillReport> {
    let timings = Timings::default();
    let (setting, cluster_text, local, config) = match &args.against {
        Some(config_path) => {
            let config = ClusterConfig::load(Some(config_path))?;
            let text = format!(
                "existing cluster, ZooKeeper {}",
                config.zookeeper.servers.join(",")
            );
            (Setting::Existing, text, None, config)
        }
        None => {
            let namespaces = use_namespaces(args.network)?;
            let hosts = namespaces.then(|| netns::Hosts::create(3)).transpose()?;
            let local = LocalCluster::start(squall, dir, 2, 3, 2, timings, hosts)?;
            let config = ClusterConfig::load(Some(&local.client_config))?;
            let text = format!(
                "1 ZooKeeper, 2 nimbuses, 3 supervisors with 2 slots each; ZooKeeper session \
                 timeout {} s, supervisor worker timeout {} s",
                timings.session.as_secs(),
                timings.worker.as_secs()
            );
            let setting = if namespaces {
                Setting::Namespaces
            } else {
                Setting::Loopback
            };
            (setting, text, Some(local), config)
        }
    };
    let mut client_config = config;
    // A poll must not hang for the default minute while a fault is on.
    client_config.client.timeout_ms = 5_000;
    let client = NimbusClient::from_config(&client_config)?;
    let state_dir = args.state_dir.clone().unwrap_or_else(|| dir.join("ledger"));
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let mut session = Session {
        client,
        topology: TOPOLOGY.to_owned(),
        state_dir,
        local,
        workers: START_WORKERS,
        active: true,
    };
    if session.local.is_some() {
        await_cluster(&session, 3)?;
    }
    let topology_args = topology_args(args, &session.state_dir);
    let topology_text = format!(
        "{TOPOLOGY}: 2 spouts at {} messages/s each -> 2 relays -> 2 counters, {START_WORKERS} \
         workers, acking, message timeout {} s",
        args.rate,
        args.message_timeout().as_secs()
    );
    let mut faults = vec![submit(&session, program, &topology_args)?];
    if faults[0].recovery.is_some() {
        for fault in args.faults() {
            std::thread::sleep(args.settle());
            let outcome = faults::inject(&mut session, fault, args.zookeeper_outage.get())
                .with_context(|| format!("cannot inject {}", fault.name()))?;
            let recovered = outcome.recovery.is_some();
            faults.push(outcome);
            if !recovered {
                break;
            }
        }
    }
    std::thread::sleep(args.settle());
    let unacked = await_replays(&session, args.message_timeout());
    faults.push(kill(&session));
    let ledger = LedgerCheck::read(&session.state_dir).summary();
    Ok(DrillReport {
        setting,
        cluster: cluster_text,
        topology: topology_text,
        faults,
        ledger,
        unacked,
        kept_files: None,
    })
}

/// Waits until a nimbus leads and `supervisors` supervisors are registered.
fn await_cluster(session: &Session, supervisors: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::from("nothing answered");
    while Instant::now() < deadline {
        match session.client.list() {
            Ok((_, registered)) if registered.len() >= supervisors => return Ok(()),
            Ok((_, registered)) => {
                last = format!(
                    "{} of {supervisors} supervisors registered",
                    registered.len()
                );
            }
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("the cluster did not come up within 30 s: {last}")
}

/// The tracked topology's arguments.
fn topology_args(args: &DrillArgs, state_dir: &Path) -> Vec<String> {
    // Enough messages that the spouts never run dry within half an hour.
    let messages = (args.rate * SPOUTS * 1_800).min(10_000_000);
    [
        ("--name", TOPOLOGY.to_owned()),
        ("--messages", messages.to_string()),
        ("--state-dir", state_dir.display().to_string()),
        ("--spouts", SPOUTS.to_string()),
        ("--relays", "2".to_owned()),
        ("--counters", "2".to_owned()),
        ("--workers", START_WORKERS.to_string()),
        (
            "--timeout-ms",
            args.message_timeout().as_millis().to_string(),
        ),
        ("--pending", "200".to_owned()),
        ("--rate", args.rate.to_string()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [name.to_owned(), value])
    .collect()
}

/// Submits the tracked topology and waits until every worker heartbeats and it processes.
fn submit(session: &Session, program: &Path, args: &[String]) -> anyhow::Result<FaultResult> {
    let started = Instant::now();
    let submitted = session
        .client
        .submit_program(program, args)
        .with_context(|| format!("cannot submit {}", program.display()))?;
    let recovery = session.await_recovery(started, &session.healthy(), SUBMIT_BOUND);
    Ok(result(
        "submit",
        format!(
            "submit {} as {}; processing on {START_WORKERS} workers",
            program.display(),
            submitted.topology_id
        ),
        SUBMIT_BOUND,
        submitted.note,
        recovery,
    ))
}

/// Waits for the messages emitted so far but not acked to be acked through replays; returns
/// how many never were.
fn await_replays(session: &Session, message_timeout: Duration) -> u64 {
    let deadline = Instant::now() + message_timeout * 2 + Duration::from_secs(10);
    let waiting = LedgerCheck::read(&session.state_dir).unacked_below_frontier(SPOUTS);
    loop {
        let acked = LedgerCheck::read(&session.state_dir).acked;
        let missing = waiting.iter().filter(|id| !acked.contains(id)).count() as u64;
        if missing == 0 || Instant::now() >= deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Kills the topology and waits until it is gone (and, on a local cluster, its workers).
fn kill(session: &Session) -> FaultResult {
    let started = Instant::now();
    let action = format!("kill {TOPOLOGY} (no wait); gone from `list` and its workers stopped");
    if let Err(error) = session.client.kill(&session.topology, Some(0)) {
        let recovery = Recovery {
            time: None,
            problem: Some(format!("kill refused: {error}")),
        };
        return result("kill", action, KILL_BOUND, None, recovery);
    }
    let deadline = started + KILL_BOUND + Duration::from_secs(15);
    let mut problem = None;
    while Instant::now() < deadline {
        let listed = match session.client.list() {
            Ok((topologies, _)) => topologies.iter().any(|summary| summary.name == TOPOLOGY),
            Err(error) => {
                problem = Some(error.to_string());
                true
            }
        };
        let workers = session
            .local
            .as_ref()
            .map_or(0, |local| local.all_workers().len());
        if !listed && workers == 0 {
            let recovery = Recovery {
                time: Some(started.elapsed()),
                problem: None,
            };
            return result("kill", action, KILL_BOUND, None, recovery);
        }
        problem = problem.or_else(|| {
            Some(if listed {
                "still listed".to_owned()
            } else {
                format!("{workers} workers still run")
            })
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    result(
        "kill",
        action,
        KILL_BOUND,
        None,
        Recovery {
            time: None,
            problem,
        },
    )
}
