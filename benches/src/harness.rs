//! Running one case on two threads: where the threads run, how they start together, and what
//! is measured.
//!
//! - Throughput: the sender sends `0, 1, 2, ...` as fast as the ring takes them; the receiver
//!   adds up what arrives and reads the clock every [`CHECK_EVERY`] values. The run is cut
//!   into intervals of [`INTERVAL`]; the first [`Timing::warmup`] is not counted, and the rate
//!   of each later interval is one sample, unless either thread was away (descheduled)
//!   during it or the next one (see [`watchdog`](crate::watchdog)); those are counted as
//!   dropped. The sum of the values received must match their count, so a ring that loses,
//!   duplicates or corrupts values fails the run.
//!
//! Round trips are in [`latency`](crate::latency).

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use core_affinity::CoreId;
use crossbeam_utils::CachePadded;
use serde::Serialize;

use crate::endpoints::{RingReceiver, RingSender};
use crate::latency::Clock;
use crate::stats::Samples;
use crate::watchdog::{Absences, Side, Watchdog};

/// Values between two clock readings on the receiving side.
pub const CHECK_EVERY: u64 = 1 << 12;

/// Length of one throughput sample: short, so that many of them fall between two moments
/// at which a busy machine takes a core away.
pub const INTERVAL: Duration = Duration::from_millis(2);

/// How long a receiver waits for its first value before the case counts as broken.
const FIRST_VALUE_PATIENCE: Duration = Duration::from_secs(30);

/// Idle polls between two looks at the stop flag or the clock.
const IDLE_POLLS_PER_CHECK: u32 = 1 << 10;

/// Where the two threads of a case run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// The sender on one core, the receiver on another, with `core_affinity`.
    Pinned,
    /// Wherever the scheduler puts them.
    Unpinned,
}

impl Placement {
    /// `"pinned"` or `"unpinned"`.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Pinned => "pinned",
            Placement::Unpinned => "unpinned",
        }
    }

    /// The cores for the sending and the receiving thread, or `None` when unpinned.
    ///
    /// # Panics
    /// When pinned and the machine reports fewer than two cores.
    pub fn cores(self) -> Option<(CoreId, CoreId)> {
        match self {
            Placement::Unpinned => None,
            Placement::Pinned => {
                let cores = core_affinity::get_core_ids().unwrap_or_default();
                assert!(
                    cores.len() >= 2,
                    "pinning needs two cores, the machine reports {}",
                    cores.len()
                );
                Some((cores[0], cores[1]))
            }
        }
    }
}

/// Pins the calling thread to `core`, if there is one.
///
/// # Panics
/// When the operating system refuses.
pub fn pin(core: Option<CoreId>) {
    if let Some(core) = core {
        assert!(
            core_affinity::set_for_current(core),
            "cannot pin a thread to core {}",
            core.id
        );
    }
}

/// How long throughput cases run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Time after the first value that is not counted.
    pub warmup: Duration,
    /// Time after the warm-up that is counted.
    pub measure: Duration,
}

/// The receiving side's clock: samples the rate once per [`INTERVAL`] and says when to stop.
#[derive(Debug)]
pub struct Meter<'a> {
    warmup_end: Instant,
    deadline: Instant,
    interval_start: Instant,
    interval_items: u64,
    /// Absences of either thread, and their count at the start of the interval.
    absences: &'a Absences,
    interval_absences: u64,
    /// The last interval's rate, items and seconds, and whether it was disturbed; it counts
    /// once the interval after it turns out undisturbed too (an absence is noticed only once
    /// the thread is back, possibly in the next interval).
    pending: Option<(f64, u64, f64, bool)>,
    counted_items: u64,
    counted_seconds: f64,
    rates: Vec<f64>,
    dropped: usize,
    /// The receiver reads the clock once its count reaches this.
    next_check: u64,
}

impl<'a> Meter<'a> {
    /// Starts the clock; `received` values have arrived already. `absences` counts the
    /// absences of both threads.
    pub fn start(timing: Timing, received: u64, absences: &'a Absences) -> Self {
        let started = Instant::now();
        let warmup_end = started + timing.warmup;
        Self {
            warmup_end,
            deadline: warmup_end + timing.measure,
            interval_start: started,
            interval_items: received,
            absences,
            interval_absences: absences.count(),
            pending: None,
            counted_items: 0,
            counted_seconds: 0.0,
            rates: Vec::new(),
            dropped: 0,
            next_check: received + CHECK_EVERY,
        }
    }

