//! Links over two record rings, one per direction, instead of a socket: shared-memory ring
//! files between co-located workers, or heap rings between workers of one process that an
//! [`InProcessHub`](super::super::InProcessHub) hands over.
//!
//! Each ring record carries exactly one frame of the wire protocol, so the handshake,
//! credits, heartbeats and closing are those of a TCP connection; only the bytes travel
//! differently. BATCH frames are built straight in the outgoing ring, each record copied
//! once from its executor's outbound ring; control frames, and batches while the ring is
//! full, are built in a send queue, as for TCP, and copied into the ring whole. The peer
//! reads frames in place.
//!
//! - **Shared memory.** Of the two workers, the one with the smaller id creates the ring
//!   files (in [`TransportConfig::shm_dir`]) and removes them when the link ends; the other
//!   opens them once they exist and their creator is attached. Each ring has a named pipe
//!   beside it ([`doorbell`](super::doorbell)): a transport about to sleep announces it in
//!   its incoming ring's header and watches its pipe, and a peer that publishes into that
//!   ring writes a byte into the pipe only then (a fence and a load otherwise). Only a side
//!   whose frames wait for room in a full outgoing ring looks again after 50 µs, since the
//!   peer frees room without waking it. The peer maps the same files, so
//!   everything in them is untrusted input, like bytes from a socket: the rings check every
//!   sequence and record header they read, and a ring found corrupted closes the link with
//!   an error naming the value that was wrong.
//! - **In process.** The worker with the smaller id asks the hub for the link; the hub
//!   makes both rings and leaves the peer's ends for it. After publishing frames, and after
//!   freeing room by releasing frames, a side rings the peer transport's doorbell (a fence
//!   and a load while the peer is busy), and its last check before sleeping looks at its
//!   rings, so no wake-up is lost and nothing polls. The hub's cut and pause flags are read
//!   once per loop iteration.
//!
//! The frames read from a ring go through the same decoder as frames from a socket.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_ringbuf::record::{RecordConsumer, RecordProducer, RecordRing, WriteError};

use super::super::buf::SendQueue;
use super::super::config::TransportConfig;
use super::super::event::Remote;
use super::super::hub::{InProcessEnds, LinkControl};
use super::super::sink::{InboundSink, SinkFull};
use super::super::wake::WakeState;
use super::doorbell::{self, Pipe};
use super::link::{FrameOut, Link};
use super::{EventLoop, LinkId};
use crate::codec::CloseCode;
use crate::conn::Side;
use crate::ids::{ClusterId, WorkerId};

/// How soon a side whose frames wait for room in a full outgoing shared-memory ring looks
/// again: the peer frees room without waking it. This happens only under backpressure.
const ROOM_POLL: Duration = Duration::from_micros(50);

/// Whether BATCH frames are built straight in the outgoing ring. With the stage trace on,
/// they go through the send queue, whose write marks time the frames.
const BATCHES_IN_RING: bool = cfg!(not(feature = "stage-trace"));

/// Builds BATCH frames straight in a link's outgoing ring, one ring record each: a record
/// is copied once, from its executor's outbound ring into the ring the peer reads.
struct RingOut<'a> {
    tx: &'a mut RecordProducer,
    /// The largest frame to build: a send-queue chunk, as for frames built there.
    max_frame: usize,
    /// A frame was written (and waits to be published).
    built: bool,
    /// The ring had no room for a frame of the size asked.
    full: bool,
    error: Option<WriteError>,
}

impl FrameOut for RingOut<'_> {
    fn build(
        &mut self,
        min: usize,
        want: usize,
        build: impl FnOnce(&mut [u8]) -> usize,
    ) -> Option<usize> {
        // A frame takes at most the credit left, and no more than a frame built in the
        // send queue would.
        let len = want
            .min(self.max_frame)
            .max(min)
            .min(self.tx.max_record_len());
        match self.tx.write_some(len, build) {
            Ok(len) => {
                self.built |= len > 0;
                Some(len)
            }
            Err(WriteError::RecordFull) => {
                self.full = true;
                None
            }
            Err(error) => {
                self.error = Some(error);
                None
            }
        }
    }

    fn takes_more(&self) -> bool {
        !self.full && self.error.is_none()
    }

    #[cfg(feature = "stage-trace")]
    fn batch_queued(&mut self, _trace: &mut crate::trace::LinkTrace) {
        unreachable!("with the stage trace on, batches are built in the send queue")
    }
}

