//! The I/O backends behind the transport, and the contract every backend keeps.
//!
//! A [`Driver`] owns the sockets and their buffers and performs the system calls; the event
//! loop above it owns the protocol. The loop hands the driver bytes to send and takes bytes
//! received, and learns what happened from the [`IoEvent`]s that [`Driver::poll`] reports.
//!
//! # Contract
//!
//! Every driver provides the following; the event loop relies on nothing else.
//!
//! - **Connection ids.** [`Driver::connect`] and accepted connections get a fresh
//!   [`ConnId`], never reused. Each id is reported exactly once by a terminal event,
//!   [`IoEvent::ConnectFailed`] or [`IoEvent::Closed`], after which it is invalid and the
//!   driver has released the socket and its buffers. Terminal events are only ever
//!   reported by `poll`, never returned from another call.
//! - **Receiving.** The driver reads whenever a connection's receive buffer has room and
//!   reading is not paused ([`Driver::pause_reading`]), and reports [`IoEvent::Received`]
//!   after new bytes arrived. Received bytes stay in the buffer ([`ConnBufs::recv`]) until
//!   the loop consumes them; the loop may leave bytes there (a partial frame, or records its
//!   consumers cannot take yet). When the peer closes or the connection fails, the driver
//!   reports `Received` for the last bytes (if any) before `Closed`, and the buffers of a
//!   connection reported closed stay readable until the next `poll`, so that the loop can
//!   read a CLOSE frame that came right before the end of the stream.
//! - **Sending.** The loop appends whole frames to the send queue ([`ConnBufs::send`]) and
//!   calls [`Driver::flush`]; the driver writes the queue in order, as many segments per
//!   system call as it can (vectored writes), and keeps writing as the socket drains. It
//!   reports [`IoEvent::Sent`] when bytes left the queue, so the loop may append more.
//! - **Closing.** [`Driver::close`] stops reading, keeps writing what is queued for a short
//!   linger (so a CLOSE frame goes out), then releases the socket and reports `Closed`.
//! - **Waking.** [`Driver::waker`] returns a handle any thread may use to end a `poll` early;
//!   `poll` then reports [`IoEvent::Woken`]. A wake while not polling ends the next poll.
//!   [`Driver::watch`] adds a descriptor another process writes to for the same purpose.
//! - **Buffers in flight.** A driver may let the kernel fill or drain a buffer while the
//!   loop runs (io_uring). [`ConnBufs`] keeps such regions out of the loop's reach, so the
//!   loop may read, consume and append at any time.
//!
//! # Backends
//!
//! - [`mio`](mio_driver): readiness-based (epoll on Linux), available everywhere.
//! - `uring` (Linux only): completion-based, with receives, vectored writes, accepts and
//!   connects submitted to an io_uring. [`select`] probes the kernel for it at start-up and
//!   falls back to mio, with a log line, when the kernel cannot run it.
//!
//! With TLS (feature `tls`) the mio driver runs a rustls session per connection: the event
//! loop still sees plaintext in [`ConnBufs`], while the socket carries TLS records. io_uring
//! does not run TLS; [`select`] picks mio instead, with a log line.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::buf::{RecvBuf, SendQueue};
use super::config::{DriverKind, TransportConfig};
use super::error::TransportError;

pub(crate) mod mio_driver;
#[cfg(target_os = "linux")]
mod timer;
#[cfg(target_os = "linux")]
pub(crate) mod uring;

/// Names one connection of a driver; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId(pub(crate) u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// What happened, as reported by [`Driver::poll`].
#[derive(Debug)]
pub(crate) enum IoEvent {
    /// The listener accepted a connection from `addr`.
    Accepted {
        /// The new connection.
        conn: ConnId,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// An outgoing connection is open.
    Connected(ConnId),
    /// An outgoing connection could not be opened; terminal.
    ConnectFailed(ConnId, io::Error),
    /// New bytes are in the connection's receive buffer.
    Received(ConnId),
    /// Queued bytes were written; there is room for more.
    Sent(ConnId),
    /// The connection is gone: closed by the peer, failed (`Some` error) or closed by
    /// [`Driver::close`]; terminal.
    Closed(ConnId, Option<io::Error>),
    /// [`Waker::wake`] was called.
    Woken,
}

/// A connection's buffers, as the event loop sees them.
#[derive(Debug)]
pub(crate) struct ConnBufs {
    /// Received bytes.
    pub(crate) recv: RecvBuf,
    /// Bytes to send.
    pub(crate) send: SendQueue,
}

impl ConnBufs {
    pub(crate) fn new(config: &TransportConfig) -> Self {
        let max_frame = config.connection().max_frame_len() as usize;
        Self {
            recv: RecvBuf::new(INITIAL_RECV_BYTES, max_frame + INITIAL_RECV_BYTES),
            send: SendQueue::new(config.send_chunk_bytes()),
        }
    }
}

/// Initial size of a receive buffer; it grows when a larger frame arrives.
const INITIAL_RECV_BYTES: usize = 64 << 10;

/// Ends a driver's [`poll`](Driver::poll) from any thread.
pub(crate) trait Waker: Send + Sync + fmt::Debug {
    /// Wakes the driver, or makes its next `poll` return at once.
    fn wake(&self);
}

/// An I/O backend; see the [module docs](self) for the contract.
pub(crate) trait Driver: fmt::Debug + Send {
    /// Which backend this is.
    fn kind(&self) -> DriverKind;

