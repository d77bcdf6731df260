//! Transport configuration: the connection settings plus sockets, rings and timers.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::hub::InProcessHub;
use crate::conn::ConnectionConfig;

/// Which I/O backend runs the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DriverKind {
    /// io_uring when the kernel allows it (probed at start-up), otherwise mio.
    #[default]
    Auto,
    /// mio (epoll on Linux), available everywhere.
    Mio,
    /// io_uring; starting fails where the kernel cannot run it.
    IoUring,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Mio => "mio",
            Self::IoUring => "io-uring",
        })
    }
}

/// A driver name that is not `auto`, `mio` or `io-uring`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport driver {0:?}; expected auto, mio or io-uring")]
pub struct ParseDriverKindError(pub String);

impl FromStr for DriverKind {
    type Err = ParseDriverKindError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "auto" => Ok(Self::Auto),
            "mio" => Ok(Self::Mio),
            "io-uring" | "io_uring" | "uring" => Ok(Self::IoUring),
            other => Err(ParseDriverKindError(other.to_owned())),
        }
    }
}

/// Everything a [`Transport`](super::Transport) needs: the connection settings, the
/// address to listen on, the driver, and the sizes and timers of its sockets and rings.
///
/// ```
/// use std::time::Duration;
///
/// use squall_net::transport::{DriverKind, TransportConfig};
/// use squall_net::{ClusterId, ClusterSecret, ConnectionConfig, WorkerId};
///
/// let secret = ClusterSecret::new(*b"a secret of at least 16 bytes").unwrap();
/// let connection = ConnectionConfig::new(ClusterId::from_name("prod"), WorkerId(1), secret);
/// let config = TransportConfig::new(connection, "0.0.0.0:6700".parse().unwrap())
///     .with_driver("mio".parse().unwrap())
///     .with_reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(config.driver(), DriverKind::Mio);
/// ```
#[derive(Debug, Clone)]
pub struct TransportConfig {
    connection: ConnectionConfig,
    listen: SocketAddr,
    driver: DriverKind,
    outbound_ring_bytes: usize,
    reconnect_min: Duration,
    reconnect_max: Duration,
    tcp_user_timeout: Duration,
    keepalive_idle: Duration,
    sink_retry: Duration,
    shm_dir: PathBuf,
    shm_ring_bytes: usize,
    in_process: Option<Arc<InProcessHub>>,
    #[cfg(feature = "tls")]
    tls: Option<super::LinkTls>,
}

