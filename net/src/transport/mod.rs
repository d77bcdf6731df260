//! Transports: one connection per peer worker, over TCP (driven by mio or io_uring),
//! shared memory, or — for workers of one process — in-process rings
//! ([`InProcessHub`]), carrying the records of the executors' outbound rings.
//!
//! # Model
//!
//! A [`Transport`] runs one thread. That thread owns the listening socket, one connection
//! per peer worker, and the protocol state of each ([`Connection`](crate::Connection)).
//!
//! - **Outbound.** Each local executor that sends to a peer gets its own [`Outbound`] ring
//!   ([`Transport::outbound`]). The executor writes records (destination task and encoded
//!   tuple) and publishes them in batches; the transport thread gathers the records of
//!   every ring of a peer into BATCH frames, within the credit the peer granted, and writes
//!   several frames per system call (vectored writes, or io_uring). No allocation, lock or
//!   system call happens per record.
//! - **Inbound.** The transport decodes frames in its receive buffers and hands each record
//!   to the [`InboundSink`] the caller provided, as a borrowed slice. When the sink is full
//!   the transport stops reading that connection and stops granting it credit, so the
//!   sending executors on the other host stop on full rings: memory stays bounded.
//! - **Peers.** [`Transport::set_peers`] says which workers exist and where; it may be
//!   called again whenever the assignment changes. Between two workers, the one with the
//!   smaller [`crate::WorkerId`] dials and redials with exponential backoff; the
//!   other accepts. Every connection authenticates both ways before a record flows; a
//!   connection that fails is closed and logged with its address, without disturbing the
//!   others. The callback given to [`Transport::start`] hears of every peer going
//!   [up](PeerEvent::Up) or [down](PeerEvent::Down), so the engine can fail the tuple trees
//!   in flight. Dead peers are noticed within seconds through heartbeats, TCP keepalive and
//!   `TCP_USER_TIMEOUT`.
//! - **Drivers.** The socket work is done by a driver behind one internal contract: mio
//!   everywhere, io_uring where the kernel allows it. [`DriverKind`] picks one; `Auto`
//!   probes io_uring at start-up and falls back to mio with a log line.
//! - **TLS.** With the `tls` feature, `TransportConfig::with_tls` runs every TCP link in
//!   rustls (the mio driver; io_uring gives way to it). The protocol inside is unchanged;
//!   shared-memory and in-process links, which stay on one host, carry no TLS.
//!
//! # Example
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Duration;
//!
//! use squall_net::transport::{InboundSink, PeerEvent, PeerSpec, SinkFull, Transport, TransportConfig};
//! use squall_net::{ClusterId, ClusterSecret, ConnectionConfig, WorkerId};
//!
//! /// Collects what arrives; the engine writes into executors' rings instead.
//! struct Collect(mpsc::Sender<(u32, Vec<u8>)>);
//!
//! impl InboundSink for Collect {
//!     fn deliver(&mut self, dest_task: u32, record: &[u8]) -> Result<(), SinkFull> {
//!         self.0.send((dest_task, record.to_vec())).map_err(|_| SinkFull)
//!     }
//! }
//!
//! let secret = ClusterSecret::new(*b"shared by every worker of the cluster").unwrap();
//! let cluster = ClusterId::from_name("example");
//! let config = |worker| {
//!     let connection = ConnectionConfig::new(cluster, WorkerId(worker), secret.clone());
//!     TransportConfig::new(connection, "127.0.0.1:0".parse().unwrap())
//! };
//!
//! let (received, inbox) = mpsc::channel();
//! let (events, peer_events) = mpsc::channel();
//! let one = Transport::start(config(1), Collect(mpsc::channel().0), |_| {})?;
//! let two = Transport::start(config(2), Collect(received), move |event| {
//!     let _ = events.send(event);
//! })?;
//! // Worker 1 dials worker 2 (the smaller id dials).
//! one.set_peers([PeerSpec::tcp(WorkerId(2), two.local_addr())])?;
//! two.set_peers([PeerSpec::tcp(WorkerId(1), one.local_addr())])?;
//!
//! let mut to_two = one.outbound(WorkerId(2))?;
//! to_two.write(7, b"a tuple for task 7").unwrap();
//! to_two.publish();
//!
//! let up = peer_events.recv_timeout(Duration::from_secs(10))?;
//! assert!(matches!(up, PeerEvent::Up { peer: WorkerId(1), .. }));
//! let (task, record) = inbox.recv_timeout(Duration::from_secs(10))?;
//! assert_eq!((task, record.as_slice()), (7, &b"a tuple for task 7"[..]));
//! one.shutdown()?;
//! two.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod buf;
mod config;
pub(crate) mod driver;
mod error;
mod event;
mod hub;
mod outbound;
mod runtime;
mod sink;
mod socket;
mod stats;
#[cfg(feature = "tls")]
mod tls;
mod wake;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use squall_ringbuf::record::heap_ring;
use squall_ringbuf::wait::WaitStrategy;

