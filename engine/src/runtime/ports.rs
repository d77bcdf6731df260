//! Where records leave an executor thread: a ring to another thread of the worker (or back
//! to the same thread for its own tasks), or an outbound ring to the transport for a peer
//! worker — each with an overflow buffer for when the ring is full, so that writing never
//! blocks and never drops.
//!
//! [`OutputPort::write`] lends the bytes of a record of known length for the caller to
//! encode the tuple into. Into a ring with room and no backlog (the common case) the bytes
//! lent are the ring's own, so a tuple is encoded exactly once, in place.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use squall_net::transport::{Outbound, OutboundError};
use squall_ringbuf::WaitStrategy;
use squall_ringbuf::record::{RecordProducer, WriteError};

use crate::ids::TaskId;
use crate::metrics::RingCounters;
use crate::tuple::{HEADER_BYTES, mark_packed};

/// The ring behind a port.
enum PortRing {
    /// To a thread of this worker, which is woken through its doorbell after a publish.
    Local {
        producer: RecordProducer,
        doorbell: Arc<dyn WaitStrategy>,
    },
    /// To the transport, for tasks of a peer worker.
    Remote(Outbound),
}

/// Why a ring refused a record.
enum Refused {
    /// No room now.
    Full,
    /// Nobody will ever read it (the peer left the assignment).
    Closed,
}

impl PortRing {
    /// Copies `record`, for `target`, into the ring.
    fn write(&mut self, target: TaskId, record: &[u8]) -> Result<(), Refused> {
        let len = record.len();
        match self {
            PortRing::Local { producer, .. } => match producer.append(len) {
                Ok(buf) => {
                    buf.copy_from_slice(record);
                    Ok(())
                }
                Err(WriteError::RecordFull) => Err(Refused::Full),
                Err(other) => panic!("record of {len} bytes refused by its ring: {other}"),
            },
            PortRing::Remote(outbound) => {
                outbound
                    .write(target.0, record)
                    .map_err(|error| match error {
                        OutboundError::Full { .. } => Refused::Full,
                        OutboundError::Closed { .. } => Refused::Closed,
                        other => {
                            panic!("record of {len} bytes refused by its outbound ring: {other}")
                        }
                    })
            }
        }
    }

    #[inline]
    fn publish(&mut self) {
        match self {
            PortRing::Local { producer, doorbell } => {
                producer.publish();
                doorbell.notify();
            }
            PortRing::Remote(outbound) => outbound.publish(),
        }
    }

    fn max_record_len(&self) -> usize {
        match self {
            PortRing::Local { producer, .. } => producer.max_record_len(),
            PortRing::Remote(outbound) => outbound.max_record_len(),
        }
    }
}

/// An output ring to one consumer, with the records that did not fit yet.
///
/// Aligned to two cache lines: the ports are allocated by the worker before their thread
/// starts, so without it a port could share a line with another thread's hot state (its
/// input ports, say), and every write here would wait for that line to come back.
#[repr(align(128))]
pub(crate) struct OutputPort {
    ring: PortRing,
    /// Everything but the ring, so that both can be borrowed at once.
    state: PortState,
    /// The peer's worker bit (`tree_workers`; 0 for a port to a thread of this worker).
    peer_bit: u64,
    /// Whether the overflow holds more than the thread's limit for a peer (counted in the
    /// emitter's backlog).
    pub(crate) over_limit: bool,
}

/// The bookkeeping of a port.
struct PortState {
    /// Records written while the ring was full, each after its destination task and `u32`
    /// length, waiting for room in order. While it holds anything, new records queue behind
    /// it.
    overflow: Vec<u8>,
    overflow_read: usize,
    /// Where a record for a closed outbound ring is being encoded (at the end of
    /// `overflow`, behind its prefix), for `write` to discard and count dropped.
    discarded: Option<usize>,
    /// Records written into the ring since the last publish.
    unpublished: u64,
    /// Records published into the ring so far.
    published: u64,
    /// Records dropped because the ring's reader is gone for good.
    dropped: u64,
    counters: Arc<RingCounters>,
}

