//! The cluster's znodes are private to the cluster's ZooKeeper identity: a client that
//! reaches ZooKeeper without it — unauthenticated, or with another digest — can neither
//! read the records nor alter or delete assignments nor register a supervisor, while a word
//! count runs on unharmed. A tree made world-open before the cluster used ACLs is made
//! private by nimbus at start. Real ZooKeeper, real nimbus, supervisor and workers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use squall::cluster::paths;
use squall_tests::cluster::{Cluster, RunningWorker, Timings};
use squall_tests::ledger::LedgerCheck;
use squall_tests::zookeeper::test_identity;
use zookeeper_client as zk;

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn wordcount() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-wordcount"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn acked(state: &Path) -> usize {
    LedgerCheck::read(state).acked.len()
}

/// A ZooKeeper client outside the cluster: unauthenticated, or with the digest `auth`.
async fn outsider(address: &str, auth: Option<&str>) -> zk::Client {
    let mut connector = zk::Client::connector().with_session_timeout(Duration::from_secs(10));
    if let Some(auth) = auth {
        connector = connector.with_auth("digest", auth.as_bytes());
    }
    connector.connect(address).await.expect("connects")
}

fn open_node() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn pids(workers: &[(usize, RunningWorker)]) -> Vec<u32> {
    let mut pids: Vec<u32> = workers.iter().map(|(_, worker)| worker.pid).collect();
    pids.sort_unstable();
    pids
}

