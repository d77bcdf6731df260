//! What a supervisor does with each of its slots: pure functions from the assignments and
//! what it observes of its workers to the next step.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::plan::WorkerPlan;
use crate::records::{Assignment, SlotId};
use crate::validate;

/// The worker a slot should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredWorker {
    /// The topology.
    pub topology_id: String,
    /// Its executors.
    pub executors: Vec<usize>,
    /// The artifact's digest.
    pub artifact: String,
    /// The plan to give it.
    pub plan: WorkerPlan,
}

/// What the slots of supervisor `supervisor` should run, by port, given every assignment.
/// Artifacts are unpacked in `artifacts_dir/<digest>`.
pub fn desired_workers(
    supervisor: &str,
    cluster: &str,
    transport: &str,
    artifacts_dir: &Path,
    assignments: &BTreeMap<String, Assignment>,
) -> BTreeMap<u16, DesiredWorker> {
    let mut desired = BTreeMap::new();
    for assignment in assignments.values() {
        // Both become file names here (the worker's directory, the artifact's); the store
        // checks them too, but this is where they meet the filesystem.
        let checked = validate::topology_id("assignment topology_id", &assignment.topology_id)
            .and_then(|()| validate::digest("assignment artifact", &assignment.artifact));
        if let Err(error) = checked {
            tracing::warn!(%error, "skipping an assignment");
            continue;
        }
        for worker in assignment
            .workers
            .iter()
            .filter(|worker| worker.supervisor == supervisor)
        {
            let slot = SlotId::new(supervisor, worker.port);
            let Some(plan) = assignment.plan_for(
                &slot,
                cluster,
                artifacts_dir.join(&assignment.artifact),
                transport,
            ) else {
                continue;
            };
            desired.insert(
                worker.port,
                DesiredWorker {
                    topology_id: assignment.topology_id.clone(),
                    executors: worker.executors.clone(),
                    artifact: assignment.artifact.clone(),
                    plan,
                },
            );
        }
    }
    desired
}

/// What the supervisor sees of one of its workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedWorker {
    /// The topology it runs.
    pub topology_id: String,
    /// Its executors.
    pub executors: Vec<usize>,
    /// The plan it was last given.
    pub plan: WorkerPlan,
    /// How it ended, once it has.
    pub exit: Option<String>,
    /// How long ago it was asked to stop, if it was.
    pub stopping_for: Option<Duration>,
    /// How long ago it was started.
    pub running_for: Duration,
    /// Age of its latest heartbeat, if it wrote one.
    pub heartbeat_age: Option<Duration>,
}

/// Limits the supervisor applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Oldest acceptable heartbeat.
    pub worker: Duration,
    /// Longest wait for a new worker's first heartbeat.
    pub start: Duration,
    /// Longest wait between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

/// The next step for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Unpack the desired worker's artifact first.
    Fetch,
    /// Start the desired worker.
    Launch,
    /// Give the running worker the desired plan: its peers, its executors or its
    /// activation changed (a worker follows its plan file and restarts its executors
    /// itself when they change).
    Rewrite,
    /// Ask the worker to stop (SIGTERM); it is relaunched once gone if still desired.
    Stop {
        /// Why.
        reason: String,
    },
    /// Force the stopping worker to end (SIGKILL).
    Kill,
    /// Forget the ended worker; `crashed` when it ended unasked, with how.
    Reap {
        /// How it ended, when it was not asked to stop.
        crashed: Option<String>,
    },
}

/// The next step for a slot, or `None` when all is as it should be.
///
/// `artifact_ready`: the desired worker's artifact is unpacked. `may_launch`: the restart
/// back-off allows a launch now.
pub fn next_step(
    desired: Option<&DesiredWorker>,
    observed: Option<&ObservedWorker>,
    artifact_ready: bool,
    may_launch: bool,
    timeouts: &Timeouts,
) -> Option<Step> {
    let Some(observed) = observed else {
        desired?;
        return if !artifact_ready {
            Some(Step::Fetch)
        } else if may_launch {
            Some(Step::Launch)
        } else {
            None
        };
    };
    if let Some(exit) = &observed.exit {
        return Some(Step::Reap {
            crashed: observed.stopping_for.is_none().then(|| exit.clone()),
        });
    }
    if let Some(stopping_for) = observed.stopping_for {
        return (stopping_for >= timeouts.kill_grace).then_some(Step::Kill);
    }
    let Some(desired) = desired else {
        return Some(Step::Stop {
            reason: "no longer assigned".to_owned(),
        });
    };
    if desired.topology_id != observed.topology_id {
        return Some(Step::Stop {
            reason: "its slot now belongs to another topology".to_owned(),
        });
    }
    match observed.heartbeat_age {
        Some(age) if age > timeouts.worker => {
            return Some(Step::Stop {
                reason: format!("no heartbeat for {} ms", age.as_millis()),
            });
        }
        None if observed.running_for > timeouts.start => {
            return Some(Step::Stop {
                reason: format!(
                    "no first heartbeat within {} ms of starting",
                    timeouts.start.as_millis()
                ),
            });
        }
        _ => {}
    }
    (desired.plan != observed.plan).then_some(Step::Rewrite)
}

