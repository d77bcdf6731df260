//! The reading end of the typed ring.

use std::fmt;
use std::iter::FusedIterator;

use super::{Entry, Shared};
use crate::sync::{Arc, Ordering};

/// The reading end of a ring made by [`channel`](super::channel).
///
/// Invariants (in wrapping sequence arithmetic, where `tail` is the producer's shared
/// sequence): `released_head <= head <= cached_tail <= tail`, and the shared `head` equals
/// `released_head`.
///
/// - The entries `head..cached_tail` hold published values that belong to this handle alone
///   and that it has not moved out.
/// - The entries `released_head..head` have been emptied (their values moved out or dropped)
///   but not yet freed: the producer still counts them as full, so they are ours too, and
///   nothing reads them again. Reading a [`ReadChunk`] moves `head` past each value as it
///   takes it, and releasing the chunk (or a `pop`, or dropping this handle) stores `head`
///   to the shared `head`; a chunk that is forgotten instead only delays that store.
///
/// So `head` alone says which values are still in the ring, whatever happened to the
/// chunks: nothing is read twice, and the ring's destructor, which drops the values from
/// the shared `head` on after this handle's `Drop` has released its `head`, drops only
/// values nobody moved out.
///
/// Aligned to 128 bytes for the reason given on [`Producer`](super::Producer).
#[repr(align(128))]
pub struct Consumer<T> {
    /// Start of the entry array inside `shared` (see `Producer::entries` for why it is here).
    entries: *const Entry<T>,
    /// `capacity - 1`.
    mask: usize,
    /// Sequence of the next value to move out; moved past each value as it is taken.
    head: usize,
    /// The last `head` stored to the shared `head`: the entries before it are free.
    released_head: usize,
    /// Last value loaded from the producer's `tail`.
    cached_tail: usize,
    shared: Arc<Shared<T>>,
}

