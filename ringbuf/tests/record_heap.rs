//! Behaviour of the in-process record ring through its public API.

use squall_ringbuf::record::{MIN_CAPACITY, RecordConsumer, WriteError, heap_ring};

fn drain(consumer: &mut RecordConsumer) -> Vec<Vec<u8>> {
    let batch = consumer.read(usize::MAX);
    let records = batch.iter().map(<[u8]>::to_vec).collect();
    batch.release();
    records
}

#[test]
fn capacity_rounds_up_to_a_power_of_two_and_bounds_record_length() {
    let (producer, consumer) = heap_ring(1000);
    assert_eq!(producer.capacity(), 1024);
    assert_eq!(consumer.capacity(), 1024);
    assert_eq!(producer.max_record_len(), 504);
    assert_eq!(consumer.max_record_len(), 504);
    let (tiny, _) = heap_ring(1);
    assert_eq!(tiny.capacity(), MIN_CAPACITY);
}

#[test]
#[should_panic(expected = "record ring capacity must be between 1 and")]
fn zero_capacity_panics_with_a_message() {
    let _ = heap_ring(0);
}

#[test]
fn records_are_invisible_until_published_then_arrive_in_order() {
    let (mut producer, mut consumer) = heap_ring(256);
    producer.write(b"one").unwrap();
    producer.write(b"").unwrap();
    producer.write(b"three").unwrap();
    assert_eq!(producer.pending(), 3);
    assert!(consumer.read(usize::MAX).is_empty());
    producer.publish();
    assert_eq!(producer.pending(), 0);
    assert_eq!(drain(&mut consumer), [&b"one"[..], b"", b"three"]);
    assert!(consumer.read(usize::MAX).is_empty());
}

#[test]
fn write_with_uses_only_the_bytes_it_reports() {
    let (mut producer, mut consumer) = heap_ring(256);
    producer
        .write_with(40, |buf| {
            assert_eq!(buf.len(), 40);
            buf[..4].copy_from_slice(b"abcd");
            4
        })
        .unwrap();
    producer.write_with(0, |buf| buf.len()).unwrap();
    producer.publish();
    assert_eq!(drain(&mut consumer), [&b"abcd"[..], b""]);
}

#[test]
fn write_some_appends_nothing_when_fill_writes_nothing() {
    let (mut producer, mut consumer) = heap_ring(256);
    assert_eq!(producer.write_some(40, |_| 0), Ok(0));
    assert_eq!(producer.pending(), 0);
    assert_eq!(
        producer.write_some(40, |buf| {
            buf[..3].copy_from_slice(b"xyz");
            3
        }),
        Ok(3)
    );
    producer.publish();
    assert_eq!(drain(&mut consumer), [&b"xyz"[..]]);
    // Near the end of the data area the claim leaves padding, which a fill that writes
    // nothing leaves pending; the consumer skips it and sees the next record whole.
    for _ in 0..3 {
        producer.write(&[1; 40]).unwrap();
        producer.publish();
        drain(&mut consumer);
    }
    assert_eq!(producer.write_some(100, |_| 0), Ok(0));
    producer.write(b"after").unwrap();
    producer.publish();
    assert_eq!(drain(&mut consumer), [&b"after"[..]]);
}

#[test]
#[should_panic(expected = "record fill returned 9 bytes but was given room for 8")]
fn fill_that_claims_more_than_its_room_panics() {
    let (mut producer, _consumer) = heap_ring(256);
    let _ = producer.write_with(8, |_| 9);
}

#[test]
fn oversized_records_are_refused_with_their_length() {
    let (mut producer, _consumer) = heap_ring(64);
    let max = producer.max_record_len();
    assert_eq!(max, 24);
    assert_eq!(
        producer.write(&[0; 25]),
        Err(WriteError::RecordTooLarge { len: 25, max: 24 })
    );
    assert_eq!(
        WriteError::RecordTooLarge { len: 25, max: 24 }.to_string(),
        "record of 25 bytes exceeds the ring's largest record of 24 bytes"
    );
    producer.write(&[7; 24]).unwrap();
}

