//! Errors of the transport: starting it, and writing outbound records.

use std::io;
use std::net::SocketAddr;

use crate::ids::WorkerId;

/// Why the transport could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The I/O driver could not be created.
    #[error("cannot create the I/O driver: {0}")]
    Driver(#[source] io::Error),
    /// [`DriverKind::IoUring`](super::DriverKind::IoUring) was forced but the kernel
    /// cannot run it.
    #[error("io_uring driver requested but unavailable: {0}")]
    IoUringUnavailable(String),
    /// The transport thread could not be started.
    #[error("cannot start the transport thread: {0}")]
    Spawn(#[source] io::Error),
    /// The transport thread has stopped; it takes no more commands.
    #[error("the transport has stopped")]
    Stopped,
    /// The transport thread failed; the text says how.
    #[error("transport thread failed: {0}")]
    Failed(String),
    /// Another transport of this process registered the same worker id with the
    /// in-process hub.
    #[error("{0} is already registered with the in-process hub")]
    InProcessWorkerTaken(WorkerId),
}

/// Why [`Outbound::write`](super::Outbound::write) took no record.
///
/// No variant allocates: the write path stays allocation-free when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The ring is full: the transport has not sent enough yet (the peer is slow, down, or
    /// out of credit). Publish what is pending and retry later.
    #[error("outbound ring to {peer} is full")]
    Full {
        /// The destination worker.
        peer: WorkerId,
    },
    /// The record can never be sent: it exceeds the largest record a frame carries.
    #[error("record of {len} bytes to {peer} exceeds the largest record, {max} bytes")]
    RecordTooLarge {
        /// The destination worker.
        peer: WorkerId,
        /// Length of the record.
        len: usize,
        /// [`Outbound::max_record_len`](super::Outbound::max_record_len).
        max: usize,
    },
    /// The transport no longer reads this ring: it stopped, or the peer left the peer set.
    #[error("outbound ring to {peer} is closed")]
    Closed {
        /// The destination worker.
        peer: WorkerId,
    },
}
