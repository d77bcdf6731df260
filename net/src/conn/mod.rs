//! One connection's protocol state, without sockets or clocks: the handshake, credits and
//! heartbeats, in the style of `quinn-proto`.
//!
//! The caller owns the bytes and the time. It feeds received bytes to
//! [`Connection::receive`] (one frame per call) and gets [`Event`]s back, borrowing from its
//! buffer; it asks [`Connection::poll_transmit`] for control frames to send, builds BATCH
//! frames within the peer's credit with [`Connection::start_batch`] and
//! [`Connection::finish_batch`], and calls [`Connection::handle_timeout`] when
//! [`Connection::poll_timeout`] says so. Every method that depends on time takes `now`.
//!
//! # Lifecycle
//!
//! 1. Both sides queue a HELLO as soon as they are created.
//! 2. On the peer's HELLO, a side checks its cluster, its topology, that its plan version is
//!    not older than this side's (and, when it dialled, its worker id) and queues an AUTH
//!    proving the secret over both HELLOs.
//! 3. On the peer's AUTH, it verifies the proof, reports [`Event::Authenticated`] and queues
//!    a CREDIT opening its receive window. Only now may BATCH frames flow, in either
//!    direction: a BATCH before this point is a protocol error, and so is any frame longer
//!    than [`MAX_HANDSHAKE_FRAME_LEN`].
//! 4. Established, it sends a HEARTBEAT every interval and declares the peer dead after the
//!    idle timeout without a frame, unless the caller paused receiving
//!    ([`Connection::set_receive_paused`]) because its consumers are full.
//! 5. An error, a CLOSE from the peer or [`Connection::close`] closes it; an error or a
//!    local close queue a CLOSE frame to send before the socket is shut.
//!
//! # Example
//!
//! Two connections talking through plain buffers on virtual time:
//!
//! ```
//! use std::time::Instant;
//!
//! use squall_net::{
//!     ClusterId, ClusterSecret, Connection, ConnectionConfig, Event, Nonce, Received, Side,
//!     WorkerId,
//! };
//!
//! let secret = ClusterSecret::new(*b"a secret of at least 16 bytes").unwrap();
//! let cluster = ClusterId::from_name("example");
//! let now = Instant::now();
//! let mut a = Connection::new(
//!     ConnectionConfig::new(cluster, WorkerId(1), secret.clone()),
//!     Side::Initiator,
//!     Some(WorkerId(2)),
//!     Nonce::from_bytes([1; 32]),
//!     now,
//! );
//! let mut b = Connection::new(
//!     ConnectionConfig::new(cluster, WorkerId(2), secret),
//!     Side::Acceptor,
//!     None,
//!     Nonce::from_bytes([2; 32]),
//!     now,
//! );
//!
//! // Shuttle control frames until both sides are established.
//! let mut buf = vec![0u8; 1 << 16];
//! let mut shuttle = |from: &mut Connection, to: &mut Connection| {
//!     let len = from.poll_transmit(&mut buf);
//!     let mut input = &buf[..len];
//!     while let Ok(Received::Frame { len, .. }) = to.receive(input, now) {
//!         input = &input[len..];
//!     }
//! };
//! for _ in 0..3 {
//!     shuttle(&mut a, &mut b);
//!     shuttle(&mut b, &mut a);
//! }
//! assert!(a.is_established() && b.is_established());
//!
//! // A sends a batch within B's credit; B reads the records in place.
//! let mut batch = a.start_batch(&mut buf).expect("B granted credit");
//! batch.push(42, b"a tuple").unwrap();
//! let len = a.finish_batch(batch);
//! let Ok(Received::Frame { event: Some(Event::Batch(view)), .. }) = b.receive(&buf[..len], now)
//! else {
//!     panic!("B receives the batch")
//! };
//! let record = view.iter().next().unwrap();
//! assert_eq!((record.dest_task, record.bytes), (42, &b"a tuple"[..]));
//! b.batch_delivered(view.frame_len());
//! ```
#![forbid(unsafe_code)]

