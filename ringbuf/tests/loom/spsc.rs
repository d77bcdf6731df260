//! loom model of the typed ring's publish/consume protocol and of the `SpinThenPark`
//! sleep/notify handshake.
//!
//! The rings have two entries, so every scenario wraps around. loom tracks each entry's cell,
//! so a missing acquire or release on `head` or `tail` shows up as a data race; a value
//! dropped twice or never shows up in the drop ledger; a lost wake-up shows up as a
//! deadlock.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize as LedgerCount, Ordering as LedgerOrdering};
use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use squall_ringbuf::spsc::{self, Consumer, Full, Producer};
use squall_ringbuf::wait::{SpinThenPark, WaitStrategy};

fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(4);
    builder.check(model);
}

/// Pushes `value`, yielding while the ring is full.
fn push_blocking<T: Send>(producer: &mut Producer<T>, mut value: T) {
    loop {
        match producer.push(value) {
            Ok(()) => return,
            Err(Full(back)) => {
                value = back;
                thread::yield_now();
            }
        }
    }
}

/// Pops one value, yielding while the ring is empty.
fn pop_blocking<T: Send>(consumer: &mut Consumer<T>) -> T {
    loop {
        if let Some(value) = consumer.pop() {
            return value;
        }
        thread::yield_now();
    }
}

/// Sends `values` in claims of up to `max_claim` entries, yielding while the ring is full.
fn send_in_claims(producer: &mut Producer<u32>, values: Range<u32>, max_claim: usize) {
    let mut values = values.peekable();
    while values.peek().is_some() {
        let mut claim = producer.claim(max_claim);
        claim.fill_from_iter(&mut values);
        if claim.is_empty() {
            drop(claim);
            thread::yield_now();
        }
    }
}

#[test]
fn spsc_push_and_pop_across_the_wrap() {
    check(|| {
        let (mut producer, mut consumer) = spsc::channel::<u32>(2);
        let writer = thread::spawn(move || {
            for value in 0..3 {
                push_blocking(&mut producer, value);
            }
        });
        for expected in 0..3 {
            assert_eq!(pop_blocking(&mut consumer), expected);
        }
        writer.join().unwrap();
        assert!(consumer.is_abandoned());
        assert_eq!(consumer.pop(), None);
    });
}

#[test]
fn spsc_claimed_batches_arrive_whole_across_the_wrap() {
    check(|| {
        const COUNT: u32 = 4;
        let (mut producer, mut consumer) = spsc::channel::<u32>(2);
        let writer = thread::spawn(move || {
            // The first batch goes through `write`, the rest through `fill_from_iter`.
            let mut claim = producer.claim(2);
            assert_eq!(claim.capacity(), 2, "a fresh ring has two free entries");
            claim.write(0).unwrap();
            claim.write(1).unwrap();
            assert_eq!(claim.write(99), Err(99));
            claim.publish();
            send_in_claims(&mut producer, 2..COUNT, 2);
        });
        let mut expected = 0;
        while expected < COUNT {
            let chunk = consumer.read(usize::MAX);
            if chunk.is_empty() {
                drop(chunk);
                thread::yield_now();
                continue;
            }
            for value in chunk {
                assert_eq!(value, expected);
                expected += 1;
            }
        }
        writer.join().unwrap();
    });
}

#[test]
fn spsc_single_value_reads_release_one_entry_each() {
    check(|| {
        const COUNT: u32 = 3;
        let (mut producer, mut consumer) = spsc::channel::<u32>(2);
        let writer = thread::spawn(move || send_in_claims(&mut producer, 0..COUNT, usize::MAX));
        let mut expected = 0;
        while expected < COUNT {
            let mut chunk = consumer.read(1);
            assert!(chunk.len() <= 1);
            match chunk.next() {
                Some(value) => {
                    assert_eq!(value, expected);
                    expected += 1;
                }
                None => {
                    drop(chunk);
                    thread::yield_now();
                }
            }
        }
        writer.join().unwrap();
    });
}

#[test]
fn spsc_a_forgotten_chunk_hands_out_no_value_twice_across_the_wrap() {
    check(|| {
        const COUNT: u32 = 4;
        let (mut producer, mut consumer) = spsc::channel::<u32>(2);
        let writer = thread::spawn(move || {
            for value in 0..COUNT {
                push_blocking(&mut producer, value);
            }
        });
        let mut expected = 0;
        while expected < COUNT {
            // Take one value of whatever has arrived and forget the chunk: the value is gone,
            // the rest comes again, and no entry is freed yet.
            let mut chunk = consumer.read(usize::MAX);
            match chunk.next() {
                Some(value) => {
                    assert_eq!(value, expected);
                    expected += 1;
                    std::mem::forget(chunk);
                }
                None => {
                    drop(chunk);
                    thread::yield_now();
                    continue;
                }
            }
            // The pop frees the forgotten chunk's entry as well as its own, so the writer,
            // which needs both entries of the ring, gets them.
            if expected < COUNT {
                assert_eq!(pop_blocking(&mut consumer), expected);
                expected += 1;
            }
        }
        writer.join().unwrap();
        assert_eq!(consumer.pop(), None);
    });
}

