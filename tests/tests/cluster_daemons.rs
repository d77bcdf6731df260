//! The daemons against a real ZooKeeper, with a program that honours the worker launch
//! contract (heartbeats, plan files) but has no data path: submission, placement, restarts
//! of crashed workers, reassignment after a host dies, nimbus failover, a ZooKeeper outage,
//! rebalancing, activation and kill; and the command line's answers when something is
//! wrong.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use squall::cluster::WorkerHeartbeat;
use squall::cluster::client::ClientError;
use squall::cluster::protocol::ApiError;
use squall::cluster::records::now_ms;
use squall_tests::cluster::{Cluster, RunningWorker, Timings};

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn contract_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-contract-worker"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

/// The worker's heartbeat, if it is at most `fresh` old and written by this process.
fn fresh_beat(worker: &RunningWorker, fresh: Duration) -> Option<WorkerHeartbeat> {
    WorkerHeartbeat::read_from(&worker.dir).filter(|beat| {
        beat.pid == worker.pid && now_ms().saturating_sub(beat.time_ms) <= fresh.as_millis() as u64
    })
}

fn events(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// (supervisor index, worker) pairs of `topology`, with fresh heartbeats.
fn beating(cluster: &Cluster, topology: &str) -> Vec<(usize, RunningWorker)> {
    cluster
        .all_workers()
        .into_iter()
        .filter(|(_, worker)| {
            worker.topology_id == topology && fresh_beat(worker, Duration::from_secs(2)).is_some()
        })
        .collect()
}

#[test]
fn supervisors_and_nimbuses_keep_a_topology_running_through_failures() {
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.log");
    let timings = Timings::default();
    let mut cluster = Cluster::new(
        &squall(),
        2,
        3,
        2,
        timings,
        &[("SQUALL_TEST_EVENTS", events_path.to_str().unwrap())],
    );
    cluster.start_and_settle();
    let client = cluster.client();

    // Submission: the program describes itself, the artifact reaches both nimbuses.
    let submitted = client
        .submit_program(
            &contract_worker(),
            &strings(&["--name", "contract", "--workers", "2", "--executors", "3"]),
        )
        .expect("submits");
    assert_eq!(submitted.replicas, 2, "both nimbuses hold the artifact");
    assert_eq!(submitted.note, None);
    let topology = submitted.topology_id.clone();
    assert!(topology.starts_with("contract-"), "{topology}");
    let started = cluster.wait_for("two workers", Duration::from_secs(15), || {
        let workers = beating(&cluster, &topology);
        (workers.len() == 2).then_some(workers)
    });
    assert_ne!(
        started[0].0, started[1].0,
        "the workers are spread over hosts"
    );
    let log: Vec<String> = events(&events_path)
        .into_iter()
        .filter(|line| line.starts_with("start "))
        .collect();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter().all(|line| line.contains("key=true secret=false")
            && line
                .contains(r#"args=["--name", "contract", "--workers", "2", "--executors", "3"]"#)),
        "{log:?}"
    );
    let report = cluster.wait_for("relayed heartbeats", Duration::from_secs(5), || {
        let report = cluster.status("contract")?;
        (report.heartbeats.len() == 2).then_some(report)
    });
    let assignment = report.assignment.expect("scheduled");
    assert_eq!(assignment.executors, 4);
    assert_eq!(assignment.workers.len(), 2);
    let (ok, stdout, _) = cluster.cli(&["status", "contract"]);
    assert!(ok && stdout.contains("status     active"), "{stdout}");
    let (ok, stdout, _) = cluster.cli(&["list"]);
    assert!(
        ok && stdout.contains("contract") && stdout.contains("3 supervisor(s), 2 of 6 slots used"),
        "{stdout}"
    );

    // 1. A worker is SIGKILLed: its supervisor restarts it on the same slot.
    let (host, victim) = started[0].clone();
    let killed = Instant::now();
    cluster.kill_worker(victim.pid);
    let restarted = cluster.wait_for("the worker's restart", Duration::from_secs(5), || {
        cluster
            .workers_of(host)
            .into_iter()
            .find(|worker| worker.port == victim.port && worker.pid != victim.pid)
            .filter(|worker| fresh_beat(worker, Duration::from_secs(2)).is_some())
    });
    let worker_restart = killed.elapsed();
    eprintln!("RECOVERY worker SIGKILL -> restarted and heartbeating: {worker_restart:?}");
    assert!(
        worker_restart < Duration::from_secs(2),
        "{worker_restart:?}"
    );
    cluster.wait_for("the crash in the errors", Duration::from_secs(5), || {
        let report = cluster.status("contract")?;
        report
            .errors
            .iter()
            .any(|error| error.message.contains(&format!("(pid {})", victim.pid)))
            .then_some(())
    });

    // 2. A whole host dies: its worker moves to another host.
    let (_, survivor) = started[1].clone();
    let dead_host = host;
    let killed = Instant::now();
    cluster.kill_host(dead_host);
    let moved = cluster.wait_for("the reassignment", Duration::from_secs(10), || {
        let workers = beating(&cluster, &topology);
        (workers.len() == 2 && workers.iter().all(|(index, _)| *index != dead_host))
            .then_some(workers)
    });
    let host_recovery = killed.elapsed();
    eprintln!("RECOVERY host killed -> executors running on another host: {host_recovery:?}");
    assert!(
        host_recovery < timings.session + Duration::from_secs(3),
        "{host_recovery:?}"
    );
    assert!(
        moved.iter().any(|(_, worker)| worker.pid == survivor.pid),
        "the surviving worker keeps running: {moved:?} {survivor:?}"
    );
    assert!(
        events(&events_path)
            .iter()
            .any(|line| line.starts_with(&format!("plan pid={} ", survivor.pid))),
        "the survivor learns where its peer went"
    );
    let _ = restarted;

    // 3. The leader nimbus is SIGKILLed: the standby leads, the workers are untouched.
    let pids: Vec<u32> = moved.iter().map(|(_, worker)| worker.pid).collect();
    let failover = cluster.kill_leader();
    eprintln!("RECOVERY leader nimbus SIGKILL -> standby leads: {failover:?}");
    assert!(failover < Duration::from_secs(5), "{failover:?}");
    let report = cluster.wait_for("the new leader to answer", Duration::from_secs(5), || {
        cluster.status("contract")
    });
    assert_eq!(report.assignment.expect("still scheduled").workers.len(), 2);
    let now: Vec<u32> = beating(&cluster, &topology)
        .iter()
        .map(|(_, worker)| worker.pid)
        .collect();
    assert_eq!(now, pids, "the topology is unaffected by the failover");

    // 4. ZooKeeper stops for 10 s: the workers keep running and beating, nothing moves.
    cluster.zookeeper.stop();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(10) {
        let workers = beating(&cluster, &topology);
        let pids_now: Vec<u32> = workers.iter().map(|(_, worker)| worker.pid).collect();
        assert_eq!(
            pids_now,
            pids,
            "workers keep running while ZooKeeper is down{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.zookeeper.resume();
    let back = Instant::now();
    cluster.wait_for(
        "the cluster to answer again",
        Duration::from_secs(15),
        || cluster.status("contract"),
    );
    eprintln!(
        "RECOVERY ZooKeeper back -> nimbus answers: {:?}",
        back.elapsed()
    );
    std::thread::sleep(timings.session + Duration::from_secs(2));
    let pids_now: Vec<u32> = beating(&cluster, &topology)
        .iter()
        .map(|(_, worker)| worker.pid)
        .collect();
    assert_eq!(
        pids_now,
        pids,
        "nothing was restarted or moved after the outage{}",
        cluster.logs()
    );
    let (_, supervisors) = client.list().expect("lists");
    assert_eq!(
        supervisors.len(),
        2,
        "the live supervisors registered again"
    );

    // 5. Rebalance from 2 to 3 workers and 5 work executors, at once.
    let message = client
        .rebalance(
            "contract",
            Some(3),
            [("work".to_owned(), 5)].into(),
            Some(0),
        )
        .expect("rebalances");
    assert!(message.contains("3 workers and 6 executors"), "{message}");
    let rebalanced = cluster.wait_for("three workers", Duration::from_secs(10), || {
        let report = cluster.status("contract")?;
        let assignment = report.assignment?;
        let workers = beating(&cluster, &topology);
        (assignment.workers.len() == 3 && assignment.executors == 6 && workers.len() == 3)
            .then_some(workers)
    });
    assert!(rebalanced.iter().all(|(index, _)| *index != dead_host));
    let error = client
        .rebalance("contract", None, [("work".to_owned(), 7)].into(), Some(0))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: component \"work\" has 6 tasks, so it can run on 1 to 6 executors, not 7"
    );

    // 6. Deactivation and activation reach the workers' plans.
    client.deactivate("contract").expect("deactivates");
    cluster.wait_for("paused plans", Duration::from_secs(5), || {
        let paused = events(&events_path)
            .iter()
            .filter(|line| line.starts_with("plan ") && line.ends_with("active=false"))
            .count();
        (paused >= 3).then_some(())
    });
    let (ok, stdout, _) = cluster.cli(&["activate", "contract"]);
    assert!(ok, "{stdout}");
    assert_eq!(
        cluster.status("contract").unwrap().record.status.name(),
        "active"
    );

    // 7. Kill: the workers stop, the cluster forgets the topology.
    let (ok, stdout, stderr) = cluster.cli(&["kill", "contract", "--wait", "1"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("its workers stop in 1 s"), "{stdout}");
    cluster.wait_for("the workers to stop", Duration::from_secs(10), || {
        cluster.all_workers().is_empty().then_some(())
    });
    cluster.wait_for(
        "the topology to be forgotten",
        Duration::from_secs(5),
        || {
            matches!(
                client.status("contract"),
                Err(ClientError::Refused(ApiError::NotFound { .. }))
            )
            .then_some(())
        },
    );
    let (topologies, _) = client.list().unwrap();
    assert!(topologies.is_empty());
}

#[test]
fn the_command_line_explains_what_is_wrong() {
    let mut cluster = Cluster::new(&squall(), 1, 1, 1, Timings::default(), &[]);
    // No daemon yet: no leader.
    let (ok, _, stderr) = cluster.cli(&["list"]);
    assert!(!ok);
    assert!(stderr.contains("no nimbus leads the cluster"), "{stderr}");

    cluster.start_nimbus(0);
    cluster.wait_for("a leader", Duration::from_secs(10), || cluster.leader());
    let (ok, _, stderr) = cluster.cli(&["status", "missing"]);
    assert!(!ok);
    assert!(
        stderr.contains("no topology named \"missing\" is running"),
        "{stderr}"
    );
    let (ok, _, stderr) = cluster.cli(&["kill", "missing"]);
    assert!(
        !ok && stderr.contains("no topology named \"missing\""),
        "{stderr}"
    );

    // Without the cluster secret, ZooKeeper refuses to show the leader...
    let wrong_secret = |args: &[&str]| {
        let output = std::process::Command::new(squall())
            .args(args)
            .env("SQUALL_CONF", cluster.dir.path().join("client.toml"))
            .env("SQUALL_CLUSTER_SECRET", "not the secret of this cluster")
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = wrong_secret(&["list"]);
    assert!(
        stderr.contains("the cluster's ZooKeeper nodes refuse this client")
            && stderr.contains("its cluster secret is not the cluster's"),
        "{stderr}"
    );
    // ...and nimbus, asked directly, refuses to answer.
    let leader = cluster.leader().expect("a leader").address();
    let stderr = wrong_secret(&["list", "--nimbus", &leader]);
    assert!(
        stderr.contains("request refused: not authenticated"),
        "{stderr}"
    );
    assert!(
        cluster.nimbuses[0]
            .log()
            .contains("refused an unauthenticated request"),
        "{}",
        cluster.nimbuses[0].log()
    );

    // Not enough slots: no supervisor yet.
    let args = ["--name", "big", "--workers", "3"];
    let program = contract_worker();
    let mut submit = vec!["submit", program.to_str().unwrap()];
    submit.extend(args);
    let (ok, stdout, stderr) = cluster.cli(&submit);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("scheduler: not enough slots: 3 worker(s) requested but no slot is free"),
        "{stdout}"
    );
    // One supervisor with one slot: it runs, on fewer workers than asked.
    cluster.start_supervisor(0);
    cluster.wait_for(
        "the topology on one worker",
        Duration::from_secs(15),
        || {
            let report = cluster.status("big")?;
            (report.heartbeats.len() == 1).then_some(())
        },
    );
    let (_, stdout, _) = cluster.cli(&["list"]);
    assert!(
        stdout.contains("big: running on 1 of 3 requested workers"),
        "{stdout}"
    );
    let (ok, _, stderr) = cluster.cli(&submit);
    assert!(
        !ok && stderr.contains("a topology named \"big\" is already running"),
        "{stderr}"
    );

    // A program that cannot describe itself.
    let (ok, _, stderr) = cluster.cli(&["submit", "/bin/false"]);
    assert!(
        !ok && stderr.contains("cannot describe the topology of /bin/false"),
        "{stderr}"
    );

    // ZooKeeper down: the cluster cannot be reached.
    cluster.zookeeper.stop();
    let (ok, _, stderr) = cluster.cli(&["list"]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot reach the cluster: ZooKeeper at 127.0.0.1:"),
        "{stderr}"
    );
    // Daemons stop cleanly on SIGTERM even then.
    assert!(cluster.supervisors[0].terminate(Duration::from_secs(10)));
    assert!(
        cluster.all_workers().is_empty(),
        "the supervisor stopped its worker"
    );
    assert!(cluster.nimbuses[0].terminate(Duration::from_secs(10)));
}