    /// Notes that `received` values have arrived in total; returns whether to go on.
    #[inline]
    pub fn update(&mut self, received: u64) -> bool {
        received < self.next_check || self.check(received)
    }

    #[cold]
    #[inline(never)]
    fn check(&mut self, received: u64) -> bool {
        self.next_check = received + CHECK_EVERY;
        let now = Instant::now();
        let elapsed = now - self.interval_start;
        if elapsed >= INTERVAL {
            let absences = self.absences.count();
            let disturbed = absences != self.interval_absences
                || self.absences.sender_away(Clock::get().ticks());
            if self.interval_start >= self.warmup_end {
                let items = received - self.interval_items;
                let seconds = elapsed.as_secs_f64();
                let interval = (items as f64 / seconds, items, seconds, disturbed);
                if let Some(previous) = self.pending.replace(interval) {
                    self.settle(previous, disturbed);
                }
            }
            self.interval_start = now;
            self.interval_items = received;
            self.interval_absences = absences;
        }
        now < self.deadline
    }

    /// Counts or drops an interval, given whether the one after it was disturbed.
    fn settle(
        &mut self,
        (rate, items, seconds, disturbed): (f64, u64, f64, bool),
        next_disturbed: bool,
    ) {
        if disturbed || next_disturbed {
            self.dropped += 1;
        } else {
            self.rates.push(rate);
            self.counted_items += items;
            self.counted_seconds += seconds;
        }
    }

    /// The samples so far.
    pub fn finish(mut self) -> Samples {
        if let Some(last) = self.pending.take() {
            self.settle(last, false);
        }
        Samples::slice(
            self.rates,
            self.dropped,
            self.counted_items,
            self.counted_seconds,
        )
    }
}

/// Sends `0, 1, 2, ...` in calls of up to `batch` values until `keep_going` says no; it is
/// asked only while the ring is full, so the hot path never looks at it.
pub fn send_until<S: RingSender>(
    sender: &mut S,
    batch: usize,
    absences: &Absences,
    keep_going: impl Fn(&S) -> bool,
) {
    let mut watchdog = Watchdog::new(absences, Side::Sender);
    let mut next = 0u64;
    let mut idle_polls = 0u32;
    loop {
        let sent = sender.send(next, batch);
        watchdog.note(sent);
        if sent == 0 {
            idle_polls = idle_polls.wrapping_add(1);
            if idle_polls.is_multiple_of(IDLE_POLLS_PER_CHECK) && !keep_going(sender) {
                return;
            }
            spin_loop();
            continue;
        }
        next += sent as u64;
    }
}

/// Receives in calls of up to `batch` values, measuring from the first arrival for as long
/// as `timing` says; returns the measurement. `absences` counts the absences of both sides.
///
/// # Panics
/// When the first value does not arrive in time, or when the sum of the values received is
/// not that of `0..count`.
pub fn receive_for<R: RingReceiver>(
    receiver: &mut R,
    batch: usize,
    timing: Timing,
    absences: &Absences,
) -> Samples {
    let mut sum = 0u64;
    // The clock starts at the first value, so start-up (of a child process, say) is left out.
    let waiting_since = Instant::now();
    let mut received = loop {
        let arrived = receiver.receive(batch, &mut sum);
        if arrived > 0 {
            break arrived as u64;
        }
        assert!(
            waiting_since.elapsed() < FIRST_VALUE_PATIENCE,
            "no value arrived in {FIRST_VALUE_PATIENCE:?}"
        );
        spin_loop();
    };
    let mut meter = Meter::start(timing, received, absences);
    let mut watchdog = Watchdog::new(absences, Side::Receiver);
    let mut idle_polls = 0u32;
    loop {
        let arrived = receiver.receive(batch, &mut sum);
        watchdog.note(arrived);
        if arrived == 0 {
            idle_polls = idle_polls.wrapping_add(1);
            if idle_polls.is_multiple_of(IDLE_POLLS_PER_CHECK) && !meter.check(received) {
                break;
            }
            spin_loop();
            continue;
        }
        received += arrived as u64;
        if !meter.update(received) {
            break;
        }
    }
    assert_eq!(
        sum,
        sum_below(received),
        "the values received are not 0..{received}"
    );
    meter.finish()
}

