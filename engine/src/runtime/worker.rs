//! Starting the executors of one worker: threads, the rings between them, routes, metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use squall_ringbuf::record::heap_ring;

use super::control::Control;
use super::emitter::Route;
use super::plan::{ThreadPlan, on_cycle, plan_threads};
use super::ports::OutputPort;
use super::running::{RingInfo, RunningTopology};
use super::thread::{ExecutorThread, InputPort, ThreadSetup};
use crate::ids::TaskId;
use crate::metrics::{RingCounters, SharedTaskMetrics};
use crate::topology::{ComponentKind, Topology};

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The operating system refused a thread.
    #[error("could not start executor thread {thread} of topology {topology:?}: {source}")]
    Spawn {
        /// The topology.
        topology: String,
        /// The thread's index.
        thread: usize,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Which plane a ring carries: acker traffic is kept apart from data so that acks always
/// flow, even while data backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Plane {
    Data,
    Control,
}

/// Starts every executor of `topology` in this process (local mode).
pub(crate) fn start_local(topology: Arc<Topology>) -> Result<RunningTopology, StartError> {
    let executors: Vec<usize> = (0..topology.executors().len()).collect();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let config = topology.config();
    let plan = plan_threads(
        &topology,
        &executors,
        config.chaining,
        config.pinning,
        cores.len().max(1),
    );
    start_threads(topology, plan, &cores)
}

fn start_threads(
    topology: Arc<Topology>,
    plan: ThreadPlan,
    cores: &[core_affinity::CoreId],
) -> Result<RunningTopology, StartError> {
    let started = Instant::now();
    let thread_count = plan.threads.len();
    let mut thread_of_task = vec![usize::MAX; topology.task_count() + 1];
    let mut worker_tasks = Vec::new();
    for (thread, executors) in plan.threads.iter().enumerate() {
        for &executor in executors {
            for task in topology.executors()[executor].tasks.clone() {
                thread_of_task[task as usize] = thread;
                worker_tasks.push(TaskId(task));
            }
        }
    }
    worker_tasks.sort_unstable();
    let worker_tasks: Arc<[TaskId]> = worker_tasks.into();
    let edges = thread_edges(&topology, &plan, &thread_of_task);

    let config = topology.config();
    let doorbells: Vec<_> = (0..thread_count)
        .map(|_| config.wait_strategy.build())
        .collect();
    let mut ports: Vec<Vec<OutputPort>> = (0..thread_count).map(|_| Vec::new()).collect();
    let mut port_index: BTreeMap<(usize, usize, Plane), u16> = BTreeMap::new();
    let mut data_inputs: Vec<Vec<InputPort>> = (0..thread_count).map(|_| Vec::new()).collect();
    let mut control_inputs: Vec<Vec<InputPort>> = (0..thread_count).map(|_| Vec::new()).collect();
    let mut rings = Vec::new();
    let control_ring_bytes = control_ring_bytes(&topology);
    for &(from, to, plane) in &edges {
        let bytes = match plane {
            Plane::Data => config.ring_bytes,
            Plane::Control => control_ring_bytes,
        };
        let (producer, consumer) = heap_ring(bytes);
        let counters = Arc::new(RingCounters::default());
        port_index.insert((from, to, plane), ports[from].len() as u16);
        ports[from].push(OutputPort::new(
            producer,
            Arc::clone(&doorbells[to]),
            Arc::clone(&counters),
        ));
        let input = InputPort {
            consumer,
            counters: Arc::clone(&counters),
            consumed: 0,
        };
        match plane {
            Plane::Data => data_inputs[to].push(input),
            Plane::Control => control_inputs[to].push(input),
        }
        rings.push(RingInfo { from, to, counters });
    }
    let data_edges: Vec<(usize, usize)> = edges
        .iter()
        .filter(|(_, _, plane)| *plane == Plane::Data)
        .map(|&(from, to, _)| (from, to))
        .collect();
    let cyclic = on_cycle(thread_count, &data_edges);
    if cyclic.iter().any(|&on| on) {
        tracing::warn!(
            topology = topology.name(),
            "the data flow has a cycle: threads on it keep reading input while their outputs \
             are full, so backpressure cannot bound it"
        );
    }

    let control = Arc::new(Control::new(topology.name().to_owned(), thread_count));
    control.set_doorbells(doorbells.clone());
    if plan.pinned {
        tracing::info!(
            topology = topology.name(),
            threads = thread_count,
            "executor threads pinned, one per core"
        );
    } else {
        tracing::info!(
            topology = topology.name(),
            threads = thread_count,
            cores = cores.len(),
            "executor threads not pinned: more threads than cores (or pinning off); the scheduler spreads them"
        );
    }

    let mut metrics = Vec::new();
    let mut handles = Vec::with_capacity(thread_count);
    let mut seeds = fastrand::Rng::new();
    for (thread, ((ports, data_inputs), control_inputs)) in ports
        .into_iter()
        .zip(data_inputs)
        .zip(control_inputs)
        .enumerate()
    {
        let routes: Box<[Route]> = thread_of_task
            .iter()
            .enumerate()
            .map(|(task, &target_thread)| {
                if task == 0 || target_thread == usize::MAX {
                    Route::Nowhere
                } else if target_thread == thread {
                    Route::Local
                } else {
                    let plane = plane_of(&topology, TaskId(task as u32));
                    port_index
                        .get(&(thread, target_thread, plane))
                        .map_or(Route::Nowhere, |&port| Route::Port(port))
                }
            })
            .collect();
        let tasks: Vec<(TaskId, Arc<SharedTaskMetrics>)> = plan.threads[thread]
            .iter()
            .flat_map(|&executor| topology.executors()[executor].tasks.clone())
            .map(|task| {
                let component = topology.component_of(TaskId(task)).expect("task").index();
                let shared = Arc::new(SharedTaskMetrics::new(TaskId(task), component));
                metrics.push(Arc::clone(&shared));
                (TaskId(task), shared)
            })
            .collect();
        let (local_producer, local_input) = heap_ring(config.ring_bytes);
        let local_output = OutputPort::new(
            local_producer,
            Arc::clone(&doorbells[thread]),
            Arc::new(RingCounters::default()),
        );
        let setup = ThreadSetup {
            index: thread,
            topology: Arc::clone(&topology),
            control: Arc::clone(&control),
            doorbell: Arc::clone(&doorbells[thread]),
            tasks,
            routes,
            ports,
            local_output,
            local_input,
            data_inputs,
            control_inputs,
            read_while_backlogged: cyclic[thread],
            worker_tasks: Arc::clone(&worker_tasks),
            core: plan.pinned.then(|| cores.get(thread).copied()).flatten(),
            started,
            seed: seeds.u64(..),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("squall-exec-{thread}"))
            .spawn(move || ExecutorThread::new(setup).run());
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(source) => {
                control.set_state(super::control::TopologyState::Stopping);
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(StartError::Spawn {
                    topology: topology.name().to_owned(),
                    thread,
                    source,
                });
            }
        }
    }
    metrics.sort_by_key(|shared| shared.task);
    Ok(RunningTopology::new(
        topology,
        control,
        handles,
        metrics,
        rings,
        started,
        plan.pinned,
    ))
}