impl fmt::Debug for OutputPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputPort")
            .field("remote", &self.is_remote())
            .field(
                "overflow_bytes",
                &(self.state.overflow.len() - self.state.overflow_read),
            )
            .field("published", &self.state.published)
            .finish()
    }
}

/// Bytes in front of each overflowed record: destination task and length.
const OVERFLOW_PREFIX: usize = 8;

/// Bytes each port's overflow holds from the start. A thread whose output is backlogged takes
/// no new input, so what overflows at a time is what one batch emits: 256 inputs or spout
/// emits of a few dozen bytes each, under this. Without the room, the first time a ring
/// filled in steady state, its port allocated while its overflow grew to that size.
const OVERFLOW_RESERVE: usize = 16 * 1024;

impl PortState {
    #[inline(always)]
    fn is_backlogged(&self) -> bool {
        self.overflow_read != self.overflow.len()
    }

    /// Appends a record of `len` bytes for `target` to the overflow and lends its bytes.
    #[inline(never)]
    fn push_overflow(&mut self, target: TaskId, len: usize) -> &mut [u8] {
        let start = self.push_prefix(target, len);
        &mut self.overflow[start..]
    }

    /// Appends the prefix and `len` zero bytes for a record to the overflow; returns where
    /// the record's bytes start.
    fn push_prefix(&mut self, target: TaskId, len: usize) -> usize {
        self.overflow.extend_from_slice(&target.0.to_le_bytes());
        self.overflow.extend_from_slice(&(len as u32).to_le_bytes());
        let start = self.overflow.len();
        self.overflow.resize(start + len, 0);
        start
    }

    /// Publishes what was written into `ring` and wakes its consumer.
    #[inline]
    fn publish(&mut self, ring: &mut PortRing) {
        if self.unpublished != 0 {
            ring.publish();
            self.count_published();
        }
    }

    /// Counts the unpublished records as published, after the ring published them.
    fn count_published(&mut self) {
        self.published += self.unpublished;
        self.unpublished = 0;
        // Release: a consumer that sees this count finds the records in the ring.
        self.counters
            .published
            .store(self.published, Ordering::Release);
    }

    /// Counts a record the ring refused for good.
    #[cold]
    fn drop_record(&mut self) {
        if self.dropped == 0 {
            tracing::warn!("a peer worker left the assignment: records for it are dropped");
        }
        self.dropped += 1;
    }
}

impl OutputPort {
    /// A port into a ring to a thread of this worker.
    pub(crate) fn local(
        producer: RecordProducer,
        doorbell: Arc<dyn WaitStrategy>,
        counters: Arc<RingCounters>,
    ) -> Self {
        Self::with_ring(PortRing::Local { producer, doorbell }, counters, 0)
    }

    /// A port into an outbound ring to a peer worker, whose worker bit (`tree_workers`) is
    /// `peer_bit`.
    pub(crate) fn remote(outbound: Outbound, counters: Arc<RingCounters>, peer_bit: u64) -> Self {
        Self::with_ring(PortRing::Remote(outbound), counters, peer_bit)
    }

    fn with_ring(ring: PortRing, counters: Arc<RingCounters>, peer_bit: u64) -> Self {
        Self {
            peer_bit,
            over_limit: false,
            ring,
            state: PortState {
                overflow: Vec::with_capacity(OVERFLOW_RESERVE),
                overflow_read: 0,
                discarded: None,
                unpublished: 0,
                published: 0,
                dropped: 0,
                counters,
            },
        }
    }

