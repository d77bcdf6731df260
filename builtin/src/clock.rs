//! One monotonic clock for the whole process, read as `u64` nanoseconds.
//!
//! Latency stamps travel inside tuples as plain `u64` values, so every thread must read the
//! same clock with the same origin. [`monotonic_nanos`] counts from a process-wide epoch fixed
//! on first use; `std::time::Instant` underneath is `CLOCK_MONOTONIC` on Linux, which is
//! consistent across cores.
//!
//! # Stamps across processes
//!
//! `CLOCK_MONOTONIC` is one clock for every process of a host, but each process fixes its own
//! epoch. Processes that compare stamps (a source in one worker process, its sink in another)
//! agree on an epoch first: one of them reads [`epoch_wall_time`] and hands it to the others,
//! which call [`start_clock_at`] before reading the clock. The wall-clock time is only the
//! meeting point: on Linux `CLOCK_REALTIME` and `CLOCK_MONOTONIC` advance together (NTP slews
//! both alike) and move apart only when the wall clock is stepped, so the processes' epochs
//! fall on the same instant to within the error of reading the two clocks side by side (tens
//! of nanoseconds), unless the wall clock is stepped between their calls.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The stamp value that means "this tuple carries no latency stamp".
///
/// [`monotonic_nanos`] never returns it, so a sink can tell sampled tuples from the rest.
pub const NO_STAMP: u64 = 0;

/// Nanoseconds since the process-wide epoch; never [`NO_STAMP`], never decreasing.
///
/// Costs one `clock_gettime` through the vDSO (about 20 ns with a TSC clock source), which is
/// why emitters stamp only a sample of their tuples.
#[inline]
pub fn monotonic_nanos() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    // Saturating: u64 nanoseconds overflow only after 584 years of uptime.
    let elapsed = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
    elapsed + 1
}

/// Fixes the epoch now if nothing has read the clock yet.
///
/// Call it before starting threads that compare stamps, so the first stamp is not taken while
/// another thread initialises the epoch (harmless either way: the epoch is set exactly once).
pub fn start_clock() {
    let _ = EPOCH.get_or_init(Instant::now);
}

/// Attempts at reading the wall clock and the monotonic clock side by side; the closest pair
/// is kept.
const CLOCK_PAIR_ATTEMPTS: usize = 16;

/// The wall-clock time and the monotonic instant of (nearly) the same moment: the pair read
/// with the shortest gap out of [`CLOCK_PAIR_ATTEMPTS`], so a preemption between the reads
/// does not skew it.
fn wall_and_instant() -> (SystemTime, Instant) {
    let mut best: Option<(Duration, SystemTime, Instant)> = None;
    for _ in 0..CLOCK_PAIR_ATTEMPTS {
        let before = Instant::now();
        let wall = SystemTime::now();
        let after = Instant::now();
        let gap = after.duration_since(before);
        if best.is_none_or(|(best_gap, _, _)| gap < best_gap) {
            best = Some((gap, wall, before + gap / 2));
        }
    }
    let (_, wall, instant) = best.expect("at least one attempt");
    (wall, instant)
}

/// The wall-clock time of this process's epoch (fixing the epoch now if nothing has read the
/// clock yet): what other processes pass to [`start_clock_at`] to share it. See the
/// [module docs](self).
pub fn epoch_wall_time() -> SystemTime {
    let epoch = *EPOCH.get_or_init(Instant::now);
    let (wall, now) = wall_and_instant();
    match now.checked_duration_since(epoch) {
        Some(since) => wall - since,
        None => wall + epoch.duration_since(now),
    }
}

/// Fixes this process's epoch at the instant the wall clock read `epoch`, so that its stamps
/// compare with those of the process that got `epoch` from [`epoch_wall_time`]. See the
/// [module docs](self).
///
/// Returns `false`, and changes nothing, when the clock was already read (its epoch is then
/// fixed) or `epoch` lies too far back for this host's monotonic clock.
pub fn start_clock_at(epoch: SystemTime) -> bool {
    if EPOCH.get().is_some() {
        return false;
    }
    let (wall, now) = wall_and_instant();
    let instant = match wall.duration_since(epoch) {
        Ok(since) => now.checked_sub(since),
        Err(ahead) => now.checked_add(ahead.duration()),
    };
    instant.is_some_and(|instant| EPOCH.set(instant).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_never_zero_and_never_decrease() {
        start_clock();
        let mut last = monotonic_nanos();
        assert_ne!(last, NO_STAMP);
        for _ in 0..10_000 {
            let now = monotonic_nanos();
            assert!(now >= last, "clock went back from {last} to {now}");
            last = now;
        }
    }

    #[test]
    fn an_epoch_handed_over_is_the_same_instant() {
        start_clock();
        let handed = epoch_wall_time();
        assert!(!start_clock_at(handed), "the epoch is fixed once");
        // What another process would compute from `handed`, checked in this one.
        let (wall, now) = wall_and_instant();
        let since = wall
            .duration_since(handed)
            .expect("the epoch is in the past");
        let other_epoch = now - since;
        let own_epoch = *EPOCH.get().expect("started");
        let skew = if other_epoch > own_epoch {
            other_epoch - own_epoch
        } else {
            own_epoch - other_epoch
        };
        assert!(skew < Duration::from_millis(1), "epochs {skew:?} apart");
    }

    #[test]
    fn stamps_from_another_thread_share_the_epoch() {
        let before = monotonic_nanos();
        let other = std::thread::spawn(monotonic_nanos)
            .join()
            .expect("thread runs");
        let after = monotonic_nanos();
        assert!(
            before <= other && other <= after,
            "{before} <= {other} <= {after}"
        );
    }
}
