//! The writing end of the typed ring.

use std::fmt;
use std::mem::MaybeUninit;

use super::{Entry, Shared};
use crate::sync::{Arc, Ordering};

/// The writing end of a ring made by [`channel`](super::channel).
///
/// Invariants: `cached_head <= head <= tail` and `tail - cached_head <= capacity` (in wrapping
/// sequence arithmetic), where `head` is the consumer's shared sequence; the entries
/// `tail..cached_head + capacity` are free and belong to this handle alone.
///
/// The handle writes its own fields on every push, so it is aligned to 128 bytes (a pair of
/// cache lines, which some CPUs fetch together): wherever it is stored, say next to the
/// [`Consumer`](super::Consumer) in one `Vec` or struct, no other thread's data shares its
/// lines. The "handles side by side" cases of the workspace's `rings` benchmark measure
/// what this buys (see `BENCHMARKS.md`).
#[repr(align(128))]
pub struct Producer<T> {
    /// Start of the entry array inside `shared`, kept here so hot paths read it from the
    /// handle (which `&mut self` lets the compiler keep in a register) rather than through
    /// the `Arc` after every entry write.
    entries: *const Entry<T>,
    /// `capacity - 1`.
    mask: usize,
    /// Sequence of the next entry to fill; equals the shared `tail` outside a [`Claim`].
    tail: usize,
    /// Last value loaded from the consumer's `head`.
    cached_head: usize,
    shared: Arc<Shared<T>>,
}

// SAFETY: the handle owns its `Arc` and its raw pointer points into that `Arc`'s entry array,
// so moving the handle to another thread moves nothing that another thread still uses; values
// written here are read (and possibly dropped) on the consumer's thread, which `T: Send`
// permits. The handle is deliberately not `Sync`: its methods assume a single writer.
unsafe impl<T: Send> Send for Producer<T> {}

impl<T> Producer<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        Self {
            entries: shared.entries_ptr(),
            mask: shared.entries.len() - 1,
            tail: 0,
            cached_head: 0,
            shared,
        }
    }

    /// Number of entries in the ring (a power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Moves `value` into the ring and publishes it, or hands it back if the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), Full<T>> {
        if self.cached_free() == 0 && self.refresh_free() == 0 {
            return Err(Full(value));
        }
        // SAFETY: there is at least one free entry, so entry `tail` belongs to this handle.
        unsafe { self.write_entry(self.tail, value) };
        self.tail = self.tail.wrapping_add(1);
        // Release: the value written above is visible to a consumer that sees this `tail`.
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Number of free entries right now (loads the consumer's position).
    #[inline]
    pub fn free_entries(&mut self) -> usize {
        self.refresh_free()
    }

    /// Reserves up to `max` free entries (possibly none) to be filled and published together.
    ///
    /// The consumer's position is loaded only when the cached one shows fewer than `max`
    /// free entries.
    #[inline]
    pub fn claim(&mut self, max: usize) -> Claim<'_, T> {
        let mut free = self.cached_free();
        if free < max {
            free = self.refresh_free();
        }
        Claim {
            claimed: free.min(max),
            written: 0,
            producer: self,
        }
    }

    /// Whether the [`Consumer`](super::Consumer) has been dropped; nothing pushed from then on
    /// will be read.
    #[inline]
    pub fn is_abandoned(&self) -> bool {
        // Acquire pairs with the consumer's release store in its `Drop`.
        self.shared.consumer_dropped.load(Ordering::Acquire)
    }

    /// Free entries according to the cached consumer position (never more than the truth).
    #[inline(always)]
    fn cached_free(&self) -> usize {
        self.capacity() - self.tail.wrapping_sub(self.cached_head)
    }

    /// Reloads the consumer's position and returns the free entries.
    #[inline]
    fn refresh_free(&mut self) -> usize {
        // Acquire: the consumer's reads of the entries it freed happen before we reuse them.
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        self.cached_free()
    }

    /// Moves `value` into the entry of `sequence` without publishing it.
    ///
    /// # Safety
    ///
    /// The entry must be free and belong to this handle: `sequence` lies in
    /// `tail..cached_head + capacity` (wrapping).
    #[inline(always)]
    unsafe fn write_entry(&mut self, sequence: usize, value: T) {
        debug_assert!(sequence.wrapping_sub(self.tail) < self.cached_free());
        // SAFETY: forwarded from this function's contract; `sequence & mask` is its index.
        unsafe { self.write_index(sequence & self.mask, value) };
    }

    /// Moves `value` into the entry at `index` of the entry array without publishing it.
    ///
    /// # Safety
    ///
    /// `index` is below the capacity, and its entry is free and belongs to this handle (its
    /// sequence lies in `tail..cached_head + capacity`, wrapping).
    #[inline(always)]
    unsafe fn write_index(&mut self, index: usize, value: T) {
        debug_assert!(index <= self.mask);
        // SAFETY: `index` is below the capacity, the length of the entry array that `entries`
        // points to and that `shared` keeps alive.
        let entry = unsafe { &*self.entries.add(index) };
        entry.with_mut(|entry| {
            // SAFETY: per this function's contract the consumer does not touch this entry
            // until `tail` is published past it, so this is the only access.
            unsafe { entry.write(MaybeUninit::new(value)) };
        });
    }

    #[cfg(test)]
    pub(super) fn set_sequence_for_test(&mut self, sequence: usize) {
        self.tail = sequence;
        self.cached_head = sequence;
        self.shared.tail.store(sequence, Ordering::Release);
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: a consumer that sees the flag also sees every `tail` stored before it.
        self.shared.producer_dropped.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail)
            .field("cached_head", &self.cached_head)
            .finish_non_exhaustive()
    }
}

