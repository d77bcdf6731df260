//! When to start a subprocess again: the restart policy applied to the history of failures.
//! Pure: the caller passes the time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::spec::RestartPolicy;

/// Back-off after the first quick failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A subprocess that dies sooner than this after its start counts as a quick failure, and
/// the back-off grows.
const QUICK_FAILURE: Duration = Duration::from_secs(5);

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    /// Start a new subprocess after this delay.
    After(Duration),
    /// Do not start one again.
    GiveUp,
}

/// The failure history of one task's subprocesses.
#[derive(Debug)]
pub(crate) struct RestartTracker {
    policy: RestartPolicy,
    restarts: VecDeque<Instant>,
    quick_failures: u32,
}

impl RestartTracker {
    pub(crate) fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            restarts: VecDeque::new(),
            quick_failures: 0,
        }
    }

    /// Records a failure at `now` of a subprocess that ran for `lived`.
    pub(crate) fn on_failure(&mut self, now: Instant, lived: Duration) -> RestartDecision {
        match self.policy {
            RestartPolicy::Never => return RestartDecision::GiveUp,
            RestartPolicy::Limited {
                max_restarts,
                within,
            } => {
                while self
                    .restarts
                    .front()
                    .is_some_and(|at| now.saturating_duration_since(*at) > within)
                {
                    self.restarts.pop_front();
                }
                if self.restarts.len() >= max_restarts as usize {
                    return RestartDecision::GiveUp;
                }
                self.restarts.push_back(now);
            }
            RestartPolicy::Always => {}
        }
        if lived >= QUICK_FAILURE {
            self.quick_failures = 0;
            return RestartDecision::After(Duration::ZERO);
        }
        self.quick_failures = self.quick_failures.saturating_add(1);
        // The first quick failure restarts at once; the next ones wait longer and longer.
        let delay = match self.quick_failures {
            1 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_BACKOFF),
        };
        RestartDecision::After(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_failures_back_off_and_long_runs_reset() {
        let start = Instant::now();
        let mut tracker = RestartTracker::new(RestartPolicy::Always);
        let quick = Duration::from_millis(10);
        let delays: Vec<_> = (0..10)
            .map(|i| tracker.on_failure(start + Duration::from_secs(i), quick))
            .collect();
        assert_eq!(delays[0], RestartDecision::After(Duration::ZERO));
        assert_eq!(delays[1], RestartDecision::After(FIRST_BACKOFF));
        assert_eq!(delays[2], RestartDecision::After(FIRST_BACKOFF * 2));
        assert_eq!(delays[9], RestartDecision::After(MAX_BACKOFF));
        assert_eq!(
            tracker.on_failure(start, Duration::from_secs(60)),
            RestartDecision::After(Duration::ZERO)
        );
        assert_eq!(
            tracker.on_failure(start, quick),
            RestartDecision::After(Duration::ZERO)
        );
    }

    #[test]
    fn limits_count_restarts_in_the_window() {
        let start = Instant::now();
        let mut tracker = RestartTracker::new(RestartPolicy::Limited {
            max_restarts: 2,
            within: Duration::from_secs(60),
        });
        let lived = Duration::from_secs(30);
        assert!(matches!(
            tracker.on_failure(start, lived),
            RestartDecision::After(_)
        ));
        let later = start + Duration::from_secs(10);
        assert!(matches!(
            tracker.on_failure(later, lived),
            RestartDecision::After(_)
        ));
        let again = start + Duration::from_secs(20);
        assert_eq!(tracker.on_failure(again, lived), RestartDecision::GiveUp);
        let much_later = start + Duration::from_secs(100);
        assert!(matches!(
            tracker.on_failure(much_later, lived),
            RestartDecision::After(_)
        ));
        let mut never = RestartTracker::new(RestartPolicy::Never);
        assert_eq!(never.on_failure(start, lived), RestartDecision::GiveUp);
    }
}
