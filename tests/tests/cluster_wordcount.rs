//! A word count with acking on a cluster of three supervisor "hosts" (each in a network
//! namespace of its own when the test may create them, else on loopback), two nimbuses and
//! one ZooKeeper, all real processes: a worker is SIGKILLed, a host dies, the leader nimbus is
//! SIGKILLed, ZooKeeper stops for 10 s, and the topology is rebalanced from 2 to 3 workers,
//! while its spouts keep emitting. Every message is logged durably when acked and when
//! counted, so at the end the test checks that nothing acknowledged was lost and that every
//! message was processed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use squall_tests::cluster::{Cluster, RunningWorker, Timings};
use squall_tests::ledger::LedgerCheck;
use squall_tests::netns;

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn wordcount() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-wordcount"))
}

/// Processes whose counters logged at least one message.
fn counting_pids(state: &Path) -> BTreeSet<u32> {
    std::fs::read_dir(state)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("processed-")?
                .strip_suffix(".log")?
                .rsplit('-')
                .next()?
                .parse()
                .ok()?;
            (entry.metadata().ok()?.len() > 0).then_some(pid)
        })
        .collect()
}

/// The topology's workers with a heartbeat of their own younger than 2 s.
fn beating(cluster: &Cluster) -> Vec<(usize, RunningWorker)> {
    cluster.beating_workers()
}

fn pids(workers: &[(usize, RunningWorker)]) -> Vec<u32> {
    let mut pids: Vec<u32> = workers.iter().map(|(_, worker)| worker.pid).collect();
    pids.sort_unstable();
    pids
}

fn acked(state: &Path) -> usize {
    LedgerCheck::read(state).acked.len()
}

