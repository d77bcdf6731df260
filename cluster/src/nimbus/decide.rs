//! What the leader does in one round: a pure function from the cluster's records (and
//! which workers it considers dead) to the writes that bring the cluster where it should
//! be.

use std::collections::{BTreeMap, BTreeSet};

use crate::records::{Assignment, SlotId, SupervisorInfo, TopologyRecord, TopologyStatus};
use crate::scheduler::{self, FreeSlot, Mode, Schedule};

/// What the leader sees at the start of a round.
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    /// Now, ms since the epoch.
    pub now_ms: u64,
    /// Live supervisors, by id.
    pub supervisors: &'a BTreeMap<String, SupervisorInfo>,
    /// Topologies, by id.
    pub topologies: &'a BTreeMap<String, TopologyRecord>,
    /// Topologies whose record exists but cannot be used (garbage, a refused value, or not
    /// readable): frozen. Their assignments stay exactly as they are and keep their slots,
    /// so that whoever can write a bad record cannot stop a running topology with it.
    pub frozen: &'a BTreeSet<String>,
    /// Assignments, by topology id.
    pub assignments: &'a BTreeMap<String, Assignment>,
    /// Workers the leader considers dead: (topology id, slot).
    pub dead_workers: &'a BTreeSet<(String, SlotId)>,
    /// Whether supervisors missing from the registry still count as alive: set for a
    /// session timeout after this nimbus became leader or renewed its session, while
    /// supervisors may still be re-registering after a ZooKeeper outage.
    pub absence_grace: bool,
}

/// A write the leader makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create or replace an assignment.
    PutAssignment(Assignment),
    /// Replace a topology record (status or note changed).
    PutTopology(TopologyRecord),
    /// Delete a topology: its assignment, record, heartbeats and errors (the assignment
    /// first, so that supervisors stop its workers).
    RemoveTopology {
        /// The topology.
        topology_id: String,
        /// Its artifact, to forget when no other topology uses it.
        artifact: String,
    },
    /// Delete the assignment (and heartbeats) of a topology that has no record at all, so
    /// that supervisors stop its workers.
    RemoveAssignment {
        /// The topology.
        topology_id: String,
    },
    /// Record an error about a topology.
    ReportError {
        /// The topology.
        topology_id: String,
        /// What happened.
        message: String,
    },
}

/// The writes of one round, topologies in id order.
pub fn decide(view: &ClusterView<'_>) -> Vec<Action> {
    let mut used = used_slots(view);
    let mut actions = Vec::new();
    for (id, record) in view.topologies {
        let current = view.assignments.get(id);
        decide_topology(view, record, current, &mut used, &mut actions);
    }
    for topology_id in view.assignments.keys() {
        if !view.topologies.contains_key(topology_id) && !view.frozen.contains(topology_id) {
            actions.push(Action::RemoveAssignment {
                topology_id: topology_id.clone(),
            });
        }
    }
    actions
}

/// Slots on live supervisors that assignments use, with the topology using them.
fn used_slots(view: &ClusterView<'_>) -> BTreeMap<SlotId, String> {
    let mut used = BTreeMap::new();
    for (topology_id, assignment) in view.assignments {
        for worker in &assignment.workers {
            used.insert(worker.slot(), topology_id.clone());
        }
    }
    used
}

fn free_slots(view: &ClusterView<'_>, used: &BTreeMap<SlotId, String>) -> Vec<FreeSlot> {
    let dead: BTreeSet<&SlotId> = view.dead_workers.iter().map(|(_, slot)| slot).collect();
    let mut free = Vec::new();
    for (id, supervisor) in view.supervisors {
        for &port in &supervisor.ports {
            let slot = SlotId::new(id.clone(), port);
            if !used.contains_key(&slot) && !dead.contains(&slot) {
                free.push(FreeSlot {
                    supervisor: id.clone(),
                    host: supervisor.host.clone(),
                    port,
                });
            }
        }
    }
    free
}

