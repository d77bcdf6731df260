//! Record rings in mapped files: creating, opening, refusing bad headers, attach rules.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use squall_ringbuf::record::{HEADER_BYTES, MAGIC, RecordRing, RecordRingError, VERSION};

/// Overwrites `bytes` at `offset` of the file at `path`.
fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

fn new_ring(dir: &tempfile::TempDir, capacity: usize) -> std::path::PathBuf {
    let path = dir.path().join("test.ring");
    drop(RecordRing::create(&path, capacity).unwrap());
    path
}

#[test]
fn created_ring_has_the_documented_size_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.ring");
    let ring = RecordRing::create(&path, 3000).unwrap();
    assert_eq!(ring.capacity(), 4096);
    assert_eq!(ring.max_record_len(), 2040);
    assert_eq!(ring.path(), path);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        (HEADER_BYTES + 4096) as u64
    );
    // Only the ring file is left in the directory: the staging file is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"SQUALLRB");
    assert_eq!(
        u32::from_ne_bytes(bytes[8..12].try_into().unwrap()),
        VERSION
    );
    assert_eq!(RecordRing::open(&path).unwrap().capacity(), 4096);
    assert!(format!("{ring:?}").contains("RecordRing"));
}

#[test]
fn ring_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn creating_over_an_existing_file_fails_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken");
    std::fs::write(&path, b"precious").unwrap();
    let error = RecordRing::create(&path, 4096).unwrap_err();
    assert!(
        matches!(
            error,
            RecordRingError::Io {
                action: "create",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot create ring file {}", path.display()))
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn zero_capacity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = RecordRing::create(dir.path().join("zero"), 0).unwrap_err();
    assert!(matches!(
        error,
        RecordRingError::CapacityOutOfRange { requested: 0, .. }
    ));
}

#[test]
fn wrong_magic_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    patch(&path, 0, &0xdead_beef_u64.to_ne_bytes());
    let error = RecordRing::open(&path).unwrap_err();
    assert!(matches!(
        error,
        RecordRingError::BadMagic {
            found: 0xdead_beef,
            expected: MAGIC,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!(
            "ring header magic in {} is 0x00000000deadbeef, expected 0x42524c4c41555153",
            path.display()
        )
    );
    assert!(RecordRing::attach_producer(&path).is_err());
    assert!(RecordRing::attach_consumer(&path).is_err());
}

#[test]
fn wrong_version_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    patch(&path, 8, &7u32.to_ne_bytes());
    let error = RecordRing::open(&path).unwrap_err();
    assert!(matches!(
        error,
        RecordRingError::UnsupportedVersion {
            found: 7,
            expected: VERSION,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!(
            "ring header version in {} is 7, expected {VERSION}",
            path.display()
        )
    );
}

#[test]
fn capacity_that_disagrees_with_the_file_size_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len((HEADER_BYTES + 8192) as u64).unwrap();
    let error = RecordRing::open(&path).unwrap_err();
    assert!(matches!(
        error,
        RecordRingError::CapacityMismatch {
            header_capacity: 4096,
            region_capacity: 8192,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!(
            "ring capacity in header of {} is 4096 bytes but the mapped region holds 8192",
            path.display()
        )
    );
}

#[test]
fn capacity_that_no_ring_has_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    patch(&path, 16, &4000u64.to_ne_bytes());
    let error = RecordRing::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            RecordRingError::InvalidCapacity { capacity: 4000, .. }
        ),
        "{error}"
    );
}

#[test]
fn wrong_header_size_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    patch(&path, 12, &512u32.to_ne_bytes());
    let error = RecordRing::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            RecordRingError::HeaderSizeMismatch { found: 512, .. }
        ),
        "{error}"
    );
}

#[test]
fn inconsistent_sequences_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    // Write sequence 16, read sequence 24: the consumer is ahead of the producer.
    patch(&path, 128, &16u64.to_ne_bytes());
    patch(&path, 256, &24u64.to_ne_bytes());
    let error = RecordRing::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            RecordRingError::CorruptSequences {
                write_seq: 16,
                read_seq: 24,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn short_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, [0u8; 100]).unwrap();
    let error = RecordRing::open(&short).unwrap_err();
    assert!(matches!(
        error,
        RecordRingError::TooSmall {
            len: 100,
            header: 384,
            ..
        }
    ));
    let missing = dir.path().join("missing");
    let error = RecordRing::open(&missing).unwrap_err();
    assert!(matches!(error, RecordRingError::Io { action: "open", .. }));
    assert!(error.to_string().contains("missing"));
}

#[test]
fn one_live_producer_and_one_live_consumer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 4096);
    let ring = RecordRing::open(&path).unwrap();
    let producer = ring.producer().unwrap();
    let consumer = ring.consumer().unwrap();
    for error in [
        RecordRing::attach_producer(&path).unwrap_err(),
        ring.producer().unwrap_err(),
    ] {
        let RecordRingError::AlreadyAttached { role, pid, .. } = &error else {
            panic!("unexpected {error}");
        };
        assert_eq!((*role, *pid), ("producer", std::process::id()));
        assert_eq!(
            error.to_string(),
            format!(
                "ring {} already has a live producer (process {})",
                path.display(),
                std::process::id()
            )
        );
    }
    assert!(matches!(
        ring.consumer().unwrap_err(),
        RecordRingError::AlreadyAttached {
            role: "consumer",
            ..
        }
    ));
    drop(producer);
    assert!(consumer.is_abandoned());
    let again = ring.producer().unwrap();
    assert!(!consumer.is_abandoned());
    drop(consumer);
    assert!(again.is_abandoned());
    ring.consumer().unwrap();
}

#[test]
fn a_reattached_producer_and_consumer_resume_where_their_predecessors_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_ring(&dir, 256);
    {
        let mut producer = RecordRing::attach_producer(&path).unwrap();
        let mut consumer = RecordRing::attach_consumer(&path).unwrap();
        for value in 0u8..6 {
            producer.write(&[value; 20]).unwrap();
        }
        producer.publish();
        producer.write(&[6; 20]).unwrap();
        // Dropping publishes the pending record.
        drop(producer);
        let batch = consumer.read(2);
        assert_eq!(batch.len(), 2);
        batch.release();
        // Read but not released: the next consumer sees these again.
        let batch = consumer.read(2);
        assert_eq!(batch.len(), 2);
        std::mem::forget(batch);
    }
    let mut producer = RecordRing::attach_producer(&path).unwrap();
    let mut consumer = RecordRing::attach_consumer(&path).unwrap();
    // The ring has wrapped by now: 7 * 32 bytes written, then more after 64 released.
    producer.write(&[7; 20]).unwrap();
    producer.write(&[8; 20]).unwrap();
    producer.publish();
    let batch = consumer.read(usize::MAX);
    let firsts: Vec<u8> = batch.iter().map(|record| record[0]).collect();
    assert_eq!(firsts, [2, 3, 4, 5, 6, 7, 8]);
    assert!(batch.iter().all(|record| record.len() == 20));
}

#[test]
fn handles_outlive_the_ring_value_and_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.ring");
    let ring = RecordRing::create(&path, 4096).unwrap();
    let mut producer = ring.producer().unwrap();
    let mut consumer = ring.consumer().unwrap();
    drop(ring);
    std::fs::remove_file(&path).unwrap();
    producer.write(b"still mapped").unwrap();
    producer.publish();
    let batch = consumer.read(usize::MAX);
    assert_eq!(batch.iter().next(), Some(&b"still mapped"[..]));
}
