//! The byte-record ring under the harness: 64-byte records, each carrying its sequence number
//! and fixed filler, moved between two threads (over heap memory or a mapped file) or
//! between two processes (over a mapped file; the sender is this program run again as a
//! child).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use squall_ringbuf::record::{RecordConsumer, RecordProducer, RecordRing};

use crate::endpoints::{RingReceiver, RingSender};
use crate::harness::{Placement, Timing, own, pin, receive_for, send_until};
use crate::stats::Samples;
use crate::watchdog::Absences;

/// Payload bytes of every record.
pub const RECORD_LEN: usize = 64;

/// Words of a record.
const WORDS: usize = RECORD_LEN / 8;

/// Words 1.. of every record; word 0 is the sequence number. The receiver reads all words,
/// so every byte crosses from core to core.
const FILLER: [u64; WORDS - 1] = [
    0x0123_4567_89ab_cdef,
    0x1111_2222_3333_4444,
    0x5555_6666_7777_8888,
    0x9999_aaaa_bbbb_cccc,
    0xdddd_eeee_ffff_0000,
    0x0f1e_2d3c_4b5a_6978,
    0x8796_a5b4_c3d2_e1f0,
];

/// The filler's words added up, wrapping.
const FILLER_SUM: u64 = {
    let mut sum = 0u64;
    let mut index = 0;
    while index < FILLER.len() {
        sum = sum.wrapping_add(FILLER[index]);
        index += 1;
    }
    sum
};

/// Command-line flag that makes this program the sending child of the cross-process case.
pub const CHILD_SENDER_FLAG: &str = "--record-sender";
/// Command-line flag for the core the sending child pins itself to.
pub const CHILD_CORE_FLAG: &str = "--core";
/// Command-line flag for the records the sending child publishes at once.
pub const CHILD_BATCH_FLAG: &str = "--batch";

/// Longest the parent waits for the sending child to leave once the receiver is gone.
const CHILD_EXIT_PATIENCE: Duration = Duration::from_secs(10);

/// A record ring's producer, publishing once per call.
#[derive(Debug)]
pub struct RecordSender(pub RecordProducer);

/// A record ring's consumer, releasing once per call.
#[derive(Debug)]
pub struct RecordReceiver(pub RecordConsumer);

impl RingSender for RecordSender {
    #[inline]
    fn send(&mut self, first: u64, max: usize) -> usize {
        let mut sent = 0;
        while sent < max {
            let sequence = first + sent as u64;
            let written = self.0.write_with(RECORD_LEN, |record| {
                let (head, filler) = record.split_at_mut(8);
                head.copy_from_slice(&sequence.to_ne_bytes());
                for (bytes, word) in filler.chunks_exact_mut(8).zip(FILLER) {
                    bytes.copy_from_slice(&word.to_ne_bytes());
                }
                RECORD_LEN
            });
            if written.is_err() {
                break;
            }
            sent += 1;
        }
        self.0.publish();
        sent
    }
}

impl RingReceiver for RecordReceiver {
    #[inline]
    fn receive(&mut self, max: usize, sum: &mut u64) -> usize {
        let batch = self.0.read(max);
        for record in batch.iter() {
            let words = record.chunks_exact(8).fold(0u64, |words, bytes| {
                let word = u64::from_ne_bytes(bytes.try_into().expect("8-byte chunk"));
                words.wrapping_add(word)
            });
            // The sequence number, if the filler arrived intact.
            *sum = sum.wrapping_add(words.wrapping_sub(FILLER_SUM));
        }
        batch.len()
    }
}

/// A directory for ring files: in memory (`/dev/shm`) where there is one.
pub fn ring_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("squall-bench-")
        .tempdir_in(parent)
        .expect("create a directory for ring files")
}

/// A fresh ring file of `capacity_bytes` in `dir`.
pub fn create_ring(dir: &Path, name: &str, capacity_bytes: usize) -> RecordRing {
    let ring = RecordRing::create(dir.join(name), capacity_bytes).expect("create ring file");
    assert!(ring.max_record_len() >= RECORD_LEN, "ring too small");
    ring
}

