//! What a connection needs to know about this worker, and its limits and timers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::auth::ClusterSecret;
use crate::codec::{MAX_FRAME_LEN, MIN_FRAME_LIMIT};
use crate::ids::{ClusterId, TopologyId, WorkerId};

/// The assignment version a worker runs, shared by every connection it opens.
///
/// A worker that follows a newer plan raises it; connections opened from then on announce
/// the new version in their HELLO and refuse peers that announce an older one (a stale
/// worker: of a plan since replaced, or on a host that comes back from a partition).
/// Established connections are left alone. It never goes down.
#[derive(Debug, Clone, Default)]
pub struct PlanVersion(Arc<AtomicU64>);

impl PlanVersion {
    /// A plan version starting at `version`.
    pub fn new(version: u64) -> Self {
        Self(Arc::new(AtomicU64::new(version)))
    }

    /// The version now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Raises the version to `version`; a lower one is ignored.
    pub fn raise_to(&self, version: u64) {
        self.0.fetch_max(version, Ordering::AcqRel);
    }
}

/// Which end of a connection this side is: the one that dialled, or the one that accepted.
///
/// The two sides' proofs are labelled with their role, so a proof cannot be reflected back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This side opened the connection.
    Initiator,
    /// This side accepted the connection.
    Acceptor,
}

impl Side {
    /// The other end's side.
    pub fn peer(self) -> Self {
        match self {
            Self::Initiator => Self::Acceptor,
            Self::Acceptor => Self::Initiator,
        }
    }
}

/// Identity, secret, limits and timers of this worker's connections.
///
/// [`new`](Self::new) sets the defaults: no topology ([`TopologyId::UNSCOPED`]) at plan
/// version 0, frames up to 1 MiB, a credit window that starts at
/// 1 MiB and grows up to 16 MiB as the credit round trip demands, a
/// heartbeat every second, a peer declared dead after 5 seconds of silence, and 5 seconds
/// for the handshake.
///
/// ```
/// use std::time::Duration;
///
/// use squall_net::{ClusterId, ClusterSecret, ConnectionConfig, WorkerId};
///
/// let secret = ClusterSecret::new(*b"a secret of at least 16 bytes").unwrap();
/// let config = ConnectionConfig::new(ClusterId::from_name("prod"), WorkerId(3), secret)
///     .with_receive_window(8 << 20)
///     .with_idle_timeout(Duration::from_secs(3));
/// assert_eq!(config.receive_window(), 8 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    cluster_id: ClusterId,
    worker_id: WorkerId,
    secret: ClusterSecret,
    topology_id: TopologyId,
    plan_version: PlanVersion,
    max_frame_len: u32,
    receive_window: u64,
    initial_receive_window: u64,
    heartbeat_interval: Duration,
    idle_timeout: Duration,
    handshake_timeout: Duration,
}

impl ConnectionConfig {
    /// Default largest frame this side accepts: 1 MiB.
    pub const DEFAULT_MAX_FRAME_LEN: u32 = 1 << 20;
    /// Default largest credit window: 16 MiB of BATCH frames in flight per connection.
    pub const DEFAULT_RECEIVE_WINDOW: u64 = 16 << 20;
    /// Default credit window at the start of a connection: 1 MiB. It doubles, up to the
    /// largest window, whenever it rather than the consumer holds the sender back.
    pub const DEFAULT_INITIAL_RECEIVE_WINDOW: u64 = 1 << 20;

