//! When an executor thread merges its tasks' histograms into their shared copies: on a
//! fixed period while busy, and when it goes idle, no more often than a shorter period
//! (a thread may go idle thousands of times a second).

/// How often task histograms are merged into their shared copies while the thread is busy.
const HISTOGRAM_PUBLISH_NANOS: u64 = 100_000_000;

/// Shortest time between two merges when the thread goes idle.
const IDLE_PUBLISH_NANOS: u64 = 10_000_000;

/// The histogram-publishing schedule of one thread, on the thread's clock (nanoseconds).
#[derive(Debug)]
pub(super) struct PublishClock {
    next_periodic: u64,
    last_idle: u64,
}

impl PublishClock {
    /// A schedule starting at `now`: the first periodic merge one period later.
    pub(super) fn new(now: u64) -> Self {
        Self {
            next_periodic: now + HISTOGRAM_PUBLISH_NANOS,
            last_idle: now,
        }
    }

    /// When the next periodic merge is due: a timer of the thread.
    #[inline]
    pub(super) fn next_due(&self) -> u64 {
        self.next_periodic
    }

    /// Whether the periodic merge is due at `now`; if so, the next one is scheduled.
    #[inline]
    pub(super) fn periodic_due(&mut self, now: u64) -> bool {
        if now < self.next_periodic {
            return false;
        }
        self.next_periodic = now + HISTOGRAM_PUBLISH_NANOS;
        true
    }

    /// Whether a thread going idle at `now` merges; if so, the time is noted.
    #[inline]
    pub(super) fn idle_due(&mut self, now: u64) -> bool {
        if now < self.last_idle + IDLE_PUBLISH_NANOS {
            return false;
        }
        self.last_idle = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_merges_follow_the_period_from_the_last_one() {
        let mut clock = PublishClock::new(1_000);
        assert_eq!(clock.next_due(), 1_000 + HISTOGRAM_PUBLISH_NANOS);
        assert!(!clock.periodic_due(1_000 + HISTOGRAM_PUBLISH_NANOS - 1));
        let late = 1_000 + HISTOGRAM_PUBLISH_NANOS + 5;
        assert!(clock.periodic_due(late));
        assert!(!clock.periodic_due(late), "once per period");
        assert_eq!(clock.next_due(), late + HISTOGRAM_PUBLISH_NANOS);
    }

    #[test]
    fn idle_merges_are_spaced_by_the_idle_period() {
        let mut clock = PublishClock::new(0);
        assert!(
            !clock.idle_due(IDLE_PUBLISH_NANOS - 1),
            "not right after the start"
        );
        assert!(clock.idle_due(IDLE_PUBLISH_NANOS));
        assert!(!clock.idle_due(IDLE_PUBLISH_NANOS + 1));
        assert!(clock.idle_due(2 * IDLE_PUBLISH_NANOS));
        // Idle merges leave the periodic schedule alone.
        assert_eq!(clock.next_due(), HISTOGRAM_PUBLISH_NANOS);
    }
}
