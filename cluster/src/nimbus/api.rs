//! The API: one authenticated request per connection (see
//! [`crate::protocol`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Shared;
use super::admission::{Admission, Pending};
use super::upload;
use crate::artifact::{self, ArtifactError};
use crate::client_keys::{Caller, ClientKeys};
use crate::paths;
use crate::protocol::{
    self, ApiError, Hello, MAX_REQUEST_FRAME, NONCE_LEN, Request, Response, SupervisorSummary,
    TopologyReport, TopologySummary,
};
use crate::records::{
    NimbusInfo, TopologyRecord, TopologyStatus, check_parallelism, executor_components, now_ms,
};
use crate::request_limits::deadline_after;
use crate::secret::{PROOF_LEN, Secret};
use crate::store::{self, NodeKind, Store, StoreError, Version, encode, read_topologies_versioned};

/// How long an authenticated client may take to upload its artifact.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Accepts connections until shutdown.
pub(super) async fn listen(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let admission = Admission::new(shared.config.nimbus.max_unauthenticated_connections);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = crate::shutdown::requested(&mut shutdown) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                let pending = admission.admit();
                tokio::spawn(async move {
                    let peer = peer.to_string();
                    if let Err(error) = handle(&shared, stream, &peer, pending).await {
                        tracing::debug!(%peer, %error, "API connection ended with an error");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept an API connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a connection sent no request to verify.
#[derive(Debug, thiserror::Error)]
enum Unread {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("its request frame of {bytes} bytes is too long")]
    TooLarge { bytes: u64 },
}

async fn read_frame(stream: &mut Connection, max: usize) -> Result<Vec<u8>, Unread> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let bytes = u32::from_le_bytes(length);
    let len = protocol::check_frame_len(bytes, max).map_err(|_| Unread::TooLarge {
        bytes: u64::from(bytes),
    })?;
    // Grown as the bytes arrive, so a client that only sends a length reserves no memory
    // before it has proved it knows the secret.
    let mut body = Vec::new();
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if body.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the frame ended after {} of its {len} bytes", body.len()),
        )
        .into());
    }
    Ok(body)
}

/// Sends the hello and reads the request and its proof.
async fn greet(
    shared: &Shared,
    stream: &mut Connection,
    nonce: &[u8; NONCE_LEN],
) -> Result<(Vec<u8>, Vec<u8>), Unread> {
    let hello = Hello {
        protocol: protocol::PROTOCOL,
        nonce: artifact::hex(nonce),
        nimbus: shared.info.id.clone(),
        leader: *shared.leading.borrow(),
    };
    stream
        .write_all(&protocol::frame(
            &serde_json::to_vec(&hello).expect("hello serializes"),
        ))
        .await?;
    let body = read_frame(stream, MAX_REQUEST_FRAME).await?;
    let proof = read_frame(stream, PROOF_LEN).await?;
    Ok((body, proof))
}

/// Answers an unauthenticated connection with `refusal` (without a proof, since it proved
/// nothing) and closes it.
async fn refuse(stream: &mut Connection, refusal: ApiError) -> std::io::Result<()> {
    let refusal = serde_json::to_vec(&Response::Error(refusal)).expect("responses serialize");
    stream.write_all(&protocol::frame(&refusal)).await?;
    stream.write_all(&protocol::frame(&[0; PROOF_LEN])).await?;
    stream.shutdown().await
}

/// A connection to nimbus's port, plain or TLS.
trait ApiStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ApiStream for T {}

type Connection = Box<dyn ApiStream>;

/// How long a nimbus that requires TLS waits for a client's first TLS record before it
/// takes the client for one speaking plain TCP (which waits for nimbus to speak first).
const PLAINTEXT_GRACE: Duration = Duration::from_secs(1);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// What became of a connection before its request was verified.
enum Opened {
    /// A request and its proof.
    Request(Connection, Vec<u8>, Vec<u8>),
    /// It is refused with this answer.
    Refused(Connection, ApiError),
}

