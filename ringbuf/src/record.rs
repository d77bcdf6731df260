//! Byte-record ring: variable-length records from one producer to one consumer, over heap
//! memory in one process or over a file mapped by two processes.
//!
//! The producer appends records to a pending batch and publishes the batch with one release
//! store of the write sequence; the consumer reads every published record as one batch of
//! slices borrowed straight from the ring and releases the batch with one release store of
//! the read sequence. Records are never copied by the ring, and the hot path neither
//! allocates nor locks nor makes a system call.
//!
//! Each side has a one-pass form for the hottest paths: [`RecordProducer::append`] appends
//! a record of a known length and lends its bytes to be written in place (no fill closure),
//! and [`RecordConsumer::read_lazy`] finds records as they are iterated (no walk to count
//! them first) and releases only those handed out.
//!
//! The same code serves two kinds of memory:
//!
//! - [`heap_ring`] allocates the ring on the heap and returns both ends, which share the
//!   allocation (an `Arc`) and free it when both are dropped.
//! - [`RecordRing`] creates or opens a ring in a file mapped with `memmap2`; a producer and a
//!   consumer attach to it from the same or from different processes.
//!
//! # Example: in one process
//!
//! ```
//! use squall_ringbuf::record::heap_ring;
//!
//! let (mut producer, mut consumer) = heap_ring(4096);
//! producer.write(b"hello").unwrap();
//! // Fill a record in place: reserve up to 16 bytes, use 5.
//! producer.write_with(16, |buf| {
//!     buf[..5].copy_from_slice(b"world");
//!     5
//! }).unwrap();
//! assert!(consumer.read(usize::MAX).is_empty(), "nothing is visible before publish");
//! producer.publish();
//!
//! let batch = consumer.read(usize::MAX);
//! let records: Vec<&[u8]> = batch.iter().collect();
//! assert_eq!(records, [&b"hello"[..], &b"world"[..]]);
//! batch.release();
//!
//! // A record of known length, written in place; read in one pass.
//! producer.append(3).unwrap().copy_from_slice(b"abc");
//! producer.publish();
//! let batch = consumer.read_lazy(usize::MAX);
//! assert_eq!(batch.iter().next(), Some(&b"abc"[..]));
//! assert_eq!(batch.taken(), 1);
//! batch.release();
//! ```
//!
//! # Example: through a mapped file
//!
//! Usually the two ends live in different processes that agree on the path; here both
//! attach from one process for brevity.
//!
//! ```
//! use squall_ringbuf::record::{RecordRing, RecordRingError};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("edge-7.ring");
//! let ring = RecordRing::create(&path, 1 << 16).unwrap();
//! let mut consumer = ring.consumer().unwrap();
//!
//! // Another process would call `RecordRing::attach_producer(&path)`.
//! let mut producer = RecordRing::attach_producer(&path).unwrap();
//! for seq in 0u64..100 {
//!     producer.write(&seq.to_le_bytes()).unwrap();
//! }
//! producer.publish();
//!
//! // A second live producer is refused.
//! let refused = RecordRing::attach_producer(&path).unwrap_err();
//! assert!(matches!(refused, RecordRingError::AlreadyAttached { role: "producer", .. }));
//!
//! let batch = consumer.read(usize::MAX);
//! assert_eq!(batch.len(), 100);
//! for (seq, record) in batch.iter().enumerate() {
//!     assert_eq!(record, (seq as u64).to_le_bytes());
//! }
//! batch.release();
//! ```
//!
//! # Layout
//!
//! A ring is a 384-byte header followed by the data area of `capacity` bytes, a power of two
//! between [`MIN_CAPACITY`] and [`MAX_CAPACITY`]. Values are stored in the host's byte order
//! (a ring is shared by processes of one machine only). The header is three 128-byte lines,
//! so that the two sequences, each written by one side only, never share a cache line (128
//! rather than 64 because some CPUs prefetch lines in adjacent pairs):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0   | 8 | magic [`MAGIC`], the ASCII bytes `SQUALLRB` |
//! | 8   | 4 | layout version [`VERSION`] |
//! | 12  | 4 | header size in bytes, [`HEADER_BYTES`] (where the data area starts) |
//! | 16  | 8 | capacity of the data area in bytes |
//! | 24  | 8 | producer owner word (see below) |
//! | 32  | 8 | consumer owner word |
//! | 40  | 88 | reserved, zero |
//! | 128 | 8 | write sequence: bytes published, written by the producer only |
//! | 256 | 8 | read sequence: bytes released, written by the consumer only |
//! | 264 | 8 | consumer sleeping: non-zero while the consumer waits to be woken (written by both ends; see [`RecordConsumer::prepare_sleep`]) |
//! | 384 | capacity | data area |
//!
//! Sequences count bytes since the ring was created and never wrap (2⁶⁴ bytes); a sequence
//! `s` lies at data offset `s % capacity`. Always `read ≤ write ≤ read + capacity`, and both
//! are multiples of 8.
//!
//! Each record is an 8-byte header word holding the payload length, followed by the payload,
//! padded with unspecified bytes up to a multiple of 8, so every record starts 8-byte aligned
//! and takes `8 + round_up(len, 8)` bytes. A record never wraps around the end of the data
//! area: when it does not fit before the end, the producer writes a padding record there
//! (header word `u64::MAX`), which stands for the rest of the area, and puts the record at
//! offset 0. A record's payload is at most `capacity / 2 - 8` bytes
//! ([`RecordProducer::max_record_len`]), so any record fits once the consumer has caught up,
//! wherever the ring's position happens to be.
//!
//! An owner word holds, in bits 0–31, the process id of the end's holder; in bits 32–62 an
//! attach epoch that grows by one with every attach; in bit 63 a flag set when the holder
//! detached. Zero means the end was never attached.
//!
//! # Protocol and memory orderings
//!
//! - The producer writes records only into free space, the bytes between the write sequence
//!   and the read sequence plus the capacity. It keeps the read sequence it last loaded and
//!   loads it again (acquire) only when a record does not fit below that cached limit.
//! - [`RecordProducer::publish`] stores the new write sequence with release ordering. A record
//!   becomes visible only through that store, so a consumer never observes a record, or a
//!   batch, that is partly written.
//! - The consumer loads the write sequence (acquire) only when the records it already knows
//!   of run out, reads records below it in place, and [`RecordBatch::release`] stores the new
//!   read sequence with release ordering, after which the producer may overwrite them.
//!
//! The protocol is model-checked with loom in `tests/loom/record.rs`.
//!
//! # Attaching, crashes and takeover
//!
//! Each end of a mapped ring is held by one process at a time, recorded in its owner word.
//! [`RecordRing::producer`] and [`RecordRing::consumer`] take an end when its word says
//! "never attached" or "detached", or names a process that no longer exists; a live holder
//! (this process included) makes them fail with [`RecordRingError::AlreadyAttached`]. The new
//! word is installed with one compare-exchange, so of two processes racing for an end one
//! wins. Dropping a handle detaches it; dropping the producer first publishes what is
//! pending.
//!
//! When a producer process dies mid-write, its unpublished records (even a record whose bytes
//! are half written) lie beyond the published write sequence, which the consumer never reads
//! past. The next producer resumes at the published write sequence and overwrites them: the
//! consumer sees every published record exactly once, then the new producer's records. When
//! a consumer dies, the next consumer resumes at the released read sequence, so records the
//! dead one read but had not released are delivered again.
//!
//! Liveness is checked with `kill(pid, 0)` on Linux, so a process counts as alive until its
//! parent has reaped it, and both processes must share a pid namespace. Elsewhere every
//! recorded holder counts as alive and a crashed end cannot be taken over. Processes must
//! access the file only through this module, and must not truncate it while it is mapped.
//!
//! # Errors
//!
//! Writing fails without side effects, and without allocating, with [`WriteError`].
//! Creating, opening and attaching fail with [`RecordRingError`], naming the file and the
//! mismatch, for instance "ring header magic in /dev/shm/a.ring is 0x0000000000000000,
//! expected 0x42524c4c41555153" or "ring capacity in header of /dev/shm/a.ring is 4096 bytes
//! but the mapped region holds 8192".

