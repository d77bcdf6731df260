//! The memory a ring lives in: an aligned heap allocation shared by the two handles of one
//! process, or a mapped file shared by processes.
//!
//! Handles do not go through a region on the hot path: they copy the header and data
//! pointers out once ([`RingPtrs`]) and keep a [`RegionOwner`] only to keep the memory alive.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::NonNull;

use super::layout::{Header, LINE_BYTES, OwnerWord};
use crate::sync::Arc;

/// Where a ring's header and data area are, and how large the data area is.
///
/// Invariant: `header` points to an initialised [`Header`] and `data` to `capacity`
/// initialised bytes, aligned to [`LINE_BYTES`], both valid for as long as the region that
/// produced them is alive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingPtrs {
    pub(crate) header: NonNull<Header>,
    pub(crate) data: NonNull<u8>,
    pub(crate) capacity: usize,
}

/// Keeps a ring's memory alive for as long as a handle uses it.
pub(crate) enum RegionOwner {
    Heap(Arc<HeapRegion>),
    #[cfg(not(loom))]
    Mapped(Arc<super::file::MappedRegion>),
}

impl fmt::Debug for RegionOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionOwner::Heap(heap) => f.debug_tuple("Heap").field(&heap.capacity).finish(),
            #[cfg(not(loom))]
            RegionOwner::Mapped(region) => f.debug_tuple("Mapped").field(&region.path()).finish(),
        }
    }
}

impl RegionOwner {
    /// Records, for the model checker, that data bytes `offset..offset + len` are written.
    /// Compiles to nothing outside loom.
    #[inline(always)]
    pub(crate) fn note_write(&self, offset: usize, len: usize) {
        #[cfg(loom)]
        {
            let RegionOwner::Heap(heap) = self;
            for cell in heap.word_cells(offset, len) {
                cell.with_mut(|_| ());
            }
        }
        #[cfg(not(loom))]
        let _ = (offset, len);
    }

    /// Records, for the model checker, that data bytes `offset..offset + len` are read.
    /// Compiles to nothing outside loom.
    #[inline(always)]
    pub(crate) fn note_read(&self, offset: usize, len: usize) {
        #[cfg(loom)]
        {
            let RegionOwner::Heap(heap) = self;
            for cell in heap.word_cells(offset, len) {
                cell.with(|_| ());
            }
        }
        #[cfg(not(loom))]
        let _ = (offset, len);
    }
}

/// Offset of the data area in a heap region: right after the header, on a fresh line. It
/// equals the file layout's [`HEADER_BYTES`](super::layout::HEADER_BYTES) except under loom,
/// whose atomics are larger.
const HEAP_DATA_OFFSET: usize = size_of::<Header>().next_multiple_of(LINE_BYTES);

/// A ring in one heap allocation: header, then the data area, aligned to a header line.
///
/// Invariant: `base` was allocated with `layout`, starts with an initialised [`Header`] and
/// is zero-initialised elsewhere; it is freed only by `Drop`.
pub(crate) struct HeapRegion {
    base: NonNull<u8>,
    layout: Layout,
    capacity: usize,
    /// One cell per 8-byte data word, through which loom sees every data access.
    #[cfg(loom)]
    cells: Box<[crate::sync::UnsafeCell<()>]>,
}

// SAFETY: the region is plain memory; which thread may touch which bytes is decided by the
// ring protocol that the producer and consumer handles follow, not by the region.
unsafe impl Send for HeapRegion {}
// SAFETY: as above; shared access only ever reads the header through atomics or immutable
// fields, and the data area through the handles' protocol.
unsafe impl Sync for HeapRegion {}

impl HeapRegion {
    /// Allocates an empty ring of `capacity` data bytes (a valid ring capacity) whose ends
    /// carry the given owner words.
    pub(crate) fn new(capacity: usize, producer: OwnerWord, consumer: OwnerWord) -> Self {
        let size = HEAP_DATA_OFFSET
            .checked_add(capacity)
            .expect("record ring size overflows usize");
        let layout = Layout::from_size_align(size, LINE_BYTES).expect("record ring layout");
        // SAFETY: `layout` has a non-zero size (it holds at least the header).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(base) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: `base` is a fresh allocation aligned to LINE_BYTES, which satisfies the
        // header's alignment, and large enough for the header.
        unsafe {
            base.cast::<Header>()
                .write(Header::new(capacity, producer, consumer))
        };
        Self {
            base,
            layout,
            capacity,
            #[cfg(loom)]
            cells: (0..capacity / 8)
                .map(|_| crate::sync::UnsafeCell::new(()))
                .collect(),
        }
    }

    /// The header and data pointers, valid while this region lives.
    pub(crate) fn ptrs(&self) -> RingPtrs {
        RingPtrs {
            header: self.base.cast(),
            // SAFETY: HEAP_DATA_OFFSET + capacity is the allocation's size, so the data
            // area lies inside it.
            data: unsafe { self.base.add(HEAP_DATA_OFFSET) },
            capacity: self.capacity,
        }
    }

    #[cfg(loom)]
    fn word_cells(&self, offset: usize, len: usize) -> &[crate::sync::UnsafeCell<()>] {
        &self.cells[offset / 8..(offset + len).div_ceil(8)]
    }
}

impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: the header was written in `new` and is dropped once, here; no handle is
        // left (they hold the Arc that owns this region).
        unsafe { self.base.cast::<Header>().drop_in_place() };
        // SAFETY: `base` was allocated in `new` with exactly this layout.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}
