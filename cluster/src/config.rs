//! Settings of the control plane: one TOML file shared by nimbus, supervisors and the CLI.
//!
//! Every setting has a default (see `docs/configuration.md` for the annotated file); a file
//! only names what differs. Unknown keys are refused, so a misspelt setting is reported
//! instead of silently ignored.
//!
//! ```
//! use squall_cluster::ClusterConfig;
//!
//! let config = ClusterConfig::from_toml(
//!     r#"
//!     [zookeeper]
//!     servers = ["zk1:2181", "zk2:2181"]
//!     session_timeout_ms = 6000
//!
//!     [supervisor]
//!     ports = [6700, 6701]
//!     "#,
//! )
//! .unwrap();
//! assert_eq!(config.zookeeper.connect_string(), "zk1:2181,zk2:2181");
//! assert_eq!(config.zookeeper.root, "/squall");
//! assert_eq!(config.nimbus.port, 6627);
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "SQUALL_CONF";

/// The configuration file read when neither `--config` nor [`CONFIG_ENV`] names one (and
/// it exists).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/squall/squall.toml";

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or names unknown settings.
    #[error("configuration file {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A setting has a value that cannot work.
    #[error("configuration setting {key} is invalid: {reason}")]
    Invalid {
        /// The setting, as `section.key`.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// All settings; each section belongs to one daemon (or the CLI).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's name and secret.
    pub cluster: ClusterSettings,
    /// Where ZooKeeper is.
    pub zookeeper: ZooKeeperSettings,
    /// The master daemon.
    pub nimbus: NimbusSettings,
    /// The node daemon.
    pub supervisor: SupervisorSettings,
    /// The command-line client.
    pub client: ClientSettings,
    /// TLS for connections to nimbus.
    pub tls: TlsSettings,
    /// The DRPC servers, and where clients and topologies find them.
    pub drpc: DrpcSettings,
}

/// The `[tls]` section: TLS (rustls) for every connection to nimbus's port — the command
/// line, topology programs' `submit`, supervisors and nimbuses fetching artifacts. Without
/// it, those connections are plain TCP (requests are authenticated with the secret either
/// way).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain nimbus presents, its own certificate first. With
    /// [`key`](Self::key), nimbus accepts TLS connections only. Default none.
    pub cert_chain: Option<PathBuf>,
    /// PEM private key of the certificate; must be private to its owner (mode 0600).
    /// Default none.
    pub key: Option<PathBuf>,
    /// PEM CA certificates trusted to sign nimbus certificates. When set, clients,
    /// supervisors and nimbuses connect to nimbus with TLS and check that its certificate
    /// names the host they dial. Default none.
    pub ca: Option<PathBuf>,
    /// Whether the links between workers run in TLS too, mutually authenticated with the
    /// files above (all three required): every worker presents `cert_chain` and accepts only
    /// peers whose certificate `ca` signed. Costs throughput; see `docs/security.md`.
    /// Default false.
    pub worker_links: bool,
    /// The name every worker's certificate carries, checked by the worker dialling it.
    /// Default `squall-worker`.
    pub worker_name: Option<String>,
}

impl TlsSettings {
    /// The name a dialled worker's certificate must carry.
    pub fn worker_name(&self) -> &str {
        self.worker_name.as_deref().unwrap_or("squall-worker")
    }
}

/// The `[cluster]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// The cluster's name; workers of clusters with other names refuse each other. Default
    /// `"squall"`.
    pub name: String,
    /// File holding the cluster secret (at least 16 bytes; trailing whitespace is ignored).
    /// The environment variable `SQUALL_CLUSTER_SECRET` takes precedence. Default none.
    pub secret_file: Option<PathBuf>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            name: "squall".to_owned(),
            secret_file: None,
        }
    }
}

/// The `[zookeeper]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZooKeeperSettings {
    /// The ensemble's `host:port` addresses. Default `["127.0.0.1:2181"]`.
    pub servers: Vec<String>,
    /// The znode under which this cluster keeps all its state (a chroot), so that several
    /// clusters share one ensemble. Created when missing; every znode under it is private
    /// to the cluster's ZooKeeper identity ([`crate::store::ZkIdentity`]). Default
    /// `"/squall"`.
    pub root: String,
    /// Session timeout asked of ZooKeeper: how long after a daemon dies its ephemeral nodes
    /// (leadership, supervisor registration) disappear. The server bounds it by its
    /// `minSessionTimeout`/`maxSessionTimeout`. Default 10000.
    pub session_timeout_ms: u64,
    /// How long one connection attempt may take. Default 5000.
    pub connect_timeout_ms: u64,
}