    /// A handle that ends `poll` early from another thread.
    fn waker(&self) -> Arc<dyn Waker>;

    /// Starts accepting connections on `addr`; returns the bound address.
    fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr>;

    /// Starts opening a connection to `addr`; [`IoEvent::Connected`] or
    /// [`IoEvent::ConnectFailed`] follows.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId>;

    /// Waits up to `timeout` (`None`: without limit) for something to happen, performs the
    /// I/O that became possible, and appends what happened to `events`.
    fn poll(&mut self, timeout: Option<Duration>, events: &mut Vec<IoEvent>) -> io::Result<()>;

    /// The buffers of a connection, live or reported closed by the last `poll`.
    fn bufs(&mut self, conn: ConnId) -> Option<&mut ConnBufs>;

    /// Stops (or resumes) reading from a connection; received bytes stay buffered. While
    /// paused, the socket's `TCP_USER_TIMEOUT` is armed (see the `socket` module).
    fn pause_reading(&mut self, conn: ConnId, paused: bool);

    /// Starts writing the connection's queued bytes if it is not already doing so.
    fn flush(&mut self, conn: ConnId);

    /// Closes a connection once its queued bytes are written (or a short linger passed).
    fn close(&mut self, conn: ConnId);

    /// Also ends `poll`, reporting [`IoEvent::Woken`], whenever `fd` has bytes to read: the
    /// pipe through which a co-located worker wakes this thread. The caller reads them (so
    /// that the next write wakes it again) and keeps `fd` open until
    /// [`unwatch`](Self::unwatch).
    fn watch(&mut self, fd: std::os::fd::RawFd) -> io::Result<()>;

    /// Stops watching `fd`.
    fn unwatch(&mut self, fd: std::os::fd::RawFd);
}

/// How long a closing connection may take to write what it has queued.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Builds the driver `config` asks for. With [`DriverKind::Auto`], tries io_uring and falls
/// back to mio, logging why, when `probe_uring` says the kernel cannot run it.
pub(crate) fn select(
    config: &TransportConfig,
    probe_uring: impl FnOnce(&TransportConfig) -> Result<Box<dyn Driver>, String>,
) -> Result<Box<dyn Driver>, TransportError> {
    let mio = || -> Result<Box<dyn Driver>, TransportError> {
        Ok(Box::new(
            mio_driver::MioDriver::new(config).map_err(TransportError::Driver)?,
        ))
    };
    if config.uses_tls() && config.driver() != DriverKind::Mio {
        tracing::info!("TLS links run on the mio driver; not using io_uring");
        return mio();
    }
    match config.driver() {
        DriverKind::Mio => mio(),
        DriverKind::IoUring => probe_uring(config).map_err(TransportError::IoUringUnavailable),
        DriverKind::Auto => match probe_uring(config) {
            Ok(driver) => Ok(driver),
            Err(reason) => {
                tracing::info!("io_uring unavailable ({reason}); using the mio driver");
                mio()
            }
        },
    }
}

/// The io_uring driver if this kernel runs it, else why not.
pub(crate) fn probe_uring(config: &TransportConfig) -> Result<Box<dyn Driver>, String> {
    #[cfg(target_os = "linux")]
    {
        uring::UringDriver::boxed(config)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = config;
        Err("io_uring exists only on Linux".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterId, ClusterSecret, ConnectionConfig, WorkerId};

    fn config(kind: DriverKind) -> TransportConfig {
        let secret = ClusterSecret::new(*b"driver selection secret").unwrap();
        TransportConfig::new(
            ConnectionConfig::new(ClusterId(1), WorkerId(1), secret),
            "127.0.0.1:0".parse().unwrap(),
        )
        .with_driver(kind)
    }

    fn unavailable(_: &TransportConfig) -> Result<Box<dyn Driver>, String> {
        Err("probe forced to fail".to_owned())
    }

    #[test]
    fn auto_falls_back_to_mio_when_the_probe_fails() {
        let driver = select(&config(DriverKind::Auto), unavailable).unwrap();
        assert_eq!(driver.kind(), DriverKind::Mio);
    }

    #[test]
    fn forcing_io_uring_fails_when_the_probe_fails() {
        let error = select(&config(DriverKind::IoUring), unavailable).unwrap_err();
        assert_eq!(
            error.to_string(),
            "io_uring driver requested but unavailable: probe forced to fail"
        );
    }

    #[test]
    fn forcing_mio_never_probes() {
        let driver = select(&config(DriverKind::Mio), |_| -> Result<_, String> {
            panic!("probed")
        })
        .unwrap();
        assert_eq!(driver.kind(), DriverKind::Mio);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn auto_picks_io_uring_where_the_kernel_runs_it() {
        let driver = select(&config(DriverKind::Auto), probe_uring).unwrap();
        // Kernels or sandboxes without io_uring make this mio; the log says why.
        let expected = match probe_uring(&config(DriverKind::IoUring)) {
            Ok(_) => DriverKind::IoUring,
            Err(_) => DriverKind::Mio,
        };
        assert_eq!(driver.kind(), expected);
    }
}
