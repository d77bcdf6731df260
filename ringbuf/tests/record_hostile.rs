//! A mapped ring whose peer writes garbage over the shared header and data area, as a
//! hostile or broken process mapping the same file could: reading and writing never panic,
//! never hand out a record outside the data area, and a consumer that found the ring
//! corrupted names what was wrong and reads nothing more. The same check runs unbounded as
//! the `shm_ring` fuzz target.

use std::os::unix::fs::FileExt;

use proptest::prelude::*;
use squall_ringbuf::record::{
    HEADER_BYTES, RecordConsumer, RecordRing, RingCorruption, WriteError,
};

const CAPACITY: usize = 256;
const FILE_LEN: u64 = (HEADER_BYTES + CAPACITY) as u64;

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Publish,
    /// Bytes written over the file at an offset, behind the ring's back.
    Scribble(u64, Vec<u8>),
    Read(usize),
    ReadLazy(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..140).prop_map(Op::Write),
        2 => Just(Op::Publish),
        2 => (0..FILE_LEN, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Op::Scribble(at, bytes)),
        // Header words, where garbage hurts most: the sequences and record headers.
        1 => (prop::sample::select(vec![128u64, 256, 384, 392, 400]), any::<u64>())
            .prop_map(|(at, word)| Op::Scribble(at, word.to_ne_bytes().to_vec())),
        2 => (0usize..8).prop_map(Op::Read),
        2 => (0usize..8).prop_map(Op::ReadLazy),
    ]
}

/// Reads up to `max` records and checks each lies in `area`; returns how many.
fn read(consumer: &mut RecordConsumer, lazy: bool, max: usize, area: (usize, usize)) -> usize {
    let corrupt_before = consumer.corruption().is_some();
    let max_len = consumer.max_record_len();
    let check = |record: &[u8]| {
        assert!(!corrupt_before, "a corrupted ring handed out a record");
        assert!(record.len() <= max_len);
        let at = record.as_ptr() as usize;
        assert!(at >= area.0 && at + record.len() <= area.1);
    };
    if lazy {
        let batch = consumer.read_lazy(max);
        batch.iter().inspect(|r| check(r)).count()
    } else {
        let batch = consumer.read(max);
        batch.iter().inspect(|r| check(r)).count()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_from_the_peer_is_an_error_not_a_panic(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.ring");
        let ring = RecordRing::create(&path, CAPACITY).unwrap();
        let mut consumer = ring.consumer().unwrap();
        let mut producer = ring.producer().unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        producer.write(b"first").unwrap();
        producer.publish();
        let area = {
            let batch = consumer.read(1);
            let start = batch.iter().next().unwrap().as_ptr() as usize - 8;
            (start, start + CAPACITY)
        };
        for op in ops {
            match op {
                Op::Write(len) => match producer.write(&vec![7; len]) {
                    Ok(()) | Err(WriteError::RecordFull) => {}
                    Err(WriteError::RecordTooLarge { .. }) => prop_assert!(len > 120),
                    Err(WriteError::Corrupted(found)) => {
                        prop_assert_eq!(producer.corruption(), Some(found));
                    }
                },
                Op::Publish => producer.publish(),
                Op::Scribble(at, bytes) => {
                    let len = bytes.len().min((FILE_LEN - at) as usize);
                    file.write_all_at(&bytes[..len], at).unwrap();
                }
                Op::Read(max) => {
                    prop_assert!(read(&mut consumer, false, max, area) <= max);
                }
                Op::ReadLazy(max) => {
                    prop_assert!(read(&mut consumer, true, max, area) <= max);
                }
            }
        }
    }
}

/// A ring file mapped by this test, with both ends attached, and the file to scribble on.
fn hostile_ring() -> (tempfile::TempDir, RecordRing, std::fs::File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.ring");
    let ring = RecordRing::create(&path, CAPACITY).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    (dir, ring, file)
}

#[test]
fn a_record_length_beyond_the_ring_is_named() {
    let (_dir, ring, file) = hostile_ring();
    let mut consumer = ring.consumer().unwrap();
    let mut producer = ring.producer().unwrap();
    producer.write(b"hello").unwrap();
    producer.publish();
    file.write_all_at(&u64::from(u32::MAX).to_ne_bytes(), HEADER_BYTES as u64)
        .unwrap();
    assert!(consumer.read(usize::MAX).is_empty());
    let found = consumer.corruption().unwrap();
    assert_eq!(
        found,
        RingCorruption::RecordTooLong {
            len: u64::from(u32::MAX),
            position: 0,
            max: 120,
            capacity: 256
        }
    );
    assert_eq!(
        found.to_string(),
        "record ring corrupted: record length 4294967295 at sequence 0 exceeds the ring's \
         largest record of 120 bytes (capacity 256)"
    );
    // The peer repairing the word changes nothing: the consumer has stopped.
    file.write_all_at(&5u64.to_ne_bytes(), HEADER_BYTES as u64)
        .unwrap();
    assert!(consumer.read_lazy(usize::MAX).iter().next().is_none());
}

#[test]
fn a_write_sequence_out_of_range_or_going_back_is_named() {
    let (_dir, ring, file) = hostile_ring();
    let mut consumer = ring.consumer().unwrap();
    file.write_all_at(&(1u64 << 40).to_ne_bytes(), 128).unwrap();
    assert_eq!(consumer.read_lazy(1).iter().count(), 0);
    assert_eq!(
        consumer.corruption().unwrap().to_string(),
        "record ring corrupted: write sequence 1099511627776 is not a multiple of 8 between \
         the read sequence 0 and 256 bytes above it"
    );

    let (_dir, ring, file) = hostile_ring();
    let mut consumer = ring.consumer().unwrap();
    let mut producer = ring.producer().unwrap();
    producer.write(b"one").unwrap();
    producer.write(b"two").unwrap();
    producer.publish();
    {
        let batch = consumer.read_lazy(1);
        assert_eq!(batch.iter().next(), Some(&b"one"[..]));
    }
    // Back below the records already known to be published, but not below those released.
    file.write_all_at(&24u64.to_ne_bytes(), 128).unwrap();
    assert_eq!(
        consumer.read(usize::MAX).len(),
        1,
        "the record below the old sequence"
    );
    let batch = consumer.read(usize::MAX);
    assert!(batch.is_empty());
    drop(batch);
    assert_eq!(
        consumer.corruption(),
        Some(RingCorruption::WriteSequenceBack {
            write_seq: 24,
            published: 32
        })
    );
}

#[test]
fn a_read_sequence_out_of_range_stops_the_producer() {
    let (_dir, ring, file) = hostile_ring();
    let mut producer = ring.producer().unwrap();
    // Fill the ring so that the producer must load the read sequence.
    while producer.write(&[1; 100]).is_ok() {}
    producer.publish();
    file.write_all_at(&u64::MAX.to_ne_bytes(), 256).unwrap();
    let error = producer.write(&[1; 100]).unwrap_err();
    assert!(matches!(
        error,
        WriteError::Corrupted(RingCorruption::ReadSequence { .. })
    ));
    assert_eq!(
        error.to_string(),
        "record ring corrupted: read sequence 18446744073709551615 is not a multiple of 8 \
         within 256 bytes below the write sequence 224"
    );
    // Even a record that would fit below the old limit is refused now.
    assert_eq!(producer.write(&[]), Err(error));
}
