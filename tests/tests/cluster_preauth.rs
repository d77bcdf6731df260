//! Nimbus before a connection has authenticated: it reads at most a small request frame,
//! gives the request a short deadline, and keeps a bounded number of such connections, so
//! that connecting without the secret costs it little and locks no client out. Real
//! ZooKeeper, real nimbus and supervisor daemons, a real word count.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use squall::cluster::protocol::{
    self, ApiError, Hello, MAX_FRAME, MAX_REQUEST_FRAME, Request, Response,
};
use squall::cluster::{ClientError, secret::PROOF_LEN};
use squall_tests::cluster::{Cluster, Timings};
use squall_tests::ledger::LedgerCheck;

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn wordcount() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-wordcount"))
}

fn contract_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-contract-worker"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

/// Changes nimbus `index`'s configuration before it starts.
fn configure_nimbus(
    cluster: &mut Cluster,
    index: usize,
    change: impl FnOnce(&mut squall::cluster::config::NimbusSettings),
) {
    let nimbus = &mut cluster.nimbuses[index];
    change(&mut nimbus.config.nimbus);
    std::fs::write(&nimbus.config_path, nimbus.config.to_toml()).unwrap();
}

fn nimbus_address(cluster: &Cluster) -> String {
    cluster.leader().expect("a leader").address()
}

/// Connects as a client would and reads the hello.
fn greeted(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let hello: Hello = protocol::parse(
        &protocol::read_frame(&mut stream, address, MAX_FRAME).unwrap(),
        address,
    )
    .unwrap();
    assert_eq!(hello.protocol, protocol::PROTOCOL);
    stream
}

/// Reads until the other side closes; true if it did (rather than timing out).
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 256];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sockets the process `pid` holds open.
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

#[test]
fn an_oversized_or_slow_request_is_refused_before_authentication() {
    let mut cluster = Cluster::new(&squall(), 1, 0, 1, Timings::default(), &[]);
    configure_nimbus(&mut cluster, 0, |nimbus| {
        nimbus.authentication_timeout_ms = 1_000;
    });
    cluster.start_and_settle();
    let address = nimbus_address(&cluster);

    // A length past the pre-authentication cap: refused at once, without a proof, and
    // closed; nimbus does not wait for (or buffer) the body.
    let mut stream = greeted(&address);
    let announced = MAX_REQUEST_FRAME as u32 + 1;
    stream.write_all(&announced.to_le_bytes()).unwrap();
    let refusal: Response = protocol::parse(
        &protocol::read_frame(&mut stream, &address, MAX_FRAME).unwrap(),
        &address,
    )
    .unwrap();
    assert_eq!(
        refusal,
        Response::Error(ApiError::RequestTooLarge {
            bytes: u64::from(announced),
            max: MAX_REQUEST_FRAME as u64,
        })
    );
    assert_eq!(
        ApiError::RequestTooLarge {
            bytes: 65_537,
            max: 65_536
        }
        .to_string(),
        "request refused: its 65537 bytes exceed the 65536 bytes nimbus reads before \
         authentication"
    );
    assert_eq!(
        protocol::read_frame(&mut stream, &address, PROOF_LEN).unwrap(),
        [0; PROOF_LEN]
    );
    assert!(closed_by_peer(&mut stream), "the connection is closed");
    assert!(
        cluster.nimbuses[0]
            .log()
            .contains("refused a request longer than nimbus reads before authentication"),
        "{}",
        cluster.logs()
    );

    // A client that would send such a request says so instead of sending it.
    let client = cluster.client();
    let error = client
        .call(
            &Request::Status {
                name: "x".repeat(MAX_REQUEST_FRAME),
            },
            &[],
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Refused(ApiError::RequestTooLarge { max: 65_536, .. })
        ),
        "{error}"
    );

    // A connection that sends nothing is closed after nimbus.authentication_timeout_ms.
    let mut idle = greeted(&address);
    let connected = Instant::now();
    assert!(closed_by_peer(&mut idle), "the idle connection is closed");
    let lasted = connected.elapsed();
    assert!(
        lasted >= Duration::from_millis(900) && lasted < Duration::from_secs(5),
        "closed after {lasted:?}"
    );

    // Nimbus answers authenticated requests all along.
    let (topologies, _) = client.list().expect("lists");
    assert!(topologies.is_empty());
}