/// The path of the ring carrying frames from `from` to `to`.
fn ring_path(dir: &Path, cluster: ClusterId, from: WorkerId, to: WorkerId) -> PathBuf {
    dir.join(format!(
        "squall-{:016x}-{}-to-{}.ring",
        cluster.0, from.0, to.0
    ))
}

/// Where a ring link's rings live.
#[derive(Debug)]
enum RingKind {
    /// Files shared with another process.
    SharedMemory {
        /// The ring files and their pipes, when this side created them (and removes them).
        created: Option<[PathBuf; 4]>,
        /// The incoming ring, for errors.
        rx_path: PathBuf,
        /// The pipe that wakes this side when the peer published into the incoming ring.
        bell_in: Pipe,
        /// The pipe that wakes the peer when this side published into the outgoing ring.
        bell_out: Pipe,
    },
    /// Heap rings from an in-process hub.
    InProcess {
        control: Arc<LinkControl>,
        peer_wake: Arc<WakeState>,
        rx_direction: usize,
    },
}

/// The rings and send queue of one ring link.
#[derive(Debug)]
pub(crate) struct RingIo {
    tx: RecordProducer,
    rx: RecordConsumer,
    pub(crate) queue: SendQueue,
    /// Where the rings are, for logs and events.
    pub(crate) remote: Remote,
    /// Writing to the outgoing ring failed; the link must close.
    failed: bool,
    kind: RingKind,
}

impl RingIo {
    /// Creates both shared-memory rings (replacing stale files) and attaches this side's
    /// ends.
    fn create(config: &TransportConfig, peer: WorkerId) -> io::Result<Self> {
        let me = config.connection().worker_id();
        let cluster = config.connection().cluster_id();
        let dir = config.shm_dir();
        let out = ring_path(dir, cluster, me, peer);
        let back = ring_path(dir, cluster, peer, me);
        let ring_error = io::Error::other;
        for path in [&out, &back] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        // The pipes first: the peer opens the rings only once they exist, and then the
        // pipes with them.
        let (out_bell, back_bell) = (doorbell::pipe_path(&out), doorbell::pipe_path(&back));
        doorbell::create(&out_bell)?;
        doorbell::create(&back_bell)?;
        let bell_out = Pipe::open(&out_bell)?;
        let bell_in = Pipe::open(&back_bell)?;
        let tx = RecordRing::create(&out, config.shm_ring_bytes())
            .and_then(|ring| ring.producer())
            .map_err(ring_error)?;
        let rx = RecordRing::create(&back, config.shm_ring_bytes())
            .and_then(|ring| ring.consumer())
            .map_err(ring_error)?;
        Ok(Self {
            tx,
            rx,
            queue: SendQueue::new(config.send_chunk_bytes()),
            remote: Remote::SharedMemory(out.clone()),
            failed: false,
            kind: RingKind::SharedMemory {
                rx_path: back.clone(),
                created: Some([out, back, out_bell, back_bell]),
                bell_in,
                bell_out,
            },
        })
    }