#[test]
fn full_ring_refuses_until_the_consumer_releases() {
    // 64 bytes hold four 16-byte records (8-byte header + up to 8 bytes of payload).
    let (mut producer, mut consumer) = heap_ring(64);
    for value in 0u8..4 {
        producer.write(&[value; 8]).unwrap();
    }
    let mut called = false;
    assert_eq!(
        producer.write_with(8, |_| {
            called = true;
            8
        }),
        Err(WriteError::RecordFull)
    );
    assert!(!called, "fill must not run when the record does not fit");
    producer.publish();
    assert_eq!(producer.write(&[9; 8]), Err(WriteError::RecordFull));

    // Reading without releasing frees nothing.
    let batch = consumer.read(2);
    assert_eq!(batch.len(), 2);
    assert_eq!(producer.write(&[9; 8]), Err(WriteError::RecordFull));
    batch.release();
    producer.write(&[4; 8]).unwrap();
    producer.write(&[5; 8]).unwrap();
    assert_eq!(producer.write(&[6; 8]), Err(WriteError::RecordFull));
    producer.publish();
    let values: Vec<u8> = drain(&mut consumer).iter().map(|r| r[0]).collect();
    assert_eq!(values, [2, 3, 4, 5]);
}

#[test]
fn a_record_that_does_not_fit_before_the_end_wraps_behind_padding() {
    let (mut producer, mut consumer) = heap_ring(64);
    // 24 + 24 bytes, leaving 16 before the end.
    producer.write(&[1; 16]).unwrap();
    producer.write(&[2; 16]).unwrap();
    producer.publish();
    assert_eq!(drain(&mut consumer).len(), 2);
    // 24 bytes do not fit in the last 16: padding, then the record at offset 0.
    producer.write(&[3; 16]).unwrap();
    // 16 bytes fit after it, and 8 more before the read position at 64 + 0.
    producer.write(&[4; 8]).unwrap();
    producer.write(&[]).unwrap();
    producer.publish();
    // The padding (16) and records (24 + 16 + 8) fill the ring exactly.
    assert_eq!(producer.write(&[]), Err(WriteError::RecordFull));
    assert_eq!(drain(&mut consumer), [vec![3; 16], vec![4; 8], Vec::new()]);
    producer.write(&[5; 24]).unwrap();
    producer.publish();
    assert_eq!(drain(&mut consumer), [vec![5; 24]]);
}

#[test]
fn partial_reads_release_only_their_records() {
    let (mut producer, mut consumer) = heap_ring(1024);
    for value in 0u8..10 {
        producer.write(&[value; 3]).unwrap();
    }
    producer.publish();
    let batch = consumer.read(3);
    assert_eq!(batch.len(), 3);
    assert_eq!(batch.iter().len(), 3);
    // Only the first record is looked at; the batch still frees all three.
    assert_eq!(batch.iter().next(), Some(&[0u8; 3][..]));
    batch.release();
    // Dropping a batch releases it too.
    drop(consumer.read(2));
    let rest: Vec<u8> = drain(&mut consumer).iter().map(|r| r[0]).collect();
    assert_eq!(rest, [5, 6, 7, 8, 9]);
    assert!(consumer.read(0).is_empty());
}

#[test]
fn a_batch_can_be_iterated_more_than_once() {
    let (mut producer, mut consumer) = heap_ring(256);
    producer.write(b"x").unwrap();
    producer.write(b"yz").unwrap();
    producer.publish();
    let batch = consumer.read(usize::MAX);
    let first: Vec<&[u8]> = batch.iter().collect();
    let second: Vec<&[u8]> = (&batch).into_iter().collect();
    assert_eq!(first, second);
    assert_eq!(first, [&b"x"[..], b"yz"]);
}

#[test]
fn dropping_the_producer_publishes_pending_records_and_abandons_the_ring() {
    let (mut producer, mut consumer) = heap_ring(256);
    assert!(!producer.is_abandoned());
    assert!(!consumer.is_abandoned());
    producer.write(b"last words").unwrap();
    drop(producer);
    assert!(consumer.is_abandoned());
    assert_eq!(drain(&mut consumer), [&b"last words"[..]]);
}

#[test]
fn dropping_the_consumer_abandons_the_ring() {
    let (mut producer, consumer) = heap_ring(256);
    drop(consumer);
    assert!(producer.is_abandoned());
    // Writing into an abandoned ring still works until it is full; nothing reads it.
    producer.write(b"unread").unwrap();
    producer.publish();
}

