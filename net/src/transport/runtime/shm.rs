//! Links between co-located workers through two shared-memory record rings, one per
//! direction, instead of a socket.
//!
//! Each ring record carries exactly one frame of the wire protocol, so the handshake,
//! credits, heartbeats and closing are those of a TCP connection; only the bytes travel
//! differently. Of the two workers, the one with the smaller id creates the ring files (in
//! [`TransportConfig::shm_dir`]) and removes them when the link ends; the other opens them
//! once they exist and their creator is attached.
//!
//! Frames are built in a send queue, as for TCP, and copied into the outgoing ring whole;
//! the peer reads them in place. Neither process can wake the other, so the transport
//! polls its shared-memory rings: every 50 µs while they carry traffic, every 2 ms once
//! they have been idle for 10 ms.
//!
//! The peer maps the same files, so everything in them is untrusted input, like bytes
//! from a socket: the rings check every sequence and record header they read, and a ring
//! found corrupted closes the link with an error naming the value that was wrong. The
//! frames read from the ring go through the same decoder as frames from a socket.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use squall_ringbuf::record::{RecordConsumer, RecordProducer, RecordRing, WriteError};

use super::super::buf::SendQueue;
use super::super::config::TransportConfig;
use super::super::event::Remote;
use super::link::Link;
use super::{EventLoop, LinkId};
use crate::codec::CloseCode;
use crate::conn::Side;
use crate::ids::{ClusterId, WorkerId};

/// Poll interval while shared-memory links carry traffic.
const BUSY_POLL: Duration = Duration::from_micros(50);
/// Poll interval once they have been idle for [`IDLE_AFTER`].
const IDLE_POLL: Duration = Duration::from_millis(2);
const IDLE_AFTER: Duration = Duration::from_millis(10);

/// The path of the ring carrying frames from `from` to `to`.
fn ring_path(dir: &Path, cluster: ClusterId, from: WorkerId, to: WorkerId) -> PathBuf {
    dir.join(format!(
        "squall-{:016x}-{}-to-{}.ring",
        cluster.0, from.0, to.0
    ))
}

/// The rings and send queue of one shared-memory link.
#[derive(Debug)]
pub(crate) struct ShmIo {
    tx: RecordProducer,
    rx: RecordConsumer,
    pub(crate) queue: SendQueue,
    /// The ring files, when this side created them (and removes them).
    created: Option<[PathBuf; 2]>,
    /// Where the rings are, for logs and events.
    pub(crate) remote: Remote,
    /// The incoming ring, for errors.
    rx_path: PathBuf,
    /// Writing to the outgoing ring failed; the link must close.
    failed: bool,
}

impl ShmIo {
    /// Creates both rings (replacing stale files) and attaches this side's ends.
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
            rx_path: back.clone(),
            created: Some([out, back]),
            failed: false,
        })
    }

    /// Opens the rings `peer` created, if they exist and `peer` is attached to them.
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
        Ok(Some(Self {
            tx,
            rx,
            queue: SendQueue::new(config.send_chunk_bytes()),
            remote: Remote::SharedMemory(back.clone()),
            rx_path: back,
            created: None,
            failed: false,
        }))
    }

    /// Moves whole frames from the send queue into the outgoing ring, one record each.
    fn flush(&mut self) -> io::Result<()> {
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
        }
        Ok(())
    }

    /// Whether the peer left: it detached from a ring, or its process died.
    fn peer_gone(&self) -> bool {
        self.rx.is_abandoned() || self.tx.is_abandoned()
    }
}

