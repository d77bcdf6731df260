//! Rings in a file mapped by every process that uses it.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use memmap2::MmapMut;

use super::consumer::RecordConsumer;
use super::error::RecordRingError;
use super::layout::{
    HEADER_BYTES, Header, MAGIC, MAX_CAPACITY, MIN_CAPACITY, OwnerWord, RECORD_ALIGN, Role,
    VERSION, is_valid_capacity, max_record_len, round_capacity,
};
use super::owner;
use super::producer::RecordProducer;
use super::region::{RegionOwner, RingPtrs};
use crate::sync::{Arc, AtomicU64, Ordering};

/// A ring file mapped into this process.
///
/// Invariant: `map` holds a ring header that passed [`validate`], followed by the data area.
#[derive(Debug)]
pub(crate) struct MappedRegion {
    path: PathBuf,
    // Never dereferenced as a slice: all access goes through the pointers taken at mapping
    // time, so handles never hold references that overlap another process's writes.
    _map: MmapMut,
}

impl MappedRegion {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A record ring in a memory-mapped file, shared by a producer and a consumer that may live
/// in different processes.
///
/// [`create`](Self::create) makes a new ring file; [`open`](Self::open) maps an existing one
/// after checking its header. From either, [`producer`](Self::producer) and
/// [`consumer`](Self::consumer) attach the two ends; [`attach_producer`](Self::attach_producer)
/// and [`attach_consumer`](Self::attach_consumer) do both steps. Every handle keeps the
/// mapping alive, so the `RecordRing` itself may be dropped once the handles exist. The file
/// stays on disk until someone removes it. See the [module docs](super#attaching-crashes-and-takeover)
/// for the attach and takeover rules.
#[derive(Debug)]
pub struct RecordRing {
    region: Arc<MappedRegion>,
    ptrs: RingPtrs,
}

// SAFETY: `ptrs` points into the mapping owned by `region`, which moves and is shared with
// the ring; the ring itself only reads the header through atomics and immutable fields.
unsafe impl Send for RecordRing {}
// SAFETY: as above: `&RecordRing` only reads the header and attaches handles through atomic
// compare-exchanges.
unsafe impl Sync for RecordRing {}

impl RecordRing {
    /// Creates a ring file at `path` with `capacity_bytes` of data area (rounded up to a power
    /// of two, at least [`MIN_CAPACITY`](super::MIN_CAPACITY)) and maps it. Neither end is
    /// attached yet.
    ///
    /// The file is built under a temporary name next to `path` and linked into place only
    /// once its header is complete, so a process opening `path` never sees a half-written
    /// header, and an existing file at `path` is never overwritten. A file system in memory
    /// (`/dev/shm`, tmpfs) spares the ring the kernel's write-back of dirty pages.
    ///
    /// # Errors
    /// [`RecordRingError::CapacityOutOfRange`] for a zero or too large capacity,
    /// [`RecordRingError::Io`] when the file exists already or cannot be created or mapped.
    pub fn create(path: impl AsRef<Path>, capacity_bytes: usize) -> Result<Self, RecordRingError> {
        let path = path.as_ref();
        let capacity =
            round_capacity(capacity_bytes).ok_or(RecordRingError::CapacityOutOfRange {
                requested: capacity_bytes,
                max: MAX_CAPACITY,
            })?;
        let staging = staging_path(path);
        let result = Self::create_via(path, &staging, capacity);
        // The staging name is only a step on the way; it never outlives `create`.
        let _ = fs::remove_file(&staging);
        result
    }

    fn create_via(path: &Path, staging: &Path, capacity: usize) -> Result<Self, RecordRingError> {
        let io = |action| move |source| io_error(action, staging, source);
        use std::os::unix::fs::OpenOptionsExt;
        // The ring carries the workers' tuples: only their user may map it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(staging)
            .map_err(io("create"))?;
        file.set_len((HEADER_BYTES + capacity) as u64)
            .map_err(io("size"))?;
        let mut map = map_file(&file, staging)?;
        let header = map.as_mut_ptr().cast::<Header>();
        let initial = Header::new(
            capacity,
            OwnerWord::NEVER_ATTACHED,
            OwnerWord::NEVER_ATTACHED,
        );
        // SAFETY: the mapping is page-aligned and HEADER_BYTES + capacity long, so it holds a
        // header; nobody else knows the staging file yet.
        unsafe { header.write(initial) };
        fs::hard_link(staging, path).map_err(|source| io_error("create", path, source))?;
        Ok(Self::from_map(path, map, capacity))
    }

    /// Maps the ring file at `path` after checking its header: magic, version, header size,
    /// capacity against the file's size, and the sequences' invariants.
    ///
    /// # Errors
    /// [`RecordRingError::Io`] when the file cannot be opened or mapped, and one of the
    /// header variants ([`BadMagic`](RecordRingError::BadMagic),
    /// [`UnsupportedVersion`](RecordRingError::UnsupportedVersion),
    /// [`CapacityMismatch`](RecordRingError::CapacityMismatch), ...) naming what is wrong.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RecordRingError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| io_error("open", path, source))?;
        let len = file
            .metadata()
            .map_err(|source| io_error("inspect", path, source))?
            .len();
        if len < HEADER_BYTES as u64 {
            return Err(RecordRingError::TooSmall {
                path: path.to_owned(),
                len,
                header: HEADER_BYTES,
            });
        }
        let mut map = map_file(&file, path)?;
        // SAFETY: the mapping is page-aligned and at least HEADER_BYTES long; every bit
        // pattern is a valid header value (integers and atomics only).
        let header = unsafe { &*map.as_mut_ptr().cast::<Header>() };
        let capacity = validate(header, len, path)?;
        Ok(Self::from_map(path, map, capacity))
    }