impl Default for ZooKeeperSettings {
    fn default() -> Self {
        Self {
            servers: vec!["127.0.0.1:2181".to_owned()],
            root: "/squall".to_owned(),
            session_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
        }
    }
}

impl ZooKeeperSettings {
    /// The servers as a ZooKeeper connect string (`host:port,host:port`), without chroot.
    pub fn connect_string(&self) -> String {
        self.servers.join(",")
    }

    /// [`session_timeout_ms`](Self::session_timeout_ms) as a duration.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// [`connect_timeout_ms`](Self::connect_timeout_ms) as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// The `[nimbus]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NimbusSettings {
    /// Address the API listens on. Default `"0.0.0.0"`.
    pub bind: String,
    /// Address other machines reach this nimbus at (published in ZooKeeper). Default the
    /// machine's host name.
    pub host: String,
    /// API port (clients, supervisors and other nimbuses). Default 6627.
    pub port: u16,
    /// Where this nimbus keeps topology artifacts. Default `"/var/lib/squall/nimbus"`.
    pub data_dir: PathBuf,
    /// Id of this nimbus. Default `<host>-<port>`.
    pub id: Option<String>,
    /// How often the leader re-examines the cluster even when nothing wakes it. Default
    /// 1000.
    pub monitor_interval_ms: u64,
    /// A worker whose heartbeat (relayed by its supervisor) has not changed for this long is
    /// dead and its executors move elsewhere. Longer than the supervisor's own worker
    /// timeout, so that a supervisor gets to restart a worker first. Default 30000.
    pub worker_timeout_ms: u64,
    /// How long a newly assigned worker may take to send its first heartbeat. Default
    /// 120000.
    pub worker_start_timeout_ms: u64,
    /// A submission is confirmed once this many nimbuses hold its artifact. Default 1 (the
    /// leader alone).
    pub min_replicas: usize,
    /// Longest wait for [`min_replicas`](Self::min_replicas) before confirming anyway.
    /// Default 30000.
    pub replication_timeout_ms: u64,
    /// Largest artifact accepted, in bytes. Default 1 GiB.
    pub max_artifact_bytes: u64,
    /// Connections that may wait at once to send an authenticated request; when all are
    /// taken, the oldest is closed to admit a new one. Default 256.
    pub max_unauthenticated_connections: usize,
    /// How long a connection may take to send its request and proof. Default 5000.
    pub authentication_timeout_ms: u64,
    /// `ip:port` the HTTP service (`/metrics`, the REST API under `/api/v1/`, service
    /// discovery at `/sd/workers`) listens on; empty turns it off. A non-loopback address
    /// needs `http_key_file`. Default `""`.
    pub http_bind: String,
    /// File (mode 0600, at least 16 bytes) holding the key HTTP clients must send as
    /// `Authorization: Bearer <key>`. Default none: only loopback clients are served.
    pub http_key_file: Option<PathBuf>,
    /// TOML file listing named client keys and their roles (viewer, submitter, admin; see
    /// `squall_cluster::client_keys`), read again for each request naming a key. Default
    /// none: only the cluster secret (an admin) is accepted.
    pub client_keys: Option<PathBuf>,
}

impl Default for NimbusSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0".to_owned(),
            host: host_name(),
            port: 6627,
            data_dir: PathBuf::from("/var/lib/squall/nimbus"),
            id: None,
            monitor_interval_ms: 1_000,
            worker_timeout_ms: 30_000,
            worker_start_timeout_ms: 120_000,
            min_replicas: 1,
            replication_timeout_ms: 30_000,
            max_artifact_bytes: 1 << 30,
            max_unauthenticated_connections: 256,
            authentication_timeout_ms: 5_000,
            http_bind: String::new(),
            http_key_file: None,
            client_keys: None,
        }
    }
}

