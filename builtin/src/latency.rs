//! Latency measured at the sink from a stamp carried inside the tuple.
//!
//! An emitter writes a `u64` stamp from [`super::clock::monotonic_nanos`] (or, under constant-rate
//! load, the tuple's intended send time) into a sample of its tuples; the sink task that finally
//! receives one records `now - stamp` into its own [`LatencyRecorder`]. Each recorder keeps the
//! latencies it recorded in a short list and records them into the shared [`LatencyHistogram`]
//! every [`FLUSH_INTERVAL_NANOS`] or when the list is full, so recording costs one clock read
//! and one store, and the shared lock is taken about ten times a second per quiet sink task.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use hdrhistogram::Histogram;

use super::clock::{NO_STAMP, monotonic_nanos};

/// The largest latency a histogram tracks exactly: one minute. Longer ones count as one minute.
pub const MAX_TRACKED_NANOS: u64 = 60_000_000_000;

/// Significant decimal digits kept by every histogram (values are exact to 0.1 %).
const SIGNIFICANT_DIGITS: u8 = 3;

/// How often a recorder merges its private histogram into the shared one: 100 ms.
pub const FLUSH_INTERVAL_NANOS: u64 = 100_000_000;

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (1 <= low, high >= 2 * low, 0..=5 digits).
    Histogram::new_with_bounds(1, MAX_TRACKED_NANOS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

pub use squall_core::metrics::LatencySummary;

/// The shared histogram that every sink task of one measurement merges into.
///
/// Cloning gives another handle to the same histogram.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    shared: Arc<Mutex<Histogram<u64>>>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Mutex::new(new_histogram())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        // A panicking recorder cannot leave a histogram half-updated in a way that matters for
        // a measurement, so a poisoned lock is still usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A recorder for one sink task.
    pub fn recorder(&self) -> LatencyRecorder {
        LatencyRecorder {
            pending: Vec::with_capacity(PENDING_SAMPLES),
            shared: Arc::clone(&self.shared),
            last_flush_nanos: monotonic_nanos(),
        }
    }

    /// Percentiles of everything merged so far.
    ///
    /// Recorders merge every [`FLUSH_INTERVAL_NANOS`], so the latest few milliseconds may be
    /// missing until then. The percentiles are read from a copy: the lock is held for the
    /// copy alone, not for the scans that the percentiles take.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.snapshot())
    }

    /// A copy of everything merged so far.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.lock().clone()
    }

    /// Forgets everything merged so far, e.g. at the end of a warm-up.
    pub fn reset(&self) {
        self.lock().reset();
    }
}

/// One sink task's latency recorder; see the [module docs](self).
///
/// Dropping it merges what it still holds.
#[derive(Debug)]
pub struct LatencyRecorder {
    /// Latencies recorded since the last merge, at most [`PENDING_SAMPLES`].
    pending: Vec<u64>,
    shared: Arc<Mutex<Histogram<u64>>>,
    last_flush_nanos: u64,
}

/// Latencies a recorder holds before it merges them, whatever the time: 8 KiB per sink task.
const PENDING_SAMPLES: usize = 1024;

impl LatencyRecorder {
    /// Records the time from `stamp_nanos` to now, unless the stamp is [`NO_STAMP`].
    ///
    /// Returns whether a latency was recorded.
    #[inline]
    pub fn record_since(&mut self, stamp_nanos: u64) -> bool {
        if stamp_nanos == NO_STAMP {
            return false;
        }
        let now = monotonic_nanos();
        self.record_at(stamp_nanos, now);
        true
    }

    /// Records `now_nanos - stamp_nanos` (zero if the stamp lies in the future).
    pub fn record_at(&mut self, stamp_nanos: u64, now_nanos: u64) {
        self.pending
            .push(now_nanos.saturating_sub(stamp_nanos).max(1));
        if self.pending.len() == PENDING_SAMPLES {
            // Full: the merge cannot wait for a reader, or the next sample would allocate.
            self.flush();
        } else if now_nanos.saturating_sub(self.last_flush_nanos) >= FLUSH_INTERVAL_NANOS {
            self.flush_at(now_nanos);
        }
    }

    /// Merges what the recorder holds into the shared histogram now, waiting for the lock
    /// if a reader holds it.
    pub fn flush(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        merge(&mut self.pending, &mut shared);
        self.last_flush_nanos = monotonic_nanos();
    }

