//! The records the control plane keeps in ZooKeeper (as JSON), and the pure conversions
//! between them: an assignment's worker plans, a description's executors under a rebalance.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::plan::{TopologyDescription, WorkerHeartbeat, WorkerPlan, WorkerSlot};
use super::request_limits;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A nimbus, as published in its leader-election node and as an artifact holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NimbusInfo {
    /// Its id.
    pub id: String,
    /// Host its API is reached at.
    pub host: String,
    /// Its API port.
    pub port: u16,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// The Squall version it runs.
    pub version: String,
}

impl NimbusInfo {
    /// `host:port` of its API.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A registered supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    /// Its id.
    pub id: String,
    /// Host its workers are reached at.
    pub host: String,
    /// Its worker slots.
    pub ports: Vec<u16>,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// The Squall version it runs.
    pub version: String,
    /// `host:port` where it serves its `/metrics`, if it does.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
}

/// One worker slot of the cluster: a port of a supervisor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotId {
    /// The supervisor.
    pub supervisor: String,
    /// The port.
    pub port: u16,
}

impl SlotId {
    /// The slot `port` of `supervisor`.
    pub fn new(supervisor: impl Into<String>, port: u16) -> Self {
        Self {
            supervisor: supervisor.into(),
            port,
        }
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.supervisor, self.port)
    }
}

/// Where a topology is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TopologyStatus {
    /// Running, spouts emitting.
    Active,
    /// Running, spouts paused.
    Inactive,
    /// Being killed: spouts paused until the deadline, then its workers stop.
    Killed {
        /// When the workers stop, ms since the epoch.
        deadline_ms: u64,
    },
    /// Being rebalanced: spouts paused until the deadline, then it is rescheduled with its
    /// new worker count and parallelism.
    Rebalancing {
        /// When it is rescheduled, ms since the epoch.
        deadline_ms: u64,
        /// Whether it is active again afterwards.
        resume_active: bool,
    },
}

impl TopologyStatus {
    /// Whether spouts should run.
    pub fn is_active(self) -> bool {
        self == Self::Active
    }

    /// A short name: `active`, `inactive`, `killed` or `rebalancing`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Killed { .. } => "killed",
            Self::Rebalancing { .. } => "rebalancing",
        }
    }
}

/// A submitted topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyRecord {
    /// Its unique id: `<name>-<submission time in seconds>`.
    pub id: String,
    /// Its name (unique among the cluster's topologies).
    pub name: String,
    /// Where it is in its life.
    pub status: TopologyStatus,
    /// When it was submitted, ms since the epoch.
    pub submitted_ms: u64,
    /// SHA-256 (hex) of its artifact.
    pub artifact: String,
    /// Size of its artifact in bytes.
    pub artifact_bytes: u64,
    /// The arguments its program was described with.
    pub args: Vec<String>,
    /// What it is made of.
    pub description: TopologyDescription,
    /// Worker processes it runs in (the description's, or a rebalance's).
    pub workers: usize,
    /// Executors per component where a rebalance changed them.
    #[serde(default)]
    pub parallelism: BTreeMap<String, usize>,
    /// The scheduler's last remark (for example, not enough free slots).
    #[serde(default)]
    pub note: Option<String>,
    /// The client key that submitted it ([`crate::client_keys`]); `None` when the cluster
    /// secret did, or for topologies submitted before client keys existed. Submitter keys
    /// manage only the topologies that name them here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
}

impl TopologyRecord {
    /// The component (index into the description's components) of every executor, under
    /// this record's parallelism.
    pub fn executor_components(&self) -> Vec<usize> {
        executor_components(&self.description, &self.parallelism)
    }
}

/// The component of every executor of `description` when `parallelism` overrides some
/// components' executor counts: components in order, each with its executors consecutive.
pub fn executor_components(
    description: &TopologyDescription,
    parallelism: &BTreeMap<String, usize>,
) -> Vec<usize> {
    if parallelism.is_empty() {
        return description.executor_components.clone();
    }
    description
        .components
        .iter()
        .enumerate()
        .flat_map(|(index, component)| {
            let count = parallelism
                .get(&component.id)
                .copied()
                .unwrap_or(component.parallelism);
            std::iter::repeat_n(index, count)
        })
        .collect()
}

