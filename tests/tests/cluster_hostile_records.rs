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
        let zk = ZkStore::connect(&settings).await.expect("connects");
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
    assert!(
        cluster.nimbuses[0]
            .log()
            .contains("znode /topologies/garbage-1 does not hold a valid record"),
        "{}",
        cluster.logs()
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