    /// Whether the port leads to another worker.
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.ring, PortRing::Remote(_))
    }

    /// The peer's worker bit (`tree_workers`; 0 for a port to a thread of this worker).
    pub(crate) fn peer_bit(&self) -> u64 {
        self.peer_bit
    }

    /// Bytes of records waiting in the overflow, with their prefixes.
    pub(crate) fn overflow_bytes(&self) -> usize {
        self.state.overflow.len() - self.state.overflow_read
    }

    /// Largest record the ring takes.
    pub(crate) fn max_record_len(&self) -> usize {
        self.ring.max_record_len()
    }

    /// Whether records wait for room.
    #[inline(always)]
    pub(crate) fn is_backlogged(&self) -> bool {
        self.state.is_backlogged()
    }

    /// Whether records were written that the consumer cannot see yet (unpublished, or
    /// waiting in the overflow).
    #[inline]
    pub(crate) fn has_unpublished(&self) -> bool {
        self.state.unpublished != 0 || self.is_backlogged()
    }

    /// Writes a record of `len` bytes for task `target`, encoded in place by `fill`, which
    /// writes all of the bytes it is lent. `len` must not exceed
    /// [`max_record_len`](Self::max_record_len).
    ///
    /// The bytes lent are the ring's own — a thread's input ring, or the transport's
    /// outbound ring to a peer worker — when the ring has room and nothing waits in the
    /// overflow. Otherwise the record is queued in the overflow (a backlog, or a ring that
    /// is full even after publishing).
    #[inline(always)]
    pub(crate) fn write(&mut self, target: TaskId, len: usize, fill: impl FnOnce(&mut [u8])) {
        // The mark rides in the task id, through the overflow if need be, to the ring.
        #[cfg(feature = "stage-trace")]
        let target = match &mut self.ring {
            PortRing::Remote(outbound) => TaskId(outbound.trace_sample(target.0)),
            PortRing::Local { .. } => target,
        };
        let state = &mut self.state;
        let buf = match &mut self.ring {
            _ if state.is_backlogged() => state.push_overflow(target, len),
            PortRing::Local { producer, doorbell } => match producer.append(len) {
                Ok(buf) => {
                    state.unpublished += 1;
                    buf
                }
                Err(error) => local_full(producer, doorbell, state, target, len, error),
            },
            PortRing::Remote(outbound) => match outbound.append(target.0, len) {
                Ok(buf) => {
                    state.unpublished += 1;
                    buf
                }
                Err(error) => remote_full(outbound, state, target, len, error),
            },
        };
        fill(buf);
        if let Some(start) = self.state.discarded.take() {
            self.discard(start);
        }
    }

    /// Writes `count` tuples in records of `len` bytes, the `i`th for task `target(i)` and
    /// encoded in place by `fill(i, bytes)`: what `count` calls to [`write`](Self::write)
    /// would write, with one claim of ring space for them all when the ring is a thread's,
    /// nothing waits in the overflow and they fit at once. Returns the records written.
    ///
    /// With `fields`, consecutive tuples for one task into a thread's ring share a packed
    /// record where that saves at least half the records: the first written whole by
    /// `fill`, the others' anchor pairs and fields only, by `fields(i, bytes)`.
    #[inline(always)]
    pub(crate) fn write_run(
        &mut self,
        count: usize,
        len: usize,
        target: impl Fn(usize) -> TaskId,
        mut fill: impl FnMut(usize, &mut [u8]),
        fields: Option<impl FnMut(usize, &mut [u8])>,
    ) -> usize {
        let mut first = 0;
        let mut records = 0;
        if let PortRing::Local { producer, .. } = &mut self.ring
            && !self.state.is_backlogged()
        {
            if let Some(fields) = fields
                && let Some(packed) = pack_run(
                    producer,
                    &mut self.state,
                    count,
                    len,
                    &target,
                    &mut fill,
                    fields,
                )
            {
                (first, records) = (packed.tuples, packed.records);
            } else if producer.append_run(len, count, &mut fill) {
                self.state.unpublished += count as u64;
                return count;
            }
        }
        for index in first..count {
            self.write(
                target(index),
                len,
                #[inline(always)]
                |buf| fill(index, buf),
            );
        }
        records + (count - first)
    }

    /// Forgets the record encoded at `start` of the overflow for a closed ring.
    #[cold]
    #[inline(never)]
    fn discard(&mut self, start: usize) {
        self.state.overflow.truncate(start - OVERFLOW_PREFIX);
        self.state.drop_record();
    }

    /// Moves queued records into the ring while it has room; returns whether any moved.
    pub(crate) fn flush_overflow(&mut self) -> bool {
        let state = &mut self.state;
        let mut moved = false;
        while state.is_backlogged() {
            let at = state.overflow_read;
            let word = |offset: usize| {
                u32::from_le_bytes(
                    state.overflow[offset..offset + 4]
                        .try_into()
                        .expect("4 bytes"),
                )
            };
            let (target, len) = (TaskId(word(at)), word(at + 4) as usize);
            let start = at + OVERFLOW_PREFIX;
            match self.ring.write(target, &state.overflow[start..start + len]) {
                Ok(()) => state.unpublished += 1,
                Err(Refused::Full) => break,
                Err(Refused::Closed) => state.dropped += 1,
            }
            moved = true;
            state.overflow_read = start + len;
        }
        if !state.is_backlogged() && !state.overflow.is_empty() {
            state.overflow.clear();
            state.overflow_read = 0;
        }
        moved
    }

    /// Publishes what was written and wakes the consumer.
    #[inline]
    pub(crate) fn publish(&mut self) {
        self.state.publish(&mut self.ring);
    }
}

