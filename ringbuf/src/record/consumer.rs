//! The consumer end: reads every published record as one borrowed batch and releases the
//! batch with one release store.

use std::cell::Cell;
use std::fmt;
use std::iter::FusedIterator;
use std::ptr::NonNull;

use super::error::RingCorruption;
use super::layout::{
    Header, MAX_SEQUENCE, OwnerWord, PADDING, RECORD_ALIGN, RECORD_HEADER_BYTES, Role,
    max_record_len, record_size,
};
use super::owner;
use super::region::{RegionOwner, RingPtrs};
use crate::sync::{Ordering, fence};

/// How far ahead of the record it reads a consumer asks for the ring's data to be loaded:
/// eight cache lines, four records of a hundred bytes. Four lines ahead read 4% fewer records
/// a second in `rings`, sixteen about as many.
const PREFETCH_AHEAD_BYTES: u64 = 512;

/// The reading end of a record ring.
///
/// [`read`](Self::read) hands out the published records as a [`RecordBatch`] of slices
/// borrowed straight from the ring; releasing the batch (explicitly or by dropping it) gives
/// their bytes back to the producer with one release store. Dropping the consumer detaches
/// it from the ring.
///
/// # Corrupted rings
/// Every value read from the ring memory (the write sequence, each record header) is checked
/// before it is used, so a peer process that scribbles over a mapped ring cannot make the
/// consumer read outside the data area or panic. When a value breaks the layout's
/// invariants, reading stops before it: the batch ends with the last sound record,
/// [`corruption`](Self::corruption) names what was wrong, and every later read returns
/// nothing. The bytes of records handed out are the peer's to change, as ever: a reader
/// must treat them as untrusted input.
pub struct RecordConsumer {
    data: NonNull<u8>,
    /// Data capacity minus one; the capacity is a power of two.
    mask: usize,
    /// Sequence of the first unreleased byte.
    read_pos: u64,
    /// Write sequence last loaded from the header; refreshed only when the records below it
    /// are used up.
    cached_write: u64,
    max_record_len: usize,
    header: NonNull<Header>,
    owner_word: OwnerWord,
    region: RegionOwner,
    /// What was found wrong with the ring memory; reading stops once it is set.
    corruption: Cell<Option<RingCorruption>>,
}

// SAFETY: the consumer owns the right to read published records and store the read sequence;
// the memory stays alive through `region` wherever the handle moves. It is not `Sync`: the
// raw pointers keep `&RecordConsumer` from crossing threads.
unsafe impl Send for RecordConsumer {}

impl fmt::Debug for RecordConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordConsumer")
            .field("capacity", &self.capacity())
            .field("read_pos", &self.read_pos)
            .field("cached_write", &self.cached_write)
            .field("region", &self.region)
            .finish()
    }
}

impl RecordConsumer {
    /// A consumer that resumes at the released read sequence: records a previous consumer
    /// read but did not release are read again. `owner_word` must be this handle's
    /// attachment to the consumer end of the ring behind `ptrs`, kept alive by `region`.
    pub(crate) fn new(ptrs: RingPtrs, owner_word: OwnerWord, region: RegionOwner) -> Self {
        // SAFETY: `ptrs.header` points to an initialised header kept alive by `region`.
        let header = unsafe { ptrs.header.as_ref() };
        let read_seq = header.read_seq.0.seq.load(Ordering::Acquire);
        // Checked once here: from now on the consumer trusts only its own copy.
        let corruption = if read_seq > MAX_SEQUENCE || !read_seq.is_multiple_of(RECORD_ALIGN as u64)
        {
            Some(RingCorruption::ReadSequence {
                read_seq,
                write_seq: header.write_seq.0.load(Ordering::Acquire),
                capacity: ptrs.capacity,
            })
        } else {
            None
        };
        let read_pos = if corruption.is_some() { 0 } else { read_seq };
        Self {
            data: ptrs.data,
            mask: ptrs.capacity - 1,
            read_pos,
            cached_write: read_pos,
            max_record_len: max_record_len(ptrs.capacity),
            header: ptrs.header,
            owner_word,
            region,
            corruption: Cell::new(corruption),
        }
    }

