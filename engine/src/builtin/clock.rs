//! One monotonic clock for the whole process, read as `u64` nanoseconds.
//!
//! Latency stamps travel inside tuples as plain `u64` values, so every thread must read the
//! same clock with the same origin. [`monotonic_nanos`] counts from a process-wide epoch fixed
//! on first use; `std::time::Instant` underneath is `CLOCK_MONOTONIC` on Linux, which is
//! consistent across cores.

use std::sync::OnceLock;
use std::time::Instant;

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
