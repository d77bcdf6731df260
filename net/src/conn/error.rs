//! Why a connection failed.

use std::time::Duration;

use crate::codec::{CloseCode, DecodeError, FrameType};
use crate::ids::{ClusterId, TopologyId, WorkerId};

/// Why a [`Connection`](super::Connection) closed on its own: the peer broke the protocol,
/// failed to authenticate, or went silent.
///
/// After any of these the connection is closed and has queued a CLOSE frame (with
/// [`close_code`](Self::close_code) and this error's text) for the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The peer sent bytes that are not a valid frame.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a valid frame that its state does not allow.
    #[error("{frame} frame is not allowed {state}")]
    UnexpectedFrame {
        /// The frame's type.
        frame: FrameType,
        /// Where the connection was, e.g. "before the peer's HELLO".
        state: &'static str,
    },
    /// The peer belongs to another cluster.
    #[error("peer is in {theirs}, this worker is in {ours}")]
    ClusterMismatch {
        /// This worker's cluster.
        ours: ClusterId,
        /// The cluster the peer announced.
        theirs: ClusterId,
    },
    /// The peer runs another topology (or another submission of the same name).
    #[error("peer runs {theirs}, this worker runs {ours}: workers of other topologies are refused")]
    TopologyMismatch {
        /// This worker's topology.
        ours: TopologyId,
        /// The topology the peer announced.
        theirs: TopologyId,
    },
    /// The peer runs an older assignment of this topology than this worker.
    #[error(
        "peer runs plan version {theirs}, older than this worker's {ours}: stale workers are \
         refused"
    )]
    StalePlan {
        /// The version this worker runs.
        ours: u64,
        /// The version the peer announced.
        theirs: u64,
    },
    /// The peer is not the worker this side dialled.
    #[error("peer announced itself as {found}, expected {expected}")]
    UnexpectedPeer {
        /// The worker this side expected.
        expected: WorkerId,
        /// The worker the peer announced.
        found: WorkerId,
    },
    /// The peer announced this worker's own id.
    #[error("peer announced this worker's own id, {worker}")]
    SameWorker {
        /// This worker's id.
        worker: WorkerId,
    },
    /// The peer's HELLO carries this side's own nonce: it echoes instead of taking part.
    #[error("peer's HELLO repeats this side's nonce")]
    ReflectedNonce,
    /// The peer's proof does not match: it does not know the cluster secret.
    #[error("{peer} failed to prove the cluster secret")]
    AuthenticationFailed {
        /// The worker the peer claimed to be.
        peer: WorkerId,
    },
    /// The peer sent more BATCH bytes than this side granted.
    #[error("peer sent {received} BATCH bytes but was granted only {limit}")]
    CreditExceeded {
        /// BATCH bytes received, this frame included.
        received: u64,
        /// The limit this side granted.
        limit: u64,
    },
    /// The peer lowered the credit limit it had granted.
    #[error("peer lowered its credit limit from {previous} to {limit}")]
    CreditDecreased {
        /// The limit granted before.
        previous: u64,
        /// The lower limit just received.
        limit: u64,
    },
    /// The handshake did not complete in time.
    #[error("handshake did not complete within {after:?}")]
    HandshakeTimedOut {
        /// The handshake timeout.
        after: Duration,
    },
    /// The peer sent nothing for longer than the idle timeout.
    #[error("peer silent for {silent_for:?}, longer than the idle timeout")]
    PeerTimedOut {
        /// Time since the last frame from the peer.
        silent_for: Duration,
    },
    /// The connection is already closed; it takes no more input.
    #[error("connection is closed")]
    Closed,
}

impl ConnectionError {
    /// The CLOSE code sent to the peer for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::Decode(DecodeError::UnsupportedVersion { .. }) => CloseCode::UNSUPPORTED_VERSION,
            Self::Decode(_)
            | Self::UnexpectedFrame { .. }
            | Self::CreditExceeded { .. }
            | Self::CreditDecreased { .. }
            | Self::Closed => CloseCode::PROTOCOL_ERROR,
            Self::ClusterMismatch { .. } => CloseCode::CLUSTER_MISMATCH,
            Self::TopologyMismatch { .. } => CloseCode::TOPOLOGY_MISMATCH,
            Self::StalePlan { .. } => CloseCode::STALE_PLAN,
            Self::UnexpectedPeer { .. } | Self::SameWorker { .. } => CloseCode::UNEXPECTED_PEER,
            Self::ReflectedNonce | Self::AuthenticationFailed { .. } => CloseCode::AUTH_FAILED,
            Self::HandshakeTimedOut { .. } | Self::PeerTimedOut { .. } => CloseCode::TIMEOUT,
        }
    }

    /// Whether the peer failed to authenticate (or was not the worker it should be); such
    /// a peer never gets to send a tuple.
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self.close_code(),
            CloseCode::AUTH_FAILED
                | CloseCode::UNEXPECTED_PEER
                | CloseCode::CLUSTER_MISMATCH
                | CloseCode::TOPOLOGY_MISMATCH
                | CloseCode::STALE_PLAN
        )
    }
}
