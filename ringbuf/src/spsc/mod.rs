//! Typed single-producer single-consumer ring.
//!
//! [`channel`] allocates a ring of `capacity` entries (a power of two) and returns its two
//! ends. The [`Producer`] moves values in, the [`Consumer`] moves them out, in order. Each
//! handle can be sent to another thread but not shared (`Send`, not `Sync`), and every
//! method takes `&mut self`, so the type system guarantees there is exactly one writer and
//! one reader.
//!
//! # Batches
//!
//! The ring is built for batches: [`Producer::claim`] reserves up to `n` free entries, the
//! returned [`Claim`] is filled with [`Claim::write`], and [`Claim::publish`] makes them all
//! visible with one release store. [`Consumer::read`] returns every published value (up to a
//! limit) as a [`ReadChunk`], which yields the values by value as an iterator (or lends them
//! as slices) and frees all its entries with one release store when it is released or dropped.
//! [`Producer::push`] and [`Consumer::pop`] move one value at a time; a full ring hands the
//! value back in [`Full`].
//!
//! Forgetting a claim or a chunk (`std::mem::forget`) is safe. A forgotten claim publishes
//! nothing (the values written into it are leaked). A forgotten chunk drops and frees
//! nothing, but every value it handed out has left the ring and every value it did not hand
//! out is read again by the next [`Consumer::read`] or [`Consumer::pop`], so no value is
//! handed out or dropped twice; the next release, pop or the consumer's drop frees its
//! entries.
//!
//! # Sequences and memory ordering
//!
//! Both sides count with monotonically increasing, wrapping `usize` sequence numbers; a
//! sequence `s` lives in entry `s & (capacity - 1)`. The ring holds two shared atomics, each
//! on its own cache line (`crossbeam_utils::CachePadded`):
//!
//! - `tail`, written only by the producer: every entry before it holds a published value.
//! - `head`, written only by the consumer: every entry before it has been emptied and freed.
//!
//! `tail - head` never exceeds the capacity. Each side keeps its own sequence in a plain
//! field, so it never loads its own atomic. The consumer's own sequence is the next value
//! it will move out: while it reads a chunk, that sequence moves past each value as the
//! value is moved out, and `head` catches up with it (one store) when the chunk is released.
//! So the ring's contents are the values from the consumer's own sequence to `tail`, and the
//! entries from `head` to it are emptied but still the consumer's. The consumer also stores
//! its sequence to `head` when it is dropped, so that the ring's destructor finds the
//! contents at `head..tail`.
//!
//! Each side also keeps a cached copy of the other side's atomic, which it refreshes only
//! when the cache says the ring is full (producer) or empty (consumer). Most operations
//! therefore touch no cache line the other core is writing.
//!
//! The orderings form two release/acquire pairs:
//!
//! - The producer writes an entry, then stores `tail` with `Release`; the consumer loads
//!   `tail` with `Acquire` before it reads the entry. The value is fully written before the
//!   consumer sees it.
//! - The consumer moves a value out of an entry, then stores `head` with `Release`; the producer
//!   loads `head` with `Acquire` before it reuses the entry. The old value is fully read before
//!   the producer overwrites it.
//!
//! Dropping a handle stores a flag with `Release` that the other side's `is_abandoned` loads
//! with `Acquire`, so once [`Consumer::is_abandoned`] returns `true`, [`Consumer::available`]
//! sees every value the producer ever published. Values still in the ring when both handles
//! are gone are dropped with the ring, exactly once.
//!
//! # Example
//!
//! ```
//! use squall_ringbuf::spsc;
//!
//! let (mut producer, mut consumer) = spsc::channel::<u64>(1000);
//! assert_eq!(producer.capacity(), 1024);
//!
//! let sender = std::thread::spawn(move || {
//!     let mut next = 0;
//!     while next < 10_000 {
//!         let mut claim = producer.claim(64);
//!         while next < 10_000 && claim.write(next).is_ok() {
//!             next += 1;
//!         }
//!         claim.publish();
//!     }
//! });
//!
//! let mut expected = 0;
//! while expected < 10_000 {
//!     for value in consumer.read(usize::MAX) {
//!         assert_eq!(value, expected);
//!         expected += 1;
//!     }
//! }
//! sender.join().unwrap();
//! assert!(consumer.is_abandoned());
//! ```
//!
//! # One writer, one reader
//!
//! Neither end can be shared between threads, so two threads can never push (or pop) at
//! once:
//!
//! ```compile_fail
//! fn shared_between_threads<T: Sync>(_: &T) {}
//! let (producer, _consumer) = squall_ringbuf::spsc::channel::<u64>(8);
//! shared_between_threads(&producer);
//! ```
//!
//! ```compile_fail
//! fn shared_between_threads<T: Sync>(_: &T) {}
//! let (_producer, consumer) = squall_ringbuf::spsc::channel::<u64>(8);
//! shared_between_threads(&consumer);
//! ```
//!
//! and values that must stay on their thread cannot enter a ring at all:
//!
//! ```compile_fail
//! let (_producer, _consumer) = squall_ringbuf::spsc::channel::<std::rc::Rc<u64>>(8);
//! ```

