//! Distributed RPC end to end: real DRPC servers (in this process and as `squall drpc`
//! daemons), real topologies, real sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use squall::cluster::Secret;
use squall::cluster::drpc::{DrpcServer, DrpcServerConfig};
use squall::drpc::link::Link;
use squall::drpc::protocol::{ToPeer, ToServer};
use squall::drpc::{
    AsyncDrpcClient, CallError, ClusterSecret, DrpcClient, DrpcError, DrpcKey, DrpcServers,
    DrpcSpout, LinearDrpcBuilder, PublishBolt, ReturnResultsBolt, SpoutShape,
};
use squall::{
    Bolt, BoltOutput, OutputDeclarer, Spout, SpoutOutput, TopologyBuilder, TopologyConfig, Tuple,
    Value,
};
use squall_tests::drpc::SquallProcess;
use squall_tests::workers::TEST_SECRET;

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn secret() -> Secret {
    Secret::new(TEST_SECRET, "the test").unwrap()
}

fn cluster_secret() -> ClusterSecret {
    secret().cluster_secret()
}

/// `[args, return-info]` → `[args + "!", return-info]`.
struct Exclaim;

impl Bolt for Exclaim {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["result", "return-info"]);
    }
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let answer = format!("{}!", input.get_str(0).unwrap());
        let info = input.get_str(1).unwrap();
        output.emit_anchored(input, &[answer.as_str().into(), info.into()]);
        output.ack(input);
    }
}

/// Fails every request.
struct Refuse;

impl Bolt for Refuse {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["id", "value"]);
    }
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        output.fail(input);
    }
}

/// Holds every request: neither answers nor acks it.
struct Hold;

impl Bolt for Hold {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["id", "value"]);
    }
    fn execute(&mut self, _input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {}
}

/// Storm's plain DRPC shape: spout → exclaim → return, serving `exclaim` from `servers`.
fn exclaim_topology(servers: Vec<String>) -> Arc<squall::Topology> {
    exclaim_topology_with(DrpcServers::new(servers, cluster_secret()).unwrap())
}

fn exclaim_topology_with(servers: DrpcServers) -> Arc<squall::Topology> {
    let mut builder = TopologyBuilder::new();
    let spout_servers = servers.clone();
    builder.set_spout(
        "requests",
        move || DrpcSpout::new("exclaim", spout_servers.clone(), SpoutShape::Plain),
        1,
    );
    builder
        .set_bolt("exclaim", || Exclaim, 2)
        .shuffle_grouping("requests");
    builder
        .set_bolt("return", move || ReturnResultsBolt::new(servers.clone()), 1)
        .shuffle_grouping("exclaim");
    builder.build("exclaim", TopologyConfig::default()).unwrap()
}