    /// What was found wrong with the ring memory, once reading has stopped on it; `None`
    /// while the ring is sound. A ring only another process can corrupt (a mapped one) is
    /// worth checking when a read comes back empty or short.
    pub fn corruption(&self) -> Option<RingCorruption> {
        self.corruption.get()
    }

    /// Records `error` and stops reading.
    #[cold]
    #[inline(never)]
    fn corrupted(&self, error: RingCorruption) {
        if self.corruption.get().is_none() {
            self.corruption.set(Some(error));
        }
    }

    /// Asks the core to start loading the cache line at data `offset`. Records come from
    /// another core's cache, a miss of its own each; walking their headers one after another
    /// waits for each miss in turn, while a load a few records ahead overlaps them.
    #[inline(always)]
    fn prefetch(&self, offset: usize) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let line = self.data.as_ptr().wrapping_add(offset).cast::<i8>();
            // SAFETY: every x86-64 processor has SSE, which `_mm_prefetch` needs; a prefetch
            // is a hint that never faults nor changes memory, and `offset` lies inside the
            // mapped data area anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
        }
        #[cfg(not(all(target_arch = "x86_64", not(loom))))]
        let _ = offset;
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

    /// Largest record the ring carries.
    pub fn max_record_len(&self) -> usize {
        self.max_record_len
    }

    /// The records published so far, up to `max_records` of them, in order.
    ///
    /// The producer's write sequence is loaded (one acquire load) only when the records
    /// already known to be published run out before `max_records`.
    ///
    /// On a corrupted ring the batch ends with the last sound record; see
    /// [Corrupted rings](Self#corrupted-rings).
    #[inline]
    pub fn read(&mut self, max_records: usize) -> RecordBatch<'_> {
        let mut pos = self.read_pos;
        let mut len = 0;
        let mut refreshed = false;
        // A corrupted ring hands out nothing more; corruption found below ends the loop.
        let max_records = if self.corruption.get().is_some() {
            0
        } else {
            max_records
        };
        while len < max_records {
            if pos == self.cached_write {
                if refreshed || !self.refresh_cached_write() {
                    break;
                }
                refreshed = true;
            }
            let offset = pos as usize & self.mask;
            if pos + PREFETCH_AHEAD_BYTES < self.cached_write {
                self.prefetch((pos + PREFETCH_AHEAD_BYTES) as usize & self.mask);
            }
            let word = self.record_header(offset);
            let (end, record) = match self.record_end(word, pos, offset, self.cached_write) {
                Ok(found) => found,
                Err(error) => {
                    self.corrupted(error);
                    break;
                }
            };
            pos = end;
            len += usize::from(record);
        }
        RecordBatch {
            consumer: self,
            end: pos,
            len,
        }
    }

    /// The records published so far, up to `max_records` of them, found one at a time as
    /// they are iterated: unlike [`read`](Self::read), which walks the records once to count
    /// them before they are iterated, this walks them once in all.
    ///
    /// Releasing the batch frees only the records handed out by its iterators, so records
    /// left unread stay for the next read. The producer's write sequence is loaded (one
    /// acquire load) at most once per batch, when the records already known to be
    /// published run out.
    #[inline]
    pub fn read_lazy(&mut self, max_records: usize) -> LazyBatch<'_> {
        // A corrupted ring hands out nothing more: the batch starts ended.
        let sound = self.corruption.get().is_none();
        LazyBatch {
            pos: Cell::new(self.read_pos),
            end: Cell::new(if sound {
                self.cached_write
            } else {
                self.read_pos
            }),
            refreshed: Cell::new(!sound),
            left: Cell::new(max_records),
            max_records,
            consumer: self,
        }
    }

    /// Announces that this end is about to sleep until woken; a producer that publishes after
    /// this finds the announcement ([`RecordProducer::consumer_needs_wake`]). Look for
    /// records once more afterwards, and sleep only if there are none: either that look
    /// finds what a producer published meanwhile, or the producer finds the announcement.
    /// Call [`awake`](Self::awake) after sleeping, or instead of it.
    ///
    /// [`RecordProducer::consumer_needs_wake`]: super::RecordProducer::consumer_needs_wake
    #[inline]
    pub fn prepare_sleep(&self) {
        self.header()
            .read_seq
            .0
            .consumer_sleeping
            .store(1, Ordering::Relaxed);
        // SeqCst fence: orders the store above before the caller's look for records
        // (store-load), pairing with the fence in `RecordProducer::consumer_needs_wake`.
        fence(Ordering::SeqCst);
    }

    /// Withdraws [`prepare_sleep`](Self::prepare_sleep)'s announcement.
    #[inline]
    pub fn awake(&self) {
        self.header()
            .read_seq
            .0
            .consumer_sleeping
            .store(0, Ordering::Relaxed);
    }

    /// Whether the producer has gone: it detached (was dropped), or its process died. For a
    /// producer in another process this costs a system call, so ask when the ring looks
    /// idle rather than per record. Records it published remain readable.
    pub fn is_abandoned(&self) -> bool {
        owner::is_gone(self.header(), Role::Producer)
    }

    /// The record header word at `offset` (a multiple of 8 below a published sequence).
    #[inline(always)]
    fn record_header(&self, offset: usize) -> u64 {
        debug_assert!(offset.is_multiple_of(RECORD_ALIGN) && offset < self.capacity());
        self.region.note_read(offset, RECORD_HEADER_BYTES);
        // SAFETY: `offset` is masked into the data area and 8-aligned (sequences are checked
        // to be multiples of 8 when loaded from the header, and records and padding advance
        // them by multiples of 8), and the data area is 8-aligned, so the word lies inside
        // it. It is below the published write sequence loaded with acquire, so a sound
        // producer wrote it before publishing and will not touch it before it is released;
        // a hostile one may change it at any time, so the value is read once and checked by
        // the caller before it is used.
        unsafe { self.data.add(offset).cast::<u64>().read() }
    }

    /// The record length in header `word` (not padding) at data `offset`, sequence `pos`,
    /// checked to keep the record inside the data area.
    #[inline(always)]
    fn checked_len(&self, word: u64, pos: u64, offset: usize) -> Result<usize, RingCorruption> {
        if word > self.max_record_len as u64 {
            return Err(RingCorruption::RecordTooLong {
                len: word,
                position: pos,
                max: self.max_record_len,
                capacity: self.capacity(),
            });
        }
        // `word` is at most half the capacity, so this cannot overflow.
        if offset + record_size(word as usize) > self.capacity() {
            return Err(RingCorruption::PastEnd {
                len: word,
                offset,
                capacity: self.capacity(),
            });
        }
        Ok(word as usize)
    }

    /// Where the record or padding with header `word` at sequence `pos` (data `offset`)
    /// ends, checked against the data area and the published sequence `published`, and
    /// whether it is a record (not padding).
    #[inline(always)]
    fn record_end(
        &self,
        word: u64,
        pos: u64,
        offset: usize,
        published: u64,
    ) -> Result<(u64, bool), RingCorruption> {
        let (size, record) = if word == PADDING {
            (self.capacity() - offset, false)
        } else {
            (record_size(self.checked_len(word, pos, offset)?), true)
        };
        // `pos` is at most a capacity above the checked read sequence, so this cannot
        // overflow (see MAX_SEQUENCE).
        let end = pos + size as u64;
        if end > published {
            return Err(RingCorruption::PastWriteSequence {
                position: pos,
                end,
                write_seq: published,
            });
        }
        Ok((end, record))
    }

    /// Loads the producer's write sequence; reports whether it has moved. A corrupt one
    /// stops reading.
    #[cold]
    #[inline(never)]
    fn refresh_cached_write(&mut self) -> bool {
        match self.load_write_seq(self.cached_write) {
            Ok(published) => {
                let moved = published != self.cached_write;
                self.cached_write = published;
                moved
            }
            Err(error) => {
                self.corrupted(error);
                false
            }
        }
    }

    /// Loads the producer's write sequence, checking it against the read sequence and
    /// against `floor`, the write sequence last loaded (records were read below it, so it
    /// may not move back).
    #[cold]
    #[inline(never)]
    fn load_write_seq(&self, floor: u64) -> Result<u64, RingCorruption> {
        // Acquire: pairs with the producer's release in `publish`, so every record byte
        // below this sequence is visible.
        let published = self.header().write_seq.0.load(Ordering::Acquire);
        if published < self.read_pos
            || published - self.read_pos > self.capacity() as u64
            || !published.is_multiple_of(RECORD_ALIGN as u64)
        {
            return Err(RingCorruption::WriteSequence {
                write_seq: published,
                read_seq: self.read_pos,
                capacity: self.capacity(),
            });
        }
        if published < floor {
            return Err(RingCorruption::WriteSequenceBack {
                write_seq: published,
                published: floor,
            });
        }
        Ok(published)
    }

    /// Gives back every byte below `end` to the producer with one release store.
    #[inline]
    fn release_to(&mut self, end: u64) {
        if end != self.read_pos {
            // Release: the producer's acquire load of this sequence orders this consumer's
            // reads of the records before the producer overwrites them.
            self.header().read_seq.0.seq.store(end, Ordering::Release);
            self.read_pos = end;
        }
    }
}