/// The slots of `assignment` whose worker is gone: its supervisor is not registered, no
/// longer offers the port, or the worker stopped heartbeating.
fn lost_slots(view: &ClusterView<'_>, assignment: &Assignment) -> BTreeSet<SlotId> {
    assignment
        .workers
        .iter()
        .map(|worker| worker.slot())
        .filter(|slot| {
            let offered = match view.supervisors.get(&slot.supervisor) {
                Some(supervisor) => supervisor.ports.contains(&slot.port),
                None => view.absence_grace,
            };
            !offered
                || view
                    .dead_workers
                    .contains(&(assignment.topology_id.clone(), slot.clone()))
        })
        .collect()
}

fn decide_topology(
    view: &ClusterView<'_>,
    record: &TopologyRecord,
    current: Option<&Assignment>,
    used: &mut BTreeMap<SlotId, String>,
    actions: &mut Vec<Action>,
) {
    match record.status {
        TopologyStatus::Killed { deadline_ms } => {
            if view.now_ms >= deadline_ms {
                if let Some(assignment) = current {
                    for worker in &assignment.workers {
                        used.remove(&worker.slot());
                    }
                }
                actions.push(Action::RemoveTopology {
                    topology_id: record.id.clone(),
                    artifact: record.artifact.clone(),
                });
            } else {
                set_active(current, false, actions);
            }
        }
        TopologyStatus::Rebalancing {
            deadline_ms,
            resume_active,
        } => {
            if view.now_ms < deadline_ms {
                set_active(current, false, actions);
                return;
            }
            let status = if resume_active {
                TopologyStatus::Active
            } else {
                TopologyStatus::Inactive
            };
            let next = TopologyRecord {
                status,
                ..record.clone()
            };
            place(view, &next, current, Mode::Reshuffle, used, actions);
            if let Some(Action::PutTopology(updated)) = actions.last_mut()
                && updated.id == record.id
            {
                updated.status = status;
            } else {
                actions.push(Action::PutTopology(next));
            }
        }
        TopologyStatus::Active | TopologyStatus::Inactive => {
            let executors = record.executor_components().len();
            let mode = match current {
                None => Some(Mode::Reshuffle),
                Some(assignment) if assignment.executors != executors => Some(Mode::Reshuffle),
                Some(assignment) if !lost_slots(view, assignment).is_empty() => Some(Mode::Repair),
                Some(assignment)
                    if assignment.workers.len() < record.workers.min(executors)
                        && !free_slots(view, used).is_empty() =>
                {
                    Some(Mode::Reshuffle)
                }
                Some(_) => None,
            };
            match mode {
                Some(mode) => place(view, record, current, mode, used, actions),
                None => set_active(current, record.status.is_active(), actions),
            }
        }
    }
}

/// Reissues `current` with `active` if it differs.
fn set_active(current: Option<&Assignment>, active: bool, actions: &mut Vec<Action>) {
    if let Some(assignment) = current
        && assignment.active != active
    {
        actions.push(Action::PutAssignment(Assignment {
            version: assignment.version + 1,
            active,
            ..assignment.clone()
        }));
    }
}