/// Free entries reserved by [`Producer::claim`], filled in order by [`Claim::write`].
///
/// Nothing written is visible to the consumer until the claim is published, by
/// [`Claim::publish`] or by dropping it; both publish exactly the written entries with one
/// release store. Unwritten claimed entries simply stay free.
pub struct Claim<'a, T> {
    producer: &'a mut Producer<T>,
    /// Entries reserved, all free: `producer.tail..producer.tail + claimed`.
    claimed: usize,
    /// Entries filled so far, from `producer.tail` on (`written <= claimed`).
    written: usize,
}

impl<T> Claim<'_, T> {
    /// Number of entries claimed.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.claimed
    }

    /// Number of entries written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.written
    }

    /// Whether nothing has been written yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Number of claimed entries still to be written.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.claimed - self.written
    }

    /// Writes `value` into the next claimed entry, or hands it back if every claimed entry
    /// is already written.
    #[inline]
    pub fn write(&mut self, value: T) -> Result<(), T> {
        if self.written == self.claimed {
            return Err(value);
        }
        let sequence = self.producer.tail.wrapping_add(self.written);
        // SAFETY: `written < claimed`, and the claimed entries are free entries of the producer.
        unsafe { self.producer.write_entry(sequence, value) };
        self.written += 1;
        Ok(())
    }

    /// Writes values from `values` until it is exhausted or every claimed entry is written;
    /// returns how many were written. Values the iterator did not yield are left in it.
    #[inline]
    pub fn fill_from_iter(&mut self, values: impl IntoIterator<Item = T>) -> usize {
        let mut values = values.into_iter();
        let producer = &mut *self.producer;
        let remaining = self.claimed - self.written;
        // The entries still to write are at most two runs of the entry array: up to its end,
        // then from its start. Walking them by index rather than masking every sequence
        // lets the compiler turn the loop into plain stores (measured: 2.5x faster per value
        // than the masked loop for `u64`, single-threaded, in batches of 256).
        let first_index = producer.tail.wrapping_add(self.written) & producer.mask;
        let first_len = remaining.min(producer.capacity() - first_index);
        let mut written = 0;
        'runs: for (start, len) in [(first_index, first_len), (0, remaining - first_len)] {
            for index in start..start + len {
                let Some(value) = values.next() else {
                    break 'runs;
                };
                // SAFETY: `index` is below the capacity (`first_index + first_len` and
                // `remaining - first_len` are both at most the capacity), and the two runs
                // cover exactly the claimed entries not yet written, which are free entries of
                // the producer.
                unsafe { producer.write_index(index, value) };
                written += 1;
            }
        }
        self.written += written;
        written
    }

    /// Publishes the written entries with one release store (same as dropping the claim).
    #[inline]
    pub fn publish(self) {}
}

impl<T> Drop for Claim<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.written == 0 {
            return;
        }
        let producer = &mut *self.producer;
        producer.tail = producer.tail.wrapping_add(self.written);
        // Release: every value written into the claim is visible to a consumer that sees
        // this `tail`.
        producer.shared.tail.store(producer.tail, Ordering::Release);
    }
}

impl<T> fmt::Debug for Claim<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("claimed", &self.claimed)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// The ring was full; the value that could not be pushed is handed back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        self.0
    }
}

// Written by hand so `push(..).unwrap()` works for values that are not `Debug`.
impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring is full: the consumer has not freed any entry")
    }
}

impl<T> std::error::Error for Full<T> {}
