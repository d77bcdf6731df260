//! Squall's wire protocol between workers: a codec and a connection state machine without
//! I/O, and the transports that feed them bytes.
//!
//! This crate knows nothing of topologies. Tuples reach it as opaque, already encoded byte
//! records, each addressed to a destination task (`u32`); it carries them to the worker that
//! runs that task and hands them back as borrowed slices, never re-encoding them.
//!
//! # Layers
//!
//! - [`codec`]: frames (HELLO, AUTH, BATCH, CREDIT, HEARTBEAT, CLOSE) encoded into
//!   caller-provided buffers and decoded from byte slices into borrowed views, with precise
//!   errors for bad input. `docs/wire-protocol.md` specifies every byte.
//! - [`conn`]: one connection's protocol state, quinn-proto style: the caller passes bytes
//!   in and the current time, and takes events and bytes to send out. It runs the mutual
//!   authentication ([`auth`]), credit-based flow control and heartbeats, and is tested on
//!   virtual time.
//! - [`transport`]: what the engine uses. A [`Transport`](transport::Transport) runs one
//!   thread that keeps one connection per peer worker (TCP through mio or io_uring, or
//!   shared-memory rings between co-located workers), gathers the records executors write
//!   into their [`Outbound`](transport::Outbound) rings into BATCH frames, and hands
//!   arriving records to the caller's [`InboundSink`](transport::InboundSink). Its module
//!   documentation shows the engine's side of it.
//!
//! # Example: two connections, no sockets
//!
//! ```
//! use std::time::Instant;
//!
//! use squall_net::{
//!     ClusterId, ClusterSecret, Connection, ConnectionConfig, Event, Nonce, Received, Side,
//!     WorkerId,
//! };
//!
//! let secret = ClusterSecret::new(*b"shared by every worker of the cluster").unwrap();
//! let cluster = ClusterId::from_name("example");
//! let config = |worker| ConnectionConfig::new(cluster, WorkerId(worker), secret.clone());
//! let now = Instant::now();
//! let mut dialer =
//!     Connection::new(config(1), Side::Initiator, Some(WorkerId(2)), Nonce::random()?, now);
//! let mut listener = Connection::new(config(2), Side::Acceptor, None, Nonce::random()?, now);
//!
//! // Stand-ins for the two directions of a socket.
//! let (mut to_listener, mut to_dialer) = (Vec::new(), Vec::new());
//! let mut scratch = vec![0u8; 1 << 20];
//! let mut delivered = Vec::new();
//! for round in 0..4 {
//!     for (conn, wire) in [(&mut dialer, &mut to_listener), (&mut listener, &mut to_dialer)] {
//!         let len = conn.poll_transmit(&mut scratch);
//!         wire.extend_from_slice(&scratch[..len]);
//!     }
//!     if round == 3 {
//!         // Established, with credit from the listener: send two records to tasks 5 and 6.
//!         let mut batch = dialer.start_batch(&mut scratch).expect("credit was granted");
//!         batch.push(5, b"first").unwrap();
//!         batch.push(6, b"second").unwrap();
//!         let len = dialer.finish_batch(batch);
//!         to_listener.extend_from_slice(&scratch[..len]);
//!     }
//!     for (conn, wire) in [(&mut listener, &mut to_listener), (&mut dialer, &mut to_dialer)] {
//!         let mut consumed = 0;
//!         while let Received::Frame { len, event } = conn.receive(&wire[consumed..], now)? {
//!             if let Some(Event::Batch(batch)) = event {
//!                 for record in batch.iter() {
//!                     delivered.push((record.dest_task, record.bytes.to_vec()));
//!                 }
//!                 conn.batch_delivered(batch.frame_len());
//!             }
//!             consumed += len;
//!         }
//!         wire.drain(..consumed);
//!     }
//! }
//! assert_eq!(delivered, [(5, b"first".to_vec()), (6, b"second".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Unsafe code
//!
//! The codec, the connection state machine and the authentication forbid unsafe code.
//! Unsafe code lives in two places only, each block with the invariant it relies on: the
//! io_uring driver, which hands buffers to the kernel, and the I/O buffers that keep the
//! regions the kernel owns out of reach while it does.
#![deny(unsafe_code)]

pub mod auth;
pub mod codec;
pub mod conn;
mod ids;
#[cfg(feature = "stage-trace")]
pub mod trace;
pub mod transport;

pub use auth::{ClusterSecret, Nonce, Proof};
pub use conn::{
    Connection, ConnectionConfig, ConnectionError, Event, PeerInfo, PlanVersion, Received, Side,
    State,
};
pub use ids::{ClusterId, TopologyId, WorkerId};

/// The rustls this crate's TLS links are built with ([`transport::LinkTls`]), so that
/// embedders make their configurations with the same version.
#[cfg(feature = "tls")]
pub use rustls;