/// Checks a rebalance's parallelism against a description: every component exists and
/// gets between 1 and its task count executors.
///
/// # Errors
/// The first component that does not fit.
pub fn check_parallelism(
    description: &TopologyDescription,
    parallelism: &BTreeMap<String, usize>,
) -> Result<(), String> {
    for (id, &count) in parallelism {
        let component = description
            .components
            .iter()
            .find(|component| &component.id == id)
            .ok_or_else(|| {
                let known: Vec<&str> = description
                    .components
                    .iter()
                    .map(|component| component.id.as_str())
                    .collect();
                format!(
                    "topology {} has no component {id:?} (it has {})",
                    description.name,
                    known.join(", ")
                )
            })?;
        request_limits::check_component(id, component.tasks, count)?;
    }
    request_limits::total_executors(description, |id, own| {
        parallelism.get(id).copied().unwrap_or(own)
    })
    .map(|_| ())
}

/// One worker of an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedWorker {
    /// Its supervisor.
    pub supervisor: String,
    /// Host of its supervisor.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The executors it runs (indices into the topology's executors), ascending.
    pub executors: Vec<usize>,
}

impl AssignedWorker {
    /// Its slot.
    pub fn slot(&self) -> SlotId {
        SlotId::new(self.supervisor.clone(), self.port)
    }
}

/// Where the executors of one topology run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The topology's id.
    pub topology_id: String,
    /// The topology's name.
    pub topology: String,
    /// Grows with every change.
    pub version: u64,
    /// Whether spouts run.
    pub active: bool,
    /// SHA-256 (hex) of the artifact its workers run.
    pub artifact: String,
    /// The arguments of its program.
    pub args: Vec<String>,
    /// Executors per component where a rebalance changed them.
    #[serde(default)]
    pub parallelism: BTreeMap<String, usize>,
    /// Number of executors.
    pub executors: usize,
    /// Its workers; each executor is in exactly one.
    pub workers: Vec<AssignedWorker>,
}

impl Assignment {
    /// The worker in `slot`, if any.
    pub fn worker(&self, slot: &SlotId) -> Option<&AssignedWorker> {
        self.workers
            .iter()
            .find(|worker| worker.supervisor == slot.supervisor && worker.port == slot.port)
    }

    /// Everything but the version: whether two assignments place the same executors the
    /// same way with the same settings.
    pub fn same_placement(&self, other: &Self) -> bool {
        Self {
            version: other.version,
            ..self.clone()
        } == *other
    }

    /// The plan of the worker in `slot`, or `None` when the slot has no worker of this
    /// topology.
    pub fn plan_for(
        &self,
        slot: &SlotId,
        cluster: &str,
        artifact_dir: PathBuf,
        transport: &str,
    ) -> Option<WorkerPlan> {
        let this_worker = self
            .workers
            .iter()
            .position(|worker| worker.supervisor == slot.supervisor && worker.port == slot.port)?;
        Some(WorkerPlan {
            topology_id: self.topology_id.clone(),
            topology: self.topology.clone(),
            cluster_id: cluster.to_owned(),
            version: self.version,
            workers: self
                .workers
                .iter()
                .map(|worker| WorkerSlot {
                    id: worker.slot().to_string(),
                    host: worker.host.clone(),
                    port: worker.port,
                    executors: worker.executors.clone(),
                })
                .collect(),
            this_worker,
            parallelism: self.parallelism.clone(),
            artifact_dir,
            transport: transport.to_owned(),
            args: self.args.clone(),
            active: self.active,
        })
    }
}

/// A worker's heartbeat as its supervisor relays it to ZooKeeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerBeat {
    /// The supervisor that relayed it.
    pub supervisor: String,
    /// The worker's port.
    pub port: u16,
    /// When the supervisor relayed it, ms since the epoch.
    pub relayed_ms: u64,
    /// The heartbeat the worker wrote.
    pub heartbeat: WorkerHeartbeat,
}

/// An error reported about a topology (worker crashes, launch failures, scheduling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// When, ms since the epoch.
    pub time_ms: u64,
    /// Who reports it: `nimbus`, or the worker's slot.
    pub source: String,
    /// What happened.
    pub message: String,
}