/// Sets up TLS when nimbus requires it, sends the hello and reads the request.
async fn open(
    shared: &Shared,
    stream: TcpStream,
    nonce: &[u8; NONCE_LEN],
) -> std::io::Result<Opened> {
    let mut connection: Connection = match &shared.tls {
        None => Box::new(stream),
        Some(tls) => {
            let mut first = [0u8; 1];
            let starts_tls =
                match tokio::time::timeout(PLAINTEXT_GRACE, stream.peek(&mut first)).await {
                    Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(Ok(_)) => first[0] == TLS_HANDSHAKE,
                    Ok(Err(error)) => return Err(error),
                    Err(_) => false,
                };
            if !starts_tls {
                return Ok(Opened::Refused(Box::new(stream), ApiError::TlsRequired));
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            Box::new(acceptor.accept(stream).await?)
        }
    };
    match greet(shared, &mut connection, nonce).await {
        Ok((body, proof)) => Ok(Opened::Request(connection, body, proof)),
        Err(Unread::Io(error)) => Err(error),
        Err(Unread::TooLarge { bytes }) => Ok(Opened::Refused(
            connection,
            ApiError::RequestTooLarge {
                bytes,
                max: MAX_REQUEST_FRAME as u64,
            },
        )),
    }
}

async fn handle(
    shared: &Shared,
    stream: TcpStream,
    peer: &str,
    pending: Pending,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|error| std::io::Error::other(error.to_string()))?;
    let deadline = shared.config.nimbus.authentication_timeout();
    let opened = tokio::select! {
        opened = tokio::time::timeout(deadline, open(shared, stream, &nonce)) => opened,
        () = pending.evicted() => {
            return Err(std::io::Error::other(
                "closed unauthenticated to admit a newer connection (nimbus.max_unauthenticated_connections)",
            ));
        }
    };
    let (mut stream, body, proof) = match opened {
        Err(_) => {
            return Err(std::io::Error::other(format!(
                "no authenticated request within {deadline:?} (nimbus.authentication_timeout_ms)"
            )));
        }
        Ok(Err(error)) => return Err(error),
        Ok(Ok(Opened::Refused(mut stream, refusal))) => {
            match &refusal {
                ApiError::RequestTooLarge { bytes, .. } => tracing::warn!(
                    %peer,
                    bytes,
                    "refused a request longer than nimbus reads before authentication"
                ),
                _ => tracing::warn!(%peer, "refused a connection without TLS"),
            }
            return refuse(&mut stream, refusal).await;
        }
        Ok(Ok(Opened::Request(stream, body, proof))) => (stream, body, proof),
    };

    let Some((caller, key)) = authenticate(shared, peer, &nonce, &body, &proof).await else {
        match signing_worker_key(shared, &nonce, &body, &proof).await {
            Some(topology) => tracing::warn!(
                %peer,
                %topology,
                "refused a request signed with the worker key of topology {topology}: worker \
                 keys admit only their topology's data plane"
            ),
            None => tracing::warn!(%peer, "refused an unauthenticated request"),
        }
        return refuse(&mut stream, ApiError::Unauthenticated).await;
    };
    drop(pending);
    let exchange = Exchange {
        nonce,
        proof: proof.clone(),
        key,
    };
    let (response, payload) = match protocol::decode_request(&body) {
        Ok(request) => {
            tracing::debug!(%peer, key = ?caller.key, ?request, "API request");
            match caller.authorize(&request) {
                Ok(()) => respond(shared, &mut stream, &exchange, &caller, request).await,
                Err(reason) => (Response::Error(ApiError::Forbidden { reason }), Vec::new()),
            }
        }
        Err(error) => (Response::Error(error), Vec::new()),
    };
    if let Response::Error(error) = &response {
        tracing::info!(%peer, key = ?caller.key, %error, "request refused");
    }
    exchange.send(&mut stream, &response).await?;
    stream.write_all(&payload).await?;
    stream.shutdown().await
}