/// Bytes of each control ring: with a pending limit, enough for every tree in flight to
/// have an acker message queued at once, so acker traffic rarely needs an overflow buffer.
fn control_ring_bytes(topology: &Topology) -> usize {
    /// Ring bytes one acker message takes: ring header, tuple header, two u64 fields.
    const ACKER_MESSAGE_BYTES: usize = 8 + 16 + 2 * 9 + 6;
    let config = topology.config();
    let spout_tasks: usize = topology
        .components()
        .iter()
        .filter(|component| component.kind() == ComponentKind::Spout)
        .map(|component| component.task_count())
        .sum();
    let in_flight = config.max_spout_pending.unwrap_or(0) as usize * spout_tasks;
    config
        .ring_bytes
        .max((2 * in_flight * ACKER_MESSAGE_BYTES).min(64 << 20))
}

/// The plane that records for `task` travel on.
fn plane_of(topology: &Topology, task: TaskId) -> Plane {
    match topology
        .component_of(task)
        .map(|component| component.kind())
    {
        Some(ComponentKind::Spout | ComponentKind::Acker) => Plane::Control,
        _ => Plane::Data,
    }
}

/// Every (from thread, to thread, plane) that needs a ring.
fn thread_edges(
    topology: &Topology,
    plan: &ThreadPlan,
    thread_of_task: &[usize],
) -> Vec<(usize, usize, Plane)> {
    let mut edges = std::collections::BTreeSet::new();
    let link = |from: usize, task: u32, edges: &mut std::collections::BTreeSet<_>| {
        let to = thread_of_task[task as usize];
        if to != usize::MAX && to != from {
            edges.insert((from, to, plane_of(topology, TaskId(task))));
        }
    };
    let spouts: Vec<u32> = topology
        .components()
        .iter()
        .filter(|component| component.kind() == ComponentKind::Spout)
        .flat_map(|component| component.task_ids().map(|task| task.0))
        .collect();
    let ackers: Vec<u32> = topology
        .acker()
        .map(|acker| acker.task_ids().map(|task| task.0).collect())
        .unwrap_or_default();
    for (from, executors) in plan.threads.iter().enumerate() {
        for &executor in executors {
            let component = &topology.components()[topology.executors()[executor].component];
            for stream in component.outputs() {
                let info = topology.stream(*stream).expect("declared stream");
                for subscriber in &info.subscribers {
                    for task in topology.components()[subscriber.component].task_ids() {
                        link(from, task.0, &mut edges);
                    }
                }
            }
            match component.kind() {
                ComponentKind::Spout | ComponentKind::Bolt => {
                    for &acker in &ackers {
                        link(from, acker, &mut edges);
                    }
                }
                ComponentKind::Acker => {
                    for &spout in &spouts {
                        link(from, spout, &mut edges);
                    }
                }
            }
        }
    }
    edges.into_iter().collect()
}
