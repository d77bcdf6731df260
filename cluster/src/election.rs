//! Leader election among nimbuses, through ephemeral sequential nodes under `/leader`:
//! each candidate creates `nimbus-<seq>` holding its [`NimbusInfo`]; the lowest sequence
//! leads. When the leader's session ends, its node disappears and the next candidate
//! leads. A candidate whose own session ended stops leading at once and stands again with
//! a new node.

use std::time::Duration;

use tokio::sync::watch;

use super::paths;
use super::records::NimbusInfo;
use super::store::{Changes, NodeKind, Store, decode, encode};

/// How often a candidate re-reads the election even when no watch fires.
const RECHECK: Duration = Duration::from_secs(1);

/// Whether the candidate `ours` leads among `candidates` (node names under `/leader`).
pub fn leads(ours: &str, candidates: &[String]) -> bool {
    candidates
        .iter()
        .filter_map(|name| Some((paths::sequence_of(name)?, name)))
        .min()
        .is_some_and(|(_, first)| first == ours)
}

/// Takes part in the election until `shutdown` turns true, publishing on `leading`
/// whether this candidate leads.
pub async fn campaign<S: Store>(
    store: &S,
    info: &NimbusInfo,
    leading: &watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let data = encode(info);
    let node_prefix = format!("{}/{}", paths::LEADER, paths::LEADER_PREFIX);
    while !*shutdown.borrow() {
        let session = store.session();
        let stand = async {
            let mut changes = store.watch(paths::LEADER).await?;
            let path = store
                .create(&node_prefix, &data, NodeKind::EphemeralSequential)
                .await?;
            let ours = path.rsplit('/').next().unwrap_or_default().to_owned();
            tracing::info!(node = %path, "standing for nimbus leadership");
            loop {
                let candidates = store.children(paths::LEADER).await?;
                if !candidates.contains(&ours) {
                    tracing::warn!(node = %path, "election node vanished; standing again");
                    return Ok::<(), super::store::StoreError>(());
                }
                retire_stale_nodes(store, info, &ours, &candidates).await;
                let now_leading = leads(&ours, &candidates);
                if now_leading != *leading.borrow() {
                    if now_leading {
                        tracing::info!(nimbus = %info.id, "this nimbus now leads");
                    } else {
                        tracing::info!(nimbus = %info.id, "this nimbus is a standby");
                    }
                }
                leading.send_replace(now_leading);
                tokio::select! {
                    result = changes.next() => result?,
                    () = store.session_changed(session) => return Ok(()),
                    () = tokio::time::sleep(RECHECK) => {}
                }
            }
        };
        tokio::select! {
            result = stand => {
                if let Err(error) = result {
                    if leading.send_replace(false) {
                        tracing::warn!(%error, "leadership lost");
                    } else {
                        tracing::debug!(%error, "election interrupted");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            () = crate::shutdown::requested(&mut shutdown) => break,
        }
        if store.session() != session && leading.send_replace(false) {
            tracing::warn!("ZooKeeper session renewed: leadership lost, standing again");
        }
    }
    leading.send_replace(false);
}

/// Deletes election nodes this same nimbus process left earlier (from an attempt that
/// failed half-way, or from an earlier session), so that the election neither counts it
/// twice nor waits for an old session to expire.
async fn retire_stale_nodes<S: Store>(
    store: &S,
    info: &NimbusInfo,
    ours: &str,
    candidates: &[String],
) {
    for name in candidates.iter().filter(|name| *name != ours) {
        let path = format!("{}/{name}", paths::LEADER);
        let Ok(Some(node)) = store.get(&path).await else {
            continue;
        };
        let Ok(other) = decode::<NimbusInfo>(&path, &node.data) else {
            continue;
        };
        if other == *info {
            tracing::info!(node = %path, owned = node.owned, "removing an earlier election node of this nimbus");
            let _ = store.delete(&path, Some(node.version)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_sequence_leads() {
        let names: Vec<String> = [
            "nimbus-0000000012",
            "nimbus-0000000003",
            "nimbus-0000000007",
        ]
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
        assert!(leads("nimbus-0000000003", &names));
        assert!(!leads("nimbus-0000000007", &names));
        assert!(!leads("nimbus-0000000001", &[]));
    }
}