#[test]
fn a_request_goes_round_trip_through_a_topology_and_http() {
    let server = DrpcServer::start(
        DrpcServerConfig {
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..DrpcServerConfig::local()
        },
        secret(),
    )
    .unwrap();
    let running = squall::run(exclaim_topology(vec![server.address().to_string()])).unwrap();
    let mut client = DrpcClient::connect(&server.address().to_string(), &cluster_secret())
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    for word in ["hello", "storm", ""] {
        assert_eq!(client.call("exclaim", word).unwrap(), format!("{word}!"));
    }

    // The HTTP port: POST /drpc/FUNCTION with the proof headers.
    let http = server.http_address().unwrap();
    let post = |function: &str, body: &str, proof: Option<String>| {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let proof = proof.unwrap_or_else(|| {
            let proof = squall::drpc::protocol::http_proof(
                &cluster_secret(),
                function,
                &time,
                body.as_bytes(),
            );
            squall::drpc::protocol::hex(&proof)
        });
        let mut stream = std::net::TcpStream::connect(http).unwrap();
        write!(
            stream,
            "POST /drpc/{function} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
             X-Squall-Time: {time}\r\nX-Squall-Proof: {proof}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let answer = post("exclaim", "over http", None);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nover http!"), "{answer}");
    let refused = post("exclaim", "x", Some("00".repeat(32)));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.contains("the proof is wrong"), "{refused}");

    // A client with another secret is refused, and told why.
    let stranger = ClusterSecret::new(*b"not the cluster's secret").unwrap();
    let mut stranger = DrpcClient::connect(&server.address().to_string(), &stranger).unwrap();
    let error = stranger.call("exclaim", "x").unwrap_err();
    assert!(
        matches!(error, DrpcError::Unauthenticated { .. }),
        "{error}"
    );

    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    server.stop();
}

/// A cluster's workers hold their topology's worker key, not the cluster secret: the
/// server derives the key of the topology a connection names, serves the topology's spouts
/// and return bolts with it, and refuses calls made with it and a key claimed for another
/// topology.
#[test]
fn a_topology_serves_with_its_worker_key_which_cannot_call() {
    let server = DrpcServer::start(DrpcServerConfig::local(), secret()).unwrap();
    let address = server.address().to_string();
    let worker_key = |topology: &str| secret().worker_key(topology).transport_secret();
    let key = DrpcKey::worker("exclaim-1764950000", worker_key("exclaim-1764950000"));
    let servers = DrpcServers::with_key(vec![address.clone()], key.clone()).unwrap();
    let running = squall::run(exclaim_topology_with(servers)).unwrap();
    let mut client = DrpcClient::connect(&address, &cluster_secret())
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    assert_eq!(client.call("exclaim", "keyed").unwrap(), "keyed!");

    let mut link = Link::connect(&address, &key, Duration::from_secs(5)).unwrap();
    link.send(&ToServer::Call {
        call: 7,
        function: "exclaim".into(),
        argument: "x".into(),
        timeout_ms: None,
    })
    .unwrap();
    match link.receive().unwrap() {
        ToPeer::Refused {
            call: 7,
            error: CallError::Invalid { reason },
        } => assert!(reason.contains("needs the cluster secret"), "{reason}"),
        other => panic!("a worker key's call was not refused: {other:?}"),
    }

    let stolen_claim = DrpcKey::worker("exclaim-1764950000", worker_key("other-1764950001"));
    let mut link = Link::connect(&address, &stolen_claim, Duration::from_secs(5)).unwrap();
    link.send(&ToServer::Fetch {
        function: "exclaim".into(),
        max: 1,
    })
    .unwrap();
    let error = link.receive().unwrap_err();
    assert!(error.is_unauthenticated(), "{error}");

    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    server.stop();
}

/// The asynchronous client: calls in flight together on one connection, each answered with
/// its own result; errors per call; a stopped server ends waiting calls instead of hanging.
#[test]
fn the_async_client_carries_many_calls_at_once_on_one_connection() {
    let server = DrpcServer::start(DrpcServerConfig::local(), secret()).unwrap();
    let address = server.address().to_string();
    let running = squall::run(exclaim_topology(vec![address.clone()])).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Arc::new(
            AsyncDrpcClient::connect(&address, &cluster_secret())
                .await
                .unwrap()
                .with_timeout(Duration::from_secs(30)),
        );
        let calls: Vec<_> = (0..200)
            .map(|index| {
                let client = client.clone();
                tokio::spawn(
                    async move { (index, client.call("exclaim", &index.to_string()).await) },
                )
            })
            .collect();
        for call in calls {
            let (index, answer) = call.await.unwrap();
            assert_eq!(answer.unwrap(), format!("{index}!"));
        }
        assert_eq!(client.calls_in_flight(), 0);
        let error = client.call("", "x").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid DRPC request: the function name is empty"
        );
        // Nobody serves `nobody`: the call waits, then the server stops under it.
        let waiting = client.call("nobody", "x");
        let stranger = ClusterSecret::new(*b"not the cluster's secret").unwrap();
        let stranger = AsyncDrpcClient::connect(&address, &stranger).await.unwrap();
        let error = stranger.call("exclaim", "x").await.unwrap_err();
        assert!(
            matches!(error, DrpcError::Unauthenticated { .. }),
            "{error}"
        );
        let started = Instant::now();
        let stopping = tokio::task::spawn_blocking(move || server.stop());
        let error = waiting.await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(
                error,
                DrpcError::Refused(CallError::ShuttingDown) | DrpcError::Link(_)
            ),
            "{error}"
        );
        stopping.await.unwrap();
        let error = client.call("exclaim", "after").await.unwrap_err();
        assert!(matches!(error, DrpcError::Link(_)), "{error}");
    });
    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn a_failing_function_and_a_slow_one_end_with_errors() {
    let server = DrpcServer::start(DrpcServerConfig::local(), secret()).unwrap();
    let servers = DrpcServers::new(vec![server.address().to_string()], cluster_secret()).unwrap();
    let mut failing = LinearDrpcBuilder::new("refuse", servers.clone());
    failing.add_bolt("refuse", || Refuse, 1);
    let failing = squall::run(failing.build("refuse", TopologyConfig::default()).unwrap()).unwrap();
    // Held requests are neither answered nor acked (a plain topology: no auto-ack).
    let mut holding = TopologyBuilder::new();
    holding.set_spout(
        "requests",
        move || DrpcSpout::new("hold", servers.clone(), SpoutShape::Plain),
        1,
    );
    holding
        .set_bolt("hold", || Hold, 1)
        .shuffle_grouping("requests");
    let holding = squall::run(holding.build("hold", TopologyConfig::default()).unwrap()).unwrap();

    let mut client = DrpcClient::connect(&server.address().to_string(), &cluster_secret())
        .unwrap()
        .with_timeout(Duration::from_millis(700));
    let error = client.call("refuse", "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "DRPC request for \"refuse\" failed: the request's tuple tree failed or timed out in \
         the topology"
    );
    let started = Instant::now();
    let error = client.call("hold", "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "DRPC request for \"hold\" timed out after 700 ms"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nobody serves this one: the same timeout.
    let error = client.call("nobody", "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "DRPC request for \"nobody\" timed out after 700 ms"
    );
    let error = client.call("", "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid DRPC request: the function name is empty"
    );
    // The connection still serves calls after errors.
    let error = client.call("refuse", "y").unwrap_err();
    assert!(error.to_string().contains("failed"), "{error}");

    failing.kill(Duration::from_secs(2));
    holding.kill(Duration::from_secs(2));
    server.stop();
}

#[test]
fn killing_one_of_two_servers_fails_only_its_own_requests() {
    let mut doomed = SquallProcess::drpc_server(&squall(), "10s");
    let survivor = SquallProcess::drpc_server(&squall(), "10s");
    let running =
        squall::run(exclaim_topology(vec![doomed.address(), survivor.address()])).unwrap();

    let killed = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|index| {
            let address = if index % 2 == 0 {
                doomed.address()
            } else {
                survivor.address()
            };
            let killed = killed.clone();
            std::thread::spawn(move || {
                let mut client = DrpcClient::connect(&address, &cluster_secret())
                    .unwrap()
                    .with_timeout(Duration::from_secs(10));
                let (mut answered, mut failed) = (0u64, Vec::new());
                let stop_at = Instant::now() + Duration::from_secs(4);
                let mut n = 0;
                while Instant::now() < stop_at {
                    n += 1;
                    let argument = format!("{index}-{n}");
                    let call = Instant::now();
                    match client.call("exclaim", &argument) {
                        Ok(answer) => {
                            assert_eq!(answer, format!("{argument}!"));
                            answered += 1;
                        }
                        Err(error) => {
                            assert!(call.elapsed() < Duration::from_secs(12), "a call hung");
                            failed.push((killed.load(Ordering::SeqCst), error.to_string()));
                            break;
                        }
                    }
                }
                (index, answered, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    killed.store(true, Ordering::SeqCst);
    doomed.kill();
    for client in clients {
        let (index, answered, failed) = client.join().unwrap();
        assert!(answered > 0, "client {index} got no answer before the kill");
        if index % 2 == 0 {
            // Its server died: its call in flight ends with an error, after the kill.
            assert_eq!(failed.len(), 1, "client {index}: {failed:?}");
            assert!(
                failed[0].0,
                "client {index} failed before the kill: {failed:?}"
            );
        } else {
            assert!(
                failed.is_empty(),
                "client {index} of the survivor: {failed:?}"
            );
        }
    }
    // The survivor keeps answering.
    let mut client = DrpcClient::connect(&survivor.address(), &cluster_secret()).unwrap();
    assert_eq!(client.call("exclaim", "still").unwrap(), "still!");
    running.kill(Duration::from_secs(2));
}

/// The exact reach of every URL of the example's data set.
fn expected_reach(graph: &Path) -> BTreeMap<String, usize> {
    let graph: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(graph).unwrap()).unwrap();
    let followers = &graph["followers"];
    graph["tweeters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(url, tweeters)| {
            let reached: BTreeSet<&str> = tweeters
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|user| followers[user.as_str().unwrap()].as_array().unwrap())
                .map(|follower| follower.as_str().unwrap())
                .collect();
            (url.clone(), reached.len())
        })
        .collect()
}

#[test]
fn reach_answers_exactly_from_a_topology_file_in_local_mode() {
    squall_test_support::require_python_module("pystorm");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/reach");
    let expected = expected_reach(&example.join("data/graph.json"));
    assert_eq!(expected.len(), 20);
    let local = SquallProcess::local_with_drpc(&squall(), &example.join("topology.yaml"), "120s");

    // Several clients at once, each URL asked twice, so requests overlap in the topology.
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let address = local.address();
            let urls: Vec<(String, usize)> = expected
                .iter()
                .map(|(url, reach)| (url.clone(), *reach))
                .collect();
            std::thread::spawn(move || {
                let mut client = DrpcClient::connect(&address, &cluster_secret())
                    .unwrap()
                    .with_timeout(Duration::from_secs(60));
                for (url, reach) in urls.iter().skip(caller * 5).chain(urls.iter()).take(40) {
                    let answer = client.call("reach", url).unwrap();
                    assert_eq!(answer, reach.to_string(), "reach of {url}");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    // An unknown URL reaches nobody.
    let mut client = DrpcClient::connect(&local.address(), &cluster_secret()).unwrap();
    assert_eq!(
        client.call("reach", "https://example.com/none").unwrap(),
        "0"
    );

    // The command line asks the same server.
    let output = std::process::Command::new(squall())
        .args(["drpc", "call", "reach", "https://example.com/3", "--server"])
        .arg(local.address())
        .env("SQUALL_CLUSTER_SECRET", TEST_SECRET)
        .env_remove("SQUALL_CONF")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        expected["https://example.com/3"].to_string()
    );
    let output = std::process::Command::new(squall())
        .args(["drpc", "call", "reach", "x", "--server"])
        .arg(local.address())
        .env("SQUALL_CLUSTER_SECRET", "another secret, long enough")
        .env_remove("SQUALL_CONF")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("do not share the cluster secret"),
        "{output:?}"
    );
}

/// The example on a real cluster: its workers hold only their topology's worker key, which
/// the `squall drpc` daemon derives from the cluster secret, and the answers are exact.
#[test]
fn reach_answers_exactly_on_a_cluster() {
    squall_test_support::require_python_module("pystorm");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/reach");
    let expected = expected_reach(&example.join("data/graph.json"));
    let mut cluster = squall_tests::cluster::Cluster::new(
        &squall(),
        1,
        1,
        2,
        squall_tests::cluster::Timings::default(),
        &[],
    );
    let drpc = SquallProcess::drpc_server(&squall(), "60s");
    let servers = format!("servers: [\"{}\"]", drpc.address());
    let source = cluster.dir.path().join("reach");
    std::fs::create_dir_all(source.join("data")).unwrap();
    for file in ["tweeters_bolt.py", "followers_bolt.py", "data/graph.json"] {
        std::fs::copy(example.join(file), source.join(file)).unwrap();
    }
    let topology = std::fs::read_to_string(example.join("topology.yaml"))
        .unwrap()
        .replace(
            "params: {function: reach, linear: true}",
            &format!("params: {{function: reach, linear: true, {servers}}}"),
        )
        .replace(
            "builtin: drpc_return",
            &format!("builtin: drpc_return\n    params: {{{servers}}}"),
        );
    assert_eq!(topology.matches(&servers).count(), 2, "{topology}");
    std::fs::write(source.join("topology.yaml"), topology).unwrap();
    cluster.start_and_settle();
    let file = source.join("topology.yaml");
    let (ok, stdout, stderr) = cluster.cli(&["submit", file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");

    let mut client = DrpcClient::connect(&drpc.address(), &cluster_secret())
        .unwrap()
        .with_timeout(Duration::from_secs(60));
    for (url, reach) in &expected {
        let answer = client.call("reach", url).unwrap_or_else(|error| {
            panic!("reach of {url}: {error}\n{}", cluster.logs());
        });
        assert_eq!(answer, reach.to_string(), "reach of {url}");
    }
    let (ok, stdout, _) = cluster.cli(&["kill", "reach", "--wait", "0"]);
    assert!(ok, "{stdout}");
}

/// Runs `squall subscribe` with `args` against `local`'s HTTP port, with `secret`, giving it
/// at most `within`; returns its status, standard output and standard error.
fn squall_subscribe(
    local: &SquallProcess,
    secret: &str,
    args: &[&str],
    within: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = std::process::Command::new(squall())
        .arg("subscribe")
        .args(args)
        .args(["--server", &local.http_address()])
        .env("SQUALL_CLUSTER_SECRET", secret)
        .env_remove("SQUALL_CONF")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!("squall subscribe {args:?} did not end in {within:?}: {output:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The trending example publishes its rolling top words every second; `squall subscribe`
/// prints them as JSON lines and stops after `--count`, and refuses a wrong secret.
#[test]
fn a_subscriber_follows_the_trending_example_in_local_mode() {
    squall_test_support::require_python_module("pystorm");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/trending");
    let local = SquallProcess::local_with_drpc(&squall(), &example.join("topology.yaml"), "60s");

    let (status, stdout, stderr) = squall_subscribe(
        &local,
        TEST_SECRET,
        &["trending", "trending", "--count", "8"],
        Duration::from_secs(30),
    );
    assert!(status.success(), "{stdout}\n{stderr}");
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 8, "{stdout}");
    for row in &rows {
        let rank = row[0].as_u64().unwrap_or_default();
        assert!((1..=5).contains(&rank), "{row}");
        assert!(
            row[1].as_str().is_some_and(|word| !word.is_empty()),
            "{row}"
        );
        assert!(row[2].as_u64().is_some_and(|count| count > 0), "{row}");
    }
    assert!(rows.iter().any(|row| row[0] == 1), "{stdout}");

    let (status, _, stderr) = squall_subscribe(
        &local,
        "another secret, long enough",
        &["trending", "trending", "--count", "1"],
        Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(
        stderr.contains("refused the subscription (401): unauthenticated"),
        "{stderr}"
    );
}

/// A subscriber that never reads is dropped once its queue is full, and its stream ends
/// with `event: dropped`; meanwhile a reading subscriber gets every tuple, without a gap,
/// at the rate the topology publishes.
#[test]
fn a_slow_subscriber_is_dropped_while_a_reading_one_keeps_up() {
    use squall::drpc::subscribe::{Event, Subscription};

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flood.yaml");
    // About 700-byte tuples, 3,000 a second: a never-read connection's socket buffers fill
    // in a couple of seconds, then its queue.
    std::fs::write(
        &file,
        "name: flood\n\
         spouts:\n  - {id: sentences, builtin: sentences, \
         params: {rate: 3000, words_per_sentence: 100, tracked: false}}\n\
         bolts:\n  - {id: publish, builtin: publish, params: {stream: sentences}}\n\
         streams:\n  - {from: sentences, to: publish, grouping: shuffle}\n",
    )
    .unwrap();
    let local = SquallProcess::local_with_drpc(&squall(), &file, "60s");
    let open = || {
        Subscription::open(
            &local.http_address(),
            &cluster_secret(),
            "flood",
            "sentences",
            Duration::from_secs(10),
        )
        .unwrap()
    };
    let mut slow = open();
    let mut fast = open();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match fast.next_event().unwrap() {
                    Some(Event::Tuple { id, values }) => {
                        assert!(values[0].as_str().is_some(), "{values}");
                        ids.push((Instant::now(), id.unwrap()));
                    }
                    other => panic!("the reading subscriber's stream ended: {other:?}"),
                }
            }
            ids
        })
    };

    std::thread::sleep(Duration::from_secs(6));
    let began_reading = Instant::now();
    let mut slow_events = 0;
    let dropped = loop {
        assert!(
            began_reading.elapsed() < Duration::from_secs(10),
            "the slow subscriber was not dropped: it still reads tuples"
        );
        match slow.next_event() {
            Ok(Some(Event::Tuple { .. })) => slow_events += 1,
            Ok(Some(Event::Dropped(reason))) => break reason,
            other => panic!("the slow subscriber was not told it was dropped: {other:?}"),
        }
    };
    assert!(dropped.contains("too slow"), "{dropped}");
    assert!(
        matches!(slow.next_event(), Ok(None)),
        "the stream goes on after the drop"
    );
    // The reading subscriber keeps getting tuples after the drop.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let ids = reader.join().unwrap();

    let (first, last) = (ids[0].1, ids[ids.len() - 1].1);
    assert_eq!(
        ids.len() as u64,
        last - first + 1,
        "the reading subscriber missed tuples"
    );
    assert!(
        ids.windows(2).all(|pair| pair[1].1 == pair[0].1 + 1),
        "out of order"
    );
    let after_drop = ids.iter().filter(|(when, _)| *when > began_reading).count();
    assert!(
        last - first > 5_000 && after_drop > 500,
        "published {} tuples to the reading subscriber, {after_drop} after the drop",
        last - first + 1
    );
    assert!(
        (slow_events as u64) < last - first,
        "the slow subscriber got {slow_events} tuples"
    );

    // The server's figures show the drop and what was published.
    let metrics = http_get(&local.http_address(), "/metrics");
    assert!(
        metrics.contains("squall_drpc_subscribers_dropped_total{stream=\"flood/sentences\"} 1\n"),
        "{metrics}"
    );
    let published = metric_value(
        &metrics,
        "squall_drpc_published_tuples_total{stream=\"flood/sentences\"}",
    );
    assert!(
        published >= last as f64,
        "published {published}, read up to {last}"
    );
}

/// The body of `GET path` on `address`, which must answer 200.
fn http_get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the sample `series` (name and labels) on a Prometheus page.
fn metric_value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {page}"))
}

/// Counts to `limit`, then rests.
struct CountTo {
    next: u64,
    limit: u64,
}

impl Spout for CountTo {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n"]);
    }
    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.next == self.limit {
            output.idle_for(Duration::from_millis(5));
            return;
        }
        output.emit(&[Value::U64(self.next)]);
        self.next += 1;
    }
}

