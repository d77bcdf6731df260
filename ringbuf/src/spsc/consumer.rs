//! The reading end of the typed ring.

use std::fmt;
use std::iter::FusedIterator;

use super::{Shared, Slot};
use crate::sync::{Arc, Ordering};

/// The reading end of a ring made by [`channel`](super::channel).
///
/// Invariants: `head <= cached_tail <= tail` (in wrapping sequence arithmetic), where `tail`
/// is the producer's shared sequence; the slots `head..cached_tail` hold published values
/// that belong to this handle alone.
///
/// Aligned to 128 bytes for the reason given on [`Producer`](super::Producer).
#[repr(align(128))]
pub struct Consumer<T> {
    /// Start of the slot array inside `shared` (see `Producer::slots` for why it is here).
    slots: *const Slot<T>,
    /// `capacity - 1`.
    mask: usize,
    /// Sequence of the next slot to empty; equals the shared `head` outside a [`ReadChunk`].
    head: usize,
    /// Last value loaded from the producer's `tail`.
    cached_tail: usize,
    shared: Arc<Shared<T>>,
}

// SAFETY: the handle owns its `Arc` and its raw pointer points into that `Arc`'s slot array,
// so moving the handle moves nothing another thread still uses; values written on the
// producer's thread are moved out (or dropped) here, which `T: Send` permits. The handle is
// deliberately not `Sync`: its methods assume a single reader.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Consumer<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        Self {
            slots: shared.slots_ptr(),
            mask: shared.slots.len() - 1,
            head: 0,
            cached_tail: 0,
            shared,
        }
    }

    /// Number of slots in the ring (a power of two).
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
        // SAFETY: `head < cached_tail`, so slot `head` holds a published value of ours.
        let value = unsafe { self.read_slot(self.head) };
        self.head = self.head.wrapping_add(1);
        // Release: our read of the value happens before the producer reuses the slot.
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
    /// values. The chunk's slots are freed together when it is released or dropped.
    #[inline]
    pub fn read(&mut self, max: usize) -> ReadChunk<'_, T> {
        let mut available = self.cached_available();
        if available < max {
            available = self.refresh_available();
        }
        ReadChunk {
            len: available.min(max),
            taken: 0,
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

    /// The slot of `sequence`.
    ///
    /// # Safety
    ///
    /// `sequence` lies in `head..cached_tail` (wrapping): a published slot of this handle.
    #[inline(always)]
    unsafe fn slot(&self, sequence: usize) -> &Slot<T> {
        debug_assert!(sequence.wrapping_sub(self.head) < self.cached_available());
        // SAFETY: `sequence & mask` is below the capacity, the length of the slot array that
        // `slots` points to and that `shared` keeps alive.
        unsafe { &*self.slots.add(sequence & self.mask) }
    }

    /// Moves the value out of the slot of `sequence`, leaving the slot logically empty.
    ///
    /// # Safety
    ///
    /// `sequence` lies in `head..cached_tail` (wrapping), and its value has not been moved
    /// out before.
    #[inline(always)]
    unsafe fn read_slot(&self, sequence: usize) -> T {
        // SAFETY: forwarded from this function's contract.
        let slot = unsafe { self.slot(sequence) };
        slot.with(|slot| {
            // SAFETY: the slot is published (initialised, and the producer does not touch it
            // until `head` moves past it), and its value is moved out only once.
            unsafe { (*slot).assume_init_read() }
        })
    }

    /// Frees the `count` slots from `head` on, whose values have been moved out.
    #[inline(always)]
    fn release(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        self.head = self.head.wrapping_add(count);
        // Release: our reads of the freed slots happen before the producer reuses them.
        self.shared.head.store(self.head, Ordering::Release);
    }

    #[cfg(test)]
    pub(super) fn set_sequence_for_test(&mut self, sequence: usize) {
        self.head = sequence;
        self.cached_tail = sequence;
        self.shared.head.store(sequence, Ordering::Release);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Release: a producer that sees the flag also sees every `head` stored before it.
        self.shared.consumer_dropped.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("head", &self.head)
            .field("cached_tail", &self.cached_tail)
            .finish_non_exhaustive()
    }
}

