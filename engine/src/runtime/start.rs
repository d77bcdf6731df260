//! Starting the executors of one worker: threads, the rings between them, routes, metrics —
//! and, in a cluster, the links to the transport for tasks of other workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use squall_net::WorkerId;
use squall_ringbuf::WaitStrategy;
use squall_ringbuf::record::{RecordProducer, heap_ring};

use super::carrier::PeerCarrier;
use super::congestion::{components_on_cycle, reach_of_components};
use super::outputs::{Outputs, Route};
use super::placement::{ThreadPlacement, on_cycle, place_threads};
use super::ports::OutputPort;
use super::run_state::RunState;
use super::running::{RingInfo, RunningTopology};
use super::thread::{ExecutorThread, InputPort, ThreadSetup};
use super::tree_workers::TreeWorkers;
use crate::ids::TaskId;
use crate::metrics::{RingCounters, SharedInputCounts, SharedTaskMetrics, TaskPlacement};
use crate::topology::{ComponentKind, Topology};

/// What every executor thread's name starts with; the thread's index in its worker follows.
/// Tools find the executors among a process's threads by it (e.g. `squall-bench` reads
/// how long they waited for a core).
pub const EXECUTOR_THREAD_NAME_PREFIX: &str = "squall-exec-";

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
    /// The transport refused an outbound ring.
    #[error("could not open an outbound ring to {peer} for topology {topology:?}: {source}")]
    Transport {
        /// The topology.
        topology: String,
        /// The peer worker.
        peer: WorkerId,
        /// What the transport said.
        source: squall_net::transport::TransportError,
    },
}

/// Which plane a ring carries: acker traffic is kept apart from data so that acks always
/// flow, even while data backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Plane {
    Data,
    Ack,
}

/// The plane that records for `task` travel on.
pub(crate) fn plane_of(topology: &Topology, task: TaskId) -> Plane {
    match topology
        .component_of(task)
        .map(|component| component.kind())
    {
        Some(ComponentKind::Spout | ComponentKind::Acker) => Plane::Ack,
        _ => Plane::Data,
    }
}

/// Where each task of the topology runs, as seen from one worker.
#[derive(Clone)]
pub(crate) struct Layout {
    pub(crate) plan: ThreadPlacement,
    /// Thread of each local task, indexed by task id (`usize::MAX`: not local).
    pub(crate) thread_of_task: Vec<usize>,
    /// Peer worker of each task that runs elsewhere, indexed by task id.
    pub(crate) peer_of_task: Vec<Option<WorkerId>>,
    /// The local tasks, ascending.
    pub(crate) worker_tasks: Arc<[TaskId]>,
    /// One doorbell per thread, rung by whoever gives it input.
    pub(crate) doorbells: Vec<Arc<dyn WaitStrategy>>,
    /// The worker bits of trees; none in local mode (see `tree_workers`).
    pub(crate) tree_workers: TreeWorkers,
}

impl Layout {
    /// The layout of a worker running `executors` of `topology`, the others running on the
    /// peers given by `peer_of_executor` (empty in local mode).
    pub(crate) fn new(
        topology: &Topology,
        executors: &[usize],
        peer_of_executor: &BTreeMap<usize, WorkerId>,
        cores: usize,
    ) -> Self {
        let config = topology.config();
        let plan = place_threads(topology, executors, config.chaining, config.pinning, cores);
        let mut thread_of_task = vec![usize::MAX; topology.task_count() + 1];
        let mut worker_tasks = Vec::new();
        for (thread, executors) in plan.threads.iter().enumerate() {
            for &executor in executors {
                for task in topology.executors()[executor].task_ids() {
                    thread_of_task[task.index()] = thread;
                    worker_tasks.push(task);
                }
            }
        }
        worker_tasks.sort_unstable();
        let mut peer_of_task = vec![None; topology.task_count() + 1];
        for (&executor, &peer) in peer_of_executor {
            for task in topology.executors()[executor].task_ids() {
                peer_of_task[task.index()] = Some(peer);
            }
        }
        let doorbells = (0..plan.threads.len())
            .map(|_| config.wait_strategy.build())
            .collect();
        Self {
            plan,
            thread_of_task,
            peer_of_task,
            worker_tasks: worker_tasks.into(),
            doorbells,
            tree_workers: TreeWorkers::local(topology.task_count()),
        }
    }