impl NimbusSettings {
    /// [`authentication_timeout_ms`](Self::authentication_timeout_ms) as a duration.
    pub fn authentication_timeout(&self) -> Duration {
        Duration::from_millis(self.authentication_timeout_ms)
    }

    /// The configured id, or `<host>-<port>`.
    pub fn id(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.host, self.port))
    }
}

/// The `[supervisor]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorSettings {
    /// Id of this supervisor; stable across restarts. Default `<host>-<first port>`.
    pub id: Option<String>,
    /// Address workers of other machines reach this machine's workers at. Default the
    /// machine's host name.
    pub host: String,
    /// The worker slots: one worker process per port. Default `[6700, 6701, 6702, 6703]`.
    pub ports: Vec<u16>,
    /// Where the supervisor unpacks artifacts and runs workers. Default
    /// `"/var/lib/squall/supervisor"`.
    pub data_dir: PathBuf,
    /// The `squall` binary, which runs topologies described in files. Default the binary
    /// running the supervisor.
    pub worker_program: Option<PathBuf>,
    /// How often assignments are re-read even when no watch fires. Default 1000.
    pub sync_interval_ms: u64,
    /// How often workers' processes and heartbeats are checked. Default 100.
    pub monitor_interval_ms: u64,
    /// How often worker heartbeats are relayed to ZooKeeper. Default 1000.
    pub heartbeat_relay_interval_ms: u64,
    /// A worker whose `heartbeat.json` is older than this is killed and restarted. Default
    /// 10000.
    pub worker_timeout_ms: u64,
    /// How long a new worker may take to write its first heartbeat. Default 60000.
    pub worker_start_timeout_ms: u64,
    /// After SIGTERM, how long a worker may take to exit before SIGKILL. At least 3000: a
    /// worker drains what is in flight for up to 2000 ms, then closes its components (see
    /// [`crate::worker_stop`]). Default 5000.
    pub kill_grace_ms: u64,
    /// Transport backend named in worker plans: `auto`, `mio` or `io-uring`. Default
    /// `"auto"`.
    pub transport: String,
    /// `ip:port` the supervisor serves its own `/metrics` on; empty turns it off. Default
    /// `""`.
    pub metrics_bind: String,
    /// `ip:port` each worker serves its `/metrics` on (port 0: a free port, reported to
    /// nimbus in the worker's heartbeat); empty turns it off. Default `"127.0.0.1:0"`.
    pub worker_metrics_bind: String,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        Self {
            id: None,
            host: host_name(),
            ports: vec![6700, 6701, 6702, 6703],
            data_dir: PathBuf::from("/var/lib/squall/supervisor"),
            worker_program: None,
            sync_interval_ms: 1_000,
            monitor_interval_ms: 100,
            heartbeat_relay_interval_ms: 1_000,
            worker_timeout_ms: 10_000,
            worker_start_timeout_ms: 60_000,
            kill_grace_ms: 5_000,
            transport: "auto".to_owned(),
            metrics_bind: String::new(),
            worker_metrics_bind: "127.0.0.1:0".to_owned(),
        }
    }
}

impl SupervisorSettings {
    /// The configured id, or `<host>-<first port>`.
    pub fn id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                self.host,
                self.ports.first().copied().unwrap_or_default()
            )
        })
    }
}

/// The `[client]` section (the `squall` CLI and topology programs' `submit` mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// Talk to the nimbus at this `host:port` instead of looking the leader up in
    /// ZooKeeper. Default none.
    pub nimbus: Option<String>,
    /// Longest wait for one answer from nimbus. Default 60000.
    pub timeout_ms: u64,
    /// Prove requests with the client key of this name (listed in nimbus's
    /// `nimbus.client_keys`) instead of the cluster secret; needs
    /// [`key_file`](Self::key_file). A client key opens no ZooKeeper node, so it also needs
    /// [`nimbus`](Self::nimbus). Default none.
    pub key_name: Option<String>,
    /// File (mode 0600) holding the secret of [`key_name`](Self::key_name). Default none.
    pub key_file: Option<PathBuf>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            nimbus: None,
            timeout_ms: 60_000,
            key_name: None,
            key_file: None,
        }
    }
}

