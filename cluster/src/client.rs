//! The client side of the control protocol: finds the leader nimbus, sends authenticated
//! requests, submits topology programs. Blocking; used by the `squall` CLI, by topology
//! programs' own `submit` mode, and (on a blocking thread) by the daemons.
//!
//! ```no_run
//! use squall_cluster::{ClusterConfig, NimbusClient};
//! use squall_cluster::protocol::Request;
//!
//! let config = ClusterConfig::load(None).unwrap();
//! let client = NimbusClient::from_config(&config).unwrap();
//! let submitted = client.submit_program("./target/release/wordcount".as_ref(), &[]).unwrap();
//! println!("running as {}", submitted.topology_id);
//! client.kill("wordcount", Some(0)).unwrap();
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::artifact::{Artifact, ArtifactBuilder, ArtifactError, sha256_hex};
use super::config::ClusterConfig;
use super::plan::TopologyDescription;
use super::protocol::{
    self, ApiError, Hello, MAX_FRAME, MAX_REQUEST_FRAME, NONCE_LEN, ProtocolError, Request,
    Response, SupervisorSummary, TopologyReport, TopologySummary,
};
use super::records::NimbusInfo;
use super::secret::{PROOF_LEN, Secret, SecretError};
use super::store::{self, StoreError, ZkIdentity, ZkStore};
use super::tls;
use squall_topology_file::{Overrides, ResourceKind, TopologyFile};

/// How long past the ZooKeeper session timeout a request waits for a new leader: time for
/// a standby to see the old leader's node go and to start leading.
const ELECTION_SETTLE: Duration = Duration::from_secs(2);

/// Pause between attempts while no leader answers.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Why a request to the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No usable cluster secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// ZooKeeper, where the leader is published, cannot be reached.
    #[error("cannot reach the cluster: ZooKeeper at {servers} is unreachable ({reason})")]
    ZooKeeperUnreachable {
        /// The servers tried.
        servers: String,
        /// What failed.
        reason: String,
    },
    /// ZooKeeper refused this client: the cluster's znodes admit only the identity derived
    /// from the cluster secret, so this client's secret is not the cluster's.
    #[error(
        "the cluster's ZooKeeper nodes refuse this client (ZooKeeper {servers}): its cluster \
         secret is not the cluster's ({reason})"
    )]
    ZooKeeperRefused {
        /// The servers.
        servers: String,
        /// What ZooKeeper refused.
        reason: String,
    },
    /// A client key cannot read ZooKeeper, where the leader is published.
    #[error(
        "client key '{key}' opens no ZooKeeper node, so it cannot look the leader up: set \
         client.nimbus (or --nimbus HOST:PORT) to a nimbus of the cluster, which names the \
         leader"
    )]
    KeyNeedsNimbus {
        /// The key's name.
        key: String,
    },
    /// No nimbus is elected leader.
    #[error(
        "no nimbus leads the cluster (ZooKeeper {servers}, root {root}): start `squall nimbus`, \
         or wait for a standby to take over"
    )]
    NoLeader {
        /// The servers asked.
        servers: String,
        /// The cluster's root.
        root: String,
    },
    /// The nimbus cannot be reached.
    #[error("cannot reach nimbus at {address}: {source}")]
    NimbusUnreachable {
        /// Its address.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The exchange broke down.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// TLS with nimbus could not be set up.
    #[error(
        "TLS with nimbus at {address} failed: {reason} (nimbus needs tls.cert_chain and \
         tls.key, signed by a CA of tls.ca, naming the host dialled)"
    )]
    Tls {
        /// Nimbus's address.
        address: String,
        /// What failed.
        reason: String,
    },
    /// Nimbus refused the request.
    #[error("{0}")]
    Refused(ApiError),
    /// The topology program could not describe its topology.
    #[error("cannot describe the topology of {program}: {reason}")]
    Describe {
        /// The program.
        program: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The artifact could not be built.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// Nimbus answered something else than the request calls for.
    #[error("unexpected answer from nimbus: {0}")]
    Unexpected(String),
}

/// A connection carrying the exchange: plain TCP or TLS.
trait Duplex: Read + Write {}

impl<T: Read + Write> Duplex for T {}