    /// Opens the shared-memory rings `peer` created, if they exist and `peer` is attached
    /// to them.
    fn open(config: &TransportConfig, peer: WorkerId) -> io::Result<Option<Self>> {
        let me = config.connection().worker_id();
        let cluster = config.connection().cluster_id();
        let dir = config.shm_dir();
        let out = ring_path(dir, cluster, me, peer);
        let back = ring_path(dir, cluster, peer, me);
        if !out.exists() || !back.exists() {
            return Ok(None);
        }
        let ring_error = io::Error::other;
        let rx = RecordRing::attach_consumer(&back).map_err(ring_error)?;
        let tx = RecordRing::attach_producer(&out).map_err(ring_error)?;
        if rx.is_abandoned() || tx.is_abandoned() {
            // Files of a link the creator has left; it will make new ones.
            return Ok(None);
        }
        let bell_out = Pipe::open(&doorbell::pipe_path(&out))?;
        let bell_in = Pipe::open(&doorbell::pipe_path(&back))?;
        Ok(Some(Self {
            tx,
            rx,
            queue: SendQueue::new(config.send_chunk_bytes()),
            remote: Remote::SharedMemory(back.clone()),
            failed: false,
            kind: RingKind::SharedMemory {
                rx_path: back,
                created: None,
                bell_in,
                bell_out,
            },
        }))
    }

    /// This side of an in-process link to `peer`.
    fn in_process(config: &TransportConfig, peer: WorkerId, ends: InProcessEnds) -> Self {
        Self {
            tx: ends.tx,
            rx: ends.rx,
            queue: SendQueue::new(config.send_chunk_bytes()),
            remote: Remote::InProcess(peer),
            failed: false,
            kind: RingKind::InProcess {
                control: ends.control,
                peer_wake: ends.peer_wake,
                rx_direction: ends.rx_direction,
            },
        }
    }

    /// Wakes the peer's transport, if it sleeps, after publishing frames: through its
    /// transport's doorbell in this process, or through its pipe when it announced sleep
    /// in the ring's header.
    fn notify_published(&self) {
        match &self.kind {
            RingKind::InProcess { peer_wake, .. } => peer_wake.notify(),
            RingKind::SharedMemory { bell_out, .. } => {
                if self.tx.consumer_needs_wake() {
                    bell_out.ring();
                }
            }
        }
    }

    /// Wakes the peer's transport after freeing room in the incoming ring, for an
    /// in-process link. The peer of a shared-memory link looks again soon while it has
    /// frames waiting for room (`shm_poll_interval`).
    fn notify_room_freed(&self) {
        if let RingKind::InProcess { peer_wake, .. } = &self.kind {
            peer_wake.notify();
        }
    }

    /// The pipe that wakes this side, for a shared-memory link.
    pub(super) fn bell_in(&self) -> Option<&Pipe> {
        match &self.kind {
            RingKind::SharedMemory { bell_in, .. } => Some(bell_in),
            RingKind::InProcess { .. } => None,
        }
    }

    /// Whether the hub cut this link.
    fn is_cut(&self) -> bool {
        matches!(&self.kind, RingKind::InProcess { control, .. } if control.is_cut())
    }

    /// Whether the hub paused the incoming direction: records are refused as a full
    /// sink refuses them.
    fn receiving_paused(&self) -> bool {
        matches!(&self.kind, RingKind::InProcess { control, rx_direction, .. }
            if control.is_paused(*rx_direction))
    }

    /// Whether a frame waits in the incoming ring (without taking it).
    fn has_incoming(&mut self) -> bool {
        let batch = self.rx.read(1);
        let any = !batch.is_empty();
        // Forgetting the batch releases nothing: the frame stays for the next read.
        std::mem::forget(batch);
        any
    }

    /// The incoming ring, for errors.
    fn rx_name(&self) -> String {
        match &self.kind {
            RingKind::SharedMemory { rx_path, .. } => {
                format!("shared-memory ring {}", rx_path.display())
            }
            RingKind::InProcess { .. } => format!("{} (incoming)", self.remote),
        }
    }

    /// Moves whole frames from the send queue into the outgoing ring, one record each;
    /// returns how many bytes moved.
    fn flush(&mut self) -> io::Result<usize> {
        let mut moved = 0;
        'segments: for segment in self.queue.segments() {
            let mut rest = segment;
            while let Some(len_bytes) = rest.first_chunk::<4>() {
                let len = u32::from_le_bytes(*len_bytes) as usize;
                let frame = &rest[..len];
                match self.tx.write(frame) {
                    Ok(()) => {
                        moved += len;
                        rest = &rest[len..];
                    }
                    Err(WriteError::RecordFull) => break 'segments,
                    Err(error @ (WriteError::RecordTooLarge { .. } | WriteError::Corrupted(_))) => {
                        return Err(io::Error::other(error));
                    }
                }
            }
        }
        if moved > 0 {
            self.tx.publish();
            self.queue.advance(moved);
            self.notify_published();
        }
        Ok(moved)
    }

    /// Whether the peer left: it detached from a ring, or its process died.
    fn peer_gone(&self) -> bool {
        self.rx.is_abandoned() || self.tx.is_abandoned()
    }
}

