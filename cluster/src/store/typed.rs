//! Reading and writing the control plane's records through any [`Store`].

use std::collections::{BTreeMap, BTreeSet};

use super::{NodeKind, Store, StoreError, Version, decode, encode};
use crate::paths;
use crate::records::{
    Assignment, ERRORS_KEPT, ErrorRecord, NimbusInfo, SupervisorInfo, TopologyRecord, WorkerBeat,
    now_ms,
};
use crate::validate::{self, InvalidValue};

/// A record kept under a parent znode, with the checks it must pass besides parsing.
pub(crate) trait Record: serde::de::DeserializeOwned {
    /// Checks the values that become file names or paths elsewhere; `name` is the znode's
    /// name.
    fn check(&self, _name: &str) -> Result<(), InvalidValue> {
        Ok(())
    }
}

impl Record for SupervisorInfo {}
impl Record for NimbusInfo {}
impl Record for WorkerBeat {}
impl Record for ErrorRecord {}

impl Record for TopologyRecord {
    fn check(&self, name: &str) -> Result<(), InvalidValue> {
        validate::topology_id("topology id", &self.id)?;
        named_after(name, "topology id", &self.id)?;
        validate::digest("topology artifact", &self.artifact)
    }
}

impl Record for Assignment {
    fn check(&self, name: &str) -> Result<(), InvalidValue> {
        validate::topology_id("assignment topology_id", &self.topology_id)?;
        named_after(name, "assignment topology_id", &self.topology_id)?;
        validate::digest("assignment artifact", &self.artifact)
    }
}

/// A record's id must be its znode's name: the daemons write it back under its id.
fn named_after(name: &str, field: &'static str, id: &str) -> Result<(), InvalidValue> {
    if name == id {
        Ok(())
    } else {
        Err(InvalidValue {
            field,
            value: id.to_owned(),
            expected: "a record's id is the name of its znode",
        })
    }
}

/// Every record under a parent znode with its version, keyed by child name, and the names
/// of the children that exist but hold no usable record.
#[derive(Debug, Clone)]
pub struct CheckedRecords<T> {
    /// The usable records.
    pub records: BTreeMap<String, (T, Version)>,
    /// Children whose data does not parse, does not pass its checks, or may not be read.
    pub unusable: BTreeSet<String>,
}

/// Reads every record under `parent` with its version, keyed by child name. Children that
/// vanish between listing and reading are skipped; records that do not parse, do not pass
/// their checks or may not be read are logged and listed as unusable, so that one bad
/// znode does not stop everything else.
pub(crate) async fn read_checked_records<S: Store, T: Record>(
    store: &S,
    parent: &str,
) -> Result<CheckedRecords<T>, StoreError> {
    let mut records = BTreeMap::new();
    let mut unusable = BTreeSet::new();
    for child in store.children(parent).await? {
        let path = format!("{parent}/{child}");
        let node = match store.get(&path).await {
            Ok(Some(node)) => Ok(node),
            Ok(None) => continue,
            Err(error @ StoreError::NoAuth { .. }) => Err(error),
            Err(error) => return Err(error),
        };
        let record = node.and_then(|node| {
            let record = decode::<T>(&path, &node.data)?;
            record.check(&child).map_err(|source| StoreError::Invalid {
                path: path.clone(),
                source,
            })?;
            Ok((record, node.version))
        });
        match record {
            Ok(record) => {
                records.insert(child, record);
            }
            Err(error) => {
                tracing::warn!(%error, "skipping a znode that holds no usable record");
                unusable.insert(child);
            }
        }
    }
    Ok(CheckedRecords { records, unusable })
}

/// [`read_checked_records`] without the unusable children.
pub(crate) async fn read_checked<S: Store, T: Record>(
    store: &S,
    parent: &str,
) -> Result<BTreeMap<String, (T, Version)>, StoreError> {
    Ok(read_checked_records(store, parent).await?.records)
}

/// [`read_checked`] without the versions.
async fn read_all<S: Store, T: Record>(
    store: &S,
    parent: &str,
) -> Result<BTreeMap<String, T>, StoreError> {
    Ok(read_checked(store, parent)
        .await?
        .into_iter()
        .map(|(name, (record, _))| (name, record))
        .collect())
}

/// The topology records with their versions, for compare-and-set.
///
/// # Errors
/// When ZooKeeper cannot be read.
pub async fn read_topologies_versioned<S: Store>(
    store: &S,
) -> Result<BTreeMap<String, (TopologyRecord, Version)>, StoreError> {
    read_checked(store, paths::TOPOLOGIES).await
}

