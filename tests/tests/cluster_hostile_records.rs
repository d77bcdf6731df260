//! Records in ZooKeeper are input: whoever can write to the ensemble must not be able to
//! steer a supervisor's files or programs outside its data directory, nor stop scheduling
//! by leaving a record nobody can read; numbers in requests are checked. Real ZooKeeper,
//! real nimbus and supervisor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use squall::cluster::paths;
use squall::cluster::records::{AssignedWorker, Assignment, TopologyRecord};
use squall::cluster::store::{self, Store, ZkStore, decode, encode};
use squall_tests::cluster::{Cluster, Timings};
use squall_tests::zookeeper::test_identity;

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn contract_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-contract-worker"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Every path under `dir`, recursively.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        found.push(entry.path());
        if entry.path().is_dir() {
            found.extend(tree(&entry.path()));
        }
    }
    found
}

#[test]
fn path_values_in_zookeeper_are_refused_and_scheduling_goes_on() {
    let mut cluster = Cluster::new(&squall(), 1, 1, 3, Timings::default(), &[]);
    cluster.start_and_settle();
    let client = cluster.client();
    let submit = |name: &str| {
        client
            .submit_program(
                &contract_worker(),
                &strings(&["--name", name, "--workers", "1", "--executors", "1"]),
            )
            .expect("submits")
            .topology_id
    };
    let first = submit("contract");
    let beating = |topology: &str| {
        cluster
            .workers_of(0)
            .into_iter()
            .any(|worker| worker.topology_id == topology)
    };
    cluster.wait_for("the first worker", Duration::from_secs(15), || {
        beating(&first).then_some(())
    });

    // A directory beside the supervisor's data directory, which `../../outside` from its
    // workers or artifacts directory reaches, and which absolute values name directly.
    let outside = cluster.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let free_port = cluster.supervisors[0].config.supervisor.ports[2];
    let settings = cluster.base.zookeeper.clone();
    let absolute = format!("{}/absolute-1", outside.display());
    let hostile_ids = ["../../outside/escape-1", absolute.as_str()];
    runtime().block_on(async {
        let zk = ZkStore::connect(&settings, &test_identity())
            .await
            .expect("connects");
        let real: Assignment = {
            let path = paths::assignment(&first);
            decode(&path, &zk.get(&path).await.unwrap().unwrap().data).unwrap()
        };
        let hostile = |topology_id: &str, artifact: &str| Assignment {
            topology_id: topology_id.to_owned(),
            artifact: artifact.to_owned(),
            workers: vec![AssignedWorker {
                port: free_port,
                ..real.workers[0].clone()
            }],
            ..real.clone()
        };
        store::put(
            &zk,
            &paths::assignment("escape-1"),
            &encode(&hostile(hostile_ids[0], &real.artifact)),
        )
        .await
        .unwrap();
        store::put(
            &zk,
            &paths::assignment("absolute-1"),
            &encode(&hostile(hostile_ids[1], &real.artifact)),
        )
        .await
        .unwrap();
        store::put(
            &zk,
            &paths::assignment("digest-1"),
            &encode(&hostile("digest-1", "../../outside/artifact")),
        )
        .await
        .unwrap();
        // A topology whose artifact is a path, and one that is not a record at all.
        let mut record: TopologyRecord = {
            let path = paths::topology(&first);
            decode(&path, &zk.get(&path).await.unwrap().unwrap().data).unwrap()
        };
        record.id = "stolen-1".into();
        record.name = "stolen".into();
        record.artifact = format!("{}/stolen", outside.display());
        store::put(&zk, &paths::topology("stolen-1"), &encode(&record))
            .await
            .unwrap();
        store::put(&zk, &paths::topology("garbage-1"), b"{not json")
            .await
            .unwrap();

        // The store hands none of them on.
        let assignments = store::read_assignments(&zk).await.unwrap();
        assert_eq!(assignments.keys().collect::<Vec<_>>(), [&first]);
        let topologies = store::read_topologies(&zk).await.unwrap();
        assert_eq!(topologies.keys().collect::<Vec<_>>(), [&first]);
        zk.close().await;
    });

    // The supervisor names what it refused...
    let supervisor = &cluster.supervisors[0];
    for refused in [
        r#"assignment topology_id "../../outside/escape-1" is refused"#.to_owned(),
        format!(r#"assignment topology_id "{absolute}" is refused"#),
        r#"assignment artifact "../../outside/artifact" is refused"#.to_owned(),
    ] {
        cluster.wait_for(
            &format!("the supervisor to log: {refused}"),
            Duration::from_secs(10),
            || supervisor.log().contains(&refused).then_some(()),
        );
    }
    // ...and so does nimbus, at its next scheduling round after the write.
    let garbage = "znode /topologies/garbage-1 does not hold a valid record";
    cluster.wait_for(
        &format!("nimbus to log: {garbage}"),
        Duration::from_secs(10),
        || cluster.nimbuses[0].log().contains(garbage).then_some(()),
    );

    // ...scheduling goes on: a new topology is placed and started...
    let second = submit("contract2");
    cluster.wait_for("the second worker", Duration::from_secs(15), || {
        beating(&second).then_some(())
    });
    assert!(beating(&first));
    // ...the command line lists the cluster...
    let (ok, stdout, stderr) = cluster.cli(&["list"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("contract ") && stdout.contains("contract2") && !stdout.contains("stolen"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = cluster.cli(&["status", "contract2"]);
    assert!(ok && stdout.contains("active"), "{stdout}{stderr}");

    // ...and nothing was written outside the supervisor's directory, nor under the names
    // the hostile values would make inside it.
    assert_eq!(tree(&outside), Vec::<PathBuf>::new());
    let data_dir = &supervisor.config.supervisor.data_dir;
    for path in tree(data_dir) {
        let name = path.to_string_lossy();
        assert!(
            !name.contains("escape") && !name.contains("absolute") && !name.contains("digest-1"),
            "{name}"
        );
    }
    assert!(!Path::new(&format!("{absolute}-{free_port}")).exists());

    // Numbers in requests are checked too: a wait beyond any clock is refused, and the
    // topology keeps running rather than waiting to be killed forever.
    let wait = u64::MAX.to_string();
    let (ok, _, stderr) = cluster.cli(&["kill", "contract2", "--wait", &wait]);
    assert!(
        !ok && stderr.contains(&format!("a wait of {wait} s is beyond any clock")),
        "{stderr}"
    );
    let (ok, stdout, stderr) = cluster.cli(&["status", "contract2"]);
    assert!(
        ok && stdout.contains("status     active"),
        "{stdout}{stderr}"
    );
}

#[test]
fn a_topology_whose_record_turns_to_garbage_is_frozen_not_removed() {
    let mut cluster = Cluster::new(&squall(), 1, 1, 3, Timings::default(), &[]);
    cluster.start_and_settle();
    let client = cluster.client();
    let submit = |name: &str| {
        client
            .submit_program(
                &contract_worker(),
                &strings(&["--name", name, "--workers", "1", "--executors", "1"]),
            )
            .expect("submits")
            .topology_id
    };
    let worker_of = |topology: &str| {
        cluster
            .workers_of(0)
            .into_iter()
            .find(|worker| worker.topology_id == topology)
            .map(|worker| worker.pid)
    };
    let first = submit("contract");
    let pid = cluster.wait_for("the first worker", Duration::from_secs(15), || {
        worker_of(&first)
    });
    let settings = cluster.base.zookeeper.clone();
    let record_path = paths::topology(&first);
    let assignment_path = paths::assignment(&first);
    let (record, assignment) = runtime().block_on(async {
        let zk = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        let record = zk.get(&record_path).await.unwrap().unwrap();
        let assignment = zk.get(&assignment_path).await.unwrap().unwrap();
        store::put(&zk, &record_path, b"{\"id\": garbage")
            .await
            .unwrap();
        zk.close().await;
        (record, assignment)
    });

    let frozen = format!("topology={first}");
    cluster.wait_for(
        "nimbus to freeze the topology",
        Duration::from_secs(10),
        || {
            let log = cluster.nimbuses[0].log();
            log.lines()
                .any(|line| line.contains("assignment is frozen") && line.contains(&frozen))
                .then_some(())
        },
    );
    // Scheduling goes on for the others...
    let second = submit("contract2");
    cluster.wait_for("the second worker", Duration::from_secs(15), || {
        worker_of(&second)
    });
    // ...while the frozen topology keeps its assignment, unchanged, and its worker.
    std::thread::sleep(Duration::from_secs(2));
    runtime().block_on(async {
        let zk = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        let now = zk
            .get(&assignment_path)
            .await
            .unwrap()
            .expect("still assigned");
        assert_eq!(
            (now.data, now.version),
            (assignment.data, assignment.version)
        );
        // The record comes back: the topology carries on where it was.
        store::put(&zk, &record_path, &record.data).await.unwrap();
        zk.close().await;
    });
    assert_eq!(worker_of(&first), Some(pid), "{}", cluster.logs());
    cluster.wait_for(
        "nimbus to see the record again",
        Duration::from_secs(10),
        || {
            let log = cluster.nimbuses[0].log();
            log.lines()
                .any(|line| line.contains("record is usable again") && line.contains(&frozen))
                .then_some(())
        },
    );
    let (ok, stdout, stderr) = cluster.cli(&["status", "contract"]);
    assert!(
        ok && stdout.contains("status     active"),
        "{stdout}{stderr}"
    );
    assert_eq!(worker_of(&first), Some(pid));

    // A record deleted outright is a topology gone: its assignment goes and its worker stops.
    runtime().block_on(async {
        let zk = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        zk.delete(&record_path, None).await.unwrap();
        zk.close().await;
    });
    cluster.wait_for("the orphan worker to stop", Duration::from_secs(15), || {
        worker_of(&first).is_none().then_some(())
    });
    assert!(worker_of(&second).is_some());
}