#[test]
fn handles_are_debug() {
    let (mut producer, mut consumer) = heap_ring(256);
    producer.write(b"a").unwrap();
    producer.publish();
    assert!(format!("{producer:?}").starts_with("RecordProducer"));
    assert!(format!("{consumer:?}").starts_with("RecordConsumer"));
    let batch = consumer.read(usize::MAX);
    assert!(format!("{batch:?}").contains("len: 1"));
    assert!(format!("{:?}", batch.iter()).starts_with("RecordIter"));
}

#[test]
fn append_lends_exactly_the_record_and_refuses_like_write() {
    let (mut producer, mut consumer) = heap_ring(64);
    let buf = producer.append(5).unwrap();
    assert_eq!(buf.len(), 5);
    buf.copy_from_slice(b"hello");
    producer.append(0).unwrap();
    assert_eq!(producer.pending(), 2);
    assert_eq!(
        producer.append(25).unwrap_err(),
        WriteError::RecordTooLarge { len: 25, max: 24 }
    );
    // 16 + 8 bytes used: two more 16-byte records fit, a third does not.
    producer.append(8).unwrap().fill(1);
    producer.append(8).unwrap().fill(2);
    assert_eq!(producer.append(1).unwrap_err(), WriteError::RecordFull);
    assert_eq!(producer.pending(), 4);
    producer.publish();
    assert_eq!(
        drain(&mut consumer),
        [b"hello".to_vec(), Vec::new(), vec![1; 8], vec![2; 8]]
    );
    // Across the end of the area: 24 bytes do not fit in the last 16, so padding first.
    producer.append(16).unwrap().fill(3);
    producer.publish();
    assert_eq!(drain(&mut consumer), [vec![3; 16]]);
}

#[test]
fn lazy_batches_hand_out_records_once_and_release_only_those() {
    let (mut producer, mut consumer) = heap_ring(1024);
    for value in 0u8..10 {
        producer.write(&[value; 3]).unwrap();
    }
    producer.publish();
    let batch = consumer.read_lazy(4);
    assert_eq!(batch.taken(), 0);
    let first: Vec<u8> = batch.iter().take(2).map(|r| r[0]).collect();
    assert_eq!(first, [0, 1]);
    // Iterating again resumes after the records handed out, up to the limit of 4.
    let more: Vec<u8> = (&batch).into_iter().map(|r| r[0]).collect();
    assert_eq!(more, [2, 3]);
    assert_eq!(batch.iter().next(), None);
    assert_eq!(batch.taken(), 4);
    assert!(format!("{batch:?}").contains("taken: 4"));
    assert!(format!("{:?}", batch.iter()).starts_with("LazyIter"));
    batch.release();
    // A batch that hands out one record frees one.
    let batch = consumer.read_lazy(usize::MAX);
    assert_eq!(batch.iter().next(), Some(&[4u8; 3][..]));
    drop(batch);
    let rest: Vec<u8> = drain(&mut consumer).iter().map(|r| r[0]).collect();
    assert_eq!(rest, [5, 6, 7, 8, 9]);
    assert_eq!(consumer.read_lazy(usize::MAX).iter().next(), None);
}

#[test]
fn a_lazy_batch_sees_records_published_after_it_started_and_skips_padding() {
    let (mut producer, mut consumer) = heap_ring(64);
    producer.write(&[1; 16]).unwrap();
    producer.write(&[2; 16]).unwrap();
    producer.publish();
    {
        let batch = consumer.read_lazy(usize::MAX);
        let mut records = batch.iter();
        assert_eq!(records.next(), Some(&[1u8; 16][..]));
        assert_eq!(records.next(), Some(&[2u8; 16][..]));
        assert_eq!(records.next(), None);
    }
    // Known records ran out, so a new batch loads the write sequence: the padding in the
    // last 16 bytes is skipped on the way to the record at offset 0.
    producer.write(&[3; 16]).unwrap();
    producer.publish();
    let batch = consumer.read_lazy(usize::MAX);
    assert_eq!(batch.iter().collect::<Vec<_>>(), [&[3u8; 16][..]]);
    batch.release();
    producer.write(&[4; 24]).unwrap();
    producer.publish();
    assert_eq!(drain(&mut consumer), [vec![4; 24]]);
}