/// [`OutputPort::write`] into a ring to a thread that refused the record: publishes
/// what is pending so the consumer can free room and tries once more, then queues the
/// record in the overflow.
/// What [`pack_run`] wrote: the first `tuples` of the run, in `records` records.
struct PackedRun {
    tuples: usize,
    records: usize,
}

/// [`OutputPort::write_run`] into a thread's ring with packing: each stretch of
/// consecutive tuples for one task in one packed record. `None` (nothing written) when
/// packing would not save at least half the records, or a tuple has no fields. It stops at
/// a stretch that finds the ring full, for the caller to write the rest record by record.
///
/// The tuples are not put in task order first: where tasks interleave on a ring (sixteen
/// counters on a thread), a counting sort by task on the writing thread cost more than the
/// records it saved, and the reading thread puts its input in task order anyway.
#[inline(always)]
fn pack_run(
    producer: &mut RecordProducer,
    state: &mut PortState,
    count: usize,
    len: usize,
    target: &impl Fn(usize) -> TaskId,
    fill: &mut impl FnMut(usize, &mut [u8]),
    mut fields: impl FnMut(usize, &mut [u8]),
) -> Option<PackedRun> {
    let member_len = len.checked_sub(HEADER_BYTES).filter(|&bytes| bytes > 0)?;
    if count == 0 {
        return None;
    }
    let mut stretches = 1;
    let mut last = target(0);
    for index in 1..count {
        let task = target(index);
        stretches += usize::from(task != last);
        last = task;
    }
    if stretches * 2 > count {
        return None;
    }
    let most = ((producer.max_record_len() - HEADER_BYTES) / member_len).min(usize::from(u16::MAX));
    let mut records = 0;
    let mut start = 0;
    while start < count {
        let task = target(start);
        let mut end = start + 1;
        while end < count && end - start < most && target(end) == task {
            end += 1;
        }
        let members = end - start;
        let Ok(buf) = producer.append(HEADER_BYTES + members * member_len) else {
            break;
        };
        fill(start, &mut buf[..len]);
        for member in 1..members {
            let at = HEADER_BYTES + member * member_len;
            fields(start + member, &mut buf[at..at + member_len]);
        }
        if members > 1 {
            mark_packed(buf, members);
        }
        state.unpublished += 1;
        records += 1;
        start = end;
    }
    Some(PackedRun {
        tuples: start,
        records,
    })
}

