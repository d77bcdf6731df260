//! A mapped record ring whose peer writes garbage: sound writes and reads interleaved with
//! arbitrary bytes written over the shared header and data area, as a hostile process
//! mapping the same file could. Nothing may panic, every record handed out must lie inside
//! the data area and within the largest record, and once the consumer has found the ring
//! corrupted it reads nothing more. Reopening the scribbled file must fail cleanly or give a
//! ring that reads as safely.
#![no_main]

use std::os::unix::fs::FileExt;

use libfuzzer_sys::fuzz_target;
use squall_ringbuf::record::{RecordConsumer, RecordRing, WriteError};

const CAPACITY: usize = 256;
const FILE_LEN: u64 = 384 + CAPACITY as u64;

/// Reads up to `max` records one way or the other, checking each lies in `area`.
fn read(consumer: &mut RecordConsumer, lazy: bool, max: usize, area: Option<(usize, usize)>) {
    let corrupt_before = consumer.corruption().is_some();
    let max_len = consumer.max_record_len();
    let check = |record: &[u8]| {
        assert!(!corrupt_before, "a corrupted ring handed out a record");
        assert!(record.len() <= max_len);
        if let Some((start, end)) = area {
            let at = record.as_ptr() as usize;
            assert!(
                at >= start && at + record.len() <= end,
                "record outside the data area"
            );
        }
    };
    if lazy {
        let batch = consumer.read_lazy(max);
        batch.iter().for_each(check);
    } else {
        let batch = consumer.read(max);
        assert!(batch.len() <= max);
        batch.iter().for_each(check);
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("fuzz.ring");
    let ring = RecordRing::create(&path, CAPACITY).expect("ring");
    let mut consumer = ring.consumer().expect("consumer");
    let mut producer = ring.producer().expect("producer");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("the ring file");
    // Where the data area is: the first record's payload is 8 bytes into it.
    producer.write(b"first").expect("room");
    producer.publish();
    let area = {
        let batch = consumer.read(1);
        let start = batch.iter().next().expect("the first record").as_ptr() as usize - 8;
        (start, start + CAPACITY)
    };
    let mut ops = data;
    while let [op, arg, rest @ ..] = ops {
        ops = rest;
        match op % 5 {
            0 => match producer.write(&vec![*arg; usize::from(*arg) % 160]) {
                Ok(()) | Err(WriteError::RecordFull) => {}
                Err(WriteError::RecordTooLarge { .. }) => assert!(usize::from(*arg) % 160 > 120),
                Err(WriteError::Corrupted(_)) => assert!(producer.corruption().is_some()),
            },
            1 => producer.publish(),
            2 => {
                // Garbage: `arg % 16` bytes at an offset from the next two bytes.
                let Some((at, rest)) = ops.split_first_chunk::<2>() else {
                    return;
                };
                let len = usize::from(*arg % 16).min(rest.len());
                let offset = u64::from(u16::from_le_bytes(*at)) % FILE_LEN;
                let len = len.min((FILE_LEN - offset) as usize);
                file.write_all_at(&rest[..len], offset).expect("scribble");
                ops = &rest[len..];
            }
            3 => read(&mut consumer, false, usize::from(*arg), Some(area)),
            _ => read(&mut consumer, true, usize::from(*arg), Some(area)),
        }
    }
    drop((producer, consumer, ring));
    // Whatever the file holds now, opening it again fails with an error or reads safely.
    if let Ok(ring) = RecordRing::open(&path)
        && let Ok(mut consumer) = ring.consumer()
    {
        read(&mut consumer, false, usize::MAX, None);
        read(&mut consumer, true, usize::MAX, None);
    }
});