#[test]
fn clients_without_the_cluster_identity_are_refused_and_the_word_count_runs_on() {
    let messages: u64 = 3_000;
    let mut cluster = Cluster::new(&squall(), 1, 1, 2, Timings::default(), &[]);
    let root = cluster.root.clone();
    let address = cluster.zookeeper.address();

    // A tree as a cluster left it before it used ACLs: world-open nodes, one of them a stale
    // record. And a node another ZooKeeper user made private to itself inside the tree.
    runtime().block_on(async {
        let anonymous = outsider(&address, None).await;
        anonymous.mkdir(&root, &open_node()).await.unwrap();
        for directory in [paths::SUPERVISORS, paths::ERRORS] {
            let path = format!("{root}{directory}");
            anonymous.create(&path, b"", &open_node()).await.unwrap();
        }
        let stale = format!("{root}{}", paths::supervisor("old-host"));
        anonymous.create(&stale, b"{}", &open_node()).await.unwrap();
        let foreign = outsider(&address, Some("squall:another-password")).await;
        let private = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        let foreign_path = format!("{root}{}/foreign-1", paths::ERRORS);
        foreign.create(&foreign_path, b"", &private).await.unwrap();
    });

    cluster.start_and_settle();
    let nimbus_log = || cluster.nimbuses[0].log();
    cluster.wait_for(
        "nimbus to make the old tree private",
        Duration::from_secs(10),
        || {
            let log = nimbus_log();
            (log.contains("are now private to the cluster")
                && log.contains("belong to another ZooKeeper identity"))
            .then_some(log)
        },
    );
    let log = nimbus_log();
    for restricted in ["/supervisors/old-host", "/errors"] {
        assert!(log.contains(restricted), "{log}");
    }
    assert!(log.contains("/errors/foreign-1"), "{log}");

    let state = cluster.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let args: Vec<String> = [
        "--messages",
        &messages.to_string(),
        "--state-dir",
        state.to_str().unwrap(),
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
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let client = cluster.client();
    let topology = client
        .submit_program(&wordcount(), &args)
        .expect("submits")
        .topology_id;
    let running = cluster.wait_for("two workers", Duration::from_secs(20), || {
        let workers = cluster.all_workers();
        (workers.len() == 2).then_some(pids(&workers))
    });
    cluster.wait_for("the first acks", Duration::from_secs(20), || {
        (acked(&state) >= 200).then_some(())
    });
    let acked_before = acked(&state);

    runtime().block_on(async {
        let record = format!("{root}{}", paths::topology(&topology));
        let assignment = format!("{root}{}", paths::assignment(&topology));
        let assignments = format!("{root}{}", paths::ASSIGNMENTS);
        let topologies = format!("{root}{}", paths::TOPOLOGIES);
        let fake_supervisor = format!("{root}{}", paths::supervisor("fake-host"));
        let fake_record =
            br#"{"id":"fake-host","host":"10.0.0.66","ports":[6700],"started_ms":0,"version":"0"}"#;
        for (who, auth) in [
            ("an unauthenticated client", None),
            (
                "a client with a wrong digest",
                Some("squall:wrong-password"),
            ),
        ] {
            let outsider = outsider(&address, auth).await;
            let refused = |operation: &str, result: Result<(), zk::Error>| {
                assert_eq!(result, Err(zk::Error::NoAuth), "{who}: {operation}");
            };
            refused(
                "read a topology record",
                outsider.get_data(&record).await.map(drop),
            );
            refused(
                "list the topologies",
                outsider.list_children(&topologies).await.map(drop),
            );
            refused(
                "read an assignment",
                outsider.get_data(&assignment).await.map(drop),
            );
            refused(
                "rewrite an assignment",
                outsider
                    .set_data(&assignment, b"{\"workers\":[]}", None)
                    .await
                    .map(drop),
            );
            refused(
                "delete an assignment",
                outsider.delete(&assignment, None).await,
            );
            refused(
                "create an assignment",
                outsider
                    .create(&format!("{assignments}/evil-1"), b"{}", &open_node())
                    .await
                    .map(drop),
            );
            refused(
                "register a fake supervisor",
                outsider
                    .create(
                        &fake_supervisor,
                        fake_record,
                        &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
                    )
                    .await
                    .map(drop),
            );
            refused(
                "open the root to everyone",
                outsider
                    .set_acl(&root, &zk::Acls::anyone_all(), None)
                    .await
                    .map(drop),
            );
        }
    });

    // The cluster's own credentials, as `squall zookeeper-auth` prints them for zkCli.sh,
    // read the records; every node, the migrated ones included, admits only them.
    let (ok, credentials, stderr) = cluster.cli(&["zookeeper-auth"]);
    assert!(ok, "{stderr}");
    let credentials = credentials.trim().to_owned();
    assert_eq!(credentials, test_identity().digest_credentials());
    runtime().block_on(async {
        let insider = outsider(&address, Some(&credentials)).await;
        let record = format!("{root}{}", paths::topology(&topology));
        assert!(insider.get_data(&record).await.is_ok());
        for path in [
            root.clone(),
            record,
            format!("{root}{}", paths::assignment(&topology)),
            format!("{root}{}", paths::supervisor("old-host")),
            format!("{root}{}", paths::supervisor("host0")),
        ] {
            let (acl, _) = insider.get_acl(&path).await.unwrap();
            assert_eq!(acl.len(), 1, "{path}: {acl:?}");
            assert_eq!(
                (acl[0].scheme(), acl[0].permission()),
                ("digest", zk::Permission::ALL),
                "{path}"
            );
            assert!(acl[0].id().starts_with("squall:"), "{path}: {acl:?}");
        }
    });

    // The topology runs on in the same workers and loses nothing.
    assert_eq!(pids(&cluster.all_workers()), running, "the workers run on");
    cluster.wait_for("processing to go on", Duration::from_secs(10), || {
        (acked(&state) > acked_before + 200).then_some(())
    });
    let check = cluster.wait_for("every message acked", Duration::from_secs(90), || {
        let check = LedgerCheck::read(&state);
        (check.acked.len() as u64 == messages).then_some(check)
    });
    check.assert_consistent(messages, true);
    assert_eq!(pids(&cluster.all_workers()), running, "no worker restarted");
    let (ok, stdout, stderr) = cluster.cli(&["list"]);
    assert!(ok && stdout.contains("wordcount"), "{stdout}{stderr}");
    client.kill("wordcount", Some(0)).expect("kills");
}
