//! Every ring under test behind the same two traits, so that one harness loop drives them
//! all and the figures differ only by the ring.
//!
//! Each ring appears in the variants it offers: a batched one that uses its best batch API
//! (claim/publish and read/release, `rtrb`'s chunks, the disruptor's batch publication and
//! poller) and a single-value one (push/pop). Single-value endpoints move up to `max` values
//! per call one at a time, exactly as a push or pop loop would, so `max` only sets how often
//! the harness looks up from the loop.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use disruptor::{BusySpin, EventPoller, Producer as _, SingleProducer};
use squall_ringbuf::spsc;

use crate::harness::sum_below;

/// The sending end of a ring under test.
pub trait RingSender: Send {
    /// Sends the values `first, first + 1, ...`, at most `max` of them; returns how many were
    /// sent, 0 while the ring is full.
    fn send(&mut self, first: u64, max: usize) -> usize;
}

/// The receiving end of a ring under test.
pub trait RingReceiver: Send {
    /// Receives up to `max` values, adding each to `sum` (wrapping); returns how many
    /// arrived, 0 while the ring is empty.
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize;
}

/// Pushes `first, first + 1, ...` one at a time until `max` went or `push` refuses one.
#[inline(always)]
fn push_each(first: u64, max: usize, mut push: impl FnMut(u64) -> bool) -> usize {
    (0..max)
        .position(|sent| !push(first + sent as u64))
        .unwrap_or(max)
}

/// Pops values one at a time into `sum` until `max` arrived or `pop` finds none.
#[inline(always)]
fn pop_each(max: usize, sum: &mut u64, mut pop: impl FnMut() -> Option<u64>) -> usize {
    for received in 0..max {
        let Some(value) = pop() else {
            return received;
        };
        *sum = sum.wrapping_add(value);
    }
    max
}

/// Adds the values of `slice` to `sum`, wrapping.
#[inline(always)]
fn add_all(sum: &mut u64, slice: &[u64]) {
    *sum = slice
        .iter()
        .fold(*sum, |sum, &value| sum.wrapping_add(value));
}

/// Squall's typed ring through [`spsc::Producer::claim`] and [`spsc::Consumer::read`].
#[derive(Debug)]
pub struct SquallBatchSender(pub spsc::Producer<u64>);

/// See [`SquallBatchSender`].
#[derive(Debug)]
pub struct SquallBatchReceiver(pub spsc::Consumer<u64>);

impl RingSender for SquallBatchSender {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        let mut claim = self.0.claim(max);
        let count = claim.capacity();
        claim.fill_from_iter(first..first + count as u64)
    }
}

impl RingReceiver for SquallBatchReceiver {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        let chunk = self.0.read(max);
        let (first, second) = chunk.as_slices();
        add_all(sum, first);
        add_all(sum, second);
        chunk.len()
    }
}

/// Squall's typed ring through [`spsc::Producer::push`] and [`spsc::Consumer::pop`].
#[derive(Debug)]
pub struct SquallSender(pub spsc::Producer<u64>);

/// See [`SquallSender`].
#[derive(Debug)]
pub struct SquallReceiver(pub spsc::Consumer<u64>);

impl RingSender for SquallSender {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        push_each(first, max, |value| self.0.push(value).is_ok())
    }
}

impl RingReceiver for SquallReceiver {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        pop_each(max, sum, || self.0.pop())
    }
}

/// `rtrb` through its chunk API: `write_chunk_uninit` filled from an iterator, and
/// `read_chunk` read as slices.
#[derive(Debug)]
pub struct RtrbChunkSender(pub rtrb::Producer<u64>);

/// See [`RtrbChunkSender`].
#[derive(Debug)]
pub struct RtrbChunkReceiver(pub rtrb::Consumer<u64>);

impl RingSender for RtrbChunkSender {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        // A chunk must fit entirely; when `max` does not, take what there is.
        let chunk = match self.0.write_chunk_uninit(max) {
            Ok(chunk) => chunk,
            Err(rtrb::chunks::ChunkError::TooFewSlots(0)) => return 0,
            Err(rtrb::chunks::ChunkError::TooFewSlots(free)) => self
                .0
                .write_chunk_uninit(free)
                .expect("free entries stay free"),
        };
        let count = chunk.len();
        chunk.fill_from_iter(first..first + count as u64)
    }
}

