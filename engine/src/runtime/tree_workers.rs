//! Which workers a tuple tree touched, as a 64-bit mask, so that losing the link between
//! two workers fails only the trees that may have had records or acker traffic on it.
//!
//! Worker `i` of a plan is bit `i mod 64` (with more than 64 workers, two share a bit and
//! their trees count as touching both: a superset, never a miss). Every report to an acker
//! carries the reporter's bit and the bits of the workers it sent the tree's records to:
//! the spout's init report for the first records (a tree with a named root has none: its
//! first records and acker stay in the spout's worker, see `tree_root`), a bolt's ack
//! report for the records it anchored to the input it acks. The acker ORs them per tree,
//! and adds its own worker, since the tree's acker traffic travels to it. When the link
//! between workers X and Y is lost, the trees whose mask holds both X and Y fail; the
//! others go on.

use std::sync::Arc;

use crate::ids::TaskId;

/// The worker bits of one worker's view of the topology.
#[derive(Debug, Clone)]
pub(crate) struct TreeWorkers {
    /// This worker's bit; 0 in local mode, where no link exists.
    own: u64,
    /// The bit of the peer worker running each task, indexed by task id; 0 for tasks of
    /// this worker (their records cross no link).
    peer_of_task: Arc<[u64]>,
}

impl TreeWorkers {
    /// The bit of worker `index` of a plan.
    pub(crate) fn bit(index: usize) -> u64 {
        1 << (index % 64)
    }

    /// Local mode: one worker, no link.
    pub(crate) fn local(task_count: usize) -> Self {
        Self {
            own: 0,
            peer_of_task: vec![0; task_count + 1].into(),
        }
    }

    /// Worker `own_index` of a plan, with the plan index of the worker running each task
    /// (indexed by task id; `None` for none).
    pub(crate) fn new(own_index: usize, worker_of_task: &[Option<usize>]) -> Self {
        let peer_of_task = worker_of_task
            .iter()
            .map(|worker| match worker {
                Some(index) if *index != own_index => Self::bit(*index),
                _ => 0,
            })
            .collect();
        Self {
            own: Self::bit(own_index),
            peer_of_task,
        }
    }

    /// This worker's bit.
    #[inline]
    pub(crate) fn own(&self) -> u64 {
        self.own
    }

    /// The bit of the peer worker running `task`, 0 if it runs here.
    #[inline]
    pub(crate) fn peer_of(&self, task: TaskId) -> u64 {
        self.peer_of_task.get(task.index()).copied().unwrap_or(0)
    }

    /// The link between this worker and the peer of `peer_bit`.
    pub(crate) fn link_to(&self, peer_bit: u64) -> u64 {
        self.own | peer_bit
    }
}

/// Whether a tree that touched the workers of `tree` may have used `link` (two workers'
/// bits).
#[inline]
pub(crate) fn routed_through(tree: u64, link: u64) -> bool {
    link != 0 && tree & link == link
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_have_bits_and_local_tasks_none() {
        let workers = TreeWorkers::new(1, &[None, Some(0), Some(1), Some(2), Some(66)]);
        assert_eq!(workers.own(), 0b10);
        let bits: Vec<u64> = (0..5).map(|task| workers.peer_of(TaskId(task))).collect();
        assert_eq!(bits, [0, 0b1, 0, 0b100, 0b100], "worker 66 shares bit 2");
        assert_eq!(workers.link_to(0b100), 0b110);
        assert_eq!(TreeWorkers::local(3).own(), 0);
    }

    #[test]
    fn a_tree_used_a_link_when_it_touched_both_ends() {
        let (a, b, c) = (1, 2, 4);
        assert!(routed_through(a | b | c, b | c));
        assert!(!routed_through(a | b, b | c));
        assert!(!routed_through(0, 0), "no link, nothing through it");
    }
}
