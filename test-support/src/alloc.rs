//! A global allocator that counts allocations, per process and per thread.
//!
//! A test installs it with `#[global_allocator]` and compares counts before and after the
//! code under test:
//!
//! ```
//! use squall_test_support::CountingAllocator;
//!
//! // In a test binary: #[global_allocator] static ALLOCATOR: CountingAllocator = CountingAllocator;
//! let before = CountingAllocator::process_allocations();
//! let sum: u64 = (0..100u64).sum();
//! assert_eq!(sum, 4950);
//! assert!(CountingAllocator::process_allocations() >= before);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Forwards every call to the system allocator and counts allocations and reallocations:
/// in the whole process, and on the calling thread along with the bytes it holds live.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

static PROCESS_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static THREAD_LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

impl CountingAllocator {
    /// Allocations and reallocations made so far by every thread of the process.
    pub fn process_allocations() -> u64 {
        PROCESS_ALLOCATIONS.load(Ordering::SeqCst)
    }

    /// Allocations and reallocations made so far by the calling thread.
    pub fn thread_allocations() -> u64 {
        THREAD_ALLOCATIONS.with(Cell::get)
    }

    /// Bytes allocated by the calling thread less those it freed (negative when it frees
    /// memory another thread allocated).
    pub fn thread_live_bytes() -> i64 {
        THREAD_LIVE_BYTES.with(Cell::get)
    }
}

fn tally(allocations: u64, bytes: i64) {
    PROCESS_ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
    // `try_with`: the thread-locals may already be gone while a thread shuts down.
    let _ = THREAD_ALLOCATIONS.try_with(|count| count.set(count.get() + allocations));
    let _ = THREAD_LIVE_BYTES.try_with(|live| live.set(live.get() + bytes));
}

fn signed(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the tallies touch only
// an atomic and const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        tally(1, signed(layout.size()));
        // SAFETY: forwarded with the caller's layout, which meets `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        tally(1, signed(layout.size()));
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        tally(0, -signed(layout.size()));
        // SAFETY: `ptr` came from this allocator, that is from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        tally(1, signed(new_size) - signed(layout.size()));
        // SAFETY: forwarded unchanged; the caller meets `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
