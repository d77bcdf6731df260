//! Exactly-once state on a cluster: a word count reads a Redis stream (a replayable source)
//! and keeps its counts in checkpointed state in Redis, on three supervisor "hosts" (network
//! namespaces when the test may create them) and one ZooKeeper, all real processes. While
//! entries keep arriving, a worker is SIGKILLed, then a host dies, then the topology is
//! rebalanced from 2 to 3 workers. After each fault the counting tasks restore their state
//! and commit again; at the end the committed counts are exactly the stream's, not "at
//! least", and every entry is acknowledged in the consumer group.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use squall::connectors::RedisBackend;
use squall_tests::cluster::{Cluster, RunningWorker, Timings};
use squall_tests::databases::Redis;
use squall_tests::netns;
use squall_tests::stream_count::{GROUP, STATE_PREFIX};

const SPOUTS: usize = 2;
const COUNTERS: usize = 2;

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn stream_count() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-stream-count"))
}

/// The word of entry `index`: 61 distinct, unevenly spread.
fn word(index: u64) -> String {
    format!("word-{}", (index * 7 + index / 13) % 61)
}

/// Appends entries to the stream `events`, 400 every 100 ms, until told to stop; returns how
/// many it appended.
fn feeder(url: String, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
        let mut next = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let mut pipe = redis::pipe();
            for index in next..next + 400 {
                pipe.cmd("XADD")
                    .arg("events")
                    .arg("*")
                    .arg("word")
                    .arg(word(index))
                    .ignore();
            }
            pipe.query::<()>(&mut connection).unwrap();
            next += 400;
            std::thread::sleep(Duration::from_millis(100));
        }
        next
    })
}

/// The topology's workers with a heartbeat of their own younger than 2 s.
fn beating(cluster: &Cluster) -> Vec<(usize, RunningWorker)> {
    cluster.beating_workers()
}

/// Every worker log the supervisors ever wrote, dead hosts' included.
fn all_worker_logs(root: &Path) -> String {
    let mut text = String::new();
    for supervisor in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let workers = supervisor.path().join("workers");
        for worker in std::fs::read_dir(workers).into_iter().flatten().flatten() {
            let log = std::fs::read_to_string(worker.path().join("worker.log")).unwrap_or_default();
            text.push_str(&log);
        }
    }
    text
}

/// Times a counting task restored its state: at its start, or rolling back.
fn restores(root: &Path) -> usize {
    let logs = all_worker_logs(root);
    logs.matches("state restored at start").count() + logs.matches("state rolled back").count()
}

/// The consumer group as Redis describes it.
fn group_info(url: &str) -> String {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("events")
        .query(&mut connection)
        .unwrap();
    format!("{info:?}")
}