impl Drop for ShmIo {
    fn drop(&mut self) {
        if let Some(paths) = &self.created {
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
            ShmIo::create(&self.config, peer).map(Some)
        } else {
            ShmIo::open(&self.config, peer)
        };
        let io = match opened {
            Ok(Some(io)) => io,
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!("cannot open shared-memory rings to {peer}: {error}");
                return false;
            }
        };
        self.next_shm += 1;
        let id = LinkId::Shm(self.next_shm);
        let side = if me < peer {
            Side::Initiator
        } else {
            Side::Acceptor
        };
        let connection = self.connection(side, Some(peer), now);
        let remote = io.remote.clone();
        self.links
            .insert(id, Link::new(connection, remote, Some(peer)));
        self.shm.insert(id, io);
        self.peers.entry(peer, now).link = Some(id);
        self.shm_active = now;
        tracing::debug!("shared-memory link to {peer} opened");
        self.send_link(id);
        true
    }

    /// Reads every frame waiting in the link's incoming ring, as far as the sink lets it.
    pub(super) fn read_shm(&mut self, id: LinkId, now: Instant) {
        loop {
            let (Some(link), Some(io)) = (self.links.get_mut(&id), self.shm.get_mut(&id)) else {
                return;
            };
            if link.closing {
                return;
            }
            let was_blocked = link.is_blocked();
            let batch = io.rx.read(1);
            let Some(frame) = batch.iter().next() else {
                drop(batch);
                if let Some(corruption) = io.rx.corruption() {
                    link.shut(
                        CloseCode::PROTOCOL_ERROR,
                        format!(
                            "the incoming shared-memory ring {} is corrupted: {corruption}",
                            io.rx_path.display()
                        ),
                    );
                    self.close_link(id);
                }
                return;
            };
            self.shm_active = now;
            #[cfg(feature = "stage-trace")]
            {
                link.trace.read_at = crate::trace::now_ns();
            }
            let mut need = 0;
            let (consumed, step) =
                link.receive(frame, self.sink.as_mut(), &self.stats, now, &mut need);
            let whole = consumed == frame.len();
            if whole {
                batch.release();
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
                    "a shared-memory record does not hold exactly one frame".to_owned(),
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
    pub(super) fn send_shm(&mut self, id: LinkId) {
        let (Some(link), Some(io)) = (self.links.get_mut(&id), self.shm.get_mut(&id)) else {
            return;
        };
        let rings = match link.peer.and_then(|peer| self.peers.get_mut(peer)) {
            Some(peer) if peer.link == Some(id) => peer.rings.as_mut_slice(),
            _ => &mut [],
        };
        link.send(&mut io.queue, rings, &self.stats);
        if io.queue.queued() > 0 {
            if let Err(error) = io.flush() {
                let reason = format!("cannot write to the shared-memory ring: {error}");
                link.down_reason.get_or_insert(reason);
                io.failed = true;
            } else {
                self.shm_active = Instant::now();
            }
        }
    }

    /// Ends a shared-memory link at once: its CLOSE (if any) is in the ring already.
    pub(super) fn close_shm(&mut self, id: LinkId, now: Instant) {
        self.send_shm(id);
        self.shm.remove(&id);
        self.finish(id, None, now);
    }

    /// Polls every shared-memory link: reads what arrived, notices peers that left.
    pub(super) fn poll_shm(&mut self, now: Instant, check_peers: bool) {
        self.scratch.clear();
        self.scratch.extend(self.shm.keys().copied());
        let ids = std::mem::take(&mut self.scratch);
        for &id in &ids {
            if check_peers
                && let Some(io) = self.shm.get(&id)
                && io.peer_gone()
            {
                if let Some(link) = self.links.get_mut(&id) {
                    link.down_reason
                        .get_or_insert_with(|| "the peer left the shared-memory rings".to_owned());
                }
                self.close_link(id);
                continue;
            }
            let blocked = self.links.get(&id).is_some_and(Link::is_blocked);
            if !blocked {
                self.read_shm(id, now);
            }
            if self.shm.get(&id).is_some_and(|io| io.failed) {
                self.close_link(id);
            }
        }
        self.scratch = ids;
    }

    /// How long the loop may sleep before polling its shared-memory links again.
    pub(super) fn shm_poll_interval(&self, now: Instant) -> Option<Duration> {
        if self.shm.is_empty() {
            None
        } else if now.saturating_duration_since(self.shm_active) < IDLE_AFTER {
            Some(BUSY_POLL)
        } else {
            Some(IDLE_POLL)
        }
    }
}