// SAFETY: the handle owns its `Arc` and its raw pointer points into that `Arc`'s entry array,
// so moving the handle moves nothing another thread still uses; values written on the
// producer's thread are moved out (or dropped) here, which `T: Send` permits. The handle is
// deliberately not `Sync`: its methods assume a single reader.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Consumer<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        Self {
            entries: shared.entries_ptr(),
            mask: shared.entries.len() - 1,
            head: 0,
            released_head: 0,
            cached_tail: 0,
            shared,
        }
    }

    /// Number of entries in the ring (a power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Moves the oldest published value out of the ring, if there is one.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.cached_tail && self.refresh_available() == 0 {
            return None;
        }
        // SAFETY: `head < cached_tail`, so entry `head` holds a published value of ours that
        // has not been moved out.
        let value = unsafe { self.read_entry(self.head) };
        self.head = self.head.wrapping_add(1);
        // Frees this entry, and those of any chunk that was forgotten before it was released.
        self.released_head = self.head;
        // Release: our reads of the freed entries happen before the producer reuses them.
        self.shared.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Number of published values waiting right now (loads the producer's position).
    #[inline]
    pub fn available(&mut self) -> usize {
        self.refresh_available()
    }

    /// Takes up to `max` published values (possibly none) as one chunk; pass `usize::MAX`
    /// for all of them.
    ///
    /// The producer's position is loaded only when the cached one shows fewer than `max`
    /// values. The chunk's entries are freed together when it is released or dropped.
    ///
    /// The chunk starts after the last value moved out of the ring, even if that value came
    /// from an earlier chunk that was forgotten (`std::mem::forget`) instead of released:
    /// values that chunk handed out are gone, values it did not hand out come again here,
    /// and this chunk's release frees the entries of both.
    #[inline]
    pub fn read(&mut self, max: usize) -> ReadChunk<'_, T> {
        let mut available = self.cached_available();
        if available < max {
            available = self.refresh_available();
        }
        let next = self.head;
        ReadChunk {
            next,
            end: next.wrapping_add(available.min(max)),
            consumer: self,
        }
    }

    /// Whether the [`Producer`](super::Producer) has been dropped. Once this returns `true`,
    /// [`available`](Self::available) counts every value the producer ever published, so a
    /// consumer can drain the ring and stop.
    #[inline]
    pub fn is_abandoned(&self) -> bool {
        // Acquire pairs with the producer's release store in its `Drop`.
        self.shared.producer_dropped.load(Ordering::Acquire)
    }

    /// Published values according to the cached producer position (never more than the
    /// truth).
    #[inline(always)]
    fn cached_available(&self) -> usize {
        self.cached_tail.wrapping_sub(self.head)
    }

    /// Reloads the producer's position and returns the published values.
    #[inline]
    fn refresh_available(&mut self) -> usize {
        // Acquire: the producer's writes of the values it published happen before we read.
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        self.cached_available()
    }

    /// The entry of `sequence`.
    ///
    /// # Safety
    ///
    /// `sequence` lies in `head..cached_tail` (wrapping): a published entry of this handle.
    #[inline(always)]
    unsafe fn entry(&self, sequence: usize) -> &Entry<T> {
        debug_assert!(sequence.wrapping_sub(self.head) < self.cached_available());
        // SAFETY: `sequence & mask` is below the capacity, the length of the entry array that
        // `entries` points to and that `shared` keeps alive.
        unsafe { &*self.entries.add(sequence & self.mask) }
    }

    /// Moves the value out of the entry of `sequence`, leaving the entry logically empty.
    ///
    /// # Safety
    ///
    /// `sequence` lies in `head..cached_tail` (wrapping), and the caller moves `head` past it
    /// before anything could read it again (so before it returns control to code outside
    /// this module).
    #[inline(always)]
    unsafe fn read_entry(&self, sequence: usize) -> T {
        // SAFETY: forwarded from this function's contract.
        let entry = unsafe { self.entry(sequence) };
        entry.with(|entry| {
            // SAFETY: the entry is published (initialised, and the producer does not touch it
            // until the shared `head` moves past it), its value has not been moved out
            // (`head` is not past it), and the caller moves `head` past it, so its value is
            // moved out only once.
            unsafe { (*entry).assume_init_read() }
        })
    }

    /// Frees the entries before `head`, whose values have been moved out, unless they are free
    /// already.
    #[inline(always)]
    fn release(&mut self) {
        if self.head == self.released_head {
            return;
        }
        self.released_head = self.head;
        // Release: our reads of the freed entries happen before the producer reuses them.
        self.shared.head.store(self.head, Ordering::Release);
    }

    #[cfg(test)]
    pub(super) fn set_sequence_for_test(&mut self, sequence: usize) {
        self.head = sequence;
        self.released_head = sequence;
        self.cached_tail = sequence;
        self.shared.head.store(sequence, Ordering::Release);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // The values moved out by chunks that were forgotten rather than released are freed
        // here, so the ring's destructor, which starts at the shared `head`, does not drop
        // them again.
        self.release();
        // Release: a producer that sees the flag also sees every `head` stored before it
        // (the ring's destructor needs no ordering from it: the `Arc` count orders both
        // handles' last stores before it).
        self.shared.consumer_dropped.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("head", &self.head)
            .field("released_head", &self.released_head)
            .field("cached_tail", &self.cached_tail)
            .finish_non_exhaustive()
    }
}

/// Published values taken by [`Consumer::read`], oldest first.
///
/// Iterating moves the values out in order. Releasing the chunk ([`ReadChunk::release`] or
/// drop) first drops the values not moved out, then frees every entry of the chunk with one
/// release store.
///
/// Each value leaves the ring as it is moved out: the consumer's own sequence moves past it
/// then, not when the chunk is released. A chunk that is forgotten (`std::mem::forget`)
/// therefore drops nothing and frees nothing, but it cannot make the ring hand out or drop
/// a value twice either: the values it did not hand out are read again by the next
/// [`Consumer::read`] or [`Consumer::pop`], and its entries are freed by the next release, pop
/// or the consumer's drop.
pub struct ReadChunk<'a, T> {
    consumer: &'a mut Consumer<T>,
    /// Sequence of the next value to move out; always equal to `consumer.head`, kept here too
    /// so the iterator's loop carries it in a register and only stores it to the consumer.
    next: usize,
    /// End of the chunk: the values `next..end` are published values of the consumer's that
    /// have not been moved out (`next <= end <= consumer.cached_tail`, wrapping).
    end: usize,
}

