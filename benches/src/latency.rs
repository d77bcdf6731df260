//! Round trips: one thread sends a value, the other sends it straight back on a second
//! ring of the same kind; every round trip is timed on its own, with [`Clock`], and recorded
//! in an HDR histogram.

use std::hint::spin_loop;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::endpoints::{RingReceiver, RingSender};
use crate::harness::{Placement, own, pin};

/// Round trips recorded over one or more slices of a case.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Every timed round trip, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Interpolated median of each slice, in the order the slices ran.
    pub per_round: Vec<f64>,
}

impl Latencies {
    /// The round trips of one slice.
    pub fn slice(histogram: Histogram<u64>) -> Self {
        Self {
            per_round: vec![interpolated_median(&histogram, Clock::get().step_nanos())],
            histogram,
        }
    }

    /// Adds the round trips of a later slice of the same case.
    pub fn merge(&mut self, other: Latencies) {
        self.histogram
            .add(other.histogram)
            .expect("histograms with the same bounds");
        self.per_round.extend(other.per_round);
    }

    /// Percentiles over every slice.
    pub fn summary(&self) -> RoundTrips {
        let histogram = &self.histogram;
        RoundTrips {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p50_interpolated: interpolated_median(histogram, Clock::get().step_nanos()),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
            per_round: self.per_round.clone(),
        }
    }
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
    /// Interpolated median of each round.
    pub per_round: Vec<f64>,
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

    /// How many ticks `duration` lasts.
    pub fn ticks_in(self, duration: Duration) -> u64 {
        (duration.as_nanos() as f64 / self.nanos_per_tick).round() as u64
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

/// Runs a slice of a round-trip case: `warmup` untimed round trips, then `count` timed ones,
/// recorded in nanoseconds. `ping` carries values out and `pong` brings them back.
pub fn round_trips<S: RingSender, R: RingReceiver>(
    placement: Placement,
    warmup: u64,
    count: u64,
    (ping_sender, ping_receiver): (S, R),
    (pong_sender, pong_receiver): (S, R),
) -> Latencies {
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
        Latencies::slice(timing.join().expect("timing thread panicked"))
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
}
