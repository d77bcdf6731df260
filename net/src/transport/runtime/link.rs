//! One connection's protocol work on top of its byte streams: reading frames and handing
//! records to the sink, and building frames from the peer's outbound rings.

use std::time::Instant;

use super::super::buf::SendQueue;
use super::super::event::Remote;
use super::super::outbound::{Gathered, OutboundRing};
use super::super::sink::InboundSink;
use super::super::stats::Stats;
use crate::codec::{
    BATCH_HEADER_LEN, BatchPosition, BatchView, CloseCode, HEADER_LEN, Needed, RECORD_HEADER_LEN,
    record_size,
};
use crate::conn::{Connection, ConnectionError, Event, MAX_CONTROL_BYTES, PeerInfo, Received};
use crate::ids::WorkerId;
#[cfg(feature = "stage-trace")]
use crate::trace::LinkTrace;

/// Frames are not started in less room than this at the end of a send-queue chunk; a
/// fresh chunk is taken instead, so that frames do not shrink to a few records.
const MIN_BATCH_ROOM: usize = 4096;

/// Bytes queued for the socket above which no more batches are built until it drains.
pub(crate) const SEND_HIGH_WATER_CHUNKS: usize = 2;

/// Where a connection's BATCH frames are built: at the tail of its send queue, or straight
/// in the outgoing ring of a ring link.
pub(crate) trait FrameOut {
    /// Calls `build` with room for frames, at least `min` bytes and, if it can, `want`
    /// (what the next frame may take), and keeps the bytes it reports; `None`, without
    /// calling `build`, when there is no such room now.
    fn build(
        &mut self,
        min: usize,
        want: usize,
        build: impl FnOnce(&mut [u8]) -> usize,
    ) -> Option<usize>;

    /// Whether another frame may be built now.
    fn takes_more(&self) -> bool;

    /// The frame just built holds the traced records `trace` picked up.
    #[cfg(feature = "stage-trace")]
    fn batch_queued(&mut self, trace: &mut LinkTrace);
}

impl FrameOut for SendQueue {
    fn build(
        &mut self,
        min: usize,
        _want: usize,
        build: impl FnOnce(&mut [u8]) -> usize,
    ) -> Option<usize> {
        let n = build(self.space(min)?);
        self.commit(n);
        Some(n)
    }

    fn takes_more(&self) -> bool {
        self.queued() < SEND_HIGH_WATER_CHUNKS * self.chunk_size()
    }

    #[cfg(feature = "stage-trace")]
    fn batch_queued(&mut self, trace: &mut LinkTrace) {
        trace.batch_queued(&mut self.marks);
    }
}

/// A batch whose records the sink could not all take yet: the frame stays at the head of
/// the receive buffer until they are delivered.
#[derive(Debug, Clone, Copy)]
struct Blocked {
    frame_len: usize,
    position: BatchPosition,
}

/// What reading stopped at.
#[derive(Debug)]
pub(crate) enum Step {
    /// Everything complete was read; more bytes are needed.
    NeedInput,
    /// The sink is full; reading is paused until it takes the rest of a batch.
    Blocked,
    /// The peer proved the secret; call `receive` again for the bytes after it.
    Authenticated(PeerInfo),
    /// The peer closed the connection.
    PeerClosed(String),
    /// The peer broke the protocol or failed to authenticate; a CLOSE is queued.
    Failed(ConnectionError),
}

/// One connection: its protocol state and what the loop knows about it.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) conn: Connection,
    pub(crate) remote: Remote,
    /// The worker dialled, or the authenticated peer.
    pub(crate) peer: Option<WorkerId>,
    /// Reported up to the caller, and not yet down.
    pub(crate) up: bool,
    /// Why the link is going away, once it is.
    pub(crate) down_reason: Option<String>,
    /// Handed to the driver to close.
    pub(crate) closing: bool,
    /// The next record needs more credit than the peer granted so far; nothing can be sent
    /// before its next CREDIT.
    starved: bool,
    /// Running out of credit was counted, and no CREDIT came since.
    credit_exhaustion_counted: bool,
    blocked: Option<Blocked>,
    next_ring: usize,
    #[cfg(feature = "stage-trace")]
    pub(crate) trace: LinkTrace,
}

impl Link {
    pub(crate) fn new(conn: Connection, remote: Remote, peer: Option<WorkerId>) -> Self {
        Self {
            conn,
            remote,
            peer,
            up: false,
            down_reason: None,
            closing: false,
            starved: false,
            credit_exhaustion_counted: false,
            blocked: None,
            next_ring: 0,
            #[cfg(feature = "stage-trace")]
            trace: LinkTrace::default(),
        }
    }

