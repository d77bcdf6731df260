//! The protocol between clients (the CLI, topology programs, supervisors fetching
//! artifacts) and nimbus: one authenticated request and answer per TCP connection.
//!
//! ```text
//! nimbus → client   frame: Hello (JSON: protocol, nonce, nimbus id, whether it leads)
//! client → nimbus   frame: Request (JSON; with `key`: the client key proving it)
//!                   frame: proof = HMAC(key, "request", nonce, request bytes)
//! when the request announces a payload (an upload):
//!   nimbus → client frame: Continue, or the refusal that ends the exchange
//!                   frame: proof (as below)
//!   client → nimbus payload bytes
//! nimbus → client   frame: Response (JSON)
//!                   frame: proof = HMAC(key, "response", nonce, request proof, response bytes)
//!                   payload bytes, when the response announces some (a download)
//! ```
//!
//! A frame is a 4-byte little-endian length and that many bytes; a request frame is at
//! most [`MAX_REQUEST_FRAME`] long, since nimbus reads it before it can authenticate it. The nonce is 32 fresh
//! random bytes per connection, so a recorded request cannot be replayed; the response
//! proof binds the answer to the request, so a client knows the answer comes from a nimbus
//! of its cluster. Payloads are authenticated through the SHA-256 digest their request or
//! response carries. A nimbus that cannot verify a request answers
//! [`ApiError::Unauthenticated`] without reading further. The key is the cluster secret,
//! unless the request names a client key ([`crate::client_keys`]): then it is that key's
//! secret, and the key's role decides what the request may do ([`ApiError::Forbidden`]).
//! The proofs are computed by [`Secret::prove`]. With `[tls]` configured the exchange runs inside TLS ([`crate::tls`]);
//! otherwise nothing is encrypted: run the control plane on a trusted network.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::paths;
use super::plan::TopologyDescription;
use super::records::{Assignment, ErrorRecord, TopologyRecord, WorkerBeat, executor_components};
use super::request_limits;
use super::secret::{PROOF_LEN, Secret};

/// Version of this protocol.
pub const PROTOCOL: u32 = 1;

/// Largest JSON frame accepted, in bytes.
pub const MAX_FRAME: usize = 16 << 20;

/// Largest request frame nimbus reads, in bytes: it reads it before the request is
/// authenticated, so whoever can connect can make it hold this much.
pub const MAX_REQUEST_FRAME: usize = 64 << 10;

/// Bytes of a connection's nonce.
pub const NONCE_LEN: usize = 32;

/// The first frame nimbus sends on each connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The connection's nonce, hex.
    pub nonce: String,
    /// The nimbus's id.
    pub nimbus: String,
    /// Whether it leads.
    pub leader: bool,
}

/// A request to nimbus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Run a topology; the artifact's bytes follow.
    Submit {
        /// The topology's name.
        name: String,
        /// What it is made of.
        description: TopologyDescription,
        /// The arguments its program was described with.
        args: Vec<String>,
        /// SHA-256 of the artifact, hex.
        artifact: String,
        /// Size of the artifact.
        artifact_bytes: u64,
        /// Whether its spouts start running at once.
        active: bool,
    },
    /// The cluster's topologies and supervisors.
    List,
    /// One topology in detail.
    Status {
        /// Its name.
        name: String,
    },
    /// Stop a topology after pausing its spouts for `wait_secs` (default: its message
    /// timeout).
    Kill {
        /// Its name.
        name: String,
        /// Seconds between pausing the spouts and stopping the workers.
        wait_secs: Option<u64>,
    },
    /// Resume a topology's spouts.
    Activate {
        /// Its name.
        name: String,
    },
    /// Pause a topology's spouts.
    Deactivate {
        /// Its name.
        name: String,
    },
    /// Reschedule a topology, optionally with another worker count and parallelism, after
    /// pausing its spouts for `wait_secs` (default: its message timeout).
    Rebalance {
        /// Its name.
        name: String,
        /// New worker count.
        workers: Option<usize>,
        /// New executor counts per component.
        parallelism: BTreeMap<String, usize>,
        /// Seconds between pausing the spouts and rescheduling.
        wait_secs: Option<u64>,
    },
    /// Download an artifact (supervisors and standby nimbuses).
    FetchArtifact {
        /// Its digest.
        digest: String,
    },
}

impl Request {
    /// Bytes of payload following the request.
    pub fn payload_len(&self) -> u64 {
        match self {
            Self::Submit { artifact_bytes, .. } => *artifact_bytes,
            _ => 0,
        }
    }