#[cold]
#[inline(never)]
fn local_full<'a>(
    producer: &'a mut RecordProducer,
    doorbell: &Arc<dyn WaitStrategy>,
    state: &'a mut PortState,
    target: TaskId,
    len: usize,
    error: WriteError,
) -> &'a mut [u8] {
    if error != WriteError::RecordFull {
        panic!("record of {len} bytes refused by its ring: {error}");
    }
    if state.unpublished != 0 {
        producer.publish();
        doorbell.notify();
        state.count_published();
    }
    match producer.append(len) {
        Ok(buf) => {
            state.unpublished += 1;
            buf
        }
        Err(_) => state.push_overflow(target, len),
    }
}

/// [`OutputPort::write`] into an outbound ring that refused the record: publishes what is
/// pending so the transport can take it and tries once more, then queues the record in the
/// overflow. A record for a closed ring is encoded into scratch bytes and counted dropped;
/// one for a ring closed after that check is dropped from the overflow.
#[cold]
#[inline(never)]
fn remote_full<'a>(
    outbound: &'a mut Outbound,
    state: &'a mut PortState,
    target: TaskId,
    len: usize,
    error: OutboundError,
) -> &'a mut [u8] {
    if !matches!(error, OutboundError::Full { .. }) {
        panic!("record of {len} bytes refused by its outbound ring: {error}");
    }
    if outbound.is_closed() {
        return discard_after_encoding(state, target, len);
    }
    if state.unpublished != 0 {
        outbound.publish();
        state.count_published();
    }
    match outbound.append(target.0, len) {
        Ok(buf) => {
            state.unpublished += 1;
            buf
        }
        Err(_) => state.push_overflow(target, len),
    }
}

/// Lends scratch bytes at the end of the overflow for a record nobody will read, which
/// [`OutputPort::write`] discards once encoded.
#[inline(never)]
fn discard_after_encoding(state: &mut PortState, target: TaskId, len: usize) -> &mut [u8] {
    let start = state.push_prefix(target, len);
    state.discarded = Some(start);
    &mut state.overflow[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_ringbuf::record::{RecordConsumer, heap_ring};
    use squall_ringbuf::wait::BusySpin;

    fn port(capacity: usize) -> (OutputPort, RecordConsumer, Arc<RingCounters>) {
        let (producer, consumer) = heap_ring(capacity);
        let counters = Arc::new(RingCounters::default());
        let port = OutputPort::local(producer, Arc::new(BusySpin), Arc::clone(&counters));
        (port, consumer, counters)
    }

    fn write(port: &mut OutputPort, byte: u8, len: usize) {
        port.write(TaskId(1), len, |out| out.fill(byte));
    }

    fn read_all(consumer: &mut RecordConsumer) -> Vec<Vec<u8>> {
        let batch = consumer.read(usize::MAX);
        batch.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn records_are_seen_only_once_published() {
        let (mut port, mut consumer, counters) = port(4096);
        write(&mut port, 7, 10);
        assert!(port.has_unpublished());
        assert!(read_all(&mut consumer).is_empty(), "not published yet");
        port.publish();
        assert_eq!(read_all(&mut consumer), [vec![7; 10]]);
        assert_eq!(counters.published.load(Ordering::Relaxed), 1);
        assert!(!port.is_backlogged());
    }

    #[test]
    fn a_full_ring_backlogs_in_order_and_flushes_once_room_frees() {
        let (mut port, mut consumer, _) = port(1024);
        let len = port.max_record_len() / 2;
        for byte in 0..8 {
            write(&mut port, byte, len);
        }
        assert!(port.is_backlogged(), "more than the ring holds");
        assert!(port.overflow_bytes() > 0);
        port.publish();
        let mut seen = read_all(&mut consumer);
        while port.is_backlogged() {
            assert!(port.flush_overflow(), "room was freed");
            port.publish();
            seen.extend(read_all(&mut consumer));
        }
        let firsts: Vec<u8> = seen.iter().map(|record| record[0]).collect();
        assert_eq!(
            firsts,
            (0..8).collect::<Vec<_>>(),
            "order kept across the overflow"
        );
        assert!(seen.iter().all(|record| record.len() == len));
        assert_eq!(port.overflow_bytes(), 0);
    }
}