/// Published values taken by [`Consumer::read`], oldest first.
///
/// Iterating moves the values out in order. Releasing the chunk ([`ReadChunk::release`] or
/// drop) first drops the values not moved out, then frees every slot of the chunk with one
/// release store.
pub struct ReadChunk<'a, T> {
    consumer: &'a mut Consumer<T>,
    /// Published slots in the chunk: `consumer.head..consumer.head + len`.
    len: usize,
    /// Values already moved out, from `consumer.head` on (`taken <= len`).
    taken: usize,
}

impl<T> ReadChunk<'_, T> {
    /// Number of values in the chunk not yet moved out.
    #[inline]
    pub fn len(&self) -> usize {
        self.len - self.taken
    }

    /// Whether every value of the chunk has been moved out (or there were none).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == self.taken
    }

    /// The values not yet moved out, in order, as two slices (the second one is empty unless
    /// the values wrap around the end of the ring).
    ///
    /// Not available under `cfg(loom)`, whose model-checked cells cannot be viewed as a
    /// slice.
    #[cfg(not(loom))]
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let remaining = self.len - self.taken;
        if remaining == 0 {
            return (&[], &[]);
        }
        let consumer = &*self.consumer;
        let first_sequence = consumer.head.wrapping_add(self.taken);
        let first_index = first_sequence & consumer.mask;
        let first_len = remaining.min(consumer.capacity() - first_index);
        // SAFETY: `first_sequence` is a published slot of ours whose value is still there.
        let first = unsafe { consumer.slot(first_sequence) };
        // SAFETY: the slots `first_index..first_index + first_len` and `0..remaining -
        // first_len` are within the slot array and hold the published, not yet moved out
        // values of this chunk; `Slot<T>` has the layout of `T` (both cell types and
        // `MaybeUninit` are `repr(transparent)`). The producer does not write these slots
        // before the chunk is released, which needs `self` by value, and moving values out
        // needs `&mut self`, so nothing changes them while the slices live.
        unsafe {
            let first = std::slice::from_raw_parts(first as *const Slot<T> as *const T, first_len);
            let second =
                std::slice::from_raw_parts(consumer.slots as *const T, remaining - first_len);
            (first, second)
        }
    }

    /// Drops the values not moved out and frees every slot of the chunk with one release
    /// store (same as dropping the chunk).
    #[inline]
    pub fn release(self) {}
}

impl<T> Iterator for ReadChunk<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.taken == self.len {
            return None;
        }
        let sequence = self.consumer.head.wrapping_add(self.taken);
        self.taken += 1;
        // SAFETY: `taken < len` before the increment, so `sequence` is a published slot of the
        // chunk, and `taken` has moved past it, so its value is never read again.
        Some(unsafe { self.consumer.read_slot(sequence) })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.len - self.taken;
        (remaining, Some(remaining))
    }
}

impl<T> ExactSizeIterator for ReadChunk<'_, T> {}

impl<T> FusedIterator for ReadChunk<'_, T> {}

impl<T> Drop for ReadChunk<'_, T> {
    #[inline]
    fn drop(&mut self) {
        /// Frees the chunk's slots even if a value's destructor panics: otherwise the ring's
        /// own destructor would later drop values that were already moved out. (Values after
        /// a panicking one are then leaked, never dropped twice.)
        struct ReleaseOnExit<'c, T> {
            consumer: &'c mut Consumer<T>,
            count: usize,
        }
        impl<T> Drop for ReleaseOnExit<'_, T> {
            #[inline]
            fn drop(&mut self) {
                self.consumer.release(self.count);
            }
        }

        let guard = ReleaseOnExit {
            consumer: &mut *self.consumer,
            count: self.len,
        };
        if std::mem::needs_drop::<T>() {
            while self.taken < self.len {
                let sequence = guard.consumer.head.wrapping_add(self.taken);
                self.taken += 1;
                // SAFETY: `sequence` is a published slot of the chunk whose value was not moved
                // out, and `taken` has moved past it.
                drop(unsafe { guard.consumer.read_slot(sequence) });
            }
        }
    }
}

impl<T> fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadChunk")
            .field("len", &self.len)
            .field("taken", &self.taken)
            .finish_non_exhaustive()
    }
}
