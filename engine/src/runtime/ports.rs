//! Where records leave an executor thread: a ring to another thread (or to a transport, or
//! back to the same thread for its own tasks), with an overflow buffer for when the ring is
//! full, so that writing never blocks and never drops.

use std::fmt;
use std::sync::Arc;

use squall_ringbuf::WaitStrategy;

use crate::metrics::RingCounters;
use squall_ringbuf::record::{RecordProducer, WriteError};

/// An output ring to one consumer, with the records that did not fit yet.
pub(crate) struct OutputPort {
    producer: RecordProducer,
    /// Rung after each publish so a sleeping consumer wakes up.
    doorbell: Arc<dyn WaitStrategy>,
    /// Records written while the ring was full, each after its `u32` length, waiting for
    /// room in order. While it holds anything, new records queue behind it.
    overflow: Vec<u8>,
    overflow_read: usize,
    /// Records written into the ring since the last publish.
    unpublished: u64,
    /// Records published into the ring so far.
    published: u64,
    counters: Arc<RingCounters>,
}

impl fmt::Debug for OutputPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputPort")
            .field("producer", &self.producer)
            .field(
                "overflow_bytes",
                &(self.overflow.len() - self.overflow_read),
            )
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
}

impl OutputPort {
    pub(crate) fn new(
        producer: RecordProducer,
        doorbell: Arc<dyn WaitStrategy>,
        counters: Arc<RingCounters>,
    ) -> Self {
        Self {
            producer,
            doorbell,
            overflow: Vec::new(),
            overflow_read: 0,
            unpublished: 0,
            published: 0,
            counters,
        }
    }

    /// Largest record the ring takes.
    pub(crate) fn max_record_len(&self) -> usize {
        self.producer.max_record_len()
    }

    /// Whether records wait for room.
    #[inline]
    pub(crate) fn is_backlogged(&self) -> bool {
        self.overflow_read != self.overflow.len()
    }

    /// Writes a record of `len` bytes filled by `fill`; queues it when the ring is full.
    /// `len` must not exceed [`max_record_len`](Self::max_record_len).
    #[inline]
    pub(crate) fn write(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Written {
        if !self.is_backlogged() {
            let mut fill = Some(fill);
            let mut attempt = |producer: &mut RecordProducer| {
                producer.write_with(len, |buf| {
                    (fill.take().expect("filled once"))(&mut buf[..len]);
                    len
                })
            };
            match attempt(&mut self.producer) {
                Ok(()) => {
                    self.unpublished += 1;
                    return Written::Ring;
                }
                Err(WriteError::RecordFull) => {
                    // Make what is pending visible so the consumer can free room, then try
                    // once more before queueing.
                    self.publish();
                    if attempt(&mut self.producer).is_ok() {
                        self.unpublished += 1;
                        return Written::Ring;
                    }
                }
                Err(error) => panic!("record of {len} bytes refused by its ring: {error}"),
            }
            self.push_overflow(len, fill.take().expect("not yet filled"));
            return Written::Overflow;
        }
        self.push_overflow(len, fill);
        Written::Overflow
    }

    fn push_overflow(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) {
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
            let len_bytes: [u8; 4] = self.overflow[at..at + 4].try_into().expect("4 bytes");
            let len = u32::from_le_bytes(len_bytes) as usize;
            let record = &self.overflow[at + 4..at + 4 + len];
            let written = self.producer.write_with(len, |buf| {
                buf[..len].copy_from_slice(record);
                len
            });
            if written.is_err() {
                break;
            }
            self.unpublished += 1;
            moved = true;
            self.overflow_read = at + 4 + len;
        }
        if !self.is_backlogged() && !self.overflow.is_empty() {
            self.overflow.clear();
            self.overflow_read = 0;
        }
        moved
    }

    /// Whether records were written that the consumer cannot see yet (unpublished, or
    /// waiting in the overflow).
    #[inline]
    pub(crate) fn has_unpublished(&self) -> bool {
        self.unpublished != 0 || self.is_backlogged()
    }

    /// Publishes what was written and rings the consumer's doorbell.
    #[inline]
    pub(crate) fn publish(&mut self) {
        if self.unpublished != 0 {
            self.producer.publish();
            self.published += self.unpublished;
            self.unpublished = 0;
            // Release: a consumer that sees this count finds the records in the ring.
            self.counters
                .published
                .store(self.published, std::sync::atomic::Ordering::Release);
            self.doorbell.notify();
        }
    }
}