    /// A configuration with the default limits and timers.
    pub fn new(cluster_id: ClusterId, worker_id: WorkerId, secret: ClusterSecret) -> Self {
        Self {
            cluster_id,
            worker_id,
            secret,
            topology_id: TopologyId::UNSCOPED,
            plan_version: PlanVersion::default(),
            max_frame_len: Self::DEFAULT_MAX_FRAME_LEN,
            receive_window: Self::DEFAULT_RECEIVE_WINDOW,
            initial_receive_window: Self::DEFAULT_INITIAL_RECEIVE_WINDOW,
            heartbeat_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the topology this worker runs and the assignment version it runs now (shared:
    /// raise it when the worker follows a newer plan). Peers of another topology, or of an
    /// older version, are refused.
    pub fn with_topology(mut self, topology_id: TopologyId, plan_version: PlanVersion) -> Self {
        self.topology_id = topology_id;
        self.plan_version = plan_version;
        self
    }

    /// Sets the largest frame this side accepts, announced in its HELLO. The credit window
    /// grows to this size if it was smaller.
    ///
    /// # Panics
    /// When `len` is not a multiple of 8 between [`MIN_FRAME_LIMIT`] and [`MAX_FRAME_LEN`].
    pub fn with_max_frame_len(mut self, len: u32) -> Self {
        assert!(
            (MIN_FRAME_LIMIT..=MAX_FRAME_LEN).contains(&len) && len.is_multiple_of(8),
            "max frame length {len} must be a multiple of 8 between {MIN_FRAME_LIMIT} and \
             {MAX_FRAME_LEN}"
        );
        self.max_frame_len = len;
        self.receive_window = self.receive_window.max(u64::from(len));
        self
    }

    /// Sets the largest credit window: BATCH bytes the peer may have sent that this side has
    /// not yet handed to its consumers. It bounds the memory a connection's inbound data
    /// takes. The window starts at [`initial_receive_window`](Self::initial_receive_window)
    /// (or this, if smaller) and grows up to this as the credit round trip demands.
    ///
    /// # Panics
    /// When `window` is smaller than the max frame length: a frame must always fit.
    pub fn with_receive_window(mut self, window: u64) -> Self {
        assert!(
            window >= u64::from(self.max_frame_len),
            "receive window {window} is smaller than the max frame length {}",
            self.max_frame_len
        );
        self.receive_window = window;
        self
    }

    /// Sets how often an established connection sends a HEARTBEAT.
    ///
    /// # Panics
    /// When `interval` is zero.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "heartbeat interval must not be zero");
        self.heartbeat_interval = interval;
        self
    }

    /// Sets how long the peer may stay silent before it is declared dead. Use several
    /// heartbeat intervals (the peer's, which is normally the same as this side's).
    ///
    /// # Panics
    /// When `timeout` is zero.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "idle timeout must not be zero");
        self.idle_timeout = timeout;
        self
    }

    /// Sets how long the handshake may take before the connection is abandoned.
    ///
    /// # Panics
    /// When `timeout` is zero.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "handshake timeout must not be zero");
        self.handshake_timeout = timeout;
        self
    }

    /// This worker's cluster.
    pub fn cluster_id(&self) -> ClusterId {
        self.cluster_id
    }

    /// This worker's id.
    pub fn worker_id(&self) -> WorkerId {
        self.worker_id
    }

    /// The key of the handshake's proofs (in a cluster, the topology's worker key).
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// The topology this worker runs.
    pub fn topology_id(&self) -> TopologyId {
        self.topology_id
    }

    /// The assignment version this worker runs.
    pub fn plan_version(&self) -> &PlanVersion {
        &self.plan_version
    }

    /// Largest frame this side accepts.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// The largest credit window in bytes.
    pub fn receive_window(&self) -> u64 {
        self.receive_window
    }

    /// The credit window a connection starts with, in bytes: the initial setting, within
    /// the max frame length and the largest window.
    pub fn initial_receive_window(&self) -> u64 {
        self.initial_receive_window
            .max(u64::from(self.max_frame_len))
            .min(self.receive_window)
    }

    /// Sets the credit window a connection starts with; see
    /// [`with_receive_window`](Self::with_receive_window). A fixed window is one whose
    /// start equals its largest size.
    pub fn with_initial_receive_window(mut self, window: u64) -> Self {
        self.initial_receive_window = window;
        self
    }

    /// Interval between heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// Silence after which the peer is declared dead.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Time allowed for the handshake.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }
}