/// Who proved the request, and the key its answers are proved with: the cluster secret,
/// or the client key the request names (looked up in `nimbus.client_keys`, read afresh so
/// that keys change without a restart). `None` when the proof does not verify; why is
/// logged.
async fn authenticate(
    shared: &Shared,
    peer: &str,
    nonce: &[u8],
    body: &[u8],
    proof: &[u8],
) -> Option<(Caller, Secret)> {
    let Some(name) = protocol::request_key_name(body) else {
        return shared
            .secret
            .verify("request", &[nonce, body], proof)
            .then(|| (Caller::cluster_secret(), shared.secret.clone()));
    };
    let Some(path) = shared.config.nimbus.client_keys.clone() else {
        tracing::warn!(
            %peer,
            key = ?name,
            "refused a request naming a client key: nimbus.client_keys is not set"
        );
        return None;
    };
    let keys = match tokio::task::spawn_blocking(move || ClientKeys::read(&path)).await {
        Ok(Ok(keys)) => keys,
        Ok(Err(error)) => {
            tracing::error!(%peer, key = ?name, %error, "refused a request naming a client key");
            return None;
        }
        Err(error) => {
            tracing::error!(%peer, %error, "cannot read nimbus.client_keys");
            return None;
        }
    };
    let Some(key) = keys.get(&name) else {
        tracing::warn!(%peer, key = ?name, "refused a request naming an unknown client key");
        return None;
    };
    if !key.secret.verify("request", &[nonce, body], proof) {
        tracing::warn!(%peer, key = ?name, "refused a request not proved by the client key it names");
        return None;
    }
    let caller = Caller {
        key: Some(name),
        role: key.role,
    };
    Some((caller, key.secret.clone()))
}

/// The topology whose worker key signed a refused request, if one did: a worker key is
/// never accepted, but an operator should learn that one was tried (a leaked key, or a
/// component that reached for its worker's environment).
async fn signing_worker_key(
    shared: &Shared,
    nonce: &[u8],
    body: &[u8],
    proof: &[u8],
) -> Option<String> {
    let topologies = read_topologies_versioned(&shared.store).await.ok()?;
    topologies.into_keys().find(|topology_id| {
        let key = shared.secret.worker_key(topology_id);
        crate::Secret::new(key.env_value().into_encoded_bytes(), "a worker key")
            .is_ok_and(|as_secret| as_secret.verify("request", &[nonce, body], proof))
    })
}

/// What binds the answers of one connection to its request.
struct Exchange {
    nonce: [u8; NONCE_LEN],
    proof: Vec<u8>,
    /// The key that proved the request, which proves the answers.
    key: Secret,
}

impl Exchange {
    /// Sends `response` and its proof.
    async fn send(&self, stream: &mut Connection, response: &Response) -> std::io::Result<()> {
        let answer = serde_json::to_vec(response).expect("responses serialize");
        let proof = protocol::response_proof(&self.key, &self.nonce, &self.proof, &answer);
        let mut bytes = protocol::frame(&answer);
        bytes.extend_from_slice(&protocol::frame(&proof));
        stream.write_all(&bytes).await
    }
}

/// How long a request waits for this nimbus's campaign to notice that ZooKeeper already
/// names it the leader.
const LEADERSHIP_CATCH_UP: Duration = Duration::from_secs(2);

/// The leader a refusing nimbus names: the elected one, unless that is the refusing nimbus
/// itself (its campaign is behind ZooKeeper), when it names none so that the client waits
/// for the election to settle instead of coming back to it.
fn leader_to_name(own_id: &str, elected: Option<NimbusInfo>) -> Option<String> {
    elected
        .filter(|leader| leader.id != own_id)
        .map(|leader| leader.address())
}