impl Drop for RecordConsumer {
    fn drop(&mut self) {
        owner::detach(self.header(), Role::Consumer, self.owner_word);
    }
}

/// Records read from a [`RecordConsumer`], borrowed from the ring until released.
///
/// [`release`](Self::release) or dropping the batch frees all of its records at once, read
/// or not, with one release store.
pub struct RecordBatch<'a> {
    consumer: &'a mut RecordConsumer,
    /// Sequence right after the batch's last record.
    end: u64,
    len: usize,
}

impl fmt::Debug for RecordBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBatch")
            .field("len", &self.len)
            .field("start", &self.consumer.read_pos)
            .field("end", &self.end)
            .finish()
    }
}

impl RecordBatch<'_> {
    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The records in order, as slices that cannot outlive the batch.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            consumer: self.consumer,
            pos: self.consumer.read_pos,
            end: self.end,
            remaining: self.len,
        }
    }

    /// Frees every record of the batch for the producer with one release store.
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for RecordBatch<'_> {
    fn drop(&mut self) {
        self.consumer.release_to(self.end);
    }
}

impl<'b> IntoIterator for &'b RecordBatch<'_> {
    type Item = &'b [u8];
    type IntoIter = RecordIter<'b>;

    fn into_iter(self) -> RecordIter<'b> {
        self.iter()
    }
}

