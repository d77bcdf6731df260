//! The leader's scheduling rounds: read, decide, write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Shared;
use super::decide::{Action, ClusterView, decide};
use super::heartbeats::HeartbeatTracker;
use crate::paths;
use crate::records::{TopologyRecord, now_ms};
use crate::store::{
    self, Changes, CheckedRecords, Store, StoreError, Version, ZkStore, encode,
    read_topologies_checked,
};

/// Runs rounds whenever this nimbus leads, until shutdown.
pub(super) async fn lead(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut leading = shared.leading.clone();
    loop {
        tokio::select! {
            result = leading.wait_for(|leads| *leads) => if result.is_err() { return },
            () = crate::shutdown::requested(&mut shutdown) => return,
        }
        tracing::info!("leading: scheduling rounds start");
        let mut tracker = HeartbeatTracker::new();
        let mut frozen = BTreeSet::new();
        let mut last_observed: Option<Instant> = None;
        let mut settled_since = Instant::now();
        let mut session = shared.store.session();
        let interval = Duration::from_millis(shared.config.nimbus.monitor_interval_ms);
        let mut watchers = None;
        while *leading.borrow() {
            if watchers.is_none() {
                watchers = watch_inputs(&shared.store).await.ok();
            }
            // A gap in observation (ZooKeeper unreachable, session renewed) means heartbeats
            // could not be relayed either: judge workers afresh.
            let now = Instant::now();
            if last_observed.is_some_and(|last| now - last > interval * 3 + Duration::from_secs(2))
            {
                tracing::info!("heartbeats were not observed for a while; forgetting their ages");
                tracker.reset();
                settled_since = now;
            }
            if shared.store.session() != session {
                session = shared.store.session();
                settled_since = now;
            }
            let grace =
                now - settled_since < shared.store.session_timeout() + Duration::from_secs(1);
            if shared.store.connected() {
                match round(&shared, &mut tracker, &mut frozen, grace).await {
                    Ok(()) => last_observed = Some(Instant::now()),
                    Err(error) => {
                        tracing::warn!(%error, "scheduling round failed; retrying");
                        if error.is_transient() {
                            watchers = None;
                        }
                    }
                }
            }
            let woken = async {
                let failed = match watchers.as_mut() {
                    Some((supervisors, topologies)) => {
                        let result = tokio::select! {
                            result = Changes::next(supervisors) => result,
                            result = Changes::next(topologies) => result,
                        };
                        result.is_err()
                    }
                    None => std::future::pending().await,
                };
                if failed {
                    watchers = None;
                }
                // Let a burst of changes settle.
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = woken => {}
                () = shared.wake.notified() => {}
                _ = leading.changed() => {}
                () = crate::shutdown::requested(&mut shutdown) => return,
            }
        }
        tracing::info!("no longer leading: scheduling rounds stop");
    }
}

type Watchers = (<ZkStore as Store>::Changes, <ZkStore as Store>::Changes);

async fn watch_inputs(store: &ZkStore) -> Result<Watchers, StoreError> {
    Ok((
        store.watch(paths::SUPERVISORS).await?,
        store.watch(paths::TOPOLOGIES).await?,
    ))
}

/// One scheduling round; `frozen` holds the topologies found frozen by the last round, so
/// that a change is logged once.
async fn round(
    shared: &Shared,
    tracker: &mut HeartbeatTracker,
    frozen: &mut BTreeSet<String>,
    absence_grace: bool,
) -> Result<(), StoreError> {
    let zk = &shared.store;
    let supervisors = store::read_supervisors(zk).await?;
    let CheckedRecords {
        records: versioned,
        unusable,
    } = read_topologies_checked(zk).await?;
    let assignments = store::read_assignments(zk).await?;
    for topology_id in unusable.difference(frozen) {
        tracing::error!(
            topology = %topology_id,
            assigned = assignments.contains_key(topology_id),
            "the topology's record cannot be used; its assignment is frozen as it is until \
             the record is readable again (or deleted)"
        );
    }
    for topology_id in frozen.difference(&unusable) {
        tracing::info!(topology = %topology_id, "the topology's record is usable again");
    }
    frozen.clone_from(&unusable);
    let mut beats = BTreeMap::new();
    for topology_id in assignments.keys() {
        beats.insert(
            topology_id.clone(),
            store::read_workerbeats(zk, topology_id).await?,
        );
    }
    let now = Instant::now();
    tracker.observe(&assignments, &beats, now);
    let settings = &shared.config.nimbus;
    let dead = tracker.dead(
        now,
        Duration::from_millis(settings.worker_timeout_ms),
        Duration::from_millis(settings.worker_start_timeout_ms),
    );
    let topologies: BTreeMap<String, TopologyRecord> = versioned
        .iter()
        .map(|(id, (record, _))| (id.clone(), record.clone()))
        .collect();
    let actions = decide(&ClusterView {
        now_ms: now_ms(),
        supervisors: &supervisors,
        topologies: &topologies,
        frozen: &unusable,
        assignments: &assignments,
        dead_workers: &dead,
        absence_grace,
    });
    for action in actions {
        apply(shared, &versioned, action).await?;
    }
    Ok(())
}

async fn apply(
    shared: &Shared,
    versions: &BTreeMap<String, (TopologyRecord, Version)>,
    action: Action,
) -> Result<(), StoreError> {
    let zk = &shared.store;
    match action {
        Action::PutAssignment(assignment) => {
            let path = paths::assignment(&assignment.topology_id);
            let workers: Vec<String> = assignment
                .workers
                .iter()
                .map(|worker| format!("{}{:?}", worker.slot(), worker.executors))
                .collect();
            tracing::info!(
                topology = %assignment.topology_id,
                version = assignment.version,
                active = assignment.active,
                workers = %workers.join(" "),
                "assignment"
            );
            store::put(zk, &path, &encode(&assignment)).await
        }
        Action::PutTopology(record) => {
            let path = paths::topology(&record.id);
            let expected = versions.get(&record.id).map(|(_, version)| *version);
            match zk.set(&path, &encode(&record), expected).await {
                // Changed by a request meanwhile: the next round sees the change.
                Ok(_) | Err(StoreError::BadVersion { .. } | StoreError::NoNode { .. }) => Ok(()),
                Err(error) => Err(error),
            }
        }
        Action::RemoveTopology {
            topology_id,
            artifact,
        } => {
            tracing::info!(topology = %topology_id, "removing killed topology");
            zk.delete(&paths::assignment(&topology_id), None).await?;
            zk.delete(&paths::topology(&topology_id), None).await?;
            zk.delete_tree(&paths::workerbeats(&topology_id)).await?;
            zk.delete_tree(&paths::errors(&topology_id)).await?;
            let still_used = store::read_topologies(zk)
                .await?
                .values()
                .any(|record| record.artifact == artifact)
                || store::read_assignments(zk)
                    .await?
                    .values()
                    .any(|assignment| assignment.artifact == artifact);
            if !still_used {
                zk.delete_tree(&paths::artifact(&artifact)).await?;
            }
            Ok(())
        }
        Action::RemoveAssignment { topology_id } => {
            tracing::info!(topology = %topology_id, "removing the assignment of a topology without a record");
            zk.delete(&paths::assignment(&topology_id), None).await?;
            zk.delete_tree(&paths::workerbeats(&topology_id)).await
        }
        Action::ReportError {
            topology_id,
            message,
        } => {
            tracing::warn!(topology = %topology_id, %message, "scheduling");
            store::report_error(zk, &topology_id, "nimbus", &message).await
        }
    }
}
