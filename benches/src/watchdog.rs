//! Noticing that a thread stopped running for a while, so that throughput intervals in which
//! one side of a ring was away can be left out.
//!
//! On a machine shared with other work (or a virtual machine whose CPUs the host shares), a
//! spinning thread is regularly taken off its core; meanwhile the other side of the ring
//! waits, and the interval's rate says more about the scheduler than about the ring. The
//! thread's own CPU clock cannot tell: the guest kernel does not see its virtual CPU being
//! stopped by the host, and another thread's CPU clock only advances at scheduler ticks. So
//! each side reads the time-stamp counter every few calls instead: a gap between two
//! readings far longer than those calls can take means the thread was away, and it counts
//! that on a shared counter that the measuring side compares at every interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::latency::Clock;

/// A gap between two readings longer than this means the thread was away. The calls between
/// two readings (at most 64 calls or 1024 items) take far less on any ring here (1024 items
/// at 10 million a second take 100 µs); being descheduled takes a millisecond or more.
pub const AWAY: Duration = Duration::from_millis(1);

/// Calls between two readings at most.
const MAX_CALLS: u32 = 64;

/// Items moved between two readings at most.
const MAX_ITEMS: usize = 1024;

/// What the watchdogs of one case have seen: how often either thread was away, and when the
/// sending thread last checked in. Read by the measuring (receiving) side at every interval;
/// written by the sending side every few microseconds, on its own cache line.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Absences {
    count: CachePadded<AtomicU64>,
    sender_seen: CachePadded<AtomicU64>,
}

impl Absences {
    /// Absences so far.
    pub fn count(&self) -> u64 {
        // Relaxed: a count read a moment late only moves an absence into the next interval,
        // and the meter drops the neighbours of a disturbed interval as well.
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the sending thread has not checked in for longer than [`AWAY`] at `now`
    /// (in [`Clock`] ticks): it is away right now, for however long that lasts.
    pub fn sender_away(&self, now: u64) -> bool {
        // Relaxed: only the value matters, and a stale one errs towards "away".
        let seen = self.sender_seen.load(Ordering::Relaxed);
        seen != 0 && now.wrapping_sub(seen) > Clock::get().ticks_in(AWAY)
    }

    /// The counters kept in memory shared with another process.
    ///
    /// # Safety
    ///
    /// `memory` points to `size_of::<Absences>()` bytes, aligned to `align_of::<Absences>()`,
    /// zeroed or written only through an `Absences`, which stay mapped and are only ever
    /// accessed as these atomics for as long as the returned reference lives.
    pub unsafe fn from_ptr<'a>(memory: *mut u8) -> &'a Absences {
        debug_assert!(memory.cast::<Absences>().is_aligned());
        // SAFETY: the caller guarantees size, alignment, validity (atomics accept any bit
        // pattern, and zero is their initial value) and atomic-only use.
        unsafe { &*memory.cast::<Absences>() }
    }
}

/// Which side a [`Watchdog`] watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sending thread: also checks in, so the receiver knows while it is away.
    Sender,
    /// The receiving thread, which measures.
    Receiver,
}

/// Watches one thread: call [`Watchdog::note`] after every send or receive.
#[derive(Debug)]
pub struct Watchdog<'a> {
    absences: &'a Absences,
    side: Side,
    clock: Clock,
    away_ticks: u64,
    last: u64,
    calls: u32,
    items: usize,
}

impl<'a> Watchdog<'a> {
    /// Starts watching the calling thread, which plays `side`, reporting to `absences`.
    pub fn new(absences: &'a Absences, side: Side) -> Self {
        let clock = Clock::get();
        let mut watchdog = Self {
            absences,
            side,
            clock,
            away_ticks: clock.ticks_in(AWAY),
            last: clock.ticks(),
            calls: 0,
            items: 0,
        };
        watchdog.check();
        watchdog
    }

    /// Notes one call that moved `items` items.
    #[inline(always)]
    pub fn note(&mut self, items: usize) {
        self.calls += 1;
        self.items += items;
        if self.calls >= MAX_CALLS || self.items >= MAX_ITEMS {
            self.check();
        }
    }

    #[cold]
    #[inline(never)]
    fn check(&mut self) {
        let now = self.clock.ticks();
        if now.wrapping_sub(self.last) > self.away_ticks {
            self.absences.count.fetch_add(1, Ordering::Relaxed);
        }
        if self.side == Side::Sender {
            self.absences.sender_seen.store(now, Ordering::Relaxed);
        }
        self.last = now;
        self.calls = 0;
        self.items = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_between_calls_counts_as_an_absence_and_busy_calls_do_not() {
        let absences = Absences::default();
        let clock = Clock::get();
        assert!(!absences.sender_away(clock.ticks()), "not started yet");
        let mut watchdog = Watchdog::new(&absences, Side::Sender);
        for _ in 0..10 * MAX_CALLS {
            watchdog.note(1);
        }
        assert_eq!(absences.count(), 0);
        assert!(!absences.sender_away(clock.ticks()));
        std::thread::sleep(AWAY * 4);
        assert!(absences.sender_away(clock.ticks()), "away while it sleeps");
        for _ in 0..MAX_CALLS {
            watchdog.note(0);
        }
        assert_eq!(absences.count(), 1);
        assert!(!absences.sender_away(clock.ticks()), "back");
    }

    #[test]
    fn counters_in_shared_memory_start_at_zero() {
        let mut memory = Box::new(CachePadded::new([0u8; size_of::<Absences>()]));
        // SAFETY: the zeroed box is large and aligned enough, outlives `absences`, and is
        // touched only through it meanwhile.
        let absences = unsafe { Absences::from_ptr(memory.as_mut_ptr()) };
        assert_eq!(absences.count(), 0);
        absences.count.fetch_add(2, Ordering::Relaxed);
        assert_eq!(absences.count(), 2);
    }
}