/// A checksum over a record's payload, stored in its first 8 bytes.
fn checksum(seq: u64, payload: &[u8]) -> u64 {
    payload
        .iter()
        .fold(seq ^ 0x9e37_79b9_7f4a_7c15, |sum, &byte| {
            (sum ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[test]
fn threads_exchange_a_million_records_without_tearing() {
    const COUNT: u64 = 1_000_000;
    let (mut producer, mut consumer) = heap_ring(1 << 14);
    let writer = std::thread::spawn(move || {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seq = 0;
        while seq < COUNT {
            let len = rng.usize(16..=200);
            let written = producer.write_with(len, |buf| {
                let (head, payload) = buf.split_at_mut(16);
                for (i, byte) in payload.iter_mut().enumerate() {
                    *byte = (seq as usize + i) as u8;
                }
                head[..8].copy_from_slice(&seq.to_le_bytes());
                head[8..].copy_from_slice(&checksum(seq, payload).to_le_bytes());
                len
            });
            match written {
                Ok(()) => {
                    seq += 1;
                    if seq.is_multiple_of(32) {
                        producer.publish();
                    }
                }
                Err(WriteError::RecordFull) => {
                    producer.publish();
                    std::thread::yield_now();
                }
                Err(other) => panic!("{other}"),
            }
        }
    });
    let mut expected = 0;
    while expected < COUNT {
        let batch = consumer.read(256);
        if batch.is_empty() {
            drop(batch);
            assert!(
                !consumer.is_abandoned() || expected == COUNT,
                "producer left early"
            );
            std::thread::yield_now();
            continue;
        }
        for record in batch.iter() {
            let seq = u64::from_le_bytes(record[..8].try_into().unwrap());
            let sum = u64::from_le_bytes(record[8..16].try_into().unwrap());
            assert_eq!(seq, expected);
            assert_eq!(sum, checksum(seq, &record[16..]), "record {seq} is torn");
            expected += 1;
        }
        batch.release();
    }
    writer.join().unwrap();
}

#[test]
fn a_producer_wakes_a_consumer_that_announced_sleep_once() {
    let (mut producer, consumer) = squall_ringbuf::record::heap_ring(256);
    producer.write(b"before").unwrap();
    producer.publish();
    assert!(
        !producer.consumer_needs_wake(),
        "an awake consumer needs no wake-up"
    );
    consumer.prepare_sleep();
    producer.write(b"after").unwrap();
    producer.publish();
    assert!(producer.consumer_needs_wake());
    assert!(
        !producer.consumer_needs_wake(),
        "one wake-up answers one announcement"
    );
    consumer.prepare_sleep();
    consumer.awake();
    assert!(!producer.consumer_needs_wake(), "withdrawn");
}

#[test]
fn a_run_appended_at_once_reads_as_the_same_records_appended_one_by_one() {
    let (mut producer, mut consumer) = heap_ring(1024);
    producer.append(3).unwrap().copy_from_slice(b"pre");
    assert!(producer.append_run(5, 4, |index, payload| {
        payload.copy_from_slice(&[b'a' + index as u8; 5]);
    }));
    assert_eq!(producer.pending(), 5);
    producer.append(4).unwrap().copy_from_slice(b"post");
    producer.publish();
    assert_eq!(
        drain(&mut consumer),
        [&b"pre"[..], b"aaaaa", b"bbbbb", b"ccccc", b"ddddd", b"post"]
    );
}

#[test]
fn a_run_that_does_not_fit_at_once_appends_nothing() {
    let (mut producer, mut consumer) = heap_ring(1024);
    let never = |_: usize, _: &mut [u8]| panic!("nothing to fill");
    assert!(
        !producer.append_run(1000, 1, never),
        "larger than the ring takes"
    );
    assert!(
        !producer.append_run(8, usize::MAX, never),
        "a size that overflows"
    );
    // Sixteen 56-byte records (64 bytes each, with their headers) fill the ring exactly.
    assert!(
        !producer.append_run(56, 17, never),
        "more than the ring holds"
    );
    assert!(producer.append_run(56, 12, |_, payload| payload.fill(7)));
    assert!(
        !producer.append_run(56, 5, never),
        "past the end of the data area"
    );
    assert_eq!(producer.pending(), 12);
    producer.publish();
    assert_eq!(drain(&mut consumer).len(), 12);
    // The records that did not fit before the end go one by one, wrapping to the start.
    for _ in 0..5 {
        producer.append(56).unwrap().fill(8);
    }
    assert!(
        !producer.append_run(56, 12, never),
        "beyond what the consumer released"
    );
    producer.publish();
    assert_eq!(drain(&mut consumer), vec![vec![8; 56]; 5]);
}
