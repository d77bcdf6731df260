//! The typed ring through its public API: batches and single values, full and empty rings,
//! abandonment, drops, forgotten chunks, and two threads moving millions of values.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use squall_ringbuf::spsc::{self, Full};

/// Counts the drops of every value made from it.
#[derive(Debug, Default)]
struct DropCounter(AtomicUsize);

impl DropCounter {
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value whose drop is counted; it can be told to panic when dropped.
#[derive(Debug)]
struct Counted {
    counter: Arc<DropCounter>,
    panics_on_drop: bool,
}

impl Counted {
    fn new(counter: &Arc<DropCounter>) -> Self {
        Self {
            counter: Arc::clone(counter),
            panics_on_drop: false,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counter.0.fetch_add(1, Ordering::Relaxed);
        if self.panics_on_drop {
            panic!("drop of a value that panics on drop");
        }
    }
}

/// How often each value made by [`Ledger::value`] has been dropped, indexed by its id.
#[derive(Debug, Default)]
struct Ledger(std::sync::Mutex<Vec<usize>>);

impl Ledger {
    /// A new value with the next id, whose drops this ledger counts.
    fn value(self: &Arc<Self>) -> Numbered {
        let mut drops = self.0.lock().unwrap();
        drops.push(0);
        Numbered {
            id: drops.len() - 1,
            ledger: Arc::clone(self),
        }
    }

