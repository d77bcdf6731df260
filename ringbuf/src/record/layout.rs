//! The byte layout shared by every process that maps a ring: header lines, record headers and
//! the owner words that keep one producer and one consumer attached at a time.
//!
//! All multi-byte values are stored in the byte order of the host, since a ring is only ever
//! shared by processes on one machine; a foreign byte order shows up as a wrong magic.

use crate::sync::AtomicU64;

/// Magic number in the first eight bytes of every ring: the ASCII bytes `SQUALLRB`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SQUALLRB");

/// Version of the layout described in the [module docs](super#layout).
pub const VERSION: u32 = 2;

/// Size of one header line. 128 bytes keeps the two sequences apart even on CPUs whose
/// prefetcher pulls cache lines in adjacent pairs.
pub const LINE_BYTES: usize = 128;

/// Bytes before the data area: identity line, write-sequence line, read-sequence line.
pub const HEADER_BYTES: usize = 3 * LINE_BYTES;

/// Bytes of the header word in front of every record.
pub const RECORD_HEADER_BYTES: usize = 8;

/// Alignment of every record header and therefore of every record's first byte.
pub const RECORD_ALIGN: usize = 8;

/// Smallest data capacity a ring accepts (its largest record is then 8 bytes).
pub const MIN_CAPACITY: usize = 32;

/// Largest data capacity a ring accepts (keeps record lengths and sizes far from overflow).
pub const MAX_CAPACITY: usize = 1 << 40;

/// Largest sequence a ring accepts from its header: far beyond what 2⁶⁴ bytes of traffic
/// minus a few capacities reach, and low enough that a sequence plus a few capacities never
/// overflows. A peer that writes a larger one has corrupted the ring.
pub(crate) const MAX_SEQUENCE: u64 = u64::MAX - 4 * MAX_CAPACITY as u64;

/// Checks a read sequence against the write sequence: `read <= write <= read + capacity`,
/// both multiples of [`RECORD_ALIGN`], neither beyond [`MAX_SEQUENCE`].
pub(crate) fn check_sequences(
    read_seq: u64,
    write_seq: u64,
    capacity: usize,
) -> Result<(), super::error::RingCorruption> {
    let align = RECORD_ALIGN as u64;
    if write_seq > MAX_SEQUENCE
        || !write_seq.is_multiple_of(align)
        || read_seq > write_seq
        || write_seq - read_seq > capacity as u64
        || !read_seq.is_multiple_of(align)
    {
        return Err(super::error::RingCorruption::ReadSequence {
            read_seq,
            write_seq,
            capacity,
        });
    }
    Ok(())
}

/// Record header word that marks padding: the rest of the data area up to its end is skipped.
pub(crate) const PADDING: u64 = u64::MAX;

/// One header line: 128-byte aligned and sized, so what follows starts on a fresh line.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Line<T>(pub(crate) T);

/// The first header line: what the ring is, and who is attached to it.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Identity {
    /// [`MAGIC`].
    pub(crate) magic: u64,
    /// [`VERSION`].
    pub(crate) version: u32,
    /// [`HEADER_BYTES`]: where the data area starts.
    pub(crate) header_bytes: u32,
    /// Bytes of the data area, a power of two.
    pub(crate) capacity: u64,
    /// [`OwnerWord`] of the producer.
    pub(crate) producer_owner: AtomicU64,
    /// [`OwnerWord`] of the consumer.
    pub(crate) consumer_owner: AtomicU64,
}

/// The ring header as it sits at the start of the region.
///
/// Invariants once initialised: `identity` never changes except for the owner words;
/// `read_seq <= write_seq <= read_seq + capacity`; both sequences are multiples of
/// [`RECORD_ALIGN`] and only grow.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) identity: Line<Identity>,
    /// Byte sequence up to which records are published. Written only by the producer
    /// (release), read by the consumer (acquire).
    pub(crate) write_seq: Line<AtomicU64>,
    /// The consumer's line: what it released, and whether it sleeps.
    pub(crate) read_seq: Line<ReadSide>,
}

/// What the consumer writes and the producer reads, on one line.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ReadSide {
    /// Byte sequence up to which records are released. Written only by the consumer
    /// (release), read by the producer (acquire).
    pub(crate) seq: AtomicU64,
    /// Non-zero while the consumer sleeps until woken: a producer that publishes then wakes
    /// it (see `RecordConsumer::prepare_sleep`). Written by both ends; any value is
    /// harmless, so a peer in another process cannot corrupt the ring through it.
    pub(crate) consumer_sleeping: AtomicU64,
}

// The mapped-file format is fixed; loom's atomics are larger, and loom never maps files.
#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Header>() == HEADER_BYTES);
    assert!(std::mem::offset_of!(Header, write_seq) == LINE_BYTES);
    assert!(std::mem::offset_of!(Header, read_seq) == 2 * LINE_BYTES);
    assert!(std::mem::offset_of!(Identity, capacity) == 16);
    assert!(std::mem::offset_of!(Identity, producer_owner) == 24);
    assert!(std::mem::offset_of!(Identity, consumer_owner) == 32);
};

impl Header {
    /// A fresh header for an empty ring of `capacity` data bytes with the given owner words.
    pub(crate) fn new(
        capacity: usize,
        producer_owner: OwnerWord,
        consumer_owner: OwnerWord,
    ) -> Self {
        Self {
            identity: Line(Identity {
                magic: MAGIC,
                version: VERSION,
                header_bytes: HEADER_BYTES as u32,
                capacity: capacity as u64,
                producer_owner: AtomicU64::new(producer_owner.0),
                consumer_owner: AtomicU64::new(consumer_owner.0),
            }),
            write_seq: Line(AtomicU64::new(0)),
            read_seq: Line(ReadSide {
                seq: AtomicU64::new(0),
                consumer_sleeping: AtomicU64::new(0),
            }),
        }
    }

