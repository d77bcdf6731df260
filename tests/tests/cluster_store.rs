//! The ZooKeeper store and the leader election against a real ZooKeeper server.

use std::time::{Duration, Instant};

use squall::cluster::Secret;
use squall::cluster::election;
use squall::cluster::paths;
use squall::cluster::records::{ErrorRecord, NimbusInfo, now_ms};
use squall::cluster::store::{
    self, Changes, NodeKind, Store, StoreError, Version, ZkIdentity, ZkStore, decode, encode,
};
use squall_tests::zookeeper::{ZooKeeper, test_identity};
use tokio::sync::watch;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn nodes_versions_and_roots_on_a_real_server() {
    let zookeeper = ZooKeeper::start();
    runtime().block_on(async {
        let root = zookeeper.fresh_root("nodes");
        let zk = ZkStore::connect(
            &zookeeper.settings(&root, Duration::from_secs(4)),
            &test_identity(),
        )
        .await
        .expect("connects");
        // The cluster directories exist from the start.
        for directory in paths::DIRECTORIES {
            assert!(zk.get(directory).await.unwrap().is_some(), "{directory}");
        }
        // Parents are created on demand.
        let path = "/workerbeats/wc-1/host-1:6700";
        zk.create(path, b"one", NodeKind::Persistent).await.unwrap();
        let node = zk.get(path).await.unwrap().unwrap();
        assert_eq!(node.data, b"one");
        assert!(!node.owned, "persistent nodes belong to no session");
        assert!(matches!(
            zk.create(path, b"again", NodeKind::Persistent).await,
            Err(StoreError::NodeExists { .. })
        ));
        // Compare-and-set.
        let version = zk.set(path, b"two", Some(node.version)).await.unwrap();
        assert_eq!(version, Version(node.version.0 + 1));
        let error = zk
            .set(path, b"three", Some(node.version))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "znode /workerbeats/wc-1/host-1:6700 changed concurrently (version mismatch)"
        );
        // Sequential nodes come back with their sequence, children sorted.
        let first = zk
            .create("/errors/wc-1/e-", b"{}", NodeKind::PersistentSequential)
            .await
            .unwrap();
        let second = zk
            .create("/errors/wc-1/e-", b"{}", NodeKind::PersistentSequential)
            .await
            .unwrap();
        assert!(first < second, "{first} {second}");
        assert_eq!(
            paths::sequence_of(&second),
            paths::sequence_of(&first).map(|n| n + 1)
        );
        assert_eq!(zk.children("/errors/wc-1").await.unwrap().len(), 2);
        assert!(zk.children("/errors/missing").await.unwrap().is_empty());
        // Corrupt records are skipped (and logged), not fatal to the rest.
        assert!(store::read_errors(&zk, "wc-1").await.unwrap().is_empty());
        let error = decode::<ErrorRecord>(&first, b"{}").unwrap_err();
        assert!(
            error.to_string().starts_with("znode /errors/wc-1/e-"),
            "{error}"
        );
        zk.delete_tree("/errors/wc-1").await.unwrap();
        zk.delete_tree("/errors/wc-1").await.unwrap();
        assert!(zk.get("/errors/wc-1").await.unwrap().is_none());
        // Errors are kept up to a limit.
        for index in 0..25 {
            store::report_error(&zk, "wc-2", "nimbus", &format!("error {index}"))
                .await
                .unwrap();
        }
        let errors = store::read_errors(&zk, "wc-2").await.unwrap();
        assert_eq!(errors.len(), 20);
        assert_eq!(errors[0].message, "error 5");
        assert_eq!(errors[19].message, "error 24");

        // Another root is another cluster.
        let other = ZkStore::connect(
            &zookeeper.settings(&zookeeper.fresh_root("other"), Duration::from_secs(4)),
            &test_identity(),
        )
        .await
        .unwrap();
        assert!(other.get(path).await.unwrap().is_none());
        other.close().await;
        zk.close().await;
    });
}

#[test]
fn ephemeral_nodes_belong_to_their_session_and_can_be_reclaimed() {
    let zookeeper = ZooKeeper::start();
    runtime().block_on(async {
        let settings =
            zookeeper.settings(&zookeeper.fresh_root("ephemeral"), Duration::from_secs(4));
        let first = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        let second = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        let path = paths::supervisor("host-1");
        first.claim_ephemeral(&path, b"first").await.unwrap();
        assert!(first.get(&path).await.unwrap().unwrap().owned);
        assert!(!second.get(&path).await.unwrap().unwrap().owned);
        // Claiming an own node updates it.
        first.claim_ephemeral(&path, b"first again").await.unwrap();
        assert_eq!(
            second.get(&path).await.unwrap().unwrap().data,
            b"first again"
        );
        // A node left by another session is swapped in one transaction.
        let mut changes = first.watch(paths::SUPERVISORS).await.unwrap();
        second.claim_ephemeral(&path, b"second").await.unwrap();
        let node = second.get(&path).await.unwrap().unwrap();
        assert!(node.owned);
        assert_eq!(node.data, b"second");
        tokio::time::timeout(Duration::from_secs(2), changes.next())
            .await
            .expect("the watch fires")
            .expect("the session lives");
        // The first session ending does not take the second's node with it.
        first.close().await;
        assert_eq!(second.get(&path).await.unwrap().unwrap().data, b"second");
        // Closing the second session removes it at once.
        let observer = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        second.close().await;
        assert!(observer.get(&path).await.unwrap().is_none());
        observer.close().await;
    });
}

