//! Where records leave an executor thread: a ring to another thread of the worker (or back
//! to the same thread for its own tasks), or an outbound ring to the transport for a peer
//! worker — each with an overflow buffer for when the ring is full, so that writing never
//! blocks and never drops.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use squall_net::transport::{Outbound, OutboundError};
use squall_ringbuf::WaitStrategy;
use squall_ringbuf::record::{RecordProducer, WriteError};

use crate::metrics::RingCounters;

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
    #[inline(always)]
    fn write_with(
        &mut self,
        target: u32,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), Refused> {
        match self {
            PortRing::Local { producer, .. } => producer
                .write_with(len, |buf| {
                    fill(&mut buf[..len]);
                    len
                })
                .map_err(|error| match error {
                    WriteError::RecordFull => Refused::Full,
                    other => panic!("record of {len} bytes refused by its ring: {other}"),
                }),
            PortRing::Remote(outbound) => outbound
                .write_with(target, len, |buf| {
                    fill(&mut buf[..len]);
                    len
                })
                .map_err(|error| match error {
                    OutboundError::Full { .. } => Refused::Full,
                    OutboundError::Closed { .. } => Refused::Closed,
                    other => panic!("record of {len} bytes refused by its outbound ring: {other}"),
                }),
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
pub(crate) struct OutputPort {
    ring: PortRing,
    /// Records written while the ring was full, each after its destination task and `u32`
    /// length, waiting for room in order. While it holds anything, new records queue behind
    /// it.
    overflow: Vec<u8>,
    overflow_read: usize,
    /// Records written into the ring since the last publish.
    unpublished: u64,
    /// Records published into the ring so far.
    published: u64,
    /// Records dropped because the ring's reader is gone for good.
    pub(crate) dropped: u64,
    counters: Arc<RingCounters>,
}

impl fmt::Debug for OutputPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputPort")
            .field("remote", &self.is_remote())
            .field(
                "overflow_bytes",
                &(self.overflow.len() - self.overflow_read),
            )
            .field("published", &self.published)
            .finish()
    }
}

/// What happened to a record written to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// It went into the ring.
    Ring,
    /// The ring was full: it waits in the overflow buffer.
    Overflow,
    /// Nobody reads the ring any more: it was dropped (its tree, if tracked, times out).
    Dropped,
}

/// Bytes in front of each overflowed record: destination task and length.
const OVERFLOW_PREFIX: usize = 8;

impl OutputPort {
    /// A port into a ring to a thread of this worker.
    pub(crate) fn local(
        producer: RecordProducer,
        doorbell: Arc<dyn WaitStrategy>,
        counters: Arc<RingCounters>,
    ) -> Self {
        Self::with_ring(PortRing::Local { producer, doorbell }, counters)
    }

    /// A port into an outbound ring to a peer worker.
    pub(crate) fn remote(outbound: Outbound, counters: Arc<RingCounters>) -> Self {
        Self::with_ring(PortRing::Remote(outbound), counters)
    }

    fn with_ring(ring: PortRing, counters: Arc<RingCounters>) -> Self {
        Self {
            ring,
            overflow: Vec::new(),
            overflow_read: 0,
            unpublished: 0,
            published: 0,
            dropped: 0,
            counters,
        }
    }

    /// Whether the port leads to another worker.
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.ring, PortRing::Remote(_))
    }

    /// Largest record the ring takes.
    pub(crate) fn max_record_len(&self) -> usize {
        self.ring.max_record_len()
    }

    /// Whether records wait for room.
    #[inline]
    pub(crate) fn is_backlogged(&self) -> bool {
        self.overflow_read != self.overflow.len()
    }

    /// Whether records were written that the consumer cannot see yet (unpublished, or
    /// waiting in the overflow).
    #[inline]
    pub(crate) fn has_unpublished(&self) -> bool {
        self.unpublished != 0 || self.is_backlogged()
    }

    /// Writes a record of `len` bytes for task `target`, filled by `fill`; queues it when
    /// the ring is full. `len` must not exceed [`max_record_len`](Self::max_record_len).
    #[inline]
    pub(crate) fn write(
        &mut self,
        target: u32,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Written {
        if self.is_backlogged() {
            self.push_overflow(target, len, fill);
            return Written::Overflow;
        }
        let mut fill = Some(fill);
        let mut attempt = |ring: &mut PortRing| {
            ring.write_with(target, len, |buf| (fill.take().expect("filled once"))(buf))
        };
        match attempt(&mut self.ring) {
            Ok(()) => {
                self.unpublished += 1;
                return Written::Ring;
            }
            Err(Refused::Closed) => return self.drop_record(),
            Err(Refused::Full) => {
                // Make what is pending visible so the consumer can free room, then try once
                // more before queueing.
                self.publish();
                match attempt(&mut self.ring) {
                    Ok(()) => {
                        self.unpublished += 1;
                        return Written::Ring;
                    }
                    Err(Refused::Closed) => return self.drop_record(),
                    Err(Refused::Full) => {}
                }
            }
        }
        self.push_overflow(target, len, fill.take().expect("not yet filled"));
        Written::Overflow
    }

    #[cold]
    fn drop_record(&mut self) -> Written {
        if self.dropped == 0 {
            tracing::warn!("a peer worker left the assignment: records for it are dropped");
        }
        self.dropped += 1;
        Written::Dropped
    }

    fn push_overflow(&mut self, target: u32, len: usize, fill: impl FnOnce(&mut [u8])) {
        self.overflow.extend_from_slice(&target.to_le_bytes());
        self.overflow.extend_from_slice(&(len as u32).to_le_bytes());
        let start = self.overflow.len();
        self.overflow.resize(start + len, 0);
        fill(&mut self.overflow[start..]);
    }

    /// Moves queued records into the ring while it has room; returns whether any moved.
    pub(crate) fn flush_overflow(&mut self) -> bool {
        let mut moved = false;
        while self.is_backlogged() {
            let at = self.overflow_read;
            let word = |offset: usize| {
                u32::from_le_bytes(
                    self.overflow[offset..offset + 4]
                        .try_into()
                        .expect("4 bytes"),
                )
            };
            let (target, len) = (word(at), word(at + 4) as usize);
            let start = at + OVERFLOW_PREFIX;
            let record = &self.overflow[start..start + len];
            match self
                .ring
                .write_with(target, len, |buf| buf.copy_from_slice(record))
            {
                Ok(()) => self.unpublished += 1,
                Err(Refused::Full) => break,
                Err(Refused::Closed) => {
                    self.dropped += 1;
                }
            }
            moved = true;
            self.overflow_read = start + len;
        }
        if !self.is_backlogged() && !self.overflow.is_empty() {
            self.overflow.clear();
            self.overflow_read = 0;
        }
        moved
    }

    /// Publishes what was written and wakes the consumer.
    #[inline]
    pub(crate) fn publish(&mut self) {
        if self.unpublished != 0 {
            self.ring.publish();
            self.published += self.unpublished;
            self.unpublished = 0;
            // Release: a consumer that sees this count finds the records in the ring.
            self.counters
                .published
                .store(self.published, Ordering::Release);
        }
    }
}
