//! Which executors share which thread, and whether threads are pinned: a pure decision over
//! the topology and the machine, unit-tested without threads.

use crate::config::{Chaining, Pinning};
use crate::topology::{ComponentKind, Topology};

/// The threads of one worker, each a list of executor indices (into
/// [`Topology::executors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThreadPlacement {
    pub(crate) threads: Vec<Vec<usize>>,
    /// Core index of each thread, when pinned.
    pub(crate) pinned: bool,
}

/// Components in topological order of the data flow (sources first; components on a cycle
/// in index order after the rest), the acker last.
pub(crate) fn topological_order(topology: &Topology) -> Vec<usize> {
    let components = topology.components();
    let mut incoming: Vec<usize> = components.iter().map(|c| c.inputs().len()).collect();
    let mut order = Vec::with_capacity(components.len());
    let mut ready: Vec<usize> = (0..components.len())
        .rev()
        .filter(|&index| incoming[index] == 0 && components[index].kind() != ComponentKind::Acker)
        .collect();
    let mut placed = vec![false; components.len()];
    loop {
        while let Some(index) = ready.pop() {
            if placed[index] {
                continue;
            }
            placed[index] = true;
            order.push(index);
            for stream in components[index].outputs() {
                let info = topology.stream(*stream).expect("declared stream");
                for subscriber in &info.subscribers {
                    incoming[subscriber.component] -= 1;
                    if incoming[subscriber.component] == 0 {
                        ready.push(subscriber.component);
                    }
                }
            }
        }
        // Whatever is left sits on a cycle: release the first such component and go on.
        match (0..components.len())
            .find(|&index| !placed[index] && components[index].kind() != ComponentKind::Acker)
        {
            Some(index) => ready.push(index),
            None => break,
        }
    }
    order.extend((0..components.len()).filter(|&index| !placed[index]));
    order
}

/// Groups `executors` (indices into the topology's executors, all run by this worker) into
/// threads for a machine with `cores` cores.
///
/// Executors are laid out in topological order of their components and cut into contiguous
/// runs, so records only flow from a thread to itself or to a later one (for acyclic
/// topologies) and no two threads wait on each other's data.
///
/// The runs are balanced by component, not by executor: each component weighs the same,
/// shared among its executors, since a component's parallelism divides its work rather
/// than adding to it. A spout with sixteen counters after it on two threads gets a thread
/// of its own, rather than sharing it with eight of the counters.
pub(crate) fn place_threads(
    topology: &Topology,
    executors: &[usize],
    chaining: Chaining,
    pinning: Pinning,
    cores: usize,
) -> ThreadPlacement {
    let order = topological_order(topology);
    let mut rank = vec![0; topology.components().len()];
    for (position, component) in order.iter().enumerate() {
        rank[*component] = position;
    }
    let mut sorted = executors.to_vec();
    sorted.sort_by_key(|&executor| (rank[topology.executors()[executor].component], executor));
    let cores = cores.max(1);
    if let Chaining::Lanes(lanes) = chaining {
        return place_in_lanes(topology, &sorted, lanes, pinning, cores);
    }
    let thread_count = match chaining {
        Chaining::Never => sorted.len(),
        Chaining::Threads(threads) => threads.clamp(1, sorted.len().max(1)),
        Chaining::Auto | Chaining::Lanes(_) => sorted.len().min(cores),
    }
    .max(1);
    let mut threads = vec![Vec::new(); thread_count];
    if thread_count >= sorted.len() {
        for (thread, &executor) in threads.iter_mut().zip(&sorted) {
            thread.push(executor);
        }
    } else {
        let mut executors_of = vec![0usize; topology.components().len()];
        for &executor in &sorted {
            executors_of[topology.executors()[executor].component] += 1;
        }
        // An acker weighs nothing: it only xors the reports of acks into a table, and placed
        // last, with the components whose acks end the trees, it applies those acks without
        // a record. Weighed as a component it took a thread's share from the bolts, and
        // chained a spout with the bolt after it on a thread of its own.
        let weight_of = |executor: usize| {
            let component = topology.executors()[executor].component;
            if topology.components()[component].kind() == ComponentKind::Acker {
                0.0
            } else {
                1.0 / executors_of[component] as f64
            }
        };
        // Fill the threads in turn, each up to an equal share of the weight still unplaced;
        // an executor joins the current thread while more than half of it fits inside the
        // share (a tie goes to the later thread, which has fewer records to emit), and one
        // that weighs nothing never opens a thread.
        let mut remaining: f64 = sorted.iter().map(|&executor| weight_of(executor)).sum();
        let mut thread = 0;
        let mut filled = 0.0;
        let mut share = remaining / thread_count as f64;
        for &executor in &sorted {
            let weight = weight_of(executor);
            let fits = weight == 0.0 || filled + weight / 2.0 < share;
            if !threads[thread].is_empty() && !fits && thread + 1 < thread_count {
                remaining -= filled;
                thread += 1;
                filled = 0.0;
                share = remaining / (thread_count - thread) as f64;
            }
            threads[thread].push(executor);
            filled += weight;
        }
    }
    threads.retain(|thread| !thread.is_empty());
    let pinned = pinning == Pinning::Auto && threads.len() <= cores;
    ThreadPlacement { threads, pinned }
}

