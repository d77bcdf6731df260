//! Model test: random sequences of writes, publishes, partial reads and releases on a heap
//! record ring, checked against a queue of byte vectors and the layout's space accounting.

use std::collections::VecDeque;

use proptest::prelude::*;
use squall_ringbuf::record::{RecordConsumer, RecordProducer, WriteError, heap_ring};

#[derive(Debug, Clone)]
enum Op {
    /// Write a record of `len` bytes, reserving `len + spare` bytes for it.
    Write {
        len: usize,
        spare: usize,
    },
    /// Append a record of exactly `len` bytes and fill it in place.
    Append {
        len: usize,
    },
    /// Append `count` records of exactly `len` bytes with one claim.
    AppendRun {
        len: usize,
        count: usize,
    },
    Publish,
    /// Read up to `max` records, look at the first `look`, then release or drop the batch.
    Read {
        max: usize,
        look: usize,
        drop_batch: bool,
    },
    /// Read lazily up to `max` records, take the first `look`, then release or drop.
    ReadLazy {
        max: usize,
        look: usize,
        drop_batch: bool,
    },
}

fn op(max_record_len: usize) -> impl Strategy<Value = Op> {
    let len = prop_oneof![
        2 => Just(0usize),
        6 => 0..=max_record_len,
        1 => Just(max_record_len),
        1 => (max_record_len + 1)..=(max_record_len + 8),
    ];
    prop_oneof![
        6 => (len.clone(), prop_oneof![3 => Just(0usize), 1 => 0usize..16])
            .prop_map(|(len, spare)| Op::Write { len, spare }),
        3 => len.clone().prop_map(|len| Op::Append { len }),
        2 => (len, 0usize..6).prop_map(|(len, count)| Op::AppendRun { len, count }),
        2 => Just(Op::Publish),
        2 => (prop_oneof![Just(usize::MAX), 0usize..6], 0usize..6, any::<bool>())
            .prop_map(|(max, look, drop_batch)| Op::Read { max, look, drop_batch }),
        2 => (prop_oneof![Just(usize::MAX), 0usize..6], 0usize..8, any::<bool>())
            .prop_map(|(max, look, drop_batch)| Op::ReadLazy { max, look, drop_batch }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>)> {
    prop_oneof![Just(32usize), Just(64), Just(128), Just(512)].prop_flat_map(|capacity| {
        let max_record_len = capacity / 2 - 8;
        (
            Just(capacity),
            proptest::collection::vec(op(max_record_len), 1..200),
        )
    })
}

/// Bytes a record of `len` takes in the ring, as the layout documents it.
fn record_size(len: usize) -> u64 {
    8 + len.next_multiple_of(8) as u64
}

/// What the ring should hold, with its byte positions computed from the documented layout.
struct Model {
    capacity: u64,
    /// Sequence after the last written record.
    tail: u64,
    /// Sequence after the last released record.
    head: u64,
    /// Written, unpublished records and the sequence each ends at.
    pending: Vec<(Vec<u8>, u64)>,
    /// Published, unreleased records and the sequence each ends at.
    published: VecDeque<(Vec<u8>, u64)>,
    next_byte: u8,
}

impl Model {
    fn next_record(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.next_byte = self.next_byte.wrapping_add(1);
                self.next_byte
            })
            .collect()
    }

    fn write(&mut self, producer: &mut RecordProducer, len: usize, spare: usize) {
        let record = self.next_record(len);
        let outcome = producer.write_with(len + spare, |buf| {
            buf[..len].copy_from_slice(&record);
            len
        });
        self.check_written(producer, record, spare, outcome);
    }

    fn append(&mut self, producer: &mut RecordProducer, len: usize) {
        let record = self.next_record(len);
        let outcome = producer.append(len).map(|buf| {
            assert_eq!(buf.len(), len);
            buf.copy_from_slice(&record);
        });
        self.check_written(producer, record, 0, outcome);
    }

    /// Appends a run at once when it fits before the end of the data area and within the
    /// released space, and otherwise nothing.
    fn append_run(&mut self, producer: &mut RecordProducer, len: usize, count: usize) {
        let records: Vec<Vec<u8>> = (0..count).map(|_| self.next_record(len)).collect();
        let appended = producer.append_run(len, count, |index, payload| {
            payload.copy_from_slice(&records[index]);
        });
        let max_record_len = (self.capacity / 2 - 8) as usize;
        let total = record_size(len) * count as u64;
        let to_end = self.capacity - self.tail % self.capacity;
        let fits = len <= max_record_len
            && total <= to_end
            && self.tail + total - self.head <= self.capacity;
        assert_eq!(appended, fits, "{count} records of {len} bytes");
        if appended {
            for record in records {
                self.tail += record_size(len);
                self.pending.push((record, self.tail));
            }
        }
        assert_eq!(producer.pending(), self.pending.len());
    }

    fn check_written(
        &mut self,
        producer: &RecordProducer,
        record: Vec<u8>,
        spare: usize,
        outcome: Result<(), WriteError>,
    ) {
        let len = record.len();
        let reserve = len + spare;
        let max_record_len = (self.capacity / 2 - 8) as usize;
        if reserve > max_record_len {
            assert_eq!(
                outcome,
                Err(WriteError::RecordTooLarge {
                    len: reserve,
                    max: max_record_len
                })
            );
            return;
        }
        let need = record_size(reserve);
        let to_end = self.capacity - self.tail % self.capacity;
        let padding = if need <= to_end { 0 } else { to_end };
        if self.tail + padding + need - self.head > self.capacity {
            assert_eq!(outcome, Err(WriteError::RecordFull));
            return;
        }
        assert_eq!(outcome, Ok(()));
        self.tail += padding + record_size(len);
        self.pending.push((record, self.tail));
        assert_eq!(producer.pending(), self.pending.len());
    }

    fn publish(&mut self, producer: &mut RecordProducer) {
        producer.publish();
        self.published.extend(self.pending.drain(..));
        assert_eq!(producer.pending(), 0);
    }

    fn read(&mut self, consumer: &mut RecordConsumer, max: usize, look: usize, drop_batch: bool) {
        let batch = consumer.read(max);
        let expected = max.min(self.published.len());
        assert_eq!(batch.len(), expected);
        for (seen, (want, _)) in batch.iter().take(look).zip(&self.published) {
            assert_eq!(seen, &want[..]);
        }
        // Every record is checked in full on some read, whether or not this one looks.
        for (seen, (want, _)) in batch.iter().zip(&self.published) {
            assert_eq!(seen, &want[..]);
        }
        if drop_batch {
            drop(batch);
        } else {
            batch.release();
        }
        for _ in 0..expected {
            let (_, end) = self.published.pop_front().unwrap();
            self.head = end;
        }
    }

    fn read_lazy(
        &mut self,
        consumer: &mut RecordConsumer,
        max: usize,
        look: usize,
        drop_batch: bool,
    ) {
        let batch = consumer.read_lazy(max);
        let expected = look.min(max).min(self.published.len());
        let seen: Vec<Vec<u8>> = batch.iter().take(look).map(<[u8]>::to_vec).collect();
        assert_eq!(seen.len(), expected);
        assert_eq!(batch.taken(), expected);
        for (seen, (want, _)) in seen.iter().zip(&self.published) {
            assert_eq!(seen, want);
        }
        if drop_batch {
            drop(batch);
        } else {
            batch.release();
        }
        for _ in 0..expected {
            let (_, end) = self.published.pop_front().unwrap();
            self.head = end;
        }
    }
}

proptest! {
    #[test]
    fn record_ring_matches_queue_model((capacity, ops) in scenario()) {
        let (mut producer, mut consumer) = heap_ring(capacity);
        prop_assert_eq!(producer.capacity(), capacity);
        let mut model = Model {
            capacity: capacity as u64,
            tail: 0,
            head: 0,
            pending: Vec::new(),
            published: VecDeque::new(),
            next_byte: 0,
        };
        for op in ops {
            match op {
                Op::Write { len, spare } => model.write(&mut producer, len, spare),
                Op::Append { len } => model.append(&mut producer, len),
                Op::AppendRun { len, count } => model.append_run(&mut producer, len, count),
                Op::Publish => model.publish(&mut producer),
                Op::Read { max, look, drop_batch } => {
                    model.read(&mut consumer, max, look, drop_batch)
                }
                Op::ReadLazy { max, look, drop_batch } => {
                    model.read_lazy(&mut consumer, max, look, drop_batch)
                }
            }
        }
        // Whatever is left arrives once published.
        model.publish(&mut producer);
        model.read(&mut consumer, usize::MAX, 0, false);
        prop_assert!(model.published.is_empty());
        prop_assert!(consumer.read(usize::MAX).is_empty());
    }
}
