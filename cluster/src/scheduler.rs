//! The even scheduler: which slots a topology's workers take and which executors each
//! runs. Pure functions over data.
//!
//! Two ways to schedule:
//!
//! - [`Mode::Reshuffle`] (first schedule, rebalance, growing to the requested worker
//!   count): picks the slots one at a time, each on the host with the fewest of the
//!   topology's workers so far (then the supervisor with the fewest), preferring the
//!   topology's live slots among equals so that as few workers as possible restart; then
//!   deals the executors round-robin.
//! - [`Mode::Repair`] (a worker or node died): keeps every live worker and its executors
//!   untouched, so they need no restart, and gives the orphaned executors to replacement
//!   slots (one per lost worker, while free slots last, picked the same spreading way), or
//!   else spreads them over the least-loaded live workers.
//!
//! Spreading over hosts comes first because a host is what fails: two workers of a
//! topology on one host while another host has room would both be lost with it.

use std::collections::{BTreeMap, BTreeSet};

use super::records::{AssignedWorker, SlotId};

/// A slot no topology uses, on a live supervisor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FreeSlot {
    /// The supervisor.
    pub supervisor: String,
    /// The supervisor's host.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl FreeSlot {
    /// Its id.
    pub fn id(&self) -> SlotId {
        SlotId::new(self.supervisor.clone(), self.port)
    }
}

/// How to schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Place every executor afresh, reusing the topology's live slots first.
    Reshuffle,
    /// Move only the executors of lost workers.
    Repair,
}

/// What the scheduler is asked.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Number of executors.
    pub executors: usize,
    /// Worker processes asked for.
    pub workers: usize,
    /// The topology's current workers (empty when it has none).
    pub current: &'a [AssignedWorker],
    /// The slots of `current` that are lost (dead worker or node).
    pub lost: &'a BTreeSet<SlotId>,
    /// The cluster's free slots (not used by any topology, on live supervisors).
    pub free: &'a [FreeSlot],
    /// How.
    pub mode: Mode,
}

/// Why nothing could be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No slot at all is available.
    #[error(
        "not enough slots: {workers} worker(s) requested but no slot is free ({supervisors} \
         supervisor(s) with free slots); add supervisors or kill topologies"
    )]
    NoSlots {
        /// Workers asked for.
        workers: usize,
        /// Supervisors with free slots (0).
        supervisors: usize,
    },
}

/// A schedule: the workers, in a stable order, and a remark when fewer workers than
/// requested could be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The workers; each executor is in exactly one.
    pub workers: Vec<AssignedWorker>,
    /// Set when the schedule falls short of the request.
    pub note: Option<String>,
}

/// Schedules one topology.
///
/// # Errors
/// [`ScheduleError::NoSlots`] when not even one worker can be placed.
pub fn schedule(request: &Request<'_>) -> Result<Schedule, ScheduleError> {
    let kept: Vec<&AssignedWorker> = request
        .current
        .iter()
        .filter(|worker| !request.lost.contains(&worker.slot()))
        .collect();
    match request.mode {
        Mode::Reshuffle => reshuffle(request, &kept),
        Mode::Repair => repair(request, &kept),
    }
}

fn shortfall_note(request: &Request<'_>, placed: usize) -> Option<String> {
    let wanted = request.workers.min(request.executors);
    (placed < wanted).then(|| {
        format!(
            "running on {placed} of {} requested workers: not enough free slots",
            request.workers
        )
    })
}

