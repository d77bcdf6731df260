//! Per-connection I/O buffers whose memory stays put while the kernel reads or writes it.
//!
//! With io_uring, a receive or a vectored write is in flight while the event loop keeps
//! running: the kernel owns a region of the buffer until the operation completes. These
//! types track which region is in flight and never hand out a slice that overlaps it:
//!
//! - [`RecvBuf`]: received bytes `[start, end)` are the caller's to read and consume; the
//!   spare room `[end, capacity)` is where the next receive lands. While a receive is in
//!   flight, the spare room belongs to the kernel and the buffer does not move or grow.
//! - [`SendQueue`]: frames are appended to the tail of a list of fixed-size chunks and
//!   written from the head, up to [`MAX_CHUNKS`] segments per (vectored) write. Bytes in
//!   flight are never touched; appends land after them; a chunk is recycled only once its
//!   bytes are written.
//!
//! Memory is allocated when a connection first needs it and when a frame larger than the
//! receive buffer arrives; a connection in steady state allocates nothing.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;

/// A heap allocation addressed through a raw pointer, so that slices of one region can be
/// handed out while the kernel accesses another.
///
/// Invariant: `ptr` is the start of a live, initialised allocation of `len` bytes made by
/// `Box<[u8]>`, owned by this value.
struct IoMem {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `IoMem` owns its allocation like a `Box<[u8]>` does; moving it to another thread
// moves that ownership.
unsafe impl Send for IoMem {}

impl IoMem {
    fn new(len: usize) -> Self {
        let boxed: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let len = boxed.len();
        let ptr = NonNull::new(Box::into_raw(boxed).cast::<u8>()).expect("Box is never null");
        Self { ptr, len }
    }

    /// The bytes of `range`; the caller makes sure no kernel operation writes them.
    fn slice(&self, range: Range<usize>) -> &[u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: the range lies inside the live allocation (checked above) whose bytes are
        // initialised; the owners of `IoMem` (below) never pass a range an in-flight kernel
        // operation writes, so nothing changes these bytes while the slice lives.
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(range.start), range.end - range.start)
        }
    }

    /// The bytes of `range`, mutably; the caller makes sure no kernel operation uses them.
    fn slice_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: as in `slice`, and `&mut self` makes this the only slice this process
        // holds of the range; no in-flight kernel operation covers it (owners' invariant).
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(range.start),
                range.end - range.start,
            )
        }
    }

    /// Copies `src` to offset `dest`, ranges inside the allocation (they may overlap).
    fn copy_within(&mut self, src: Range<usize>, dest: usize) {
        assert!(src.start <= src.end && src.end <= self.len && dest + src.len() <= self.len);
        // SAFETY: both ranges lie inside the allocation (checked above); `ptr::copy` allows
        // overlap; the owners call this only while no kernel operation is in flight.
        unsafe {
            std::ptr::copy(
                self.ptr.as_ptr().add(src.start),
                self.ptr.as_ptr().add(dest),
                src.len(),
            );
        }
    }

    /// A raw pointer to offset `at`, for a kernel operation.
    fn ptr_at(&self, at: usize) -> *mut u8 {
        assert!(at <= self.len);
        // SAFETY: `at` is within the allocation or one past its end.
        unsafe { self.ptr.as_ptr().add(at) }
    }
}

