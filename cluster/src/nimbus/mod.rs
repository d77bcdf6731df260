//! The master daemon. Any number run; one leads (see [`crate::election`]).
//!
//! Every nimbus answers artifact downloads and keeps a copy of every live topology's
//! artifact (fetched from whichever nimbus has it), so that a standby that takes over can
//! serve them. The leader alone accepts requests from clients and runs the scheduling
//! rounds: each round reads the cluster's records, asks [`decide`] what to write, and
//! writes it.

pub mod decide;
pub mod heartbeats;

mod api;
mod replicate;
mod rounds;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::artifact::{ArtifactError, ArtifactStore};
use super::config::ClusterConfig;
use super::election;
use super::records::{NimbusInfo, now_ms};
use super::secret::{Secret, SecretError};
use super::shutdown;
use super::store::ZkStore;

/// Why nimbus could not run.
#[derive(Debug, thiserror::Error)]
pub enum NimbusError {
    /// No usable secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
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
    tracing::info!(nimbus = %info.id, api = %address, "nimbus starting");
    let store = ZkStore::connect_retrying(&config.zookeeper, Duration::from_millis(500)).await;
    let (leading_sender, leading) = watch::channel(false);
    let shared = Arc::new(Shared {
        config,
        secret,
        info,
        store,
        artifacts,
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

    let mut shutdown = shutdown;
    let _ = shutdown.wait_for(|stop| *stop).await;
    api.abort();
    rounds.abort();
    replication.abort();
    let _ = election.await;
    shared.store.close().await;
    tracing::info!(nimbus = %shared.info.id, "nimbus stopped");
    Ok(())
}