async fn respond(
    shared: &Shared,
    stream: &mut Connection,
    exchange: &Exchange,
    caller: &Caller,
    request: Request,
) -> (Response, Vec<u8>) {
    if request.needs_leader() && !*shared.leading.borrow() {
        let elected = store::read_leader(&shared.store).await.ok().flatten();
        let is_self = elected
            .as_ref()
            .is_some_and(|info| info.id == shared.info.id);
        // ZooKeeper already names this nimbus while its campaign has not yet seen it: wait
        // for the campaign rather than refuse while naming itself as the leader.
        let settled = is_self
            && tokio::time::timeout(
                LEADERSHIP_CATCH_UP,
                shared.leading.clone().wait_for(|leading| *leading),
            )
            .await
            .is_ok_and(|result| result.is_ok());
        if !settled {
            let leader = leader_to_name(&shared.info.id, elected);
            return (Response::Error(ApiError::NotLeader { leader }), Vec::new());
        }
    }
    let result = match request {
        Request::Submit {
            name,
            description,
            args,
            artifact,
            artifact_bytes,
            active,
        } => match check_submission(shared, &name, artifact_bytes).await {
            Err(error) => Err(error),
            Ok(()) => {
                if let Err(error) = exchange.send(stream, &Response::Continue).await {
                    return (Response::Error(internal(error)), Vec::new());
                }
                match receive_upload(shared, stream, &artifact, artifact_bytes).await {
                    Ok(upload) => {
                        let submitted = submit(
                            shared,
                            caller,
                            name,
                            description,
                            args,
                            (artifact, &upload, artifact_bytes),
                            active,
                        )
                        .await;
                        // Adopted into the store when accepted; removed otherwise.
                        let _ = tokio::fs::remove_file(&upload).await;
                        submitted
                    }
                    Err(error) => Err(error),
                }
            }
        },
        Request::FetchArtifact { digest } => return fetch(shared, digest).await,
        Request::List => list(shared).await,
        Request::Status { name } => status(shared, &name).await,
        Request::Kill { name, wait_secs } => {
            update(shared, caller, "kill", &name, |record| {
                if let TopologyStatus::Killed { .. } = record.status {
                    return Ok(format!("topology {} is being killed already", record.name));
                }
                let wait = wait_secs.unwrap_or(record.description.message_timeout_ms / 1000);
                record.status = TopologyStatus::Killed {
                    deadline_ms: deadline_after(now_ms(), wait)
                        .map_err(|reason| ApiError::Invalid { reason })?,
                };
                Ok(format!(
                    "topology {} ({}) deactivated; its workers stop in {wait} s",
                    record.name, record.id
                ))
            })
            .await
        }
        Request::Activate { name } => {
            set_activity(shared, caller, &name, TopologyStatus::Active).await
        }
        Request::Deactivate { name } => {
            set_activity(shared, caller, &name, TopologyStatus::Inactive).await
        }
        Request::Rebalance {
            name,
            workers,
            parallelism,
            wait_secs,
        } => {
            update(shared, caller, "rebalance", &name, |record| {
                let resume_active = match record.status {
                    TopologyStatus::Active => true,
                    TopologyStatus::Inactive => false,
                    TopologyStatus::Rebalancing { resume_active, .. } => resume_active,
                    TopologyStatus::Killed { .. } => {
                        return Err(ApiError::Invalid {
                            reason: format!("topology {} is being killed", record.name),
                        });
                    }
                };
                if workers == Some(0) {
                    return Err(ApiError::Invalid {
                        reason: "a topology needs at least one worker".to_owned(),
                    });
                }
                let mut merged = record.parallelism.clone();
                merged.extend(parallelism.clone());
                check_parallelism(&record.description, &merged)
                    .map_err(|reason| ApiError::Invalid { reason })?;
                let wait = wait_secs.unwrap_or(record.description.message_timeout_ms / 1000);
                let deadline_ms = deadline_after(now_ms(), wait)
                    .map_err(|reason| ApiError::Invalid { reason })?;
                record.workers = workers.unwrap_or(record.workers);
                record.parallelism = merged;
                record.status = TopologyStatus::Rebalancing {
                    deadline_ms,
                    resume_active,
                };
                Ok(format!(
                    "topology {} rebalances in {wait} s to {} workers and {} executors",
                    record.name,
                    record.workers,
                    executor_components(&record.description, &record.parallelism).len()
                ))
            })
            .await
        }
    };
    match result {
        Ok(response) => (response, Vec::new()),
        Err(error) => (Response::Error(error), Vec::new()),
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal {
        reason: error.to_string(),
    }
}

/// The record of the topology called `name`, with its version.
async fn find(shared: &Shared, name: &str) -> Result<(TopologyRecord, Version), ApiError> {
    read_topologies_versioned(&shared.store)
        .await
        .map_err(internal)?
        .into_values()
        .find(|(record, _)| record.name == name)
        .ok_or_else(|| ApiError::NotFound {
            name: name.to_owned(),
        })
}

/// Changes the record of `name` with `change` (compare-and-set, retried on conflict) and
/// wakes the rounds, when `caller` may `action` that topology.
async fn update(
    shared: &Shared,
    caller: &Caller,
    action: &str,
    name: &str,
    change: impl Fn(&mut TopologyRecord) -> Result<String, ApiError>,
) -> Result<Response, ApiError> {
    for _ in 0..10 {
        let (mut record, version) = find(shared, name).await?;
        caller
            .may_manage(action, &record.name, record.submitted_by.as_deref())
            .map_err(|reason| ApiError::Forbidden { reason })?;
        let message = change(&mut record)?;
        match shared
            .store
            .set(
                &paths::topology(&record.id),
                &encode(&record),
                Some(version),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(topology = %record.id, status = record.status.name(), "{message}");
                shared.wake.notify_one();
                return Ok(Response::Done { message });
            }
            Err(StoreError::BadVersion { .. }) => continue,
            Err(error) => return Err(internal(error)),
        }
    }
    Err(internal(format!(
        "topology {name} keeps changing; try again"
    )))
}