impl Drop for IoMem {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        // SAFETY: `ptr` and `len` come from `Box::into_raw` of a `Box<[u8]>` (invariant),
        // and this is the only place that frees it.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// A connection's receive buffer.
pub(crate) struct RecvBuf {
    mem: IoMem,
    start: usize,
    end: usize,
    /// A receive into `[end, capacity)` is in flight.
    in_flight: bool,
    /// The largest capacity the buffer may grow to.
    max: usize,
    /// Capacity wanted by `reserve` while a receive was in flight.
    wanted: usize,
    /// When the last receive that brought bytes ended.
    #[cfg(feature = "stage-trace")]
    filled_at: u64,
}

impl fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBuf")
            .field("capacity", &self.mem.len)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl RecvBuf {
    /// A buffer of `initial` bytes that may grow to `max`.
    pub(crate) fn new(initial: usize, max: usize) -> Self {
        Self {
            mem: IoMem::new(initial.min(max)),
            start: 0,
            end: 0,
            in_flight: false,
            max,
            wanted: 0,
            #[cfg(feature = "stage-trace")]
            filled_at: 0,
        }
    }

    /// When the last receive that brought bytes ended (`CLOCK_MONOTONIC` nanoseconds).
    #[cfg(feature = "stage-trace")]
    pub(crate) fn filled_at(&self) -> u64 {
        self.filled_at
    }

    /// Received bytes not yet consumed.
    pub(crate) fn data(&self) -> &[u8] {
        self.mem.slice(self.start..self.end)
    }

    /// Drops the first `n` received bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start, "consumed more than received");
        self.start += n;
        if self.start == self.end && !self.in_flight {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes sure `total` bytes of unconsumed data fit (a frame of that length); takes
    /// effect when no receive is in flight.
    pub(crate) fn reserve(&mut self, total: usize) {
        self.wanted = self.wanted.max(total.min(self.max));
        self.settle();
    }

    /// Compacts and grows the buffer as far as possible now; a no-op while in flight.
    fn settle(&mut self) {
        if self.in_flight {
            return;
        }
        let len = self.end - self.start;
        if self.wanted > self.mem.len {
            let mut grown = IoMem::new(self.wanted.next_power_of_two().min(self.max));
            grown.slice_mut(0..len).copy_from_slice(self.data());
            self.mem = grown;
            self.start = 0;
            self.end = len;
        }
        self.wanted = 0;
        // Move the data to the front once the spare room is down to a quarter.
        if self.start > 0 && self.mem.len - self.end < self.mem.len / 4 {
            self.mem.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = len;
        }
    }

    /// Spare room for the next receive, compacting first if that helps.
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        assert!(
            !self.in_flight,
            "receive buffer used while a receive is in flight"
        );
        self.settle();
        let end = self.end;
        let len = self.mem.len;
        self.mem.slice_mut(end..len)
    }

    /// Records that `n` bytes were received into the spare room.
    pub(crate) fn filled(&mut self, n: usize) {
        assert!(self.end + n <= self.mem.len);
        self.in_flight = false;
        self.end += n;
        #[cfg(feature = "stage-trace")]
        if n > 0 {
            self.filled_at = crate::trace::now_ns();
        }
    }

    /// Bytes of spare room after compacting.
    pub(crate) fn spare_len(&mut self) -> usize {
        self.settle();
        self.mem.len - self.end
    }

    /// Hands the spare room to a kernel receive: returns where it starts and its length,
    /// and marks it in flight until [`finish_recv`](Self::finish_recv). The memory stays
    /// valid and unaliased by this buffer until then.
    pub(crate) fn start_recv(&mut self) -> (*mut u8, usize) {
        assert!(!self.in_flight, "one receive at a time");
        self.settle();
        self.in_flight = true;
        (self.mem.ptr_at(self.end), self.mem.len - self.end)
    }

    /// Ends the receive started by [`start_recv`](Self::start_recv) with `n` bytes received.
    pub(crate) fn finish_recv(&mut self, n: usize) {
        assert!(self.in_flight, "no receive in flight");
        self.filled(n);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether a receive is in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight
    }
}

/// Segments a vectored write takes at most.
pub(crate) const MAX_CHUNKS: usize = 8;

/// One fixed-size piece of a send queue: bytes `[start, end)` wait to be written.
struct Chunk {
    mem: IoMem,
    start: usize,
    end: usize,
}

/// A connection's queue of bytes to send.
pub(crate) struct SendQueue {
    chunks: VecDeque<Chunk>,
    free: Vec<IoMem>,
    chunk_size: usize,
    /// Bytes from the head handed to an in-flight write.
    in_flight: usize,
    queued: usize,
    /// The traced frames in the queue, stamped when their last byte is written.
    #[cfg(feature = "stage-trace")]
    pub(crate) marks: crate::trace::WriteMarks,
}

impl fmt::Debug for SendQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendQueue")
            .field("chunks", &self.chunks.len())
            .field("chunk_size", &self.chunk_size)
            .field("queued", &self.queued)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl SendQueue {
    /// A queue of chunks of `chunk_size` bytes, the largest frame it takes.
    pub(crate) fn new(chunk_size: usize) -> Self {
        Self {
            chunks: VecDeque::with_capacity(MAX_CHUNKS),
            free: Vec::new(),
            chunk_size,
            in_flight: 0,
            queued: 0,
            #[cfg(feature = "stage-trace")]
            marks: crate::trace::WriteMarks::default(),
        }
    }

    /// The largest frame an append takes.
    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Bytes queued and not yet written (in flight included).
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Room at the tail of the queue for appending frames: the rest of the tail chunk if
    /// it holds at least `min` bytes, else a fresh chunk; `None` when all [`MAX_CHUNKS`]
    /// chunks are in use. Call [`commit`](Self::commit) with the bytes written.
    pub(crate) fn space(&mut self, min: usize) -> Option<&mut [u8]> {
        let min = min.min(self.chunk_size);
        let tail_room = self.chunks.back().map_or(0, |tail| tail.mem.len - tail.end);
        if tail_room < min {
            if self.chunks.len() == MAX_CHUNKS {
                return None;
            }
            let mem = self
                .free
                .pop()
                .unwrap_or_else(|| IoMem::new(self.chunk_size));
            self.chunks.push_back(Chunk {
                mem,
                start: 0,
                end: 0,
            });
        }
        let tail = self.chunks.back_mut().expect("a tail chunk exists");
        let len = tail.mem.len;
        // Appends land after `end`, beyond any bytes in flight.
        Some(tail.mem.slice_mut(tail.end..len))
    }

    /// Queues the first `n` bytes of the room [`space`](Self::space) returned.
    pub(crate) fn commit(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let tail = self.chunks.back_mut().expect("commit follows space");
        assert!(tail.end + n <= tail.mem.len);
        tail.end += n;
        self.queued += n;
        #[cfg(feature = "stage-trace")]
        self.marks.queued(n);
    }

    /// The queued bytes, as up to [`MAX_CHUNKS`] slices, for a vectored write from a thread
    /// that waits for it (no write may be in flight).
    pub(crate) fn segments(&self) -> impl Iterator<Item = &[u8]> {
        assert_eq!(self.in_flight, 0, "segments while a write is in flight");
        self.chunks
            .iter()
            .filter(|chunk| chunk.end > chunk.start)
            .map(|chunk| chunk.mem.slice(chunk.start..chunk.end))
    }

    /// Hands the queued bytes to a kernel write: fills `out` with `(pointer, length)`
    /// segments and returns how many, marking their bytes in flight until
    /// [`advance`](Self::advance). They stay valid and untouched until then.
    pub(crate) fn start_write(&mut self, out: &mut [(*const u8, usize); MAX_CHUNKS]) -> usize {
        assert_eq!(self.in_flight, 0, "one write at a time");
        let mut count = 0;
        for chunk in self.chunks.iter().filter(|chunk| chunk.end > chunk.start) {
            out[count] = (
                chunk.mem.ptr_at(chunk.start).cast_const(),
                chunk.end - chunk.start,
            );
            self.in_flight += chunk.end - chunk.start;
            count += 1;
        }
        count
    }

    /// Whether a write is in flight.
    #[cfg(test)]
    pub(crate) fn write_in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// Records that the first `n` queued bytes were written, ending any write in flight;
    /// chunks written out are kept for reuse.
    pub(crate) fn advance(&mut self, mut n: usize) {
        assert!(n <= self.queued, "advanced past the queued bytes");
        self.in_flight = 0;
        self.queued -= n;
        #[cfg(feature = "stage-trace")]
        self.marks.written(n);
        while let Some(head) = self.chunks.front_mut() {
            let take = n.min(head.end - head.start);
            head.start += take;
            n -= take;
            if head.start < head.end || (self.chunks.len() == 1 && n == 0) {
                break;
            }
            let done = self.chunks.pop_front().expect("the head exists");
            self.free.push(done.mem);
        }
        if let Some(head) = self.chunks.front_mut()
            && head.start == head.end
        {
            head.start = 0;
            head.end = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_buf_compacts_and_grows_around_unconsumed_data() {
        let mut buf = RecvBuf::new(16, 64);
        buf.spare_mut()[..10].copy_from_slice(b"0123456789");
        buf.filled(10);
        buf.consume(8);
        assert_eq!(buf.data(), b"89");
        // A frame of 40 bytes is coming: the buffer grows, keeping the data.
        buf.reserve(40);
        assert!(buf.spare_len() >= 38);
        assert_eq!(buf.data(), b"89");
        buf.consume(2);
        assert_eq!(buf.spare_len(), 64);
    }

    #[test]
    fn recv_buf_waits_for_the_receive_in_flight_before_growing() {
        let mut buf = RecvBuf::new(16, 64);
        let (_, room) = buf.start_recv();
        assert_eq!(room, 16);
        buf.reserve(64);
        assert!(buf.in_flight());
        buf.finish_recv(4);
        assert_eq!(buf.spare_len(), 60);
    }

    #[test]
    fn send_queue_writes_from_the_head_and_recycles_chunks() {
        let mut queue = SendQueue::new(8);
        for word in [b"abcdef", b"ghijkl", b"mnopqr"] {
            let space = queue.space(6).unwrap();
            space[..6].copy_from_slice(word);
            queue.commit(6);
        }
        assert_eq!(queue.queued(), 18);
        let joined: Vec<u8> = queue.segments().flatten().copied().collect();
        assert_eq!(joined, b"abcdefghijklmnopqr");
        // Frames never straddle chunks: each 6-byte frame took a chunk of its own.
        queue.advance(8);
        let joined: Vec<u8> = queue.segments().flatten().copied().collect();
        assert_eq!(joined, b"ijklmnopqr");
        queue.advance(10);
        assert_eq!(queue.queued(), 0);
        assert!(queue.free.len() >= 2, "written chunks are kept for reuse");
    }

    #[test]
    fn send_queue_refuses_more_than_its_chunks() {
        let mut queue = SendQueue::new(8);
        for _ in 0..MAX_CHUNKS {
            queue.space(8).unwrap();
            queue.commit(8);
        }
        assert!(queue.space(1).is_none());
        let mut segments = [(std::ptr::null(), 0); MAX_CHUNKS];
        assert_eq!(queue.start_write(&mut segments), MAX_CHUNKS);
        assert!(queue.write_in_flight());
        queue.advance(8 * MAX_CHUNKS);
        assert!(queue.space(8).is_some());
    }
}
