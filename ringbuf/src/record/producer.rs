//! The producer end: appends records to a pending batch and publishes the batch with one
//! release store.

use std::fmt;
use std::ptr::NonNull;

use super::error::{RingCorruption, WriteError};
use super::layout::{
    Header, OwnerWord, PADDING, RECORD_HEADER_BYTES, Role, check_sequences, max_record_len,
    record_size,
};
use super::owner;
use super::region::{RegionOwner, RingPtrs};
use crate::sync::{Ordering, fence};

/// The writing end of a record ring.
///
/// Records are appended with [`write_with`](Self::write_with) or [`write`](Self::write) to a
/// pending batch that the consumer cannot see; [`publish`](Self::publish) makes the whole
/// batch visible with one release store. Dropping the producer publishes what is pending and
/// detaches it from the ring.
///
/// The producer is `Send` but not `Sync`: one thread writes at a time, and the ring has one
/// producer at a time (the type system keeps it so in a process; the header's owner word
/// across processes).
///
/// The consumer's read sequence is checked whenever it is loaded: a peer process that
/// scribbles over a mapped ring cannot make the producer write outside the data area or
/// panic. When the read sequence breaks the layout's invariants, every write fails with
/// [`WriteError::Corrupted`] naming it.
pub struct RecordProducer {
    data: NonNull<u8>,
    /// Data capacity minus one; the capacity is a power of two.
    mask: usize,
    /// Sequence right after the last pending record.
    write_pos: u64,
    /// The producer may write below this sequence: the last read sequence it loaded plus
    /// the capacity. Refreshed only when a record does not fit below it.
    write_limit: u64,
    /// Sequence last stored to the header's write sequence.
    published: u64,
    pending: usize,
    max_record_len: usize,
    header: NonNull<Header>,
    owner_word: OwnerWord,
    region: RegionOwner,
    /// What was found wrong with the ring memory; writing stops once it is set.
    corruption: Option<RingCorruption>,
}

// SAFETY: the producer owns the right to write the ring's free space and write sequence; the
// memory stays alive through `region` wherever the handle moves. It is not `Sync`: the
// raw pointers keep `&RecordProducer` from crossing threads.
unsafe impl Send for RecordProducer {}

impl fmt::Debug for RecordProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordProducer")
            .field("capacity", &self.capacity())
            .field("write_pos", &self.write_pos)
            .field("published", &self.published)
            .field("pending", &self.pending)
            .field("region", &self.region)
            .finish()
    }
}

impl RecordProducer {
    /// A producer that resumes at the published write sequence, overwriting whatever a
    /// previous producer wrote past it. `owner_word` must be this handle's attachment to the
    /// producer end of the ring behind `ptrs`, kept alive by `region`.
    pub(crate) fn new(ptrs: RingPtrs, owner_word: OwnerWord, region: RegionOwner) -> Self {
        // SAFETY: `ptrs.header` points to an initialised header kept alive by `region`.
        let header = unsafe { ptrs.header.as_ref() };
        let published = header.write_seq.0.load(Ordering::Acquire);
        let released = header.read_seq.0.seq.load(Ordering::Acquire);
        // Checked once here: from now on the producer trusts only its own copies.
        let corruption = check_sequences(released, published, ptrs.capacity).err();
        // A write limit of 0 sends every write to `refresh_write_limit`, which refuses it.
        let (published, write_limit) = if corruption.is_some() {
            (0, 0)
        } else {
            (published, released + ptrs.capacity as u64)
        };
        Self {
            data: ptrs.data,
            mask: ptrs.capacity - 1,
            write_pos: published,
            write_limit,
            published,
            pending: 0,
            max_record_len: max_record_len(ptrs.capacity),
            header: ptrs.header,
            owner_word,
            region,
            corruption,
        }
    }

    /// What was found wrong with the ring memory, once writing has stopped on it; `None`
    /// while the ring is sound.
    pub fn corruption(&self) -> Option<RingCorruption> {
        self.corruption
    }