impl TransportConfig {
    /// Defaults: the automatic driver, 1 MiB outbound rings, reconnection backoff from
    /// 100 ms to 5 s, `TCP_USER_TIMEOUT` and keepalive that notice a dead host within the
    /// connection's idle timeout, a 1 ms retry while consumers are full, and shared-memory
    /// rings of 4 MiB (or twice the largest frame, if more) in `/dev/shm`.
    pub fn new(connection: ConnectionConfig, listen: SocketAddr) -> Self {
        let idle = connection.idle_timeout();
        let max_frame = connection.max_frame_len() as usize;
        Self {
            connection,
            listen,
            driver: DriverKind::Auto,
            outbound_ring_bytes: 1 << 20,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            tcp_user_timeout: idle,
            keepalive_idle: (idle / 3).max(Duration::from_secs(1)),
            sink_retry: Duration::from_millis(1),
            shm_dir: PathBuf::from("/dev/shm"),
            // Large enough for the largest frame: a ring carries records up to half its size.
            shm_ring_bytes: (4 << 20).max(2 * (max_frame + 8)),
            in_process: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Sets the I/O backend.
    pub fn with_driver(mut self, driver: DriverKind) -> Self {
        self.driver = driver;
        self
    }

    /// Sets the data bytes of each executor's outbound ring (rounded up to a power of two).
    ///
    /// # Panics
    /// When `bytes` is below 64 bytes.
    pub fn with_outbound_ring_bytes(mut self, bytes: usize) -> Self {
        assert!(bytes >= 64, "outbound rings need at least 64 bytes");
        self.outbound_ring_bytes = bytes;
        self
    }

    /// Sets the first and the longest wait between attempts to reconnect to a peer; the
    /// wait doubles after each failed attempt.
    ///
    /// # Panics
    /// When `min` is zero or above `max`.
    pub fn with_reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        assert!(
            !min.is_zero() && min <= max,
            "reconnect backoff needs 0 < min <= max"
        );
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Sets `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the
    /// kernel drops the connection, armed while a connection's reading is paused (its
    /// consumers are full and it cannot hear heartbeats). Keepalive probes start after a
    /// third of it.
    ///
    /// # Panics
    /// When `timeout` is shorter than a second.
    pub fn with_tcp_user_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            timeout >= Duration::from_secs(1),
            "TCP user timeout must be at least a second"
        );
        self.tcp_user_timeout = timeout;
        self.keepalive_idle = (timeout / 3).max(Duration::from_secs(1));
        self
    }

    /// Sets how often delivery into full consumers is retried when no consumer calls
    /// [`TransportHandle::wake`](super::TransportHandle::wake): a backstop for sinks whose
    /// consumers never wake the transport, not on the path of a sink whose consumers do.
    ///
    /// # Panics
    /// When `interval` is zero.
    pub fn with_sink_retry(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "sink retry interval must not be zero");
        self.sink_retry = interval;
        self
    }

    /// Sets the directory of shared-memory ring files and the data bytes of each ring.
    ///
    /// # Panics
    /// When `ring_bytes` cannot hold the largest frame the connection accepts.
    pub fn with_shm(mut self, dir: impl Into<PathBuf>, ring_bytes: usize) -> Self {
        assert!(
            ring_bytes / 2 >= self.connection.max_frame_len() as usize + 8,
            "shared-memory rings of {ring_bytes} bytes cannot carry frames of {} bytes",
            self.connection.max_frame_len()
        );
        self.shm_dir = dir.into();
        self.shm_ring_bytes = ring_bytes;
        self
    }

    /// Joins the transport to `hub`, so that peers named with
    /// [`PeerSpec::in_process`](super::PeerSpec::in_process) are reached through it.
    pub fn with_in_process(mut self, hub: Arc<InProcessHub>) -> Self {
        self.in_process = Some(hub);
        self
    }

    /// Runs every TCP link in TLS with `tls`. TLS runs on the mio driver: io_uring, asked
    /// for or picked automatically, gives way to mio (with a log line). Shared-memory and
    /// in-process links stay as they are.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: super::LinkTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS settings of TCP links, if they run in TLS.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&super::LinkTls> {
        self.tls.as_ref()
    }

    /// Whether TCP links run in TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// The in-process hub, if any.
    pub fn in_process(&self) -> Option<&Arc<InProcessHub>> {
        self.in_process.as_ref()
    }

    /// Data bytes of each in-process ring: the whole receive window plus two of the largest
    /// frames, so that a receiver that stops reading makes its peer run out of credit
    /// before the ring fills, as a socket's would.
    pub(crate) fn in_process_ring_bytes(&self) -> usize {
        let window = usize::try_from(self.connection.receive_window()).unwrap_or(usize::MAX);
        let frame = self.connection.max_frame_len() as usize + 8;
        window
            .saturating_add(2 * frame)
            .min(squall_ringbuf::record::MAX_CAPACITY)
    }

    /// The connection settings.
    pub fn connection(&self) -> &ConnectionConfig {
        &self.connection
    }

    /// The address to listen on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The I/O backend asked for.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// Data bytes of each outbound ring.
    pub fn outbound_ring_bytes(&self) -> usize {
        self.outbound_ring_bytes
    }

    /// First wait before reconnecting.
    pub fn reconnect_min(&self) -> Duration {
        self.reconnect_min
    }

    /// Longest wait before reconnecting.
    pub fn reconnect_max(&self) -> Duration {
        self.reconnect_max
    }

    /// `TCP_USER_TIMEOUT` of a socket whose reading is paused.
    pub fn tcp_user_timeout(&self) -> Duration {
        self.tcp_user_timeout
    }

    /// Idle time before the first keepalive probe; probes follow every second, three of
    /// them.
    pub fn keepalive_idle(&self) -> Duration {
        self.keepalive_idle
    }

    /// Interval between attempts to deliver into full consumers.
    pub fn sink_retry(&self) -> Duration {
        self.sink_retry
    }

    /// Directory of shared-memory ring files.
    pub fn shm_dir(&self) -> &Path {
        &self.shm_dir
    }

    /// Data bytes of each shared-memory ring.
    pub fn shm_ring_bytes(&self) -> usize {
        self.shm_ring_bytes
    }

    /// Bytes of each chunk of a connection's send queue: the largest frame this side
    /// builds.
    pub(crate) fn send_chunk_bytes(&self) -> usize {
        self.connection.max_frame_len() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_kinds_parse_and_display() {
        for kind in [DriverKind::Auto, DriverKind::Mio, DriverKind::IoUring] {
            assert_eq!(kind.to_string().parse::<DriverKind>(), Ok(kind));
        }
        assert_eq!(
            "epoll".parse::<DriverKind>().unwrap_err().to_string(),
            "unknown transport driver \"epoll\"; expected auto, mio or io-uring"
        );
    }
}