#[test]
fn expired_sessions_are_renewed_after_an_outage() {
    let mut zookeeper = ZooKeeper::start();
    let runtime = runtime();
    let settings = zookeeper.settings(&zookeeper.fresh_root("expiry"), Duration::from_millis(800));
    let zk = runtime
        .block_on(ZkStore::connect(&settings, &test_identity()))
        .unwrap();
    assert_eq!(zk.session(), 1);
    runtime.block_on(async {
        zk.claim_ephemeral("/supervisors/host-1", b"x")
            .await
            .unwrap();
        assert!(zk.connected());
    });
    // Down for longer than the session timeout: the client gives the session up.
    zookeeper.stop();
    runtime.block_on(async {
        eventually("the disconnection", Duration::from_secs(5), async || {
            !zk.connected()
        })
        .await;
        let error = zk.get("/supervisors/host-1").await.unwrap_err();
        assert!(error.is_transient(), "{error}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    zookeeper.resume();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), zk.session_changed(1))
            .await
            .expect("a new session");
        assert!(zk.session() > 1);
        eventually(
            "the new session to work",
            Duration::from_secs(5),
            async || zk.get(paths::TOPOLOGIES).await.is_ok(),
        )
        .await;
        // The old session's ephemeral node goes (when the server expires it) or is
        // reclaimed by the new one.
        zk.claim_ephemeral("/supervisors/host-1", b"y")
            .await
            .unwrap();
        let node = zk.get("/supervisors/host-1").await.unwrap().unwrap();
        assert!(node.owned);
        assert_eq!(node.data, b"y");
        zk.close().await;
    });
}

fn nimbus(id: &str) -> NimbusInfo {
    NimbusInfo {
        id: id.to_owned(),
        host: "127.0.0.1".into(),
        port: 6627,
        started_ms: now_ms(),
        version: "test".into(),
    }
}

#[test]
fn a_standby_leads_when_the_leader_goes() {
    let zookeeper = ZooKeeper::start();
    runtime().block_on(async {
        let settings =
            zookeeper.settings(&zookeeper.fresh_root("election"), Duration::from_secs(4));
        let first = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        let second = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        let (stop, stopped) = watch::channel(false);
        let (first_leads, first_leading) = watch::channel(false);
        let (second_leads, second_leading) = watch::channel(false);
        let campaigns = {
            let (first, second) = (first.clone(), second.clone());
            let (first_stop, second_stop) = (stopped.clone(), stopped.clone());
            let first_task = tokio::spawn(async move {
                election::campaign(&first, &nimbus("one"), &first_leads, first_stop).await;
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            let second_task = tokio::spawn(async move {
                election::campaign(&second, &nimbus("two"), &second_leads, second_stop).await;
            });
            (first_task, second_task)
        };
        eventually("a leader", Duration::from_secs(3), async || {
            *first_leading.borrow()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!*second_leading.borrow(), "only one leads");
        let leader = store::read_leader(&second).await.unwrap().unwrap();
        assert_eq!(leader.id, "one");
        assert_eq!(store::read_nimbuses(&second).await.unwrap().len(), 2);

        // The leader's session ends: the standby leads.
        let gone = Instant::now();
        campaigns.0.abort();
        first.close().await;
        eventually("the standby to lead", Duration::from_secs(3), async || {
            *second_leading.borrow()
        })
        .await;
        eprintln!(
            "standby leads {:?} after the leader's session closed",
            gone.elapsed()
        );
        let leader = store::read_leader(&second).await.unwrap().unwrap();
        assert_eq!(leader.id, "two");
        let node = second.get(paths::LEADER).await.unwrap();
        assert!(node.is_some());
        let candidates = second.children(paths::LEADER).await.unwrap();
        assert_eq!(candidates.len(), 1);
        let path = format!("{}/{}", paths::LEADER, candidates[0]);
        let data = second.get(&path).await.unwrap().unwrap().data;
        let info: NimbusInfo = decode(&path, &data).unwrap();
        assert_eq!(info.id, "two");
        assert_eq!(encode(&info), data);

        stop.send_replace(true);
        let _ = campaigns.1.await;
        assert!(
            !*second_leading.borrow(),
            "leadership ends with the campaign"
        );
        second.close().await;
    });
}

#[test]
fn a_tree_private_to_one_secret_refuses_another() {
    let zookeeper = ZooKeeper::start();
    runtime().block_on(async {
        let settings = zookeeper.settings(&zookeeper.fresh_root("private"), Duration::from_secs(4));
        let owner = ZkStore::connect(&settings, &test_identity()).await.unwrap();
        owner
            .create("/topologies/wc-1", b"{}", NodeKind::Persistent)
            .await
            .unwrap();
        // Everything the cluster made is private already: nothing to restrict.
        let report = owner.restrict_tree().await.unwrap();
        assert!(report.checked >= 9, "{report:?}");
        assert!(
            report.restricted.is_empty() && report.foreign.is_empty(),
            "{report:?}"
        );

        let other_secret = Secret::new("another cluster's secret", "test").unwrap();
        let error = ZkStore::connect(&settings, &ZkIdentity::from_secret(&other_secret))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::NoAuth { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "ZooKeeper refused create {}: the znode's ACL does not admit this cluster's \
                 identity (digest user \"squall\" with a password derived from the cluster \
                 secret)",
                paths::LEADER
            )
        );
        owner.close().await;
    });
}