    /// This worker's id and the peer's, for trace keys.
    #[cfg(feature = "stage-trace")]
    fn trace_ends(&self) -> (u64, u64) {
        let me = self.conn.config().worker_id().0;
        (
            me,
            self.conn.peer().map_or(u64::MAX, |peer| peer.worker_id.0),
        )
    }

    /// Every record of the frame just received was delivered.
    #[cfg(feature = "stage-trace")]
    fn trace_frame_delivered(&mut self) {
        let limit = self.conn.limit_returning_received();
        self.trace.frame_delivered(limit);
    }

    /// Whether a batch waits for room in the sink.
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// Reads frames from `data`, handing batch records to `sink`. Returns the bytes to
    /// consume from the receive buffer and why it stopped; `need` is set to the length of
    /// a frame that does not fit the buffer yet.
    pub(crate) fn receive(
        &mut self,
        data: &[u8],
        sink: &mut dyn InboundSink,
        stats: &Stats,
        now: Instant,
        need: &mut usize,
    ) -> (usize, Step) {
        let mut consumed = 0;
        if let Some(blocked) = self.blocked {
            let body = &data[HEADER_LEN..blocked.frame_len];
            let view = BatchView::trusted(body);
            match self.deliver(view, blocked.position, sink) {
                Some(position) => {
                    self.blocked = Some(Blocked {
                        position,
                        ..blocked
                    });
                    return (0, Step::Blocked);
                }
                None => {
                    self.blocked = None;
                    stats.batch_received(view.len(), blocked.frame_len);
                    self.conn.batch_delivered(blocked.frame_len);
                    #[cfg(feature = "stage-trace")]
                    self.trace_frame_delivered();
                    consumed = blocked.frame_len;
                }
            }
        }
        loop {
            let input = &data[consumed..];
            let (len, event) = match self.conn.receive(input, now) {
                Ok(Received::Frame { len, event }) => (len, event),
                Ok(Received::Incomplete(needed)) => {
                    if let Needed::Exactly(more) = needed {
                        *need = input.len() + more;
                    }
                    return (consumed, Step::NeedInput);
                }
                Err(error) => return (consumed, Step::Failed(error)),
            };
            match event {
                None => consumed += len,
                Some(Event::CreditGranted { .. }) => {
                    self.starved = false;
                    self.credit_exhaustion_counted = false;
                    consumed += len;
                }
                Some(Event::Batch(view)) => {
                    if let Some(position) = self.deliver(view, view.iter().position(), sink) {
                        self.blocked = Some(Blocked {
                            frame_len: len,
                            position,
                        });
                        return (consumed, Step::Blocked);
                    }
                    stats.batch_received(view.len(), len);
                    self.conn.batch_delivered(len);
                    #[cfg(feature = "stage-trace")]
                    self.trace_frame_delivered();
                    consumed += len;
                }
                Some(Event::Authenticated(peer)) => {
                    return (consumed + len, Step::Authenticated(peer));
                }
                Some(Event::PeerClosed { code, reason }) => {
                    let reason = format!("peer closed the connection: {reason} [{code}]");
                    return (consumed + len, Step::PeerClosed(reason));
                }
            }
        }
    }

    /// Queues the connection's control frames, then BATCH frames gathered from `rings`
    /// while the peer's credit and the send queue allow. Records longer than the peer
    /// accepts are dropped, counted and logged.
    pub(crate) fn send(
        &mut self,
        queue: &mut SendQueue,
        rings: &mut [OutboundRing],
        stats: &Stats,
    ) {
        self.send_control(queue, rings, stats);
        self.send_batches(queue, rings, stats);
    }

    /// Queues the connection's control frames, and counts running out of credit while
    /// records wait in `rings`.
    pub(crate) fn send_control(
        &mut self,
        queue: &mut SendQueue,
        rings: &mut [OutboundRing],
        stats: &Stats,
    ) {
        if self.conn.has_transmit()
            && let Some(space) = queue.space(MAX_CONTROL_BYTES)
        {
            let n = self.conn.poll_transmit(space);
            queue.commit(n);
        }
        if self.out_of_credit()
            && !self.credit_exhaustion_counted
            && rings.iter_mut().any(OutboundRing::has_records)
        {
            self.credit_exhaustion_counted = true;
            stats.credit_exhausted();
        }
        #[cfg(feature = "stage-trace")]
        self.trace
            .control_queued(self.conn.limit_handed_out(), &mut queue.marks);
    }

