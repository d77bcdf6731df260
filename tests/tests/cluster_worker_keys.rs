//! What a worker holds, on a real cluster (ZooKeeper, nimbus, supervisors, worker
//! processes): its topology's worker key and never the cluster secret, and that key opens
//! nothing on nimbus; a peer with another topology's key is refused at the HELLO; while the
//! word count it runs carries on and loses nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use squall::cluster::WorkerPlan;
use squall_net::codec::{CloseCode, Decoded, Frame, MAX_FRAME_LEN, decode_frame};
use squall_net::{
    ClusterId, Connection, ConnectionConfig, Nonce, PlanVersion, Side, TopologyId, WorkerId,
};

use squall::cluster::protocol::ApiError;
use squall::cluster::records::now_ms;
use squall::cluster::{ClientError, NimbusClient, Secret, WorkerHeartbeat};
use squall_tests::cluster::{Cluster, RunningWorker, Timings};
use squall_tests::ledger::LedgerCheck;
use squall_tests::workers::{TEST_SECRET, test_worker_key};

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn wordcount() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-wordcount"))
}

/// The topology's workers with a fresh heartbeat of their own.
fn beating(cluster: &Cluster) -> Vec<RunningWorker> {
    cluster
        .all_workers()
        .into_iter()
        .map(|(_, worker)| worker)
        .filter(|worker| {
            WorkerHeartbeat::read_from(&worker.dir).is_some_and(|beat| {
                beat.pid == worker.pid && now_ms().saturating_sub(beat.time_ms) < 2_000
            })
        })
        .collect()
}

