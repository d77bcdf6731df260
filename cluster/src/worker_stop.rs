//! How long a worker may take to stop on SIGTERM, which bounds the grace its supervisor must
//! give it before SIGKILL.

use std::time::Duration;

/// Longest a stopping worker waits for the tuples in flight to be acked or failed. A worker
/// with nothing in flight stops without waiting.
pub const WORKER_STOP_DRAIN: Duration = Duration::from_secs(2);

/// What a worker may need after draining: spouts' `close`, bolts' `cleanup`, multi-lang
/// subprocesses ending and the transport closing its connections.
pub const WORKER_STOP_CLOSE: Duration = Duration::from_secs(1);

/// The shortest `supervisor.kill_grace_ms` that lets every worker stop by itself: any less
/// and a worker still draining or closing is killed, losing its cleanup.
pub const fn min_kill_grace() -> Duration {
    WORKER_STOP_DRAIN.saturating_add(WORKER_STOP_CLOSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grace_leaves_room_over_the_worker_stop() {
        let default_grace =
            Duration::from_millis(crate::config::SupervisorSettings::default().kill_grace_ms);
        assert!(min_kill_grace() < default_grace);
        assert!(WORKER_STOP_DRAIN < min_kill_grace());
    }
}