    /// Its name on the wire: `submit`, `list`, `kill`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Submit { .. } => "submit",
            Self::List => "list",
            Self::Status { .. } => "status",
            Self::Kill { .. } => "kill",
            Self::Activate { .. } => "activate",
            Self::Deactivate { .. } => "deactivate",
            Self::Rebalance { .. } => "rebalance",
            Self::FetchArtifact { .. } => "fetch_artifact",
        }
    }

    /// Whether only the leader may answer it.
    pub fn needs_leader(&self) -> bool {
        !matches!(self, Self::FetchArtifact { .. })
    }
}

/// One topology in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologySummary {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `active`, `inactive`, `killed` or `rebalancing`.
    pub status: String,
    /// Workers it runs in now.
    pub workers: usize,
    /// Workers it asks for.
    pub requested_workers: usize,
    /// Its executors.
    pub executors: usize,
    /// Seconds since submission.
    pub uptime_secs: u64,
    /// The scheduler's remark, if any.
    pub note: Option<String>,
}

/// One supervisor in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorSummary {
    /// Its id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its slots.
    pub slots: usize,
    /// Slots running workers.
    pub used: usize,
    /// Seconds since it started.
    pub uptime_secs: u64,
}

/// Everything about one topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyReport {
    /// Its record.
    pub record: TopologyRecord,
    /// Its assignment, once scheduled.
    pub assignment: Option<Assignment>,
    /// Its workers' last relayed heartbeats, by slot.
    pub heartbeats: BTreeMap<String, WorkerBeat>,
    /// Recent errors, oldest first.
    pub errors: Vec<ErrorRecord>,
    /// Nimbus's time when it answered, ms since the epoch.
    pub now_ms: u64,
}

/// An answer from nimbus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// The request announced a payload and may send it now; the final answer follows it.
    Continue,
    /// The topology was accepted.
    Submitted {
        /// Its id.
        topology_id: String,
        /// The scheduler's remark (for example, not enough slots), if it had one.
        note: Option<String>,
        /// Nimbuses holding the artifact when the answer was sent.
        replicas: usize,
    },
    /// The listing.
    Topologies {
        /// Topologies, by name.
        topologies: Vec<TopologySummary>,
        /// Supervisors, by id.
        supervisors: Vec<SupervisorSummary>,
    },
    /// A topology in detail.
    Status(Box<TopologyReport>),
    /// The request was carried out.
    Done {
        /// What happened.
        message: String,
    },
    /// The artifact's bytes follow.
    Artifact {
        /// Its digest.
        digest: String,
        /// Its size.
        bytes: u64,
    },
    /// The request was refused.
    Error(ApiError),
}

impl Response {
    /// Bytes of payload following the response.
    pub fn payload_len(&self) -> u64 {
        match self {
            Self::Artifact { bytes, .. } => *bytes,
            _ => 0,
        }
    }
}

/// Why nimbus refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ApiError {
    /// The request's proof is wrong: the client does not know the cluster secret, or names
    /// a client key nimbus does not list or proves the request with another secret.
    #[error(
        "request refused: not authenticated (is the cluster secret the same as nimbus's, or \
         the client key listed in nimbus.client_keys under that name?)"
    )]
    Unauthenticated,
    /// The request is authenticated, but its key's role does not admit it.
    #[error("request refused: {reason}")]
    Forbidden {
        /// Which key, its role, and the role the request needs.
        reason: String,
    },
    /// The request is longer than nimbus reads before authenticating it.
    #[error(
        "request refused: its {bytes} bytes exceed the {max} bytes nimbus reads before \
         authentication"
    )]
    RequestTooLarge {
        /// Its length.
        bytes: u64,
        /// [`MAX_REQUEST_FRAME`].
        max: u64,
    },
    /// Nimbus accepts TLS connections only, and this one is plain TCP.
    #[error(
        "request refused: this nimbus accepts TLS connections only (set tls.ca in the client's \
         configuration)"
    )]
    TlsRequired,
    /// This nimbus does not lead.
    #[error("this nimbus is not the leader (leader: {})", leader.as_deref().unwrap_or("none elected"))]
    NotLeader {
        /// The leader's address, if one is elected.
        leader: Option<String>,
    },
    /// No topology has this name.
    #[error("no topology named {name:?} is running")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// A topology of this name runs already.
    #[error("a topology named {name:?} is already running (id {id})")]
    AlreadyExists {
        /// The name.
        name: String,
        /// The running topology's id.
        id: String,
    },
    /// The request makes no sense.
    #[error("invalid request: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// The artifact is not here.
    #[error("artifact {digest} is not held by this nimbus")]
    NoSuchArtifact {
        /// Its digest.
        digest: String,
    },
    /// Nimbus failed while carrying out the request.
    #[error("nimbus failed: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

/// A request as it travels: the request's own fields, and the name of the client key that
/// proves it when that is not the cluster secret.
#[derive(Debug, Serialize)]
pub struct SignedBy<'a> {
    /// The client key's name ([`crate::client_keys`]); absent for the cluster secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// The request.
    #[serde(flatten)]
    pub request: &'a Request,
}