/// The sink of a direction the hub paused: it takes nothing.
struct Paused;

impl InboundSink for Paused {
    fn deliver(&mut self, _dest_task: u32, _record: &[u8]) -> Result<(), SinkFull> {
        Err(SinkFull)
    }
}

impl Drop for RingIo {
    fn drop(&mut self) {
        if let RingKind::SharedMemory {
            created: Some(paths),
            ..
        } = &self.kind
        {
            for path in paths {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl EventLoop {
    /// Opens a shared-memory link to `peer`: creates the rings when this worker has the
    /// smaller id, else opens those the peer created. Returns whether a link now exists.
    pub(super) fn dial_shm(&mut self, peer: WorkerId, now: Instant) -> bool {
        let me = self.config.connection().worker_id();
        let opened = if me < peer {
            RingIo::create(&self.config, peer).map(Some)
        } else {
            RingIo::open(&self.config, peer)
        };
        match opened {
            Ok(Some(io)) => {
                self.add_ring_link(peer, io, now);
                tracing::debug!("shared-memory link to {peer} opened");
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!("cannot open shared-memory rings to {peer}: {error}");
                false
            }
        }
    }

    /// Asks the hub for an in-process link to `peer` (this worker has the smaller id).
    /// Returns whether a link now exists.
    pub(super) fn dial_in_process(&mut self, peer: WorkerId, now: Instant) -> bool {
        let ring_bytes = self.config.in_process_ring_bytes();
        let Some(ends) = self
            .in_process
            .as_ref()
            .and_then(|hub| hub.connect(peer, ring_bytes))
        else {
            return false;
        };
        let io = RingIo::in_process(&self.config, peer, ends);
        self.add_ring_link(peer, io, now);
        tracing::debug!("in-process link to {peer} opened");
        true
    }

    /// Acts on what the hub has for this transport: takes the links peers made for it,
    /// and dials at once the peers it may link with again.
    pub(super) fn hub_news(&mut self, now: Instant) {
        let Some(hub) = &self.in_process else {
            return;
        };
        if !hub.take_news() || self.stopping.is_some() {
            return;
        }
        let offers = hub.take_offers();
        let me = self.config.connection().worker_id();
        let retry: Vec<WorkerId> = self
            .peers
            .iter()
            .filter(|(worker, peer)| {
                peer.addr == Some(super::PeerAddr::InProcess)
                    && me < **worker
                    && peer.link.is_none()
                    && hub.may_link(**worker)
            })
            .map(|(worker, _)| *worker)
            .collect();
        for worker in retry {
            self.peers.retry_now(worker, now);
        }
        for (peer, ends) in offers {
            if let Some(old) = self.peers.get_mut(peer).and_then(|entry| entry.link) {
                self.drop_link(old, CloseCode::REPLACED, "replaced by a newer connection");
            }
            let io = RingIo::in_process(&self.config, peer, ends);
            self.add_ring_link(peer, io, now);
            tracing::debug!("in-process link from {peer} taken");
        }
    }

    fn add_ring_link(&mut self, peer: WorkerId, io: RingIo, now: Instant) {
        if let Some(bell) = io.bell_in()
            && let Err(error) = self.driver.watch(bell.fd())
        {
            // Without its pipe the link still works: the loop then looks at the ring
            // whenever it wakes for anything else, and at least every housekeeping round.
            tracing::warn!("cannot watch the shared-memory doorbell from {peer}: {error}");
        }
        let me = self.config.connection().worker_id();
        self.next_ring_link += 1;
        let id = LinkId::Rings(self.next_ring_link);
        let side = if me < peer {
            Side::Initiator
        } else {
            Side::Acceptor
        };
        let connection = self.connection(side, Some(peer), now);
        let remote = io.remote.clone();
        self.links
            .insert(id, Link::new(connection, remote, Some(peer)));
        self.ring_links.insert(id, io);
        self.peers.entry(peer, now).link = Some(id);
        self.send_link(id);
    }

    /// Reads every frame waiting in the link's incoming ring, as far as the sink lets it.
    pub(super) fn read_rings(&mut self, id: LinkId, now: Instant) {
        loop {
            let (Some(link), Some(io)) = (self.links.get_mut(&id), self.ring_links.get_mut(&id))
            else {
                return;
            };
            if link.closing {
                return;
            }
            let was_blocked = link.is_blocked();
            let paused = io.receiving_paused();
            let batch = io.rx.read(1);
            let Some(frame) = batch.iter().next() else {
                drop(batch);
                if let Some(corruption) = io.rx.corruption() {
                    let reason =
                        format!("the incoming {} is corrupted: {corruption}", io.rx_name());
                    link.shut(CloseCode::PROTOCOL_ERROR, reason);
                    self.close_link(id);
                }
                return;
            };
            #[cfg(feature = "stage-trace")]
            {
                link.trace.read_at = crate::trace::now_ns();
            }
            let mut need = 0;
            // A paused direction is a consumer that stopped: its records are refused and
            // wait, control frames still pass, and reading stops at the first batch.
            let sink: &mut dyn InboundSink = if paused {
                &mut Paused
            } else {
                self.sink.as_mut()
            };
            let (consumed, step) = link.receive(frame, sink, &self.stats, now, &mut need);
            let whole = consumed == frame.len();
            if whole {
                batch.release();
                io.notify_room_freed();
            } else {
                // The frame stays in the ring until its records are delivered: forgetting
                // the batch releases nothing.
                std::mem::forget(batch);
            }
            if !self.after_step(id, step, was_blocked, now) {
                return;
            }
            if !whole && !self.links.get(&id).is_some_and(Link::is_blocked) {
                let link = self.links.get_mut(&id).expect("still open");
                link.shut(
                    CloseCode::PROTOCOL_ERROR,
                    "a ring record does not hold exactly one frame".to_owned(),
                );
                self.close_link(id);
                return;
            }
            if !whole {
                return;
            }
        }
    }

    /// Queues the link's frames and moves them into its outgoing ring.
    pub(super) fn send_rings(&mut self, id: LinkId) {
        let (Some(link), Some(io)) = (self.links.get_mut(&id), self.ring_links.get_mut(&id)) else {
            return;
        };
        let rings = match link.peer.and_then(|peer| self.peers.get_mut(peer)) {
            Some(peer) if peer.link == Some(id) => peer.rings.as_mut_slice(),
            _ => &mut [],
        };
        link.send_control(&mut io.queue, rings, &self.stats);
        // Queued frames go first. Batches are then built straight in the outgoing ring, and
        // in the queue only while the ring is full (the queue then waits for room).
        let mut result = if io.queue.queued() > 0 {
            io.flush()
        } else {
            Ok(0)
        };
        let mut ring_full = false;
        if BATCHES_IN_RING && result.is_ok() && io.queue.queued() == 0 {
            let mut out = RingOut {
                max_frame: io.queue.chunk_size(),
                tx: &mut io.tx,
                built: false,
                full: false,
                error: None,
            };
            link.send_batches(&mut out, rings, &self.stats);
            let RingOut {
                built, full, error, ..
            } = out;
            if built {
                io.tx.publish();
                io.notify_published();
            }
            ring_full = full;
            if let Some(error) = error {
                result = Err(io::Error::other(error));
            }
        }
        if result.is_ok() && (!BATCHES_IN_RING || ring_full || io.queue.queued() > 0) {
            link.send_batches(&mut io.queue, rings, &self.stats);
            if io.queue.queued() > 0 {
                result = io.flush();
            }
        }
        if let Err(error) = result {
            let reason = format!("cannot write to the outgoing ring: {error}");
            link.down_reason.get_or_insert(reason);
            io.failed = true;
        }
    }

    /// Ends a ring link at once: its CLOSE (if any) is in the ring already. The peer of an
    /// in-process link is woken to notice.
    pub(super) fn close_rings(&mut self, id: LinkId, now: Instant) {
        self.send_rings(id);
        if let Some(io) = self.ring_links.remove(&id) {
            if let Some(bell) = io.bell_in() {
                self.driver.unwatch(bell.fd());
            }
            let peer_wake = match &io.kind {
                RingKind::InProcess { peer_wake, .. } => Some(Arc::clone(peer_wake)),
                RingKind::SharedMemory { .. } => None,
            };
            // Detaches this side's ends first, so the woken peer finds them gone.
            drop(io);
            if let Some(peer_wake) = peer_wake {
                peer_wake.notify();
            }
        }
        self.finish(id, None, now);
    }

    /// Looks at every ring link: reads what arrived, notices peers that left and links
    /// the hub cut. Peers of shared-memory links are checked only when `check_peers`
    /// (a system call each); those of in-process links every time (a load).
    pub(super) fn poll_rings(&mut self, now: Instant, check_peers: bool) {
        self.scratch.clear();
        self.scratch.extend(self.ring_links.keys().copied());
        let ids = std::mem::take(&mut self.scratch);
        for &id in &ids {
            let Some(io) = self.ring_links.get(&id) else {
                continue;
            };
            let gone = if io.is_cut() {
                Some("the in-process hub cut the link")
            } else if (check_peers || io.bell_in().is_none()) && io.peer_gone() {
                Some("the peer left the rings")
            } else {
                None
            };
            if let Some(reason) = gone {
                if let Some(link) = self.links.get_mut(&id) {
                    link.down_reason.get_or_insert_with(|| reason.to_owned());
                }
                self.close_link(id);
                continue;
            }
            let blocked = self.links.get(&id).is_some_and(Link::is_blocked);
            if !blocked {
                self.read_rings(id, now);
            }
            if self.ring_links.get(&id).is_some_and(|io| io.failed) {
                self.close_link(id);
            }
        }
        self.scratch = ids;
    }

    /// Whether a ring link has something to do right now: the loop must not sleep then.
    /// Moves queued frames into rings that have room again. Called right before the loop
    /// sleeps: each shared-memory link first drains its pipe and announces the sleep in its
    /// incoming ring's header, then looks at the ring, so a frame the peer publishes
    /// afterwards wakes this thread through the pipe (`rings_awake` withdraws it).
    pub(super) fn rings_have_work(&mut self) -> bool {
        let mut work = false;
        for (id, io) in &mut self.ring_links {
            if let Some(bell) = io.bell_in() {
                bell.drain();
                io.rx.prepare_sleep();
            }
            let readable = !self.links.get(id).is_some_and(Link::is_blocked) && io.has_incoming();
            let moved = io.queue.queued() > 0 && io.flush().is_ok_and(|moved| moved > 0);
            // The peer of a shared-memory link is checked on housekeeping rounds (a system
            // call); that of an in-process link here (a load).
            let gone = io.bell_in().is_none() && (io.is_cut() || io.peer_gone());
            work |= readable || moved || gone;
        }
        work
    }

    /// After the loop's wait: its shared-memory peers need not wake it any more.
    pub(super) fn rings_awake(&mut self) {
        for io in self.ring_links.values() {
            if io.bell_in().is_some() {
                io.rx.awake();
            }
        }
    }

    /// How long the loop may sleep before looking at its shared-memory links again: a
    /// short while when frames wait for room in a full outgoing ring (its peer frees room
    /// without waking this side), else without limit (frames that arrive ring the pipe).
    pub(super) fn shm_poll_interval(&self) -> Option<Duration> {
        self.ring_links
            .values()
            .any(|io| io.bell_in().is_some() && io.queue.queued() > 0)
            .then_some(ROOM_POLL)
    }
}