    /// The owner word of `role`.
    pub(crate) fn owner(&self, role: Role) -> &AtomicU64 {
        match role {
            Role::Producer => &self.identity.0.producer_owner,
            Role::Consumer => &self.identity.0.consumer_owner,
        }
    }
}

/// Rounds a requested data capacity up to the power of two (at least [`MIN_CAPACITY`]) a ring
/// uses; `None` for zero or more than [`MAX_CAPACITY`].
pub(crate) fn round_capacity(requested: usize) -> Option<usize> {
    if requested == 0 || requested > MAX_CAPACITY {
        return None;
    }
    Some(requested.max(MIN_CAPACITY).next_power_of_two())
}

/// Whether `capacity` is one a ring can have.
#[cfg_attr(loom, allow(dead_code, reason = "checks mapped headers only"))]
pub(crate) fn is_valid_capacity(capacity: u64) -> bool {
    capacity.is_power_of_two() && (MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&capacity)
}

/// Largest record of a ring with `capacity` data bytes: a record plus its header takes at
/// most half the data area, so it always fits once the ring has drained, even when it has
/// to wrap and leave the tail of the area as padding.
pub(crate) const fn max_record_len(capacity: usize) -> usize {
    capacity / 2 - RECORD_HEADER_BYTES
}

/// Bytes a record of `len` payload bytes occupies: header plus payload rounded up to
/// [`RECORD_ALIGN`].
#[inline(always)]
pub(crate) const fn record_size(len: usize) -> usize {
    RECORD_HEADER_BYTES + ((len + (RECORD_ALIGN - 1)) & !(RECORD_ALIGN - 1))
}

/// Which end of the ring a handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Producer,
    Consumer,
}

impl Role {
    #[cfg_attr(loom, allow(dead_code, reason = "used in errors of mapped rings only"))]
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

/// Who holds one end of the ring.
///
/// Bits 0..32: process id of the holder. Bits 32..63: attach epoch, counted up on every
/// attach so that each attachment has its own word. Bit 63: detached. The word 0 means
/// "never attached".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnerWord(pub(crate) u64);

impl OwnerWord {
    const DETACHED_BIT: u64 = 1 << 63;
    const EPOCH_MASK: u64 = (1 << 31) - 1;

    pub(crate) const NEVER_ATTACHED: OwnerWord = OwnerWord(0);

    /// The word of an attachment by process `pid` with the given epoch.
    pub(crate) fn attached(pid: u32, epoch: u32) -> Self {
        OwnerWord(((u64::from(epoch) & Self::EPOCH_MASK) << 32) | u64::from(pid))
    }

    /// This attachment's word once it has detached cleanly.
    pub(crate) fn detached(self) -> Self {
        OwnerWord(self.0 | Self::DETACHED_BIT)
    }

    pub(crate) fn pid(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn epoch(self) -> u32 {
        ((self.0 >> 32) & Self::EPOCH_MASK) as u32
    }

    pub(crate) fn is_detached(self) -> bool {
        self.0 & Self::DETACHED_BIT != 0
    }

    /// Attached and not detached since (the holder may have died without detaching).
    pub(crate) fn is_attached(self) -> bool {
        self.0 != 0 && !self.is_detached()
    }

    /// The word of the next attachment, by process `pid`.
    pub(crate) fn successor(self, pid: u32) -> Self {
        Self::attached(pid, self.epoch().wrapping_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes_are_header_plus_aligned_payload() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
        assert_eq!(record_size(64), 72);
    }

    #[test]
    fn capacities_round_up_to_powers_of_two_within_bounds() {
        assert_eq!(round_capacity(0), None);
        assert_eq!(round_capacity(1), Some(MIN_CAPACITY));
        assert_eq!(round_capacity(4096), Some(4096));
        assert_eq!(round_capacity(4097), Some(8192));
        assert_eq!(round_capacity(MAX_CAPACITY + 1), None);
        assert!(is_valid_capacity(4096));
        assert!(!is_valid_capacity(4095));
        assert!(!is_valid_capacity(16));
    }

    #[test]
    fn largest_record_fits_after_worst_case_padding() {
        for capacity in [32usize, 64, 4096, 1 << 20] {
            let size = record_size(max_record_len(capacity));
            // From any offset of an empty ring, either the record fits before the end, or
            // the padding up to the end plus the record fit in the whole area.
            for offset in (0..capacity).step_by(8) {
                let to_end = capacity - offset;
                assert!(size <= to_end || to_end + size <= capacity);
            }
        }
    }

    #[test]
    fn owner_words_keep_pid_epoch_and_detach_flag() {
        let word = OwnerWord::NEVER_ATTACHED.successor(4242);
        assert_eq!((word.pid(), word.epoch()), (4242, 1));
        assert!(word.is_attached() && !word.is_detached());
        let gone = word.detached();
        assert!(gone.is_detached() && !gone.is_attached());
        assert_eq!((gone.pid(), gone.epoch()), (4242, 1));
        assert_eq!(gone.successor(7).epoch(), 2);
        assert!(!OwnerWord::NEVER_ATTACHED.is_attached());
    }
}
