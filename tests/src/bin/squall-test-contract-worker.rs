//! A minimal program that honours the worker launch contract, for supervisor tests that need
//! no data path: `describe [--name N] [--workers W] [--executors E]` prints a description of
//! a two-component topology; `worker --plan FILE` writes a heartbeat every 500 ms, follows
//! its plan file, and appends what it does to the file named by `SQUALL_TEST_EVENTS`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use squall::cluster::plan::{SECRET_ENV, WORKER_KEY_ENV};
use squall::cluster::{ComponentDescription, TopologyDescription, WorkerHeartbeat, WorkerPlan};

fn event(line: &str) {
    let Some(path) = std::env::var_os("SQUALL_TEST_EVENTS") else {
        return;
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

fn options(args: &[String]) -> BTreeMap<String, String> {
    args.chunks(2)
        .filter_map(|pair| {
            Some((
                pair.first()?.trim_start_matches('-').to_owned(),
                pair.get(1)?.clone(),
            ))
        })
        .collect()
}

fn describe(args: &[String]) -> ExitCode {
    let options = options(args);
    let number = |name: &str, default: usize| {
        options
            .get(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let executors = number("executors", 3);
    let description = TopologyDescription {
        name: options
            .get("name")
            .cloned()
            .unwrap_or_else(|| "contract".to_owned()),
        workers: number("workers", 2),
        components: vec![
            ComponentDescription {
                id: "source".into(),
                kind: "spout".into(),
                parallelism: 1,
                tasks: 1,
                inputs: Vec::new(),
            },
            ComponentDescription {
                id: "work".into(),
                kind: "bolt".into(),
                parallelism: executors,
                tasks: executors * 2,
                inputs: vec!["source/default (shuffle)".into()],
            },
        ],
        executor_components: std::iter::once(0)
            .chain(std::iter::repeat_n(1, executors))
            .collect(),
        message_timeout_ms: 30_000,
    };
    println!(
        "{}",
        serde_json::to_string(&description).expect("serializes")
    );
    ExitCode::SUCCESS
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// `pid=.. topology=.. slot=.. version=.. executors=[..] active=..`
fn summary(pid: u32, plan: &WorkerPlan) -> String {
    format!(
        "pid={pid} topology={} slot={} version={} executors={:?} active={}",
        plan.topology_id,
        plan.this_slot().id,
        plan.version,
        plan.this_slot().executors,
        plan.active
    )
}

fn worker(plan_path: &Path) -> ExitCode {
    let pid = std::process::id();
    let mut plan = match WorkerPlan::read(plan_path) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let key = std::env::var_os(WORKER_KEY_ENV).is_some_and(|key| key.len() == 64);
    let secret = std::env::var_os(SECRET_ENV).is_some();
    event(&format!(
        "start {} key={key} secret={secret} args={:?}",
        summary(pid, &plan),
        plan.args
    ));
    let dir = std::env::current_dir().expect("a working directory");
    let mut seen = modified(plan_path);
    let mut executed = 0u64;
    let mut last_beat = Instant::now() - Duration::from_secs(1);
    loop {
        if last_beat.elapsed() >= Duration::from_millis(WorkerHeartbeat::INTERVAL_MS) {
            last_beat = Instant::now();
            executed += 1;
            let beat = WorkerHeartbeat {
                pid,
                time_ms: now_ms(),
                topology_id: plan.topology_id.clone(),
                version: plan.version,
                executors: plan.this_slot().executors.clone(),
                executed,
                emitted: executed,
                errors: 0,
                metrics_endpoint: None,
                figures: Default::default(),
            };
            if let Err(error) = beat.write_into(&dir) {
                eprintln!("cannot write heartbeat: {error}");
            }
        }
        let now = modified(plan_path);
        if now != seen {
            seen = now;
            if let Ok(next) = WorkerPlan::read(plan_path) {
                plan = next;
                event(&format!("plan {}", summary(pid, &plan)));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("describe") => describe(&args[1..]),
        Some("worker") if args.get(1).map(String::as_str) == Some("--plan") => match args.get(2) {
            Some(plan) => worker(&PathBuf::from(plan)),
            None => ExitCode::FAILURE,
        },
        _ => {
            eprintln!("usage: squall-test-contract-worker describe [OPTIONS] | worker --plan FILE");
            ExitCode::FAILURE
        }
    }
}