pub use config::{DriverKind, ParseDriverKindError, TransportConfig};
pub use error::{OutboundError, TransportError};
pub use event::{PeerAddr, PeerEvent, PeerSpec, Remote};
pub use hub::InProcessHub;
pub use outbound::Outbound;
pub use sink::{InboundSink, SinkFull};
pub use stats::TransportStats;
#[cfg(feature = "tls")]
pub use tls::LinkTls;

use outbound::OutboundRing;
use runtime::{Command, EventLoop};
use stats::Stats;
use wake::WakeState;

use crate::ids::WorkerId;

/// A cheap, cloneable handle to a running [`Transport`], for threads other than its owner.
#[derive(Clone)]
pub struct TransportHandle {
    commands: Sender<Command>,
    wake: Arc<WakeState>,
    stats: Arc<Stats>,
    ring_bytes: usize,
    max_frame_len: usize,
}

impl fmt::Debug for TransportHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportHandle")
            .field("ring_bytes", &self.ring_bytes)
            .finish_non_exhaustive()
    }
}

impl TransportHandle {
    fn command(&self, command: Command) -> Result<(), TransportError> {
        self.commands
            .send(command)
            .map_err(|_| TransportError::Stopped)?;
        self.wake.wake();
        Ok(())
    }

    /// Replaces the set of peer workers; see [`Transport::set_peers`].
    ///
    /// # Errors
    /// [`TransportError::Stopped`] when the transport thread has stopped.
    pub fn set_peers(
        &self,
        peers: impl IntoIterator<Item = PeerSpec>,
    ) -> Result<(), TransportError> {
        self.command(Command::SetPeers(peers.into_iter().collect()))
    }

    /// A new outbound ring to `peer`; see [`Transport::outbound`].
    ///
    /// # Errors
    /// [`TransportError::Stopped`] when the transport thread has stopped.
    pub fn outbound(&self, peer: WorkerId) -> Result<Outbound, TransportError> {
        self.outbound_inner(peer, None)
    }

    /// A new outbound ring to `peer` whose executor waits on `doorbell` when the ring is
    /// full; the transport rings it after taking records. See [`Transport::outbound`].
    ///
    /// # Errors
    /// [`TransportError::Stopped`] when the transport thread has stopped.
    pub fn outbound_with_doorbell(
        &self,
        peer: WorkerId,
        doorbell: Arc<dyn WaitStrategy>,
    ) -> Result<Outbound, TransportError> {
        self.outbound_inner(peer, Some(doorbell))
    }

    fn outbound_inner(
        &self,
        peer: WorkerId,
        doorbell: Option<Arc<dyn WaitStrategy>>,
    ) -> Result<Outbound, TransportError> {
        let (producer, consumer) = heap_ring(self.ring_bytes);
        #[cfg_attr(not(feature = "stage-trace"), allow(unused_mut))]
        let mut ring = OutboundRing::new(consumer, doorbell);
        let outbound = Outbound::new(peer, producer, Arc::clone(&self.wake), self.max_frame_len);
        #[cfg(feature = "stage-trace")]
        ring.trace_with(&outbound);
        self.command(Command::AddRing { peer, ring })?;
        Ok(outbound)
    }

    /// Tells the transport thread that consumers freed room in a sink that was full: it
    /// retries its blocked deliveries at once (waking up if it sleeps). Costs a fence and a
    /// load while the thread is busy, a wake-up while it sleeps.
    pub fn wake(&self) {
        self.wake.room_freed();
    }

    /// What the transport moved so far.
    pub fn stats(&self) -> TransportStats {
        self.stats.snapshot()
    }
}