/// Iterator over the records of a [`RecordBatch`].
pub struct RecordIter<'a> {
    consumer: &'a RecordConsumer,
    pos: u64,
    /// Sequence right after the batch's last record.
    end: u64,
    remaining: usize,
}

impl fmt::Debug for RecordIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordIter")
            .field("pos", &self.pos)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        let consumer = self.consumer;
        // Checked again (it was in `read`) so that no slice can leave the data area even if
        // another process scribbles over the ring in between; a record that changed ends
        // the iteration and stops the consumer.
        let found = (|| {
            let mut offset = self.pos as usize & consumer.mask;
            let mut word = consumer.record_header(offset);
            if word == PADDING {
                self.pos = consumer.record_end(word, self.pos, offset, self.end)?.0;
                offset = 0;
                word = consumer.record_header(offset);
            }
            let len = consumer.checked_len(word, self.pos, offset)?;
            self.pos = consumer.record_end(word, self.pos, offset, self.end)?.0;
            Ok((offset, len))
        })();
        let (offset, len) = match found {
            Ok(found) => found,
            Err(error) => {
                consumer.corrupted(error);
                self.remaining = 0;
                return None;
            }
        };
        self.remaining -= 1;
        consumer.region.note_read(offset + RECORD_HEADER_BYTES, len);
        // SAFETY: `checked_len` keeps `offset + 8 + len` inside the data area; the record is
        // published (below the sequence `read` loaded with acquire) and unreleased while the
        // batch that this iterator borrows lives, so the producer does not write it.
        Some(unsafe {
            std::slice::from_raw_parts(
                consumer.data.add(offset + RECORD_HEADER_BYTES).as_ptr(),
                len,
            )
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Exact but for a ring another process corrupts while the batch is read: the iteration
/// then ends early (see [Corrupted rings](RecordConsumer#corrupted-rings)).
impl ExactSizeIterator for RecordIter<'_> {}

impl FusedIterator for RecordIter<'_> {}

/// Records read from a [`RecordConsumer`] with [`read_lazy`](RecordConsumer::read_lazy),
/// found one at a time as they are iterated and borrowed from the ring until released.
///
/// [`release`](Self::release) or dropping the batch frees the records its iterators handed
/// out, with one release store; the rest stay in the ring. Iterating again resumes after
/// the last record handed out.
pub struct LazyBatch<'a> {
    consumer: &'a mut RecordConsumer,
    /// Sequence right after the last record handed out.
    pos: Cell<u64>,
    /// Published sequence the batch reads below.
    end: Cell<u64>,
    /// Whether `end` was loaded from the producer's write sequence by this batch.
    refreshed: Cell<bool>,
    /// Records that may still be handed out.
    left: Cell<usize>,
    max_records: usize,
}

impl fmt::Debug for LazyBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBatch")
            .field("taken", &self.taken())
            .field("start", &self.consumer.read_pos)
            .field("pos", &self.pos.get())
            .finish()
    }
}