mod config;
mod credit;
mod error;

use std::time::{Duration, Instant};

pub use config::{ConnectionConfig, PlanVersion, Side};
pub use error::ConnectionError;

use crate::auth::{Nonce, Proof};
use crate::codec::{
    Auth, BATCH_HEADER_LEN, BatchEncoder, BatchView, Close, CloseCode, Credit, Decoded, Frame,
    HEADER_LEN, Hello, Needed, PROTOCOL_VERSION, RECORD_HEADER_LEN, decode_frame,
};
use crate::ids::{ClusterId, WorkerId};
use credit::{ReceiveCredit, SendCredit};

/// What a connection knows about its authenticated peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's worker id.
    pub worker_id: WorkerId,
    /// The peer's cluster (the same as this side's).
    pub cluster_id: ClusterId,
    /// The protocol version both sides speak on this connection.
    pub version: u16,
    /// Largest frame the peer accepts.
    pub max_frame_len: u32,
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The handshake is under way; no BATCH may flow.
    Handshake,
    /// Both sides proved the secret; batches flow within credits.
    Established,
    /// Closed by an error, by the peer or by this side. A CLOSE may still wait to be sent.
    Closed,
}

/// Something the peer's frames changed, reported by [`Connection::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The peer proved the cluster secret; the connection is established.
    Authenticated(PeerInfo),
    /// A BATCH arrived: hand its records to their tasks, then call
    /// [`Connection::batch_delivered`] with its [`frame_len`](BatchView::frame_len) so
    /// the peer gets the credit back.
    Batch(BatchView<'a>),
    /// The peer granted more credit; `available` BATCH bytes may be sent now.
    CreditGranted {
        /// BATCH bytes that may be sent now.
        available: u64,
    },
    /// The peer closed the connection.
    PeerClosed {
        /// Why, as the peer said.
        code: CloseCode,
        /// The peer's explanation.
        reason: &'a str,
    },
}

/// What [`Connection::receive`] did with the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// One frame of `len` bytes was consumed; the next starts at `input[len..]`.
    Frame {
        /// Bytes consumed.
        len: usize,
        /// What the frame changed, if anything the caller must know (a HEARTBEAT, for
        /// one, changes nothing the caller sees).
        event: Option<Event<'a>>,
    },
    /// The input holds only part of a frame.
    Incomplete(Needed),
}

/// Handshake progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitAuth,
    Established,
    Closed,
}

/// Control frames waiting to be written, in the order they go out.
#[derive(Debug, Default)]
struct Outgoing {
    hello: bool,
    auth: Option<Proof>,
    credit: Option<u64>,
    heartbeat: bool,
    close: Option<(CloseCode, String)>,
}

/// The protocol state of one connection; see the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    side: Side,
    expected_peer: Option<WorkerId>,
    phase: Phase,
    own_hello: [u8; Hello::FRAME_LEN],
    own_nonce: Nonce,
    own_plan_version: u64,
    peer_hello: [u8; Hello::FRAME_LEN],
    peer: Option<PeerInfo>,
    /// The peer's HELLO, kept until its AUTH is verified.
    peer_claim: Option<Hello>,
    outgoing: Outgoing,
    send: SendCredit,
    receive: ReceiveCredit,
    started: Instant,
    last_heard: Instant,
    next_heartbeat: Option<Instant>,
    receive_paused: bool,
}

