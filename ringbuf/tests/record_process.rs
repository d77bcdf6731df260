//! Record rings shared by two processes through a mapped file, including producers that die
//! mid-batch.
//!
//! Child processes are this test executable run again with `--exact <child test>` and
//! [`ROLE_VAR`] naming what the child does; without the variable the child tests return at
//! once, so a plain test run treats them as passing no-ops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use squall_ringbuf::record::{
    RecordConsumer, RecordProducer, RecordRing, RecordRingError, WriteError,
};

/// Tells a child test which part to play.
const ROLE_VAR: &str = "SQUALL_RECORD_RING_CHILD";
/// The ring file a child attaches to.
const PATH_VAR: &str = "SQUALL_RECORD_RING_PATH";

/// Records the writer child sends in the two-process test.
const STREAM_RECORDS: u64 = 10_000_000;
/// Seed of the record lengths, shared by writer and verifier.
const STREAM_SEED: u64 = 0x5eed_2024;

/// Longest the parent waits for a child before failing the test.
const PATIENCE: Duration = Duration::from_secs(120);

/// The ring path if this process is a child playing `role`.
fn child_role(role: &str) -> Option<PathBuf> {
    (std::env::var(ROLE_VAR).ok()? == role).then(|| std::env::var_os(PATH_VAR).unwrap().into())
}