fn worker_logs(cluster: &Cluster) -> String {
    let mut text = String::new();
    for (index, worker) in cluster.all_workers() {
        let log = std::fs::read_to_string(worker.dir.join("worker.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        text.push_str(&format!(
            "\n----- host{index} worker {} -----\n",
            worker.port
        ));
        for line in tail.into_iter().rev() {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

#[test]
fn a_word_count_survives_worker_host_nimbus_and_zookeeper_failures_and_a_rebalance() {
    let messages: u64 = 30_000;
    let timings = Timings::default();
    let mut cluster = if netns::available() {
        eprintln!("supervisors run in network namespaces of their own");
        Cluster::on_namespaces(&squall(), 2, 3, 2, timings, &[])
    } else {
        eprintln!("no network namespaces (not root?): supervisors share the loopback");
        Cluster::new(&squall(), 2, 3, 2, timings, &[])
    };
    let state = cluster.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let args: Vec<String> = [
        "--messages",
        &messages.to_string(),
        "--state-dir",
        state.to_str().unwrap(),
        "--spouts",
        "2",
        "--relays",
        "2",
        "--counters",
        "2",
        "--workers",
        "2",
        "--timeout-ms",
        "5000",
        "--pending",
        "200",
        "--rate",
        "250",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();

    cluster.start_and_settle();
    let client = cluster.client();
    let submitted = client.submit_program(&wordcount(), &args).expect("submits");
    assert_eq!(submitted.note, None);
    let started = cluster.wait_for("two workers", Duration::from_secs(20), || {
        let workers = beating(&cluster);
        (workers.len() == 2).then_some(workers)
    });
    cluster.wait_for("the first acks", Duration::from_secs(20), || {
        (acked(&state) >= 500).then_some(())
    });
    let mut recoveries = Vec::new();

    // 1. SIGKILL a worker: its supervisor restarts it, and it counts again.
    let (host, victim) = started[0].clone();
    let counted_before = counting_pids(&state);
    let killed = Instant::now();
    cluster.kill_worker(victim.pid);
    let restarted = cluster.wait_for("the restarted worker", Duration::from_secs(5), || {
        cluster
            .workers_of(host)
            .into_iter()
            .find(|worker| worker.port == victim.port && worker.pid != victim.pid)
    });
    cluster.wait_for(
        "the restarted worker to count",
        Duration::from_secs(10),
        || counting_pids(&state).contains(&restarted.pid).then_some(()),
    );
    let resumed = killed.elapsed();
    recoveries.push(format!(
        "worker SIGKILL -> restarted worker counting: {resumed:?}"
    ));
    assert!(
        resumed < Duration::from_secs(2),
        "processing resumed after {resumed:?}{}",
        worker_logs(&cluster)
    );
    assert!(!counted_before.contains(&restarted.pid));

    // 2. A whole host dies: its executors move to another host and count there.
    let workers = cluster.wait_for("two workers", Duration::from_secs(5), || {
        let workers = beating(&cluster);
        (workers.len() == 2).then_some(workers)
    });
    let (dead_host, _) = workers[1].clone();
    let before = pids(&workers);
    let killed = Instant::now();
    cluster.kill_host(dead_host);
    let moved = cluster.wait_for("the reassignment", Duration::from_secs(15), || {
        let workers = beating(&cluster);
        (workers.len() == 2 && workers.iter().all(|(index, _)| *index != dead_host))
            .then_some(workers)
    });
    let newcomer = pids(&moved)
        .into_iter()
        .find(|pid| !before.contains(pid))
        .expect("a new worker");
    cluster.wait_for(
        "the moved executors to count",
        Duration::from_secs(15),
        || counting_pids(&state).contains(&newcomer).then_some(()),
    );
    let resumed = killed.elapsed();
    recoveries.push(format!(
        "host killed -> moved executors counting on another host: {resumed:?}"
    ));
    assert!(
        resumed < timings.session + Duration::from_secs(3),
        "processing resumed after {resumed:?}{}{}",
        cluster.logs(),
        worker_logs(&cluster)
    );

    // 3. SIGKILL the leader nimbus: a standby leads, the topology does not notice.
    let running = pids(&moved);
    let acked_before = acked(&state);
    let failover = cluster.kill_leader();
    recoveries.push(format!(
        "leader nimbus SIGKILL -> standby leads: {failover:?}"
    ));
    assert!(failover < Duration::from_secs(5), "{failover:?}");
    cluster.wait_for("the new leader to answer", Duration::from_secs(5), || {
        cluster.status("wordcount")
    });
    assert_eq!(pids(&beating(&cluster)), running, "the workers run on");
    assert!(acked(&state) > acked_before, "processing went on");

    // 4. ZooKeeper stops for 10 s: processing goes on throughout.
    cluster.zookeeper.stop();
    let outage = Instant::now();
    let mut last = acked(&state);
    while outage.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_secs(1));
        let now = acked(&state);
        assert!(
            now > last,
            "no message acked in a second of the ZooKeeper outage ({now}){}",
            worker_logs(&cluster)
        );
        last = now;
        assert_eq!(pids(&beating(&cluster)), running, "the workers run on");
    }
    cluster.zookeeper.resume();
    let back = Instant::now();
    cluster.wait_for(
        "the cluster to answer again",
        Duration::from_secs(15),
        || cluster.status("wordcount"),
    );
    recoveries.push(format!(
        "ZooKeeper stopped 10 s: acks every second throughout; nimbus answers {:?} after it returns",
        back.elapsed()
    ));
    std::thread::sleep(timings.session + Duration::from_secs(2));
    assert_eq!(
        pids(&beating(&cluster)),
        running,
        "nothing moved after the outage{}",
        cluster.logs()
    );

    // 5. Rebalance from 2 to 3 workers while it runs.
    let requested = Instant::now();
    client
        .rebalance("wordcount", Some(3), Default::default(), Some(0))
        .expect("rebalances");
    cluster.wait_for("three workers", Duration::from_secs(20), || {
        let report = cluster.status("wordcount")?;
        (report.assignment?.workers.len() == 3 && beating(&cluster).len() == 3).then_some(())
    });
    let acked_with_three = acked(&state);
    cluster.wait_for(
        "processing after the rebalance",
        Duration::from_secs(20),
        || (acked(&state) > acked_with_three + 200).then_some(()),
    );
    recoveries.push(format!(
        "rebalance 2 -> 3 workers: three workers running and acking {:?} after the request",
        requested.elapsed()
    ));

    // Every message is eventually processed, nothing acknowledged is lost.
    let check = cluster.wait_for("every message acked", Duration::from_secs(120), || {
        let check = LedgerCheck::read(&state);
        (check.acked.len() as u64 == messages).then_some(check)
    });
    let replayed = check.assert_consistent(messages, true);
    recoveries.push(format!(
        "{messages} messages acked and counted; {replayed} counted more than once (replays)"
    ));
    for line in &recoveries {
        eprintln!("RECOVERY {line}");
    }
    client.kill("wordcount", Some(0)).expect("kills");
    cluster.wait_for("the workers to stop", Duration::from_secs(15), || {
        cluster.all_workers().is_empty().then_some(())
    });
}