fn reshuffle(request: &Request<'_>, kept: &[&AssignedWorker]) -> Result<Schedule, ScheduleError> {
    let wanted = request.workers.max(1).min(request.executors.max(1));
    let mut candidates: Vec<Candidate> = kept
        .iter()
        .map(|worker| Candidate {
            supervisor: worker.supervisor.clone(),
            host: worker.host.clone(),
            port: worker.port,
            kept: true,
        })
        .chain(request.free.iter().map(|slot| Candidate {
            supervisor: slot.supervisor.clone(),
            host: slot.host.clone(),
            port: slot.port,
            kept: false,
        }))
        .collect();
    // Among equally loaded supervisors, the one with the most candidates left is filled
    // first, as it can best take more later.
    let mut room: BTreeMap<String, usize> = BTreeMap::new();
    for candidate in &candidates {
        *room.entry(candidate.supervisor.clone()).or_insert(0) += 1;
    }
    let mut load = Load::default();
    let mut slots: Vec<(String, String, u16)> = Vec::with_capacity(wanted);
    while slots.len() < wanted {
        let Some(best) = (0..candidates.len()).min_by_key(|&index| {
            let candidate = &candidates[index];
            (
                load.of(&candidate.host, &candidate.supervisor),
                !candidate.kept,
                std::cmp::Reverse(room.get(&candidate.supervisor).copied().unwrap_or(0)),
                candidate.supervisor.as_str(),
                candidate.port,
            )
        }) else {
            break;
        };
        let slot = candidates.swap_remove(best);
        if let Some(left) = room.get_mut(&slot.supervisor) {
            *left -= 1;
        }
        load.add(&slot.host, &slot.supervisor);
        slots.push((slot.supervisor, slot.host, slot.port));
    }
    if slots.is_empty() {
        return Err(no_slots(request));
    }
    slots.sort();
    let mut workers: Vec<AssignedWorker> = slots
        .into_iter()
        .map(|(supervisor, host, port)| AssignedWorker {
            supervisor,
            host,
            port,
            executors: Vec::new(),
        })
        .collect();
    let count = workers.len();
    for executor in 0..request.executors {
        workers[executor % count].executors.push(executor);
    }
    let note = shortfall_note(request, workers.len());
    Ok(Schedule { workers, note })
}

fn repair(request: &Request<'_>, kept: &[&AssignedWorker]) -> Result<Schedule, ScheduleError> {
    let held: BTreeSet<usize> = kept
        .iter()
        .flat_map(|worker| worker.executors.iter().copied())
        .filter(|&executor| executor < request.executors)
        .collect();
    let orphans: Vec<usize> = (0..request.executors)
        .filter(|executor| !held.contains(executor))
        .collect();
    let lost_count = request.current.len() - kept.len();
    if orphans.is_empty() && lost_count == 0 {
        return Ok(Schedule {
            workers: request.current.to_vec(),
            note: None,
        });
    }
    let room = request.workers.saturating_sub(kept.len());
    let mut replacements_wanted = lost_count.min(room);
    if kept.is_empty() {
        replacements_wanted = replacements_wanted.max(1);
    }
    let mut load = Load::of_workers(kept.iter().copied());
    let replacements = pick_even(request.free, replacements_wanted, &mut load);
    if kept.is_empty() && replacements.is_empty() {
        return Err(no_slots(request));
    }
    // Rebuild in the current order: live workers stay, lost ones give their place to the
    // replacements.
    let mut replacements = replacements.into_iter();
    let mut workers: Vec<AssignedWorker> = Vec::with_capacity(request.current.len());
    let mut new_indices = Vec::new();
    for worker in request.current {
        if request.lost.contains(&worker.slot()) {
            if let Some(slot) = replacements.next() {
                new_indices.push(workers.len());
                workers.push(AssignedWorker {
                    supervisor: slot.supervisor,
                    host: slot.host,
                    port: slot.port,
                    executors: Vec::new(),
                });
            }
        } else {
            let mut worker = worker.clone();
            worker
                .executors
                .retain(|&executor| executor < request.executors);
            workers.push(worker);
        }
    }
    for slot in replacements {
        new_indices.push(workers.len());
        workers.push(AssignedWorker {
            supervisor: slot.supervisor,
            host: slot.host,
            port: slot.port,
            executors: Vec::new(),
        });
    }
    if new_indices.is_empty() {
        for executor in orphans {
            let least = (0..workers.len())
                .min_by_key(|&index| workers[index].executors.len())
                .expect("kept workers exist");
            workers[least].executors.push(executor);
        }
    } else {
        for (position, executor) in orphans.into_iter().enumerate() {
            workers[new_indices[position % new_indices.len()]]
                .executors
                .push(executor);
        }
    }
    workers.retain(|worker| !worker.executors.is_empty());
    for worker in &mut workers {
        worker.executors.sort_unstable();
    }
    let note = shortfall_note(request, workers.len());
    Ok(Schedule { workers, note })
}

fn no_slots(request: &Request<'_>) -> ScheduleError {
    let supervisors: BTreeSet<&str> = request
        .free
        .iter()
        .map(|slot| slot.supervisor.as_str())
        .collect();
    ScheduleError::NoSlots {
        workers: request.workers,
        supervisors: supervisors.len(),
    }
}

/// A slot the reshuffle may pick: one of the topology's live slots, or a free one.
#[derive(Debug)]
struct Candidate {
    supervisor: String,
    host: String,
    port: u16,
    kept: bool,
}

/// How many of the topology's workers each host and each supervisor holds so far.
#[derive(Debug, Default)]
struct Load {
    hosts: BTreeMap<String, usize>,
    supervisors: BTreeMap<String, usize>,
}