mod consumer;
mod producer;

pub use consumer::{Consumer, ReadChunk};
pub use producer::{Claim, Full, Producer};

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::sync::{Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// One entry of the ring: initialised exactly when its sequence lies between the consumer's
/// own sequence (the next value it moves out, at or after the shared `head`) and `tail`.
type Entry<T> = UnsafeCell<MaybeUninit<T>>;

/// Creates a ring with room for at least `min_capacity` values and returns its two ends.
///
/// The capacity is `min_capacity` rounded up to a power of two, so indexing is a mask.
///
/// # Panics
///
/// If `min_capacity` is 0, or if rounding it up to a power of two overflows `usize`.
pub fn channel<T: Send>(min_capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(
        min_capacity > 0,
        "spsc::channel: min_capacity is 0, a ring needs at least one entry"
    );
    let capacity = min_capacity.checked_next_power_of_two().unwrap_or_else(|| {
        panic!(
            "spsc::channel: min_capacity {min_capacity} overflows usize when rounded up to a power of two"
        )
    });
    let shared = Arc::new(Shared::<T>::with_capacity(capacity));
    let consumer = Consumer::new(Arc::clone(&shared));
    let producer = Producer::new(shared);
    (producer, consumer)
}

/// State shared by both ends of one ring.
struct Shared<T> {
    /// Sequence of the next entry the producer fills; every entry before it is published.
    /// Stored by the producer only (`Release`), loaded by the consumer (`Acquire`).
    tail: CachePadded<AtomicUsize>,
    /// Every entry before it has been emptied and freed; the consumer's own sequence may be
    /// ahead of it, past entries it has emptied but not yet freed (see `Consumer`).
    /// Stored by the consumer only (`Release`), loaded by the producer (`Acquire`).
    head: CachePadded<AtomicUsize>,
    /// `capacity` entries, a power of two.
    entries: Box<[Entry<T>]>,
    /// Set (`Release`) when the producer handle is dropped.
    producer_dropped: AtomicBool,
    /// Set (`Release`) when the consumer handle is dropped.
    consumer_dropped: AtomicBool,
}

impl<T> Shared<T> {
    fn with_capacity(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        let entries = (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect();
        Self {
            tail: CachePadded::new(AtomicUsize::new(0)),
            head: CachePadded::new(AtomicUsize::new(0)),
            entries,
            producer_dropped: AtomicBool::new(false),
            consumer_dropped: AtomicBool::new(false),
        }
    }

    /// Where the handles find the entries; stays valid as long as this `Shared` lives.
    fn entries_ptr(&self) -> *const Entry<T> {
        self.entries.as_ptr()
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        // Both handles are gone, and the last reference count decrement synchronised with
        // every earlier one, so these loads see the final positions of both sides. The
        // consumer stored its own sequence to `head` when it was dropped (a consumer that is
        // never dropped keeps this `Shared` alive), so `head..tail` are exactly the values
        // nobody moved out.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        let mask = self.entries.len() - 1;
        let mut sequence = head;
        while sequence != tail {
            self.entries[sequence & mask].with_mut(|entry| {
                // SAFETY: sequences in `head..tail` hold initialised values that neither
                // handle moved out (the consumer's own sequence moves past every value it
                // takes or drops, and its `Drop` stored that sequence to `head`), and
                // `&mut self` rules out any other access.
                unsafe { (*entry).assume_init_drop() }
            });
            sequence = sequence.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_rounded_up_to_a_power_of_two() {
        for (requested, expected) in [(1, 1), (2, 2), (3, 4), (5, 8), (1000, 1024), (1024, 1024)] {
            let (producer, consumer) = channel::<u8>(requested);
            assert_eq!(producer.capacity(), expected, "requested {requested}");
            assert_eq!(consumer.capacity(), expected, "requested {requested}");
        }
    }

    #[test]
    #[should_panic(expected = "min_capacity is 0")]
    fn zero_capacity_panics() {
        let _ = channel::<u8>(0);
    }

    #[test]
    #[should_panic(expected = "overflows usize")]
    fn overflowing_capacity_panics() {
        let _ = channel::<u8>(usize::MAX);
    }

    #[test]
    fn sequences_wrap_around_usize() {
        let (mut producer, mut consumer) = channel::<u32>(4);
        // Both handles are fresh (the ring is empty), so both may jump to any sequence.
        let start = usize::MAX - 5;
        producer.set_sequence_for_test(start);
        consumer.set_sequence_for_test(start);
        for round in 0..5u32 {
            let mut claim = producer.claim(3);
            for offset in 0..3 {
                claim.write(round * 10 + offset).unwrap();
            }
            claim.publish();
            let taken: Vec<u32> = consumer.read(usize::MAX).collect();
            assert_eq!(taken, vec![round * 10, round * 10 + 1, round * 10 + 2]);
        }
        assert_eq!(producer.free_entries(), 4);
    }
}
