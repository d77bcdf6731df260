//! The transport thread's event loop: it owns the driver, the connections' protocol state,
//! the peer table and the sink, and moves records between rings, frames and sockets.
//!
//! One iteration: apply commands and the in-process hub's news, dial peers that are due,
//! run timers, read the ring links, retry batches the sink refused, flush the sink, build
//! frames for every connection that has credit; then sleep in the driver until I/O, a timer
//! or a wake-up, and handle what it reports.
//!
//! Before it sleeps, the loop polls again a learnt number of times, yielding the core in
//! between ([`Patience`]): when its sleeps keep ending within a few hundred microseconds (a
//! peer sending in bursts), each would cost a wake-up of tens of microseconds on the path of
//! the next records, and a producer's system call to ring it. An idle loop soon sleeps at
//! once again.

mod doorbell;
mod link;
mod peers;
mod rings;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use squall_ringbuf::wait::Patience;

use link::{Link, Step};
use peers::PeerTable;
use rings::RingIo;

use super::TransportConfig;
use super::buf::SendQueue;
use super::driver::{ConnId, Driver, IoEvent};
use super::error::TransportError;
use super::event::{PeerAddr, PeerEvent, PeerSpec, Remote};
use super::hub::HubRegistration;
use super::outbound::OutboundRing;
use super::sink::InboundSink;
use super::stats::Stats;
use super::wake::WakeState;
use crate::auth::Nonce;
use crate::codec::CloseCode;
use crate::conn::{Connection, ConnectionError, PeerInfo, Side};
use crate::ids::WorkerId;

/// How long a stopping transport waits for its connections to send their CLOSE.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How often rings whose executors have gone are looked for.
const HOUSEKEEPING: Duration = Duration::from_millis(200);

/// Most polls of an idle loop before it sleeps: each is a zero-timeout driver poll and a
/// yield of the core, a microsecond or two, so a few hundred microseconds in all.
const MAX_IDLE_POLLS: u32 = 256;

/// Requests from the transport's handles to its thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Replace the peer set.
    SetPeers(Vec<PeerSpec>),
    /// Gather records for `peer` from this ring too.
    AddRing { peer: WorkerId, ring: OutboundRing },
    /// Close every connection and stop.
    Shutdown,
}

/// Names a connection of the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LinkId {
    /// A socket of the driver.
    Socket(ConnId),
    /// A pair of record rings: shared memory, or in process.
    Rings(u64),
}

/// The event loop; see the [module docs](self).
pub(crate) struct EventLoop {
    config: TransportConfig,
    driver: Box<dyn Driver>,
    sink: Box<dyn InboundSink>,
    on_event: Box<dyn FnMut(PeerEvent) + Send>,
    commands: Receiver<Command>,
    wake: Arc<WakeState>,
    stats: Arc<Stats>,
    links: HashMap<LinkId, Link>,
    /// The rings of the ring links (shared memory, in process).
    ring_links: HashMap<LinkId, RingIo>,
    next_ring_link: u64,
    /// This transport's place in its in-process hub, if it has one.
    in_process: Option<HubRegistration>,
    peers: PeerTable,
    io_events: Vec<IoEvent>,
    scratch: Vec<LinkId>,
    stopping: Option<Instant>,
    next_housekeeping: Instant,
    next_sink_retry: Option<Instant>,
    /// Polls before the loop sleeps, learnt from how its sleeps end.
    patience: Patience,
    /// Polls since the loop last moved a batch.
    idle_polls: u32,
    /// Batches moved when the loop last looked ([`Stats::batches_moved`]).
    batches_seen: u64,
}

impl EventLoop {
    pub(crate) fn new(
        config: TransportConfig,
        driver: Box<dyn Driver>,
        sink: Box<dyn InboundSink>,
        on_event: Box<dyn FnMut(PeerEvent) + Send>,
        commands: Receiver<Command>,
        wake: Arc<WakeState>,
        stats: Arc<Stats>,
    ) -> Self {
        let peers = PeerTable::new(config.reconnect_min(), config.reconnect_max());
        Self {
            config,
            driver,
            sink,
            on_event,
            commands,
            wake,
            stats,
            links: HashMap::new(),
            ring_links: HashMap::new(),
            next_ring_link: 0,
            in_process: None,
            peers,
            io_events: Vec::with_capacity(256),
            scratch: Vec::new(),
            stopping: None,
            next_housekeeping: Instant::now(),
            next_sink_retry: None,
            patience: Patience::new(1, MAX_IDLE_POLLS),
            idle_polls: 0,
            batches_seen: 0,
        }
    }