/// What a successful submission returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The topology's id.
    pub topology_id: String,
    /// The scheduler's remark (for example, not enough slots).
    pub note: Option<String>,
    /// Nimbuses holding the artifact.
    pub replicas: usize,
}

/// A topology ready to be submitted.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Its description.
    pub description: TopologyDescription,
    /// The arguments its program is described and run with.
    pub args: Vec<String>,
    /// Its artifact.
    pub artifact: Artifact,
    /// Whether its spouts start at once (default) or wait for `squall activate`.
    pub active: bool,
}

impl Submission {
    /// The submission of the topology program at `program`: runs `<program> describe
    /// [args]` for its description and packs the program as the artifact.
    ///
    /// # Errors
    /// When the program cannot describe itself or cannot be read.
    pub fn program(program: &Path, args: &[String]) -> Result<Self, ClientError> {
        let description = describe_program(program, args)?;
        let artifact = ArtifactBuilder::program(program)?.build()?;
        Ok(Self {
            description,
            args: args.to_vec(),
            artifact,
            active: true,
        })
    }
}

impl Submission {
    /// The submission of the topology file (YAML) at `path`, which the stock `squall`
    /// binary runs on the workers: the file is parsed and built here for its description,
    /// and the artifact holds the file and every resource it names (see
    /// [`TopologyFile::resources`]), at their paths relative to the file's directory. The
    /// workers receive the file's name as their only argument.
    ///
    /// # Errors
    /// When the file is invalid or a resource cannot be read.
    pub fn topology_file(path: &Path) -> Result<Self, ClientError> {
        let describe = |reason: String| ClientError::Describe {
            program: path.to_owned(),
            reason,
        };
        let file = TopologyFile::read(path).map_err(|error| describe(error.to_string()))?;
        let topology = file
            .build(&Overrides::default())
            .map_err(|error| describe(error.to_string()))?;
        let description = TopologyDescription::of(&topology);
        let base = path.parent().unwrap_or(Path::new("."));
        let mut builder = ArtifactBuilder::stock();
        for resource in file.resources() {
            let local = base.join(&resource.path);
            match resource.kind {
                ResourceKind::File => add_resource_file(&mut builder, &resource.path, &local)?,
                ResourceKind::Directory => {
                    add_resource_dir(&mut builder, &resource.path, &local)?;
                }
            }
        }
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| describe("the file name is not UTF-8".to_owned()))?;
        Ok(Self {
            description,
            args: vec![name.to_owned()],
            artifact: builder.build()?,
            active: true,
        })
    }
}

/// Adds the file `local` as `entry`, keeping it executable if it is.
fn add_resource_file(
    builder: &mut ArtifactBuilder,
    entry: &Path,
    local: &Path,
) -> Result<(), ClientError> {
    use std::os::unix::fs::PermissionsExt;
    let entry = entry.to_str().ok_or_else(|| ArtifactError::BadPath {
        path: entry.display().to_string(),
    })?;
    let executable = std::fs::metadata(local)
        .map_err(|source| ArtifactError::Io {
            action: "cannot read",
            path: local.to_owned(),
            source,
        })?
        .permissions()
        .mode()
        & 0o111
        != 0;
    // A resource named twice (a directory and a file in it) travels once.
    if !builder.contains(entry) {
        builder.add_file(entry, local, executable)?;
    }
    Ok(())
}

/// Adds every file under the directory `local` below `entry`.
fn add_resource_dir(
    builder: &mut ArtifactBuilder,
    entry: &Path,
    local: &Path,
) -> Result<(), ClientError> {
    let entries = std::fs::read_dir(local).map_err(|source| ArtifactError::Io {
        action: "cannot list",
        path: local.to_owned(),
        source,
    })?;
    let mut children: Vec<_> = entries.flatten().map(|child| child.file_name()).collect();
    children.sort();
    for name in children {
        let (entry, local) = (entry.join(&name), local.join(&name));
        if local.is_dir() {
            add_resource_dir(builder, &entry, &local)?;
        } else if local.is_file() {
            add_resource_file(builder, &entry, &local)?;
        }
    }
    Ok(())
}