/// A publisher whose server is away drops the oldest tuples beyond its queue, and tells
/// the server how many once it is back; the server's figures count every call by outcome.
#[test]
fn the_server_counts_calls_and_what_publishers_dropped() {
    let address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let servers = DrpcServers::new(vec![address.to_string()], cluster_secret()).unwrap();
    let mut builder = TopologyBuilder::new();
    builder.set_spout(
        "count",
        || CountTo {
            next: 0,
            limit: 100,
        },
        1,
    );
    builder
        .set_bolt(
            "publish",
            move || PublishBolt::with_capacity("numbers", servers.clone(), 10).unwrap(),
            1,
        )
        .shuffle_grouping("count");
    let running =
        squall::run(builder.build("pubdrop", TopologyConfig::default()).unwrap()).unwrap();
    // All 100 are queued for the absent server, which keeps the newest 10.
    let deadline = Instant::now() + Duration::from_secs(20);
    while running
        .metrics()
        .component("publish")
        .map_or(0, |figures| figures.counters.executed)
        < 100
    {
        assert!(
            Instant::now() < deadline,
            "the publish bolt did not take 100 tuples"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = DrpcServer::start(
        DrpcServerConfig {
            listen: address,
            ..DrpcServerConfig::local()
        },
        secret(),
    )
    .unwrap();
    let published = "squall_drpc_published_tuples_total{stream=\"pubdrop/numbers\"}";
    loop {
        let metrics = server.metrics();
        if metrics.contains(published) && metric_value(&metrics, published) == 10.0 {
            assert_eq!(
                metric_value(
                    &metrics,
                    "squall_drpc_publisher_dropped_tuples_total{stream=\"pubdrop/numbers\"}"
                ),
                90.0,
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "nothing published: {metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut client = DrpcClient::connect(&address.to_string(), &cluster_secret())
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    assert!(client.call("nobody", "x").is_err());
    assert!(client.call("", "x").is_err());
    let metrics = server.metrics();
    for line in [
        "squall_drpc_calls_total{function=\"nobody\",outcome=\"timed_out\"} 1\n",
        "squall_drpc_calls_total{function=\"(invalid)\",outcome=\"refused\"} 1\n",
        "squall_drpc_call_seconds_count{function=\"nobody\"} 1\n",
        "squall_drpc_requests_open 0\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    running.kill(Duration::from_secs(2));
    server.stop();
}
