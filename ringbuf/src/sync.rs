//! Atomics and cells, swapped for loom's model-checked versions under `cfg(loom)`.
//!
//! Every shared-memory access in the rings goes through these names, so `tests/loom.rs`
//! checks the exact code that ships.

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex};
#[cfg(loom)]
pub(crate) use loom::{hint::spin_loop, thread::yield_now};

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::{hint::spin_loop, thread::yield_now};

/// Sleeps for `duration` without anybody able to cut the sleep short (loom: one yield, since
/// its model has no clock).
#[cfg(not(loom))]
pub(crate) fn nap(duration: std::time::Duration) {
    std::thread::sleep(duration);
}

#[cfg(loom)]
pub(crate) fn nap(_duration: std::time::Duration) {
    yield_now();
}

/// `std`'s cell with loom's closure-based access API, so ring code is written once.
///
/// `repr(transparent)`: a slice of these cells has the layout of a slice of `T`, which the
/// typed ring relies on to lend out `&[T]` views of published entries.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// The two halves of a store-then-load handshake (Dekker style) in which one side runs on
/// every message and the other only before it goes to sleep.
///
/// Each side stores its own flag, calls its fence, then loads the other side's flag; the
/// fences guarantee that at least one side sees the other's store. [`FencePair::light`] is
/// for the frequent side, [`FencePair::heavy`] for the rare one.
///
/// On Linux with `membarrier(2)` (private expedited) available, `light` is only a compiler
/// fence and `heavy` makes the kernel run a full memory barrier on every running thread of
/// the process, so the frequent side pays nothing. Elsewhere (and under loom) both halves
/// are `fence(SeqCst)`. The choice is made once per process and captured in each pair, so
/// both halves of one handshake always agree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FencePair {
    /// `light` is a compiler fence and `heavy` a process-wide barrier.
    asymmetric: bool,
}

impl FencePair {
    /// Picks the cheapest correct pair for this process.
    pub(crate) fn new() -> Self {
        Self {
            asymmetric: process_barrier::available(),
        }
    }

    /// The frequent side's fence.
    #[inline(always)]
    pub(crate) fn light(self) {
        if self.asymmetric {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The rare side's fence: orders this thread's earlier stores before its later loads
    /// and, in asymmetric mode, does the same for every other thread of the process.
    pub(crate) fn heavy(self) {
        fence(Ordering::SeqCst);
        if self.asymmetric {
            process_barrier::run();
            fence(Ordering::SeqCst);
        }
    }
}

/// Process-wide memory barrier via `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`.
#[cfg(all(target_os = "linux", not(loom)))]
mod process_barrier {
    use std::sync::OnceLock;

    /// Command numbers from `linux/membarrier.h`.
    const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(command: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes integer arguments only and touches no memory of ours;
        // the trailing flags and cpu id are 0 as the command set requires.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                command,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    /// Whether this process is registered for private expedited barriers (registering on
    /// the first call).
    pub(super) fn available() -> bool {
        static REGISTERED: OnceLock<bool> = OnceLock::new();
        *REGISTERED.get_or_init(|| {
            let supported = membarrier(MEMBARRIER_CMD_QUERY);
            supported > 0
                && supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED != 0
                && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        })
    }

    /// Runs a full memory barrier on every running thread of this process.
    pub(super) fn run() {
        let result = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
        // Registration succeeded before any pair chose asymmetric mode, and the kernel
        // documents no other failure for this command; the frequent side already relies on
        // it, so carrying on without the barrier could lose a wake-up.
        assert!(
            result == 0,
            "membarrier(PRIVATE_EXPEDITED) failed after registration: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Without `membarrier(2)` (or under loom) both halves of a pair are full fences.
#[cfg(not(all(target_os = "linux", not(loom))))]
mod process_barrier {
    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn run() {
        unreachable!("asymmetric fences are never chosen on this platform")
    }
}
