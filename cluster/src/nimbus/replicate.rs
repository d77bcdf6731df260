//! Every nimbus keeps the artifacts of all live topologies: it fetches those it lacks from
//! a nimbus that holds them, registers itself as a holder, and deletes artifacts no
//! topology uses any more.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::Shared;
use crate::client::{NimbusClient, fetch_from_holders};
use crate::paths;
use crate::store::{self, Changes, Store, StoreError, encode};

/// How often the artifacts are checked even when no topology changes.
const INTERVAL: Duration = Duration::from_secs(2);

/// An unreferenced artifact younger than this is kept (its topology may be being
/// submitted).
const GRACE: Duration = Duration::from_secs(120);

/// Keeps this nimbus's artifacts in line with the topologies, until shutdown.
pub(super) async fn replicate(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let client = NimbusClient::new(shared.config.clone(), shared.secret.clone());
    let mut changes = None;
    loop {
        if changes.is_none() {
            changes = shared.store.watch(paths::TOPOLOGIES).await.ok();
        }
        if let Err(error) = sync_once(&shared, &client).await {
            tracing::debug!(%error, "artifact replication round failed");
        }
        let woken = async {
            match changes.as_mut() {
                Some(changes) => {
                    if Changes::next(changes).await.is_err() {
                        return false;
                    }
                    true
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            alive = woken => if !alive { changes = None },
            () = tokio::time::sleep(INTERVAL) => {}
            () = crate::shutdown::requested(&mut shutdown) => return,
        }
    }
}

async fn sync_once(shared: &Shared, client: &NimbusClient) -> Result<(), StoreError> {
    let zk = &shared.store;
    // Assignments count too: a topology whose record cannot be read is frozen, not gone,
    // and its workers need the artifact when they restart.
    let mut referenced: BTreeSet<String> = store::read_topologies(zk)
        .await?
        .into_values()
        .map(|record| record.artifact)
        .collect();
    referenced.extend(
        store::read_assignments(zk)
            .await?
            .into_values()
            .map(|assignment| assignment.artifact),
    );
    for digest in &referenced {
        let holder = paths::artifact_holder(digest, &shared.info.id);
        if !shared.artifacts.contains(digest) {
            match fetch(shared, client, digest).await {
                Ok(()) => tracing::info!(artifact = %digest, "artifact replicated"),
                Err(reason) => {
                    tracing::warn!(artifact = %digest, %reason, "cannot replicate artifact yet");
                    continue;
                }
            }
        }
        let registered = zk.get(&holder).await?.is_some_and(|node| node.owned);
        if !registered {
            zk.claim_ephemeral(&holder, &encode(&shared.info)).await?;
        }
    }
    for digest in shared.artifacts.list() {
        if referenced.contains(&digest) {
            continue;
        }
        let age = std::fs::metadata(shared.artifacts.path(&digest))
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .unwrap_or_default();
        if age > GRACE {
            tracing::info!(artifact = %digest, "deleting artifact no topology uses");
            shared.artifacts.remove(&digest);
            zk.delete(&paths::artifact_holder(&digest, &shared.info.id), None)
                .await?;
        }
    }
    Ok(())
}

/// Fetches `digest` from another nimbus that holds it.
async fn fetch(shared: &Shared, client: &NimbusClient, digest: &str) -> Result<(), String> {
    let holders: Vec<_> = store::read_artifact_holders(&shared.store, digest)
        .await
        .map_err(|error| error.to_string())?
        .into_iter()
        .filter(|holder| holder.id != shared.info.id)
        .collect();
    let artifacts = shared.artifacts.clone();
    let wanted = digest.to_owned();
    fetch_from_holders(client, holders, digest, move |bytes| {
        artifacts
            .put(&wanted, &bytes)
            .map_err(|error| error.to_string())
    })
    .await
}