    #[inline(always)]
    fn header(&self) -> &Header {
        // SAFETY: the header is initialised and kept alive by `self.region`; it is only
        // accessed through atomics and fields that never change.
        unsafe { self.header.as_ref() }
    }

    /// Bytes of the ring's data area.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Largest record this ring takes: half the capacity minus the 8-byte record header.
    pub fn max_record_len(&self) -> usize {
        self.max_record_len
    }

    /// Records written but not yet published.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Appends one record of at most `max_len` bytes to the pending batch.
    ///
    /// `fill` writes the record into the slice it is given (exactly `max_len` bytes of
    /// stale ring memory) and returns how many bytes it used. Room for `max_len` bytes is
    /// reserved, so size `max_len` tightly when records are short.
    ///
    /// # Errors
    /// [`WriteError::RecordTooLarge`] when `max_len` exceeds
    /// [`max_record_len`](Self::max_record_len), [`WriteError::RecordFull`] when the ring
    /// lacks room right now, [`WriteError::Corrupted`] once the ring memory was found
    /// corrupted; `fill` is not called then.
    ///
    /// # Panics
    /// When `fill` returns more than `max_len`.
    #[inline]
    pub fn write_with(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), WriteError> {
        let (offset, len) = self.claim_and_fill(max_len, fill)?;
        self.finish_record(offset, len);
        Ok(())
    }

