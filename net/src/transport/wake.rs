//! Waking the transport thread when executors publish records, without a system call
//! while it is busy.
//!
//! The transport thread announces that it is about to sleep ([`WakeState::prepare_sleep`]),
//! then checks its rings once more before it blocks in the driver. A producer publishes its
//! records (a release store in the ring), then calls [`WakeState::notify`], which wakes the
//! driver only if the thread announced sleep. Both sides put a `SeqCst` fence between their
//! store and their load, so at least one of them sees the other's store: either the thread's
//! last check finds the records, or the producer finds the thread asleep and wakes it. No
//! wake-up is lost, and a busy transport costs producers a fence and a load per publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use super::driver::Waker;

/// The transport thread's doorbell, shared with every producer.
#[derive(Debug)]
pub(crate) struct WakeState {
    sleeping: AtomicBool,
    waker: Arc<dyn Waker>,
}

impl WakeState {
    pub(crate) fn new(waker: Arc<dyn Waker>) -> Self {
        Self {
            sleeping: AtomicBool::new(false),
            waker,
        }
    }

    /// Producer side, after publishing: wakes the transport thread if it sleeps.
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst fence: orders the producer's publishing store before the load below
        // (store-load), pairing with the fence in `prepare_sleep`.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Wakes the transport thread whether or not it sleeps (for commands).
    pub(crate) fn wake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
        self.waker.wake();
    }

    /// Transport side: announces sleep. The caller must check for work afterwards and call
    /// [`awake`](Self::awake) whether it then sleeps or not.
    pub(crate) fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        // SeqCst fence: orders the store above before the caller's checks of its rings
        // (store-load), pairing with the fence in `notify`.
        fence(Ordering::SeqCst);
    }

    /// Transport side: no longer sleeping.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }
}