/// Restart back-off of one slot: the first crash restarts at once, later ones in a row wait
/// 0.5 s, 1 s, 2 s ... up to 10 s. A worker that ran for a minute resets the count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Crashes in a row.
    pub crashes: u32,
}

impl Backoff {
    /// How long after a crash the next launch waits.
    pub fn delay(self) -> Duration {
        match self.crashes {
            0 | 1 => Duration::ZERO,
            n => Duration::from_millis(500 << (n - 2).min(5)).min(Duration::from_secs(10)),
        }
    }

    /// Notes a crash of a worker that had run for `ran`.
    pub fn crashed(&mut self, ran: Duration) {
        if ran >= Duration::from_secs(60) {
            self.crashes = 1;
        } else {
            self.crashes += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::AssignedWorker;

    const DIGEST: &str = "5e9b3c2d1f0a4b6c8d7e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c";

    fn assignment(workers: Vec<(&str, u16, Vec<usize>)>) -> Assignment {
        Assignment {
            topology_id: "wc-1".into(),
            topology: "wc".into(),
            version: 4,
            active: true,
            artifact: DIGEST.into(),
            args: Vec::new(),
            parallelism: BTreeMap::new(),
            executors: 3,
            workers: workers
                .into_iter()
                .map(|(supervisor, port, executors)| AssignedWorker {
                    supervisor: supervisor.into(),
                    host: format!("host-{supervisor}"),
                    port,
                    executors,
                })
                .collect(),
        }
    }

    fn desired() -> BTreeMap<u16, DesiredWorker> {
        let assignments = BTreeMap::from([(
            "wc-1".to_owned(),
            assignment(vec![("a", 6700, vec![0, 2]), ("b", 6700, vec![1])]),
        )]);
        desired_workers(
            "a",
            "prod",
            "mio",
            Path::new("/var/artifacts"),
            &assignments,
        )
    }

    fn observed(desired: &DesiredWorker) -> ObservedWorker {
        ObservedWorker {
            topology_id: desired.topology_id.clone(),
            executors: desired.executors.clone(),
            plan: desired.plan.clone(),
            exit: None,
            stopping_for: None,
            running_for: Duration::from_secs(5),
            heartbeat_age: Some(Duration::from_millis(300)),
        }
    }

    const TIMEOUTS: Timeouts = Timeouts {
        worker: Duration::from_secs(10),
        start: Duration::from_secs(60),
        kill_grace: Duration::from_secs(5),
    };

    #[test]
    fn each_supervisor_runs_its_own_workers() {
        let desired = desired();
        assert_eq!(desired.len(), 1);
        let worker = &desired[&6700];
        assert_eq!(worker.executors, [0, 2]);
        assert_eq!(worker.plan.this_worker, 0);
        assert_eq!(
            worker.plan.artifact_dir,
            Path::new("/var/artifacts").join(DIGEST)
        );
        assert_eq!(worker.plan.cluster_id, "prod");
        assert_eq!(worker.plan.workers[1].host, "host-b");
    }

    #[test]
    fn assignments_whose_values_are_paths_are_skipped() {
        let good = assignment(vec![("a", 6700, vec![0, 1, 2])]);
        let escaping_id = Assignment {
            topology_id: "../../escape-1".into(),
            workers: vec![AssignedWorker {
                port: 6701,
                ..good.workers[0].clone()
            }],
            ..good.clone()
        };
        let absolute_digest = Assignment {
            topology_id: "wc-2".into(),
            artifact: "/tmp/elsewhere".into(),
            workers: vec![AssignedWorker {
                port: 6702,
                ..good.workers[0].clone()
            }],
            ..good.clone()
        };
        let assignments = BTreeMap::from([
            ("wc-1".to_owned(), good),
            ("escape".to_owned(), escaping_id),
            ("wc-2".to_owned(), absolute_digest),
        ]);
        let desired = desired_workers(
            "a",
            "prod",
            "mio",
            Path::new("/var/artifacts"),
            &assignments,
        );
        assert_eq!(desired.keys().copied().collect::<Vec<_>>(), [6700]);
    }

    #[test]
    fn missing_workers_are_fetched_then_launched() {
        let desired = desired();
        let want = desired.get(&6700);
        assert_eq!(
            next_step(want, None, false, true, &TIMEOUTS),
            Some(Step::Fetch)
        );
        assert_eq!(
            next_step(want, None, true, true, &TIMEOUTS),
            Some(Step::Launch)
        );
        assert_eq!(next_step(want, None, true, false, &TIMEOUTS), None);
        assert_eq!(next_step(None, None, true, true, &TIMEOUTS), None);
    }

    #[test]
    fn healthy_workers_are_left_alone_or_given_new_plans() {
        let desired = desired();
        let want = &desired[&6700];
        let running = observed(want);
        assert_eq!(
            next_step(Some(want), Some(&running), true, true, &TIMEOUTS),
            None
        );
        let mut moved = want.clone();
        moved.plan.workers[1].host = "host-c".into();
        moved.plan.version += 1;
        assert_eq!(
            next_step(Some(&moved), Some(&running), true, true, &TIMEOUTS),
            Some(Step::Rewrite)
        );
        let mut paused = want.clone();
        paused.plan.active = false;
        assert_eq!(
            next_step(Some(&paused), Some(&running), true, true, &TIMEOUTS),
            Some(Step::Rewrite)
        );
    }

    #[test]
    fn unwanted_changed_and_silent_workers_are_stopped() {
        let desired = desired();
        let want = &desired[&6700];
        let running = observed(want);
        assert_eq!(
            next_step(None, Some(&running), true, true, &TIMEOUTS),
            Some(Step::Stop {
                reason: "no longer assigned".into()
            })
        );
        let mut grown = want.clone();
        grown.executors = vec![0, 1, 2];
        grown.plan.workers[0].executors = vec![0, 1, 2];
        assert_eq!(
            next_step(Some(&grown), Some(&running), true, true, &TIMEOUTS),
            Some(Step::Rewrite)
        );
        let mut other = want.clone();
        other.topology_id = "other-1".into();
        assert_eq!(
            next_step(Some(&other), Some(&running), true, true, &TIMEOUTS),
            Some(Step::Stop {
                reason: "its slot now belongs to another topology".into()
            })
        );
        let silent = ObservedWorker {
            heartbeat_age: Some(Duration::from_secs(11)),
            ..running.clone()
        };
        assert_eq!(
            next_step(Some(want), Some(&silent), true, true, &TIMEOUTS),
            Some(Step::Stop {
                reason: "no heartbeat for 11000 ms".into()
            })
        );
        let never = ObservedWorker {
            heartbeat_age: None,
            running_for: Duration::from_secs(61),
            ..running.clone()
        };
        assert!(matches!(
            next_step(Some(want), Some(&never), true, true, &TIMEOUTS),
            Some(Step::Stop { .. })
        ));
        let starting = ObservedWorker {
            heartbeat_age: None,
            ..running
        };
        assert_eq!(
            next_step(Some(want), Some(&starting), true, true, &TIMEOUTS),
            None
        );
    }

    #[test]
    fn stopping_and_ended_workers() {
        let desired = desired();
        let want = &desired[&6700];
        let stopping = ObservedWorker {
            stopping_for: Some(Duration::from_secs(1)),
            ..observed(want)
        };
        assert_eq!(
            next_step(None, Some(&stopping), true, true, &TIMEOUTS),
            None
        );
        let overdue = ObservedWorker {
            stopping_for: Some(Duration::from_secs(5)),
            ..stopping.clone()
        };
        assert_eq!(
            next_step(None, Some(&overdue), true, true, &TIMEOUTS),
            Some(Step::Kill)
        );
        let stopped = ObservedWorker {
            exit: Some("signal 15".into()),
            ..stopping
        };
        assert_eq!(
            next_step(None, Some(&stopped), true, true, &TIMEOUTS),
            Some(Step::Reap { crashed: None })
        );
        let crashed = ObservedWorker {
            exit: Some("signal 9".into()),
            ..observed(want)
        };
        assert_eq!(
            next_step(Some(want), Some(&crashed), true, true, &TIMEOUTS),
            Some(Step::Reap {
                crashed: Some("signal 9".into())
            })
        );
    }

    #[test]
    fn back_off_grows_after_the_first_crash() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.delay(), Duration::ZERO);
        backoff.crashed(Duration::from_secs(1));
        assert_eq!(backoff.delay(), Duration::ZERO);
        backoff.crashed(Duration::from_secs(1));
        assert_eq!(backoff.delay(), Duration::from_millis(500));
        backoff.crashed(Duration::from_secs(1));
        assert_eq!(backoff.delay(), Duration::from_secs(1));
        for _ in 0..10 {
            backoff.crashed(Duration::from_secs(1));
        }
        assert_eq!(backoff.delay(), Duration::from_secs(10));
        backoff.crashed(Duration::from_secs(120));
        assert_eq!(backoff.delay(), Duration::ZERO);
    }
}
