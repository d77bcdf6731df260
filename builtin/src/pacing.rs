//! Constant-rate pacing that keeps each tuple's *intended* send time.
//!
//! A load generator that waits for the system before sending the next request hides every
//! stall from its own measurements ("coordinated omission"): while the pipeline is blocked, no
//! tuple is sent, so no tuple records the wait. [`RatePacer`] fixes a schedule instead — tuple
//! `i` is due at `start + i / rate` — and an emitter stamps each tuple with that intended time.
//! When the emitter falls behind, the tuples it sends late still carry their scheduled time, so
//! the sink measures the full delay a client on that schedule would have seen.

use std::fmt;
use std::num::NonZeroU64;

/// A target rate in tuples per second (never zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TuplesPerSecond(NonZeroU64);

impl TuplesPerSecond {
    /// The rate `per_second`, or `None` for zero.
    pub fn new(per_second: u64) -> Option<Self> {
        NonZeroU64::new(per_second).map(Self)
    }

    /// The rate as a plain number.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for TuplesPerSecond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tuples/s", self.0)
    }
}

/// A fixed send schedule: tuple `i` is due `i / rate` seconds after `start_nanos`.
///
/// Times are nanoseconds on the clock of [`super::clock::monotonic_nanos`]. The schedule is
/// computed with 128-bit arithmetic from the tuple index, so it never drifts however long it
/// runs.
#[derive(Debug, Clone)]
pub struct RatePacer {
    start_nanos: u64,
    rate: TuplesPerSecond,
    sent: u64,
}

impl RatePacer {
    /// A schedule of `rate` tuples per second whose first tuple is due at `start_nanos`.
    pub fn new(rate: TuplesPerSecond, start_nanos: u64) -> Self {
        Self {
            start_nanos,
            rate,
            sent: 0,
        }
    }

    /// The schedule's rate.
    pub fn rate(&self) -> TuplesPerSecond {
        self.rate
    }

    /// How many tuples have been marked sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The intended send time of tuple number `index` (counting from 0).
    pub fn intended_nanos(&self, index: u64) -> u64 {
        let offset = u128::from(index) * 1_000_000_000 / u128::from(self.rate.get());
        self.start_nanos
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// The intended send time of the next tuple to send.
    pub fn next_intended_nanos(&self) -> u64 {
        self.intended_nanos(self.sent)
    }

    /// How many tuples are due at `now_nanos` and not yet sent.
    pub fn due(&self, now_nanos: u64) -> u64 {
        let Some(elapsed) = now_nanos.checked_sub(self.start_nanos) else {
            return 0;
        };
        // Tuples 0..=k are due when k / rate <= elapsed, i.e. k <= elapsed * rate / 1e9.
        let scheduled = u128::from(elapsed) * u128::from(self.rate.get()) / 1_000_000_000 + 1;
        let scheduled = u64::try_from(scheduled).unwrap_or(u64::MAX);
        scheduled.saturating_sub(self.sent)
    }

    /// Records that `count` more tuples were sent, returning the index of the first of them.
    pub fn mark_sent(&mut self, count: u64) -> u64 {
        let first = self.sent;
        self.sent += count;
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(rate: u64) -> RatePacer {
        RatePacer::new(TuplesPerSecond::new(rate).expect("nonzero"), 1_000)
    }

    #[test]
    fn zero_is_not_a_rate() {
        assert!(TuplesPerSecond::new(0).is_none());
        assert_eq!(TuplesPerSecond::new(5).map(TuplesPerSecond::get), Some(5));
    }

    #[test]
    fn nothing_is_due_before_the_start() {
        assert_eq!(pacer(1_000).due(999), 0);
        assert_eq!(pacer(1_000).due(0), 0);
    }

    #[test]
    fn the_first_tuple_is_due_at_the_start_and_then_one_per_interval() {
        let mut p = pacer(1_000); // one per millisecond
        assert_eq!(p.due(1_000), 1);
        assert_eq!(p.due(1_000 + 999_999), 1);
        assert_eq!(p.due(1_000 + 1_000_000), 2);
        assert_eq!(p.mark_sent(2), 0);
        assert_eq!(p.due(1_000 + 1_000_000), 0);
        assert_eq!(p.next_intended_nanos(), 1_000 + 2_000_000);
        assert_eq!(p.due(1_000 + 10_000_000), 9);
    }

    #[test]
    fn late_tuples_keep_their_scheduled_time() {
        let mut p = pacer(1_000_000); // one per microsecond
        // The emitter was stalled for a millisecond: a thousand tuples are due at once...
        assert_eq!(p.due(1_000 + 1_000_000), 1_001);
        let first = p.mark_sent(1_001);
        // ...and each one is stamped with its own place on the schedule, not with "now".
        assert_eq!(p.intended_nanos(first), 1_000);
        assert_eq!(p.intended_nanos(first + 500), 1_000 + 500_000);
    }

    #[test]
    fn the_schedule_does_not_drift_over_long_runs() {
        let p = pacer(3); // 333_333_333.33 ns apart: rounding must not accumulate
        let one_day = 86_400u64;
        assert_eq!(
            p.intended_nanos(3 * one_day),
            1_000 + one_day * 1_000_000_000
        );
    }
}