    /// How often each value has been dropped so far.
    fn drops(&self) -> Vec<usize> {
        self.0.lock().unwrap().clone()
    }
}

/// A value with an id that counts its drops in a [`Ledger`].
#[derive(Debug)]
struct Numbered {
    id: usize,
    ledger: Arc<Ledger>,
}

impl Drop for Numbered {
    fn drop(&mut self) {
        self.ledger.0.lock().unwrap()[self.id] += 1;
    }
}

#[test]
fn push_and_pop_keep_order_and_a_full_ring_hands_the_value_back() {
    let (mut producer, mut consumer) = spsc::channel::<String>(4);
    assert_eq!(consumer.pop(), None);
    for word in ["a", "b", "c", "d"] {
        producer.push(word.to_owned()).unwrap();
    }
    assert_eq!(producer.free_entries(), 0);
    let Err(Full(back)) = producer.push("e".to_owned()) else {
        panic!("a full ring accepted a value");
    };
    assert_eq!(back, "e");
    let error = producer.push(back).unwrap_err();
    assert_eq!(format!("{error:?}"), "Full(..)");
    assert_eq!(
        error.to_string(),
        "ring is full: the consumer has not freed any entry"
    );
    assert_eq!(error.into_inner(), "e");
    assert_eq!(consumer.available(), 4);
    assert_eq!(consumer.pop().as_deref(), Some("a"));
    producer.push("e".to_owned()).unwrap();
    let rest: Vec<String> = std::iter::from_fn(|| consumer.pop()).collect();
    assert_eq!(rest, ["b", "c", "d", "e"]);
}

#[test]
fn claims_publish_only_what_was_written_and_only_when_done() {
    let (mut producer, mut consumer) = spsc::channel::<u32>(8);
    let mut claim = producer.claim(5);
    assert_eq!(
        (claim.capacity(), claim.len(), claim.remaining()),
        (5, 0, 5)
    );
    assert!(claim.is_empty());
    claim.write(1).unwrap();
    assert_eq!(claim.fill_from_iter([2, 3]), 2);
    assert!(format!("{claim:?}").contains("written: 3"));
    assert!(
        consumer.read(usize::MAX).is_empty(),
        "visible before publish"
    );
    claim.publish();
    // The two unwritten claimed entries stayed free.
    assert_eq!(producer.free_entries(), 5);
    // A claim never reserves more than is free, and refuses values beyond it.
    let mut claim = producer.claim(usize::MAX);
    assert_eq!(claim.capacity(), 5);
    let mut values = 4..20;
    assert_eq!(claim.fill_from_iter(&mut values), 5);
    assert_eq!(
        values.next(),
        Some(9),
        "values the claim had no room for stay put"
    );
    assert_eq!(claim.write(100), Err(100));
    drop(claim);
    let all: Vec<u32> = consumer.read(usize::MAX).collect();
    assert_eq!(all, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(producer.claim(3).capacity(), 3);
}

#[test]
fn read_chunks_take_at_most_their_limit_and_free_every_slot_they_cover() {
    let (mut producer, mut consumer) = spsc::channel::<u32>(4);
    // Wrap the ring so the chunk spans its end: entries 3, 0, 1 hold 10, 11, 12.
    for value in 0..3 {
        producer.push(value).unwrap();
    }
    consumer.read(usize::MAX).release();
    for value in 10..13 {
        producer.push(value).unwrap();
    }
    let mut chunk = consumer.read(2);
    assert_eq!(chunk.len(), 2);
    assert_eq!(chunk.size_hint(), (2, Some(2)));
    assert_eq!(chunk.as_slices(), (&[10][..], &[11][..]));
    assert_eq!(chunk.next(), Some(10));
    assert_eq!(chunk.as_slices(), (&[11][..], &[][..]));
    assert!(format!("{chunk:?}").contains("len: 1"));
    chunk.release();
    assert_eq!(producer.free_entries(), 3, "11 was freed unread");
    let mut chunk = consumer.read(usize::MAX);
    assert_eq!(chunk.as_slices(), (&[12][..], &[][..]));
    assert_eq!(chunk.next(), Some(12));
    assert_eq!(chunk.next(), None);
    assert!(chunk.is_empty());
    assert_eq!(chunk.as_slices(), (&[][..], &[][..]));
}

#[test]
fn each_end_sees_the_other_one_go() {
    let (producer, mut consumer) = spsc::channel::<u8>(2);
    assert!(!consumer.is_abandoned());
    drop(producer);
    assert!(consumer.is_abandoned());
    assert_eq!(consumer.pop(), None);
    let (producer, consumer) = spsc::channel::<u8>(2);
    assert!(!producer.is_abandoned());
    drop(consumer);
    assert!(producer.is_abandoned());
    assert!(format!("{producer:?}").starts_with("Producer"));
}

#[test]
fn every_value_is_dropped_exactly_once_wherever_it_ends_up() {
    for producer_dropped_first in [true, false] {
        let counter = Arc::new(DropCounter::default());
        let (mut producer, mut consumer) = spsc::channel::<Counted>(8);
        // Wrap the ring first, so values are left on both sides of its end.
        for _ in 0..6 {
            producer.push(Counted::new(&counter)).unwrap();
        }
        drop(consumer.read(usize::MAX));
        assert_eq!(counter.count(), 6, "an unread chunk drops its values");

        let mut claim = producer.claim(4);
        assert_eq!(
            claim.fill_from_iter((0..4).map(|_| Counted::new(&counter))),
            4
        );
        claim.publish();
        let refused = producer.claim(0).write(Counted::new(&counter)).unwrap_err();
        drop(refused);
        assert_eq!(
            counter.count(),
            7,
            "a refused value comes back to its owner"
        );
        for _ in 0..4 {
            producer.push(Counted::new(&counter)).unwrap();
        }
        let Err(Full(back)) = producer.push(Counted::new(&counter)) else {
            panic!("a full ring accepted a value");
        };
        assert_eq!(counter.count(), 7, "the ring does not drop a refused value");
        drop(back);

        let popped = consumer.pop().unwrap();
        let mut chunk = consumer.read(3);
        let taken = chunk.next().unwrap();
        drop(chunk);
        assert_eq!(
            counter.count(),
            8 + 2,
            "the chunk drops the two it did not hand out"
        );
        drop((popped, taken));
        assert_eq!(counter.count(), 12);

        // Four values are left in the ring; whichever end goes last drops them.
        if producer_dropped_first {
            drop(producer);
            assert_eq!(counter.count(), 12);
            drop(consumer);
        } else {
            drop(consumer);
            assert_eq!(counter.count(), 12);
            drop(producer);
        }
        assert_eq!(
            counter.count(),
            16,
            "producer dropped first: {producer_dropped_first}"
        );
    }
}

#[test]
fn a_panicking_drop_in_a_chunk_leaves_the_rest_in_the_ring_and_drops_nothing_twice() {
    let counter = Arc::new(DropCounter::default());
    let (mut producer, mut consumer) = spsc::channel::<Counted>(4);
    for index in 0..4 {
        let mut value = Counted::new(&counter);
        value.panics_on_drop = index == 1;
        producer.push(value).unwrap();
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| drop(consumer.read(usize::MAX))));
    assert!(outcome.is_err(), "the value's panic reaches the caller");
    // Values 0 and 1 were dropped and their entries freed; 2 and 3 are still in the ring.
    assert_eq!(counter.count(), 2);
    assert_eq!(producer.free_entries(), 2, "the emptied entries were freed");
    assert_eq!(consumer.available(), 2);
    producer.push(Counted::new(&counter)).unwrap();
    let mut chunk = consumer.read(usize::MAX);
    assert_eq!(
        chunk.len(),
        3,
        "the values after the panicking one come next"
    );
    drop(chunk.next());
    assert_eq!(counter.count(), 3);
    drop(chunk);
    assert_eq!(counter.count(), 5);
    drop((producer, consumer));
    assert_eq!(counter.count(), 5);
}

#[test]
fn values_that_need_no_drop_and_zero_sized_values_work_too() {
    let (mut producer, mut consumer) = spsc::channel::<()>(2);
    producer.push(()).unwrap();
    producer.push(()).unwrap();
    assert!(producer.push(()).is_err());
    assert_eq!(consumer.read(usize::MAX).count(), 2);
}

#[test]
fn two_threads_move_ten_million_values_in_order() {
    const COUNT: u64 = 10_000_000;
    let (mut producer, mut consumer) = spsc::channel::<u64>(1024);
    let sender = std::thread::spawn(move || {
        let mut next = 0;
        while next < COUNT {
            // Alternate between batches and single pushes.
            if next % 3 == 0 {
                if producer.push(next).is_ok() {
                    next += 1;
                }
            } else {
                let mut claim = producer.claim(100);
                next += claim.fill_from_iter(next..COUNT) as u64;
            }
            std::hint::spin_loop();
        }
    });
    let mut expected = 0;
    while expected < COUNT {
        if expected % 5 == 0 {
            if let Some(value) = consumer.pop() {
                assert_eq!(value, expected);
                expected += 1;
            }
        } else {
            for value in consumer.read(77) {
                assert_eq!(value, expected);
                expected += 1;
            }
        }
        std::hint::spin_loop();
    }
    sender.join().unwrap();
    assert!(consumer.is_abandoned());
    assert_eq!(consumer.available(), 0);
}

/// Keeps the values handed out by the ring, in order, and notes every value handed out a
/// second time.
///
/// A duplicate is a bitwise copy of a value kept here, so it is forgotten rather than
/// dropped; and the kept values are dropped only by [`Received::drop_all`], once the ring
/// is known not to hold them any more. Either drop could otherwise drop a value twice (and
/// the ledger's `Arc` with it), which is the bug these tests look for, not one they should
/// commit when they find it.
#[derive(Debug, Default)]
struct Received {
    values: Vec<std::mem::ManuallyDrop<Numbered>>,
    duplicates: Vec<usize>,
}

impl Received {
    fn take(&mut self, value: Numbered) {
        if self.values.iter().any(|kept| kept.id == value.id) {
            self.duplicates.push(value.id);
            std::mem::forget(value);
        } else {
            self.values.push(std::mem::ManuallyDrop::new(value));
        }
    }