/// The warnings and errors the workers logged.
fn worker_warnings(root: &Path) -> String {
    let lines: Vec<String> = all_worker_logs(root)
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR") || line.contains("state "))
        .map(str::to_owned)
        .collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The committed counts of the topology's state in Redis at `url`.
fn committed_counts(url: &str) -> Option<HashMap<String, u64>> {
    let backend = RedisBackend::new(url, STATE_PREFIX).ok()?;
    squall_tests::stream_count::committed_counts(&backend, "stream-count", SPOUTS, COUNTERS).ok()
}

fn committed_total(url: &str) -> u64 {
    committed_counts(url)
        .map(|counts| counts.values().sum())
        .unwrap_or(0)
}

fn pending(url: &str) -> u64 {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("events")
        .arg(GROUP)
        .query(&mut connection)
        .unwrap();
    redis::from_redis_value(&summary[0]).unwrap()
}

/// Waits until the counting tasks restored state since `restores_before` and commits moved
/// past `committed_before`; reports the time since `fault`.
fn recovered(
    fault: Instant,
    cluster: &Cluster,
    url: &str,
    what: &str,
    restores_before: usize,
    committed_before: u64,
) {
    let root = cluster.dir.path();
    cluster.wait_for(
        &format!("state restored after {what}"),
        Duration::from_secs(30),
        || (restores(root) > restores_before).then_some(()),
    );
    cluster.wait_for(
        &format!("commits after {what}"),
        Duration::from_secs(30),
        || (committed_total(url) > committed_before + 1_000).then_some(()),
    );
    eprintln!(
        "RECOVERY {what}: state restored and commits moving {:?} later",
        fault.elapsed()
    );
}

#[test]
fn a_stateful_count_from_a_redis_stream_is_exact_through_worker_and_host_loss_and_a_rebalance() {
    let timings = Timings::default();
    let mut cluster = if netns::available() {
        eprintln!("supervisors run in network namespaces of their own");
        Cluster::on_namespaces(&squall(), 1, 3, 2, timings, &[])
    } else {
        eprintln!("no network namespaces (not root?): supervisors share the loopback");
        Cluster::new(&squall(), 1, 3, 2, timings, &[])
    };
    // The hosts reach Redis on the bridge, as they reach ZooKeeper.
    let redis_host = cluster
        .hosts
        .as_ref()
        .map_or_else(|| "127.0.0.1".to_owned(), netns::Hosts::gateway);
    let redis = Redis::start_on(&redis_host, None);
    let url = redis.url();
    let stop = Arc::new(AtomicBool::new(false));
    let feeding = feeder(url.clone(), stop.clone());

    cluster.start_and_settle();
    let client = cluster.client();
    let args: Vec<String> = [
        "--redis",
        &url,
        "--spouts",
        &SPOUTS.to_string(),
        "--relays",
        "2",
        "--counters",
        &COUNTERS.to_string(),
        "--workers",
        "2",
        "--timeout-ms",
        "5000",
        "--interval-ms",
        "200",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let submitted = client
        .submit_program(&stream_count(), &args)
        .expect("submits");
    assert_eq!(submitted.note, None);
    let started = cluster.wait_for("two workers", Duration::from_secs(30), || {
        let workers = beating(&cluster);
        (workers.len() == 2).then_some(workers)
    });
    cluster.wait_for("the first commits", Duration::from_secs(30), || {
        (committed_total(&url) >= 2_000).then_some(())
    });
    let root = cluster.dir.path().to_owned();

    // 1. SIGKILL a worker: its supervisor restarts it, its tasks restore their state.
    let (host, victim) = started[0].clone();
    let (restores_before, committed_before) = (restores(&root), committed_total(&url));
    let fault = Instant::now();
    cluster.kill_worker(victim.pid);
    cluster.wait_for("the restarted worker", Duration::from_secs(10), || {
        cluster
            .workers_of(host)
            .into_iter()
            .find(|worker| worker.port == victim.port && worker.pid != victim.pid)
    });
    recovered(
        fault,
        &cluster,
        &url,
        "a worker's loss",
        restores_before,
        committed_before,
    );

    // 2. A whole host dies: its executors move to another host and restore their state
    //    there from Redis.
    let workers = cluster.wait_for("two workers", Duration::from_secs(10), || {
        let workers = beating(&cluster);
        (workers.len() == 2).then_some(workers)
    });
    let (dead_host, _) = workers[1].clone();
    let (restores_before, committed_before) = (restores(&root), committed_total(&url));
    let fault = Instant::now();
    cluster.kill_host(dead_host);
    cluster.wait_for("the reassignment", Duration::from_secs(30), || {
        let workers = beating(&cluster);
        (workers.len() == 2 && workers.iter().all(|(index, _)| *index != dead_host)).then_some(())
    });
    recovered(
        fault,
        &cluster,
        &url,
        "a host's loss",
        restores_before,
        committed_before,
    );

    // 3. Rebalance from 2 to 3 workers while it runs.
    let (restores_before, committed_before) = (restores(&root), committed_total(&url));
    let fault = Instant::now();
    client
        .rebalance("stream-count", Some(3), Default::default(), Some(0))
        .expect("rebalances");
    cluster.wait_for("three workers", Duration::from_secs(30), || {
        let report = cluster.status("stream-count")?;
        (report.assignment?.workers.len() == 3 && beating(&cluster).len() == 3).then_some(())
    });
    recovered(
        fault,
        &cluster,
        &url,
        "the rebalance",
        restores_before,
        committed_before,
    );

    // The stream ends; the committed counts become exactly its counts.
    stop.store(true, Ordering::SeqCst);
    let appended = feeding.join().unwrap();
    let mut want: HashMap<String, u64> = HashMap::new();
    for index in 0..appended {
        *want.entry(word(index)).or_default() += 1;
    }
    let exact = squall_test_support::poll_until(Duration::from_secs(120), || {
        let have = committed_counts(&url)?;
        let counted: u64 = have.values().sum();
        assert!(
            counted <= appended,
            "{counted} counted for {appended} entries: some counted twice"
        );
        (have == want).then_some(())
    });
    if exact.is_none() {
        let have = committed_counts(&url).unwrap_or_default();
        let counted: u64 = have.values().sum();
        panic!(
            "the committed counts did not reach the {appended} entries: {counted} counted, \
             {} pending in the group; the group: {}\n{}",
            pending(&url),
            group_info(&url),
            worker_warnings(cluster.dir.path())
        );
    }
    cluster.wait_for(
        "every entry to be acknowledged in the group",
        Duration::from_secs(20),
        || (pending(&url) == 0).then_some(()),
    );
    eprintln!(
        "{appended} entries counted exactly once; {} state restores across the faults",
        restores(&root)
    );
    client.kill("stream-count", Some(0)).expect("kills");
    cluster.wait_for("the workers to stop", Duration::from_secs(15), || {
        cluster.all_workers().is_empty().then_some(())
    });
}