    /// Joins the loop to an in-process hub.
    pub(crate) fn with_in_process(mut self, registration: Option<HubRegistration>) -> Self {
        self.in_process = registration;
        self
    }

    /// Runs until shut down.
    pub(crate) fn run(mut self) -> Result<(), TransportError> {
        loop {
            let now = Instant::now();
            self.apply_commands(now);
            self.hub_news(now);
            if let Some(deadline) = self.stopping
                && (self.links.is_empty() || now >= deadline)
            {
                return Ok(());
            }
            self.dial(now);
            let housekeeping = self.run_timers(now);
            self.poll_rings(now, housekeeping);
            let room = self.wake.take_room();
            self.retry_blocked(now, room);
            // What this pass delivered reaches the executors before frames and credit
            // leave: sending is a system call of several microseconds.
            self.sink.flush();
            self.send_all();
            let mut timeout = self.next_timeout(now);
            let mut fell_asleep = None;
            if timeout != Some(Duration::ZERO) {
                if self.keeps_polling() {
                    std::thread::yield_now();
                    timeout = Some(Duration::ZERO);
                } else {
                    self.wake.prepare_sleep();
                    if self.wake.room_pending() || self.has_work() {
                        timeout = Some(Duration::ZERO);
                    } else {
                        fell_asleep = Some(Instant::now());
                    }
                }
            }
            let polled = self.driver.poll(timeout, &mut self.io_events);
            self.wake.awake();
            self.rings_awake();
            polled.map_err(|error| TransportError::Failed(format!("driver poll: {error}")))?;
            let now = Instant::now();
            if let Some(fell_asleep) = fell_asleep {
                let woken = !self.io_events.is_empty();
                self.patience
                    .learn(woken.then(|| now.saturating_duration_since(fell_asleep)));
            }
            let mut events = std::mem::take(&mut self.io_events);
            for event in events.drain(..) {
                self.on_io(event, now);
            }
            self.io_events = events;
        }
    }

    /// Whether the loop, with nothing to do right now, polls again instead of sleeping:
    /// until it has polled its learnt patience's worth since it last moved a batch.
    fn keeps_polling(&mut self) -> bool {
        let moved = self.stats.batches_moved();
        if moved != self.batches_seen {
            self.batches_seen = moved;
            self.idle_polls = 0;
        }
        if self.idle_polls < self.patience.get() {
            self.idle_polls += 1;
            true
        } else {
            false
        }
    }

    fn emit(&mut self, event: PeerEvent) {
        (self.on_event)(event);
    }