/// Runs the cross-process case: this process receives, a child process sends.
pub fn cross_process_throughput(
    placement: Placement,
    batch: usize,
    timing: Timing,
    capacity_bytes: usize,
) -> Samples {
    let dir = ring_dir();
    let ring = create_ring(dir.path(), "cross-process.ring", capacity_bytes);
    let receiver = RecordReceiver(ring.consumer().expect("attach consumer"));
    let absences = SharedAbsences::create(ring.path());
    let cores = placement.cores();
    let mut child = spawn_sender(ring.path(), cores.map(|(core, _)| core.id), batch);
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                pin(cores.map(|(_, core)| core));
                let mut receiver = own(receiver);
                receive_for(&mut *receiver, batch, timing, absences.get())
                // Dropping the receiver detaches the consumer, which tells the child to stop.
            })
            .join()
    });
    let status = wait_or_kill(&mut child);
    let result = result.expect("receiver panicked");
    assert!(status.success(), "record sender child failed: {status}");
    result
}

fn spawn_sender(path: &Path, core: Option<usize>, batch: usize) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("path of this program"));
    command
        .arg(CHILD_SENDER_FLAG)
        .arg(path)
        .args([CHILD_BATCH_FLAG, &batch.to_string()]);
    if let Some(core) = core {
        command.args([CHILD_CORE_FLAG, &core.to_string()]);
    }
    command
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the record sender child")
}

fn wait_or_kill(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + CHILD_EXIT_PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("record sender child {} did not stop", child.id());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The sending child: attaches to the ring at `path` as its producer and sends until the
/// consumer detaches (or its process is gone).
pub fn run_child_sender(path: &PathBuf, core: Option<usize>, batch: usize) {
    pin(core.map(|id| core_affinity::CoreId { id }));
    let absences = SharedAbsences::open(path);
    let producer = RecordRing::attach_producer(path).expect("attach producer");
    let mut sender = RecordSender(producer);
    send_until(&mut sender, batch, absences.get(), |sender| {
        !sender.0.is_abandoned()
    });
}

/// The absences of the cross-process case, in a small file next to the ring that both
/// processes map.
struct SharedAbsences {
    /// The counters, at the start of `_map`.
    memory: *mut u8,
    _map: MmapMut,
}

impl SharedAbsences {
    /// Where the counter of the ring at `ring_path` lives.
    fn path(ring_path: &Path) -> PathBuf {
        ring_path.with_extension("absences")
    }

    /// Creates the (zeroed) counter file for the ring at `ring_path` and maps it.
    fn create(ring_path: &Path) -> Self {
        let path = Self::path(ring_path);
        let file = std::fs::File::create_new(&path).expect("create the absences file");
        file.set_len(size_of::<Absences>() as u64)
            .expect("size the absences file");
        Self::map(&path)
    }

    /// Maps the counter file of the ring at `ring_path`.
    fn open(ring_path: &Path) -> Self {
        Self::map(&Self::path(ring_path))
    }

    fn map(path: &Path) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open the absences file");
        // SAFETY: the file belongs to this benchmark run; both processes touch it only
        // through `Absences`, whose fields are atomics, and nobody truncates it.
        let mut map = unsafe { MmapMut::map_mut(&file) }.expect("map the absences file");
        assert!(
            map.len() >= size_of::<Absences>(),
            "absences file too short"
        );
        Self {
            memory: map.as_mut_ptr(),
            _map: map,
        }
    }

    fn get(&self) -> &Absences {
        // SAFETY: the mapping is page-aligned (more than `Absences` needs), checked to be
        // long enough, created zeroed, lives as long as `self`, and is only used through
        // `Absences`.
        unsafe { Absences::from_ptr(self.memory) }
    }
}

// SAFETY: the pointer refers into the mapping this value owns, and the counter behind it is
// an atomic, so the value may be shared by the threads of this process.
unsafe impl Sync for SharedAbsences {}

#[cfg(test)]
mod tests {
    use squall_ringbuf::record::heap_ring;

    use super::*;

    #[test]
    fn records_carry_their_sequence_through_the_filler_check() {
        let (producer, consumer) = heap_ring(4096);
        let (mut sender, mut receiver) = (RecordSender(producer), RecordReceiver(consumer));
        assert_eq!(sender.send(10, 3), 3);
        let mut sum = 0;
        assert_eq!(receiver.receive(usize::MAX, &mut sum), 3);
        assert_eq!(sum, 10 + 11 + 12);
    }
}