async fn set_activity(
    shared: &Shared,
    caller: &Caller,
    name: &str,
    target: TopologyStatus,
) -> Result<Response, ApiError> {
    let action = if target.is_active() {
        "activate"
    } else {
        "deactivate"
    };
    update(shared, caller, action, name, |record| match record.status {
        TopologyStatus::Active | TopologyStatus::Inactive => {
            record.status = target;
            Ok(format!("topology {} is {}", record.name, target.name()))
        }
        other => Err(ApiError::Invalid {
            reason: format!(
                "topology {} is {}; try again later",
                record.name,
                other.name()
            ),
        }),
    })
    .await
}

/// What can be refused before the artifact is uploaded (besides what
/// [`protocol::decode_request`] checks).
async fn check_submission(
    shared: &Shared,
    name: &str,
    artifact_bytes: u64,
) -> Result<(), ApiError> {
    let max = shared.config.nimbus.max_artifact_bytes;
    if artifact_bytes > max {
        return Err(ApiError::Invalid {
            reason: format!(
                "the artifact has {artifact_bytes} bytes, more than nimbus.max_artifact_bytes ({max})"
            ),
        });
    }
    if artifact_bytes == 0 {
        return Err(ApiError::Invalid {
            reason: "the artifact is empty".to_owned(),
        });
    }
    let topologies = store::read_topologies(&shared.store)
        .await
        .map_err(internal)?;
    if let Some(existing) = topologies.values().find(|record| record.name == name) {
        return Err(ApiError::AlreadyExists {
            name: name.to_owned(),
            id: existing.id.clone(),
        });
    }
    Ok(())
}

