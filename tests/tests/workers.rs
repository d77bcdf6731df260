//! Topologies across several worker processes on loopback: exact counts, a worker killed and
//! restarted, and clients that cannot prove the cluster secret.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use squall_tests::ledger::LedgerCheck;
use squall_tests::workers::Workers;

fn program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-wordcount"))
}

fn args(messages: u64, state: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--messages",
        &messages.to_string(),
        "--state-dir",
        state.to_str().expect("utf-8 path"),
        "--spouts",
        "3",
        "--relays",
        "3",
        "--counters",
        "3",
        "--workers",
        "3",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn wait_for_acks(
    workers: &Workers,
    state: &std::path::Path,
    target: u64,
    timeout: Duration,
) -> LedgerCheck {
    let deadline = Instant::now() + timeout;
    loop {
        let check = LedgerCheck::read(state);
        if check.acked.len() as u64 >= target {
            return check;
        }
        if Instant::now() > deadline {
            for index in 0..workers.workers.len() {
                eprintln!("--- worker {index} log ---\n{}", workers.log(index));
            }
            panic!(
                "only {} of {target} messages acked after {timeout:?}",
                check.acked.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn loopback(count: usize) -> Vec<String> {
    vec!["127.0.0.1".to_owned(); count]
}

#[test]
fn three_workers_count_exactly_over_mio_and_io_uring() {
    for transport in ["mio", "io-uring"] {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let messages = 3_000;
        let mut workers = Workers::plan(
            &program(),
            &args(messages, &state, &[]),
            &loopback(3),
            transport,
            root.path(),
        );
        workers.start_all();
        let check = wait_for_acks(&workers, &state, messages, Duration::from_secs(60));
        let replayed = check.assert_consistent(messages, true);
        assert_eq!(
            replayed, 0,
            "{transport}: without faults every message is processed once"
        );
        assert_eq!(check.processed.len() as u64, messages);
        for index in 0..3 {
            // Heartbeats are written periodically: the last work may not be in one yet.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let heartbeat = loop {
                let heartbeat = workers.heartbeat(index).expect("workers write heartbeats");
                if heartbeat.executed > 0 || std::time::Instant::now() >= deadline {
                    break heartbeat;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert_eq!(heartbeat.topology_id, "wordcount-1");
            assert!(heartbeat.executed > 0, "worker {index} did work");
            assert!(
                workers.terminate(index, Duration::from_secs(10)),
                "SIGTERM stops worker {index}"
            );
        }
        assert!(
            workers
                .log(0)
                .contains(&format!("with the {transport} driver")),
            "{}",
            workers.log(0)
        );
    }
}

#[test]
fn a_killed_worker_is_restarted_and_nothing_acknowledged_is_lost() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let messages = 20_000;
    let extra = ["--pending", "100", "--timeout-ms", "5000"];
    let mut workers = Workers::plan(
        &program(),
        &args(messages, &state, &extra),
        &loopback(3),
        "auto",
        root.path(),
    );
    workers.start_all();
    wait_for_acks(&workers, &state, messages / 4, Duration::from_secs(60));
    workers.kill(1);
    let killed_at = LedgerCheck::read(&state);
    killed_at.assert_consistent(messages, false);
    std::thread::sleep(Duration::from_millis(500));
    workers.start(1);
    let check = wait_for_acks(&workers, &state, messages, Duration::from_secs(120));
    let replayed = check.assert_consistent(messages, true);
    eprintln!(
        "{} acked when worker 1 was killed; {replayed} messages processed more than once",
        killed_at.acked.len()
    );
}

/// Tuples that crossed between workers do not hold a stopping worker back: with every
/// message acked, each worker stops on SIGTERM at once, well inside its drain bound (and so
/// inside the supervisor's grace).
#[test]
fn workers_with_nothing_in_flight_stop_within_a_second() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let messages = 2_000;
    let mut workers = Workers::plan(
        &program(),
        &args(messages, &state, &[]),
        &loopback(3),
        "mio",
        root.path(),
    );
    workers.start_all();
    wait_for_acks(&workers, &state, messages, Duration::from_secs(60));
    for index in 0..3 {
        let asked = Instant::now();
        assert!(
            workers.terminate(index, Duration::from_secs(10)),
            "SIGTERM stops worker {index}"
        );
        let took = asked.elapsed();
        let log = workers.log(index);
        assert!(
            took < Duration::from_secs(1),
            "worker {index} took {took:?} to stop with nothing in flight; its log:\n{log}"
        );
        assert!(
            log.contains("worker stopped drained=true"),
            "worker {index} drained; its log:\n{log}"
        );
    }
}

/// Reads until the peer closes the connection or `timeout` passes; returns whether it closed.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn clients_without_the_secret_are_refused_and_the_topology_carries_on() {
    use squall_net::{
        ClusterId, ClusterSecret, Connection, ConnectionConfig, Nonce, Side, WorkerId,
    };

    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let messages = 4_000;
    let extra = ["--pending", "50"];
    let mut workers = Workers::plan(
        &program(),
        &args(messages, &state, &extra),
        &loopback(3),
        "auto",
        root.path(),
    );
    workers.start_all();
    wait_for_acks(&workers, &state, 200, Duration::from_secs(60));
    let target = {
        let plan = workers.plan_of(0);
        format!("127.0.0.1:{}", plan.this_slot().port)
    };

    // A client spewing garbage.
    let mut garbage = TcpStream::connect(&target).unwrap();
    let noise: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let _ = garbage.write_all(&noise);
    assert!(
        closed_within(&mut garbage, Duration::from_secs(10)),
        "garbage closes the connection"
    );

    // A client speaking the protocol with the wrong secret.
    let mut impostor = TcpStream::connect(&target).unwrap();
    let wrong = ClusterSecret::new(*b"not the secret of this cluster at all").unwrap();
    let config = ConnectionConfig::new(ClusterId::from_name("test-cluster"), WorkerId(42), wrong);
    let now = Instant::now();
    let mut connection =
        Connection::new(config, Side::Initiator, None, Nonce::random().unwrap(), now);
    let mut out = vec![0u8; 1 << 16];
    let len = connection.poll_transmit(&mut out);
    impostor.write_all(&out[..len]).unwrap();
    assert!(
        closed_within(&mut impostor, Duration::from_secs(10)),
        "a wrong secret closes the connection"
    );

    let check = wait_for_acks(&workers, &state, messages, Duration::from_secs(120));
    check.assert_consistent(messages, true);
    let log = workers.log(0);
    assert!(
        log.contains("connection refused"),
        "the refusals are logged:\n{log}"
    );
    assert!(log.contains("127.0.0.1:"), "with the peer address:\n{log}");
}
