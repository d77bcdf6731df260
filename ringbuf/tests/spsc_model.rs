//! Model test: random sequences of claims, publishes, pushes, reads, releases and pops on a
//! typed ring, checked against a `VecDeque` of the values the ring should hold, with every
//! value's drops counted so that each is dropped exactly once, by whoever ends up with it.
//! Claims and chunks are also forgotten (`mem::forget`): a forgotten claim's values are
//! leaked and never dropped, a forgotten chunk's values are handed out or dropped exactly
//! once all the same.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use squall_ringbuf::spsc::{self, Consumer, Full, Producer};

/// How often each value has been dropped, indexed by value id.
#[derive(Debug, Default)]
struct DropLedger(Mutex<Vec<u32>>);

impl DropLedger {
    fn drops(&self, id: usize) -> u32 {
        self.0.lock().unwrap()[id]
    }

    /// Asserts that value `id` has been dropped exactly once.
    fn assert_dropped_once(&self, id: usize) {
        assert_eq!(self.drops(id), 1, "drops of value {id}");
    }
}

/// A value that counts its drops in a ledger.
#[derive(Debug)]
struct Token {
    id: usize,
    ledger: Arc<DropLedger>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.ledger.0.lock().unwrap()[self.id] += 1;
    }
}

/// How a claim or a chunk ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `publish` or `release`.
    Explicitly,
    /// Dropped.
    Dropped,
    /// `std::mem::forget`.
    Forgotten,
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        3 => Just(End::Explicitly),
        3 => Just(End::Dropped),
        1 => Just(End::Forgotten),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Push,
    Pop,
    /// Claim up to `max` entries and offer `offer` values, one by one or as an iterator;
    /// publish explicitly or by dropping the claim, or forget it.
    Claim {
        max: usize,
        offer: usize,
        from_iter: bool,
        end: End,
    },
    /// Read up to `max` values, look at them as slices, move out the first `take`, then
    /// release explicitly or by dropping the chunk (which drops the rest), or forget it.
    Read {
        max: usize,
        take: usize,
        end: End,
    },
    /// Ask each side how much room or how many values there are.
    Observe,
}

fn op() -> impl Strategy<Value = Op> {
    let count = prop_oneof![3 => 0usize..10, 1 => Just(usize::MAX)];
    prop_oneof![
        3 => Just(Op::Push),
        3 => Just(Op::Pop),
        3 => (count.clone(), 0usize..10, any::<bool>(), end()).prop_map(
            |(max, offer, from_iter, end)| Op::Claim {
                max,
                offer,
                from_iter,
                end,
            }
        ),
        3 => (count, 0usize..10, end()).prop_map(|(max, take, end)| Op::Read { max, take, end }),
        1 => Just(Op::Observe),
    ]
}

/// The ring under test, the queue it should match, and every value ever made.
struct Harness {
    producer: Producer<Token>,
    consumer: Consumer<Token>,
    model: VecDeque<usize>,
    /// Entries whose values the consumer has moved out but not yet freed (by a chunk that was
    /// forgotten rather than released).
    unfreed: usize,
    /// Values written into forgotten claims: never published, never dropped.
    leaked: BTreeSet<usize>,
    ledger: Arc<DropLedger>,
}

impl Harness {
    fn new(min_capacity: usize) -> Self {
        let (producer, consumer) = spsc::channel(min_capacity);
        Self {
            producer,
            consumer,
            model: VecDeque::new(),
            unfreed: 0,
            leaked: BTreeSet::new(),
            ledger: Arc::default(),
        }
    }

    fn capacity(&self) -> usize {
        self.producer.capacity()
    }

    /// Entries the producer can fill: neither holding a value nor emptied but not yet freed.
    fn free(&self) -> usize {
        self.capacity() - self.model.len() - self.unfreed
    }

    fn token(&self) -> Token {
        let mut drops = self.ledger.0.lock().unwrap();
        drops.push(0);
        Token {
            id: drops.len() - 1,
            ledger: Arc::clone(&self.ledger),
        }
    }

    fn push(&mut self) {
        let token = self.token();
        let id = token.id;
        match self.producer.push(token) {
            Ok(()) => {
                assert!(self.free() > 0, "push accepted with no free entry");
                self.model.push_back(id);
            }
            Err(Full(back)) => {
                assert_eq!(self.free(), 0, "push refused with free entries");
                assert_eq!(back.id, id, "a full ring hands back the pushed value");
                assert_eq!(self.ledger.drops(id), 0);
            }
        }
    }

    fn pop(&mut self) {
        let popped = self.consumer.pop().map(|token| token.id);
        assert_eq!(popped, self.model.pop_front());
        if let Some(id) = popped {
            self.ledger.assert_dropped_once(id);
            // A pop frees every emptied entry before it.
            self.unfreed = 0;
        }
    }