/// The `[drpc]` section: `squall drpc` servers and their clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrpcSettings {
    /// The DRPC servers' `host:port` (their DRPC port), for `squall drpc call` and for
    /// topologies. Default `["127.0.0.1:3772"]`.
    pub servers: Vec<String>,
    /// The address a DRPC server listens on. Default `"0.0.0.0"`.
    pub bind: String,
    /// The DRPC port. Default 3772.
    pub port: u16,
    /// The HTTP port (`POST /drpc/FUNCTION`); 0 turns it off. Default 3774.
    pub http_port: u16,
    /// Longest a request waits for its answer before the client gets a timeout error.
    /// Default 600 (Storm's `drpc.request.timeout.secs`).
    pub request_timeout_secs: u64,
}

impl Default for DrpcSettings {
    fn default() -> Self {
        Self {
            servers: vec![format!("127.0.0.1:{}", squall_drpc::protocol::DEFAULT_PORT)],
            bind: "0.0.0.0".to_owned(),
            port: squall_drpc::protocol::DEFAULT_PORT,
            http_port: squall_drpc::protocol::DEFAULT_HTTP_PORT,
            request_timeout_secs: 600,
        }
    }
}

impl ClusterConfig {
    /// Parses a configuration file's text.
    ///
    /// # Errors
    /// When the text is not valid TOML, names unknown settings, or a value cannot work.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, Path::new("<text>"))
    }

    fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the file at `path`.
    ///
    /// # Errors
    /// When the file cannot be read or is not a valid configuration.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The configuration the daemons and the CLI run with: the file `path` if given, else
    /// the file named by [`CONFIG_ENV`], else [`DEFAULT_CONFIG_PATH`] if it exists, else the
    /// defaults.
    ///
    /// # Errors
    /// When the chosen file cannot be read or is not a valid configuration.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        if let Some(path) = path {
            return Self::read(path);
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|path| !path.is_empty()) {
            return Self::read(Path::new(&path));
        }
        let default = Path::new(DEFAULT_CONFIG_PATH);
        if default.exists() {
            return Self::read(default);
        }
        Ok(Self::default())
    }

    /// The configuration as TOML text (every setting, defaults included).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the configuration serializes")
    }

    /// Checks values that parse but cannot work.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.cluster.name.is_empty() {
            return invalid("cluster.name", "must not be empty");
        }
        if self.zookeeper.servers.is_empty() {
            return invalid("zookeeper.servers", "names no server");
        }
        if self.drpc.request_timeout_secs == 0 {
            return invalid("drpc.request_timeout_secs", "must be at least 1");
        }
        if let Some(reason) = self
            .drpc
            .servers
            .iter()
            .find_map(|server| squall_drpc::return_info::split_server(server).err())
        {
            return Err(ConfigError::Invalid {
                key: "drpc.servers",
                reason,
            });
        }
        if let Some(server) = self
            .zookeeper
            .servers
            .iter()
            .find(|server| server.contains('/') || server.contains(','))
        {
            return Err(ConfigError::Invalid {
                key: "zookeeper.servers",
                reason: format!(
                    "{server:?} is not a host:port address (set the chroot with zookeeper.root)"
                ),
            });
        }
        let root = &self.zookeeper.root;
        if !root.starts_with('/') || (root.len() > 1 && root.ends_with('/')) || root.contains("//")
        {
            return Err(ConfigError::Invalid {
                key: "zookeeper.root",
                reason: format!("{root:?} is not an absolute znode path like /squall"),
            });
        }
        if self.zookeeper.session_timeout_ms == 0 {
            return invalid("zookeeper.session_timeout_ms", "must be positive");
        }
        if self.supervisor.ports.is_empty() {
            return invalid("supervisor.ports", "names no slot");
        }
        for (key, value) in [
            ("nimbus.http_bind", &self.nimbus.http_bind),
            ("supervisor.metrics_bind", &self.supervisor.metrics_bind),
            (
                "supervisor.worker_metrics_bind",
                &self.supervisor.worker_metrics_bind,
            ),
        ] {
            if !value.is_empty() && value.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{value:?} is not an ip:port address"),
                });
            }
        }
        if let Ok(address) = self.nimbus.http_bind.parse::<std::net::SocketAddr>()
            && !address.ip().is_loopback()
            && self.nimbus.http_key_file.is_none()
        {
            return Err(ConfigError::Invalid {
                key: "nimbus.http_key_file",
                reason: format!(
                    "must be set when nimbus.http_bind ({address}) is not a loopback address"
                ),
            });
        }
        let mut ports = self.supervisor.ports.clone();
        ports.sort_unstable();
        if ports.windows(2).any(|pair| pair[0] == pair[1]) {
            return invalid("supervisor.ports", "names a port twice");
        }
        for (key, id) in [
            ("supervisor.id", self.supervisor.id()),
            ("nimbus.id", self.nimbus.id()),
        ] {
            if id.is_empty() || id.contains('/') || id.starts_with('.') {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{id:?} cannot be a znode name"),
                });
            }
        }
        let min_grace = crate::worker_stop::min_kill_grace();
        if Duration::from_millis(self.supervisor.kill_grace_ms) < min_grace {
            return Err(ConfigError::Invalid {
                key: "supervisor.kill_grace_ms",
                reason: format!(
                    "{} ms is shorter than a worker's own stop, which drains in-flight tuples \
                     for up to {} ms and closes its components in up to {} ms more: stopping \
                     workers would be killed; set at least {} ms",
                    self.supervisor.kill_grace_ms,
                    crate::worker_stop::WORKER_STOP_DRAIN.as_millis(),
                    crate::worker_stop::WORKER_STOP_CLOSE.as_millis(),
                    min_grace.as_millis()
                ),
            });
        }
        match (&self.client.key_name, &self.client.key_file) {
            (Some(name), Some(_)) => {
                if let Err(reason) = crate::client_keys::check_key_name(name) {
                    return Err(ConfigError::Invalid {
                        key: "client.key_name",
                        reason,
                    });
                }
            }
            (Some(_), None) => {
                return invalid("client.key_file", "must be set with client.key_name");
            }
            (None, Some(_)) => {
                return invalid("client.key_name", "must be set with client.key_file");
            }
            (None, None) => {}
        }
        if self.nimbus.min_replicas == 0 {
            return invalid("nimbus.min_replicas", "must be at least 1");
        }
        if self.tls.cert_chain.is_some() != self.tls.key.is_some() {
            return invalid(
                if self.tls.key.is_some() {
                    "tls.cert_chain"
                } else {
                    "tls.key"
                },
                "tls.cert_chain and tls.key are set together or not at all",
            );
        }
        if self.tls.worker_links
            && (self.tls.cert_chain.is_none() || self.tls.key.is_none() || self.tls.ca.is_none())
        {
            return invalid(
                "tls.worker_links",
                "needs tls.cert_chain, tls.key and tls.ca: workers present the certificate \
                 and trust the CA",
            );
        }
        if self.nimbus.max_unauthenticated_connections == 0 {
            return invalid(
                "nimbus.max_unauthenticated_connections",
                "must be at least 1",
            );
        }
        for (key, value) in [
            (
                "nimbus.monitor_interval_ms",
                self.nimbus.monitor_interval_ms,
            ),
            (
                "nimbus.authentication_timeout_ms",
                self.nimbus.authentication_timeout_ms,
            ),
            (
                "supervisor.monitor_interval_ms",
                self.supervisor.monitor_interval_ms,
            ),
            (
                "supervisor.sync_interval_ms",
                self.supervisor.sync_interval_ms,
            ),
            (
                "supervisor.heartbeat_relay_interval_ms",
                self.supervisor.heartbeat_relay_interval_ms,
            ),
        ] {
            if value == 0 {
                return invalid(key, "must be positive");
            }
        }
        Ok(())
    }
}

