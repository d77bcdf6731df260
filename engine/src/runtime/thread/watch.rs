//! What an executor thread last saw of its worker's shared run state (the epoch, the peer
//! losses, the peers other threads found congested) and the congestion it last published:
//! each change is noticed with one load, and acted on once.

use crate::runtime::run_state::RunState;

/// One thread's view of the run state, as of its last look.
#[derive(Debug, Default)]
pub(super) struct RunStateWatch {
    epoch: u64,
    peer_losses: u64,
    /// Peers some thread of the worker has records waiting for, as last read.
    congestion: u64,
    /// Peers this thread last published as having its records waiting.
    published_congestion: u64,
}

impl RunStateWatch {
    /// Whether the run state changed since the thread last looked: a new epoch, a lost
    /// peer, or other threads' congestion.
    #[inline]
    pub(super) fn sees_news(&self, run_state: &RunState) -> bool {
        run_state.epoch() != self.epoch
            || run_state.peer_losses() != self.peer_losses
            || run_state.congestion.congested() != self.congestion
    }

    /// The peers (bits) lost since the last look, if any.
    pub(super) fn new_peer_losses(&mut self, run_state: &RunState) -> Option<Vec<u64>> {
        let losses = run_state.peer_losses();
        if losses == self.peer_losses {
            return None;
        }
        let lost = run_state.lost_peers_since(self.peer_losses);
        self.peer_losses = losses;
        Some(lost)
    }

    /// The epoch, when it changed since the last look.
    pub(super) fn new_epoch(&mut self, run_state: &RunState) -> Option<u64> {
        let epoch = run_state.epoch();
        if epoch == self.epoch {
            return None;
        }
        self.epoch = epoch;
        Some(epoch)
    }

    /// The peers some thread of the worker has records waiting for, read now.
    #[inline]
    pub(super) fn congestion(&mut self, run_state: &RunState) -> u64 {
        self.congestion = run_state.congestion.congested();
        self.congestion
    }

    /// Tells the worker's other threads which peers `thread` has records waiting for
    /// (`congested`), when that changed; wakes them when a peer is no longer congested, so
    /// that the spouts feeding it resume.
    pub(super) fn publish_congestion(
        &mut self,
        run_state: &RunState,
        thread: usize,
        congested: u64,
    ) {
        if congested == self.published_congestion {
            return;
        }
        let cleared = self.published_congestion & !congested != 0;
        self.published_congestion = congested;
        run_state.congestion.set(thread, congested);
        if cleared {
            run_state.wake_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use squall_ringbuf::WaitStrategy;

    use super::*;
    use crate::TopologyState;

    /// A doorbell that counts its rings.
    #[derive(Debug, Default)]
    struct Counted(AtomicUsize);

    impl WaitStrategy for Counted {
        fn wait_until(
            &self,
            _timeout: std::time::Duration,
            ready: &mut dyn FnMut() -> bool,
        ) -> bool {
            ready()
        }

        fn notify(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn each_change_is_seen_once() {
        let run_state = RunState::new("watched".to_owned(), 2);
        let mut watch = RunStateWatch::default();
        assert!(!watch.sees_news(&run_state));

        run_state.set_state(TopologyState::Inactive);
        assert!(watch.sees_news(&run_state));
        assert_eq!(watch.new_epoch(&run_state), Some(1));
        assert_eq!(watch.new_epoch(&run_state), None);
        assert!(!watch.sees_news(&run_state));

        run_state.peer_lost(0b10);
        run_state.peer_lost(0b100);
        assert!(watch.sees_news(&run_state));
        assert_eq!(watch.new_peer_losses(&run_state), Some(vec![0b10, 0b100]));
        assert_eq!(watch.new_peer_losses(&run_state), None);
        run_state.peer_lost(0b1000);
        assert_eq!(watch.new_peer_losses(&run_state), Some(vec![0b1000]));

        run_state.congestion.set(1, 0b10);
        assert!(watch.sees_news(&run_state));
        assert_eq!(watch.congestion(&run_state), 0b10);
        assert!(!watch.sees_news(&run_state));
    }

    #[test]
    fn congestion_is_published_when_it_changes_and_its_end_wakes_the_threads() {
        let run_state = RunState::new("watched".to_owned(), 2);
        let doorbell = Arc::new(Counted::default());
        run_state.set_doorbells(vec![doorbell.clone(), doorbell.clone()]);
        let mut watch = RunStateWatch::default();

        watch.publish_congestion(&run_state, 0, 0b110);
        assert_eq!(run_state.congestion.congested(), 0b110);
        assert_eq!(
            doorbell.0.load(Ordering::Relaxed),
            0,
            "more congestion wakes nobody"
        );
        watch.publish_congestion(&run_state, 0, 0b110);
        assert_eq!(doorbell.0.load(Ordering::Relaxed), 0);

        // Another thread's congestion stays in the union.
        run_state.congestion.set(1, 0b1000);
        watch.publish_congestion(&run_state, 0, 0b10);
        assert_eq!(run_state.congestion.congested(), 0b1010);
        assert_eq!(
            doorbell.0.load(Ordering::Relaxed),
            2,
            "a peer no longer congested wakes every thread"
        );
    }
}