    pub(crate) fn thread_count(&self) -> usize {
        self.plan.threads.len()
    }
}

/// The rings that bring records from the transport to each thread of this worker: the
/// producing ends go to the transport's inbound sink.
pub(crate) struct InboundRings {
    /// Per thread: (data ring, ack ring) producing ends, with their counters; taken by
    /// [`producers_for_sink`](Self::producers_for_sink).
    producers: Vec<[(RecordProducer, Arc<RingCounters>); 2]>,
    /// Per thread: (data ring, ack ring) consuming ends.
    consumers: Vec<[InputPort; 2]>,
}

impl InboundRings {
    /// The producing ends, for the transport's inbound sink.
    pub(crate) fn producers_for_sink(&mut self) -> Vec<[(RecordProducer, Arc<RingCounters>); 2]> {
        std::mem::take(&mut self.producers)
    }

    pub(crate) fn new(threads: usize, data_bytes: usize, ack_bytes: usize) -> Self {
        let ring = |bytes: usize| {
            let (producer, consumer) = heap_ring(bytes);
            let counters = Arc::new(RingCounters::default());
            let input = InputPort {
                consumer,
                counters: Arc::clone(&counters),
                consumed: 0,
                producer: None,
            };
            ((producer, counters), input)
        };
        let (producers, consumers) = (0..threads)
            .map(|_| {
                let (data_producer, data_input) = ring(data_bytes);
                let (ack_producer, ack_input) = ring(ack_bytes);
                ([data_producer, ack_producer], [data_input, ack_input])
            })
            .unzip();
        Self {
            producers,
            consumers,
        }
    }
}

/// How the worker reaches its peers.
pub(crate) struct RemoteLinks {
    pub(crate) carrier: Arc<dyn PeerCarrier>,
    pub(crate) inbound: InboundRings,
}

/// Starts every executor of `topology` in this process (local mode).
pub(crate) fn start_local(topology: Arc<Topology>) -> Result<RunningTopology, StartError> {
    let executors: Vec<usize> = (0..topology.executors().len()).collect();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let layout = Layout::new(&topology, &executors, &BTreeMap::new(), cores.len().max(1));
    let run_state = Arc::new(RunState::new(
        topology.name().to_owned(),
        layout.thread_count(),
    ));
    start_threads(topology, layout, &cores, None, run_state)
}