impl<T> ReadChunk<'_, T> {
    /// Number of values in the chunk not yet moved out.
    #[inline]
    pub fn len(&self) -> usize {
        self.end.wrapping_sub(self.next)
    }

    /// Whether every value of the chunk has been moved out (or there were none).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.next == self.end
    }

    /// The values not yet moved out, in order, as two slices (the second one is empty unless
    /// the values wrap around the end of the ring).
    ///
    /// Not available under `cfg(loom)`, whose model-checked cells cannot be viewed as a
    /// slice.
    #[cfg(not(loom))]
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let remaining = self.len();
        if remaining == 0 {
            return (&[], &[]);
        }
        let consumer = &*self.consumer;
        let first_index = self.next & consumer.mask;
        let first_len = remaining.min(consumer.capacity() - first_index);
        // SAFETY: `next` is a published entry of ours whose value is still there
        // (`next == consumer.head < end <= consumer.cached_tail`).
        let first = unsafe { consumer.entry(self.next) };
        // SAFETY: the entries `first_index..first_index + first_len` and `0..remaining -
        // first_len` are within the entry array and hold the published, not yet moved out
        // values of this chunk; `Entry<T>` has the layout of `T` (both cell types and
        // `MaybeUninit` are `repr(transparent)`). The producer does not write these entries
        // before the shared `head` moves past them, which only the consumer does, and the
        // chunk borrows the consumer mutably; moving values out needs `&mut self`, so
        // nothing changes them while the slices live.
        unsafe {
            let first = std::slice::from_raw_parts(first as *const Entry<T> as *const T, first_len);
            let second =
                std::slice::from_raw_parts(consumer.entries as *const T, remaining - first_len);
            (first, second)
        }
    }

    /// Drops the values not moved out and frees every entry of the chunk with one release
    /// store (same as dropping the chunk).
    #[inline]
    pub fn release(self) {}
}

impl<T> Iterator for ReadChunk<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.next == self.end {
            return None;
        }
        let sequence = self.next;
        // SAFETY: `next < end`, so `sequence` is a published entry of the consumer's whose value
        // has not been moved out (`sequence == consumer.head`), and `consumer.head` moves past
        // it just below, before the value is handed out (nothing in between can panic or
        // read the entry).
        let value = unsafe { self.consumer.read_entry(sequence) };
        self.next = sequence.wrapping_add(1);
        // A plain store to the consumer's own field; the entry is freed by the release.
        self.consumer.head = self.next;
        Some(value)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.len();
        (remaining, Some(remaining))
    }
}

impl<T> ExactSizeIterator for ReadChunk<'_, T> {}

impl<T> FusedIterator for ReadChunk<'_, T> {}

impl<T> Drop for ReadChunk<'_, T> {
    #[inline]
    fn drop(&mut self) {
        /// Frees the entries emptied so far even if a value's destructor panics. The values
        /// after a panicking one stay in the ring (`head` has not moved past them), for the
        /// next read or the ring's destructor: none is lost or dropped twice.
        struct ReleaseOnExit<'c, T> {
            consumer: &'c mut Consumer<T>,
        }
        impl<T> Drop for ReleaseOnExit<'_, T> {
            #[inline]
            fn drop(&mut self) {
                self.consumer.release();
            }
        }

        let guard = ReleaseOnExit {
            consumer: &mut *self.consumer,
        };
        if std::mem::needs_drop::<T>() {
            while self.next != self.end {
                let sequence = self.next;
                // SAFETY: as in `next`: `sequence == consumer.head < end`, a published entry
                // whose value has not been moved out, and `head` moves past it just below,
                // before the value's destructor runs (and may panic).
                let value = unsafe { guard.consumer.read_entry(sequence) };
                self.next = sequence.wrapping_add(1);
                guard.consumer.head = self.next;
                drop(value);
            }
        } else {
            // Nothing to drop: skip the values.
            self.next = self.end;
            guard.consumer.head = self.end;
        }
    }
}

impl<T> fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadChunk")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
