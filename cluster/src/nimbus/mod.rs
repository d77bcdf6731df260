//! The master daemon. Any number run; one leads (see [`crate::election`]).
//!
//! Every nimbus answers artifact downloads and keeps a copy of every live topology's
//! artifact (fetched from whichever nimbus has it), so that a standby that takes over can
//! serve them. The leader alone accepts requests from clients and runs the scheduling
//! rounds: each round reads the cluster's records, asks [`decide`] what to write, and
//! writes it.

pub mod decide;
pub mod heartbeats;

mod admission;
mod api;
mod http;
mod replicate;
mod rounds;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::artifact::{ArtifactError, ArtifactStore};
use super::config::ClusterConfig;
use super::election;
use super::records::{NimbusInfo, now_ms};
use super::secret::{Secret, SecretError};
use super::shutdown;
use super::store::{ZkIdentity, ZkStore};
use super::tls::{ServerTls, TlsError};

/// Why nimbus could not run.
#[derive(Debug, thiserror::Error)]
pub enum NimbusError {
    /// No usable secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The HTTP service's key file is unusable.
    #[error("nimbus.http_key_file is unusable (it is read like a secret file): {0}")]
    HttpKey(#[source] SecretError),
    /// The client keys file is unusable.
    #[error("nimbus.client_keys: {0}")]
    ClientKeys(#[from] crate::client_keys::ClientKeysError),
    /// The artifact directory is unusable.
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    /// The API port cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// What every task of one nimbus shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ClusterConfig,
    pub(crate) secret: Secret,
    pub(crate) info: NimbusInfo,
    pub(crate) store: ZkStore,
    pub(crate) artifacts: ArtifactStore,
    /// TLS for the API, when `[tls]` configures a certificate.
    pub(crate) tls: Option<ServerTls>,
    pub(crate) leading: watch::Receiver<bool>,
    /// Wakes the scheduling rounds early (a request changed something).
    pub(crate) wake: Notify,
}

/// Runs a nimbus until SIGTERM or SIGINT.
///
/// # Errors
/// When the secret, the artifact directory, the API port or the runtime is unusable.
pub fn run(config: ClusterConfig) -> Result<(), NimbusError> {
    let secret = Secret::load(&config.cluster)?;
    shutdown::run_daemon(|stop| serve(config, secret, stop)).map_err(NimbusError::Runtime)?
}

/// Runs a nimbus until `shutdown` turns true.
///
/// # Errors
/// When the artifact directory or the API port is unusable.
pub async fn serve(
    config: ClusterConfig,
    secret: Secret,
    shutdown: watch::Receiver<bool>,
) -> Result<(), NimbusError> {
    let artifacts = ArtifactStore::open(&config.nimbus.data_dir.join("artifacts"))?;
    let tls = ServerTls::from_settings(&config.tls)?;
    let http_access = http::access(&config.nimbus)?;
    // Read at each request naming a key; read now too, so that a broken file stops nimbus
    // at start rather than refusing every such request.
    if let Some(path) = &config.nimbus.client_keys {
        let keys = crate::client_keys::ClientKeys::read(path)?;
        tracing::info!(keys = keys.len(), file = %path.display(), "client keys");
    }
    let address = format!("{}:{}", config.nimbus.bind, config.nimbus.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|source| NimbusError::Bind {
            address: address.clone(),
            source,
        })?;
    let info = NimbusInfo {
        id: config.nimbus.id(),
        host: config.nimbus.host.clone(),
        port: listener
            .local_addr()
            .map_or(config.nimbus.port, |local| local.port()),
        started_ms: now_ms(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    tracing::info!(nimbus = %info.id, api = %address, tls = tls.is_some(), "nimbus starting");
    let identity = ZkIdentity::from_secret(&secret);
    let store =
        ZkStore::connect_retrying(&config.zookeeper, &identity, Duration::from_millis(500)).await;
    restrict_tree(&store).await;
    let (leading_sender, leading) = watch::channel(false);
    let shared = Arc::new(Shared {
        config,
        secret,
        info,
        store,
        artifacts,
        tls,
        leading,
        wake: Notify::new(),
    });

    let election = {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            election::campaign(&shared.store, &shared.info, &leading_sender, shutdown).await;
        })
    };
    let rounds = tokio::spawn(rounds::lead(shared.clone(), shutdown.clone()));
    let replication = tokio::spawn(replicate::replicate(shared.clone(), shutdown.clone()));
    let api = tokio::spawn(api::listen(shared.clone(), listener, shutdown.clone()));
    let http = http::start(&shared, http_access, shutdown.clone())?;

    let mut shutdown = shutdown;
    let _ = shutdown.wait_for(|stop| *stop).await;
    api.abort();
    if let Some((server, refresh)) = http {
        refresh.abort();
        drop(server);
    }
    rounds.abort();
    replication.abort();
    let _ = election.await;
    shared.store.close().await;
    tracing::info!(nimbus = %shared.info.id, "nimbus stopped");
    Ok(())
}

/// Makes the cluster's tree private to its identity, for trees made before the cluster
/// used ACLs; what cannot be done is logged and does not stop the nimbus.
async fn restrict_tree(store: &ZkStore) {
    match store.restrict_tree().await {
        Ok(report) => {
            if !report.restricted.is_empty() {
                tracing::warn!(
                    count = report.restricted.len(),
                    nodes = %report.restricted.join(" "),
                    "znodes open to any ZooKeeper client are now private to the cluster"
                );
            }
            if !report.foreign.is_empty() {
                tracing::warn!(
                    nodes = %report.foreign.join(" "),
                    "znodes in the cluster's tree belong to another ZooKeeper identity; \
                     their records are ignored (delete them with zkCli.sh as their owner or \
                     a super user)"
                );
            }
            tracing::info!(
                checked = report.checked,
                "cluster znodes are private to the cluster"
            );
        }
        Err(error) => {
            tracing::warn!(%error, "cannot check the ACLs of the cluster's znodes now");
        }
    }
}