    /// Builds BATCH frames in `out`, gathered from `rings`, while the peer's credit and
    /// `out` allow. Records longer than the peer accepts are dropped, counted and logged.
    pub(crate) fn send_batches(
        &mut self,
        out: &mut impl FrameOut,
        rings: &mut [OutboundRing],
        stats: &Stats,
    ) {
        let mut dropped = 0;
        if !self.may_send() || !out.takes_more() || rings.is_empty() {
            return;
        }
        let max_record = self.conn.peer().map_or(0, |peer| {
            peer.max_frame_len as usize - BATCH_HEADER_LEN - RECORD_HEADER_LEN
        });
        let mut min_room = MIN_BATCH_ROOM;
        #[cfg(feature = "stage-trace")]
        let (me, peer) = self.trace_ends();
        while self.may_send() && out.takes_more() {
            let mut next = None;
            let mut records = None;
            let (conn, next_ring) = (&mut self.conn, &mut self.next_ring);
            #[cfg(feature = "stage-trace")]
            let trace = &mut self.trace;
            let want = conn.batch_room();
            let built = out.build(min_room, want, |space| {
                let Some(mut batch) = conn.start_batch(space) else {
                    return 0;
                };
                for i in 0..rings.len() {
                    let ring = &mut rings[(*next_ring + i) % rings.len()];
                    let gathered = ring.gather(&mut batch, max_record, &mut dropped);
                    #[cfg(feature = "stage-trace")]
                    trace.picked_up(ring.pickups(), me, peer);
                    if let Gathered::BatchFull(len) = gathered {
                        next = Some(len);
                        break;
                    }
                }
                *next_ring = next_ring.wrapping_add(1);
                records = Some(batch.count());
                conn.finish_batch(batch)
            });
            let (Some(sent), Some(records)) = (built, records) else {
                return;
            };
            #[cfg(feature = "stage-trace")]
            out.batch_queued(&mut self.trace);
            if sent > 0 {
                stats.batch_sent(records, sent);
            }
            if dropped > 0 {
                stats.dropped(dropped);
                tracing::error!(
                    "dropped {dropped} records to {} that exceed the largest frame it accepts",
                    self.remote
                );
                dropped = 0;
            }
            match next {
                None => return,
                Some(len) if sent == 0 => {
                    // The next record did not fit an empty batch here: take fresh room if
                    // that gives it enough, else wait for credit.
                    let needed = BATCH_HEADER_LEN + record_size(len);
                    if needed > self.conn.batch_room() {
                        self.starved = true;
                        return;
                    }
                    if min_room >= needed {
                        return;
                    }
                    min_room = needed;
                }
                Some(_) => min_room = MIN_BATCH_ROOM,
            }
        }
    }

    /// Whether the peer's credit stops this connection from sending a record: it granted
    /// some (before its opening CREDIT, the wait is the handshake's), and too little.
    fn out_of_credit(&self) -> bool {
        let (_, limit) = self.conn.send_credit();
        self.conn.is_established()
            && !self.closing
            && limit > 0
            && (self.starved || self.conn.batch_room() < BATCH_HEADER_LEN + RECORD_HEADER_LEN)
    }

    /// Whether the connection may take another batch now.
    pub(crate) fn can_send(&self, queue: &SendQueue) -> bool {
        self.may_send() && queue.takes_more()
    }

    /// Whether the connection's state and credit let it send another batch now.
    fn may_send(&self) -> bool {
        self.conn.is_established()
            && !self.closing
            && !self.starved
            && self.conn.batch_room() >= BATCH_HEADER_LEN + RECORD_HEADER_LEN
    }

    /// Starts closing: queues a CLOSE (unless the connection already closed) and records
    /// why the link goes down.
    pub(crate) fn shut(&mut self, code: CloseCode, reason: String) {
        self.conn.close(code, &reason);
        self.down_reason.get_or_insert(reason);
    }
}

impl Link {
    /// Delivers the records of `view` from `position` on; returns where it stopped if the
    /// sink filled up.
    fn deliver(
        &mut self,
        view: BatchView<'_>,
        position: BatchPosition,
        sink: &mut dyn InboundSink,
    ) -> Option<BatchPosition> {
        let mut records = view.iter_from(position);
        loop {
            let before = records.position();
            let record = records.next()?;
            #[cfg(feature = "stage-trace")]
            if crate::trace::is_marked(record.dest_task) {
                if self.deliver_traced(record, sink).is_err() {
                    return Some(before);
                }
                continue;
            }
            if sink.deliver(record.dest_task, record.bytes).is_err() {
                return Some(before);
            }
        }
    }

    /// Delivers a traced record without its mark, numbering it in arrival order.
    #[cfg(feature = "stage-trace")]
    #[cold]
    fn deliver_traced(
        &mut self,
        record: crate::codec::Record<'_>,
        sink: &mut dyn InboundSink,
    ) -> Result<(), super::super::sink::SinkFull> {
        let (me, peer) = self.trace_ends();
        let key = self.trace.next_received(peer, me);
        let task = record.dest_task & !crate::trace::MARK;
        sink.deliver_traced(task, record.bytes, key)?;
        self.trace.delivered(key);
        Ok(())
    }
}
