//! Bounded waits: poll a condition that another thread or process makes true, and give up
//! after a timeout instead of hanging the test run.

use std::time::{Duration, Instant};

/// How long a wait sleeps between two checks.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Calls `check` until it returns `Some`, for at most `timeout`; `None` if it never did.
/// `check` runs at least once, and once more at the deadline.
pub fn poll_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Whether `condition` became true within `timeout`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    poll_until(timeout, || condition().then_some(())).is_some()
}

/// Waits until `done()`, or panics after `timeout` naming `what`.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    wait_for_or_explain(what, timeout, done, String::new);
}

/// Waits until `done()`, or panics after `timeout` naming `what` followed by what `explain`
/// says of the state at that moment (counters, errors, logs).
#[track_caller]
pub fn wait_for_or_explain(
    what: &str,
    timeout: Duration,
    done: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    if !wait_until(timeout, done) {
        panic!(
            "timed out after {timeout:?} waiting for {what}{}",
            explain()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn poll_until_returns_the_first_value() {
        let calls = AtomicU32::new(0);
        let value = poll_until(Duration::from_secs(5), || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            (n == 2).then_some(n)
        });
        assert_eq!(value, Some(2));
    }

    #[test]
    fn a_condition_that_never_holds_times_out_after_checking_at_least_twice() {
        let calls = AtomicU32::new(0);
        let held = wait_until(Duration::from_millis(20), || {
            calls.fetch_add(1, Ordering::Relaxed);
            false
        });
        assert!(!held);
        assert!(calls.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    #[should_panic(expected = "waiting for the impossible: state 7")]
    fn wait_for_names_what_it_waited_for() {
        wait_for_or_explain(
            "the impossible",
            Duration::from_millis(10),
            || false,
            || ": state 7".to_owned(),
        );
    }
}