#[test]
fn idle_connections_neither_lock_clients_out_nor_disturb_a_word_count() {
    const LIMIT: usize = 32;
    let messages: u64 = 3_000;
    let mut cluster = Cluster::new(&squall(), 1, 2, 2, Timings::default(), &[]);
    configure_nimbus(&mut cluster, 0, |nimbus| {
        nimbus.max_unauthenticated_connections = LIMIT;
    });
    let state = cluster.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let state_dir = state.to_str().unwrap().to_owned();
    let messages_arg = messages.to_string();
    let args = strings(&[
        "--messages",
        &messages_arg,
        "--state-dir",
        &state_dir,
        "--spouts",
        "1",
        "--relays",
        "1",
        "--counters",
        "2",
        "--workers",
        "2",
        "--timeout-ms",
        "5000",
        "--pending",
        "200",
        "--rate",
        "200",
    ]);
    cluster.start_and_settle();
    let client = cluster.client();
    client.submit_program(&wordcount(), &args).expect("submits");
    cluster.wait_for("the first acks", Duration::from_secs(30), || {
        (LedgerCheck::read(&state).acked.len() >= 100).then_some(())
    });

    // Connections that never send a request, opened steadily for as long as the clients
    // below work, and held open by this side.
    let address = nimbus_address(&cluster);
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let flooding = flooding.clone();
        let address = address.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let started = Instant::now();
            while flooding.load(Ordering::Relaxed)
                && held.len() < 4_000
                && started.elapsed() < Duration::from_secs(60)
            {
                if let Ok(stream) = TcpStream::connect(&address) {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            held.len()
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    let nimbus_pid = cluster.nimbuses[0].pid().expect("nimbus runs");
    for round in 0..5 {
        let (topologies, supervisors) = client
            .list()
            .unwrap_or_else(|error| panic!("list {round} failed: {error}{}", cluster.logs()));
        assert_eq!(topologies.len(), 1 + usize::from(round > 0));
        assert_eq!(supervisors.len(), 2);
        if round == 0 {
            client
                .submit_program(
                    &contract_worker(),
                    &strings(&["--name", "contract", "--workers", "1", "--executors", "1"]),
                )
                .unwrap_or_else(|error| panic!("submit failed: {error}{}", cluster.logs()));
        }
        // Whatever was opened, nimbus holds a bounded number of sockets.
        let sockets = open_sockets(nimbus_pid);
        assert!(
            sockets <= LIMIT + 16,
            "nimbus holds {sockets} sockets with a limit of {LIMIT} unauthenticated connections"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The new topology's supervisor fetched its artifact from nimbus through the flood.
    cluster.wait_for(
        "the contract topology's worker",
        Duration::from_secs(30),
        || {
            cluster
                .all_workers()
                .iter()
                .any(|(_, worker)| worker.topology_id.starts_with("contract-"))
                .then_some(())
        },
    );
    flooding.store(false, Ordering::Relaxed);
    let opened = flood.join().unwrap();
    assert!(
        opened > 10 * LIMIT,
        "only {opened} idle connections were opened"
    );
    eprintln!("{opened} idle connections opened while clients listed and submitted");

    let check = cluster.wait_for("every message acked", Duration::from_secs(120), || {
        let check = LedgerCheck::read(&state);
        (check.acked.len() as u64 == messages).then_some(check)
    });
    check.assert_consistent(messages, true);
    client.kill("wordcount", Some(0)).expect("kills");
    client.kill("contract", Some(0)).expect("kills");
}