    /// Appends one record of up to `max_len` bytes that `fill` encodes in place, or none
    /// when `fill` returns 0: for a writer that learns only while encoding whether it has
    /// anything to write. Returns the record's length. A record that would not fit before
    /// the end of the data area may leave padding pending even when `fill` writes nothing;
    /// the consumer skips it.
    ///
    /// # Errors
    /// As [`write_with`](Self::write_with); `fill` is not called then.
    ///
    /// # Panics
    /// When `fill` returns more than `max_len`.
    #[inline]
    pub fn write_some(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, WriteError> {
        let (offset, len) = self.claim_and_fill(max_len, fill)?;
        if len > 0 {
            self.finish_record(offset, len);
        }
        Ok(len)
    }

    /// Claims room for a record of up to `max_len` bytes and lets `fill` write it; returns
    /// the record's offset and the length `fill` used, for [`finish_record`].
    ///
    /// [`finish_record`]: Self::finish_record
    #[inline(always)]
    fn claim_and_fill(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(usize, usize), WriteError> {
        let offset = self.claim(max_len)?;
        let len = fill(self.payload_mut(offset, max_len));
        assert!(
            len <= max_len,
            "record fill returned {len} bytes but was given room for {max_len}"
        );
        Ok((offset, len))
    }

    /// Appends one record of exactly `len` bytes to the pending batch and lends its payload
    /// to be written in place: the one-step alternative to [`write_with`](Self::write_with)
    /// for a caller that knows the length up front.
    ///
    /// The record is part of the batch as soon as this returns; its payload is whatever
    /// the slice holds when the batch is published, so the caller fills all of it. (Bytes
    /// left unwritten are stale ring memory: earlier records' bytes or zeroes.)
    ///
    /// # Errors
    /// As [`write_with`](Self::write_with); nothing is appended then.
    #[inline(always)]
    pub fn append(&mut self, len: usize) -> Result<&mut [u8], WriteError> {
        let offset = self.claim(len)?;
        self.finish_record(offset, len);
        Ok(self.payload_mut(offset, len))
    }

    /// Appends `count` records of exactly `len` bytes each, back to back, with one claim:
    /// `fill(i, payload)` writes the `i`th. What `count` calls to [`append`](Self::append)
    /// would write, without checking room, the end of the data area and the size once per
    /// record.
    ///
    /// Returns false, appending nothing and calling `fill` never, when the records do not
    /// all fit at once: past the end of the data area (a record never wraps), beyond the
    /// space the consumer has released, or larger than the ring takes. The caller then
    /// appends them one by one, and [`append`](Self::append) says what is wrong.
    #[inline(always)]
    pub fn append_run(
        &mut self,
        len: usize,
        count: usize,
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> bool {
        if len > self.max_record_len {
            return false;
        }
        let size = record_size(len);
        let offset = self.write_pos as usize & self.mask;
        let Some(total) = size.checked_mul(count) else {
            return false;
        };
        if total > self.capacity() - offset {
            return false;
        }
        let end = self.write_pos + total as u64;
        if end > self.write_limit && !matches!(self.refresh_write_limit(end), Ok(true)) {
            return false;
        }
        self.region.note_write(offset, total);
        for index in 0..count {
            // 8-aligned (`offset` and `size` are), and below `offset + total`, which fits
            // before the end of the data area and below `write_limit`.
            let at = offset + index * size;
            self.write_record_header(at, len);
            fill(index, self.payload_mut(at, len));
        }
        self.write_pos = end;
        self.pending += count;
        true
    }

    /// Where a record of `size` bytes goes after the pending ones: the padding to leave
    /// before it (0, or the rest of the data area when it does not fit before the end), and
    /// the sequence right after it.
    #[inline(always)]
    fn placement(&self, size: usize) -> (usize, u64) {
        let offset = self.write_pos as usize & self.mask;
        let to_end = self.capacity() - offset;
        // A record never wraps: when it does not fit before the end of the data area, the
        // rest of the area becomes padding and the record starts at offset 0.
        let padding = if size <= to_end { 0 } else { to_end };
        (padding, self.write_pos + (padding + size) as u64)
    }

    /// Makes room for a record of up to `max_len` bytes after the pending ones, writing a
    /// padding record first when it would not fit before the end of the data area; returns
    /// the data offset of the record's header word. The record is not written yet: until
    /// [`finish_record`](Self::finish_record), `write_pos` stays in front of it.
    #[inline(always)]
    fn claim(&mut self, max_len: usize) -> Result<usize, WriteError> {
        if max_len > self.max_record_len {
            return Err(WriteError::RecordTooLarge {
                len: max_len,
                max: self.max_record_len,
            });
        }
        let size = record_size(max_len);
        let (padding, end) = self.placement(size);
        if end > self.write_limit && !self.refresh_write_limit(end)? {
            return Err(WriteError::RecordFull);
        }
        let offset = if padding == 0 {
            self.write_pos as usize & self.mask
        } else {
            self.write_padding(self.write_pos as usize & self.mask, padding);
            0
        };
        self.region.note_write(offset, size);
        Ok(offset)
    }

    /// Marks the `padding` bytes from `offset` to the end of the data area as skipped.
    #[cold]
    #[inline(never)]
    fn write_padding(&mut self, offset: usize, padding: usize) {
        self.region.note_write(offset, RECORD_HEADER_BYTES);
        // SAFETY: `offset` is a multiple of 8 inside the data area, which is 8-aligned;
        // `claim` checked that `write_pos..write_pos + padding + size` lies below
        // `write_limit`, so the consumer has released these bytes and cannot see them
        // before the next publish.
        unsafe { self.data.add(offset).cast::<u64>().write(PADDING) };
        self.write_pos += padding as u64;
    }

    /// The `len` payload bytes of the record whose header word is at `offset`.
    #[inline(always)]
    fn payload_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        debug_assert!(offset + record_size(len) <= self.capacity());
        // SAFETY: `claim` returned `offset` for a record of at least `len` bytes (or
        // `append_run` placed it inside the room it checked for its records), so
        // `offset + 8 + len <= capacity` (it fit before the end of the area, or starts at 0
        // and takes at most half of it) and the payload lies inside the data area; the bytes
        // are initialised (the area starts zeroed and is only ever written with bytes), are
        // free space the consumer cannot see before the next publish (checked against
        // `write_limit`), and `&mut self` makes this slice the only reference to them.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.data.add(offset + RECORD_HEADER_BYTES).as_ptr(),
                len,
            )
        }
    }