/// The name of the client key a request frame says proves it (`None`: the cluster
/// secret). Read before the request is authenticated, so it only tells nimbus which key to
/// check the proof with; a frame that is not a request object names no key.
pub fn request_key_name(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct KeyOnly {
        #[serde(default)]
        key: Option<String>,
    }
    serde_json::from_slice::<KeyOnly>(body).ok()?.key
}

/// Decodes a request's JSON and checks what can be checked without the cluster's state: a
/// submission's name and description.
///
/// # Errors
/// [`ApiError::Invalid`] naming what is wrong.
pub fn decode_request(body: &[u8]) -> Result<Request, ApiError> {
    let request: Request = serde_json::from_slice(body).map_err(|error| ApiError::Invalid {
        reason: format!("not a request: {error}"),
    })?;
    if let Request::Submit {
        name, description, ..
    } = &request
    {
        check_description(name, description)?;
    }
    Ok(request)
}

/// Checks that a submitted description is consistent with itself and names the topology
/// `name`.
///
/// # Errors
/// [`ApiError::Invalid`] naming what is wrong.
pub fn check_description(name: &str, description: &TopologyDescription) -> Result<(), ApiError> {
    let invalid = |reason: String| ApiError::Invalid { reason };
    if !paths::is_valid_name(name)
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(invalid(format!(
            "topology name {name:?} may only hold letters, digits, '_', '-' and '.'"
        )));
    }
    if description.name != name {
        return Err(invalid(format!(
            "the description is of topology {:?}, not {name:?}",
            description.name
        )));
    }
    if description.executor_components.is_empty() {
        return Err(invalid("the topology has no executors".to_owned()));
    }
    let counted = request_limits::total_executors(description, |_, own| own).map_err(invalid)?;
    let declared = executor_components(description, &BTreeMap::new());
    if counted != declared.len()
        || description
            .executor_components
            .iter()
            .any(|&component| component >= description.components.len())
    {
        return Err(invalid(
            "the description's executors do not match its components".to_owned(),
        ));
    }
    Ok(())
}

/// Why a protocol exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The connection failed.
    #[error("connection to {peer} failed: {source}")]
    Io {
        /// The other side.
        peer: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The other side sent something that is not this protocol.
    #[error("{peer} does not speak the Squall control protocol: {reason}")]
    Garbled {
        /// The other side.
        peer: String,
        /// What was wrong.
        reason: String,
    },
    /// The answer's proof is wrong: the nimbus does not know the cluster secret.
    #[error(
        "the answer from {peer} is not authenticated (is the cluster secret the same as nimbus's?)"
    )]
    Unauthenticated {
        /// The other side.
        peer: String,
    },
}

/// A frame: the length as 4 little-endian bytes, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + body.len());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Checks a frame length read from the wire.
///
/// # Errors
/// A description of the problem when it exceeds `max`.
pub fn check_frame_len(len: u32, max: usize) -> Result<usize, String> {
    let len = len as usize;
    if len > max {
        Err(format!("frame length {len} exceeds the maximum of {max}"))
    } else {
        Ok(len)
    }
}

/// The proof a client sends with `request`.
pub fn request_proof(secret: &Secret, nonce: &[u8], request: &[u8]) -> [u8; PROOF_LEN] {
    secret.prove("request", &[nonce, request])
}

/// The proof nimbus sends with `response`.
pub fn response_proof(
    secret: &Secret,
    nonce: &[u8],
    request_proof: &[u8],
    response: &[u8],
) -> [u8; PROOF_LEN] {
    secret.prove("response", &[nonce, request_proof, response])
}

/// Decodes hex into bytes.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

/// Reads one frame from a blocking stream.
///
/// # Errors
/// On I/O errors or a frame longer than `max`.
pub fn read_frame(
    reader: &mut impl Read,
    peer: &str,
    max: usize,
) -> Result<Vec<u8>, ProtocolError> {
    let io = |source| ProtocolError::Io {
        peer: peer.to_owned(),
        source,
    };
    let mut length = [0u8; 4];
    reader.read_exact(&mut length).map_err(io)?;
    let len = check_frame_len(u32::from_le_bytes(length), max).map_err(|reason| {
        ProtocolError::Garbled {
            peer: peer.to_owned(),
            reason,
        }
    })?;
    // Grown as the bytes arrive, so a length alone reserves no memory.
    let mut body = Vec::new();
    reader.take(len as u64).read_to_end(&mut body).map_err(io)?;
    if body.len() < len {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the frame ended after {} of its {len} bytes", body.len()),
        )));
    }
    Ok(body)
}