/// This machine's host name, or `localhost` when it has none.
fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults_and_the_defaults_round_trip() {
        let config = ClusterConfig::from_toml("").unwrap();
        assert_eq!(config, ClusterConfig::default());
        assert_eq!(ClusterConfig::from_toml(&config.to_toml()).unwrap(), config);
        assert_eq!(config.supervisor.ports, [6700, 6701, 6702, 6703]);
        assert_eq!(config.zookeeper.session_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn mistakes_are_named() {
        let error = ClusterConfig::from_toml("[zookeeper]\nsession_timeout = 5\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `session_timeout`"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        let error = ClusterConfig::from_toml("[zookeeper]\nroot = \"squall\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("zookeeper.root"), "{error}");
        let error = ClusterConfig::from_toml("[supervisor]\nports = [1, 1]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "configuration setting supervisor.ports is invalid: names a port twice"
        );
        let error = ClusterConfig::from_toml("[zookeeper]\nservers = [\"zk:2181/chroot\"]\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("zookeeper.root"), "{error}");
        let error = ClusterConfig::from_toml("[nimbus]\nmax_unauthenticated_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "configuration setting nimbus.max_unauthenticated_connections is invalid: must be \
             at least 1"
        );
        let error = ClusterConfig::from_toml("[tls]\ncert_chain = \"/etc/squall/nimbus.crt\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "configuration setting tls.key is invalid: tls.cert_chain and tls.key are set \
             together or not at all"
        );
        let error = ClusterConfig::from_toml("[client]\nkey_name = \"ci\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "configuration setting client.key_file is invalid: must be set with client.key_name"
        );
        let error = ClusterConfig::from_toml("[client]\nkey_name = \"c i\"\nkey_file = \"/k\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("client.key_name is invalid"), "{error}");
        let config = ClusterConfig::from_toml(
            "[nimbus]\nclient_keys = \"/etc/squall/clients.toml\"\n\
             [client]\nkey_name = \"ci\"\nkey_file = \"/etc/squall/ci.key\"\n",
        )
        .unwrap();
        assert_eq!(
            config.nimbus.client_keys.as_deref(),
            Some(Path::new("/etc/squall/clients.toml"))
        );
        let error =
            ClusterConfig::from_toml("[tls]\nca = \"/etc/squall/ca.crt\"\nworker_links = true\n")
                .unwrap_err()
                .to_string();
        assert_eq!(
            error,
            "configuration setting tls.worker_links is invalid: needs tls.cert_chain, tls.key \
             and tls.ca: workers present the certificate and trust the CA"
        );
        let error = ClusterConfig::from_toml("[nimbus]\nauthentication_timeout_ms = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "configuration setting nimbus.authentication_timeout_ms is invalid: must be positive"
        );
    }

    #[test]
    fn a_kill_grace_shorter_than_the_worker_stop_is_refused() {
        let error = ClusterConfig::from_toml("[supervisor]\nkill_grace_ms = 2500\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "configuration setting supervisor.kill_grace_ms is invalid: 2500 ms is shorter \
             than a worker's own stop, which drains in-flight tuples for up to 2000 ms and \
             closes its components in up to 1000 ms more: stopping workers would be killed; \
             set at least 3000 ms"
        );
        let config = ClusterConfig::from_toml("[supervisor]\nkill_grace_ms = 3000\n").unwrap();
        assert_eq!(config.supervisor.kill_grace_ms, 3000);
    }

    #[test]
    fn http_addresses_are_checked_and_only_loopback_goes_without_a_key() {
        let error = ClusterConfig::from_toml("[nimbus]\nhttp_bind = \"0.0.0.0:8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nimbus.http_key_file is invalid: must be set when nimbus.http_bind (0.0.0.0:8080) is not a loopback address"),
            "{error}"
        );
        let error = ClusterConfig::from_toml("[supervisor]\nmetrics_bind = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "supervisor.metrics_bind is invalid: \"localhost\" is not an ip:port address"
            ),
            "{error}"
        );
        let keyed = ClusterConfig::from_toml(
            "[nimbus]\nhttp_bind = \"0.0.0.0:8080\"\nhttp_key_file = \"/etc/squall/http.key\"\n",
        );
        assert!(keyed.is_ok(), "{keyed:?}");
        assert!(ClusterConfig::from_toml("[nimbus]\nhttp_bind = \"127.0.0.1:8080\"\n").is_ok());
    }

    #[test]
    fn ids_default_from_host_and_port() {
        let config = ClusterConfig::from_toml(
            "[nimbus]\nhost = \"n1\"\nport = 7000\n[supervisor]\nhost = \"s1\"\nports = [6800]\n",
        )
        .unwrap();
        assert_eq!(config.nimbus.id(), "n1-7000");
        assert_eq!(config.supervisor.id(), "s1-6800");
    }
}