impl RingReceiver for RtrbChunkReceiver {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        let chunk = match self.0.read_chunk(max) {
            Ok(chunk) => chunk,
            Err(rtrb::chunks::ChunkError::TooFewSlots(0)) => return 0,
            Err(rtrb::chunks::ChunkError::TooFewSlots(available)) => self
                .0
                .read_chunk(available)
                .expect("published values stay published"),
        };
        let (first, second) = chunk.as_slices();
        add_all(sum, first);
        add_all(sum, second);
        let count = chunk.len();
        chunk.commit_all();
        count
    }
}

/// `rtrb` through `push` and `pop`.
#[derive(Debug)]
pub struct RtrbSender(pub rtrb::Producer<u64>);

/// See [`RtrbSender`].
#[derive(Debug)]
pub struct RtrbReceiver(pub rtrb::Consumer<u64>);

impl RingSender for RtrbSender {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        push_each(first, max, |value| self.0.push(value).is_ok())
    }
}

impl RingReceiver for RtrbReceiver {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        pop_each(max, sum, || self.0.pop().ok())
    }
}

/// `crossbeam-queue`'s bounded MPMC `ArrayQueue`, which has no batch API.
#[derive(Debug, Clone)]
pub struct ArrayQueueEnd(pub Arc<ArrayQueue<u64>>);

impl RingSender for ArrayQueueEnd {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        push_each(first, max, |value| self.0.push(value).is_ok())
    }
}

impl RingReceiver for ArrayQueueEnd {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        pop_each(max, sum, || self.0.pop())
    }
}

/// The disruptor's event: one value.
#[derive(Debug, Default)]
pub struct Event {
    value: u64,
}

/// The disruptor crate's single producer (busy-spin wait strategy), publishing `max` events
/// at once with `try_batch_publish`.
pub struct DisruptorBatchSender(pub SingleProducer<Event, disruptor::SingleConsumerBarrier>);

/// The disruptor crate's single producer, publishing one event at a time.
pub struct DisruptorSender(pub SingleProducer<Event, disruptor::SingleConsumerBarrier>);

/// The disruptor crate's event poller, taking up to `max` events per poll.
pub struct DisruptorReceiver(pub EventPoller<Event, disruptor::SingleProducerBarrier>);

/// A disruptor ring of `capacity` events (a power of two): producer and poller.
fn disruptor_ring(
    capacity: usize,
) -> (
    SingleProducer<Event, disruptor::SingleConsumerBarrier>,
    DisruptorReceiver,
) {
    let (poller, builder) =
        disruptor::build_single_producer(capacity, Event::default, BusySpin).new_event_poller();
    (builder.build(), DisruptorReceiver(poller))
}

impl RingSender for DisruptorBatchSender {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        match self
            .0
            .try_batch_publish(max, |events| number(events, first))
        {
            Ok(_) => max,
            Err(disruptor::MissingFreeSlots(missing)) => {
                let free = max - missing as usize;
                if free == 0 {
                    return 0;
                }
                self.0
                    .try_batch_publish(free, |events| number(events, first))
                    .expect("free entries stay free");
                free
            }
        }
    }
}

/// Gives the events the values `first, first + 1, ...`.
#[inline(always)]
fn number<'a>(events: impl Iterator<Item = &'a mut Event>, first: u64) {
    for (offset, event) in events.enumerate() {
        event.value = first + offset as u64;
    }
}

impl RingSender for DisruptorSender {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        push_each(first, max, |value| {
            self.0.try_publish(|event| event.value = value).is_ok()
        })
    }
}

impl RingReceiver for DisruptorReceiver {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        let Ok(mut events) = self.0.take(max as u64) else {
            return 0;
        };
        let mut count = 0;
        for event in &mut events {
            *sum = sum.wrapping_add(event.value);
            count += 1;
        }
        count
    }
}

impl std::fmt::Debug for DisruptorBatchSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DisruptorBatchSender")
    }
}

impl std::fmt::Debug for DisruptorSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DisruptorSender")
    }
}

impl std::fmt::Debug for DisruptorReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DisruptorReceiver")
    }
}

/// The harness without a ring, for throughput: the sender sends nothing and the receiver
/// makes up the values itself, a whole call's worth at once, so its rate is the most the
/// harness could count.
#[derive(Debug, Default)]
pub struct BaseSender;

