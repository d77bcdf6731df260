//! A worker process's runtime: the executors a [`WorkerPlan`] gives it, linked to the other
//! workers of the topology by a transport.
//!
//! Records for tasks of other workers leave through one outbound ring per (executor thread,
//! peer) to the transport; records from peers arrive through the transport's inbound sink
//! into each thread's data or ack ring. When the link to a peer is lost, the tuple trees
//! routed through it fail at once (`runtime::tree_workers`), so they replay without waiting
//! for their timeout; the others go on.

pub mod figures;
mod inbound;
pub mod plan;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use squall_net::transport::{
    DriverKind, InProcessHub, PeerEvent, PeerSpec, Transport, TransportConfig, TransportError,
    TransportStats,
};
use squall_net::{ClusterId, ClusterSecret, ConnectionConfig, PlanVersion, TopologyId, WorkerId};

use crate::runtime::run_state::RunState;
use crate::runtime::start::{InboundRings, Layout, RemoteLinks, ack_ring_bytes, start_threads};
use crate::runtime::tree_workers::TreeWorkers;
use crate::runtime::{KillReport, RunningTopology, StartError};
use crate::topology::{Topology, TopologyError};
use figures::{LinkFigures, WorkerFigures};
use inbound::WorkerInbound;
pub use plan::{
    ComponentDescription, TopologyDescription, WorkerHeartbeat, WorkerPlan, WorkerPlanError,
    WorkerSlot,
};