/// Receives the artifact `digest` of `bytes` bytes from `stream` into a file of the
/// artifact store, checked against its digest.
async fn receive_upload(
    shared: &Shared,
    stream: &mut Connection,
    digest: &str,
    bytes: u64,
) -> Result<PathBuf, ApiError> {
    let path = shared
        .artifacts
        .upload_path(digest)
        .map_err(|error| ApiError::Invalid {
            reason: error.to_string(),
        })?;
    match tokio::time::timeout(
        UPLOAD_TIMEOUT,
        upload::receive(stream, &path, digest, bytes),
    )
    .await
    {
        Ok(Ok(())) => Ok(path),
        Ok(Err(error)) => Err(ApiError::Invalid {
            reason: error.to_string(),
        }),
        Err(_) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(ApiError::Invalid {
                reason: format!("the artifact upload took longer than {UPLOAD_TIMEOUT:?}"),
            })
        }
    }
}

async fn submit(
    shared: &Shared,
    caller: &Caller,
    name: String,
    description: crate::plan::TopologyDescription,
    args: Vec<String>,
    (digest, upload, artifact_bytes): (String, &Path, u64),
    active: bool,
) -> Result<Response, ApiError> {
    let topologies = store::read_topologies(&shared.store)
        .await
        .map_err(internal)?;
    if let Some(existing) = topologies.values().find(|record| record.name == name) {
        return Err(ApiError::AlreadyExists {
            name,
            id: existing.id.clone(),
        });
    }
    // Check the archive, then keep it.
    let artifacts = shared.artifacts.clone();
    let check_dir = shared
        .config
        .nimbus
        .data_dir
        .join(format!("check-{digest}"));
    let stored_digest = digest.clone();
    let upload = upload.to_owned();
    tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(&check_dir);
        let archive = std::fs::File::open(&upload).map_err(|source| ArtifactError::Io {
            action: "cannot read",
            path: upload.clone(),
            source,
        })?;
        let checked = artifact::unpack_from(std::io::BufReader::new(archive), &check_dir);
        let _ = std::fs::remove_dir_all(&check_dir);
        checked?;
        artifacts.adopt(&stored_digest, &upload)
    })
    .await
    .map_err(internal)?
    .map_err(|error| ApiError::Invalid {
        reason: error.to_string(),
    })?;
    shared
        .store
        .claim_ephemeral(
            &paths::artifact_holder(&digest, &shared.info.id),
            &encode(&shared.info),
        )
        .await
        .map_err(internal)?;

    let submitted_ms = now_ms();
    let base = format!("{name}-{}", submitted_ms / 1000);
    let mut id = base.clone();
    let mut suffix = 1;
    while topologies.contains_key(&id) {
        suffix += 1;
        id = format!("{base}-{suffix}");
    }
    let record = TopologyRecord {
        id: id.clone(),
        name: name.clone(),
        status: if active {
            TopologyStatus::Active
        } else {
            TopologyStatus::Inactive
        },
        submitted_ms,
        artifact: digest.clone(),
        artifact_bytes,
        args,
        workers: description.workers.max(1),
        description,
        parallelism: BTreeMap::new(),
        note: None,
        submitted_by: caller.key.clone(),
    };
    match shared
        .store
        .create(
            &paths::topology(&id),
            &encode(&record),
            NodeKind::Persistent,
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::NodeExists { .. }) => {
            return Err(ApiError::AlreadyExists { name, id });
        }
        Err(error) => return Err(internal(error)),
    }
    tracing::info!(
        topology = %id,
        artifact = %digest,
        bytes = artifact_bytes,
        key = ?caller.key,
        "topology submitted"
    );
    shared.wake.notify_one();

    // Report the first scheduling decision, and wait for the replicas asked for.
    let mut note = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let scheduled = shared
            .store
            .get(&paths::assignment(&id))
            .await
            .ok()
            .flatten()
            .is_some();
        note = store::read_topologies(&shared.store)
            .await
            .ok()
            .and_then(|records| records.get(&id).and_then(|record| record.note.clone()));
        if scheduled || note.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wanted = shared.config.nimbus.min_replicas;
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(shared.config.nimbus.replication_timeout_ms);
    let mut replicas = 0;
    loop {
        replicas = shared
            .store
            .children(&paths::artifact(&digest))
            .await
            .map_or(replicas, |holders| holders.len());
        if replicas >= wanted || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if replicas < wanted {
        tracing::warn!(topology = %id, replicas, wanted, "artifact not replicated in time");
    }
    Ok(Response::Submitted {
        topology_id: id,
        note,
        replicas,
    })
}