/// How many errors are kept per topology; older ones are deleted.
pub const ERRORS_KEPT: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ComponentDescription;

    pub(crate) fn description() -> TopologyDescription {
        let component = |id: &str, kind: &str, parallelism, tasks| ComponentDescription {
            id: id.to_owned(),
            kind: kind.to_owned(),
            parallelism,
            tasks,
            inputs: Vec::new(),
        };
        TopologyDescription {
            name: "wc".into(),
            workers: 2,
            components: vec![
                component("count", "bolt", 2, 4),
                component("sentences", "spout", 1, 1),
                component("__acker", "acker", 2, 2),
            ],
            executor_components: vec![0, 0, 1, 2, 2],
            message_timeout_ms: 30_000,
        }
    }

    #[test]
    fn records_without_a_submitting_key_read_as_the_cluster_secrets() {
        let mut record = TopologyRecord {
            id: "wc-1".into(),
            name: "wc".into(),
            status: TopologyStatus::Active,
            submitted_ms: 1,
            artifact: "digest".into(),
            artifact_bytes: 1,
            args: Vec::new(),
            description: description(),
            workers: 2,
            parallelism: BTreeMap::new(),
            note: None,
            submitted_by: None,
        };
        // Records written before client keys existed have no such field, and records the
        // cluster secret submits are written the same way.
        let json = serde_json::to_value(&record).unwrap();
        assert!(json.get("submitted_by").is_none(), "{json}");
        assert_eq!(
            serde_json::from_value::<TopologyRecord>(json).unwrap(),
            record
        );
        record.submitted_by = Some("ci".into());
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["submitted_by"], "ci");
        assert_eq!(
            serde_json::from_value::<TopologyRecord>(json).unwrap(),
            record
        );
    }

    #[test]
    fn parallelism_overrides_renumber_executors() {
        let description = description();
        assert_eq!(
            executor_components(&description, &BTreeMap::new()),
            [0, 0, 1, 2, 2]
        );
        let more = BTreeMap::from([("count".to_owned(), 4)]);
        assert_eq!(
            executor_components(&description, &more),
            [0, 0, 0, 0, 1, 2, 2]
        );
        assert_eq!(check_parallelism(&description, &more), Ok(()));
        let too_many = BTreeMap::from([("count".to_owned(), 5)]);
        assert_eq!(
            check_parallelism(&description, &too_many),
            Err("component \"count\" has 4 tasks, so it can run on 1 to 4 executors, not 5".into())
        );
        let unknown = BTreeMap::from([("split".to_owned(), 1)]);
        assert!(
            check_parallelism(&description, &unknown)
                .unwrap_err()
                .contains("has no component \"split\" (it has count, sentences, __acker)")
        );
    }

    #[test]
    fn assignments_give_each_worker_its_plan() {
        let assignment = Assignment {
            topology_id: "wc-1".into(),
            topology: "wc".into(),
            version: 3,
            active: false,
            artifact: "ab".into(),
            args: vec!["x".into()],
            parallelism: BTreeMap::new(),
            executors: 3,
            workers: vec![
                AssignedWorker {
                    supervisor: "s1".into(),
                    host: "h1".into(),
                    port: 6700,
                    executors: vec![0, 2],
                },
                AssignedWorker {
                    supervisor: "s2".into(),
                    host: "h2".into(),
                    port: 6700,
                    executors: vec![1],
                },
            ],
        };
        let plan = assignment
            .plan_for(&SlotId::new("s2", 6700), "prod", "/a".into(), "mio")
            .unwrap();
        assert_eq!(plan.this_worker, 1);
        assert_eq!(plan.this_slot().id, "s2:6700");
        assert_eq!(plan.workers[0].host, "h1");
        assert!(!plan.active);
        assert_eq!(plan.args, ["x"]);
        assert!(
            assignment
                .plan_for(&SlotId::new("s2", 6701), "prod", "/a".into(), "mio")
                .is_none()
        );
        let mut next = assignment.clone();
        next.version = 4;
        assert!(assignment.same_placement(&next));
        next.active = true;
        assert!(!assignment.same_placement(&next));
    }
}
