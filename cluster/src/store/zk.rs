//! [`Store`] on a real ZooKeeper ensemble, through the async `zookeeper-client` crate.
//!
//! A session that expires is never revived: a background task connects a fresh client
//! (retrying while the ensemble is unreachable) and bumps [`Store::session`], so that the
//! owners of ephemeral nodes create them again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use super::identity::{ZkIdentity, creator_only};
use super::{Changes, Node, NodeKind, Store, StoreError, Version};
use crate::config::ZooKeeperSettings;
use crate::paths;

/// The current session, as the maintenance task publishes it.
#[derive(Clone)]
struct Current {
    number: u64,
    client: Option<zk::Client>,
}

struct Inner {
    servers: String,
    root: String,
    identity: ZkIdentity,
    session_timeout: Duration,
    connect_timeout: Duration,
    current: watch::Sender<Current>,
    maintainer: Mutex<Option<JoinHandle<()>>>,
}

/// The cluster's state in a ZooKeeper ensemble, under the configured root.
///
/// Cheap to clone (shared). Must be created and used inside a tokio runtime.
#[derive(Clone)]
pub struct ZkStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ZkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkStore")
            .field("servers", &self.inner.servers)
            .field("root", &self.inner.root)
            .field("session", &self.session())
            .finish()
    }
}

impl ZkStore {
    /// Connects to the ensemble (one attempt over all servers) as `identity`, creates the
    /// root and the cluster's directories if missing (private to `identity`), and starts
    /// renewing the session whenever it expires.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no server answers; [`StoreError::NoAuth`] when the
    /// root or a directory exists but is not open to `identity`.
    pub async fn connect(
        settings: &ZooKeeperSettings,
        identity: &ZkIdentity,
    ) -> Result<Self, StoreError> {
        let servers = settings.connect_string();
        let root = settings.root.clone();
        let client = establish(
            &servers,
            &root,
            identity,
            settings.session_timeout(),
            settings.connect_timeout(),
        )
        .await?;
        let (current, _) = watch::channel(Current {
            number: 1,
            client: Some(client.clone()),
        });
        let inner = Arc::new(Inner {
            servers,
            root,
            identity: identity.clone(),
            session_timeout: settings.session_timeout(),
            connect_timeout: settings.connect_timeout(),
            current,
            maintainer: Mutex::new(None),
        });
        let task = tokio::spawn(maintain(Arc::downgrade(&inner), client));
        *inner
            .maintainer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(Self { inner })
    }