/// Schedules `record` and emits the new assignment (if it changed) and note (if it
/// changed).
fn place(
    view: &ClusterView<'_>,
    record: &TopologyRecord,
    current: Option<&Assignment>,
    mode: Mode,
    used: &mut BTreeMap<SlotId, String>,
    actions: &mut Vec<Action>,
) {
    let executors = record.executor_components().len();
    let lost = current
        .map(|assignment| lost_slots(view, assignment))
        .unwrap_or_default();
    let current_workers = current.map_or(&[][..], |assignment| &assignment.workers[..]);
    // The topology's own slots are free for its reshuffle.
    for worker in current_workers {
        used.remove(&worker.slot());
    }
    let mut free = free_slots(view, used);
    let own: BTreeSet<SlotId> = current_workers.iter().map(|worker| worker.slot()).collect();
    free.retain(|slot| !own.contains(&slot.id()));
    let request = scheduler::Request {
        executors,
        workers: record.workers,
        current: current_workers,
        lost: &lost,
        free: &free,
        mode,
    };
    let note = match scheduler::schedule(&request) {
        Ok(Schedule { workers, note }) => {
            for worker in &workers {
                used.insert(worker.slot(), record.id.clone());
            }
            let next = Assignment {
                topology_id: record.id.clone(),
                topology: record.name.clone(),
                version: current.map_or(1, |assignment| assignment.version + 1),
                active: record.status.is_active(),
                artifact: record.artifact.clone(),
                args: record.args.clone(),
                parallelism: record.parallelism.clone(),
                executors,
                workers,
            };
            if current.is_none_or(|assignment| !assignment.same_placement(&next)) {
                actions.push(Action::PutAssignment(next));
            }
            note
        }
        Err(error) => {
            // Keep what runs (if anything) rather than tearing it down.
            for worker in current_workers {
                if !lost.contains(&worker.slot()) {
                    used.insert(worker.slot(), record.id.clone());
                }
            }
            Some(error.to_string())
        }
    };
    if note != record.note {
        if let Some(message) = &note {
            actions.push(Action::ReportError {
                topology_id: record.id.clone(),
                message: message.clone(),
            });
        }
        actions.push(Action::PutTopology(TopologyRecord {
            note,
            ..record.clone()
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ComponentDescription, TopologyDescription};

    fn supervisors(ids: &[&str]) -> BTreeMap<String, SupervisorInfo> {
        ids.iter()
            .map(|id| {
                (
                    (*id).to_owned(),
                    SupervisorInfo {
                        id: (*id).to_owned(),
                        host: format!("host-{id}"),
                        ports: vec![6700, 6701],
                        started_ms: 0,
                        version: "test".into(),
                        metrics_endpoint: None,
                    },
                )
            })
            .collect()
    }

    fn record(id: &str, workers: usize, status: TopologyStatus) -> TopologyRecord {
        TopologyRecord {
            id: id.to_owned(),
            name: id.split('-').next().unwrap().to_owned(),
            status,
            submitted_ms: 0,
            artifact: "digest".into(),
            artifact_bytes: 10,
            args: Vec::new(),
            description: TopologyDescription {
                name: "wc".into(),
                workers,
                components: vec![
                    ComponentDescription {
                        id: "count".into(),
                        kind: "bolt".into(),
                        parallelism: 3,
                        tasks: 6,
                        inputs: Vec::new(),
                    },
                    ComponentDescription {
                        id: "words".into(),
                        kind: "spout".into(),
                        parallelism: 1,
                        tasks: 1,
                        inputs: Vec::new(),
                    },
                ],
                executor_components: vec![0, 0, 0, 1],
                message_timeout_ms: 30_000,
            },
            workers,
            parallelism: BTreeMap::new(),
            note: None,
            submitted_by: None,
        }
    }

    struct World {
        supervisors: BTreeMap<String, SupervisorInfo>,
        topologies: BTreeMap<String, TopologyRecord>,
        assignments: BTreeMap<String, Assignment>,
        dead: BTreeSet<(String, SlotId)>,
        frozen: BTreeSet<String>,
        now_ms: u64,
        grace: bool,
    }

    impl World {
        fn new(supervisor_ids: &[&str]) -> Self {
            Self {
                supervisors: supervisors(supervisor_ids),
                topologies: BTreeMap::new(),
                assignments: BTreeMap::new(),
                dead: BTreeSet::new(),
                frozen: BTreeSet::new(),
                now_ms: 1_000,
                grace: false,
            }
        }

        fn decide(&self) -> Vec<Action> {
            decide(&ClusterView {
                now_ms: self.now_ms,
                supervisors: &self.supervisors,
                topologies: &self.topologies,
                frozen: &self.frozen,
                assignments: &self.assignments,
                dead_workers: &self.dead,
                absence_grace: self.grace,
            })
        }

        /// Applies the actions as the leader would, returning them.
        fn round(&mut self) -> Vec<Action> {
            let actions = self.decide();
            for action in &actions {
                match action {
                    Action::PutAssignment(assignment) => {
                        self.assignments
                            .insert(assignment.topology_id.clone(), assignment.clone());
                    }
                    Action::PutTopology(record) => {
                        self.topologies.insert(record.id.clone(), record.clone());
                    }
                    Action::RemoveTopology { topology_id, .. } => {
                        self.assignments.remove(topology_id);
                        self.topologies.remove(topology_id);
                    }
                    Action::RemoveAssignment { topology_id } => {
                        self.assignments.remove(topology_id);
                    }
                    Action::ReportError { .. } => {}
                }
            }
            actions
        }

        fn slots(&self, topology: &str) -> Vec<String> {
            self.assignments[topology]
                .workers
                .iter()
                .map(|worker| worker.slot().to_string())
                .collect()
        }
    }

    #[test]
    fn a_new_topology_is_scheduled_once_and_then_left_alone() {
        let mut world = World::new(&["a", "b", "c"]);
        world
            .topologies
            .insert("wc-1".into(), record("wc-1", 2, TopologyStatus::Active));
        let actions = world.round();
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(world.slots("wc-1"), ["a:6700", "b:6700"]);
        assert_eq!(world.assignments["wc-1"].version, 1);
        assert!(world.assignments["wc-1"].active);
        assert_eq!(world.round(), []);
    }

    #[test]
    fn topologies_share_the_cluster_without_sharing_slots() {
        let mut world = World::new(&["a"]);
        world
            .topologies
            .insert("one-1".into(), record("one-1", 1, TopologyStatus::Active));
        world
            .topologies
            .insert("two-1".into(), record("two-1", 2, TopologyStatus::Active));
        world.round();
        assert_eq!(world.slots("one-1"), ["a:6700"]);
        assert_eq!(world.slots("two-1"), ["a:6701"]);
        assert_eq!(
            world.topologies["two-1"].note.as_deref(),
            Some("running on 1 of 2 requested workers: not enough free slots")
        );
        // A third topology finds no slot: it is told so, once.
        world.topologies.insert(
            "three-1".into(),
            record("three-1", 1, TopologyStatus::Active),
        );
        let actions = world.round();
        assert!(actions.iter().any(|action| matches!(
            action,
            Action::ReportError { topology_id, message }
                if topology_id == "three-1" && message.starts_with("not enough slots")
        )));
        assert!(!world.assignments.contains_key("three-1"));
        assert_eq!(world.round(), []);
        // A new supervisor: the short topologies grow, the waiting one starts.
        world.supervisors.extend(supervisors(&["b"]));
        world.round();
        assert!(world.assignments.contains_key("three-1"));
        assert_eq!(world.assignments["two-1"].workers.len(), 2);
        assert_eq!(world.topologies["three-1"].note, None);
    }

    #[test]
    fn lost_nodes_and_dead_workers_are_repaired() {
        let mut world = World::new(&["a", "b", "c"]);
        world
            .topologies
            .insert("wc-1".into(), record("wc-1", 2, TopologyStatus::Active));
        world.round();
        let before = world.assignments["wc-1"].clone();
        world.supervisors.remove("b");
        // Right after a leadership change, a missing supervisor may be re-registering.
        world.grace = true;
        assert_eq!(world.round(), []);
        world.grace = false;
        world.round();
        let after = &world.assignments["wc-1"];
        assert_eq!(world.slots("wc-1"), ["a:6700", "c:6700"]);
        assert_eq!(
            after.workers[0], before.workers[0],
            "the live worker is untouched"
        );
        assert_eq!(after.workers[1].executors, before.workers[1].executors);
        assert_eq!(after.version, before.version + 1);
        // A worker that stopped heartbeating on a live node moves too.
        world.dead.insert(("wc-1".into(), SlotId::new("c", 6700)));
        world.round();
        assert_eq!(world.slots("wc-1"), ["a:6700", "c:6701"]);
    }

    #[test]
    fn deactivation_kill_and_rebalance_follow_their_deadlines() {
        let mut world = World::new(&["a", "b", "c"]);
        world
            .topologies
            .insert("wc-1".into(), record("wc-1", 2, TopologyStatus::Active));
        world.round();
        world.topologies.get_mut("wc-1").unwrap().status = TopologyStatus::Inactive;
        world.round();
        assert!(!world.assignments["wc-1"].active);
        assert_eq!(world.round(), []);

        // Rebalance to 3 workers and more counters after a wait.
        let record = world.topologies.get_mut("wc-1").unwrap();
        record.status = TopologyStatus::Rebalancing {
            deadline_ms: 5_000,
            resume_active: true,
        };
        record.workers = 3;
        record.parallelism.insert("count".into(), 5);
        world.round();
        assert_eq!(
            world.assignments["wc-1"].workers.len(),
            2,
            "waits for the deadline"
        );
        world.now_ms = 5_000;
        world.round();
        assert_eq!(world.topologies["wc-1"].status, TopologyStatus::Active);
        let assignment = &world.assignments["wc-1"];
        assert_eq!(assignment.workers.len(), 3);
        assert_eq!(assignment.executors, 6);
        assert!(assignment.active);
        assert_eq!(assignment.parallelism["count"], 5);
        assert_eq!(world.round(), []);

        world.topologies.get_mut("wc-1").unwrap().status =
            TopologyStatus::Killed { deadline_ms: 9_000 };
        world.round();
        assert!(!world.assignments["wc-1"].active);
        world.now_ms = 9_000;
        let actions = world.round();
        assert_eq!(
            actions,
            [Action::RemoveTopology {
                topology_id: "wc-1".into(),
                artifact: "digest".into()
            }]
        );
        assert!(world.assignments.is_empty() && world.topologies.is_empty());
    }

    #[test]
    fn a_topology_whose_record_cannot_be_read_is_frozen_and_one_without_a_record_removed() {
        let mut world = World::new(&["a"]);
        world
            .topologies
            .insert("wc-1".into(), record("wc-1", 2, TopologyStatus::Active));
        world.round();
        let running = world.assignments["wc-1"].clone();
        assert_eq!(world.slots("wc-1"), ["a:6700", "a:6701"]);

        // The record turns to garbage: the assignment stays, its slots stay taken, and
        // other topologies are still decided for.
        world.topologies.remove("wc-1");
        world.frozen.insert("wc-1".into());
        world.topologies.insert(
            "other-2".into(),
            record("other-2", 1, TopologyStatus::Active),
        );
        let actions = world.round();
        assert!(
            actions.iter().all(|action| match action {
                Action::PutAssignment(assignment) => assignment.topology_id == "other-2",
                Action::PutTopology(record) => record.id == "other-2",
                Action::ReportError { topology_id, .. } => topology_id == "other-2",
                _ => false,
            }),
            "{actions:?}"
        );
        assert_eq!(world.assignments["wc-1"], running);
        world.round();
        assert_eq!(world.assignments["wc-1"], running);

        // Readable again: it carries on as it was.
        world.frozen.clear();
        world
            .topologies
            .insert("wc-1".into(), record("wc-1", 2, TopologyStatus::Active));
        assert_eq!(world.round(), []);
        assert_eq!(world.assignments["wc-1"], running);

        // Its record deleted outright: its assignment goes too.
        world.topologies.remove("wc-1");
        assert_eq!(
            world.round(),
            [Action::RemoveAssignment {
                topology_id: "wc-1".into()
            }]
        );
        assert!(!world.assignments.contains_key("wc-1"));
    }
}