/// See [`BaseSender`].
#[derive(Debug, Default)]
pub struct BaseReceiver {
    next: u64,
}

impl RingSender for BaseSender {
    fn send(&mut self, _first: u64, _max: usize) -> usize {
        0
    }
}

impl RingReceiver for BaseReceiver {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        let end = self.next + max as u64;
        let values = sum_below(end).wrapping_sub(sum_below(self.next));
        *sum = sum.wrapping_add(black_box(values));
        self.next = end;
        max
    }
}

/// The harness without a ring, for round trips: one shared word per direction, which is
/// the least any ring must move from core to core.
#[derive(Debug, Clone, Default)]
pub struct Mailbox(Arc<CachePadded<AtomicU64>>);

/// The receiving side of a [`Mailbox`]: remembers the last value it saw.
#[derive(Debug)]
pub struct MailboxReceiver {
    mailbox: Mailbox,
    seen: u64,
}

impl Mailbox {
    /// The receiving side of this mailbox.
    pub fn receiver(&self) -> MailboxReceiver {
        MailboxReceiver {
            mailbox: self.clone(),
            seen: 0,
        }
    }
}

impl RingSender for Mailbox {
    /// Posts `first` alone (a round trip has one value in flight), stored as `first + 1` so
    /// that 0 means "nothing yet".
    #[inline]
    fn send(&mut self, first: u64, _max: usize) -> usize {
        self.0.store(first + 1, Ordering::Release);
        1
    }
}

impl RingReceiver for MailboxReceiver {
    #[inline]
    fn receive(&mut self, _max: usize, sum: &mut u64) -> usize {
        let posted = self.mailbox.0.load(Ordering::Acquire);
        if posted == self.seen {
            return 0;
        }
        self.seen = posted;
        *sum = sum.wrapping_add(posted - 1);
        1
    }
}

/// Squall's typed ring of `capacity` entries, driven in batches.
pub fn squall_batch(capacity: usize) -> (SquallBatchSender, SquallBatchReceiver) {
    let (producer, consumer) = spsc::channel(capacity);
    (SquallBatchSender(producer), SquallBatchReceiver(consumer))
}

/// Squall's typed ring of `capacity` entries, driven one value at a time.
pub fn squall_single(capacity: usize) -> (SquallSender, SquallReceiver) {
    let (producer, consumer) = spsc::channel(capacity);
    (SquallSender(producer), SquallReceiver(consumer))
}

/// An `rtrb` ring of `capacity` entries, driven in chunks.
pub fn rtrb_chunks(capacity: usize) -> (RtrbChunkSender, RtrbChunkReceiver) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    (RtrbChunkSender(producer), RtrbChunkReceiver(consumer))
}

/// An `rtrb` ring of `capacity` entries, driven one value at a time.
pub fn rtrb_single(capacity: usize) -> (RtrbSender, RtrbReceiver) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    (RtrbSender(producer), RtrbReceiver(consumer))
}

/// An `ArrayQueue` of `capacity` entries, both of whose ends are the queue.
pub fn array_queue(capacity: usize) -> (ArrayQueueEnd, ArrayQueueEnd) {
    let queue = ArrayQueueEnd(Arc::new(ArrayQueue::new(capacity)));
    (queue.clone(), queue)
}

/// A disruptor of `capacity` events (a power of two), publishing in batches.
pub fn disruptor_batch(capacity: usize) -> (DisruptorBatchSender, DisruptorReceiver) {
    let (producer, poller) = disruptor_ring(capacity);
    (DisruptorBatchSender(producer), poller)
}

/// A disruptor of `capacity` events (a power of two), publishing one event at a time.
pub fn disruptor_single(capacity: usize) -> (DisruptorSender, DisruptorReceiver) {
    let (producer, poller) = disruptor_ring(capacity);
    (DisruptorSender(producer), poller)
}

/// The harness alone, for throughput.
pub fn base() -> (BaseSender, BaseReceiver) {
    (BaseSender, BaseReceiver::default())
}

/// A shared word, both ends.
pub fn mailbox() -> (Mailbox, MailboxReceiver) {
    let mailbox = Mailbox::default();
    let receiver = mailbox.receiver();
    (mailbox, receiver)
}
