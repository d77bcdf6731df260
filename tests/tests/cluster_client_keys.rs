//! Named client keys on a real cluster (ZooKeeper, nimbus, a supervisor, worker
//! processes): a viewer reads but cannot kill, a submitter manages only what it submitted,
//! an unknown key is not authenticated, and keys added to the keys file work at once —
//! while the admin's word count runs on and loses nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use squall::cluster::protocol::ApiError;
use squall::cluster::{ClientError, NimbusClient, Secret};
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

/// Writes an owner-only key file holding `secret`.
fn key_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, secret).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn key_entry(name: &str, role: &str) -> String {
    format!("[[key]]\nname = \"{name}\"\nrole = \"{role}\"\nsecret_file = \"{name}.key\"\n")
}

/// The refusal's reason, when `result` is a refusal for want of a role.
fn forbidden<T: std::fmt::Debug>(result: Result<T, ClientError>) -> String {
    match result {
        Err(ClientError::Refused(ApiError::Forbidden { reason })) => reason,
        other => panic!("not refused for its role: {other:?}"),
    }
}

fn unauthenticated<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    match result {
        Err(ClientError::Refused(ApiError::Unauthenticated)) => {}
        other => panic!("not refused as unauthenticated: {other:?}"),
    }
}

#[test]
fn roles_bound_what_client_keys_may_do() {
    let messages: u64 = 1_500;
    let mut cluster = Cluster::new(&squall(), 1, 1, 3, Timings::default(), &[]);
    let keys_dir = cluster.dir.path().join("keys");
    std::fs::create_dir(&keys_dir).unwrap();
    let view_key = key_file(&keys_dir, "ops-view", "ops-view-secret-0123456789");
    let ci_key = key_file(&keys_dir, "ci", "ci-secret-0123456789abcdef");
    let keys_path = keys_dir.join("clients.toml");
    std::fs::write(
        &keys_path,
        key_entry("ops-view", "viewer") + &key_entry("ci", "submitter"),
    )
    .unwrap();
    let nimbus = &mut cluster.nimbuses[0];
    nimbus.config.nimbus.client_keys = Some(keys_path.clone());
    std::fs::write(&nimbus.config_path, nimbus.config.to_toml()).unwrap();
    let state = cluster.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    cluster.start_and_settle();

    // The admin (the cluster secret) runs a tracked word count.
    let admin = cluster.client();
    admin
        .submit_program(
            &wordcount(),
            &strings(&[
                "--messages",
                &messages.to_string(),
                "--state-dir",
                state.to_str().unwrap(),
                "--workers",
                "1",
                "--timeout-ms",
                "5000",
                "--pending",
                "100",
                "--rate",
                "300",
            ]),
        )
        .expect("the admin submits");
    cluster.wait_for("the first acks", Duration::from_secs(30), || {
        (!LedgerCheck::read(&state).acked.is_empty()).then_some(())
    });

    // Client keys open no ZooKeeper node: they ask the nimbus directly.
    let leader = cluster.leader().expect("a leader").address();
    let mut config = cluster.client_config();
    config.client.nimbus = Some(leader.clone());
    let with_key = |name: &str, secret: &str| {
        NimbusClient::with_key(config.clone(), name, Secret::new(secret, "test").unwrap())
    };

    // A viewer lists and reads, and may not kill.
    let viewer = with_key("ops-view", "ops-view-secret-0123456789");
    let (topologies, _) = viewer.list().expect("a viewer lists");
    assert_eq!(topologies.len(), 1);
    assert_eq!(topologies[0].name, "wordcount");
    let report = viewer.status("wordcount").expect("a viewer reads a status");
    assert_eq!(report.record.submitted_by, None);
    assert_eq!(
        forbidden(viewer.kill("wordcount", Some(0))),
        "key 'ops-view' has role viewer; kill needs submitter or admin"
    );
    // So does the command line, with its key options.
    let (ok, _, stderr) = cluster.cli(&[
        "kill",
        "wordcount",
        "--wait",
        "0",
        "--nimbus",
        &leader,
        "--key-name",
        "ops-view",
        "--key-file",
        view_key.to_str().unwrap(),
    ]);
    assert!(!ok, "the viewer's kill succeeded");
    assert!(
        stderr.contains("key 'ops-view' has role viewer; kill needs submitter or admin"),
        "{stderr}"
    );

    // A submitter manages what it submitted, and nothing else.
    let ci = with_key("ci", "ci-secret-0123456789abcdef");
    ci.submit_program(
        &contract_worker(),
        &strings(&["--name", "ci-job", "--workers", "1", "--executors", "1"]),
    )
    .expect("a submitter submits");
    assert_eq!(
        ci.status("ci-job").unwrap().record.submitted_by.as_deref(),
        Some("ci")
    );
    assert_eq!(
        forbidden(ci.kill("wordcount", Some(0))),
        "key 'ci' has role submitter; kill of topology \"wordcount\" needs admin, or the \
         submitter key that submitted it"
    );
    let (ok, stdout, stderr) = cluster.cli(&[
        "kill",
        "ci-job",
        "--wait",
        "0",
        "--nimbus",
        &leader,
        "--key-name",
        "ci",
        "--key-file",
        ci_key.to_str().unwrap(),
    ]);
    assert!(ok, "the submitter cannot kill its own topology: {stderr}");
    assert!(stdout.contains("topology ci-job"), "{stdout}");

    // An unknown name, or a known one with another secret, is not authenticated.
    unauthenticated(with_key("ghost", "ghost-secret-0123456789").list());
    unauthenticated(with_key("ci", "ops-view-secret-0123456789").list());
    let log = cluster.nimbuses[0].log();
    assert!(
        log.contains("refused a request naming an unknown client key"),
        "{log}"
    );

    // A key added to the file works at once.
    key_file(&keys_dir, "ops-late", "ops-late-secret-0123456789");
    let mut keys = std::fs::read_to_string(&keys_path).unwrap();
    keys.push_str(&key_entry("ops-late", "viewer"));
    std::fs::write(&keys_path, keys).unwrap();
    with_key("ops-late", "ops-late-secret-0123456789")
        .list()
        .expect("a new key lists without a restart");

    // The word count never noticed: still listed as active, and nothing is lost.
    let (topologies, _) = viewer.list().unwrap();
    let wordcount = topologies
        .iter()
        .find(|topology| topology.name == "wordcount")
        .expect("the word count is still listed");
    assert_eq!(wordcount.status, "active");
    let check = cluster.wait_for("every message acked", Duration::from_secs(60), || {
        let check = LedgerCheck::read(&state);
        (check.acked.len() as u64 == messages).then_some(check)
    });
    check.assert_consistent(messages, true);
    admin.kill("wordcount", Some(0)).expect("the admin kills");
}