/// Writes frames to a blocking stream.
///
/// # Errors
/// On I/O errors.
pub fn write_frames(
    writer: &mut impl Write,
    peer: &str,
    bodies: &[&[u8]],
) -> Result<(), ProtocolError> {
    let mut bytes = Vec::new();
    for body in bodies {
        bytes.extend_from_slice(&frame(body));
    }
    writer
        .write_all(&bytes)
        .map_err(|source| ProtocolError::Io {
            peer: peer.to_owned(),
            source,
        })
}

/// Parses a JSON frame.
///
/// # Errors
/// [`ProtocolError::Garbled`] when it is not the expected message.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], peer: &str) -> Result<T, ProtocolError> {
    serde_json::from_slice(bytes).map_err(|error| ProtocolError::Garbled {
        peer: peer.to_owned(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_readable_json_form() {
        let request = Request::Kill {
            name: "wc".into(),
            wait_secs: Some(5),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"request":"kill","name":"wc","wait_secs":5}"#);
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        let response = Response::Error(ApiError::NotLeader {
            leader: Some("n2:6627".into()),
        });
        let json = serde_json::to_string(&response).unwrap();
        assert_eq!(
            json,
            r#"{"response":"error","error":"not_leader","leader":"n2:6627"}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&json).unwrap(), response);
        assert_eq!(
            ApiError::NotLeader { leader: None }.to_string(),
            "this nimbus is not the leader (leader: none elected)"
        );
    }

    #[test]
    fn requests_may_name_their_key() {
        let request = Request::Kill {
            name: "wc".into(),
            wait_secs: None,
        };
        let body = serde_json::to_vec(&SignedBy {
            key: Some("ci"),
            request: &request,
        })
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"key":"ci","request":"kill","name":"wc","wait_secs":null}"#
        );
        assert_eq!(request_key_name(&body).as_deref(), Some("ci"));
        assert_eq!(decode_request(&body).unwrap(), request);
        let list = serde_json::to_vec(&SignedBy {
            key: Some("ops-view"),
            request: &Request::List,
        })
        .unwrap();
        assert_eq!(decode_request(&list).unwrap(), Request::List);
        // Without a name, the frame is what clients without keys have always sent.
        let plain = serde_json::to_vec(&SignedBy {
            key: None,
            request: &request,
        })
        .unwrap();
        assert_eq!(plain, serde_json::to_vec(&request).unwrap());
        assert_eq!(request_key_name(&plain), None);
        assert_eq!(request_key_name(b"[1, 2]"), None);
        assert_eq!(
            ApiError::Forbidden {
                reason: "key 'v' has role viewer; kill needs submitter or admin".into()
            }
            .to_string(),
            "request refused: key 'v' has role viewer; kill needs submitter or admin"
        );
    }

    #[test]
    fn frames_round_trip_and_long_ones_are_refused() {
        let mut bytes = frame(b"hello");
        bytes.extend_from_slice(&frame(b""));
        let mut reader = &bytes[..];
        assert_eq!(read_frame(&mut reader, "peer", 16).unwrap(), b"hello");
        assert_eq!(read_frame(&mut reader, "peer", 16).unwrap(), b"");
        let long = frame(&[0; 17]);
        let error = read_frame(&mut &long[..], "10.0.0.1:6627", 16).unwrap_err();
        assert_eq!(
            error.to_string(),
            "10.0.0.1:6627 does not speak the Squall control protocol: frame length 17 exceeds the maximum of 16"
        );
    }

    fn submission(parallelism: usize, tasks: usize) -> Vec<u8> {
        let component = |id: &str| {
            serde_json::json!({"id": id, "kind": "bolt", "parallelism": parallelism,
                "tasks": tasks, "inputs": []})
        };
        serde_json::json!({
            "request": "submit", "name": "wc", "args": [], "artifact": "0", "artifact_bytes": 1,
            "active": true, "description": {"name": "wc", "workers": 1,
                "components": [component("a"), component("b")],
                "executor_components": [0, 1], "message_timeout_ms": 1000},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn parallelism_beyond_the_cap_is_invalid_not_a_panic() {
        for (parallelism, tasks) in [(usize::MAX, 1), (200_000_000, 200_000_000), (1, 65_537)] {
            let error = decode_request(&submission(parallelism, tasks)).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid request: component \"a\" asks for {} tasks, more than the limit of \
                     65536 per component",
                    parallelism.max(tasks)
                )
            );
        }
        assert!(decode_request(&submission(1, 65_536)).is_ok());
    }

    #[test]
    fn proofs_bind_request_and_response() {
        let secret = Secret::new("0123456789abcdef0123", "test").unwrap();
        let nonce = [7u8; NONCE_LEN];
        let proof = request_proof(&secret, &nonce, b"{}");
        assert_ne!(proof, request_proof(&secret, &[8u8; NONCE_LEN], b"{}"));
        assert_ne!(response_proof(&secret, &nonce, &proof, b"{}"), proof);
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
