//! Errors of the record ring: writing a record, and creating or attaching to a ring file.

use std::path::PathBuf;

/// Why [`RecordProducer::write_with`](super::RecordProducer::write_with) wrote nothing.
///
/// Neither variant allocates: the write path stays allocation-free even when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The ring lacks room for the record right now; retry once the consumer has released
    /// records. Pending records are not published by the failed call, so publish them first
    /// if the consumer is to make room.
    #[error("record ring is full: the consumer has not released enough bytes for this record")]
    RecordFull,
    /// The record can never fit: its length exceeds the ring's largest record.
    #[error("record of {len} bytes exceeds the ring's largest record of {max} bytes")]
    RecordTooLarge {
        /// Requested record length in bytes.
        len: usize,
        /// [`RecordProducer::max_record_len`](super::RecordProducer::max_record_len).
        max: usize,
    },
    /// The ring's shared memory breaks the layout's invariants; the producer writes nothing
    /// more (see [`RecordProducer::corruption`](super::RecordProducer::corruption)).
    #[error(transparent)]
    Corrupted(#[from] RingCorruption),
}

/// A value in a ring's shared memory that breaks the layout's invariants, which only a
/// process writing the mapped file behind this module's back (a broken or hostile peer) can
/// cause. The handle that finds one stops using the ring: a consumer reads nothing more, a
/// producer writes nothing more. Each variant names the value and the bound it broke.
///
/// No variant allocates, so finding corruption on the hot path allocates nothing either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingCorruption {
    /// The producer's write sequence is not a multiple of 8 between the consumer's read
    /// sequence and one capacity above it.
    #[error(
        "record ring corrupted: write sequence {write_seq} is not a multiple of 8 between \
         the read sequence {read_seq} and {capacity} bytes above it"
    )]
    WriteSequence {
        /// The write sequence found in the header.
        write_seq: u64,
        /// The consumer's read sequence.
        read_seq: u64,
        /// Bytes of the data area.
        capacity: usize,
    },
    /// The producer's write sequence went back below records it had already published.
    #[error("record ring corrupted: write sequence went back from {published} to {write_seq}")]
    WriteSequenceBack {
        /// The write sequence found in the header.
        write_seq: u64,
        /// The write sequence loaded before, which records were read below.
        published: u64,
    },
    /// The consumer's read sequence is not a multiple of 8 within one capacity below the
    /// producer's write sequence, or is beyond any sequence a ring reaches.
    #[error(
        "record ring corrupted: read sequence {read_seq} is not a multiple of 8 within \
         {capacity} bytes below the write sequence {write_seq}"
    )]
    ReadSequence {
        /// The read sequence found in the header.
        read_seq: u64,
        /// The write sequence.
        write_seq: u64,
        /// Bytes of the data area.
        capacity: usize,
    },
    /// A record header announces more bytes than the ring's largest record.
    #[error(
        "record ring corrupted: record length {len} at sequence {position} exceeds the \
         ring's largest record of {max} bytes (capacity {capacity})"
    )]
    RecordTooLong {
        /// The length in the record header.
        len: u64,
        /// Sequence of the record header.
        position: u64,
        /// The ring's largest record.
        max: usize,
        /// Bytes of the data area.
        capacity: usize,
    },
    /// A record would run past the end of the data area (records never wrap).
    #[error(
        "record ring corrupted: the {len}-byte record at data offset {offset} runs past the \
         end of the {capacity}-byte data area"
    )]
    PastEnd {
        /// The length in the record header.
        len: u64,
        /// Where the record header is in the data area.
        offset: usize,
        /// Bytes of the data area.
        capacity: usize,
    },
    /// A record (or padding) ends beyond the published write sequence.
    #[error(
        "record ring corrupted: the record at sequence {position} ends at sequence {end}, \
         past the published write sequence {write_seq}"
    )]
    PastWriteSequence {
        /// Sequence of the record header.
        position: u64,
        /// Sequence right after the record.
        end: u64,
        /// The published write sequence.
        write_seq: u64,
    },
}