impl LazyBatch<'_> {
    /// Records handed out so far.
    #[inline]
    pub fn taken(&self) -> usize {
        self.max_records - self.left.get()
    }

    /// The records not handed out yet, in order, as slices that cannot outlive the batch.
    #[inline]
    pub fn iter(&self) -> LazyIter<'_> {
        LazyIter { batch: self }
    }

    /// Frees every record handed out for the producer with one release store.
    pub fn release(self) {
        drop(self);
    }

    /// Ends the batch after the records handed out so far: later calls find nothing, with
    /// no check of their own.
    #[cold]
    fn stop(&self) {
        self.end.set(self.pos.get());
        self.refreshed.set(true);
    }

    /// Loads the producer's write sequence once per batch; reports whether records lie
    /// beyond `end` now. A corrupt one stops reading.
    #[cold]
    #[inline(never)]
    fn refresh(&self) -> bool {
        if self.refreshed.replace(true) {
            return false;
        }
        match self.consumer.load_write_seq(self.end.get()) {
            Ok(published) => {
                let moved = published != self.end.get();
                self.end.set(published);
                moved
            }
            Err(error) => {
                self.consumer.corrupted(error);
                false
            }
        }
    }
}

impl Drop for LazyBatch<'_> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.cached_write = self.end.get();
        self.consumer.release_to(self.pos.get());
    }
}

impl<'b> IntoIterator for &'b LazyBatch<'_> {
    type Item = &'b [u8];
    type IntoIter = LazyIter<'b>;

    fn into_iter(self) -> LazyIter<'b> {
        self.iter()
    }
}

/// Iterator over the records of a [`LazyBatch`].
pub struct LazyIter<'a> {
    batch: &'a LazyBatch<'a>,
}

impl fmt::Debug for LazyIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyIter")
            .field("pos", &self.batch.pos.get())
            .finish()
    }
}

impl<'a> Iterator for LazyIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let batch = self.batch;
        let left = batch.left.get();
        let consumer: &'a RecordConsumer = batch.consumer;
        if left == 0 {
            return None;
        }
        let mut pos = batch.pos.get();
        loop {
            if pos == batch.end.get() && !batch.refresh() {
                return None;
            }
            let offset = pos as usize & consumer.mask;
            let word = consumer.record_header(offset);
            let next = match consumer.record_end(word, pos, offset, batch.end.get()) {
                Ok((next, true)) => next,
                Ok((next, false)) => {
                    pos = next;
                    continue;
                }
                Err(error) => {
                    consumer.corrupted(error);
                    batch.stop();
                    return None;
                }
            };
            let len = word as usize;
            batch.pos.set(next);
            batch.left.set(left - 1);
            consumer.region.note_read(offset + RECORD_HEADER_BYTES, len);
            // SAFETY: `record_end` (through `checked_len`) keeps `offset + 8 + len` inside
            // the data area; the record lies below `end`, a write sequence loaded with acquire, so it is
            // published, and it stays unreleased while the batch that this iterator borrows
            // lives (the batch releases only on drop), so the producer does not write it.
            return Some(unsafe {
                std::slice::from_raw_parts(
                    consumer.data.add(offset + RECORD_HEADER_BYTES).as_ptr(),
                    len,
                )
            });
        }
    }
}

impl FusedIterator for LazyIter<'_> {}
