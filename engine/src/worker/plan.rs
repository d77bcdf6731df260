//! The contract between the control plane and worker processes.
//!
//! # Launching a worker
//!
//! A supervisor starts a worker as `<program> worker --plan <file>`, where `<program>` is
//! the topology's own binary (Rust topologies) or the `squall` binary (topology files), the
//! working directory is the worker's own directory, and the environment holds
//! `SQUALL_WORKER_KEY` (the topology's worker key, derived from the cluster secret; never on
//! the command line, where `ps` would show it) and `SQUALL_TOPOLOGY_ID` (the topology id). A worker never receives the cluster secret
//! itself: its key proves it to the other workers of its topology and to nothing else. The plan file is JSON ([`WorkerPlan`]); the supervisor replaces it atomically
//! (write and rename) when the assignment changes, and the worker re-reads it when its
//! modification time changes, to follow peers that moved.
//!
//! # Heartbeats
//!
//! Every [`WorkerHeartbeat::INTERVAL_MS`] the worker replaces `heartbeat.json` in its working
//! directory (write and rename) with a [`WorkerHeartbeat`]. A supervisor that sees no fresh
//! heartbeat for its worker timeout treats the worker as dead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::figures::WorkerFigures;
use crate::topology::{ComponentKind, Topology};

/// Name of the heartbeat file in a worker's working directory.
pub const HEARTBEAT_FILE: &str = "heartbeat.json";

/// Name of the environment variable holding the cluster secret (daemons and clients only).
pub const SECRET_ENV: &str = "SQUALL_CLUSTER_SECRET";

/// Name of the environment variable holding a worker's per-topology key.
pub const WORKER_KEY_ENV: &str = "SQUALL_WORKER_KEY";

/// Name of the environment variable naming the topology a worker runs: what a worker's
/// components present, with the worker key, to services that derive that key themselves
/// (DRPC servers).
pub const TOPOLOGY_ID_ENV: &str = "SQUALL_TOPOLOGY_ID";

/// One worker slot of an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSlot {
    /// Stable id of the slot: `<supervisor id>:<port>`.
    pub id: String,
    /// Address other workers connect to.
    pub host: String,
    /// Port the worker listens on for other workers.
    pub port: u16,
    /// Indices (into [`Topology::executors`]) of the executors it runs.
    pub executors: Vec<usize>,
}

/// What one worker process runs, and where every other worker of its topology is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPlan {
    /// Unique id of the running topology (name plus submission time).
    pub topology_id: String,
    /// The topology's name.
    pub topology: String,
    /// The cluster's id (workers of other clusters are refused).
    pub cluster_id: String,
    /// Version of the assignment this plan comes from; grows with every change.
    pub version: u64,
    /// Every worker of the topology, this one included.
    pub workers: Vec<WorkerSlot>,
    /// Index into `workers` of the worker this plan is for.
    pub this_worker: usize,
    /// Executors per component where a rebalance changed them from the declared parallelism.
    #[serde(default)]
    pub parallelism: BTreeMap<String, usize>,
    /// Where the topology's artifact (program and resources) was unpacked.
    pub artifact_dir: PathBuf,
    /// Transport backend: `auto`, `mio` or `io-uring`.
    #[serde(default = "default_backend")]
    pub transport: String,
    /// The arguments the topology program was described with (`<program> describe [args]`
    /// at submission); the worker builds its topology from the same arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Whether the topology's spouts run (`squall activate`) or are paused (`squall
    /// deactivate`, and while a kill or rebalance waits for in-flight trees to drain).
    #[serde(default = "default_active")]
    pub active: bool,
}

fn default_backend() -> String {
    "auto".to_owned()
}

fn default_active() -> bool {
    true
}