/// A running transport: its thread, its listening socket and its connections. See the
/// [module docs](self).
///
/// Dropping it shuts it down, as [`shutdown`](Self::shutdown) does.
pub struct Transport {
    handle: TransportHandle,
    thread: Option<JoinHandle<Result<(), TransportError>>>,
    /// Why the transport thread ended on its own (an error or a panic), once it has.
    failure: Arc<std::sync::OnceLock<String>>,
    local_addr: SocketAddr,
    driver: DriverKind,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("local_addr", &self.local_addr)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Starts a transport: picks the driver, listens on the configured address, and starts
    /// the transport thread. Records that arrive go to `sink`; `on_event` hears of peers
    /// going up and down and of rejected connections. Both run on the transport thread
    /// and must not block.
    ///
    /// # Errors
    /// [`TransportError::Listen`] when the address cannot be bound,
    /// [`TransportError::IoUringUnavailable`] when io_uring is forced but unavailable,
    /// [`TransportError::Driver`] or [`TransportError::Spawn`] when the system refuses.
    pub fn start(
        config: TransportConfig,
        sink: impl InboundSink + 'static,
        on_event: impl FnMut(PeerEvent) + Send + 'static,
    ) -> Result<Self, TransportError> {
        let mut driver = driver::select(&config, driver::probe_uring)?;
        let kind = driver.kind();
        let local_addr =
            driver
                .listen(config.listen())
                .map_err(|source| TransportError::Listen {
                    addr: config.listen(),
                    source,
                })?;
        tracing::info!(
            "transport of {} listening on {local_addr} with the {kind} driver",
            config.connection().worker_id()
        );
        let wake = Arc::new(WakeState::new(driver.waker()));
        let in_process = config
            .in_process()
            .map(|hub| hub.register(config.connection().worker_id(), Arc::clone(&wake)))
            .transpose()?;
        let stats = Arc::new(Stats::default());
        let (commands, receiver) = mpsc::channel();
        let handle = TransportHandle {
            commands,
            wake: Arc::clone(&wake),
            stats: Arc::clone(&stats),
            ring_bytes: config.outbound_ring_bytes(),
            max_frame_len: config.connection().max_frame_len() as usize,
        };
        let event_loop = EventLoop::new(
            config,
            driver,
            Box::new(sink),
            Box::new(on_event),
            receiver,
            wake,
            stats,
        )
        .with_in_process(in_process);
        let failure = Arc::new(std::sync::OnceLock::new());
        let failed = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name(format!("squall-net {local_addr}"))
            .spawn(move || {
                // A panic (a sink's, the driver's) ends the thread and with it every link,
                // whose sockets close as the loop unwinds; it is recorded so the owner
                // learns that nothing moves any more instead of carrying on.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event_loop.run()));
                let result = outcome.unwrap_or_else(|panic| {
                    Err(TransportError::Failed(format!(
                        "the transport thread panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                });
                if let Err(error) = &result {
                    tracing::error!("transport thread ended: {error}");
                    let _ = failed.set(error.to_string());
                }
                result
            })
            .map_err(TransportError::Spawn)?;
        Ok(Self {
            handle,
            thread: Some(thread),
            failure,
            local_addr,
            driver: kind,
        })
    }

    /// The address the transport listens on (with the port the system picked, if the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The driver in use: [`DriverKind::Mio`] or [`DriverKind::IoUring`].
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// A handle for other threads.
    pub fn handle(&self) -> TransportHandle {
        self.handle.clone()
    }

    /// Replaces the set of peer workers. Peers that left the set are disconnected (reported
    /// [down](PeerEvent::Down)) and their outbound rings closed; peers whose address changed
    /// are reconnected; new peers are connected.
    ///
    /// # Errors
    /// [`TransportError::Stopped`] when the transport thread has stopped.
    pub fn set_peers(
        &self,
        peers: impl IntoIterator<Item = PeerSpec>,
    ) -> Result<(), TransportError> {
        self.handle.set_peers(peers)
    }

    /// A new outbound ring to `peer`, for one executor. Records written to it go out on the
    /// connection to `peer` whenever there is one; while there is none, they wait in the
    /// ring, and writes fail with [`OutboundError::Full`] once it is full.
    ///
    /// # Errors
    /// [`TransportError::Stopped`] when the transport thread has stopped.
    pub fn outbound(&self, peer: WorkerId) -> Result<Outbound, TransportError> {
        self.handle.outbound(peer)
    }

    /// What the transport moved so far.
    pub fn stats(&self) -> TransportStats {
        self.handle.stats()
    }

    /// Why the transport thread ended by itself — an error or a panic — or `None` while it
    /// runs (or after a requested [`shutdown`](Self::shutdown)). Once it is `Some`, no
    /// record moves any more.
    pub fn failure(&self) -> Option<String> {
        self.failure.get().cloned()
    }

    /// Closes every connection (each peer gets a CLOSE) and stops the thread.
    ///
    /// # Errors
    /// [`TransportError::Failed`] when the thread failed or panicked.
    pub fn shutdown(mut self) -> Result<(), TransportError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), TransportError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let _ = self.handle.command(Command::Shutdown);
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(TransportError::Failed(
                "the transport thread panicked".to_owned(),
            )),
        }
    }
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::error!("transport stopped with an error: {error}");
        }
    }
}