/// Runs the child test `test_name` as a child process playing `role` on the ring at `path`.
fn spawn_child(test_name: &str, role: &str, path: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(PATH_VAR, path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for `child`, killing it (and failing) if it outlives [`PATIENCE`].
fn wait_for(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "child process {} did not finish in {PATIENCE:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes `record`, publishing and backing off while the ring is full.
fn write_blocking(producer: &mut RecordProducer, record: &[u8]) {
    let mut spins = 0u32;
    loop {
        match producer.write(record) {
            Ok(()) => return,
            Err(WriteError::RecordFull) => {
                producer.publish();
                backoff(&mut spins);
            }
            Err(other) => panic!("{other}"),
        }
    }
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Reads every record currently published.
fn drain(consumer: &mut RecordConsumer) -> Vec<Vec<u8>> {
    let batch = consumer.read(usize::MAX);
    let records = batch.iter().map(<[u8]>::to_vec).collect();
    batch.release();
    records
}

/// Payload word `index` of stream record `seq`: a splitmix64 sequence seeded by `seq`.
fn payload_word(seq: u64, index: u64) -> u64 {
    let mut z = (seq << 16 | index).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `payload` with the bytes of stream record `seq`.
fn fill_payload(seq: u64, payload: &mut [u8]) {
    for (index, chunk) in payload.chunks_mut(8).enumerate() {
        let word = payload_word(seq, index as u64).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Checksum of a stream record: its sequence number, length and payload.
fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut sum = (seq ^ (payload.len() as u64) << 40).wrapping_mul(0x0100_0000_01b3);
    for chunk in payload.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        sum = (sum ^ u64::from_le_bytes(word)).wrapping_mul(0x0100_0000_01b3);
        sum ^= sum >> 29;
    }
    (sum ^ (sum >> 32)) as u32
}

/// Stream record layout: sequence number (u32), checksum (u32), payload.
fn write_stream_record(seq: u64, record: &mut [u8]) {
    let (head, payload) = record.split_at_mut(8);
    fill_payload(seq, payload);
    head[..4].copy_from_slice(&(seq as u32).to_le_bytes());
    head[4..].copy_from_slice(&checksum(seq, payload).to_le_bytes());
}

#[test]
fn child_stream_writer() {
    let Some(path) = child_role("stream-writer") else {
        return;
    };
    let mut producer = RecordRing::attach_producer(&path).unwrap();
    let mut lengths = fastrand::Rng::with_seed(STREAM_SEED);
    let mut spins = 0;
    let mut seq = 0;
    while seq < STREAM_RECORDS {
        let len = lengths.usize(8..=512);
        loop {
            match producer.write_with(len, |record| {
                write_stream_record(seq, record);
                len
            }) {
                Ok(()) => break,
                Err(WriteError::RecordFull) => {
                    producer.publish();
                    backoff(&mut spins);
                }
                Err(other) => panic!("{other}"),
            }
        }
        spins = 0;
        seq += 1;
        if seq.is_multiple_of(64) {
            producer.publish();
        }
    }
    // Dropping the producer publishes the rest.
}

#[test]
fn ten_million_records_cross_processes_intact_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.ring");
    let ring = RecordRing::create(&path, 1 << 20).unwrap();
    let mut consumer = ring.consumer().unwrap();
    let mut child = spawn_child("child_stream_writer", "stream-writer", &path);

    let mut lengths = fastrand::Rng::with_seed(STREAM_SEED);
    let mut expected = vec![0u8; 512];
    let mut seq = 0u64;
    let mut idle_polls = 0u32;
    let deadline = Instant::now() + PATIENCE;
    while seq < STREAM_RECORDS {
        let batch = consumer.read(1024);
        if batch.is_empty() {
            drop(batch);
            idle_polls += 1;
            if idle_polls.is_multiple_of(4096) {
                assert!(
                    child.try_wait().unwrap().is_none() || !consumer.read(1).is_empty(),
                    "writer exited after {seq} of {STREAM_RECORDS} records"
                );
                assert!(Instant::now() < deadline, "stalled after {seq} records");
            }
            std::thread::yield_now();
            continue;
        }
        for record in batch.iter() {
            let len = lengths.usize(8..=512);
            assert_eq!(record.len(), len, "length of record {seq}");
            let found_seq = u32::from_le_bytes(record[..4].try_into().unwrap());
            assert_eq!(
                u64::from(found_seq),
                seq & 0xffff_ffff,
                "records out of order"
            );
            let found_sum = u32::from_le_bytes(record[4..8].try_into().unwrap());
            assert_eq!(
                found_sum,
                checksum(seq, &record[8..]),
                "checksum of record {seq}"
            );
            write_stream_record(seq, &mut expected[..len]);
            assert!(record == &expected[..len], "content of record {seq}");
            seq += 1;
        }
        batch.release();
    }
    let status = wait_for(&mut child);
    assert!(status.success(), "writer failed: {status}");
    assert!(
        consumer.read(usize::MAX).is_empty(),
        "records beyond the stream"
    );
    assert!(consumer.is_abandoned());
}

/// Keeps the deliberate crash from leaving a core dump behind.
#[cfg(target_os = "linux")]
fn disable_core_dumps() {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only.
    let status = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    assert_eq!(status, 0, "prctl(PR_SET_DUMPABLE)");
}

/// Record `index` of a crash-test writer named `who`, with lengths that vary from 0 up.
#[cfg(target_os = "linux")]
fn tagged_record(who: &str, index: usize) -> Vec<u8> {
    let mut record = format!("{who} {index}:").into_bytes();
    record.resize(record.len() + index * 7 % 40, b'a' + (index % 26) as u8);
    record
}

/// Records the crash-test child publishes before it dies, in batches of this many.
#[cfg(target_os = "linux")]
const PUBLISHED_BATCHES: [usize; 3] = [4, 1, 5];

#[cfg(target_os = "linux")]
#[test]
fn child_crashing_writer() {
    let Some(path) = child_role("crash-after-publish")
        .map(|path| (path, PUBLISHED_BATCHES.as_slice()))
        .or_else(|| child_role("crash-before-publish").map(|path| (path, &[][..])))
    else {
        return;
    };
    let (path, batches) = path;
    disable_core_dumps();
    let mut producer = RecordRing::attach_producer(&path).unwrap();
    let mut index = 0;
    for &batch in batches {
        for _ in 0..batch {
            producer.write(&tagged_record("crashed", index)).unwrap();
            index += 1;
        }
        producer.publish();
    }
    // A batch that is never published: whole records, then one half written.
    for _ in 0..3 {
        producer.write(&tagged_record("crashed", index)).unwrap();
        index += 1;
    }
    let _ = producer.write_with(40, |buf| {
        buf[..20].fill(b'!');
        std::process::abort()
    });
    unreachable!("the writer aborts mid-record");
}

/// A producer process dies mid-batch after publishing `published` records; a new producer
/// takes over. The consumer must see exactly the published records, then the new ones.
#[cfg(target_os = "linux")]
fn crash_and_take_over(role: &str, published: usize) {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.ring");
    let ring = RecordRing::create(&path, 1024).unwrap();
    let mut consumer = ring.consumer().unwrap();

    // Move the ring's position to 960 of 1024 first (15 records of 8 + 56 bytes), so the
    // dead producer's records and garbage wrap around the end of the data area.
    {
        let mut warmup = ring.producer().unwrap();
        for index in 0..15 {
            let mut record = format!("warmup {index}").into_bytes();
            record.resize(56, b'w');
            warmup.write(&record).unwrap();
            warmup.publish();
            assert_eq!(drain(&mut consumer), [record]);
        }
    }

    let mut child = spawn_child("child_crashing_writer", role, &path);
    let status = wait_for(&mut child);
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "child should abort: {status}"
    );

    // The dead producer's published records, and nothing of its unpublished batch.
    let expected: Vec<Vec<u8>> = (0..published)
        .map(|i| tagged_record("crashed", i))
        .collect();
    assert_eq!(drain(&mut consumer), expected);
    assert!(consumer.read(usize::MAX).is_empty());
    assert!(
        consumer.is_abandoned(),
        "the dead producer still counts as attached"
    );

    // A new producer takes over the dead one's end and overwrites its garbage.
    let mut successor = RecordRing::attach_producer(&path).unwrap();
    assert!(!consumer.is_abandoned());
    let mut received = Vec::new();
    for index in 0..30 {
        write_blocking(&mut successor, &tagged_record("successor", index));
        if index % 4 == 3 {
            successor.publish();
            received.extend(drain(&mut consumer));
        }
    }
    drop(successor);
    received.extend(drain(&mut consumer));
    let expected: Vec<Vec<u8>> = (0..30).map(|i| tagged_record("successor", i)).collect();
    assert_eq!(received, expected);
}

#[cfg(target_os = "linux")]
#[test]
fn producer_dying_before_its_first_publish_loses_nothing_published() {
    crash_and_take_over("crash-before-publish", 0);
}

#[cfg(target_os = "linux")]
#[test]
fn producer_dying_after_publishing_some_batches_keeps_exactly_those() {
    crash_and_take_over("crash-after-publish", PUBLISHED_BATCHES.iter().sum());
}

#[cfg(target_os = "linux")]
#[test]
fn a_live_producer_in_another_process_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.ring");
    let ring = RecordRing::create(&path, 4096).unwrap();
    let _consumer = ring.consumer().unwrap();
    // `sleep` stands in for a live producer process: its pid goes into the owner word.
    let mut holder = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = holder.id();
    let producer_owner_offset = 24;
    let word = (1u64 << 32) | u64::from(pid);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(producer_owner_offset)).unwrap();
        file.write_all(&word.to_ne_bytes()).unwrap();
    }
    let refused = RecordRing::attach_producer(&path).unwrap_err();
    assert!(matches!(
        refused,
        RecordRingError::AlreadyAttached { role: "producer", pid: found, .. } if found == pid
    ));
    holder.kill().unwrap();
    holder.wait().unwrap();
    // Reaped: the end is free for a successor.
    RecordRing::attach_producer(&path).unwrap();
}