    fn ids(&self) -> Vec<usize> {
        self.values.iter().map(|value| value.id).collect()
    }

    fn drop_all(self) {
        for value in self.values {
            drop(std::mem::ManuallyDrop::into_inner(value));
        }
    }
}

#[test]
fn a_forgotten_chunk_never_hands_out_or_drops_a_value_twice() {
    let ledger = Arc::new(Ledger::default());
    let (mut producer, mut consumer) = spsc::channel::<Numbered>(8);
    // Wrap the ring first, so the chunks span its end.
    for _ in 0..5 {
        producer.push(ledger.value()).unwrap();
    }
    drop(consumer.read(usize::MAX));
    for _ in 0..6 {
        producer.push(ledger.value()).unwrap();
    }
    let mut received = Received::default();

    // Take two values of a chunk of four, then forget the chunk: it neither drops the two it
    // still holds nor frees any entry.
    let mut chunk = consumer.read(4);
    received.take(chunk.next().unwrap());
    received.take(chunk.next().unwrap());
    std::mem::forget(chunk);
    assert_eq!(ledger.drops()[5..], [0; 6], "nothing dropped by the forget");

    // The next read starts after the values taken from the forgotten chunk.
    let mut chunk = consumer.read(usize::MAX);
    let len = chunk.len();
    received.take(chunk.next().unwrap());
    received.take(chunk.next().unwrap());
    drop(chunk);
    assert_eq!(
        received.duplicates,
        [0usize; 0],
        "values handed out twice (kept, in order: {:?})",
        received.ids()
    );
    assert_eq!(len, 4, "the next chunk holds the four values not taken");
    assert_eq!(received.ids(), [5, 6, 7, 8]);
    assert_eq!(ledger.drops()[5..], [0, 0, 0, 0, 1, 1]);
    // Releasing that chunk also freed the entries of the forgotten one.
    assert_eq!(producer.free_entries(), 8);

    // Forget a chunk again, pop past it, and leave values in the ring for its destructor.
    for _ in 0..4 {
        producer.push(ledger.value()).unwrap();
    }
    let mut chunk = consumer.read(usize::MAX);
    received.take(chunk.next().unwrap());
    std::mem::forget(chunk);
    received.take(consumer.pop().unwrap());
    assert_eq!(producer.free_entries(), 6, "the pop freed both entries");
    drop((producer, consumer));
    assert_eq!(received.duplicates, [0usize; 0]);
    assert_eq!(received.ids(), [5, 6, 7, 8, 11, 12]);
    assert_eq!(
        ledger.drops()[11..],
        [0, 0, 1, 1],
        "the ring dropped what it still held, and nothing it handed out"
    );
    received.drop_all();
    assert_eq!(ledger.drops(), [1; 15], "every value dropped exactly once");
}

#[test]
fn the_ring_never_drops_a_value_taken_from_a_forgotten_chunk() {
    let ledger = Arc::new(Ledger::default());
    let (mut producer, mut consumer) = spsc::channel::<Numbered>(4);
    for _ in 0..4 {
        producer.push(ledger.value()).unwrap();
    }
    let mut chunk = consumer.read(usize::MAX);
    let mut received = Received::default();
    received.take(chunk.next().unwrap());
    received.take(chunk.next().unwrap());
    std::mem::forget(chunk);
    drop((consumer, producer));
    assert_eq!(
        ledger.drops(),
        [0, 0, 1, 1],
        "the ring drops the two values it still holds, only those"
    );
    received.drop_all();
    assert_eq!(ledger.drops(), [1; 4]);
}
