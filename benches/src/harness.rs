//! Running one case on two threads: where the threads run, how they start together, and what
//! is measured.
//!
//! - Throughput: the sender sends `0, 1, 2, ...` as fast as the ring takes them; the receiver
//!   adds up what arrives and reads the clock every [`CHECK_EVERY`] values. The run is cut
//!   into intervals of [`INTERVAL`]; the first [`Timing::warmup`] is not counted, and the rate
//!   of each later interval is one sample. The sum of the values received must match their
//!   count, so a ring that loses, duplicates or corrupts values fails the run.
//! - Round trips: one thread sends a value, the other sends it straight back on a second
//!   ring; each round trip is timed on its own and recorded in an HDR histogram.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use core_affinity::CoreId;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::endpoints::{RingReceiver, RingSender};

/// Values between two clock readings on the receiving side.
pub const CHECK_EVERY: u64 = 1 << 12;

/// Length of one throughput sample.
pub const INTERVAL: Duration = Duration::from_millis(10);

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

/// Throughput samples: the rate of every counted interval, from one run of a case or
/// merged from several.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Items per second of each counted interval.
    pub rates: Vec<f64>,
    /// Items received in the counted intervals.
    pub items: u64,
    /// Length of the counted intervals, in seconds.
    pub seconds: f64,
}

impl Samples {
    /// Adds the samples of another run of the same case.
    pub fn merge(&mut self, other: Samples) {
        self.rates.extend(other.rates);
        self.items += other.items;
        self.seconds += other.seconds;
    }

    /// Percentiles of the interval rates.
    pub fn summary(&self) -> Throughput {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        let at = |quantile: f64| {
            rates
                .get(((rates.len() as f64 - 1.0) * quantile).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Throughput {
            overall: if self.seconds > 0.0 {
                self.items as f64 / self.seconds
            } else {
                0.0
            },
            p50: at(0.5),
            p10: at(0.1),
            p90: at(0.9),
            intervals: rates.len(),
            items: self.items,
            seconds: self.seconds,
        }
    }
}

/// A throughput measurement: items per second over the counted intervals.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Items received while counted.
    pub items: u64,
    /// Counted time, in seconds.
    pub seconds: f64,
    /// Items per second over the whole counted time.
    pub overall: f64,
    /// Median of the per-interval rates, items per second.
    pub p50: f64,
    /// 10th percentile of the per-interval rates.
    pub p10: f64,
    /// 90th percentile of the per-interval rates.
    pub p90: f64,
    /// Number of intervals.
    pub intervals: usize,
}

/// The receiving side's clock: samples the rate once per [`INTERVAL`] and says when to stop.
#[derive(Debug)]
pub struct Meter {
    warmup_end: Instant,
    deadline: Instant,
    interval_start: Instant,
    interval_items: u64,
    counted_items: u64,
    counted_seconds: f64,
    rates: Vec<f64>,
    /// The receiver reads the clock once its count reaches this.
    next_check: u64,
}

impl Meter {
    /// Starts the clock; `received` values have arrived already.
    pub fn start(timing: Timing, received: u64) -> Self {
        let started = Instant::now();
        let warmup_end = started + timing.warmup;
        Self {
            warmup_end,
            deadline: warmup_end + timing.measure,
            interval_start: started,
            interval_items: received,
            counted_items: 0,
            counted_seconds: 0.0,
            rates: Vec::new(),
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
            if self.interval_start >= self.warmup_end {
                let items = received - self.interval_items;
                self.rates.push(items as f64 / elapsed.as_secs_f64());
                self.counted_items += items;
                self.counted_seconds += elapsed.as_secs_f64();
            }
            self.interval_start = now;
            self.interval_items = received;
        }
        now < self.deadline
    }