/// Starts the threads of `layout`; with `remote`, records for tasks of other workers go to
/// the transport and records from them arrive through `remote.inbound`.
pub(crate) fn start_threads(
    topology: Arc<Topology>,
    layout: Layout,
    cores: &[core_affinity::CoreId],
    remote: Option<RemoteLinks>,
    run_state: Arc<RunState>,
) -> Result<RunningTopology, StartError> {
    let started = Instant::now();
    let thread_count = layout.thread_count();
    let edges = thread_edges(&topology, &layout);

    let config = topology.config();
    let doorbells = layout.doorbells.clone();
    let mut ports: Vec<Vec<OutputPort>> = (0..thread_count).map(|_| Vec::new()).collect();
    let mut port_index: BTreeMap<(usize, Destination), u16> = BTreeMap::new();
    let mut data_inputs: Vec<Vec<InputPort>> = (0..thread_count).map(|_| Vec::new()).collect();
    let mut ack_inputs: Vec<Vec<InputPort>> = (0..thread_count).map(|_| Vec::new()).collect();
    let mut rings = Vec::new();
    let peer_reach: Arc<[u64]> = reach_of_components(&topology, &layout.tree_workers).into();
    let on_stream_cycle = components_on_cycle(&topology);
    let ack_ring_bytes = ack_ring_bytes(&topology);
    for &(from, destination) in &edges {
        port_index.insert((from, destination), ports[from].len() as u16);
        let counters = Arc::new(RingCounters::default());
        match destination {
            Destination::Thread(to, plane) => {
                let bytes = match plane {
                    Plane::Data => config.ring_bytes,
                    Plane::Ack => ack_ring_bytes,
                };
                let (producer, consumer) = heap_ring(bytes);
                ports[from].push(OutputPort::local(
                    producer,
                    Arc::clone(&doorbells[to]),
                    Arc::clone(&counters),
                ));
                let input = InputPort {
                    consumer,
                    counters: Arc::clone(&counters),
                    consumed: 0,
                    producer: None,
                };
                match plane {
                    Plane::Data => data_inputs[to].push(input),
                    Plane::Ack => ack_inputs[to].push(input),
                }
                rings.push(RingInfo { from, to, counters });
            }
            Destination::Peer(peer) => {
                let links = remote.as_ref().expect("peers exist only with remote links");
                let outbound = links
                    .carrier
                    .open_outbound(peer, Arc::clone(&doorbells[from]))
                    .map_err(|source| StartError::Transport {
                        topology: topology.name().to_owned(),
                        peer,
                        source,
                    })?;
                let peer_bit = layout
                    .peer_of_task
                    .iter()
                    .position(|worker| *worker == Some(peer))
                    .map_or(0, |task| layout.tree_workers.peer_of(TaskId(task as u32)));
                ports[from].push(OutputPort::remote(outbound, counters, peer_bit));
            }
        }
    }
    if let Some(links) = remote {
        for (thread, [mut data, mut ack]) in links.inbound.consumers.into_iter().enumerate() {
            data.producer = Some(Arc::clone(&links.carrier));
            ack.producer = Some(Arc::clone(&links.carrier));
            data_inputs[thread].push(data);
            ack_inputs[thread].push(ack);
        }
    }
    let data_edges: Vec<(usize, usize)> = edges
        .iter()
        .filter_map(|&(from, destination)| match destination {
            Destination::Thread(to, Plane::Data) => Some((from, to)),
            _ => None,
        })
        .collect();
    let cyclic = on_cycle(thread_count, &data_edges);
    let in_lanes = matches!(
        topology.config().chaining,
        crate::config::Chaining::Lanes(_)
    );
    if cyclic.iter().any(|&on| on) && in_lanes {
        tracing::info!(
            topology = topology.name(),
            "threads exchange data both ways (lanes): they keep reading input while \
             their outputs are full, and their spouts stop, which bounds what is in flight"
        );
    } else if cyclic.iter().any(|&on| on) {
        tracing::warn!(
            topology = topology.name(),
            "the data flow has a cycle: threads on it keep reading input while their outputs \
             are full, so backpressure cannot bound it"
        );
    }

    run_state.set_doorbells(doorbells.clone());
    if layout.plan.pinned {
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
    for (thread, ((ports, data_inputs), ack_inputs)) in ports
        .into_iter()
        .zip(data_inputs)
        .zip(ack_inputs)
        .enumerate()
    {
        let routes: Box<[Route]> = (0..layout.thread_of_task.len())
            .map(|task| route(&topology, &layout, &port_index, thread, task))
            .collect();
        let core = layout
            .plan
            .pinned
            .then(|| cores.get(thread).copied())
            .flatten();
        let tasks: Vec<(TaskId, Arc<SharedTaskMetrics>)> = layout.plan.threads[thread]
            .iter()
            .flat_map(|&executor| {
                topology.executors()[executor]
                    .task_ids()
                    .map(move |task| (executor, task))
            })
            .map(|(executor, task)| {
                let component = topology.component_of(task).expect("task");
                let streams = component
                    .outputs()
                    .iter()
                    .map(|id| topology.stream(*id).expect("declared stream").name.clone())
                    .collect();
                let inputs = if component.kind() == ComponentKind::Bolt {
                    component
                        .inputs()
                        .iter()
                        .filter_map(|input| {
                            let stream = topology.stream(input.stream)?;
                            Some(SharedInputCounts::new(
                                input.stream.0,
                                topology.components()[input.source].id().to_owned(),
                                stream.name.clone(),
                            ))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let placement = TaskPlacement {
                    executor,
                    thread,
                    core: core.map(|core| core.id),
                };
                let shared = Arc::new(SharedTaskMetrics::new(
                    task,
                    component.index(),
                    placement,
                    streams,
                    inputs,
                ));
                metrics.push(Arc::clone(&shared));
                (task, shared)
            })
            .collect();
        let (local_producer, local_input) = heap_ring(config.ring_bytes);
        let local_output = OutputPort::local(
            local_producer,
            Arc::clone(&doorbells[thread]),
            Arc::new(RingCounters::default()),
        );
        // Bytes of overflow to one peer past which the thread stops reading: never for a
        // thread on a cycle of the data graph (see `congestion`).
        let overflow_limit = if layout.plan.threads[thread]
            .iter()
            .any(|&executor| on_stream_cycle[topology.executors()[executor].component])
        {
            usize::MAX
        } else {
            config.peer_overflow_bytes
        };
        let setup = ThreadSetup {
            index: thread,
            topology: Arc::clone(&topology),
            run_state: Arc::clone(&run_state),
            doorbell: Arc::clone(&doorbells[thread]),
            tasks,
            outputs: Outputs::new(routes, ports, local_output, overflow_limit),
            local_input,
            data_inputs,
            ack_inputs,
            read_while_backlogged: cyclic[thread],
            peer_reach: Arc::clone(&peer_reach),
            worker_tasks: Arc::clone(&layout.worker_tasks),
            tree_workers: layout.tree_workers.clone(),
            core,
            started,
            seed: seeds.u64(..),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("{EXECUTOR_THREAD_NAME_PREFIX}{thread}"))
            .spawn(move || ExecutorThread::new(setup).run());
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(source) => {
                run_state.set_state(super::run_state::TopologyState::Stopping);
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
        run_state,
        handles,
        metrics,
        rings,
        started,
        layout.plan.pinned,
    ))
}

/// Where records for `task` go from `thread`.
fn route(
    topology: &Topology,
    layout: &Layout,
    port_index: &BTreeMap<(usize, Destination), u16>,
    thread: usize,
    task: usize,
) -> Route {
    if task == 0 {
        return Route::Nowhere;
    }
    let destination = match (layout.thread_of_task[task], layout.peer_of_task[task]) {
        (local, _) if local == thread => return Route::Local,
        (local, _) if local != usize::MAX => {
            Destination::Thread(local, plane_of(topology, TaskId(task as u32)))
        }
        (_, Some(peer)) => Destination::Peer(peer),
        (_, None) => return Route::Nowhere,
    };
    port_index
        .get(&(thread, destination))
        .map_or(Route::Nowhere, |&port| Route::Port(port))
}

/// Bytes of each ack ring: with a pending limit, enough for every tree in flight to
/// have an acker message queued at once, so acker traffic rarely needs an overflow buffer.
pub(crate) fn ack_ring_bytes(topology: &Topology) -> usize {
    /// Ring bytes one acker message takes: ring header, tuple header, three u64 fields
    /// (root, xor, workers), padding to 8.
    const ACKER_MESSAGE_BYTES: usize = 8 + 16 + 3 * 9 + 5;
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

/// Where a ring from a thread leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Destination {
    /// Another thread of this worker, on a plane.
    Thread(usize, Plane),
    /// The transport, for a peer worker.
    Peer(WorkerId),
}

/// Every (from thread, destination) that needs a ring.
fn thread_edges(topology: &Topology, layout: &Layout) -> Vec<(usize, Destination)> {
    let mut edges = BTreeSet::new();
    let mut link = |from: usize, task: TaskId| {
        let task_index = task.index();
        let to = layout.thread_of_task[task_index];
        if to == from {
            return;
        }
        if to != usize::MAX {
            edges.insert((from, Destination::Thread(to, plane_of(topology, task))));
        } else if let Some(peer) = layout.peer_of_task[task_index] {
            edges.insert((from, Destination::Peer(peer)));
        }
    };
    let spouts: Vec<TaskId> = topology
        .components()
        .iter()
        .filter(|component| component.kind() == ComponentKind::Spout)
        .flat_map(|component| component.task_ids())
        .collect();
    let ackers: Vec<TaskId> = topology
        .acker()
        .map(|acker| acker.task_ids().collect())
        .unwrap_or_default();
    for (from, executors) in layout.plan.threads.iter().enumerate() {
        for &executor in executors {
            let component = &topology.components()[topology.executors()[executor].component];
            for stream in component.outputs() {
                let info = topology.stream(*stream).expect("declared stream");
                for subscriber in &info.subscribers {
                    for task in topology.components()[subscriber.component].task_ids() {
                        link(from, task);
                    }
                }
            }
            match component.kind() {
                ComponentKind::Spout | ComponentKind::Bolt => {
                    for &acker in &ackers {
                        link(from, acker);
                    }
                }
                ComponentKind::Acker => {
                    for &spout in &spouts {
                        link(from, spout);
                    }
                }
            }
        }
    }
    edges.into_iter().collect()
}
