//! The supervisor's tasks that talk to ZooKeeper and nimbus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::decide::{DesiredWorker, desired_workers};
use super::{Beats, ErrorReport};
use crate::artifact;
use crate::client::{NimbusClient, fetch_from_holders};
use crate::config::ClusterConfig;
use crate::paths;
use crate::records::{SupervisorInfo, WorkerBeat, now_ms};
use crate::store::{self, Changes, Store, StoreError, ZkStore, encode};

/// Keeps the registration alive and publishes the workers this node should run, until
/// shutdown. Publishes nothing while the assignments cannot be read, so the monitor keeps
/// what runs.
pub(super) async fn sync(
    store: ZkStore,
    info: SupervisorInfo,
    config: ClusterConfig,
    desired: watch::Sender<Option<BTreeMap<u16, DesiredWorker>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(config.supervisor.sync_interval_ms);
    let registration = paths::supervisor(&info.id);
    let artifacts_dir = super::artifacts_dir(&config.supervisor.data_dir);
    loop {
        let session = store.session();
        let mut changes = None;
        let mut registered = false;
        loop {
            if !registered {
                match store.claim_ephemeral(&registration, &encode(&info)).await {
                    Ok(()) => {
                        tracing::info!(node = %registration, "supervisor registered");
                        registered = true;
                    }
                    Err(error) => tracing::warn!(%error, "cannot register yet"),
                }
            } else if let Ok(node) = store.get(&registration).await
                && !node.is_some_and(|node| node.owned)
            {
                registered = false;
                continue;
            }
            if changes.is_none() {
                changes = store.watch(paths::ASSIGNMENTS).await.ok();
            }
            match store::read_assignments(&store).await {
                Ok(assignments) => {
                    let next = desired_workers(
                        &info.id,
                        &config.cluster.name,
                        &config.supervisor.transport,
                        &artifacts_dir,
                        &assignments,
                    );
                    desired.send_if_modified(|current| {
                        let changed = current.as_ref() != Some(&next);
                        if changed {
                            *current = Some(next);
                        }
                        changed
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot read assignments; keeping the workers as they are");
                }
            }
            let woken = async {
                let alive = match changes.as_mut() {
                    Some(changes) => Changes::next(changes).await.is_ok(),
                    None => std::future::pending().await,
                };
                if !alive {
                    changes = None;
                }
            };
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(interval) => {}
                () = store.session_changed(session) => break,
                () = crate::shutdown::requested(&mut shutdown) => return,
            }
        }
        tracing::warn!("ZooKeeper session renewed; registering again");
    }
}

/// Copies the workers' heartbeats to ZooKeeper every `interval`, and deletes those of
/// workers that stopped, until shutdown.
pub(super) async fn relay(
    store: ZkStore,
    supervisor: String,
    interval: Duration,
    beats: Beats,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut written: BTreeSet<(String, u16)> = BTreeSet::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = crate::shutdown::requested(&mut shutdown) => return,
        }
        let snapshot = beats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for ((topology_id, port), heartbeat) in &snapshot {
            let beat = WorkerBeat {
                supervisor: supervisor.clone(),
                port: *port,
                relayed_ms: now_ms(),
                heartbeat: heartbeat.clone(),
            };
            let path = paths::workerbeat(topology_id, &supervisor, *port);
            match store::put(&store, &path, &encode(&beat)).await {
                Ok(()) => {
                    written.insert((topology_id.clone(), *port));
                }
                Err(error) => tracing::debug!(%error, "cannot relay heartbeat"),
            }
        }
        let gone: Vec<(String, u16)> = written
            .iter()
            .filter(|key| !snapshot.contains_key(*key))
            .cloned()
            .collect();
        for (topology_id, port) in gone {
            let path = paths::workerbeat(&topology_id, &supervisor, port);
            if store.delete(&path, None).await.is_ok() {
                written.remove(&(topology_id, port));
            }
        }
    }
}

/// Deletes this supervisor's heartbeat nodes (at shutdown).
pub(super) async fn forget_heartbeats(
    store: &ZkStore,
    supervisor: &str,
    workers: &[(String, u16)],
) {
    for (topology_id, port) in workers {
        let _ = store
            .delete(&paths::workerbeat(topology_id, supervisor, *port), None)
            .await;
    }
}

/// Records errors in ZooKeeper until every sender is gone.
pub(super) async fn report(store: ZkStore, mut errors: mpsc::UnboundedReceiver<ErrorReport>) {
    while let Some((topology_id, source, message)) = errors.recv().await {
        if let Err(error) = store::report_error(&store, &topology_id, &source, &message).await {
            tracing::debug!(%error, "cannot record error in ZooKeeper");
        }
    }
}

/// Fetches and unpacks the artifact `digest` from a nimbus that holds it, then reports
/// the outcome on `done`.
pub(super) async fn fetch(
    store: ZkStore,
    client: NimbusClient,
    digest: String,
    artifacts_dir: PathBuf,
    done: mpsc::UnboundedSender<(String, Result<(), String>)>,
) {
    let result = fetch_artifact(&store, &client, &digest, artifacts_dir).await;
    let _ = done.send((digest, result));
}

async fn fetch_artifact(
    store: &ZkStore,
    client: &NimbusClient,
    digest: &str,
    artifacts_dir: PathBuf,
) -> Result<(), String> {
    let holders = store::read_artifact_holders(store, digest)
        .await
        .map_err(|error: StoreError| error.to_string())?;
    let dest = artifacts_dir.join(digest);
    fetch_from_holders(client, holders, digest, move |bytes| {
        if dest.exists() {
            return Ok(());
        }
        artifact::unpack(&bytes, &dest)
            .map(|_| ())
            .map_err(|error| error.to_string())
    })
    .await
}