/// `0 + 1 + ... + (count - 1)`, wrapping like the receivers' sums.
pub fn sum_below(count: u64) -> u64 {
    let (even, odd) = if count.is_multiple_of(2) {
        (count / 2, count.wrapping_sub(1))
    } else {
        (count, (count - 1) / 2)
    };
    even.wrapping_mul(odd)
}

/// Moves `end` to the calling thread's stack, alone on its cache lines.
///
/// Ring handles keep hot fields (their own position, their cached copy of the other side's)
/// that they write on every call. Two handles used by two threads but lying next to each
/// other (say, in the caller's frame) would share a cache line and slow both threads down
/// for reasons that have nothing to do with the ring.
pub fn own<E>(end: E) -> CachePadded<E> {
    CachePadded::new(end)
}

/// Where the two ends of a throughput case are kept while their threads drive them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handles {
    /// Each on its thread's stack, alone on its cache lines (see [`own`]): how every case
    /// is measured.
    Apart,
    /// Side by side in one struct, as they would be in, say, a `Vec` of handles built by
    /// one thread: shows what a ring's handle layout does when its user is careless.
    SideBySide,
}

/// Both ends in one struct, in this order.
#[repr(C)]
struct SideBySide<S, R> {
    sender: S,
    receiver: R,
}

/// The end a thread drives: owned (and moved to its stack) or borrowed from elsewhere.
trait Place<E>: Send {
    fn drive<T>(self, body: impl FnOnce(&mut E) -> T) -> T;
}

/// An owned end, moved to the driving thread's stack.
struct Owned<E>(E);

impl<E: Send> Place<E> for Owned<E> {
    fn drive<T>(self, body: impl FnOnce(&mut E) -> T) -> T {
        body(&mut own(self.0))
    }
}

impl<E: Send> Place<E> for &mut E {
    fn drive<T>(self, body: impl FnOnce(&mut E) -> T) -> T {
        body(self)
    }
}

/// Runs a throughput case: `sender` on one thread, `receiver` on another, kept as
/// `handles` says.
pub fn throughput<S: RingSender, R: RingReceiver>(
    placement: Placement,
    batch: usize,
    timing: Timing,
    handles: Handles,
    (sender, receiver): (S, R),
) -> Samples {
    match handles {
        Handles::Apart => drive(placement, batch, timing, Owned(sender), Owned(receiver)),
        Handles::SideBySide => {
            let mut ends = SideBySide { sender, receiver };
            let SideBySide { sender, receiver } = &mut ends;
            drive(placement, batch, timing, sender, receiver)
        }
    }
}

fn drive<S: RingSender, R: RingReceiver>(
    placement: Placement,
    batch: usize,
    timing: Timing,
    sender: impl Place<S>,
    receiver: impl Place<R>,
) -> Samples {
    let cores = placement.cores();
    let stop = &AtomicBool::new(false);
    let absences = &CachePadded::new(Absences::default());
    std::thread::scope(|scope| {
        let sending = scope.spawn(move || {
            pin(cores.map(|(core, _)| core));
            sender.drive(|sender| {
                send_until(sender, batch, absences, |_| !stop.load(Ordering::Relaxed));
            });
        });
        let receiving = scope.spawn(move || {
            pin(cores.map(|(_, core)| core));
            let result = receiver.drive(|receiver| receive_for(receiver, batch, timing, absences));
            stop.store(true, Ordering::Relaxed);
            result
        });
        let result = receiving.join();
        // A receiver that panicked must still stop the sender, or the scope never ends.
        stop.store(true, Ordering::Relaxed);
        sending.join().expect("sender panicked");
        result.expect("receiver panicked")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_below_matches_a_plain_sum() {
        for count in [0u64, 1, 2, 3, 10, 11, 1000] {
            assert_eq!(sum_below(count), (0..count).sum::<u64>());
        }
        let big = 1u64 << 40;
        assert_eq!(
            sum_below(big),
            (big / 2).wrapping_mul(big - 1),
            "wraps like the receivers"
        );
    }
}