/// Why a worker could not start or follow its plan.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The plan does not fit the topology.
    #[error(
        "the plan of topology {topology:?} (version {version}) does not fit the program: {reason}"
    )]
    Plan {
        /// The topology.
        topology: String,
        /// The plan version.
        version: u64,
        /// What does not fit.
        reason: String,
    },
    /// The plan's parallelism changes are invalid for the topology.
    #[error("the plan's executor counts do not fit the topology: {0}")]
    Rebalance(#[from] TopologyError),
    /// A worker's address cannot be resolved.
    #[error("worker {worker} has an address that does not resolve: {address}")]
    Address {
        /// The worker's slot id.
        worker: String,
        /// The address.
        address: String,
    },
    /// The transport backend named in the plan is unknown.
    #[error("unknown transport {0:?}: expected auto, mio or io-uring")]
    Backend(String),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The executors failed to start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Settings of a worker beyond its plan.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The key every worker of the topology proves it knows (on a cluster, the topology's
    /// worker key).
    pub secret: ClusterSecret,
    /// Where co-located workers put their shared-memory rings; `None` keeps them on TCP.
    pub shared_memory_dir: Option<PathBuf>,
    /// Overrides the plan's transport backend.
    pub driver: Option<DriverKind>,
    /// Links this worker to the other workers of the plan through in-process rings
    /// instead of sockets: workers of one process (tests, embedders) sharing this hub.
    /// The listening socket still opens (on the plan's port) but carries nothing.
    pub in_process: Option<Arc<InProcessHub>>,
    /// Runs the links to the other workers' sockets in TLS (shared-memory and in-process
    /// links stay as they are).
    #[cfg(feature = "tls")]
    pub tls: Option<squall_net::transport::LinkTls>,
}

impl WorkerOptions {
    /// Options with `secret`, over the plan's transport, without shared memory or an
    /// in-process hub.
    pub fn new(secret: ClusterSecret) -> Self {
        Self {
            secret,
            shared_memory_dir: None,
            driver: None,
            in_process: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// What a new plan means for a running worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChange {
    /// Nothing this worker acts on changed.
    None,
    /// Peers moved to other addresses; the transport follows them.
    PeersMoved,
    /// Executors moved between workers: this worker must stop and be started again with
    /// the new plan.
    Reassigned,
}

/// The id a worker has on the wire: a fixed hash of its slot id, so it stays the same
/// whichever index the slot has in a plan.
pub fn worker_id(slot_id: &str) -> WorkerId {
    WorkerId(xxhash_rust::xxh3::xxh3_64(slot_id.as_bytes()))
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    plan: WorkerPlan,
    topology: Arc<Topology>,
    running: Option<RunningTopology>,
    transport: Option<Transport>,
    options: WorkerOptions,
    /// The plan version the transport announces and requires of new peers.
    plan_version: PlanVersion,
}

impl Worker {
    /// Starts the executors `plan` gives this worker, and the transport to its peers.
    ///
    /// # Errors
    /// When the plan does not fit the topology, an address does not resolve, or the
    /// transport or threads cannot start.
    pub fn start(
        topology: Arc<Topology>,
        plan: WorkerPlan,
        options: WorkerOptions,
    ) -> Result<Self, WorkerError> {
        let topology = if plan.parallelism.is_empty() {
            topology
        } else {
            Arc::new(topology.with_executors(&plan.parallelism)?)
        };
        plan.check_against(&topology)
            .map_err(|reason| WorkerError::Plan {
                topology: plan.topology.clone(),
                version: plan.version,
                reason,
            })?;
        let own = plan.this_slot();
        let mut peer_of_executor = BTreeMap::new();
        for (index, slot) in plan.workers.iter().enumerate() {
            if index != plan.this_worker {
                for &executor in &slot.executors {
                    peer_of_executor.insert(executor, worker_id(&slot.id));
                }
            }
        }
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut layout = Layout::new(
            &topology,
            &own.executors,
            &peer_of_executor,
            cores.len().max(1),
        );
        let mut worker_of_task = vec![None; topology.task_count() + 1];
        for (index, slot) in plan.workers.iter().enumerate() {
            for &executor in &slot.executors {
                for task in topology.executors()[executor].task_ids() {
                    worker_of_task[task.index()] = Some(index);
                }
            }
        }
        layout.tree_workers = TreeWorkers::new(plan.this_worker, &worker_of_task);
        let mut inbound = InboundRings::new(
            layout.thread_count(),
            topology.config().ring_bytes,
            ack_ring_bytes(&topology),
        );
        let run_state = Arc::new(RunState::new(
            topology.name().to_owned(),
            layout.thread_count(),
        ));
        let producers = inbound.producers_for_sink();
        let sink = WorkerInbound::new(&topology, &layout, producers);
        let plan_version = PlanVersion::new(plan.version);
        let transport = start_transport(
            &plan,
            &options,
            plan_version.clone(),
            Arc::clone(&run_state),
            sink,
        )?;
        transport.set_peers(peer_specs(&plan, &options)?)?;
        let links = RemoteLinks {
            carrier: Arc::new(transport.handle()),
            inbound,
        };
        let running = start_threads(
            Arc::clone(&topology),
            layout,
            &cores,
            Some(links),
            run_state,
        )?;
        if !plan.active {
            running.deactivate();
        }
        tracing::info!(
            topology = %plan.topology,
            version = plan.version,
            slot = %own.id,
            executors = ?own.executors,
            listening = %transport.local_addr(),
            driver = %transport.driver(),
            "worker started"
        );
        Ok(Self {
            plan,
            topology,
            running: Some(running),
            transport: Some(transport),
            options,
            plan_version,
        })
    }

    /// The topology as this worker runs it (with the plan's executor counts).
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// The running executors.
    pub fn running(&self) -> &RunningTopology {
        self.running.as_ref().expect("running until shut down")
    }

    /// The plan this worker runs.
    pub fn plan(&self) -> &WorkerPlan {
        &self.plan
    }

    /// Where the transport listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport
            .as_ref()
            .expect("running until shut down")
            .local_addr()
    }

    /// Why the transport thread died, if it did: the worker then exchanges nothing with
    /// its peers and should end (so that its supervisor starts it afresh) rather than
    /// keep reporting itself alive.
    pub fn transport_failed(&self) -> Option<String> {
        self.transport.as_ref().and_then(Transport::failure)
    }

    /// What the transport moved so far, with how often it ran out of credit.
    pub fn transport_stats(&self) -> TransportStats {
        self.transport
            .as_ref()
            .expect("running until shut down")
            .stats()
    }

    /// This worker's heartbeat, as of now; `metrics_endpoint` is where it serves its
    /// figures, if it does.
    pub fn heartbeat(&self, metrics_endpoint: Option<String>) -> WorkerHeartbeat {
        let metrics = self.running().metrics();
        let running = self.running();
        let figures = WorkerFigures::new(
            &metrics,
            LinkFigures::from(self.transport_stats()),
            &running.errors(),
        );
        let (executed, emitted) = metrics
            .tasks
            .iter()
            .fold((0, 0), |(executed, emitted), task| {
                (
                    executed + task.counters.executed,
                    emitted + task.counters.emitted,
                )
            });
        WorkerHeartbeat {
            pid: std::process::id(),
            time_ms: figures::now_ms(),
            topology_id: self.plan.topology_id.clone(),
            version: self.plan.version,
            executors: self.plan.this_slot().executors.clone(),
            executed,
            emitted,
            errors: running.error_count(),
            metrics_endpoint,
            figures,
        }
    }

    /// Follows a new plan: new peer addresses are applied at once; a change of which
    /// executors run where is reported as [`PlanChange::Reassigned`] (restart the worker).
    ///
    /// # Errors
    /// When a new address does not resolve or the transport has stopped.
    pub fn follow(&mut self, plan: WorkerPlan) -> Result<PlanChange, WorkerError> {
        let placement = |plan: &WorkerPlan| -> Vec<(String, Vec<usize>)> {
            plan.workers
                .iter()
                .map(|slot| (slot.id.clone(), slot.executors.clone()))
                .collect()
        };
        if plan.topology_id != self.plan.topology_id
            || plan.this_slot().id != self.plan.this_slot().id
            || plan.parallelism != self.plan.parallelism
            || placement(&plan) != placement(&self.plan)
        {
            return Ok(PlanChange::Reassigned);
        }
        if plan.active != self.plan.active {
            let running = self.running();
            if plan.active {
                running.activate();
            } else {
                running.deactivate();
            }
        }
        let addresses = |plan: &WorkerPlan| -> Vec<(String, u16)> {
            plan.workers
                .iter()
                .map(|slot| (slot.host.clone(), slot.port))
                .collect()
        };
        let moved = addresses(&plan) != addresses(&self.plan);
        if moved {
            let peers = peer_specs(&plan, &self.options)?;
            self.transport
                .as_ref()
                .expect("running until shut down")
                .set_peers(peers)?;
        }
        self.plan_version.raise_to(plan.version);
        self.plan = plan;
        Ok(if moved {
            PlanChange::PeersMoved
        } else {
            PlanChange::None
        })
    }

    /// Deactivates the spouts, lets what is in flight drain for up to `drain`, stops the
    /// executors, then closes every connection.
    pub fn shutdown(mut self, drain: Duration) -> KillReport {
        let report = self
            .running
            .take()
            .expect("running until shut down")
            .kill(drain);
        if let Some(transport) = self.transport.take()
            && let Err(error) = transport.shutdown()
        {
            tracing::warn!("transport stopped with an error: {error}");
        }
        report
    }
}

fn start_transport(
    plan: &WorkerPlan,
    options: &WorkerOptions,
    plan_version: PlanVersion,
    run_state: Arc<RunState>,
    sink: WorkerInbound,
) -> Result<Transport, WorkerError> {
    let own = plan.this_slot();
    let connection = ConnectionConfig::new(
        ClusterId::from_name(&plan.cluster_id),
        worker_id(&own.id),
        options.secret.clone(),
    )
    .with_topology(TopologyId::from_name(&plan.topology_id), plan_version);
    let listen = SocketAddr::from(([0, 0, 0, 0], own.port));
    let driver = match options.driver {
        Some(driver) => driver,
        None => plan
            .transport
            .parse::<DriverKind>()
            .map_err(|_| WorkerError::Backend(plan.transport.clone()))?,
    };
    let mut config = TransportConfig::new(connection, listen).with_driver(driver);
    if let Some(dir) = &options.shared_memory_dir {
        config = config.with_shm(dir, SHARED_MEMORY_RING_BYTES);
    }
    if let Some(hub) = &options.in_process {
        config = config.with_in_process(Arc::clone(hub));
    }
    #[cfg(feature = "tls")]
    if let Some(tls) = &options.tls {
        config = config.with_tls(tls.clone());
    }
    let names: BTreeMap<WorkerId, (String, u64)> = plan
        .workers
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            let bit = TreeWorkers::bit(index);
            (worker_id(&slot.id), (slot.id.clone(), bit))
        })
        .collect();
    let on_event = move |event: PeerEvent| match event {
        PeerEvent::Up { peer, remote } => {
            let name = names.get(&peer).map_or("?", |(name, _)| name.as_str());
            tracing::info!(peer = name, %remote, "peer worker connected");
        }
        PeerEvent::Down { peer, reason } => {
            let Some((name, bit)) = names.get(&peer) else {
                tracing::warn!(%peer, %reason, "a worker outside the plan left");
                return;
            };
            tracing::warn!(
                peer = name.as_str(),
                %reason,
                "link to a peer worker lost: failing the trees routed through it"
            );
            run_state.peer_lost(*bit);
        }
        PeerEvent::Rejected { remote, reason } => {
            tracing::warn!(%remote, %reason, "connection refused");
        }
    };
    Ok(Transport::start(config, sink, on_event)?)
}

/// Data bytes of each shared-memory ring between co-located workers.
const SHARED_MEMORY_RING_BYTES: usize = 64 << 20;

fn peer_specs(plan: &WorkerPlan, options: &WorkerOptions) -> Result<Vec<PeerSpec>, WorkerError> {
    let own = plan.this_slot();
    plan.workers
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != plan.this_worker)
        .map(|(_, slot)| {
            let id = worker_id(&slot.id);
            if options.in_process.is_some() {
                return Ok(PeerSpec::in_process(id));
            }
            if options.shared_memory_dir.is_some() && slot.host == own.host {
                return Ok(PeerSpec::shared_memory(id));
            }
            let address = format!("{}:{}", slot.host, slot.port);
            let resolved = address
                .to_socket_addrs()
                .ok()
                .and_then(|mut addresses| addresses.next())
                .ok_or_else(|| WorkerError::Address {
                    worker: slot.id.clone(),
                    address: address.clone(),
                })?;
            Ok(PeerSpec::tcp(id, resolved))
        })
        .collect()
}