/// How often each value of one model run was dropped.
struct DropLedger([LedgerCount; 3]);

/// A value that notes its drop in a ledger.
struct Tracked {
    id: usize,
    ledger: std::sync::Arc<DropLedger>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ledger.0[self.id].fetch_add(1, LedgerOrdering::Relaxed);
    }
}

#[test]
fn spsc_every_value_is_dropped_exactly_once_whoever_drops_last() {
    check(|| {
        let ledger = std::sync::Arc::new(DropLedger(Default::default()));
        let tracked = |id| Tracked {
            id,
            ledger: std::sync::Arc::clone(&ledger),
        };
        let (mut producer, mut consumer) = spsc::channel::<Tracked>(4);
        let (first, second, third) = (tracked(0), tracked(1), tracked(2));
        let writer = thread::spawn(move || {
            let mut claim = producer.claim(2);
            assert!(claim.write(first).is_ok());
            assert!(claim.write(second).is_ok());
            claim.publish();
            assert!(producer.push(third).is_ok());
            // The producer is dropped here, possibly while the consumer reads.
        });
        // Whatever has arrived: move the first value out, leave the rest to the chunk's drop.
        let mut chunk = consumer.read(usize::MAX);
        drop(chunk.next());
        drop(chunk);
        drop(consumer.pop());
        // Values still in the ring go with whichever handle is dropped last.
        drop(consumer);
        writer.join().unwrap();
        for (id, count) in ledger.0.iter().enumerate() {
            assert_eq!(
                count.load(LedgerOrdering::Relaxed),
                1,
                "drops of value {id}"
            );
        }
    });
}

#[test]
fn spsc_a_forgotten_chunk_leaves_the_ring_to_drop_only_what_it_did_not_hand_out() {
    check(|| {
        let ledger = std::sync::Arc::new(DropLedger(Default::default()));
        let tracked = |id| Tracked {
            id,
            ledger: std::sync::Arc::clone(&ledger),
        };
        let (mut producer, mut consumer) = spsc::channel::<Tracked>(2);
        let (first, second, third) = (tracked(0), tracked(1), tracked(2));
        let writer = thread::spawn(move || {
            let mut claim = producer.claim(2);
            assert!(claim.write(first).is_ok());
            assert!(claim.write(second).is_ok());
            claim.publish();
            // Fits only once the consumer has freed an entry, which it may never do.
            if let Err(Full(third)) = producer.push(third) {
                drop(third);
            }
            // The producer is dropped here, possibly while the consumer reads.
        });
        // Take the first value of whatever has arrived and forget the chunk, then drop the
        // consumer: its drop frees the taken value's entry, and whichever handle goes last
        // drops the values still in the ring, never the taken one.
        let mut chunk = consumer.read(usize::MAX);
        drop(chunk.next());
        std::mem::forget(chunk);
        drop(consumer);
        writer.join().unwrap();
        for (id, count) in ledger.0.iter().enumerate() {
            assert_eq!(
                count.load(LedgerOrdering::Relaxed),
                1,
                "drops of value {id}"
            );
        }
    });
}

/// The consumer sleeps on a `SpinThenPark` doorbell until the producer's `notify`; a lost
/// wake-up leaves it asleep forever, which loom reports as a deadlock.
fn sleep_notify_handshake(spins: u32, yields: u32) {
    check(move || {
        let doorbell = Arc::new(SpinThenPark::new(spins, yields));
        let (mut producer, mut consumer) = spsc::channel::<u32>(2);
        let notifier = Arc::clone(&doorbell);
        let writer = thread::spawn(move || {
            for value in 0..2 {
                producer.push(value).unwrap();
                notifier.notify();
            }
        });
        for expected in 0..2 {
            let ready = doorbell.wait_until(Duration::MAX, &mut || consumer.available() > 0);
            assert!(ready);
            assert_eq!(consumer.pop(), Some(expected));
        }
        writer.join().unwrap();
    });
}

#[test]
fn spin_then_park_never_loses_a_wake_up_when_it_sleeps_at_once() {
    sleep_notify_handshake(0, 0);
}

#[test]
fn spin_then_park_never_loses_a_wake_up_after_spinning_and_yielding() {
    sleep_notify_handshake(1, 1);
}
