//! Backpressure towards peer workers: which peers are congested, which spouts feed them, and
//! which threads may stop reading when records for a peer pile up.
//!
//! Peers are named by their worker bits ([`tree_workers`](super::tree_workers)).
//!
//! A port to a peer worker whose outbound ring is full queues records in its overflow. As
//! soon as it does, the peer is *congested* for the whole worker, and every spout of the
//! worker whose tuples can reach a task on that peer (through any chain of streams) is not
//! asked for more; spouts that do not reach it keep running, on the same thread or not.
//! Once a port's overflow holds more than
//! [`peer_overflow_bytes`](crate::TopologyConfig::peer_overflow_bytes), its thread also
//! stops reading data, so records arriving from other workers for the congested peer push
//! back through the transport's credits instead of piling up — unless the thread runs a
//! component on a cycle of the topology's streams, where two workers waiting for each other
//! to read would wait forever; there, the throttled spouts alone bound what is in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::placement::on_cycle;
use super::tree_workers::TreeWorkers;
use crate::topology::{ComponentKind, Topology};

/// The peers each thread of the worker has congested ports to, and their union.
#[derive(Debug)]
pub(crate) struct PeerCongestion {
    /// Union of the threads' masks, read by spouts once per poll.
    congested: AtomicU64,
    /// Per thread: its mask. Written only when a thread's mask changes.
    by_thread: Mutex<Vec<u64>>,
}

impl PeerCongestion {
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            congested: AtomicU64::new(0),
            by_thread: Mutex::new(vec![0; threads]),
        }
    }

    /// Peers some thread has records waiting for.
    #[inline]
    pub(crate) fn congested(&self) -> u64 {
        self.congested.load(Ordering::Relaxed)
    }

    /// Sets the peers `thread` has records waiting for.
    pub(crate) fn set(&self, thread: usize, mask: u64) {
        let mut by_thread = self
            .by_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        by_thread[thread] = mask;
        let union = by_thread.iter().fold(0, |union, mask| union | mask);
        self.congested.store(union, Ordering::Relaxed);
    }
}

/// Per component, whether it lies on a cycle of the topology's streams.
pub(crate) fn components_on_cycle(topology: &Topology) -> Vec<bool> {
    on_cycle(topology.components().len(), &stream_edges(topology))
}

/// Per component, the peers (as a mask of worker bits, see
/// [`tree_workers`](super::tree_workers)) running a task its tuples can reach: its own tasks
/// elsewhere, and those of every component downstream of it.
pub(crate) fn reach_of_components(topology: &Topology, workers: &TreeWorkers) -> Vec<u64> {
    let components = topology.components();
    let own: Vec<u64> = components
        .iter()
        .map(|component| {
            component
                .task_ids()
                .fold(0, |mask, task| mask | workers.peer_of(task))
        })
        .collect();
    let mut downstream = vec![Vec::new(); components.len()];
    for (from, to) in stream_edges(topology) {
        downstream[from].push(to);
    }
    (0..components.len())
        .map(|start| {
            let mut seen = vec![false; components.len()];
            let mut stack = downstream[start].clone();
            let mut mask = 0;
            while let Some(component) = stack.pop() {
                if !std::mem::replace(&mut seen[component], true) {
                    mask |= own[component];
                    stack.extend(&downstream[component]);
                }
            }
            mask
        })
        .collect()
}

/// Component → subscribing component, for every declared data stream (acker traffic aside).
fn stream_edges(topology: &Topology) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    for (from, component) in topology.components().iter().enumerate() {
        if component.kind() == ComponentKind::Acker {
            continue;
        }
        for stream in component.outputs() {
            let info = topology.stream(*stream).expect("declared stream");
            for subscriber in &info.subscribers {
                edges.push((from, subscriber.component));
            }
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NullBolt, NullSpout};
    use crate::{TopologyBuilder, TopologyConfig};

    #[test]
    fn congestion_is_the_union_of_the_threads() {
        let congestion = PeerCongestion::new(2);
        congestion.set(0, 0b01);
        congestion.set(1, 0b10);
        assert_eq!(congestion.congested(), 0b11);
        congestion.set(0, 0);
        assert_eq!(congestion.congested(), 0b10);
        congestion.set(1, 0);
        assert_eq!(congestion.congested(), 0);
    }

    #[test]
    fn a_spout_reaches_the_peers_of_everything_downstream() {
        // a → b → c, and d alone; b's task runs on worker 0 of the plan, c's on worker 1,
        // the rest on worker 2 (this one).
        let mut builder = TopologyBuilder::new();
        builder.set_spout("a", || NullSpout::declaring(&["x"]), 1);
        builder.set_spout("d", || NullSpout::declaring(&["x"]), 1);
        builder
            .set_bolt("b", || NullBolt::declaring(&["x"]), 1)
            .shuffle_grouping("a");
        builder.set_bolt("c", || NullBolt, 1).shuffle_grouping("b");
        let topology = builder.build("reach", TopologyConfig::default()).unwrap();
        let index = |name: &str| {
            topology
                .components()
                .iter()
                .position(|component| component.id() == name)
                .unwrap()
        };
        let task_of = |name: &str| {
            topology.components()[index(name)]
                .task_ids()
                .next()
                .unwrap()
        };
        let mut worker_of_task = vec![Some(2); topology.task_count() + 1];
        worker_of_task[task_of("b").index()] = Some(0);
        worker_of_task[task_of("c").index()] = Some(1);
        let reach = reach_of_components(&topology, &TreeWorkers::new(2, &worker_of_task));
        assert_eq!(reach[index("a")], 0b11);
        assert_eq!(reach[index("b")], 0b10);
        assert_eq!(reach[index("c")], 0);
        assert_eq!(reach[index("d")], 0);
        assert!(components_on_cycle(&topology).iter().all(|&on| !on));
    }
}