    fn claim(&mut self, max: usize, offer: usize, from_iter: bool, end: End) {
        let free = self.free();
        let offered: Vec<Token> = (0..offer).map(|_| self.token()).collect();
        let offered_ids: Vec<usize> = offered.iter().map(|token| token.id).collect();
        let mut claim = self.producer.claim(max);
        assert_eq!(claim.capacity(), max.min(free), "entries claimed");
        let mut refused = Vec::new();
        if from_iter {
            let mut values = offered.into_iter();
            let written = claim.fill_from_iter(&mut values);
            assert_eq!(written, offer.min(max.min(free)));
            refused.extend(values);
        } else {
            for token in offered {
                if let Err(back) = claim.write(token) {
                    refused.push(back);
                }
            }
        }
        let written = offer - refused.len();
        assert_eq!((claim.len(), claim.is_empty()), (written, written == 0));
        assert_eq!(claim.remaining(), claim.capacity() - written);
        // Values the claim had no room for come back whole, in order.
        let refused_ids: Vec<usize> = refused.iter().map(|token| token.id).collect();
        assert_eq!(refused_ids, offered_ids[written..]);
        drop(refused);
        match end {
            End::Explicitly => claim.publish(),
            End::Dropped => drop(claim),
            End::Forgotten => std::mem::forget(claim),
        }
        for &id in &offered_ids[..written] {
            assert_eq!(
                self.ledger.drops(id),
                0,
                "value {id} in the ring was dropped"
            );
            if matches!(end, End::Forgotten) {
                self.leaked.insert(id);
            } else {
                self.model.push_back(id);
            }
        }
        for &id in &offered_ids[written..] {
            self.ledger.assert_dropped_once(id);
        }
    }

    fn read(&mut self, max: usize, take: usize, end: End) {
        let expected = max.min(self.model.len());
        let mut chunk = self.consumer.read(max);
        assert_eq!(chunk.len(), expected, "values in the chunk");
        let (first, second) = chunk.as_slices();
        let seen: Vec<usize> = first.iter().chain(second).map(|token| token.id).collect();
        assert!(
            seen.iter().eq(self.model.iter().take(expected)),
            "chunk as slices"
        );
        for _ in 0..take.min(expected) {
            let id = chunk.next().expect("a value per chunk entry").id;
            assert_eq!(Some(id), self.model.pop_front());
            self.ledger.assert_dropped_once(id);
        }
        let taken = take.min(expected);
        let left = chunk.len();
        let (first, second) = chunk.as_slices();
        assert_eq!(first.len() + second.len(), left);
        match end {
            End::Explicitly => chunk.release(),
            End::Dropped => drop(chunk),
            End::Forgotten => {
                std::mem::forget(chunk);
                // The taken values are gone, the others stay in the ring for the next
                // read; no entry is freed.
                self.unfreed += taken;
                for &id in self.model.iter().take(left) {
                    assert_eq!(
                        self.ledger.drops(id),
                        0,
                        "value {id} in the ring was dropped"
                    );
                }
                assert_eq!(self.consumer.available(), self.model.len());
                return;
            }
        }
        // Values the chunk still held are dropped with it, and its entries are freed with
        // those of any chunk forgotten before it.
        for _ in 0..left {
            let id = self.model.pop_front().unwrap();
            self.ledger.assert_dropped_once(id);
        }
        self.unfreed = 0;
    }

    fn observe(&mut self) {
        assert_eq!(self.consumer.available(), self.model.len());
        assert_eq!(self.producer.free_entries(), self.free());
        assert!(!self.producer.is_abandoned() && !self.consumer.is_abandoned());
    }

    /// Drops both ends in the given order and checks that every value ever made, in the
    /// ring or not, has been dropped exactly once, except those leaked by forgotten claims,
    /// which are never dropped.
    fn finish(self, producer_first: bool) {
        let Harness {
            producer,
            consumer,
            model,
            leaked,
            ledger,
            ..
        } = self;
        if producer_first {
            drop(producer);
            assert!(consumer.is_abandoned());
            drop(consumer);
        } else {
            drop(consumer);
            assert!(producer.is_abandoned());
            drop(producer);
        }
        let drops = ledger.0.lock().unwrap();
        for (id, &count) in drops.iter().enumerate() {
            let expected = if leaked.contains(&id) { 0 } else { 1 };
            assert_eq!(
                count, expected,
                "drops of value {id} (left in the ring: {model:?}, leaked: {leaked:?})"
            );
        }
    }
}

proptest! {
    #[test]
    fn typed_ring_matches_queue_model(
        min_capacity in 1usize..=8,
        ops in proptest::collection::vec(op(), 1..200),
        producer_dropped_first in any::<bool>(),
    ) {
        let mut harness = Harness::new(min_capacity);
        prop_assert_eq!(harness.capacity(), min_capacity.next_power_of_two());
        for op in ops {
            match op {
                Op::Push => harness.push(),
                Op::Pop => harness.pop(),
                Op::Claim { max, offer, from_iter, end } => {
                    harness.claim(max, offer, from_iter, end)
                }
                Op::Read { max, take, end } => harness.read(max, take, end),
                Op::Observe => harness.observe(),
            }
        }
        harness.finish(producer_dropped_first);
    }
}