/// Whether each node of a directed graph (edges as pairs) lies on a cycle.
/// [`Chaining::Lanes`]: the k-th of a component's executors (in `sorted`, which lists each
/// component's executors together, in flow order) goes to thread `k mod lanes`.
fn place_in_lanes(
    topology: &Topology,
    sorted: &[usize],
    lanes: usize,
    pinning: Pinning,
    cores: usize,
) -> ThreadPlacement {
    let lanes = lanes.clamp(1, sorted.len().max(1));
    let mut threads = vec![Vec::new(); lanes];
    let mut previous_component = None;
    let mut instance = 0;
    for &executor in sorted {
        let component = topology.executors()[executor].component;
        if previous_component != Some(component) {
            previous_component = Some(component);
            instance = 0;
        }
        threads[instance % lanes].push(executor);
        instance += 1;
    }
    threads.retain(|thread| !thread.is_empty());
    let pinned = pinning == Pinning::Auto && threads.len() <= cores;
    ThreadPlacement { threads, pinned }
}

pub(crate) fn on_cycle(nodes: usize, edges: &[(usize, usize)]) -> Vec<bool> {
    let mut adjacency = vec![Vec::new(); nodes];
    for &(from, to) in edges {
        if from != to {
            adjacency[from].push(to);
        }
    }
    (0..nodes)
        .map(|start| {
            let mut seen = vec![false; nodes];
            let mut stack = adjacency[start].clone();
            while let Some(node) = stack.pop() {
                if node == start {
                    return true;
                }
                if !std::mem::replace(&mut seen[node], true) {
                    stack.extend(&adjacency[node]);
                }
            }
            false
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NullBolt, NullSpout};
    use crate::{TopologyBuilder, TopologyConfig};

    fn pipeline(ackers: usize) -> std::sync::Arc<Topology> {
        let mut builder = TopologyBuilder::new();
        // Ids chosen so that id order differs from data-flow order.
        builder
            .set_bolt("a-sink", || NullBolt, 1)
            .shuffle_grouping("m-middle");
        builder
            .set_bolt("m-middle", || NullBolt::declaring(&["x"]), 2)
            .shuffle_grouping("z-source");
        builder.set_spout("z-source", || NullSpout::declaring(&["x"]), 1);
        builder
            .build("plan", TopologyConfig::default().with_ackers(ackers))
            .unwrap()
    }

    #[test]
    fn components_are_ordered_by_data_flow_with_the_acker_last() {
        let topology = pipeline(1);
        let ids: Vec<&str> = topological_order(&topology)
            .into_iter()
            .map(|index| topology.components()[index].id())
            .collect();
        assert_eq!(ids, ["z-source", "m-middle", "a-sink", "__acker"]);
    }

    #[test]
    fn executors_get_their_own_threads_when_cores_suffice() {
        let topology = pipeline(0);
        let all: Vec<usize> = (0..topology.executors().len()).collect();
        let plan = place_threads(&topology, &all, Chaining::Auto, Pinning::Auto, 8);
        assert_eq!(plan.threads.len(), 4);
        assert!(plan.pinned);
    }

    /// The component of each executor of each thread of `plan`.
    fn components_by_thread<'t>(
        topology: &'t Topology,
        plan: &ThreadPlacement,
    ) -> Vec<Vec<&'t str>> {
        plan.threads
            .iter()
            .map(|thread| {
                thread
                    .iter()
                    .map(|&executor| {
                        topology.components()[topology.executors()[executor].component].id()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn lanes_give_every_thread_an_instance_of_each_component() {
        let mut builder = TopologyBuilder::new();
        builder.set_spout("source", || NullSpout::declaring(&["x"]), 2);
        builder
            .set_bolt("count", || NullBolt, 2)
            .fields_grouping("source", &["x"]);
        let topology = builder
            .build("lanes", TopologyConfig::default().with_ackers(1))
            .unwrap();
        let all: Vec<usize> = (0..topology.executors().len()).collect();
        let plan = place_threads(&topology, &all, Chaining::Lanes(2), Pinning::Auto, 2);
        let components = components_by_thread(&topology, &plan);
        assert_eq!(
            components,
            [vec!["source", "count", "__acker"], vec!["source", "count"]]
        );
        assert!(plan.pinned);
    }

    #[test]
    fn scarce_cores_chain_contiguous_runs_in_flow_order() {
        let topology = pipeline(1);
        let all: Vec<usize> = (0..topology.executors().len()).collect();
        let plan = place_threads(&topology, &all, Chaining::Auto, Pinning::Auto, 2);
        let components = components_by_thread(&topology, &plan);
        assert_eq!(
            components,
            [
                vec!["z-source", "m-middle"],
                vec!["m-middle", "a-sink", "__acker"]
            ]
        );
        assert!(plan.pinned);
        let never = place_threads(&topology, &all, Chaining::Never, Pinning::Auto, 2);
        assert_eq!(never.threads.len(), 5);
        assert!(!never.pinned, "more threads than cores are left unpinned");
    }

    #[test]
    fn parallelism_divides_a_components_weight_rather_than_adding_to_it() {
        let mut builder = TopologyBuilder::new();
        builder.set_spout("source", || NullSpout::declaring(&["x"]), 1);
        builder
            .set_bolt("count", || NullBolt, 16)
            .fields_grouping("source", &["x"]);
        let topology = builder
            .build("wide", TopologyConfig::default().with_ackers(0))
            .unwrap();
        let all: Vec<usize> = (0..topology.executors().len()).collect();
        let plan = place_threads(&topology, &all, Chaining::Auto, Pinning::Auto, 2);
        let components = components_by_thread(&topology, &plan);
        assert_eq!(components[0], ["source"]);
        assert_eq!(components[1], ["count"; 16]);
        let three = place_threads(&topology, &all, Chaining::Threads(3), Pinning::Auto, 2);
        let sizes: Vec<usize> = three.threads.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 8, 8], "the counters share the threads left");
    }

    /// A spout, a middle bolt and a sink, one executor each, with `ackers` ackers.
    fn chain(ackers: usize) -> std::sync::Arc<Topology> {
        let mut builder = TopologyBuilder::new();
        builder.set_spout("source", || NullSpout::declaring(&["x"]), 1);
        builder
            .set_bolt("middle", || NullBolt::declaring(&["x"]), 1)
            .shuffle_grouping("source");
        builder
            .set_bolt("sink", || NullBolt, 1)
            .shuffle_grouping("middle");
        builder
            .build("chain", TopologyConfig::default().with_ackers(ackers))
            .unwrap()
    }

    #[test]
    fn a_tie_goes_to_the_later_thread() {
        let topology = chain(0);
        let all: Vec<usize> = (0..topology.executors().len()).collect();
        let plan = place_threads(&topology, &all, Chaining::Auto, Pinning::Auto, 2);
        let components = components_by_thread(&topology, &plan);
        assert_eq!(components, [vec!["source"], vec!["middle", "sink"]]);
    }

    #[test]
    fn the_acker_weighs_nothing_and_joins_the_last_thread() {
        let place = |topology: &Topology, threads: usize| {
            let all: Vec<usize> = (0..topology.executors().len()).collect();
            let plan = place_threads(topology, &all, Chaining::Threads(threads), Pinning::Auto, 2);
            components_by_thread(topology, &plan)
                .into_iter()
                .map(|thread| thread.into_iter().map(str::to_owned).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            place(&chain(1), 2),
            [vec!["source"], vec!["middle", "sink", "__acker"]],
            "split as without acking"
        );
        assert_eq!(
            place(&chain(2), 3),
            [
                vec!["source"],
                vec!["middle"],
                vec!["sink", "__acker", "__acker"]
            ],
            "ackers open no thread of their own"
        );
    }

    #[test]
    fn cycles_are_found() {
        assert_eq!(on_cycle(3, &[(0, 1), (1, 2)]), [false, false, false]);
        assert_eq!(
            on_cycle(3, &[(0, 1), (1, 2), (2, 1), (1, 1)]),
            [false, true, true]
        );
    }
}