    /// The periodic merge, on the sink's own thread: if a reader holds the shared histogram,
    /// the sink does not wait for it (that wait would be measured as latency of the tuples
    /// behind it) but tries again at its next record.
    fn flush_at(&mut self, now_nanos: u64) {
        let mut shared = match self.shared.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        merge(&mut self.pending, &mut shared);
        self.last_flush_nanos = now_nanos;
    }
}

/// Moves the latencies in `pending` into `shared`. A merge costs what was recorded, not the
/// size of a histogram: adding a private histogram (some 200 KiB at these bounds) and
/// clearing it, ten times a second for each of 64 sink tasks on one thread, took 6% of a
/// word count's samples.
fn merge(pending: &mut Vec<u64>, shared: &mut Histogram<u64>) {
    for &latency in pending.iter() {
        shared.saturating_record(latency);
    }
    pending.clear();
}

impl Drop for LatencyRecorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unstamped_tuples_are_not_recorded() {
        let histogram = LatencyHistogram::new();
        let mut recorder = histogram.recorder();
        assert!(!recorder.record_since(NO_STAMP));
        recorder.flush();
        assert_eq!(histogram.summary().samples, 0);
    }

    #[test]
    fn recorders_merge_into_the_shared_histogram() {
        let histogram = LatencyHistogram::new();
        let mut first = histogram.recorder();
        let mut second = histogram.recorder();
        for latency in 1..=1_000u64 {
            first.record_at(10_000, 10_000 + latency * 1_000);
        }
        second.record_at(0, 5_000_000);
        first.flush();
        drop(second);
        let summary = histogram.summary();
        assert_eq!(summary.samples, 1_001);
        // HDR buckets report the highest value equivalent to the sample: within 0.1 % above.
        assert!((500_000..=501_500).contains(&summary.p50), "{summary:?}");
        assert!((990_000..=991_500).contains(&summary.p99), "{summary:?}");
        assert!(
            (5_000_000..=5_005_000).contains(&summary.max),
            "{summary:?}"
        );
    }

    #[test]
    fn a_recorder_flushes_by_itself_after_the_interval() {
        let histogram = LatencyHistogram::new();
        let mut recorder = histogram.recorder();
        let start = recorder.last_flush_nanos;
        recorder.record_at(start, start + 100);
        assert_eq!(histogram.summary().samples, 0, "too early to flush");
        recorder.record_at(start, start + FLUSH_INTERVAL_NANOS);
        assert_eq!(histogram.summary().samples, 2);
    }

    #[test]
    fn a_full_recorder_merges_before_the_interval_without_growing() {
        let histogram = LatencyHistogram::new();
        let mut recorder = histogram.recorder();
        let start = recorder.last_flush_nanos;
        for n in 1..PENDING_SAMPLES as u64 {
            recorder.record_at(start, start + n);
        }
        assert_eq!(histogram.summary().samples, 0, "not full yet");
        recorder.record_at(start, start + 5_000);
        let summary = histogram.summary();
        assert_eq!(summary.samples, PENDING_SAMPLES as u64, "merged when full");
        assert!((5_000..=5_010).contains(&summary.max), "{summary:?}");
        recorder.record_at(start, start + 1);
        assert_eq!(recorder.pending.capacity(), PENDING_SAMPLES, "never grown");
    }

    #[test]
    fn a_held_histogram_does_not_stall_the_sink() {
        let histogram = LatencyHistogram::new();
        let mut recorder = histogram.recorder();
        let start = recorder.last_flush_nanos;
        let reader = histogram.lock();
        // Due to flush, but a reader holds the lock: the record returns without waiting.
        recorder.record_at(start, start + FLUSH_INTERVAL_NANOS);
        drop(reader);
        assert_eq!(histogram.summary().samples, 0, "not merged while held");
        // The next record finds the lock free and merges both.
        recorder.record_at(start, start + FLUSH_INTERVAL_NANOS + 1);
        assert_eq!(histogram.summary().samples, 2);
    }

    #[test]
    fn reset_forgets_the_warm_up() {
        let histogram = LatencyHistogram::new();
        let mut recorder = histogram.recorder();
        recorder.record_at(0, 1_000_000);
        recorder.flush();
        histogram.reset();
        recorder.record_at(0, 2_000);
        recorder.flush();
        let summary = histogram.summary();
        assert_eq!(summary.samples, 1);
        assert!(summary.max < 2_100, "{summary:?}");
    }

    #[test]
    fn huge_latencies_saturate_instead_of_failing() {
        let histogram = LatencyHistogram::new();
        let mut recorder = histogram.recorder();
        recorder.record_at(1, u64::MAX);
        recorder.flush();
        assert!(histogram.summary().max >= MAX_TRACKED_NANOS);
    }
}