impl Connection {
    /// A connection on the `side` end, with this side's HELLO queued.
    ///
    /// `expected_peer` is the worker this side dialled, when it knows (the handshake fails
    /// with [`ConnectionError::UnexpectedPeer`] if another answers); `nonce` must be fresh
    /// for every connection ([`Nonce::random`]).
    pub fn new(
        config: ConnectionConfig,
        side: Side,
        expected_peer: Option<WorkerId>,
        nonce: Nonce,
        now: Instant,
    ) -> Self {
        let own_plan_version = config.plan_version().get();
        let own_hello = Hello {
            max_version: u16::from(PROTOCOL_VERSION),
            max_frame_len: config.max_frame_len(),
            cluster_id: config.cluster_id(),
            worker_id: config.worker_id(),
            topology_id: config.topology_id(),
            plan_version: own_plan_version,
            nonce,
        }
        .to_frame_bytes();
        let receive = ReceiveCredit::new(config.initial_receive_window(), config.receive_window());
        Self {
            config,
            side,
            expected_peer,
            phase: Phase::AwaitHello,
            own_hello,
            own_nonce: nonce,
            own_plan_version,
            peer_hello: [0; Hello::FRAME_LEN],
            peer: None,
            peer_claim: None,
            outgoing: Outgoing {
                hello: true,
                ..Outgoing::default()
            },
            send: SendCredit::default(),
            receive,
            started: now,
            last_heard: now,
            next_heartbeat: None,
            receive_paused: false,
        }
    }