impl Load {
    fn of_workers<'a>(workers: impl Iterator<Item = &'a AssignedWorker>) -> Self {
        let mut load = Self::default();
        for worker in workers {
            load.add(&worker.host, &worker.supervisor);
        }
        load
    }

    /// The key to keep low: the host's workers first, then the supervisor's (several
    /// supervisors may share a host).
    fn of(&self, host: &str, supervisor: &str) -> (usize, usize) {
        (
            self.hosts.get(host).copied().unwrap_or(0),
            self.supervisors.get(supervisor).copied().unwrap_or(0),
        )
    }

    fn add(&mut self, host: &str, supervisor: &str) {
        *self.hosts.entry(host.to_owned()).or_insert(0) += 1;
        *self.supervisors.entry(supervisor.to_owned()).or_insert(0) += 1;
    }
}

/// Picks `count` free slots, each on the host and then the supervisor with the fewest of
/// this topology's workers so far (then the supervisor with the most free slots left, then
/// by id), lowest port first.
fn pick_even(free: &[FreeSlot], count: usize, load: &mut Load) -> Vec<FreeSlot> {
    let mut by_supervisor: BTreeMap<&str, Vec<&FreeSlot>> = BTreeMap::new();
    for slot in free {
        by_supervisor
            .entry(&slot.supervisor)
            .or_default()
            .push(slot);
    }
    for slots in by_supervisor.values_mut() {
        slots.sort_by_key(|slot| std::cmp::Reverse(slot.port));
    }
    let mut picked = Vec::with_capacity(count);
    while picked.len() < count {
        let Some(supervisor) = by_supervisor
            .iter()
            .filter_map(|(supervisor, slots)| Some((*supervisor, slots.last()?, slots.len())))
            .min_by_key(|(supervisor, next, room)| {
                (
                    load.of(&next.host, supervisor),
                    std::cmp::Reverse(*room),
                    *supervisor,
                )
            })
            .map(|(supervisor, _, _)| supervisor)
        else {
            break;
        };
        let slot = by_supervisor
            .get_mut(supervisor)
            .and_then(Vec::pop)
            .expect("non-empty");
        load.add(&slot.host, &slot.supervisor);
        picked.push(slot.clone());
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(slots: &[(&str, u16)]) -> Vec<FreeSlot> {
        slots
            .iter()
            .map(|&(supervisor, port)| FreeSlot {
                supervisor: supervisor.to_owned(),
                host: format!("host-{supervisor}"),
                port,
            })
            .collect()
    }

    fn cluster() -> Vec<FreeSlot> {
        free(&[
            ("a", 6700),
            ("a", 6701),
            ("b", 6700),
            ("b", 6701),
            ("c", 6700),
            ("c", 6701),
        ])
    }

    fn worker(supervisor: &str, executors: &[usize]) -> AssignedWorker {
        worker_at(supervisor, 6700, executors)
    }

    fn worker_at(supervisor: &str, port: u16, executors: &[usize]) -> AssignedWorker {
        AssignedWorker {
            supervisor: supervisor.into(),
            host: format!("host-{supervisor}"),
            port,
            executors: executors.to_vec(),
        }
    }

    fn hosts(workers: &[AssignedWorker]) -> BTreeSet<&str> {
        workers.iter().map(|worker| worker.host.as_str()).collect()
    }

    fn placement(workers: &[AssignedWorker]) -> Vec<(String, Vec<usize>)> {
        workers
            .iter()
            .map(|worker| (worker.slot().to_string(), worker.executors.clone()))
            .collect()
    }

    #[test]
    fn a_first_schedule_spreads_workers_over_supervisors() {
        let free = cluster();
        let lost = BTreeSet::new();
        let schedule = schedule(&Request {
            executors: 7,
            workers: 3,
            current: &[],
            lost: &lost,
            free: &free,
            mode: Mode::Reshuffle,
        })
        .unwrap();
        assert_eq!(
            placement(&schedule.workers),
            [
                ("a:6700".to_owned(), vec![0, 3, 6]),
                ("b:6700".to_owned(), vec![1, 4]),
                ("c:6700".to_owned(), vec![2, 5]),
            ]
        );
        assert_eq!(schedule.note, None);
        assert_eq!(schedule.workers[1].host, "host-b");
    }

    #[test]
    fn too_few_slots_are_reported() {
        let free = free(&[("a", 6700)]);
        let lost = BTreeSet::new();
        let request = Request {
            executors: 4,
            workers: 3,
            current: &[],
            lost: &lost,
            free: &free,
            mode: Mode::Reshuffle,
        };
        let schedule = schedule(&request).unwrap();
        assert_eq!(
            placement(&schedule.workers),
            [("a:6700".to_owned(), vec![0, 1, 2, 3])]
        );
        assert_eq!(
            schedule.note.as_deref(),
            Some("running on 1 of 3 requested workers: not enough free slots")
        );
        let error = super::schedule(&Request {
            free: &[],
            ..request
        })
        .unwrap_err();
        assert_eq!(
            error,
            ScheduleError::NoSlots {
                workers: 3,
                supervisors: 0
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("not enough slots: 3 worker(s) requested")
        );
    }

    #[test]
    fn no_more_workers_than_executors() {
        let free = cluster();
        let lost = BTreeSet::new();
        let schedule = schedule(&Request {
            executors: 2,
            workers: 5,
            current: &[],
            lost: &lost,
            free: &free,
            mode: Mode::Reshuffle,
        })
        .unwrap();
        assert_eq!(schedule.workers.len(), 2);
        assert_eq!(schedule.note, None);
    }

    #[test]
    fn repair_moves_only_the_lost_workers_executors() {
        let current = vec![
            worker("a", &[0, 3]),
            worker("b", &[1, 4]),
            worker("c", &[2]),
        ];
        // Node b died: its slots are no longer free, the others' second ports are.
        let free = free(&[("a", 6701), ("c", 6701)]);
        let lost = BTreeSet::from([SlotId::new("b", 6700)]);
        let schedule = schedule(&Request {
            executors: 5,
            workers: 3,
            current: &current,
            lost: &lost,
            free: &free,
            mode: Mode::Repair,
        })
        .unwrap();
        assert_eq!(
            placement(&schedule.workers),
            [
                ("a:6700".to_owned(), vec![0, 3]),
                ("a:6701".to_owned(), vec![1, 4]),
                ("c:6700".to_owned(), vec![2]),
            ]
        );
        // Without free slots, the orphans go to the least-loaded live workers.
        let schedule = super::schedule(&Request {
            executors: 5,
            workers: 3,
            current: &current,
            lost: &lost,
            free: &[],
            mode: Mode::Repair,
        })
        .unwrap();
        assert_eq!(
            placement(&schedule.workers),
            [
                ("a:6700".to_owned(), vec![0, 3, 4]),
                ("c:6700".to_owned(), vec![1, 2])
            ]
        );
        assert!(schedule.note.unwrap().starts_with("running on 2 of 3"));
    }

    #[test]
    fn repair_with_everything_lost_needs_a_slot() {
        let current = vec![worker("a", &[0, 1])];
        let lost = BTreeSet::from([SlotId::new("a", 6700)]);
        let request = Request {
            executors: 2,
            workers: 1,
            current: &current,
            lost: &lost,
            free: &[],
            mode: Mode::Repair,
        };
        assert!(matches!(
            schedule(&request),
            Err(ScheduleError::NoSlots { .. })
        ));
        let free = free(&[("b", 6700)]);
        let schedule = schedule(&Request {
            free: &free,
            ..request
        })
        .unwrap();
        assert_eq!(
            placement(&schedule.workers),
            [("b:6700".to_owned(), vec![0, 1])]
        );
    }

    #[test]
    fn reshuffle_keeps_live_slots_and_grows() {
        let current = vec![worker("a", &[0, 2]), worker("b", &[1, 3])];
        let free = free(&[("a", 6701), ("b", 6701), ("c", 6700)]);
        let lost = BTreeSet::new();
        let schedule = schedule(&Request {
            executors: 6,
            workers: 3,
            current: &current,
            lost: &lost,
            free: &free,
            mode: Mode::Reshuffle,
        })
        .unwrap();
        assert_eq!(
            placement(&schedule.workers),
            [
                ("a:6700".to_owned(), vec![0, 3]),
                ("b:6700".to_owned(), vec![1, 4]),
                ("c:6700".to_owned(), vec![2, 5]),
            ]
        );
    }

    #[test]
    fn a_rebalance_from_three_to_two_workers_ends_on_two_hosts() {
        // Three hosts; the topology's workers crowd host a after earlier repairs.
        let current = vec![
            worker_at("a", 6700, &[0, 3]),
            worker_at("a", 6701, &[1, 4]),
            worker_at("b", 6700, &[2, 5]),
        ];
        let free = free(&[("b", 6701), ("c", 6700), ("c", 6701)]);
        let lost = BTreeSet::new();
        let schedule = schedule(&Request {
            executors: 6,
            workers: 2,
            current: &current,
            lost: &lost,
            free: &free,
            mode: Mode::Reshuffle,
        })
        .unwrap();
        assert_eq!(hosts(&schedule.workers).len(), 2, "{schedule:?}");
        // Both stay in live slots: spreading needed no move.
        assert_eq!(
            placement(&schedule.workers),
            [
                ("a:6700".to_owned(), vec![0, 2, 4]),
                ("b:6700".to_owned(), vec![1, 3, 5]),
            ]
        );
    }

    #[test]
    fn keeping_live_slots_still_spreads_over_hosts() {
        // Both workers on host a while b and c have room: one stays, one moves.
        let current = vec![worker_at("a", 6700, &[0, 2]), worker_at("a", 6701, &[1, 3])];
        let free = free(&[("b", 6700), ("c", 6700)]);
        let lost = BTreeSet::new();
        let schedule = schedule(&Request {
            executors: 4,
            workers: 2,
            current: &current,
            lost: &lost,
            free: &free,
            mode: Mode::Reshuffle,
        })
        .unwrap();
        assert_eq!(
            placement(&schedule.workers),
            [
                ("a:6700".to_owned(), vec![0, 2]),
                ("b:6700".to_owned(), vec![1, 3]),
            ]
        );
    }

    #[test]
    fn supervisors_on_one_host_count_as_one_host() {
        let mut free = free(&[("s1", 6700), ("s2", 6700), ("s3", 6700)]);
        free[1].host = free[0].host.clone();
        let lost = BTreeSet::new();
        let request = Request {
            executors: 4,
            workers: 2,
            current: &[],
            lost: &lost,
            free: &free,
            mode: Mode::Reshuffle,
        };
        let first = schedule(&request).unwrap();
        assert_eq!(
            hosts(&first.workers),
            BTreeSet::from(["host-s1", "host-s3"])
        );
        // A replacement for a lost worker goes to a host the topology does not use yet.
        let lost = BTreeSet::from([SlotId::new("s3", 6700)]);
        let rest = [
            free[1].clone(),
            FreeSlot {
                supervisor: "s4".into(),
                host: "host-s4".into(),
                port: 6700,
            },
        ];
        let repaired = schedule(&Request {
            current: &first.workers,
            lost: &lost,
            free: &rest,
            mode: Mode::Repair,
            ..request
        })
        .unwrap();
        assert_eq!(
            hosts(&repaired.workers),
            BTreeSet::from(["host-s1", "host-s4"])
        );
    }

    #[test]
    fn every_executor_is_placed_exactly_once() {
        // A small exhaustive sweep over shapes.
        let cluster = cluster();
        for executors in 1..9 {
            for workers in 1..8 {
                for free_count in 0..=cluster.len() {
                    let free = &cluster[..free_count];
                    let lost = BTreeSet::new();
                    let request = Request {
                        executors,
                        workers,
                        current: &[],
                        lost: &lost,
                        free,
                        mode: Mode::Reshuffle,
                    };
                    let Ok(first) = schedule(&request) else {
                        assert_eq!(free_count, 0);
                        continue;
                    };
                    let mut all: Vec<usize> = first
                        .workers
                        .iter()
                        .flat_map(|w| w.executors.clone())
                        .collect();
                    all.sort_unstable();
                    assert_eq!(all, (0..executors).collect::<Vec<_>>());
                    assert!(first.workers.len() <= workers);
                    assert!(
                        first
                            .workers
                            .iter()
                            .all(|worker| !worker.executors.is_empty())
                    );
                    // Lose the first worker and repair with what is left.
                    let lost = BTreeSet::from([first.workers[0].slot()]);
                    let used: BTreeSet<SlotId> =
                        first.workers.iter().map(AssignedWorker::slot).collect();
                    let rest: Vec<FreeSlot> = cluster
                        .iter()
                        .filter(|slot| !used.contains(&slot.id()))
                        .cloned()
                        .collect();
                    let Ok(repaired) = schedule(&Request {
                        current: &first.workers,
                        lost: &lost,
                        free: &rest,
                        mode: Mode::Repair,
                        ..request
                    }) else {
                        assert!(first.workers.len() == 1 && rest.is_empty());
                        continue;
                    };
                    let mut all: Vec<usize> = repaired
                        .workers
                        .iter()
                        .flat_map(|w| w.executors.clone())
                        .collect();
                    all.sort_unstable();
                    assert_eq!(all, (0..executors).collect::<Vec<_>>());
                    assert!(
                        !repaired
                            .workers
                            .iter()
                            .any(|worker| lost.contains(&worker.slot()))
                    );
                }
            }
        }
    }
}
