//! Who a connection to a DRPC server speaks for, and the key that proves it.
//!
//! A client holds the cluster secret. A topology's DRPC spouts and return bolts run in
//! workers, which never hold the cluster secret: they hold their topology's worker key,
//! which the server derives from the cluster secret and the topology id the connection
//! names in its [`Identity`](crate::protocol::Identity). The name is a claim, proved by
//! every frame that follows: only the holder of that topology's key can make them verify.

use squall_net::ClusterSecret;

/// The environment variable holding the cluster secret (clients, daemons, local mode).
pub use squall_core::worker::plan::SECRET_ENV;
/// The environment variable naming the topology a worker runs (set by its supervisor).
pub use squall_core::worker::plan::TOPOLOGY_ID_ENV;
/// The environment variable holding a worker's per-topology key.
pub use squall_core::worker::plan::WORKER_KEY_ENV;

/// The key a connection proves its frames with, and whose it is; or the promise to find it
/// in the environment of the process that runs the component
/// ([`from_environment_at_start`](Self::from_environment_at_start)).
#[derive(Debug, Clone)]
pub struct DrpcKey {
    source: KeySource,
}

#[derive(Debug, Clone)]
enum KeySource {
    Given {
        key: ClusterSecret,
        topology: Option<String>,
    },
    /// Looked up when the component starts: a topology is described (by `squall submit`)
    /// where its workers' keys are not, and run where they are.
    Environment,
}

impl DrpcKey {
    /// The cluster secret: admits calls, fetches and results.
    pub fn cluster(secret: ClusterSecret) -> Self {
        Self {
            source: KeySource::Given {
                key: secret,
                topology: None,
            },
        }
    }

    /// The worker key of `topology_id`: admits fetching requests and returning results,
    /// not calling functions.
    pub fn worker(topology_id: impl Into<String>, worker_key: ClusterSecret) -> Self {
        Self {
            source: KeySource::Given {
                key: worker_key,
                topology: Some(topology_id.into()),
            },
        }
    }

    /// The key [`from_environment`](Self::from_environment) finds, looked up when the
    /// component holding it starts ([`resolve`](Self::resolve)), in the process that runs
    /// it.
    pub fn from_environment_at_start() -> Self {
        Self {
            source: KeySource::Environment,
        }
    }

    /// This key, looked up in the environment now if it was deferred.
    ///
    /// # Errors
    /// As [`from_environment`](Self::from_environment).
    pub fn resolve(&self) -> Result<Self, String> {
        match self.source {
            KeySource::Given { .. } => Ok(self.clone()),
            KeySource::Environment => Self::from_environment(),
        }
    }

    /// The key a process finds in its environment: the cluster secret in
    /// [`SECRET_ENV`] when set (local mode, clients), else the worker key in
    /// [`WORKER_KEY_ENV`] of the topology [`TOPOLOGY_ID_ENV`] names (a cluster's worker).
    ///
    /// # Errors
    /// A description naming the variables when neither is usable.
    pub fn from_environment() -> Result<Self, String> {
        let variable = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        if let Some(secret) = variable(SECRET_ENV) {
            let secret = ClusterSecret::new(secret.into_encoded_bytes())
                .map_err(|error| format!("the cluster secret in {SECRET_ENV}: {error}"))?;
            return Ok(Self::cluster(secret));
        }
        match (variable(WORKER_KEY_ENV), variable(TOPOLOGY_ID_ENV)) {
            (Some(key), Some(topology)) => {
                let topology = topology
                    .into_string()
                    .map_err(|_| format!("the topology id in {TOPOLOGY_ID_ENV} is not UTF-8"))?;
                let key = ClusterSecret::new(key.into_encoded_bytes())
                    .map_err(|error| format!("the worker key in {WORKER_KEY_ENV}: {error}"))?;
                Ok(Self::worker(topology, key))
            }
            (Some(_), None) => Err(format!(
                "{WORKER_KEY_ENV} is set but {TOPOLOGY_ID_ENV} is not: a worker key is only \
                 usable with the topology it belongs to"
            )),
            _ => Err(format!(
                "no key to reach the DRPC servers: set {SECRET_ENV} (local mode and clients); \
                 a cluster's workers get {WORKER_KEY_ENV} and {TOPOLOGY_ID_ENV} from their \
                 supervisor"
            )),
        }
    }

    /// The key frames are proved with, and the topology whose worker key it is (`None` for
    /// the cluster secret).
    ///
    /// # Errors
    /// When the key is to be found in the environment and is not there.
    pub fn parts(&self) -> Result<(ClusterSecret, Option<String>), String> {
        match self.resolve()?.source {
            KeySource::Given { key, topology } => Ok((key, topology)),
            KeySource::Environment => unreachable!("resolved above"),
        }
    }

    /// The topology whose worker key this is; `None` for the cluster secret, or while the
    /// key is still to be found in the environment.
    pub fn topology(&self) -> Option<&str> {
        match &self.source {
            KeySource::Given { topology, .. } => topology.as_deref(),
            KeySource::Environment => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_key_names_its_topology_and_the_cluster_secret_none() {
        let secret = ClusterSecret::new(*b"0123456789abcdef0123").unwrap();
        assert_eq!(DrpcKey::cluster(secret.clone()).topology(), None);
        let worker = DrpcKey::worker("reach-1-17", secret);
        assert_eq!(worker.topology(), Some("reach-1-17"));
        assert_eq!(worker.parts().unwrap().1.as_deref(), Some("reach-1-17"));
    }
}