    /// Connects like [`connect`](Self::connect), retrying every `retry` until it succeeds,
    /// logging each failure.
    pub async fn connect_retrying(
        settings: &ZooKeeperSettings,
        identity: &ZkIdentity,
        retry: Duration,
    ) -> Self {
        loop {
            match Self::connect(settings, identity).await {
                Ok(store) => return store,
                Err(error) => {
                    tracing::warn!(%error, "cannot connect to ZooKeeper yet; retrying");
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }

    /// The session timeout ZooKeeper granted (or was asked for, while disconnected).
    pub fn session_timeout(&self) -> Duration {
        match &self.inner.current.borrow().client {
            Some(client) => client.session_timeout(),
            None => self.inner.session_timeout,
        }
    }

    /// Ends the session now (its ephemeral nodes disappear at once) and stops renewing it.
    pub async fn close(&self) {
        if let Some(task) = self
            .inner
            .maintainer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        let client = self.inner.current.borrow().client.clone();
        self.inner
            .current
            .send_modify(|current| current.client = None);
        if let Some(client) = client {
            // Dropping the last handle sends CloseSession; wait for it to be flushed.
            let mut states = client.state_watcher();
            drop(client);
            let closed = async { while !states.changed().await.is_terminated() {} };
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
    }

    /// Makes the cluster's own znodes private to this store's identity: the root (unless it
    /// is the ensemble's `/`) and everything under the cluster's directories. Nodes that
    /// grant rights to anyone else — world-open nodes made before the cluster used ACLs —
    /// get creator-only ACLs; nodes outside the cluster's tree are never touched.
    ///
    /// # Errors
    /// When ZooKeeper cannot be reached; nodes this identity may not change are reported
    /// in [`TreeAcls::foreign`], not as errors.
    pub async fn restrict_tree(&self) -> Result<TreeAcls, StoreError> {
        let client = self.client("restrict", "/")?;
        let mut report = TreeAcls::default();
        let mut pending: Vec<String> = paths::DIRECTORIES
            .iter()
            .map(|directory| (*directory).to_owned())
            .collect();
        if self.inner.root != "/" {
            self.restrict_node(&client, "/", &mut report).await?;
        }
        while let Some(path) = pending.pop() {
            if !self.restrict_node(&client, &path, &mut report).await? {
                continue;
            }
            match self.run("list", &path, client.list_children(&path)).await {
                Ok(children) => {
                    pending.extend(children.into_iter().map(|child| format!("{path}/{child}")))
                }
                Err(StoreError::NoNode { .. }) => {}
                Err(StoreError::NoAuth { .. }) => report.foreign.push(path),
                Err(error) => return Err(error),
            }
        }
        report.foreign.sort();
        report.foreign.dedup();
        Ok(report)
    }

    /// Restricts one node; `false` when it is gone or not this identity's to change.
    async fn restrict_node(
        &self,
        client: &zk::Client,
        path: &str,
        report: &mut TreeAcls,
    ) -> Result<bool, StoreError> {
        let acl = match self.run("get ACL", path, client.get_acl(path)).await {
            Ok((acl, _)) => acl,
            Err(StoreError::NoNode { .. }) => return Ok(false),
            Err(StoreError::NoAuth { .. }) => {
                report.foreign.push(path.to_owned());
                return Ok(false);
            }
            Err(error) => return Err(error),
        };
        report.checked += 1;
        if self.inner.identity.is_private(&acl) {
            return Ok(true);
        }
        match self
            .run("set ACL", path, client.set_acl(path, &creator_only(), None))
            .await
        {
            Ok(_) => {
                report.restricted.push(path.to_owned());
                Ok(true)
            }
            Err(StoreError::NoNode { .. }) => Ok(false),
            Err(StoreError::NoAuth { .. }) => {
                report.foreign.push(path.to_owned());
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    fn client(&self, operation: &'static str, path: &str) -> Result<zk::Client, StoreError> {
        self.inner
            .current
            .borrow()
            .client
            .clone()
            .ok_or_else(|| StoreError::Unavailable {
                servers: self.inner.servers.clone(),
                operation,
                path: path.to_owned(),
                reason: "no session (reconnecting)".to_owned(),
            })
    }

    /// Runs one request with the operation timeout, mapping the client's errors.
    async fn run<T>(
        &self,
        operation: &'static str,
        path: &str,
        request: impl Future<Output = Result<T, zk::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.connect_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.map_error(operation, path, error)),
            Err(_) => Err(StoreError::Unavailable {
                servers: self.inner.servers.clone(),
                operation,
                path: path.to_owned(),
                reason: format!("no answer within {:?}", self.inner.connect_timeout),
            }),
        }
    }

    fn map_error(&self, operation: &'static str, path: &str, error: zk::Error) -> StoreError {
        let path = path.to_owned();
        match error {
            zk::Error::NoNode => StoreError::NoNode { path },
            zk::Error::NodeExists => StoreError::NodeExists { path },
            zk::Error::BadVersion => StoreError::BadVersion { path },
            zk::Error::NotEmpty => StoreError::NotEmpty { path },
            zk::Error::NoAuth => StoreError::NoAuth { operation, path },
            zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::SessionMoved => {
                StoreError::SessionExpired { operation, path }
            }
            zk::Error::ConnectionLoss
            | zk::Error::Timeout
            | zk::Error::NoHosts
            | zk::Error::Throttled => StoreError::Unavailable {
                servers: self.inner.servers.clone(),
                operation,
                path,
                reason: error.to_string(),
            },
            other => StoreError::Refused {
                operation,
                path,
                reason: other.to_string(),
            },
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .maintainer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// What [`ZkStore::restrict_tree`] found and did; paths are relative to the root (`/` is
/// the root itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeAcls {
    /// Nodes examined.
    pub checked: usize,
    /// Nodes that were open to others and are now private to this identity.
    pub restricted: Vec<String>,
    /// Nodes this identity may not read or change: made by another identity.
    pub foreign: Vec<String>,
}

/// Opens a session and makes sure the root and the cluster directories exist.
async fn establish(
    servers: &str,
    root: &str,
    identity: &ZkIdentity,
    session_timeout: Duration,
    connect_timeout: Duration,
) -> Result<zk::Client, StoreError> {
    let unavailable = |reason: String| StoreError::Unavailable {
        servers: servers.to_owned(),
        operation: "connect",
        path: root.to_owned(),
        reason,
    };
    let connecting = zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(connect_timeout)
        .with_fail_eagerly()
        .with_auth("digest", &identity.credentials())
        .connect(servers);
    let client = match tokio::time::timeout(connect_timeout + session_timeout, connecting).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => return Err(unavailable(error.to_string())),
        Err(_) => return Err(unavailable("no session established in time".to_owned())),
    };
    let directory = zk::CreateMode::Persistent.with_acls(creator_only());
    let no_auth = |path: &str| StoreError::NoAuth {
        operation: "create",
        path: path.to_owned(),
    };
    if root != "/" {
        match client.mkdir(root, &directory).await {
            Ok(()) => {}
            Err(zk::Error::NoAuth) => return Err(no_auth(root)),
            Err(error) => return Err(unavailable(format!("cannot create the root: {error}"))),
        }
    }
    let client = if root == "/" {
        client
    } else {
        client
            .chroot(root.to_owned())
            .map_err(|_| unavailable(format!("{root} is not a valid chroot")))?
    };
    for directory_path in paths::DIRECTORIES {
        match client.create(directory_path, &[], &directory).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(zk::Error::NoAuth) => return Err(no_auth(directory_path)),
            Err(error) => {
                return Err(unavailable(format!(
                    "cannot create {directory_path}: {error}"
                )));
            }
        }
    }
    tracing::info!(
        servers,
        root,
        session = format_args!("{:#x}", client.session_id().0),
        timeout_ms = client.session_timeout().as_millis() as u64,
        "ZooKeeper session established"
    );
    Ok(client)
}

/// Waits for the session to end, then opens new ones until one works; forever.
async fn maintain(inner: std::sync::Weak<Inner>, mut client: zk::Client) {
    loop {
        let mut states = client.state_watcher();
        loop {
            let state = states.changed().await;
            match state {
                zk::SessionState::Disconnected => {
                    tracing::warn!("ZooKeeper connection lost; reconnecting");
                }
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                    tracing::info!("ZooKeeper connection restored");
                }
                terminal => {
                    tracing::warn!(state = %terminal, "ZooKeeper session ended; opening a new one");
                    break;
                }
            }
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.current.send_modify(|current| current.client = None);
        let (servers, root, identity, session_timeout, connect_timeout) = (
            strong.servers.clone(),
            strong.root.clone(),
            strong.identity.clone(),
            strong.session_timeout,
            strong.connect_timeout,
        );
        drop(strong);
        let mut delay = Duration::from_millis(100);
        client = loop {
            match establish(&servers, &root, &identity, session_timeout, connect_timeout).await {
                Ok(client) => break client,
                Err(error) => {
                    tracing::debug!(%error, "new ZooKeeper session not possible yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.current.send_modify(|current| {
            current.number += 1;
            current.client = Some(client.clone());
        });
    }
}

fn create_mode(kind: NodeKind) -> zk::CreateMode {
    match kind {
        NodeKind::Persistent => zk::CreateMode::Persistent,
        NodeKind::PersistentSequential => zk::CreateMode::PersistentSequential,
        NodeKind::Ephemeral => zk::CreateMode::Ephemeral,
        NodeKind::EphemeralSequential => zk::CreateMode::EphemeralSequential,
    }
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(index) => Some(&path[..index]),
    }
}

/// A persistent recursive watch.
pub struct ZkChanges {
    watcher: Option<zk::PersistentWatcher>,
    path: String,
}

impl std::fmt::Debug for ZkChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkChanges")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Changes for ZkChanges {
    async fn next(&mut self) -> Result<(), StoreError> {
        let expired = || StoreError::SessionExpired {
            operation: "watch",
            path: self.path.clone(),
        };
        let watcher = self.watcher.as_mut().ok_or_else(expired)?;
        let event = watcher.changed().await;
        if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
            // The watcher panics if polled after a terminal event.
            self.watcher = None;
            return Err(expired());
        }
        Ok(())
    }
}

impl Store for ZkStore {
    type Changes = ZkChanges;

    async fn get(&self, path: &str) -> Result<Option<Node>, StoreError> {
        let client = self.client("get", path)?;
        match self.run("get", path, client.get_data(path)).await {
            Ok((data, stat)) => Ok(Some(Node {
                data,
                version: Version(stat.version),
                owned: stat.ephemeral_owner != 0 && stat.ephemeral_owner == client.session_id().0,
            })),
            Err(StoreError::NoNode { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client("list", path)?;
        match self.run("list", path, client.list_children(path)).await {
            Ok(mut children) => {
                children.sort();
                Ok(children)
            }
            Err(StoreError::NoNode { .. }) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, path: &str, data: &[u8], kind: NodeKind) -> Result<String, StoreError> {
        let client = self.client("create", path)?;
        let options = create_mode(kind).with_acls(creator_only());
        let sequential = matches!(
            kind,
            NodeKind::PersistentSequential | NodeKind::EphemeralSequential
        );
        let mut attempt = 0;
        loop {
            match self
                .run("create", path, client.create(path, data, &options))
                .await
            {
                Ok((_, sequence)) => {
                    return Ok(if sequential {
                        format!("{path}{sequence}")
                    } else {
                        path.to_owned()
                    });
                }
                Err(StoreError::NoNode { .. }) if attempt == 0 => {
                    attempt += 1;
                    if let Some(parent) = parent(path) {
                        let directory = zk::CreateMode::Persistent.with_acls(creator_only());
                        self.run("create", parent, client.mkdir(parent, &directory))
                            .await?;
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn set(
        &self,
        path: &str,
        data: &[u8],
        expected: Option<Version>,
    ) -> Result<Version, StoreError> {
        let client = self.client("set", path)?;
        let stat = self
            .run(
                "set",
                path,
                client.set_data(path, data, expected.map(|version| version.0)),
            )
            .await?;
        Ok(Version(stat.version))
    }

    async fn delete(&self, path: &str, expected: Option<Version>) -> Result<(), StoreError> {
        let client = self.client("delete", path)?;
        match self
            .run(
                "delete",
                path,
                client.delete(path, expected.map(|version| version.0)),
            )
            .await
        {
            Ok(()) | Err(StoreError::NoNode { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn claim_ephemeral(&self, path: &str, data: &[u8]) -> Result<(), StoreError> {
        for _ in 0..5 {
            let client = self.client("claim", path)?;
            match self.get(path).await? {
                None => match self.create(path, data, NodeKind::Ephemeral).await {
                    Ok(_) => return Ok(()),
                    Err(StoreError::NodeExists { .. }) => continue,
                    Err(error) => return Err(error),
                },
                Some(node) if node.owned => {
                    self.set(path, data, None).await?;
                    return Ok(());
                }
                Some(node) => {
                    // Left by an earlier session of this daemon: swap it for ours in one
                    // transaction, so that watchers never see the node missing.
                    let options = zk::CreateMode::Ephemeral.with_acls(creator_only());
                    let mut writer = client.new_multi_writer();
                    writer
                        .add_delete(path, Some(node.version.0))
                        .and_then(|()| writer.add_create(path, data, &options))
                        .map_err(|error| self.map_error("claim", path, error))?;
                    match self
                        .run("claim", path, async {
                            writer.commit().await.map_err(zk::Error::from)
                        })
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(StoreError::NoNode { .. } | StoreError::BadVersion { .. }) => continue,
                        Err(StoreError::Refused { reason, .. })
                            if reason.contains("runtime condition") =>
                        {
                            continue;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
        }
        Err(StoreError::BadVersion {
            path: path.to_owned(),
        })
    }

    async fn watch(&self, path: &str) -> Result<ZkChanges, StoreError> {
        let client = self.client("watch", path)?;
        let watcher = self
            .run(
                "watch",
                path,
                client.watch(path, zk::AddWatchMode::PersistentRecursive),
            )
            .await?;
        Ok(ZkChanges {
            watcher: Some(watcher),
            path: path.to_owned(),
        })
    }

    fn session(&self) -> u64 {
        self.inner.current.borrow().number
    }

    async fn session_changed(&self, known: u64) {
        let mut receiver = self.inner.current.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = receiver
            .wait_for(|current| current.number != known && current.client.is_some())
            .await;
    }

    fn connected(&self) -> bool {
        self.inner
            .current
            .borrow()
            .client
            .as_ref()
            .is_some_and(|client| {
                matches!(
                    client.state(),
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly
                )
            })
    }
}
