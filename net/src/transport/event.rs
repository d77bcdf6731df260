//! What the transport tells its caller about peers, and how the caller names them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ids::WorkerId;

/// Where a peer worker can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// Over TCP at this address.
    Tcp(SocketAddr),
    /// Through shared-memory rings: the peer runs on this host, and both use the same ring
    /// directory ([`TransportConfig::with_shm`](super::TransportConfig::with_shm)).
    SharedMemory,
    /// Through heap rings in this process: both transports use the same
    /// [`InProcessHub`](super::InProcessHub).
    InProcess,
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::SharedMemory => f.write_str("shared memory"),
            Self::InProcess => f.write_str("in process"),
        }
    }
}

/// A peer worker and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerSpec {
    /// The peer's worker id.
    pub worker: WorkerId,
    /// Where it can be reached.
    pub addr: PeerAddr,
}

impl PeerSpec {
    /// A peer reached over TCP.
    pub fn tcp(worker: WorkerId, addr: SocketAddr) -> Self {
        Self {
            worker,
            addr: PeerAddr::Tcp(addr),
        }
    }

    /// A peer on this host, reached through shared-memory rings.
    pub fn shared_memory(worker: WorkerId) -> Self {
        Self {
            worker,
            addr: PeerAddr::SharedMemory,
        }
    }

    /// A peer in this process, reached through the transports' in-process hub.
    pub fn in_process(worker: WorkerId) -> Self {
        Self {
            worker,
            addr: PeerAddr::InProcess,
        }
    }
}

/// Where a connection came from, for events and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A TCP peer at this address.
    Tcp(SocketAddr),
    /// A shared-memory ring pair in this file pair's directory.
    SharedMemory(PathBuf),
    /// Heap rings of an in-process hub, to this worker.
    InProcess(WorkerId),
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::SharedMemory(path) => write!(f, "shared memory {}", path.display()),
            Self::InProcess(worker) => write!(f, "in-process rings to {worker}"),
        }
    }
}

/// A change in the reachability of a peer, reported on the transport thread through the
/// callback given to [`Transport::start`](super::Transport::start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A connection to `peer` completed its handshake; records flow.
    Up {
        /// The peer.
        peer: WorkerId,
        /// Where the connection goes.
        remote: Remote,
    },
    /// The connection to `peer` is gone. Records sent on it but not yet delivered are lost:
    /// fail the tuple trees in flight to it. Records still in the outbound rings go out on
    /// the next connection.
    Down {
        /// The peer.
        peer: WorkerId,
        /// Why, for people.
        reason: String,
    },
    /// A connection was refused before any tuple was read: it failed to authenticate or
    /// broke the protocol during the handshake.
    Rejected {
        /// Where it came from.
        remote: Remote,
        /// Why, for people.
        reason: String,
    },
}