    fn from_map(path: &Path, mut map: MmapMut, capacity: usize) -> Self {
        let base = NonNull::new(map.as_mut_ptr()).expect("a mapping is never at address 0");
        let ptrs = RingPtrs {
            header: base.cast(),
            // SAFETY: the mapping is HEADER_BYTES + capacity long.
            data: unsafe { base.add(HEADER_BYTES) },
            capacity,
        };
        let region = Arc::new(MappedRegion {
            path: path.to_owned(),
            _map: map,
        });
        Self { region, ptrs }
    }

    /// Opens the ring file at `path` and attaches its producer end.
    ///
    /// # Errors
    /// As [`open`](Self::open) and [`producer`](Self::producer).
    pub fn attach_producer(path: impl AsRef<Path>) -> Result<RecordProducer, RecordRingError> {
        Self::open(path)?.producer()
    }

    /// Opens the ring file at `path` and attaches its consumer end.
    ///
    /// # Errors
    /// As [`open`](Self::open) and [`consumer`](Self::consumer).
    pub fn attach_consumer(path: impl AsRef<Path>) -> Result<RecordConsumer, RecordRingError> {
        Self::open(path)?.consumer()
    }

    /// Attaches this process as the ring's producer. The producer resumes at the published
    /// write sequence: records a crashed predecessor wrote but never published are
    /// overwritten.
    ///
    /// # Errors
    /// [`RecordRingError::AlreadyAttached`] while a live process (this one included) holds
    /// the producer end.
    pub fn producer(&self) -> Result<RecordProducer, RecordRingError> {
        let word = self.attach(Role::Producer)?;
        Ok(RecordProducer::new(
            self.ptrs,
            word,
            RegionOwner::Mapped(Arc::clone(&self.region)),
        ))
    }

    /// Attaches this process as the ring's consumer. The consumer resumes at the released
    /// read sequence: records a crashed predecessor read but never released are read again.
    ///
    /// # Errors
    /// [`RecordRingError::AlreadyAttached`] while a live process (this one included) holds
    /// the consumer end.
    pub fn consumer(&self) -> Result<RecordConsumer, RecordRingError> {
        let word = self.attach(Role::Consumer)?;
        Ok(RecordConsumer::new(
            self.ptrs,
            word,
            RegionOwner::Mapped(Arc::clone(&self.region)),
        ))
    }

    fn attach(&self, role: Role) -> Result<OwnerWord, RecordRingError> {
        // SAFETY: the header is initialised and lives as long as `self.region`.
        let header = unsafe { self.ptrs.header.as_ref() };
        owner::attach(header, role).map_err(|pid| RecordRingError::AlreadyAttached {
            path: self.region.path.clone(),
            role: role.name(),
            pid,
        })
    }

    /// The ring file's path.
    pub fn path(&self) -> &Path {
        &self.region.path
    }

    /// Bytes of the data area.
    pub fn capacity(&self) -> usize {
        self.ptrs.capacity
    }

    /// Largest record the ring carries.
    pub fn max_record_len(&self) -> usize {
        max_record_len(self.ptrs.capacity)
    }
}

/// A hidden sibling of `path` that no other process or thread picks: named after this
/// process and a per-process counter.
fn staging_path(path: &Path) -> PathBuf {
    static STAGED: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "ring".into(), |name| name.to_string_lossy().into_owned());
    let serial = STAGED.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{serial}.staging", std::process::id()))
}

fn map_file(file: &File, path: &Path) -> Result<MmapMut, RecordRingError> {
    // SAFETY: the mapping is shared on purpose: its bytes change under us only through the
    // ring protocol (atomics for the sequences and owner words, records only in memory the
    // protocol hands to one side at a time). Truncating the file while it is mapped is
    // outside that protocol, as the module docs state.
    unsafe { MmapMut::map_mut(file) }.map_err(|source| io_error("map", path, source))
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> RecordRingError {
    RecordRingError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Checks a mapped header against the layout this module writes and the file's length;
/// returns the data capacity.
fn validate(header: &Header, file_len: u64, path: &Path) -> Result<usize, RecordRingError> {
    let identity = &header.identity.0;
    if identity.magic != MAGIC {
        return Err(RecordRingError::BadMagic {
            path: path.to_owned(),
            found: identity.magic,
            expected: MAGIC,
        });
    }
    if identity.version != VERSION {
        return Err(RecordRingError::UnsupportedVersion {
            path: path.to_owned(),
            found: identity.version,
            expected: VERSION,
        });
    }
    if identity.header_bytes as usize != HEADER_BYTES {
        return Err(RecordRingError::HeaderSizeMismatch {
            path: path.to_owned(),
            found: identity.header_bytes,
            expected: HEADER_BYTES,
        });
    }
    let capacity = identity.capacity;
    if !is_valid_capacity(capacity) {
        return Err(RecordRingError::InvalidCapacity {
            path: path.to_owned(),
            capacity,
            min: MIN_CAPACITY,
            max: MAX_CAPACITY,
        });
    }
    let region_capacity = file_len - HEADER_BYTES as u64;
    if capacity != region_capacity {
        return Err(RecordRingError::CapacityMismatch {
            path: path.to_owned(),
            header_capacity: capacity,
            region_capacity,
        });
    }
    let write_seq = header.write_seq.0.load(Ordering::Acquire);
    let read_seq = header.read_seq.0.seq.load(Ordering::Acquire);
    let align = RECORD_ALIGN as u64;
    if read_seq > write_seq
        || write_seq - read_seq > capacity
        || !write_seq.is_multiple_of(align)
        || !read_seq.is_multiple_of(align)
    {
        return Err(RecordRingError::CorruptSequences {
            path: path.to_owned(),
            write_seq,
            read_seq,
            capacity,
        });
    }
    Ok(capacity as usize)
}