    /// The samples so far.
    pub fn finish(self) -> Samples {
        Samples {
            rates: self.rates,
            items: self.counted_items,
            seconds: self.counted_seconds,
        }
    }
}

/// Sends `0, 1, 2, ...` in calls of up to `batch` values until `keep_going` says no; it is
/// asked only while the ring is full, so the hot path never looks at it.
pub fn send_until<S: RingSender>(sender: &mut S, batch: usize, keep_going: impl Fn(&S) -> bool) {
    let mut next = 0u64;
    let mut idle_polls = 0u32;
    loop {
        let sent = sender.send(next, batch);
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
/// as `timing` says; returns the measurement.
///
/// # Panics
/// When the first value does not arrive in time, or when the sum of the values received is
/// not that of `0..count`.
pub fn receive_for<R: RingReceiver>(receiver: &mut R, batch: usize, timing: Timing) -> Samples {
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
    let mut meter = Meter::start(timing, received);
    let mut idle_polls = 0u32;
    loop {
        let arrived = receiver.receive(batch, &mut sum);
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
    std::thread::scope(|scope| {
        let sending = scope.spawn(move || {
            pin(cores.map(|(core, _)| core));
            sender.drive(|sender| {
                send_until(sender, batch, |_| !stop.load(Ordering::Relaxed));
            });
        });
        let receiving = scope.spawn(move || {
            pin(cores.map(|(_, core)| core));
            let result = receiver.drive(|receiver| receive_for(receiver, batch, timing));
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

/// A round-trip measurement, in nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrips {
    /// Round trips recorded (after the warm-up).
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// Median interpolated within the clock's step; see [`interpolated_median`].
    pub p50_interpolated: f64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
    /// Mean, for reference only.
    pub mean: f64,
}

impl RoundTrips {
    /// The percentiles of `histogram`, whose values were read from [`Clock::get`].
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        Self {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p50_interpolated: interpolated_median(histogram, Clock::get().step_nanos()),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

/// The median of durations read from a clock that advances in steps of `step` nanoseconds.
///
/// Each value read stands for the durations within half a step of it; the median is placed
/// within the step where the counts cross one half, in proportion to the counts on either
/// side (the textbook median of grouped data). Because a round trip starts at a random
/// point of a step, a duration of 95 ns with 10 ns steps reads as 90 or 100 about equally
/// often, and this recovers the 95 that the plain median (90 or 100) cannot show.
pub fn interpolated_median(histogram: &Histogram<u64>, step: f64) -> f64 {
    let step = step.max(1.0);
    let half = histogram.len() as f64 / 2.0;
    // Counts per step, in increasing order of steps.
    let mut steps: Vec<(f64, u64)> = Vec::new();
    for recorded in histogram.iter_recorded() {
        let index = (recorded.value_iterated_to() as f64 / step).round();
        match steps.last_mut() {
            Some((last, count)) if *last == index => *count += recorded.count_at_value(),
            _ => steps.push((index, recorded.count_at_value())),
        }
    }
    let mut below = 0.0;
    for (index, count) in steps {
        let count = count as f64;
        if below + count >= half {
            return (index - 0.5 + (half - below) / count) * step;
        }
        below += count;
    }
    0.0
}

/// Timestamps for round trips.
///
/// On x86_64 it reads the CPU's time-stamp counter, which costs a few cycles rather than
/// `Instant`'s 30 ns (a `clock_gettime` call, measured here), and converts ticks with a rate
/// measured against [`Instant`] once per process. Elsewhere it is `Instant` itself. Either
/// may advance in steps coarser than a nanosecond (10 ns on this project's AMD benchmark
/// machine, whose time-stamp counter counts at 100 MHz times a multiplier), which
/// [`interpolated_median`] accounts for.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    nanos_per_tick: f64,
    step_ticks: u64,
}

impl Clock {
    /// How long the tick rate is measured.
    const CALIBRATION: Duration = Duration::from_millis(50);

    /// Pairs of readings whose smallest difference is taken as the step.
    const STEP_PROBES: usize = 10_000;

    /// The process's clock, calibrated on first use.
    pub fn get() -> Self {
        static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
        *CLOCK.get_or_init(|| {
            let (start, start_ticks) = (Instant::now(), Self::read());
            while start.elapsed() < Self::CALIBRATION {
                spin_loop();
            }
            let (elapsed, ticks) = (start.elapsed(), Self::read() - start_ticks);
            let step_ticks = (0..Self::STEP_PROBES)
                .map(|_| {
                    let first = Self::read();
                    let mut next = Self::read();
                    while next == first {
                        next = Self::read();
                    }
                    next - first
                })
                .min()
                .unwrap_or(1);
            Clock {
                nanos_per_tick: elapsed.as_nanos() as f64 / ticks as f64,
                step_ticks,
            }
        })
    }

    /// The current time, in ticks.
    #[inline(always)]
    pub fn ticks(self) -> u64 {
        Self::read()
    }

    /// `ticks` in nanoseconds.
    pub fn nanos(self, ticks: u64) -> u64 {
        (ticks as f64 * self.nanos_per_tick).round() as u64
    }

    /// The smallest step between two different readings, in nanoseconds (an upper bound
    /// of the clock's resolution: it includes the time one reading takes).
    pub fn step_nanos(self) -> f64 {
        self.step_ticks as f64 * self.nanos_per_tick
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn read() -> u64 {
        // SAFETY: every x86_64 CPU has `rdtsc`; it reads a counter and touches no memory.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn read() -> u64 {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// The value that tells the echoing thread to stop; no round trip carries it.
const STOP_ECHO: u64 = u64::MAX / 2;

/// Sends `value` alone, spinning while the ring is full.
#[inline]
fn send_one<S: RingSender>(sender: &mut S, value: u64) {
    while sender.send(value, 1) == 0 {
        spin_loop();
    }
}

/// Receives one value, spinning while the ring is empty.
#[inline]
fn receive_one<R: RingReceiver>(receiver: &mut R) -> u64 {
    let mut value = 0;
    while receiver.receive(1, &mut value) == 0 {
        spin_loop();
    }
    value
}

/// Runs a round-trip case: `warmup` untimed round trips, then `count` timed ones, recorded
/// in nanoseconds. `ping` carries values out and `pong` brings them back.
pub fn round_trips<S: RingSender, R: RingReceiver>(
    placement: Placement,
    warmup: u64,
    count: u64,
    (ping_sender, ping_receiver): (S, R),
    (pong_sender, pong_receiver): (S, R),
) -> Histogram<u64> {
    let cores = placement.cores();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            pin(cores.map(|(_, core)| core));
            let (mut ping_receiver, mut pong_sender) = (own(ping_receiver), own(pong_sender));
            loop {
                let value = receive_one(&mut *ping_receiver);
                send_one(&mut *pong_sender, value);
                if value == STOP_ECHO {
                    return;
                }
            }
        });
        let timing = scope.spawn(move || {
            pin(cores.map(|(core, _)| core));
            let (mut ping_sender, mut pong_receiver) = (own(ping_sender), own(pong_receiver));
            let clock = Clock::get();
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
            for value in 0..warmup + count {
                let sent_at = clock.ticks();
                send_one(&mut *ping_sender, value);
                let echo = receive_one(&mut *pong_receiver);
                let ticks = clock.ticks().wrapping_sub(sent_at);
                assert_eq!(echo, value, "round trip {value} came back as {echo}");
                if value >= warmup {
                    histogram.saturating_record(clock.nanos(ticks).max(1));
                }
            }
            send_one(&mut *ping_sender, STOP_ECHO);
            assert_eq!(receive_one(&mut *pong_receiver), STOP_ECHO);
            histogram
        });
        timing.join().expect("timing thread panicked")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_median_places_the_median_within_its_step() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        // A true 95 ns read with 10 ns steps: half 90, half 100 (with a tick of jitter).
        histogram.record_n(90, 40).unwrap();
        histogram.record_n(91, 10).unwrap();
        histogram.record_n(100, 50).unwrap();
        assert!((interpolated_median(&histogram, 10.0) - 95.0).abs() < 1e-9);
        // All in one step: its middle.
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        histogram.record_n(100, 10).unwrap();
        assert!((interpolated_median(&histogram, 10.0) - 100.0).abs() < 1e-9);
        // A clock with 1 ns steps changes the plain median by half a nanosecond at most.
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        for value in 100..200 {
            histogram.record(value).unwrap();
        }
        let median = interpolated_median(&histogram, 1.0);
        assert!((median - 150.0).abs() <= 0.5, "{median}");
    }

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
