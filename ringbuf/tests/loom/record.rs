//! loom model of the record ring's publish/release protocol over a tiny heap ring.
//!
//! The ring has 32 data bytes, so three small records already wrap around the end through
//! a padding record. Every data word the handles touch is tracked by loom, so a missing
//! acquire or release on either sequence shows up as a data race.

use loom::thread;
use squall_ringbuf::record::{RecordProducer, WriteError, heap_ring};

/// Record sizes in the ring: 16, 8 and 16 bytes. The third starts at offset 24, does not fit
/// in the last 8 bytes, so it leaves padding there and wraps to offset 0.
const RECORDS: [&[u8]; 3] = [b"abc", b"", b"12345678"];

fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(model);
}

/// Writes `record`, publishing and yielding while the ring is full.
fn write_blocking(producer: &mut RecordProducer, record: &[u8]) {
    loop {
        match producer.write(record) {
            Ok(()) => return,
            Err(WriteError::RecordFull) => {
                producer.publish();
                thread::yield_now();
            }
            Err(other) => panic!("unexpected write error: {other}"),
        }
    }
}

/// Reads until `expected` records have arrived, `max_records` per batch.
fn read_all(
    consumer: &mut squall_ringbuf::record::RecordConsumer,
    expected: usize,
    max_records: usize,
) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    while seen.len() < expected {
        let batch = consumer.read(max_records);
        if batch.is_empty() {
            drop(batch);
            thread::yield_now();
            continue;
        }
        assert!(batch.len() <= max_records);
        seen.extend(batch.iter().map(<[u8]>::to_vec));
        batch.release();
    }
    seen
}

#[test]
fn record_batches_arrive_whole_across_the_wrap() {
    check(|| {
        let (mut producer, mut consumer) = heap_ring(32);
        let writer = thread::spawn(move || {
            // One batch of two records, then one record that wraps.
            write_blocking(&mut producer, RECORDS[0]);
            write_blocking(&mut producer, RECORDS[1]);
            producer.publish();
            write_blocking(&mut producer, RECORDS[2]);
            producer.publish();
            producer
        });
        let seen = read_all(&mut consumer, RECORDS.len(), usize::MAX);
        assert_eq!(seen, RECORDS);
        drop(writer.join().unwrap());
    });
}

#[test]
fn record_reads_of_one_release_each_record() {
    check(|| {
        let (mut producer, mut consumer) = heap_ring(32);
        let writer = thread::spawn(move || {
            for record in RECORDS {
                write_blocking(&mut producer, record);
                producer.publish();
            }
        });
        let seen = read_all(&mut consumer, RECORDS.len(), 1);
        assert_eq!(seen, RECORDS);
        writer.join().unwrap();
    });
}

#[test]
fn record_producer_drop_publishes_pending_and_abandons() {
    check(|| {
        let (mut producer, mut consumer) = heap_ring(32);
        let writer = thread::spawn(move || {
            producer.write(RECORDS[0]).unwrap();
            // Dropped without an explicit publish.
        });
        let seen = read_all(&mut consumer, 1, usize::MAX);
        assert_eq!(seen, [RECORDS[0]]);
        writer.join().unwrap();
        assert!(consumer.is_abandoned());
        assert!(consumer.read(usize::MAX).is_empty());
    });
}

/// Appends `record` in place, publishing and yielding while the ring is full.
fn append_blocking(producer: &mut RecordProducer, record: &[u8]) {
    loop {
        match producer.append(record.len()) {
            Ok(buf) => {
                buf.copy_from_slice(record);
                return;
            }
            Err(WriteError::RecordFull) => {
                producer.publish();
                thread::yield_now();
            }
            Err(other) => panic!("unexpected append error: {other}"),
        }
    }
}

/// Reads lazily until `expected` records have arrived, up to `max_records` per batch.
fn read_all_lazily(
    consumer: &mut squall_ringbuf::record::RecordConsumer,
    expected: usize,
    max_records: usize,
) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    while seen.len() < expected {
        let batch = consumer.read_lazy(max_records);
        seen.extend(batch.iter().map(<[u8]>::to_vec));
        let taken = batch.taken();
        assert!(taken <= max_records);
        batch.release();
        if taken == 0 {
            thread::yield_now();
        }
    }
    seen
}

#[test]
fn appended_records_arrive_whole_through_lazy_batches_across_the_wrap() {
    check(|| {
        let (mut producer, mut consumer) = heap_ring(32);
        let writer = thread::spawn(move || {
            append_blocking(&mut producer, RECORDS[0]);
            append_blocking(&mut producer, RECORDS[1]);
            producer.publish();
            append_blocking(&mut producer, RECORDS[2]);
            producer.publish();
            producer
        });
        let seen = read_all_lazily(&mut consumer, RECORDS.len(), usize::MAX);
        assert_eq!(seen, RECORDS);
        drop(writer.join().unwrap());
    });
}

#[test]
fn lazy_batches_of_one_release_each_record() {
    check(|| {
        let (mut producer, mut consumer) = heap_ring(32);
        let writer = thread::spawn(move || {
            for record in RECORDS {
                append_blocking(&mut producer, record);
                producer.publish();
            }
        });
        let seen = read_all_lazily(&mut consumer, RECORDS.len(), 1);
        assert_eq!(seen, RECORDS);
        writer.join().unwrap();
    });
}

/// A consumer about to sleep against a producer publishing: either the consumer's last
/// look finds the record, or the producer finds the consumer asleep and must wake it.
#[test]
fn a_sleeping_consumer_sees_the_record_or_is_woken() {
    check(|| {
        let (mut producer, mut consumer) = heap_ring(32);
        let writer = thread::spawn(move || {
            write_blocking(&mut producer, b"abc");
            producer.publish();
            producer.consumer_needs_wake()
        });
        consumer.prepare_sleep();
        let batch = consumer.read(1);
        let found = !batch.is_empty();
        drop(batch);
        let woken = writer.join().unwrap();
        assert!(found || woken, "lost wake-up");
        consumer.awake();
    });
}