/// The environment of process `pid`, as the kernel shows it.
fn environment(pid: u32) -> Vec<(String, String)> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).expect("the worker's environment");
    bytes
        .split(|byte| *byte == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=').unwrap_or((&entry, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// Sends the HELLO of a peer of `topology` holding `topology_key`'s worker key to the worker
/// listening on `port`, and returns the CLOSE it answers with.
fn forged_hello(port: u16, topology: &str, key_of: &str, version: u64) -> (CloseCode, String) {
    let config = ConnectionConfig::new(
        ClusterId::from_name("test-cluster"),
        WorkerId(0xBAD),
        test_worker_key(key_of).transport_secret(),
    )
    .with_topology(TopologyId::from_name(topology), PlanVersion::new(version));
    let mut connection = Connection::new(
        config,
        Side::Initiator,
        None,
        Nonce::random().unwrap(),
        Instant::now(),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the worker listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = vec![0u8; 4096];
    let len = connection.poll_transmit(&mut out);
    stream.write_all(&out[..len]).unwrap();
    // Answer each frame of the worker as it comes, so that our AUTH goes out before we judge
    // the worker's, and a refusal of our AUTH shows too.
    let mut received = Vec::new();
    let mut consumed = 0;
    let mut buf = [0u8; 4096];
    loop {
        let read = stream.read(&mut buf).unwrap_or(0);
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buf[..read]);
        while let Ok(squall_net::Received::Frame { len, .. }) =
            connection.receive(&received[consumed..], Instant::now())
        {
            consumed += len;
            let len = connection.poll_transmit(&mut out);
            let _ = stream.write_all(&out[..len]);
        }
    }
    let mut input = &received[..];
    while let Ok(Decoded::Frame { frame, len }) = decode_frame(input, MAX_FRAME_LEN) {
        if let Frame::Close(close) = frame {
            return (close.code, close.reason.to_owned());
        }
        input = &input[len..];
    }
    panic!("the worker closed without a CLOSE: {received:?}")
}

fn wordcount_args(messages: u64, state: &std::path::Path) -> Vec<String> {
    [
        "--messages",
        &messages.to_string(),
        "--state-dir",
        state.to_str().expect("utf-8 path"),
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
        "100",
        "--rate",
        "300",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

#[test]
fn a_worker_holds_only_its_topology_key_and_nimbus_refuses_it() {
    let messages: u64 = 4_000;
    // The daemons hold the secret in their environment too: workers must not inherit it.
    let mut cluster = Cluster::new(
        &squall(),
        1,
        2,
        2,
        Timings::default(),
        &[("SQUALL_CLUSTER_SECRET", TEST_SECRET)],
    );
    let state = cluster.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    cluster.start_and_settle();
    let client = cluster.client();
    let submitted = client
        .submit_program(&wordcount(), &wordcount_args(messages, &state))
        .expect("submits");
    let topology = submitted.topology_id.clone();
    let workers = cluster.wait_for("two workers", Duration::from_secs(30), || {
        let workers = beating(&cluster);
        (workers.len() == 2).then_some(workers)
    });
    cluster.wait_for("the first acks", Duration::from_secs(30), || {
        (LedgerCheck::read(&state).acked.len() >= 200).then_some(())
    });

    // Each worker holds its topology's key, derived from the secret, and not the secret.
    let expected_key = test_worker_key(&topology).env_value();
    let mut stolen = None;
    for worker in &workers {
        let environment = environment(worker.pid);
        assert!(
            environment.iter().all(
                |(name, value)| name != "SQUALL_CLUSTER_SECRET" && !value.contains(TEST_SECRET)
            ),
            "worker {} holds the cluster secret",
            worker.pid
        );
        let key = environment
            .iter()
            .find(|(name, _)| name == "SQUALL_WORKER_KEY")
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("worker {} has no worker key", worker.pid));
        assert_eq!(key, expected_key.to_str().unwrap());
        stolen = Some(key);
    }

    // Requests signed with the stolen key are refused, whatever they ask.
    let stolen = Secret::new(stolen.unwrap(), "a worker's environment").unwrap();
    // The key opens no ZooKeeper node either, so the thief asks the leader directly.
    let mut thief_config = cluster.client_config();
    thief_config.client.nimbus = Some(cluster.leader().expect("a leader").address());
    let thief = NimbusClient::new(thief_config, stolen);
    let refused = |result: Result<(), ClientError>, what: &str| match result {
        Err(ClientError::Refused(ApiError::Unauthenticated)) => {}
        other => panic!("{what} with a worker key was not refused: {other:?}"),
    };
    refused(thief.kill("wordcount", Some(0)).map(drop), "kill");
    refused(
        thief
            .rebalance("wordcount", Some(1), Default::default(), Some(0))
            .map(drop),
        "rebalance",
    );
    refused(thief.deactivate("wordcount").map(drop), "deactivate");
    refused(thief.list().map(drop), "list");
    refused(
        thief
            .submit_program(&wordcount(), &wordcount_args(10, &state))
            .map(drop),
        "submit",
    );
    let nimbus_log = cluster.nimbuses[0].log();
    assert!(
        nimbus_log.contains(&format!(
            "refused a request signed with the worker key of topology {topology}"
        )),
        "nimbus names the worker key it refused:\n{nimbus_log}"
    );

    // A peer with another topology's key is refused at its HELLO, and so is one that claims
    // this topology without its key, or with an older plan; the worker logs why.
    let victim = &workers[0];
    let version = WorkerPlan::read(&victim.dir.join("plan.json"))
        .expect("the worker's plan")
        .version;
    let (code, reason) = forged_hello(victim.port, "intruder-1", "intruder-1", version);
    assert_eq!(code, CloseCode::TOPOLOGY_MISMATCH, "{reason}");
    assert!(
        reason.ends_with("workers of other topologies are refused"),
        "{reason}"
    );
    let (code, reason) = forged_hello(victim.port, &topology, "intruder-1", version);
    assert_eq!(code, CloseCode::AUTH_FAILED, "{reason}");
    assert!(version >= 1, "assignments start at version 1");
    let (code, reason) = forged_hello(victim.port, &topology, &topology, version - 1);
    assert_eq!(code, CloseCode::STALE_PLAN, "{reason}");
    let worker_log = std::fs::read_to_string(victim.dir.join("worker.log")).unwrap();
    assert!(
        worker_log.contains("workers of other topologies are refused")
            && worker_log.contains("failed to prove")
            && worker_log.contains("stale workers are refused"),
        "the worker logs each refusal:\n{worker_log}"
    );

    // The topology never noticed: it runs on, and nothing acknowledged is lost.
    let report = client.status("wordcount").expect("status");
    assert!(report.assignment.is_some(), "still assigned: {report:?}");
    let check = cluster.wait_for("every message acked", Duration::from_secs(120), || {
        let check = LedgerCheck::read(&state);
        (check.acked.len() as u64 == messages).then_some(check)
    });
    check.assert_consistent(messages, true);
    client.kill("wordcount", Some(0)).expect("kills");
    cluster.wait_for("the workers to stop", Duration::from_secs(15), || {
        cluster.all_workers().is_empty().then_some(())
    });
}