/// Why a ring file could not be created, opened or attached to.
#[derive(Debug, thiserror::Error)]
pub enum RecordRingError {
    /// The file could not be created, opened, sized or mapped.
    #[error("cannot {action} ring file {path}: {source}")]
    Io {
        /// What was being done ("create", "open", "map", ...).
        action: &'static str,
        /// The ring file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The requested capacity is zero or too large.
    #[error("ring capacity of {requested} bytes is out of range (1 to {max} bytes)")]
    CapacityOutOfRange {
        /// The requested capacity in bytes.
        requested: usize,
        /// [`MAX_CAPACITY`](super::MAX_CAPACITY).
        max: usize,
    },
    /// The file is too short to hold a ring header.
    #[error("ring file {path} holds {len} bytes, too few for the {header}-byte ring header")]
    TooSmall {
        /// The ring file.
        path: PathBuf,
        /// Length of the file in bytes.
        len: u64,
        /// [`HEADER_BYTES`](super::HEADER_BYTES).
        header: usize,
    },
    /// The file does not start with the ring magic: not a ring file, or one written with a
    /// different byte order.
    #[error("ring header magic in {path} is {found:#018x}, expected {expected:#018x}")]
    BadMagic {
        /// The ring file.
        path: PathBuf,
        /// The magic found in the header.
        found: u64,
        /// [`MAGIC`](super::MAGIC).
        expected: u64,
    },
    /// The ring was written with another version of the layout.
    #[error("ring header version in {path} is {found}, expected {expected}")]
    UnsupportedVersion {
        /// The ring file.
        path: PathBuf,
        /// The version found in the header.
        found: u32,
        /// [`VERSION`](super::VERSION).
        expected: u32,
    },
    /// The header places the data area somewhere this version does not.
    #[error("ring header in {path} puts the data area at byte {found}, expected {expected}")]
    HeaderSizeMismatch {
        /// The ring file.
        path: PathBuf,
        /// Header size found in the header.
        found: u32,
        /// [`HEADER_BYTES`](super::HEADER_BYTES).
        expected: usize,
    },
    /// The capacity in the header is not one a ring can have.
    #[error(
        "ring capacity in header of {path} is {capacity} bytes, \
         not a power of two between {min} and {max}"
    )]
    InvalidCapacity {
        /// The ring file.
        path: PathBuf,
        /// Capacity found in the header.
        capacity: u64,
        /// [`MIN_CAPACITY`](super::MIN_CAPACITY).
        min: usize,
        /// [`MAX_CAPACITY`](super::MAX_CAPACITY).
        max: usize,
    },
    /// The capacity in the header disagrees with the size of the mapped file.
    #[error(
        "ring capacity in header of {path} is {header_capacity} bytes \
         but the mapped region holds {region_capacity}"
    )]
    CapacityMismatch {
        /// The ring file.
        path: PathBuf,
        /// Capacity found in the header.
        header_capacity: u64,
        /// Bytes of the file after the header.
        region_capacity: u64,
    },
    /// The sequences in the header break the ring's invariants.
    #[error(
        "ring sequences in {path} are inconsistent: write sequence {write_seq}, \
         read sequence {read_seq}, capacity {capacity} bytes"
    )]
    CorruptSequences {
        /// The ring file.
        path: PathBuf,
        /// Published write sequence found in the header.
        write_seq: u64,
        /// Released read sequence found in the header.
        read_seq: u64,
        /// Capacity of the ring.
        capacity: u64,
    },
    /// Another live process (possibly this one) holds that end of the ring.
    #[error("ring {path} already has a live {role} (process {pid})")]
    AlreadyAttached {
        /// The ring file.
        path: PathBuf,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// Process id recorded in the header for that end.
        pid: u32,
    },
}
