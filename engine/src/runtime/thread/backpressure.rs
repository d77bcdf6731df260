//! Time each task spends held back by backpressure.
//!
//! The executor loop reads the clock once per pass anyway; at that reading it notes which
//! of its tasks cannot go on — a spout whose outputs have no room (a full ring to a thread
//! of this worker, or a congested peer its tuples reach), a bolt whose thread stopped
//! reading — and charges each of them the time until the next pass. Nothing is measured
//! per tuple, and a thread with no backlog pays a few flag checks per pass.

use super::ExecutorThread;
use super::task_cell::TaskBody;
use crate::runtime::run_state::TopologyState;

/// Why the tasks of a thread cannot go on, as of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Holdback {
    /// An output ring to a thread of this worker is full: no spout of the thread is asked.
    pub(super) local_backlog: bool,
    /// Peers (as a mask) with records waiting: spouts reaching one are not asked.
    pub(super) congested_peers: u64,
    /// The thread stopped reading data: its bolts get no input.
    pub(super) stopped_reading: bool,
    /// Spouts are asked for tuples at all (the topology is active).
    pub(super) spouts_run: bool,
}

impl Holdback {
    fn any(self) -> bool {
        self.local_backlog || self.congested_peers != 0 || self.stopped_reading
    }

    /// Whether a task of this kind, reaching these peers, is held back.
    fn holds(self, body: &TaskBody, peer_reach: u64) -> bool {
        match body {
            TaskBody::Spout(state) => {
                self.spouts_run
                    && state.active
                    && (self.local_backlog || peer_reach & self.congested_peers != 0)
            }
            TaskBody::Bolt(_) => self.stopped_reading,
            TaskBody::Acker(_) | TaskBody::Dead => false,
        }
    }
}

impl ExecutorThread {
    /// Charges the time since the previous pass to the tasks held back then, and notes the
    /// ones held back now.
    pub(super) fn meter_backpressure(&mut self, now: u64) {
        let holdback = Holdback {
            local_backlog: self.emitter.outputs.is_locally_backlogged(),
            congested_peers: self.run_state.congestion.congested()
                | self.emitter.outputs.congested_peers(),
            stopped_reading: self.emitter.outputs.stops_reading() && !self.read_while_backlogged,
            spouts_run: self.state == TopologyState::Active,
        };
        let since = self.backpressure_since.take();
        if since.is_none() && !holdback.any() {
            return;
        }
        let elapsed = since.map_or(0, |since| now.saturating_sub(since));
        for cell in &mut self.tasks {
            let meter = &mut cell.out.meter;
            if meter.backpressured {
                meter.counters.backpressured_nanos += elapsed;
            }
            meter.backpressured = holdback.holds(&cell.body, cell.out.peer_reach);
        }
        self.backpressure_since = holdback.any().then_some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::acking::PendingTrees;
    use crate::runtime::thread::task_cell::{BoltState, SpoutState};

    fn spout(active: bool) -> TaskBody {
        TaskBody::Spout(SpoutState {
            spout: Box::new(crate::testing::NullSpout::default()),
            pending: PendingTrees::with_capacity(1_000_000_000, 0, 0),
            settled: std::collections::VecDeque::new(),
            active,
            idle_calls: 0,
            next_poll_nanos: 0,
        })
    }

    fn bolt() -> TaskBody {
        TaskBody::Bolt(BoltState {
            bolt: Box::new(crate::testing::NullBolt),
            auto_ack: false,
            polls: false,
            runs: false,
        })
    }

    #[test]
    fn spouts_are_held_back_by_a_full_local_ring_or_a_congested_peer_they_reach() {
        let local = Holdback {
            local_backlog: true,
            congested_peers: 0,
            stopped_reading: false,
            spouts_run: true,
        };
        assert!(local.holds(&spout(true), 0));
        assert!(
            !local.holds(&spout(false), 0),
            "a deactivated spout is not asked anyway"
        );
        let inactive = Holdback {
            spouts_run: false,
            ..local
        };
        assert!(!inactive.holds(&spout(true), 0));
        let congested = Holdback {
            local_backlog: false,
            congested_peers: 0b10,
            ..local
        };
        assert!(congested.holds(&spout(true), 0b11));
        assert!(!congested.holds(&spout(true), 0b01));
    }

    #[test]
    fn bolts_are_held_back_only_when_their_thread_stops_reading() {
        let free = Holdback {
            local_backlog: true,
            congested_peers: 0b1,
            stopped_reading: false,
            spouts_run: true,
        };
        assert!(free.any());
        assert!(!free.holds(&bolt(), 0b1));
        let stopped = Holdback {
            stopped_reading: true,
            ..free
        };
        assert!(stopped.holds(&bolt(), 0));
        assert!(!stopped.holds(&TaskBody::Dead, 0));
        let quiet = Holdback {
            local_backlog: false,
            congested_peers: 0,
            stopped_reading: false,
            spouts_run: true,
        };
        assert!(!quiet.any());
    }
}