/// Why a plan is unusable.
#[derive(Debug, thiserror::Error)]
pub enum WorkerPlanError {
    /// The file could not be read.
    #[error("cannot read worker plan {path}: {source}")]
    Read {
        /// The plan file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a plan.
    #[error("worker plan {path} is not valid: {source}")]
    Parse {
        /// The plan file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: serde_json::Error,
    },
    /// The plan contradicts itself or the topology.
    #[error("worker plan {path} is inconsistent: {reason}")]
    Inconsistent {
        /// The plan file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
}

impl WorkerPlan {
    /// Reads and checks a plan file.
    ///
    /// # Errors
    /// When the file cannot be read, is not a plan, or contradicts itself.
    pub fn read(path: &Path) -> Result<Self, WorkerPlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkerPlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        let plan: WorkerPlan =
            serde_json::from_str(&text).map_err(|source| WorkerPlanError::Parse {
                path: path.to_owned(),
                source,
            })?;
        plan.check()
            .map_err(|reason| WorkerPlanError::Inconsistent {
                path: path.to_owned(),
                reason,
            })?;
        Ok(plan)
    }

    /// Writes the plan to `path` atomically (a temporary file renamed over it).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomically(path, &json)
    }

    /// Checks what can be checked without the topology.
    fn check(&self) -> Result<(), String> {
        if self.this_worker >= self.workers.len() {
            return Err(format!(
                "this_worker is {} but there are {} workers",
                self.this_worker,
                self.workers.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for worker in &self.workers {
            for executor in &worker.executors {
                if !seen.insert(*executor) {
                    return Err(format!("executor {executor} is assigned twice"));
                }
            }
        }
        Ok(())
    }

    /// Checks that the plan covers exactly the executors of `topology`.
    ///
    /// # Errors
    /// The first executor missing or out of range.
    pub fn check_against(&self, topology: &Topology) -> Result<(), String> {
        let total = topology.executors().len();
        let mut assigned = vec![false; total];
        for worker in &self.workers {
            for &executor in &worker.executors {
                let slot = assigned.get_mut(executor).ok_or_else(|| {
                    format!("executor {executor} does not exist: the topology has {total}")
                })?;
                *slot = true;
            }
        }
        match assigned.iter().position(|assigned| !assigned) {
            Some(missing) => Err(format!("executor {missing} is assigned to no worker")),
            None => Ok(()),
        }
    }

    /// The slot of this worker.
    pub fn this_slot(&self) -> &WorkerSlot {
        &self.workers[self.this_worker]
    }
}

/// What a worker reports about itself, every [`WorkerHeartbeat::INTERVAL_MS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// The worker's process id.
    pub pid: u32,
    /// Wall-clock time of the heartbeat, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The running topology.
    pub topology_id: String,
    /// The plan version the worker runs.
    pub version: u64,
    /// Executors it runs.
    pub executors: Vec<usize>,
    /// Tuples executed by its tasks so far.
    pub executed: u64,
    /// Tuples emitted by its tasks so far.
    pub emitted: u64,
    /// Errors its tasks reported so far.
    pub errors: u64,
    /// `host:port` where the worker serves `/metrics`, if it does.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// Per task figures, ring occupancy, link counts and the latest task errors.
    #[serde(default)]
    pub figures: WorkerFigures,
}

impl WorkerHeartbeat {
    /// How often a worker writes its heartbeat.
    pub const INTERVAL_MS: u64 = 500;

    /// Writes the heartbeat into `dir`/[`HEARTBEAT_FILE`] atomically.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_into(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        write_atomically(&dir.join(HEARTBEAT_FILE), &json)
    }

    /// Reads the heartbeat in `dir`, if there is a readable one.
    pub fn read_from(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(HEARTBEAT_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}.tmp", std::process::id()));
    let staging = PathBuf::from(staging);
    std::fs::write(&staging, bytes)?;
    std::fs::rename(&staging, path)
}

/// One component as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentDescription {
    /// The component id.
    pub id: String,
    /// `spout`, `bolt` or `acker`.
    pub kind: String,
    /// Executors.
    pub parallelism: usize,
    /// Tasks.
    pub tasks: usize,
    /// Streams it subscribes to, as `component/stream (grouping)`.
    pub inputs: Vec<String>,
}

/// What the control plane needs to know of a topology to schedule it: its components and
/// executors, in the topology's own deterministic order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyDescription {
    /// The topology's name.
    pub name: String,
    /// Worker processes it asks for.
    pub workers: usize,
    /// Its components (the acker last, when tracking is on).
    pub components: Vec<ComponentDescription>,
    /// The component (index into `components`) of every executor, in executor order.
    pub executor_components: Vec<usize>,
    /// Message timeout in milliseconds.
    pub message_timeout_ms: u64,
}