/// The topology records with their versions, and the ids of topologies whose record
/// exists but cannot be used (unparsable, refused, or unreadable): those are not absent,
/// and what runs for them must be left alone.
///
/// # Errors
/// When ZooKeeper cannot be read.
pub async fn read_topologies_checked<S: Store>(
    store: &S,
) -> Result<CheckedRecords<TopologyRecord>, StoreError> {
    read_checked_records(store, paths::TOPOLOGIES).await
}

/// The registered supervisors, by id.
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_supervisors<S: Store>(
    store: &S,
) -> Result<BTreeMap<String, SupervisorInfo>, StoreError> {
    read_all(store, paths::SUPERVISORS).await
}

/// The topology records, by topology id.
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_topologies<S: Store>(
    store: &S,
) -> Result<BTreeMap<String, TopologyRecord>, StoreError> {
    read_all(store, paths::TOPOLOGIES).await
}

/// The assignments, by topology id.
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_assignments<S: Store>(
    store: &S,
) -> Result<BTreeMap<String, Assignment>, StoreError> {
    read_all(store, paths::ASSIGNMENTS).await
}

/// The relayed heartbeats of one topology's workers, by slot (`<supervisor>:<port>`).
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_workerbeats<S: Store>(
    store: &S,
    topology_id: &str,
) -> Result<BTreeMap<String, WorkerBeat>, StoreError> {
    read_all(store, &paths::workerbeats(topology_id)).await
}

/// The nimbuses taking part in the leader election, leader first.
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_nimbuses<S: Store>(store: &S) -> Result<Vec<NimbusInfo>, StoreError> {
    let mut candidates: Vec<(u64, NimbusInfo)> = read_all(store, paths::LEADER)
        .await?
        .into_iter()
        .filter_map(|(name, info)| Some((paths::sequence_of(&name)?, info)))
        .collect();
    candidates.sort_by_key(|(sequence, _)| *sequence);
    Ok(candidates.into_iter().map(|(_, info)| info).collect())
}

/// The leader nimbus, if one is elected.
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_leader<S: Store>(store: &S) -> Result<Option<NimbusInfo>, StoreError> {
    Ok(read_nimbuses(store).await?.into_iter().next())
}

/// The errors reported about a topology, oldest first.
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_errors<S: Store>(
    store: &S,
    topology_id: &str,
) -> Result<Vec<ErrorRecord>, StoreError> {
    Ok(read_all(store, &paths::errors(topology_id))
        .await?
        .into_values()
        .collect())
}

/// Records an error about a topology and deletes the oldest beyond [`ERRORS_KEPT`].
///
/// # Errors
/// When ZooKeeper cannot be written.
pub async fn report_error<S: Store>(
    store: &S,
    topology_id: &str,
    source: &str,
    message: &str,
) -> Result<(), StoreError> {
    let record = ErrorRecord {
        time_ms: now_ms(),
        source: source.to_owned(),
        message: message.to_owned(),
    };
    store
        .create(
            &paths::error_prefix(topology_id),
            &encode(&record),
            NodeKind::PersistentSequential,
        )
        .await?;
    let parent = paths::errors(topology_id);
    let children = store.children(&parent).await?;
    let excess = children.len().saturating_sub(ERRORS_KEPT);
    for child in &children[..excess] {
        store.delete(&format!("{parent}/{child}"), None).await?;
    }
    Ok(())
}

/// The nimbuses registered as holding the artifact `digest`.
///
/// # Errors
/// When ZooKeeper cannot be read (bad records are skipped).
pub async fn read_artifact_holders<S: Store>(
    store: &S,
    digest: &str,
) -> Result<Vec<NimbusInfo>, StoreError> {
    Ok(read_all(store, &paths::artifact(digest))
        .await?
        .into_values()
        .collect())
}

/// Creates or replaces the persistent node `path`.
///
/// # Errors
/// When ZooKeeper cannot be written.
pub async fn put<S: Store>(store: &S, path: &str, data: &[u8]) -> Result<(), StoreError> {
    match store.set(path, data, None).await {
        Ok(_) => Ok(()),
        Err(StoreError::NoNode { .. }) => {
            match store.create(path, data, NodeKind::Persistent).await {
                Ok(_) => Ok(()),
                Err(StoreError::NodeExists { .. }) => store.set(path, data, None).await.map(|_| ()),
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}