    fn apply_commands(&mut self, now: Instant) {
        loop {
            match self.commands.try_recv() {
                Ok(Command::SetPeers(specs)) => self.set_peers(specs, now),
                Ok(Command::AddRing { peer, ring }) => {
                    self.peers.entry(peer, now).rings.push(ring);
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                    self.stop(now);
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    fn stop(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(now + STOP_GRACE);
        self.scratch.clear();
        self.scratch.extend(self.links.keys().copied());
        let ids = std::mem::take(&mut self.scratch);
        for &id in &ids {
            if let Some(link) = self.links.get_mut(&id) {
                link.shut(CloseCode::NORMAL, "worker shutting down".to_owned());
            }
            self.close_link(id);
        }
        self.scratch = ids;
    }

    fn set_peers(&mut self, specs: Vec<PeerSpec>, now: Instant) {
        let change = self.peers.set(specs, now);
        for (worker, link) in change.removed {
            tracing::info!("{worker} left the peer set");
            if let Some(id) = link {
                self.drop_link(id, CloseCode::NORMAL, "peer removed from the peer set");
            }
        }
        for (worker, id) in change.moved {
            tracing::info!("{worker} moved; reconnecting");
            self.drop_link(id, CloseCode::NORMAL, "peer moved to another address");
        }
    }

    /// Closes a link on this side's initiative, reporting its peer down at once.
    fn drop_link(&mut self, id: LinkId, code: CloseCode, reason: &str) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.shut(code, reason.to_owned());
        if link.up {
            link.up = false;
            let peer = link.peer.expect("an up link has a peer");
            self.emit(PeerEvent::Down {
                peer,
                reason: reason.to_owned(),
            });
        }
        self.close_link(id);
    }

    /// Dials every peer this worker should dial that has no connection and is due, and
    /// opens the shared-memory links that are due.
    fn dial(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        let me = self.config.connection().worker_id();
        let mut due = Vec::new();
        for (worker, peer) in self.peers.iter() {
            if dials(me, *worker, peer.addr.as_ref())
                && peer.link.is_none()
                && now >= peer.next_attempt
            {
                due.push((*worker, peer.addr.clone()));
            }
        }
        for (worker, addr) in due {
            match addr {
                Some(PeerAddr::Tcp(addr)) => self.dial_tcp(worker, addr, now),
                Some(PeerAddr::SharedMemory) if !self.dial_shm(worker, now) => {
                    self.peers.dial_failed(worker, now);
                }
                Some(PeerAddr::SharedMemory) => {}
                Some(PeerAddr::InProcess) if !self.dial_in_process(worker, now) => {
                    self.peers.dial_failed(worker, now);
                }
                Some(PeerAddr::InProcess) | None => {}
            }
        }
    }

    fn dial_tcp(&mut self, worker: WorkerId, addr: std::net::SocketAddr, now: Instant) {
        match self.driver.connect(addr) {
            Ok(conn) => {
                let id = LinkId::Socket(conn);
                let connection = self.connection(Side::Initiator, Some(worker), now);
                self.links
                    .insert(id, Link::new(connection, Remote::Tcp(addr), Some(worker)));
                self.peers.entry(worker, now).link = Some(id);
                tracing::debug!("dialling {worker} at {addr}");
            }
            Err(error) => {
                tracing::warn!("cannot dial {worker} at {addr}: {error}");
                self.peers.dial_failed(worker, now);
            }
        }
    }

    fn connection(&self, side: Side, expected: Option<WorkerId>, now: Instant) -> Connection {
        let nonce = Nonce::random().expect("the operating system provides random bytes");
        Connection::new(self.config.connection().clone(), side, expected, nonce, now)
    }

    fn on_io(&mut self, event: IoEvent, now: Instant) {
        match event {
            IoEvent::Accepted { conn, addr } => {
                if self.stopping.is_some() {
                    self.driver.close(conn);
                    return;
                }
                let id = LinkId::Socket(conn);
                let connection = self.connection(Side::Acceptor, None, now);
                self.links
                    .insert(id, Link::new(connection, Remote::Tcp(addr), None));
                tracing::debug!("accepted a connection from {addr}");
                self.send_link(id);
            }
            IoEvent::Connected(conn) => self.send_link(LinkId::Socket(conn)),
            IoEvent::ConnectFailed(conn, error) => {
                let id = LinkId::Socket(conn);
                if let Some(link) = self.links.remove(&id)
                    && let Some(peer) = link.peer
                {
                    tracing::warn!("cannot connect to {peer} at {}: {error}", link.remote);
                    self.peers.link_gone(peer, id, now);
                }
            }
            IoEvent::Received(conn) => self.read(LinkId::Socket(conn), now),
            IoEvent::Sent(conn) => self.send_link(LinkId::Socket(conn)),
            IoEvent::Closed(conn, error) => self.finish(LinkId::Socket(conn), error, now),
            IoEvent::Woken => {}
        }
    }

    /// Reads what the link received, as far as the sink lets it.
    fn read(&mut self, id: LinkId, now: Instant) {
        let conn = match id {
            LinkId::Socket(conn) => conn,
            LinkId::Rings(_) => return self.read_rings(id, now),
        };
        loop {
            let Some(link) = self.links.get_mut(&id) else {
                return;
            };
            let Some(bufs) = self.driver.bufs(conn) else {
                return;
            };
            if link.closing {
                return;
            }
            let was_blocked = link.is_blocked();
            #[cfg(feature = "stage-trace")]
            {
                link.trace.read_at = bufs.recv.filled_at();
            }
            let mut need = 0;
            let (consumed, step) = link.receive(
                bufs.recv.data(),
                self.sink.as_mut(),
                &self.stats,
                now,
                &mut need,
            );
            bufs.recv.consume(consumed);
            if need > 0 {
                bufs.recv.reserve(need);
            }
            let more = matches!(step, Step::Authenticated(_));
            if !self.after_step(id, step, was_blocked, now) || !more {
                break;
            }
        }
        // The records reach their executors before the credit for them leaves: sending is
        // a system call of several microseconds.
        self.sink.flush();
        self.send_link(id);
    }

    /// Acts on why reading a link stopped; returns whether the link is still open.
    fn after_step(&mut self, id: LinkId, step: Step, was_blocked: bool, now: Instant) -> bool {
        let Some(link) = self.links.get_mut(&id) else {
            return false;
        };
        let blocked = link.is_blocked();
        if was_blocked != blocked {
            link.conn.set_receive_paused(blocked, now);
            if let LinkId::Socket(conn) = id {
                self.driver.pause_reading(conn, blocked);
            }
            if blocked {
                self.next_sink_retry
                    .get_or_insert(now + self.config.sink_retry());
            }
        }
        match step {
            Step::NeedInput | Step::Blocked => true,
            Step::Authenticated(info) => {
                self.authenticated(id, info);
                true
            }
            Step::PeerClosed(reason) => {
                link.down_reason.get_or_insert(reason);
                self.close_link(id);
                false
            }
            Step::Failed(error) => {
                self.failed(id, &error);
                false
            }
        }
    }

    fn authenticated(&mut self, id: LinkId, info: PeerInfo) {
        let worker = info.worker_id;
        let now = Instant::now();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.peer = Some(worker);
        link.up = true;
        let remote = link.remote.clone();
        self.peers.link_up(worker);
        let previous = self.peers.entry(worker, now).link.replace(id);
        if let Some(old) = previous
            && old != id
        {
            self.drop_link(old, CloseCode::REPLACED, "replaced by a newer connection");
        }
        tracing::info!("connected to {worker} at {remote}");
        self.emit(PeerEvent::Up {
            peer: worker,
            remote,
        });
    }

    /// The link broke the protocol or failed the handshake: log it and close it.
    fn failed(&mut self, id: LinkId, error: &ConnectionError) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let reason = error.to_string();
        match (link.up, link.peer) {
            // Reported as rejected when the link is gone.
            (false, None) => {}
            (false, Some(peer)) => {
                tracing::warn!("handshake with {peer} at {} failed: {reason}", link.remote);
            }
            (true, peer) => {
                let peer = peer.expect("an up link has a peer");
                tracing::warn!("connection to {peer} at {} failed: {reason}", link.remote);
            }
        }
        link.down_reason.get_or_insert(reason);
        self.close_link(id);
    }

    /// Hands the link to the driver to close, after queueing its CLOSE frame.
    fn close_link(&mut self, id: LinkId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.closing {
            return;
        }
        link.closing = true;
        match id {
            LinkId::Socket(conn) => {
                self.send_link(id);
                self.driver.close(conn);
            }
            LinkId::Rings(_) => self.close_rings(id, Instant::now()),
        }
    }

    /// The link is gone: the driver released its socket, or its rings were dropped.
    fn finish(&mut self, id: LinkId, error: Option<std::io::Error>, now: Instant) {
        let Some(link) = self.links.remove(&id) else {
            return;
        };
        let reason = link
            .down_reason
            .clone()
            .or(error.map(|error| format!("connection failed: {error}")))
            .unwrap_or_else(|| "connection closed by the peer".to_owned());
        if let Some(peer) = link.peer {
            if link.up {
                tracing::info!("lost {peer} at {}: {reason}", link.remote);
                self.emit(PeerEvent::Down { peer, reason });
            }
            self.peers.link_gone(peer, id, now);
        } else if self.stopping.is_none() {
            // An accepted connection that never proved the secret: whether it broke the
            // protocol, failed to authenticate or gave up, none of its tuples was read.
            tracing::warn!("rejected connection from {}: {reason}", link.remote);
            self.emit(PeerEvent::Rejected {
                remote: link.remote,
                reason,
            });
        }
    }

    /// Runs the connections' timers, and the housekeeping when it is due (returning
    /// whether it ran).
    fn run_timers(&mut self, now: Instant) -> bool {
        self.scratch.clear();
        for (id, link) in &self.links {
            if link.conn.poll_timeout().is_some_and(|due| due <= now) {
                self.scratch.push(*id);
            }
        }
        let ids = std::mem::take(&mut self.scratch);
        for &id in &ids {
            let Some(link) = self.links.get_mut(&id) else {
                continue;
            };
            if let Err(error) = link.conn.handle_timeout(now) {
                self.failed(id, &error);
            }
        }
        self.scratch = ids;
        if now < self.next_housekeeping {
            return false;
        }
        self.next_housekeeping = now + HOUSEKEEPING;
        for (_, peer) in self.peers.iter_mut() {
            peer.rings
                .retain_mut(|ring| !ring.is_abandoned() || ring.has_records());
        }
        true
    }

    /// Offers the batches the sink refused again: at once when a consumer freed room
    /// (`room`), else when the backstop retry for sinks that never wake is due.
    fn retry_blocked(&mut self, now: Instant, room: bool) {
        if !room && self.next_sink_retry.is_none_or(|due| now < due) {
            return;
        }
        self.next_sink_retry = None;
        self.scratch.clear();
        self.scratch.extend(
            self.links
                .iter()
                .filter(|(_, l)| l.is_blocked())
                .map(|(id, _)| *id),
        );
        let ids = std::mem::take(&mut self.scratch);
        for &id in &ids {
            self.read(id, now);
        }
        self.scratch = ids;
        if self.links.values().any(Link::is_blocked) {
            self.next_sink_retry = Some(now + self.config.sink_retry());
        }
    }

    fn send_all(&mut self) {
        self.scratch.clear();
        self.scratch.extend(self.links.keys().copied());
        let ids = std::mem::take(&mut self.scratch);
        for &id in &ids {
            self.send_link(id);
        }
        self.scratch = ids;
    }

    /// Queues what the link has to send and starts writing it.
    fn send_link(&mut self, id: LinkId) {
        let conn = match id {
            LinkId::Socket(conn) => conn,
            LinkId::Rings(_) => return self.send_rings(id),
        };
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let Some(bufs) = self.driver.bufs(conn) else {
            return;
        };
        let rings = match link.peer.and_then(|peer| self.peers.get_mut(peer)) {
            Some(peer) if peer.link == Some(id) => peer.rings.as_mut_slice(),
            _ => &mut [],
        };
        link.send(&mut bufs.send, rings, &self.stats);
        if bufs.send.queued() > 0 {
            self.driver.flush(conn);
        }
    }

    /// Whether something could be sent right now: the loop must not sleep then.
    fn has_work(&mut self) -> bool {
        if self.rings_have_work() {
            return true;
        }
        for (id, link) in &self.links {
            if link.conn.has_transmit() && !link.closing {
                return true;
            }
            let Some(peer) = link.peer.and_then(|peer| self.peers.get_mut(peer)) else {
                continue;
            };
            if peer.link != Some(*id) || peer.rings.is_empty() {
                continue;
            }
            let queue: Option<&SendQueue> = match id {
                LinkId::Socket(conn) => self.driver.bufs(*conn).map(|bufs| &bufs.send),
                LinkId::Rings(_) => self.ring_links.get(id).map(|io| &io.queue),
            };
            if queue.is_some_and(|queue| link.can_send(queue))
                && peer.rings.iter_mut().any(OutboundRing::has_records)
            {
                return true;
            }
        }
        false
    }

    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let me = self.config.connection().worker_id();
        let links = self
            .links
            .values()
            .filter_map(|link| link.conn.poll_timeout());
        let dials = self.peers.iter().filter_map(|(worker, peer)| {
            (dials(me, *worker, peer.addr.as_ref())
                && peer.link.is_none()
                && self.stopping.is_none())
            .then_some(peer.next_attempt)
        });
        let housekeeping = self
            .peers
            .iter()
            .any(|(_, peer)| !peer.rings.is_empty())
            .then_some(self.next_housekeeping);
        let shm = self.shm_poll_interval().map(|interval| now + interval);
        links
            .chain(dials)
            .chain(housekeeping)
            .chain(self.next_sink_retry)
            .chain(self.stopping)
            .chain(shm)
            .min()
            .map(|due| due.saturating_duration_since(now))
    }
}

/// Whether this worker (`me`) opens the link to `worker` at `addr`: the smaller id dials
/// TCP and asks the in-process hub; both sides look for shared-memory rings (the smaller
/// id creates them, the other opens them).
fn dials(me: WorkerId, worker: WorkerId, addr: Option<&PeerAddr>) -> bool {
    match addr {
        Some(PeerAddr::Tcp(_) | PeerAddr::InProcess) => me < worker,
        Some(PeerAddr::SharedMemory) => true,
        None => false,
    }
}
