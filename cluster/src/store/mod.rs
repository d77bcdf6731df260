//! The one seam between the control plane and ZooKeeper: a small trait of node operations,
//! with typed helpers on top, and [`ZkStore`], its implementation on a real ensemble.
//!
//! Everything the daemons decide is computed by pure functions from records read through
//! this trait; only reading and writing goes through it.

mod identity;
mod typed;
mod zk;

use std::future::Future;

pub use identity::{ZOOKEEPER_USER, ZkIdentity};
pub use typed::{
    CheckedRecords, put, read_artifact_holders, read_assignments, read_errors, read_leader,
    read_nimbuses, read_supervisors, read_topologies, read_topologies_checked,
    read_topologies_versioned, read_workerbeats, report_error,
};
pub use zk::{TreeAcls, ZkStore};

/// The version of a node's data, for compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub i32);

/// A node's data and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its data.
    pub data: Vec<u8>,
    /// Its version.
    pub version: Version,
    /// Whether it is an ephemeral node of this store's current session.
    pub owned: bool,
}

/// What kind of node to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Stays until deleted.
    Persistent,
    /// Stays until deleted; ZooKeeper appends a sequence number to its name.
    PersistentSequential,
    /// Deleted when this store's session ends.
    Ephemeral,
    /// Deleted when this store's session ends; ZooKeeper appends a sequence number.
    EphemeralSequential,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The node does not exist.
    #[error("znode {path} does not exist")]
    NoNode {
        /// The node.
        path: String,
    },
    /// The node exists already.
    #[error("znode {path} exists already")]
    NodeExists {
        /// The node.
        path: String,
    },
    /// The node changed since it was read.
    #[error("znode {path} changed concurrently (version mismatch)")]
    BadVersion {
        /// The node.
        path: String,
    },
    /// The node has children.
    #[error("znode {path} has children")]
    NotEmpty {
        /// The node.
        path: String,
    },
    /// The session ended; ephemeral nodes are gone and must be created again.
    #[error("ZooKeeper session expired during {operation} {path}")]
    SessionExpired {
        /// The operation.
        operation: &'static str,
        /// The node.
        path: String,
    },
    /// ZooKeeper cannot be reached now.
    #[error("ZooKeeper ({servers}) unreachable during {operation} {path}: {reason}")]
    Unavailable {
        /// The servers tried.
        servers: String,
        /// The operation.
        operation: &'static str,
        /// The node.
        path: String,
        /// What the client reported.
        reason: String,
    },
    /// A node holds data that is not the expected record.
    #[error("znode {path} does not hold a valid record: {source}")]
    Corrupt {
        /// The node.
        path: String,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// A node's record parses but holds a value that is refused (see [`crate::validate`]).
    #[error("znode {path} holds a refused value: {source}")]
    Invalid {
        /// The node.
        path: String,
        /// The value and why it is refused.
        source: crate::validate::InvalidValue,
    },
    /// The znode's ACL grants this cluster's identity no right to the operation: it
    /// belongs to another identity (another cluster secret, or another user of the
    /// ensemble).
    #[error(
        "ZooKeeper refused {operation} {path}: the znode's ACL does not admit this cluster's \
         identity (digest user \"squall\" with a password derived from the cluster secret)"
    )]
    NoAuth {
        /// The operation.
        operation: &'static str,
        /// The node.
        path: String,
    },
    /// ZooKeeper refused the operation for another reason.
    #[error("ZooKeeper refused {operation} {path}: {reason}")]
    Refused {
        /// The operation.
        operation: &'static str,
        /// The node.
        path: String,
        /// What the client reported.
        reason: String,
    },
}

impl StoreError {
    /// Whether retrying later may succeed (ZooKeeper unreachable or session being renewed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::SessionExpired { .. })
    }
}

/// A change watcher on a subtree ([`Store::watch`]).
pub trait Changes: Send {
    /// Resolves at the next change under the watched path. A connection loss and recovery
    /// also counts as a change (events during the loss may be missed, so re-read).
    ///
    /// # Errors
    /// [`StoreError::SessionExpired`] when the session ended: the watcher is dead; watch
    /// again.
    fn next(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Node operations on the cluster's state, relative to the cluster's root.
///
/// Paths are absolute within the root (`/topologies/wc-1`). Parents of created nodes are
/// created as needed (persistent, empty).
pub trait Store: Send + Sync + 'static {
    /// The watcher [`watch`](Self::watch) returns.
    type Changes: Changes;

    /// The node at `path`, or `None`.
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<Node>, StoreError>> + Send;

    /// The names of `path`'s children, sorted; empty when `path` does not exist.
    fn children(&self, path: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Creates a node and returns its path (with the sequence, for sequential nodes).
    fn create(
        &self,
        path: &str,
        data: &[u8],
        kind: NodeKind,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Replaces the data at `path`, if its version is still `expected` (when given).
    fn set(
        &self,
        path: &str,
        data: &[u8],
        expected: Option<Version>,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Deletes `path` (which must have no children), if its version is still `expected`
    /// (when given). Deleting a missing node succeeds.
    fn delete(
        &self,
        path: &str,
        expected: Option<Version>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes `path` an ephemeral node of this session holding `data`: creates it, updates
    /// it if this session owns it already, or atomically replaces one left by an earlier
    /// session of the same daemon.
    fn claim_ephemeral(
        &self,
        path: &str,
        data: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Watches every node under `path` (created, changed, deleted), `path` included.
    fn watch(&self, path: &str) -> impl Future<Output = Result<Self::Changes, StoreError>> + Send;

    /// Number of the current session: grows each time the store had to start a new session
    /// (ephemeral nodes of earlier sessions are gone or going).
    fn session(&self) -> u64;

    /// Resolves once [`session`](Self::session) differs from `known`.
    fn session_changed(&self, known: u64) -> impl Future<Output = ()> + Send;

    /// Whether the store is connected to ZooKeeper now.
    fn connected(&self) -> bool;

    /// Deletes `path` and everything under it; a missing node is no error.
    fn delete_tree(&self, path: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let mut stack = vec![(path.to_owned(), false)];
            while let Some((node, expanded)) = stack.pop() {
                if expanded {
                    self.delete(&node, None).await?;
                    continue;
                }
                let children = self.children(&node).await?;
                stack.push((node.clone(), true));
                for child in children {
                    stack.push((format!("{node}/{child}"), false));
                }
            }
            Ok(())
        }
    }
}

/// Encodes a record as JSON.
pub fn encode<T: serde::Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records serialize")
}

/// Decodes the record in node `path`.
///
/// # Errors
/// [`StoreError::Corrupt`] when the data is not such a record.
pub fn decode<T: serde::de::DeserializeOwned>(path: &str, data: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(data).map_err(|source| StoreError::Corrupt {
        path: path.to_owned(),
        source,
    })
}