    /// Writes the header word of a record of `len` bytes at data `offset`.
    #[inline(always)]
    fn write_record_header(&mut self, offset: usize, len: usize) {
        // SAFETY: as in `payload_mut`: `offset` is an 8-aligned word of free space in the
        // area, claimed for this record (by `claim`, or by `append_run` for each of its
        // records).
        unsafe { self.data.add(offset).cast::<u64>().write(len as u64) };
    }

    /// Writes the header word of a `len`-byte record claimed at `offset` and adds the record
    /// to the pending batch.
    #[inline(always)]
    fn finish_record(&mut self, offset: usize, len: usize) {
        self.write_record_header(offset, len);
        self.write_pos += record_size(len) as u64;
        self.pending += 1;
    }

    /// Appends `record` to the pending batch; see [`write_with`](Self::write_with).
    ///
    /// # Errors
    /// As [`write_with`](Self::write_with).
    #[inline]
    pub fn write(&mut self, record: &[u8]) -> Result<(), WriteError> {
        self.append(record.len())?.copy_from_slice(record);
        Ok(())
    }

    /// Makes every pending record visible to the consumer with one release store.
    #[inline]
    pub fn publish(&mut self) {
        if self.write_pos != self.published {
            // Release: the consumer's acquire load of this sequence makes every record byte
            // written before it visible.
            self.header()
                .write_seq
                .0
                .store(self.write_pos, Ordering::Release);
            self.published = self.write_pos;
        }
        self.pending = 0;
    }

    /// After [`publish`](Self::publish): whether the consumer announced that it sleeps
    /// ([`RecordConsumer::prepare_sleep`](super::RecordConsumer::prepare_sleep)) and must
    /// be woken, by whatever means the two ends agreed on. Clears the announcement, so one
    /// wake-up answers it. Costs a fence and a load while the consumer is awake.
    #[inline]
    pub fn consumer_needs_wake(&self) -> bool {
        let sleeping = &self.header().read_seq.0.consumer_sleeping;
        // SeqCst fence: orders the publishing store before the load below (store-load),
        // pairing with the fence in `RecordConsumer::prepare_sleep`.
        fence(Ordering::SeqCst);
        sleeping.load(Ordering::Relaxed) != 0 && sleeping.swap(0, Ordering::AcqRel) != 0
    }

    /// Whether the consumer has gone: it detached (was dropped), or its process died. For a
    /// consumer in another process this costs a system call, so ask when the ring looks
    /// stuck rather than per record.
    pub fn is_abandoned(&self) -> bool {
        owner::is_gone(self.header(), Role::Consumer)
    }

    /// Loads the consumer's read sequence and reports whether `end` now fits.
    ///
    /// # Errors
    /// [`WriteError::Corrupted`] when the read sequence is not within a capacity below the
    /// published write sequence (or was found so before).
    #[cold]
    #[inline(never)]
    fn refresh_write_limit(&mut self, end: u64) -> Result<bool, WriteError> {
        if let Some(corruption) = self.corruption {
            return Err(WriteError::Corrupted(corruption));
        }
        // Acquire: pairs with the consumer's release of the read sequence, so its reads of
        // the released bytes happen before this producer overwrites them.
        let released = self.header().read_seq.0.seq.load(Ordering::Acquire);
        if let Err(corruption) = check_sequences(released, self.published, self.capacity()) {
            self.corruption = Some(corruption);
            self.write_limit = 0;
            return Err(WriteError::Corrupted(corruption));
        }
        self.write_limit = released + self.capacity() as u64;
        Ok(end <= self.write_limit)
    }
}

impl Drop for RecordProducer {
    fn drop(&mut self) {
        self.publish();
        owner::detach(self.header(), Role::Producer, self.owner_word);
    }
}