    /// This side's configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// This side's end of the connection.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Where the connection stands.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::AwaitHello | Phase::AwaitAuth => State::Handshake,
            Phase::Established => State::Established,
            Phase::Closed => State::Closed,
        }
    }

    /// Whether the handshake completed and the connection is open.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the connection is closed and its CLOSE frame (if any) was handed out: the
    /// socket may be shut.
    pub fn is_drained(&self) -> bool {
        self.is_closed() && !self.has_transmit()
    }

    /// The authenticated peer, once established.
    pub fn peer(&self) -> Option<PeerInfo> {
        self.peer
    }

    /// The worker id the peer claimed in its HELLO, before or after it proved it.
    pub fn claimed_peer(&self) -> Option<WorkerId> {
        self.peer
            .map(|peer| peer.worker_id)
            .or(self.peer_claim.map(|hello| hello.worker_id))
    }

    /// Consumes the frame at the start of `input`, received from the peer at `now`.
    ///
    /// Call it in a loop, advancing `input` by each frame's `len`, until it returns
    /// [`Received::Incomplete`]. BATCH events borrow from `input`.
    ///
    /// # Errors
    /// A [`ConnectionError`] when the frame is malformed, not allowed in the current state,
    /// fails authentication or overruns the granted credit; the connection is closed then,
    /// with a CLOSE queued for the peer. [`ConnectionError::Closed`] once closed.
    pub fn receive<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
    ) -> Result<Received<'a>, ConnectionError> {
        if self.phase == Phase::Closed {
            return Err(ConnectionError::Closed);
        }
        let limit = match self.phase {
            Phase::Established => self.config.max_frame_len(),
            _ => MAX_HANDSHAKE_FRAME_LEN,
        };
        let (frame, len) = match decode_frame(input, limit) {
            Ok(Decoded::Frame { frame, len }) => (frame, len),
            Ok(Decoded::Incomplete(needed)) => return Ok(Received::Incomplete(needed)),
            Err(error) => return Err(self.fail(error.into())),
        };
        self.last_heard = now;
        match self.on_frame(frame, &input[..len], now) {
            Ok(event) => Ok(Received::Frame { len, event }),
            Err(error) => Err(self.fail(error)),
        }
    }

    fn on_frame<'a>(
        &mut self,
        frame: Frame<'a>,
        bytes: &'a [u8],
        now: Instant,
    ) -> Result<Option<Event<'a>>, ConnectionError> {
        match (self.phase, frame) {
            (_, Frame::Close(close)) => {
                self.phase = Phase::Closed;
                self.outgoing = Outgoing::default();
                Ok(Some(Event::PeerClosed {
                    code: close.code,
                    reason: close.reason,
                }))
            }
            (Phase::AwaitHello, Frame::Hello(hello)) => {
                self.on_hello(hello, bytes)?;
                Ok(None)
            }
            (Phase::AwaitAuth, Frame::Auth(auth)) => self.on_auth(auth, now).map(Some),
            (Phase::Established, Frame::Batch(batch)) => {
                let len = batch.frame_len() as u64;
                if !self.receive.receive(len) {
                    return Err(ConnectionError::CreditExceeded {
                        received: self.receive.received + len,
                        limit: self.receive.granted,
                    });
                }
                Ok(Some(Event::Batch(batch)))
            }
            (Phase::Established, Frame::Credit(credit)) => {
                if credit.limit < self.send.limit {
                    return Err(ConnectionError::CreditDecreased {
                        previous: self.send.limit,
                        limit: credit.limit,
                    });
                }
                self.send.limit = credit.limit;
                Ok(Some(Event::CreditGranted {
                    available: self.send.available(),
                }))
            }
            (Phase::Established, Frame::Heartbeat) => Ok(None),
            (phase, frame) => Err(ConnectionError::UnexpectedFrame {
                frame: frame.frame_type(),
                state: match phase {
                    Phase::AwaitHello => "before the peer's HELLO",
                    Phase::AwaitAuth => "between the peer's HELLO and its AUTH",
                    Phase::Established => "once the connection is established",
                    Phase::Closed => "after the connection closed",
                },
            }),
        }
    }

    fn on_hello(&mut self, hello: Hello, bytes: &[u8]) -> Result<(), ConnectionError> {
        if hello.cluster_id != self.config.cluster_id() {
            return Err(ConnectionError::ClusterMismatch {
                ours: self.config.cluster_id(),
                theirs: hello.cluster_id,
            });
        }
        if hello.topology_id != self.config.topology_id() {
            return Err(ConnectionError::TopologyMismatch {
                ours: self.config.topology_id(),
                theirs: hello.topology_id,
            });
        }
        // Compared with the version this side announced, not the shared one now: both ends
        // judge by the HELLOs the proofs cover.
        if hello.plan_version < self.own_plan_version {
            return Err(ConnectionError::StalePlan {
                ours: self.own_plan_version,
                theirs: hello.plan_version,
            });
        }
        if hello.worker_id == self.config.worker_id() {
            return Err(ConnectionError::SameWorker {
                worker: hello.worker_id,
            });
        }
        if let Some(expected) = self.expected_peer
            && expected != hello.worker_id
        {
            return Err(ConnectionError::UnexpectedPeer {
                expected,
                found: hello.worker_id,
            });
        }
        if hello.nonce == self.own_nonce {
            return Err(ConnectionError::ReflectedNonce);
        }
        self.peer_hello.copy_from_slice(bytes);
        self.peer_claim = Some(hello);
        let (initiator, acceptor) = self.hellos();
        let proof = Proof::compute(self.config.secret(), self.side, initiator, acceptor);
        self.outgoing.auth = Some(proof);
        self.phase = Phase::AwaitAuth;
        Ok(())
    }

    fn on_auth(&mut self, auth: Auth, now: Instant) -> Result<Event<'static>, ConnectionError> {
        let hello = self
            .peer_claim
            .expect("a connection awaiting AUTH has the peer's HELLO");
        let (initiator, acceptor) = self.hellos();
        if !auth
            .proof
            .verify(self.config.secret(), self.side.peer(), initiator, acceptor)
        {
            return Err(ConnectionError::AuthenticationFailed {
                peer: hello.worker_id,
            });
        }
        let peer = PeerInfo {
            worker_id: hello.worker_id,
            cluster_id: hello.cluster_id,
            version: hello.max_version.min(u16::from(PROTOCOL_VERSION)),
            max_frame_len: hello.max_frame_len,
        };
        self.peer = Some(peer);
        self.phase = Phase::Established;
        self.outgoing.credit = Some(self.receive.open());
        self.next_heartbeat = Some(now + self.config.heartbeat_interval());
        Ok(Event::Authenticated(peer))
    }

    /// The initiator's and the acceptor's HELLO frames.
    fn hellos(&self) -> (&[u8], &[u8]) {
        match self.side {
            Side::Initiator => (&self.own_hello, &self.peer_hello),
            Side::Acceptor => (&self.peer_hello, &self.own_hello),
        }
    }

    /// Closes the connection after `error`, queueing a CLOSE that names it.
    fn fail(&mut self, error: ConnectionError) -> ConnectionError {
        let reason = error.to_string();
        self.close(error.close_code(), &reason);
        error
    }

    /// Closes the connection and queues a CLOSE with `code` and `reason` (cut to
    /// [`MAX_CLOSE_REASON`](crate::codec::MAX_CLOSE_REASON) bytes). Control frames not yet
    /// handed out are dropped. Does nothing if already closed.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.outgoing = Outgoing {
            close: Some((code, Close::truncate_reason(reason).to_owned())),
            ..Outgoing::default()
        };
    }

    /// Records that the records of a received BATCH of `frame_len` bytes were handed to
    /// their consumers; queues a CREDIT when enough room came free.
    pub fn batch_delivered(&mut self, frame_len: usize) {
        if self.phase != Phase::Established {
            return;
        }
        if let Some(limit) = self.receive.deliver(frame_len as u64) {
            self.outgoing.credit = Some(limit);
        }
    }

    /// Tells the connection that the caller stopped (or resumed) reading from the peer
    /// because its consumers are full. While paused, the peer's silence is the caller's
    /// doing, so the idle timeout does not run; it restarts from `now` on resuming.
    pub fn set_receive_paused(&mut self, paused: bool, now: Instant) {
        if self.receive_paused && !paused {
            self.last_heard = now;
        }
        self.receive_paused = paused;
    }

    /// Whether control frames wait to be handed out by [`poll_transmit`](Self::poll_transmit).
    pub fn has_transmit(&self) -> bool {
        let out = &self.outgoing;
        out.hello
            || out.auth.is_some()
            || out.credit.is_some()
            || out.heartbeat
            || out.close.is_some()
    }

    /// Writes the control frames waiting to be sent (HELLO, AUTH, CREDIT, HEARTBEAT, CLOSE,
    /// in that order) at the start of `buf`, as many as fit whole, and returns the bytes
    /// written. Send them before any BATCH built afterwards.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> usize {
        let mut len = 0;
        let out = &mut self.outgoing;
        if out.hello {
            let Some(room) = buf.get_mut(..Hello::FRAME_LEN) else {
                return len;
            };
            room.copy_from_slice(&self.own_hello);
            len += Hello::FRAME_LEN;
            out.hello = false;
        }
        if let Some(proof) = out.auth {
            let Ok(n) = (Auth { proof }).encode(&mut buf[len..]) else {
                return len;
            };
            len += n;
            out.auth = None;
        }
        if let Some(limit) = out.credit {
            let Ok(n) = (Credit { limit }).encode(&mut buf[len..]) else {
                return len;
            };
            len += n;
            out.credit = None;
        }
        if out.heartbeat {
            let Ok(n) = Frame::Heartbeat.encode(&mut buf[len..]) else {
                return len;
            };
            len += n;
            out.heartbeat = false;
        }
        if let Some((code, reason)) = &out.close {
            let close = Close {
                code: *code,
                reason,
            };
            let Ok(n) = close.encode(&mut buf[len..]) else {
                return len;
            };
            len += n;
            out.close = None;
        }
        len
    }

    /// BATCH bytes the peer's credit allows right now, capped at the largest frame it
    /// accepts: the size of the largest BATCH frame that may be sent now. Zero until
    /// established.
    pub fn batch_room(&self) -> usize {
        match (self.phase, self.peer) {
            (Phase::Established, Some(peer)) => {
                let room = self.send.available().min(u64::from(peer.max_frame_len));
                usize::try_from(room).unwrap_or(usize::MAX) & !7
            }
            _ => 0,
        }
    }

    /// Starts a BATCH frame in `buf`, limited to [`batch_room`](Self::batch_room); `None`
    /// when not established or when the credit has no room for a record. Append records,
    /// then hand the encoder to [`finish_batch`](Self::finish_batch).
    pub fn start_batch<'b>(&self, buf: &'b mut [u8]) -> Option<BatchEncoder<'b>> {
        let room = self.batch_room().min(buf.len());
        if room < BATCH_HEADER_LEN + RECORD_HEADER_LEN {
            return None;
        }
        BatchEncoder::new(&mut buf[..room]).ok()
    }

    /// Finishes a BATCH started with [`start_batch`](Self::start_batch), counts it against
    /// the peer's credit and returns its length (0 for a batch without records, which is
    /// not to be sent).
    ///
    /// # Panics
    /// When the batch exceeds the credit left, which happens only if batches were started
    /// before earlier ones were finished.
    pub fn finish_batch(&mut self, batch: BatchEncoder<'_>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let len = batch.finish();
        assert!(
            len as u64 <= self.send.available(),
            "BATCH of {len} bytes exceeds the {} bytes of credit left",
            self.send.available()
        );
        self.send.sent += len as u64;
        len
    }

    /// The credit limit that returns to the peer the bytes of every BATCH received so far.
    #[cfg(feature = "stage-trace")]
    pub(crate) fn limit_returning_received(&self) -> u64 {
        self.receive.received + self.receive.window
    }

    /// The limit of the latest CREDIT handed out by [`poll_transmit`](Self::poll_transmit),
    /// or `None` while a newer one waits to be.
    #[cfg(feature = "stage-trace")]
    pub(crate) fn limit_handed_out(&self) -> Option<u64> {
        self.outgoing
            .credit
            .is_none()
            .then_some(self.receive.granted)
    }

    /// BATCH bytes sent and the peer's limit so far.
    pub fn send_credit(&self) -> (u64, u64) {
        (self.send.sent, self.send.limit)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed => None,
            Phase::AwaitHello | Phase::AwaitAuth => {
                Some(self.started + self.config.handshake_timeout())
            }
            Phase::Established => {
                let heartbeat = self.next_heartbeat;
                let idle =
                    (!self.receive_paused).then(|| self.last_heard + self.config.idle_timeout());
                [heartbeat, idle].into_iter().flatten().min()
            }
        }
    }

    /// Runs the timers due at `now`: queues a HEARTBEAT when one is due; fails the
    /// connection when the handshake or the peer's silence lasted too long.
    ///
    /// # Errors
    /// [`ConnectionError::HandshakeTimedOut`] or [`ConnectionError::PeerTimedOut`]; the
    /// connection is closed then, with a CLOSE queued.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnectionError> {
        match self.phase {
            Phase::Closed => Ok(()),
            Phase::AwaitHello | Phase::AwaitAuth => {
                let after = self.config.handshake_timeout();
                if now.saturating_duration_since(self.started) >= after {
                    Err(self.fail(ConnectionError::HandshakeTimedOut { after }))
                } else {
                    Ok(())
                }
            }
            Phase::Established => {
                let silent_for = now.saturating_duration_since(self.last_heard);
                if !self.receive_paused && silent_for >= self.config.idle_timeout() {
                    return Err(self.fail(ConnectionError::PeerTimedOut { silent_for }));
                }
                if let Some(due) = self.next_heartbeat
                    && now >= due
                {
                    self.outgoing.heartbeat = true;
                    self.next_heartbeat = Some(now + self.config.heartbeat_interval());
                }
                Ok(())
            }
        }
    }

    /// Time since the last frame from the peer.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }
}

/// The largest frame a connection accepts before the handshake completes: enough for any
/// HELLO, AUTH or CLOSE, so a peer that has not proved the secret cannot make this side
/// buffer a large frame.
pub const MAX_HANDSHAKE_FRAME_LEN: u32 = 2048;

/// Bytes of the control frames a connection may queue at once, CLOSE with the longest
/// reason included: a transmit buffer of this size always takes them all.
pub const MAX_CONTROL_BYTES: usize = Hello::FRAME_LEN
    + Auth::FRAME_LEN
    + Credit::FRAME_LEN
    + HEADER_LEN
    + HEADER_LEN
    + Close::FIXED_BODY_LEN
    + crate::codec::MAX_CLOSE_REASON;
