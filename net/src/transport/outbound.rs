//! Outbound records: each executor that sends to a peer writes into a ring of its own; the
//! transport thread gathers the rings' records into BATCH frames.
//!
//! A ring record is the destination task (`u32`, little-endian) followed by the tuple's
//! bytes, which the executor encodes in place ([`Outbound::append`]). The transport copies
//! each record once, from the ring into the connection's send queue, where the batch frame
//! is built; the ring's space is released at once, and the kernel then copies the queue to
//! the socket.

use std::fmt;
use std::sync::Arc;

use squall_ringbuf::record::{RecordConsumer, RecordProducer, WriteError};
use squall_ringbuf::wait::WaitStrategy;

use super::error::OutboundError;
use super::wake::WakeState;
use crate::codec::{BATCH_HEADER_LEN, BatchEncoder, MAX_RECORD_LEN, RECORD_HEADER_LEN};
use crate::ids::WorkerId;
#[cfg(feature = "stage-trace")]
use crate::trace::{RingPickups, RingSampler};

/// Bytes in front of the tuple in a ring record: the destination task.
const TASK_PREFIX: usize = 4;

/// One executor's outbound ring to one peer worker: the executor's end.
///
/// Records written are invisible to the transport until [`publish`](Self::publish), which
/// makes every pending record visible with one store and wakes the transport thread if it
/// sleeps. Write a batch of records, then publish once. Neither writing nor publishing
/// allocates, locks or (while the transport is busy) makes a system call.
///
/// Dropping the `Outbound` publishes what is pending; the transport sends it and then
/// forgets the ring.
pub struct Outbound {
    peer: WorkerId,
    producer: RecordProducer,
    wake: Arc<WakeState>,
    max_record_len: usize,
    #[cfg(feature = "stage-trace")]
    trace: RingSampler,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("peer", &self.peer)
            .field("pending", &self.producer.pending())
            .field("max_record_len", &self.max_record_len)
            .finish()
    }
}

impl Outbound {
    pub(crate) fn new(
        peer: WorkerId,
        producer: RecordProducer,
        wake: Arc<WakeState>,
        max_frame_len: usize,
    ) -> Self {
        let max_record_len = (producer.max_record_len() - TASK_PREFIX)
            .min(max_frame_len - BATCH_HEADER_LEN - RECORD_HEADER_LEN)
            .min(MAX_RECORD_LEN);
        Self {
            peer,
            producer,
            wake,
            max_record_len,
            #[cfg(feature = "stage-trace")]
            trace: RingSampler::new(crate::trace::next_ring_id()),
        }
    }

    /// The destination task to write the next record with: `dest_task`, carrying the trace
    /// mark for one record in [`sample_every`](crate::trace::sample_every), whose write is
    /// stamped now. Call it once per record, when the executor writes it (a record that
    /// waits for room elsewhere before it enters this ring keeps its mark and its stamp).
    #[cfg(feature = "stage-trace")]
    #[inline]
    pub fn trace_sample(&mut self, dest_task: u32) -> u32 {
        self.trace.sample(dest_task)
    }

    /// The peer worker this ring sends to.
    pub fn peer(&self) -> WorkerId {
        self.peer
    }

    /// The longest record this ring takes.
    pub fn max_record_len(&self) -> usize {
        self.max_record_len
    }

    /// Records written but not yet published.
    pub fn pending(&self) -> usize {
        self.producer.pending()
    }

    /// Appends a record for `dest_task` on the peer; it is sent after
    /// [`publish`](Self::publish).
    ///
    /// # Errors
    /// [`OutboundError::Full`] when the ring has no room now (publish, then retry later),
    /// [`OutboundError::RecordTooLarge`] when the record can never be sent,
    /// [`OutboundError::Closed`] when the transport no longer reads this ring.
    #[inline]
    pub fn write(&mut self, dest_task: u32, record: &[u8]) -> Result<(), OutboundError> {
        self.write_with(dest_task, record.len(), |buf| {
            buf.copy_from_slice(record);
            record.len()
        })
    }

    /// Appends a record of at most `max_len` bytes that `fill` encodes in place: it gets
    /// exactly `max_len` bytes of ring memory and returns how many it used.
    ///
    /// # Errors
    /// As [`write`](Self::write), for `max_len`; `fill` is not called then.
    ///
    /// # Panics
    /// When `fill` returns more than `max_len`.
    #[inline]
    pub fn write_with(
        &mut self,
        dest_task: u32,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), OutboundError> {
        if max_len > self.max_record_len {
            return Err(OutboundError::RecordTooLarge {
                peer: self.peer,
                len: max_len,
                max: self.max_record_len,
            });
        }
        let written = self.producer.write_with(TASK_PREFIX + max_len, |buf| {
            buf[..TASK_PREFIX].copy_from_slice(&dest_task.to_le_bytes());
            let used = fill(&mut buf[TASK_PREFIX..]);
            assert!(
                used <= max_len,
                "record fill returned {used} bytes but was given room for {max_len}"
            );
            TASK_PREFIX + used
        });
        match written {
            Ok(()) => {
                #[cfg(feature = "stage-trace")]
                self.trace.entered(dest_task);
                Ok(())
            }
            Err(WriteError::RecordFull) if self.producer.is_abandoned() => {
                Err(OutboundError::Closed { peer: self.peer })
            }
            Err(WriteError::RecordFull) => Err(OutboundError::Full { peer: self.peer }),
            Err(WriteError::RecordTooLarge { .. }) => Err(OutboundError::RecordTooLarge {
                peer: self.peer,
                len: max_len,
                max: self.max_record_len,
            }),
            Err(error @ WriteError::Corrupted(_)) => {
                unreachable!("a heap ring shared by no other process is corrupted: {error}")
            }
        }
    }