/// Runs `<program> describe [args]` and parses the [`TopologyDescription`] it prints.
///
/// # Errors
/// When the program cannot run, fails, or prints something else.
pub fn describe_program(
    program: &Path,
    args: &[String],
) -> Result<TopologyDescription, ClientError> {
    let describe = |reason: String| ClientError::Describe {
        program: program.to_owned(),
        reason,
    };
    let output = std::process::Command::new(program)
        .arg("describe")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| describe(format!("cannot run it: {error}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(describe(format!(
            "`{} describe` failed ({}): {}",
            program.display(),
            output.status,
            stderr.trim()
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|error| {
        describe(format!(
            "it did not print a topology description as JSON ({error}); a topology program's \
             `describe` mode prints only that"
        ))
    })
}

/// A connection-per-request client of the cluster's leader nimbus.
#[derive(Debug, Clone)]
pub struct NimbusClient {
    config: ClusterConfig,
    /// The cluster secret, or the secret of the client key `key_name`.
    secret: Secret,
    key_name: Option<String>,
}

impl NimbusClient {
    /// A client with this configuration and the cluster secret (an admin).
    pub fn new(config: ClusterConfig, secret: Secret) -> Self {
        Self {
            config,
            secret,
            key_name: None,
        }
    }

    /// A client proving its requests with the client key `name`, whose secret is
    /// `secret` ([`crate::client_keys`]): nimbus lets it do what the key's role admits.
    pub fn with_key(config: ClusterConfig, name: &str, secret: Secret) -> Self {
        Self {
            config,
            secret,
            key_name: Some(name.to_owned()),
        }
    }

    /// A client with this configuration and the key it names: the client key
    /// `client.key_name` (its secret in `client.key_file`) when set, else the cluster
    /// secret.
    ///
    /// # Errors
    /// When no usable secret or key file is configured.
    pub fn from_config(config: &ClusterConfig) -> Result<Self, ClientError> {
        if let (Some(name), Some(file)) = (&config.client.key_name, &config.client.key_file) {
            let secret = Secret::read_as(file, "client key")?;
            return Ok(Self::with_key(config.clone(), name, secret));
        }
        Ok(Self::new(config.clone(), Secret::load(&config.cluster)?))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.client.timeout_ms.max(1))
    }

    /// The address of the leader: `client.nimbus` when configured, else the leader
    /// published in ZooKeeper.
    ///
    /// # Errors
    /// When ZooKeeper is unreachable or no nimbus leads.
    pub fn leader_address(&self) -> Result<String, ClientError> {
        if let Some(address) = &self.config.client.nimbus {
            return Ok(address.clone());
        }
        Ok(self.leader()?.address())
    }

    /// The leader published in ZooKeeper.
    ///
    /// # Errors
    /// When ZooKeeper is unreachable or no nimbus leads.
    pub fn leader(&self) -> Result<NimbusInfo, ClientError> {
        if let Some(key) = &self.key_name {
            return Err(ClientError::KeyNeedsNimbus { key: key.clone() });
        }
        let settings = self.config.zookeeper.clone();
        let unreachable = |error: StoreError| match error {
            StoreError::NoAuth { .. } => ClientError::ZooKeeperRefused {
                servers: settings.connect_string(),
                reason: error.to_string(),
            },
            error => ClientError::ZooKeeperUnreachable {
                servers: settings.connect_string(),
                reason: error.to_string(),
            },
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| ClientError::ZooKeeperUnreachable {
                servers: settings.connect_string(),
                reason: format!("cannot start the client runtime: {error}"),
            })?;
        runtime.block_on(async {
            let identity = ZkIdentity::from_secret(&self.secret);
            let zk = ZkStore::connect(&settings, &identity)
                .await
                .map_err(unreachable)?;
            let leader = store::read_leader(&zk).await;
            zk.close().await;
            leader
                .map_err(unreachable)?
                .ok_or_else(|| ClientError::NoLeader {
                    servers: settings.connect_string(),
                    root: settings.root.clone(),
                })
        })
    }

    /// How long [`call`](Self::call) waits for a leader to be elected and reachable: a dead
    /// leader's election node lasts until its ZooKeeper session expires, and a standby
    /// then takes a moment to lead.
    pub fn election_wait(&self) -> Duration {
        self.config.zookeeper.session_timeout() + ELECTION_SETTLE
    }

    /// Sends `request` (with `payload`, for uploads) to the leader and returns the answer
    /// and its payload. While leadership changes hands — no leader elected yet, the nimbus
    /// asked no longer leads, or the leader found cannot be connected to — it follows the
    /// leader named in the refusal or found again in ZooKeeper, retrying for up to
    /// [`election_wait`](Self::election_wait). Only requests that never reached a nimbus
    /// or were refused unread are sent again.
    ///
    /// # Errors
    /// When the leader cannot be found or reached within that time, or refuses the request.
    pub fn call(
        &self,
        request: &Request,
        payload: &[u8],
    ) -> Result<(Response, Vec<u8>), ClientError> {
        let deadline = Instant::now() + self.election_wait();
        let mut named: Option<String> = None;
        loop {
            let attempt = match named.take() {
                Some(address) => Ok(address),
                None => self.leader_address(),
            }
            .and_then(|address| {
                self.call_at(&address, request, payload)
                    .inspect_err(|error| {
                        if let ClientError::Refused(ApiError::NotLeader {
                            leader: Some(leader),
                        }) = error
                            && *leader != address
                        {
                            named = Some(leader.clone());
                        }
                    })
            });
            match attempt {
                Err(error) if self.leadership_in_flux(&error) && Instant::now() < deadline => {
                    tracing::debug!("retrying while leadership settles: {error}");
                    // A leader named in a refusal is asked at once; anything else needs
                    // the election to move first.
                    if named.is_none() {
                        std::thread::sleep(RETRY_PAUSE);
                    }
                }
                other => return other,
            }
        }
    }

    /// Whether `error` comes from leadership changing hands, which settles by itself: no
    /// leader elected yet, a nimbus that no longer (or not yet) leads, or a leader found in
    /// ZooKeeper that is gone. A configured `client.nimbus` that cannot be reached is not
    /// expected to come back by itself.
    fn leadership_in_flux(&self, error: &ClientError) -> bool {
        match error {
            ClientError::NoLeader { .. } | ClientError::Refused(ApiError::NotLeader { .. }) => true,
            ClientError::NimbusUnreachable { .. } => self.config.client.nimbus.is_none(),
            _ => false,
        }
    }

    /// Sends `request` to the nimbus at `address`.
    ///
    /// # Errors
    /// When it cannot be reached, does not authenticate, or refuses the request.
    pub fn call_at(
        &self,
        address: &str,
        request: &Request,
        payload: &[u8],
    ) -> Result<(Response, Vec<u8>), ClientError> {
        let unreachable = |source| ClientError::NimbusUnreachable {
            address: address.to_owned(),
            source,
        };
        let socket = address
            .to_socket_addrs()
            .map_err(unreachable)?
            .next()
            .ok_or_else(|| unreachable(std::io::Error::other("the name resolves to no address")))?;
        let tcp =
            TcpStream::connect_timeout(&socket, Duration::from_secs(5)).map_err(unreachable)?;
        let io = |source| ProtocolError::Io {
            peer: address.to_owned(),
            source,
        };
        tcp.set_read_timeout(Some(self.timeout())).map_err(io)?;
        tcp.set_write_timeout(Some(self.timeout())).map_err(io)?;
        let _ = tcp.set_nodelay(true);
        let mut stream = self.secure(tcp, address)?;

        let hello = protocol::read_frame(&mut stream, address, MAX_FRAME)?;
        let hello: Hello = match protocol::parse(&hello, address) {
            Ok(hello) => hello,
            // A refusal in place of the hello (a nimbus that requires TLS).
            Err(error) => match serde_json::from_slice::<Response>(&hello) {
                Ok(Response::Error(refusal)) => return Err(ClientError::Refused(refusal)),
                _ => return Err(error.into()),
            },
        };
        let garbled = |reason: String| ProtocolError::Garbled {
            peer: address.to_owned(),
            reason,
        };
        if hello.protocol != protocol::PROTOCOL {
            return Err(garbled(format!(
                "it speaks protocol {}, this client {}",
                hello.protocol,
                protocol::PROTOCOL
            ))
            .into());
        }
        let nonce = protocol::unhex(&hello.nonce)
            .filter(|nonce| nonce.len() == NONCE_LEN)
            .ok_or_else(|| garbled("bad nonce".to_owned()))?;
        let body = serde_json::to_vec(&protocol::SignedBy {
            key: self.key_name.as_deref(),
            request,
        })
        .expect("requests serialize");
        if body.len() > MAX_REQUEST_FRAME {
            return Err(ClientError::Refused(ApiError::RequestTooLarge {
                bytes: body.len() as u64,
                max: MAX_REQUEST_FRAME as u64,
            }));
        }
        let proof = protocol::request_proof(&self.secret, &nonce, &body);
        protocol::write_frames(&mut stream, address, &[&body, &proof])?;
        stream.flush().map_err(io)?;
        let mut response = self.read_response(&mut stream, address, &nonce, &proof)?;
        if request.payload_len() > 0 && response == Response::Continue {
            stream.write_all(payload).map_err(io)?;
            stream.flush().map_err(io)?;
            response = self.read_response(&mut stream, address, &nonce, &proof)?;
        }
        if response == Response::Continue {
            return Err(garbled("it asked for a payload that was not announced".to_owned()).into());
        }
        let mut data = Vec::new();
        let len = response.payload_len();
        if len > 0 {
            (&mut stream).take(len).read_to_end(&mut data).map_err(io)?;
            if data.len() as u64 != len {
                return Err(
                    garbled(format!("payload ended after {} of {len} bytes", data.len())).into(),
                );
            }
        }
        match response {
            Response::Error(error) => Err(ClientError::Refused(error)),
            response => Ok((response, data)),
        }
    }

    /// Reads one answer and checks its proof.
    /// `tcp` as it carries the exchange: wrapped in TLS, handshake done, when `tls.ca` is
    /// configured.
    fn secure(&self, mut tcp: TcpStream, address: &str) -> Result<Box<dyn Duplex>, ClientError> {
        let Some(ca) = &self.config.tls.ca else {
            return Ok(Box::new(tcp));
        };
        let tls_failed = |reason: String| ClientError::Tls {
            address: address.to_owned(),
            reason,
        };
        let config = tls::client_config(ca).map_err(|error| tls_failed(error.to_string()))?;
        let name = tls::server_name(address).map_err(|error| tls_failed(error.to_string()))?;
        let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
            .map_err(|error| tls_failed(error.to_string()))?;
        while connection.is_handshaking() {
            connection
                .complete_io(&mut tcp)
                .map_err(|error| tls_failed(error.to_string()))?;
        }
        Ok(Box::new(rustls::StreamOwned::new(connection, tcp)))
    }

    fn read_response(
        &self,
        stream: &mut Box<dyn Duplex>,
        address: &str,
        nonce: &[u8],
        proof: &[u8],
    ) -> Result<Response, ClientError> {
        let answer = protocol::read_frame(stream, address, MAX_FRAME)?;
        let response: Response = protocol::parse(&answer, address)?;
        // Refusals sent before the request was authenticated carry no proof.
        if let Response::Error(
            refusal @ (ApiError::Unauthenticated | ApiError::RequestTooLarge { .. }),
        ) = response
        {
            return Err(ClientError::Refused(refusal));
        }
        let answer_proof = protocol::read_frame(stream, address, PROOF_LEN)?;
        let expected = protocol::response_proof(&self.secret, nonce, proof, &answer);
        if answer_proof != expected {
            return Err(ProtocolError::Unauthenticated {
                peer: address.to_owned(),
            }
            .into());
        }
        Ok(response)
    }

    fn done(&self, request: &Request) -> Result<String, ClientError> {
        match self.call(request, &[])?.0 {
            Response::Done { message } => Ok(message),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Submits a topology.
    ///
    /// # Errors
    /// When the cluster cannot be reached or refuses it.
    pub fn submit(&self, submission: &Submission) -> Result<Submitted, ClientError> {
        let request = Request::Submit {
            name: submission.description.name.clone(),
            description: submission.description.clone(),
            args: submission.args.clone(),
            artifact: submission.artifact.digest.clone(),
            artifact_bytes: submission.artifact.bytes.len() as u64,
            active: submission.active,
        };
        match self.call(&request, &submission.artifact.bytes)?.0 {
            Response::Submitted {
                topology_id,
                note,
                replicas,
            } => Ok(Submitted {
                topology_id,
                note,
                replicas,
            }),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Describes, packs and submits the topology program at `program`.
    ///
    /// # Errors
    /// When the program cannot describe itself, or the cluster refuses it.
    pub fn submit_program(
        &self,
        program: &Path,
        args: &[String],
    ) -> Result<Submitted, ClientError> {
        self.submit(&Submission::program(program, args)?)
    }

    /// The cluster's topologies and supervisors.
    ///
    /// # Errors
    /// When the cluster cannot be reached.
    pub fn list(&self) -> Result<(Vec<TopologySummary>, Vec<SupervisorSummary>), ClientError> {
        match self.call(&Request::List, &[])?.0 {
            Response::Topologies {
                topologies,
                supervisors,
            } => Ok((topologies, supervisors)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// One topology in detail.
    ///
    /// # Errors
    /// When the cluster cannot be reached or has no such topology.
    pub fn status(&self, name: &str) -> Result<TopologyReport, ClientError> {
        match self
            .call(
                &Request::Status {
                    name: name.to_owned(),
                },
                &[],
            )?
            .0
        {
            Response::Status(report) => Ok(*report),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Kills a topology after pausing it for `wait_secs` (default: its message timeout).
    ///
    /// # Errors
    /// When the cluster cannot be reached or has no such topology.
    pub fn kill(&self, name: &str, wait_secs: Option<u64>) -> Result<String, ClientError> {
        self.done(&Request::Kill {
            name: name.to_owned(),
            wait_secs,
        })
    }

    /// Resumes a topology's spouts.
    ///
    /// # Errors
    /// When the cluster cannot be reached or has no such topology.
    pub fn activate(&self, name: &str) -> Result<String, ClientError> {
        self.done(&Request::Activate {
            name: name.to_owned(),
        })
    }

    /// Pauses a topology's spouts.
    ///
    /// # Errors
    /// When the cluster cannot be reached or has no such topology.
    pub fn deactivate(&self, name: &str) -> Result<String, ClientError> {
        self.done(&Request::Deactivate {
            name: name.to_owned(),
        })
    }

    /// Reschedules a topology with a new worker count and parallelism.
    ///
    /// # Errors
    /// When the cluster cannot be reached, has no such topology, or the parallelism does
    /// not fit it.
    pub fn rebalance(
        &self,
        name: &str,
        workers: Option<usize>,
        parallelism: BTreeMap<String, usize>,
        wait_secs: Option<u64>,
    ) -> Result<String, ClientError> {
        self.done(&Request::Rebalance {
            name: name.to_owned(),
            workers,
            parallelism,
            wait_secs,
        })
    }

    /// Downloads the artifact `digest` from the nimbus at `address`, checked against its
    /// digest.
    ///
    /// # Errors
    /// When it cannot be reached, lacks the artifact, or sends other bytes.
    pub fn fetch_artifact(&self, address: &str, digest: &str) -> Result<Vec<u8>, ClientError> {
        let request = Request::FetchArtifact {
            digest: digest.to_owned(),
        };
        match self.call_at(address, &request, &[])? {
            (Response::Artifact { .. }, bytes) => {
                let actual = sha256_hex(&bytes);
                if actual != digest {
                    return Err(ArtifactError::DigestMismatch {
                        expected: digest.to_owned(),
                        actual,
                    }
                    .into());
                }
                Ok(bytes)
            }
            (other, _) => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}

/// Downloads the artifact `digest` from the first of `holders` that has it (on a blocking
/// thread) and hands its checked bytes to `keep`, which stores or unpacks them.
///
/// # Errors
/// Every holder's failure, or that there is no holder.
pub async fn fetch_from_holders<K>(
    client: &NimbusClient,
    holders: Vec<NimbusInfo>,
    digest: &str,
    keep: K,
) -> Result<(), String>
where
    K: Fn(Vec<u8>) -> Result<(), String> + Clone + Send + 'static,
{
    let mut failures = Vec::new();
    for holder in holders {
        let client = client.clone();
        let address = holder.address();
        let wanted = digest.to_owned();
        let keep = keep.clone();
        let result = tokio::task::spawn_blocking(move || {
            let bytes = client
                .fetch_artifact(&address, &wanted)
                .map_err(|error| error.to_string())?;
            keep(bytes)
        })
        .await
        .map_err(|error| error.to_string())?;
        match result {
            Ok(()) => return Ok(()),
            Err(error) => failures.push(format!("{}: {error}", holder.address())),
        }
    }
    if failures.is_empty() {
        Err("no nimbus holds it".to_owned())
    } else {
        Err(failures.join("; "))
    }
}