mod consumer;
mod error;
#[cfg(not(loom))]
mod file;
mod layout;
mod owner;
mod producer;
mod region;

pub use consumer::{LazyBatch, LazyIter, RecordBatch, RecordConsumer, RecordIter};
pub use error::{RecordRingError, RingCorruption, WriteError};
#[cfg(not(loom))]
pub use file::RecordRing;
pub use layout::{HEADER_BYTES, MAGIC, MAX_CAPACITY, MIN_CAPACITY, VERSION};
pub use producer::RecordProducer;

use layout::{OwnerWord, round_capacity};
use region::{HeapRegion, RegionOwner};

use crate::sync::Arc;

/// An in-process record ring of `capacity_bytes` of data area, rounded up to a power of two
/// of at least [`MIN_CAPACITY`] bytes; records up to half of that, minus 8, fit.
///
/// Both ends share one heap allocation, freed when both are dropped.
///
/// # Panics
/// When `capacity_bytes` is 0 or exceeds [`MAX_CAPACITY`].
pub fn heap_ring(capacity_bytes: usize) -> (RecordProducer, RecordConsumer) {
    let Some(capacity) = round_capacity(capacity_bytes) else {
        panic!(
            "record ring capacity must be between 1 and {MAX_CAPACITY} bytes, got {capacity_bytes}"
        )
    };
    let pid = std::process::id();
    let producer_word = OwnerWord::NEVER_ATTACHED.successor(pid);
    let consumer_word = OwnerWord::NEVER_ATTACHED.successor(pid);
    let region = Arc::new(HeapRegion::new(capacity, producer_word, consumer_word));
    let ptrs = region.ptrs();
    let producer = RecordProducer::new(ptrs, producer_word, RegionOwner::Heap(Arc::clone(&region)));
    let consumer = RecordConsumer::new(ptrs, consumer_word, RegionOwner::Heap(region));
    (producer, consumer)
}
