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
//!
//! Consumers of the inbound sink use the same doorbell when they free room the sink had
//! run out of ([`WakeState::room_freed`]): they raise a flag, then notify. The loop takes
//! the flag at the top of every iteration and retries its blocked deliveries at once, and
//! counts a raised flag as work in its last check before sleeping, so a delivery blocked on
//! a full consumer resumes as soon as the consumer makes room: no timer is involved.

use std::sync::Arc;

#[cfg(feature = "loom")]
use loom::sync::atomic::{AtomicBool, Ordering, fence};
#[cfg(not(feature = "loom"))]
use std::sync::atomic::{AtomicBool, Ordering, fence};

use super::driver::Waker;

/// The transport thread's doorbell, shared with every producer.
#[derive(Debug)]
pub(crate) struct WakeState {
    sleeping: AtomicBool,
    /// A consumer of the sink freed room since the loop last looked.
    room: AtomicBool,
    waker: Arc<dyn Waker>,
}

impl WakeState {
    pub(crate) fn new(waker: Arc<dyn Waker>) -> Self {
        Self {
            sleeping: AtomicBool::new(false),
            room: AtomicBool::new(false),
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

    /// Consumer side, after freeing room in a ring the sink found full: asks the loop to
    /// retry its blocked deliveries, waking it if it sleeps.
    #[inline]
    pub(crate) fn room_freed(&self) {
        // Relaxed: `notify`'s SeqCst fence orders this store before its load of `sleeping`,
        // pairing with the fence in `prepare_sleep` before the loop's `room_pending`.
        self.room.store(true, Ordering::Relaxed);
        self.notify();
    }

    /// Transport side: whether a consumer freed room, clearing the flag.
    #[inline]
    pub(crate) fn take_room(&self) -> bool {
        self.room.load(Ordering::Relaxed) && self.room.swap(false, Ordering::Acquire)
    }

    /// Transport side, after [`prepare_sleep`](Self::prepare_sleep): whether a consumer
    /// freed room that the loop has not taken yet.
    #[inline]
    pub(crate) fn room_pending(&self) -> bool {
        self.room.load(Ordering::Relaxed)
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

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Waker for Counting {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn state() -> (WakeState, Arc<Counting>) {
        let waker = Arc::new(Counting::default());
        (WakeState::new(waker.clone()), waker)
    }

    #[test]
    fn freed_room_wakes_a_sleeping_loop_once_and_is_taken_once() {
        let (wake, waker) = state();
        wake.prepare_sleep();
        wake.room_freed();
        wake.room_freed();
        assert_eq!(waker.0.load(Ordering::Relaxed), 1, "one wake-up per sleep");
        wake.awake();
        assert!(wake.room_pending());
        assert!(wake.take_room(), "the loop retries its blocked deliveries");
        assert!(!wake.take_room(), "and only once per freeing");
        assert!(!wake.room_pending());
    }

    #[test]
    fn freed_room_costs_no_wake_up_while_the_loop_runs() {
        let (wake, waker) = state();
        wake.room_freed();
        assert_eq!(waker.0.load(Ordering::Relaxed), 0);
        wake.prepare_sleep();
        assert!(
            wake.room_pending(),
            "the last check before sleeping sees the flag, so the loop does not sleep"
        );
    }
}

/// Model checks of the hand-overs that must never lose a wake-up. Run with
/// `cargo test -p squall-net --features loom --lib loom_models`.
#[cfg(all(test, feature = "loom"))]
mod loom_models {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;
    use loom::thread;

    use super::*;

    #[derive(Debug, Default)]
    struct Woken(AtomicBool);

    impl Waker for Woken {
        fn wake(&self) {
            self.0.store(true, Ordering::Release);
        }
    }

    fn state() -> (Arc<WakeState>, std::sync::Arc<Woken>) {
        let woken = std::sync::Arc::new(Woken::default());
        (Arc::new(WakeState::new(woken.clone())), woken)
    }

    /// An executor publishes records while the transport decides to sleep: either the
    /// transport's last look finds them, or the executor wakes it.
    #[test]
    fn a_publish_is_seen_or_wakes_the_sleeping_transport() {
        loom::model(|| {
            let (wake, woken) = state();
            let published = Arc::new(AtomicBool::new(false));
            let executor = {
                let (wake, published) = (Arc::clone(&wake), Arc::clone(&published));
                thread::spawn(move || {
                    published.store(true, Ordering::Release);
                    wake.notify();
                })
            };
            wake.prepare_sleep();
            let found = published.load(Ordering::Acquire);
            executor.join().unwrap();
            assert!(found || woken.0.load(Ordering::Acquire), "lost wake-up");
            wake.awake();
        });
    }

    /// A consumer frees room while the transport decides to sleep with a blocked delivery:
    /// either the transport's last look sees the flag, or the consumer wakes it.
    #[test]
    fn freed_room_is_seen_or_wakes_the_sleeping_transport() {
        loom::model(|| {
            let (wake, woken) = state();
            let consumer = {
                let wake = Arc::clone(&wake);
                thread::spawn(move || wake.room_freed())
            };
            wake.prepare_sleep();
            let found = wake.room_pending();
            consumer.join().unwrap();
            assert!(found || woken.0.load(Ordering::Acquire), "lost wake-up");
            if found {
                assert!(wake.take_room());
            }
            wake.awake();
        });
    }

    /// The engine's inbound sink (`WorkerInbound::deliver`) against an executor draining
    /// the full ring (`drain_port`): the sink raises the ring's `producer_waiting` flag,
    /// fences and writes again; the executor releases room, fences and reads the flag.
    /// Either the second write finds the room, or the executor sees the flag and frees
    /// room through `room_freed`, which the model above covers.
    #[test]
    fn a_full_inbound_ring_is_retried_or_the_executor_sees_the_waiting_flag() {
        loom::model(|| {
            let room = Arc::new(AtomicBool::new(false));
            let producer_waiting = Arc::new(AtomicBool::new(false));
            let executor = {
                let (room, producer_waiting) = (Arc::clone(&room), Arc::clone(&producer_waiting));
                thread::spawn(move || {
                    room.store(true, Ordering::Release);
                    fence(Ordering::SeqCst);
                    producer_waiting.load(Ordering::Relaxed)
                })
            };
            let first_try = room.load(Ordering::Acquire);
            let mut second_try = false;
            if !first_try {
                producer_waiting.store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                second_try = room.load(Ordering::Acquire);
            }
            let executor_saw_flag = executor.join().unwrap();
            assert!(
                first_try || second_try || executor_saw_flag,
                "a delivery stays blocked with nobody to wake it"
            );
        });
    }
}