    /// Appends a record of exactly `len` bytes for `dest_task` and lends its bytes in the
    /// ring, for the caller to encode the tuple into: the record is encoded once, where the
    /// transport will read it. The bytes lent are stale ring memory; the caller must write
    /// all of them before the next call on this ring.
    ///
    /// # Errors
    /// [`OutboundError::Full`] when the ring has no room now, or when the transport no
    /// longer reads it ([`is_closed`](Self::is_closed) tells which);
    /// [`OutboundError::RecordTooLarge`] when the record can never be sent.
    #[inline]
    pub fn append(&mut self, dest_task: u32, len: usize) -> Result<&mut [u8], OutboundError> {
        let (peer, max) = (self.peer, self.max_record_len);
        if len > max {
            return Err(OutboundError::RecordTooLarge { peer, len, max });
        }
        match self.producer.append(TASK_PREFIX + len) {
            Ok(buf) => {
                let (task, tuple) = buf.split_at_mut(TASK_PREFIX);
                task.copy_from_slice(&dest_task.to_le_bytes());
                #[cfg(feature = "stage-trace")]
                self.trace.entered(dest_task);
                Ok(tuple)
            }
            // A closed ring also reports full here: telling them apart would borrow the
            // ring again while the bytes lent are still borrowed. `is_closed` tells.
            Err(WriteError::RecordFull) => Err(OutboundError::Full { peer }),
            Err(WriteError::RecordTooLarge { .. }) => {
                Err(OutboundError::RecordTooLarge { peer, len, max })
            }
            Err(error @ WriteError::Corrupted(_)) => {
                unreachable!("a heap ring shared by no other process is corrupted: {error}")
            }
        }
    }

    /// Makes the pending records visible to the transport and wakes it if it sleeps.
    #[inline]
    pub fn publish(&mut self) {
        if self.producer.pending() > 0 {
            #[cfg(feature = "stage-trace")]
            self.trace.publishing();
            self.producer.publish();
            self.wake.notify();
        }
    }

    /// Whether the transport no longer reads this ring (it stopped, or the peer was
    /// removed from the peer set).
    pub fn is_closed(&self) -> bool {
        self.producer.is_abandoned()
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.publish();
    }
}

/// What [`OutboundRing::gather`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gathered {
    /// Every published record is in the batch (or there was none).
    Drained,
    /// The batch is full; the next record has this many bytes.
    BatchFull(usize),
}

/// The transport's end of an outbound ring.
pub(crate) struct OutboundRing {
    consumer: RecordConsumer,
    /// Rung after records are taken, for an executor that waits on a full ring.
    doorbell: Option<Arc<dyn WaitStrategy>>,
    #[cfg(feature = "stage-trace")]
    trace: RingPickups,
}

impl fmt::Debug for OutboundRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundRing")
            .field("consumer", &self.consumer)
            .finish()
    }
}

impl OutboundRing {
    pub(crate) fn new(consumer: RecordConsumer, doorbell: Option<Arc<dyn WaitStrategy>>) -> Self {
        Self {
            consumer,
            doorbell,
            #[cfg(feature = "stage-trace")]
            trace: RingPickups::new(u64::MAX),
        }
    }

    /// Shares the trace's ring id of `outbound`, the executor's end of this ring.
    #[cfg(feature = "stage-trace")]
    pub(crate) fn trace_with(&mut self, outbound: &Outbound) {
        self.trace = RingPickups::new(outbound.trace.ring());
    }

    /// The traced records the last gathers took.
    #[cfg(feature = "stage-trace")]
    pub(crate) fn pickups(&mut self) -> &mut RingPickups {
        &mut self.trace
    }

    /// Whether published records wait in the ring.
    pub(crate) fn has_records(&mut self) -> bool {
        let batch = self.consumer.read(1);
        let any = !batch.is_empty();
        // Forgetting the batch releases nothing: the record stays for `gather`.
        std::mem::forget(batch);
        any
    }

    /// Whether the executor dropped its end.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.consumer.is_abandoned()
    }

    /// Appends published records to `batch` while they fit, releasing exactly those from
    /// the ring. Records longer than `max_record` (the peer's limit) can never be sent:
    /// they are released and counted in `dropped`.
    pub(crate) fn gather(
        &mut self,
        batch: &mut BatchEncoder<'_>,
        max_record: usize,
        dropped: &mut u64,
    ) -> Gathered {
        let records = self.consumer.read(usize::MAX);
        let total = records.len();
        let mut taken = 0;
        let mut outcome = Gathered::Drained;
        for record in records.iter() {
            let Some((task, tuple)) = record.split_first_chunk::<TASK_PREFIX>() else {
                *dropped += 1;
                taken += 1;
                continue;
            };
            if tuple.len() > max_record {
                #[cfg(feature = "stage-trace")]
                self.trace.taken(u32::from_le_bytes(*task), false);
                *dropped += 1;
                taken += 1;
                continue;
            }
            if batch.push(u32::from_le_bytes(*task), tuple).is_err() {
                outcome = Gathered::BatchFull(tuple.len());
                break;
            }
            #[cfg(feature = "stage-trace")]
            self.trace.taken(u32::from_le_bytes(*task), true);
            taken += 1;
        }
        if taken == total {
            records.release();
        } else {
            // Release only the records taken: forgetting the batch leaves the ring as it
            // was, and reading `taken` records again marks exactly those for release.
            std::mem::forget(records);
            self.consumer.read(taken).release();
        }
        if taken > 0
            && let Some(doorbell) = &self.doorbell
        {
            doorbell.notify();
        }
        outcome
    }
}