async fn fetch(shared: &Shared, digest: String) -> (Response, Vec<u8>) {
    if !artifact::is_digest(&digest) || !shared.artifacts.contains(&digest) {
        return (
            Response::Error(ApiError::NoSuchArtifact { digest }),
            Vec::new(),
        );
    }
    let artifacts = shared.artifacts.clone();
    let wanted = digest.clone();
    match tokio::task::spawn_blocking(move || artifacts.get(&wanted)).await {
        Ok(Ok(bytes)) => (
            Response::Artifact {
                digest,
                bytes: bytes.len() as u64,
            },
            bytes,
        ),
        Ok(Err(error)) => (Response::Error(internal(error)), Vec::new()),
        Err(error) => (Response::Error(internal(error)), Vec::new()),
    }
}

async fn list(shared: &Shared) -> Result<Response, ApiError> {
    let zk = &shared.store;
    let topologies = store::read_topologies(zk).await.map_err(internal)?;
    let assignments = store::read_assignments(zk).await.map_err(internal)?;
    let supervisors = store::read_supervisors(zk).await.map_err(internal)?;
    let now = now_ms();
    let mut summaries: Vec<TopologySummary> = topologies
        .values()
        .map(|record| {
            let assignment = assignments.get(&record.id);
            TopologySummary {
                id: record.id.clone(),
                name: record.name.clone(),
                status: record.status.name().to_owned(),
                workers: assignment.map_or(0, |assignment| assignment.workers.len()),
                requested_workers: record.workers,
                executors: record.executor_components().len(),
                uptime_secs: now.saturating_sub(record.submitted_ms) / 1000,
                note: record.note.clone(),
            }
        })
        .collect();
    summaries.sort_by(|a, b| a.name.cmp(&b.name));
    let supervisor_summaries = supervisors
        .values()
        .map(|supervisor| SupervisorSummary {
            id: supervisor.id.clone(),
            host: supervisor.host.clone(),
            slots: supervisor.ports.len(),
            used: assignments
                .values()
                .flat_map(|assignment| &assignment.workers)
                .filter(|worker| worker.supervisor == supervisor.id)
                .count(),
            uptime_secs: now.saturating_sub(supervisor.started_ms) / 1000,
        })
        .collect();
    Ok(Response::Topologies {
        topologies: summaries,
        supervisors: supervisor_summaries,
    })
}

async fn status(shared: &Shared, name: &str) -> Result<Response, ApiError> {
    let (record, _) = find(shared, name).await?;
    let zk = &shared.store;
    let assignment = store::read_assignments(zk)
        .await
        .map_err(internal)?
        .remove(&record.id);
    let heartbeats = store::read_workerbeats(zk, &record.id)
        .await
        .map_err(internal)?;
    let errors = store::read_errors(zk, &record.id).await.map_err(internal)?;
    Ok(Response::Status(Box::new(TopologyReport {
        record,
        assignment,
        heartbeats,
        errors,
        now_ms: now_ms(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nimbus(id: &str, port: u16) -> NimbusInfo {
        NimbusInfo {
            id: id.to_owned(),
            host: "127.0.0.1".to_owned(),
            port,
            started_ms: 0,
            version: "test".to_owned(),
        }
    }

    #[test]
    fn a_refusing_nimbus_never_names_itself_the_leader() {
        assert_eq!(
            leader_to_name("nimbus0", Some(nimbus("nimbus1", 6628))),
            Some("127.0.0.1:6628".to_owned())
        );
        assert_eq!(
            leader_to_name("nimbus0", Some(nimbus("nimbus0", 6627))),
            None
        );
        assert_eq!(leader_to_name("nimbus0", None), None);
    }
}
