//! Whether the cluster's state is what a recovered cluster's should be: the topology is
//! scheduled on the expected number of workers, each of which heartbeats afresh with the
//! current plan, none on a host or in a process that was killed, and a leader other than a
//! killed one answers.

use squall::cluster::protocol::TopologyReport;

/// A heartbeat older than this (as nimbus sees it) is stale: workers write one every
/// 500 ms and supervisors relay them every second by default.
pub const FRESH_BEAT_MS: u64 = 3_000;

/// What a recovered cluster looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    /// Workers assigned and heartbeating.
    pub workers: usize,
    /// Whether the spouts should run.
    pub active: bool,
    /// A supervisor that must run none of them (its host was lost).
    pub lost_supervisor: Option<String>,
    /// A process that must not be one of them (it was killed).
    pub killed_pid: Option<u32>,
    /// A nimbus that must not lead (it was killed).
    pub killed_leader: Option<String>,
    /// The assignment must be newer than this version (it was rebalanced).
    pub newer_than: Option<u64>,
}

/// One assigned worker's slot and its last relayed heartbeat, as a status report shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    /// Its supervisor.
    pub supervisor: String,
    /// Its port.
    pub port: u16,
    /// Its last heartbeat: pid, plan version, age in ms.
    pub beat: Option<(u32, u64, u64)>,
}

/// What a status report and a leader lookup say, reduced to what is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// The leading nimbus's id.
    pub leader: String,
    /// Whether the topology is active.
    pub active: bool,
    /// The assignment's version (`None`: not scheduled).
    pub version: Option<u64>,
    /// Its workers.
    pub workers: Vec<WorkerView>,
}

impl ClusterView {
    /// The view of `report`, answered by the nimbus `leader`.
    pub fn of(report: &TopologyReport, leader: String) -> Self {
        let assignment = report.assignment.as_ref();
        let workers = assignment
            .map(|assignment| {
                assignment
                    .workers
                    .iter()
                    .map(|worker| {
                        let beat = report
                            .heartbeats
                            .values()
                            .find(|beat| {
                                beat.supervisor == worker.supervisor && beat.port == worker.port
                            })
                            .map(|beat| {
                                (
                                    beat.heartbeat.pid,
                                    beat.heartbeat.version,
                                    report.now_ms.saturating_sub(beat.heartbeat.time_ms),
                                )
                            });
                        WorkerView {
                            supervisor: worker.supervisor.clone(),
                            port: worker.port,
                            beat,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            leader,
            active: report.record.status.is_active(),
            version: assignment.map(|assignment| assignment.version),
            workers,
        }
    }

    /// Whether this is what `expected` asks for; else what differs.
    ///
    /// # Errors
    /// The first difference, in words.
    pub fn check(&self, expected: &Expectation) -> Result<(), String> {
        if expected.killed_leader.as_deref() == Some(self.leader.as_str()) {
            return Err(format!("the killed nimbus {} still leads", self.leader));
        }
        if self.active != expected.active {
            return Err(format!(
                "the topology is {}",
                if self.active { "active" } else { "inactive" }
            ));
        }
        let Some(version) = self.version else {
            return Err("the topology is not scheduled".into());
        };
        if let Some(old) = expected.newer_than
            && version <= old
        {
            return Err(format!("the assignment is still version {version}"));
        }
        if self.workers.len() != expected.workers {
            return Err(format!(
                "{} workers assigned, {} expected",
                self.workers.len(),
                expected.workers
            ));
        }
        for worker in &self.workers {
            let slot = format!("{}:{}", worker.supervisor, worker.port);
            if expected.lost_supervisor.as_ref() == Some(&worker.supervisor) {
                return Err(format!(
                    "a worker is still assigned to the lost host ({slot})"
                ));
            }
            let Some((pid, beat_version, age_ms)) = worker.beat else {
                return Err(format!("worker {slot} has not heartbeated"));
            };
            if expected.killed_pid == Some(pid) {
                return Err(format!(
                    "worker {slot} still reports the killed process {pid}"
                ));
            }
            if beat_version != version {
                return Err(format!(
                    "worker {slot} runs plan version {beat_version}, not {version}"
                ));
            }
            if age_ms > FRESH_BEAT_MS {
                return Err(format!("worker {slot} last heartbeated {age_ms} ms ago"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> ClusterView {
        ClusterView {
            leader: "nimbus0".into(),
            active: true,
            version: Some(4),
            workers: (0..3)
                .map(|index| WorkerView {
                    supervisor: format!("host{index}"),
                    port: 6700,
                    beat: Some((100 + index, 4, 300)),
                })
                .collect(),
        }
    }

    fn expect(workers: usize) -> Expectation {
        Expectation {
            workers,
            active: true,
            ..Expectation::default()
        }
    }

    #[test]
    fn a_healthy_cluster_passes() {
        assert_eq!(healthy().check(&expect(3)), Ok(()));
    }

    #[test]
    fn each_difference_is_named() {
        let error = healthy().check(&expect(2)).unwrap_err();
        assert_eq!(error, "3 workers assigned, 2 expected");
        let error = healthy()
            .check(&Expectation {
                killed_pid: Some(101),
                ..expect(3)
            })
            .unwrap_err();
        assert!(error.contains("killed process 101"), "{error}");
        let error = healthy()
            .check(&Expectation {
                lost_supervisor: Some("host2".into()),
                ..expect(3)
            })
            .unwrap_err();
        assert!(error.contains("lost host (host2:6700)"), "{error}");
        let error = healthy()
            .check(&Expectation {
                killed_leader: Some("nimbus0".into()),
                ..expect(3)
            })
            .unwrap_err();
        assert!(error.contains("nimbus0 still leads"), "{error}");
        let error = healthy()
            .check(&Expectation {
                newer_than: Some(4),
                ..expect(3)
            })
            .unwrap_err();
        assert!(error.contains("still version 4"), "{error}");
        let error = healthy()
            .check(&Expectation {
                active: false,
                ..expect(3)
            })
            .unwrap_err();
        assert_eq!(error, "the topology is active");
    }

    #[test]
    fn stale_missing_and_outdated_beats_fail() {
        let mut view = healthy();
        view.workers[0].beat = Some((100, 4, FRESH_BEAT_MS + 1));
        assert!(view.check(&expect(3)).unwrap_err().contains("ms ago"));
        view.workers[0].beat = None;
        assert!(
            view.check(&expect(3))
                .unwrap_err()
                .contains("not heartbeated")
        );
        view.workers[0].beat = Some((100, 3, 0));
        assert!(view.check(&expect(3)).unwrap_err().contains("version 3"));
        view.version = None;
        assert!(
            view.check(&expect(3))
                .unwrap_err()
                .contains("not scheduled")
        );
    }
}
