//! Neither ring's hot path allocates, and a ring gives back its memory once both ends are
//! dropped. A counting allocator tallies what each thread allocates.

use std::any::Any;

use squall_ringbuf::record::{RecordConsumer, RecordProducer, RecordRing, heap_ring};
use squall_ringbuf::spsc;
use squall_test_support::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    CountingAllocator::thread_allocations()
}

fn live_bytes() -> i64 {
    CountingAllocator::thread_live_bytes()
}

/// Many rounds of batched writes, publishes, reads and releases, wrapping the ring often.
fn exercise(producer: &mut RecordProducer, consumer: &mut RecordConsumer, rounds: usize) {
    let record = [0x5a_u8; 100];
    let mut checksum = 0u64;
    for round in 0..rounds {
        for len in [0, 1, 17, 64, 100] {
            producer.write(&record[..len]).unwrap();
        }
        producer
            .write_with(64, |buf| {
                buf[..8].copy_from_slice(&(round as u64).to_le_bytes());
                8
            })
            .unwrap();
        producer.publish();
        let batch = consumer.read(usize::MAX);
        assert_eq!(batch.len(), 6);
        for record in batch.iter() {
            checksum = checksum.wrapping_add(record.len() as u64);
        }
        batch.release();
    }
    assert_eq!(checksum, (182 + 8) * rounds as u64);
}

/// Runs `exercise` for a few rounds to warm up, then for many, and asserts that the many
/// allocated nothing.
fn assert_allocation_free(mut exercise: impl FnMut(usize)) {
    exercise(10);
    let before = allocations();
    exercise(10_000);
    assert_eq!(allocations() - before, 0);
}

/// The two ends of a ring, type-erased so that either can be dropped first.
type Ends = (Box<dyn Any>, Box<dyn Any>);

/// Builds a ring with `make` (which returns its producer and consumer, used a little) and
/// checks that its `ring_bytes` stay allocated until both ends are dropped, in either order.
fn assert_freed_with_both_ends(ring_bytes: i64, make: impl Fn() -> Ends) {
    for producer_first in [true, false] {
        let baseline = live_bytes();
        let (producer, consumer) = make();
        assert!(live_bytes() - baseline >= ring_bytes);
        let (first, second) = if producer_first {
            (producer, consumer)
        } else {
            (consumer, producer)
        };
        drop(first);
        assert!(
            live_bytes() - baseline >= ring_bytes,
            "freed while one end lives (producer dropped first: {producer_first})"
        );
        drop(second);
        assert_eq!(live_bytes(), baseline);
    }
}

#[test]
fn heap_ring_hot_path_does_not_allocate() {
    let (mut producer, mut consumer) = heap_ring(4096);
    assert_allocation_free(|rounds| exercise(&mut producer, &mut consumer, rounds));
}

#[test]
fn mapped_ring_hot_path_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let ring = RecordRing::create(dir.path().join("alloc.ring"), 4096).unwrap();
    let mut producer = ring.producer().unwrap();
    let mut consumer = ring.consumer().unwrap();
    assert_allocation_free(|rounds| exercise(&mut producer, &mut consumer, rounds));
}

#[test]
fn heap_ring_memory_is_freed_when_both_ends_are_dropped() {
    assert_freed_with_both_ends(1 << 16, || {
        let (mut producer, mut consumer) = heap_ring(1 << 16);
        exercise(&mut producer, &mut consumer, 100);
        (Box::new(producer), Box::new(consumer))
    });
}

/// Many rounds of claims, pushes, reads and pops, wrapping the ring often.
fn exercise_typed(
    producer: &mut spsc::Producer<u64>,
    consumer: &mut spsc::Consumer<u64>,
    rounds: usize,
) {
    let mut sum = 0;
    for round in 0..rounds as u64 {
        let mut claim = producer.claim(5);
        claim.fill_from_iter(round..round + 5);
        claim.publish();
        producer.push(round).unwrap();
        sum += consumer.pop().unwrap();
        sum += consumer.read(usize::MAX).sum::<u64>();
    }
    assert_eq!(
        sum,
        (0..rounds as u64).map(|round| 6 * round + 10).sum::<u64>()
    );
}

#[test]
fn typed_ring_hot_path_does_not_allocate() {
    let (mut producer, mut consumer) = spsc::channel::<u64>(16);
    assert_allocation_free(|rounds| exercise_typed(&mut producer, &mut consumer, rounds));
}

#[test]
fn typed_ring_memory_is_freed_when_both_ends_are_dropped() {
    assert_freed_with_both_ends(8 << 12, || {
        let (mut producer, mut consumer) = spsc::channel::<u64>(1 << 12);
        exercise_typed(&mut producer, &mut consumer, 100);
        (Box::new(producer), Box::new(consumer))
    });
}