impl TopologyDescription {
    /// The description of `topology`.
    pub fn of(topology: &Topology) -> Self {
        let components = topology
            .components()
            .iter()
            .map(|component| ComponentDescription {
                id: component.id().to_owned(),
                kind: match component.kind() {
                    ComponentKind::Spout => "spout",
                    ComponentKind::Bolt => "bolt",
                    ComponentKind::Acker => "acker",
                }
                .to_owned(),
                parallelism: component.parallelism(),
                tasks: component.task_count(),
                inputs: component
                    .inputs()
                    .iter()
                    .map(|input| {
                        let stream = topology.stream(input.stream).expect("declared stream");
                        format!(
                            "{}/{} ({})",
                            topology.components()[input.source].id(),
                            stream.name,
                            input.grouping.grouping.name()
                        )
                    })
                    .collect(),
            })
            .collect();
        Self {
            name: topology.name().to_owned(),
            workers: topology.config().workers,
            components,
            executor_components: topology
                .executors()
                .iter()
                .map(|executor| executor.component)
                .collect(),
            message_timeout_ms: topology.config().message_timeout.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NullBolt, NullSpout};
    use crate::{TopologyBuilder, TopologyConfig};

    fn plan() -> WorkerPlan {
        WorkerPlan {
            topology_id: "wc-1".into(),
            topology: "wc".into(),
            cluster_id: "test".into(),
            version: 1,
            workers: vec![
                WorkerSlot {
                    id: "s1:6700".into(),
                    host: "10.0.0.1".into(),
                    port: 6700,
                    executors: vec![0, 2],
                },
                WorkerSlot {
                    id: "s2:6700".into(),
                    host: "10.0.0.2".into(),
                    port: 6700,
                    executors: vec![1],
                },
            ],
            this_worker: 1,
            parallelism: BTreeMap::new(),
            artifact_dir: "/var/lib/squall/wc-1".into(),
            transport: "auto".into(),
            args: vec!["--sentences".into(), "100".into()],
            active: true,
        }
    }

    #[test]
    fn plans_round_trip_through_files_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        plan().write(&path).unwrap();
        assert_eq!(WorkerPlan::read(&path).unwrap(), plan());
        let mut twice = plan();
        twice.workers[1].executors.push(0);
        twice.write(&path).unwrap();
        let error = WorkerPlan::read(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("is inconsistent: executor 0 is assigned twice"),
            "{error}"
        );
        std::fs::write(&path, "{\"topology\": 3}").unwrap();
        assert!(matches!(
            WorkerPlan::read(&path),
            Err(WorkerPlanError::Parse { .. })
        ));
    }

    #[test]
    fn a_plan_must_cover_the_topology() {
        let mut builder = TopologyBuilder::new();
        builder.set_spout("a", || NullSpout::declaring(&["x"]), 1);
        builder.set_bolt("b", || NullBolt, 1).shuffle_grouping("a");
        let topology = builder
            .build("t", TopologyConfig::default().with_ackers(1))
            .unwrap();
        assert_eq!(topology.executors().len(), 3);
        assert_eq!(plan().check_against(&topology), Ok(()));
        let mut short = plan();
        short.workers[0].executors = vec![0];
        assert_eq!(
            short.check_against(&topology),
            Err("executor 2 is assigned to no worker".to_owned())
        );
        let description = TopologyDescription::of(&topology);
        assert_eq!(description.executor_components, [0, 1, 2]);
        assert_eq!(description.components[1].inputs, ["a/default (shuffle)"]);
        assert_eq!(description.components[2].kind, "acker");
    }
}
