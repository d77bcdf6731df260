//! Which workers the leader considers dead, judged by its own clock.
//!
//! Heartbeats carry the worker's wall-clock time, but the leader never compares clocks:
//! it notes *when it saw each heartbeat change*. A worker is dead when its heartbeat has
//! not changed for the worker timeout, or when it never sent one within the start timeout
//! of being assigned. After a leader change or a ZooKeeper outage the tracker starts
//! afresh, so nobody is declared dead for heartbeats that could not be relayed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::records::{Assignment, SlotId, WorkerBeat};

#[derive(Debug, Clone)]
struct Seen {
    /// The heartbeat time last read (`None`: no heartbeat node).
    beat_ms: Option<u64>,
    /// When it last changed (or when the worker was assigned).
    since: Instant,
    /// Whether it changed since the worker was assigned.
    started: bool,
    executors: Vec<usize>,
}

/// The leader's memory of worker heartbeats.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatTracker {
    seen: BTreeMap<(String, SlotId), Seen>,
}

impl HeartbeatTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything (new leadership, or heartbeats could not be read for a while).
    pub fn reset(&mut self) {
        self.seen.clear();
    }

    /// Notes the assignments and the heartbeats read at `now`. `beats` maps topology id
    /// to its heartbeats by slot name (`<supervisor>:<port>`).
    pub fn observe(
        &mut self,
        assignments: &BTreeMap<String, Assignment>,
        beats: &BTreeMap<String, BTreeMap<String, WorkerBeat>>,
        now: Instant,
    ) {
        let mut live = BTreeSet::new();
        for (topology_id, assignment) in assignments {
            for worker in &assignment.workers {
                let slot = worker.slot();
                let beat_ms = beats
                    .get(topology_id)
                    .and_then(|beats| beats.get(&slot.to_string()))
                    .map(|beat| beat.heartbeat.time_ms);
                let key = (topology_id.clone(), slot);
                let fresh = Seen {
                    beat_ms,
                    since: now,
                    started: false,
                    executors: worker.executors.clone(),
                };
                let entry = self
                    .seen
                    .entry(key.clone())
                    .or_insert_with(|| fresh.clone());
                if entry.executors != worker.executors {
                    // Reassigned: the worker restarts, give it the start timeout again.
                    *entry = fresh;
                } else if beat_ms != entry.beat_ms {
                    entry.beat_ms = beat_ms;
                    entry.since = now;
                    entry.started = true;
                }
                live.insert(key);
            }
        }
        self.seen.retain(|key, _| live.contains(key));
    }

    /// The workers dead at `now`.
    pub fn dead(
        &self,
        now: Instant,
        worker_timeout: Duration,
        start_timeout: Duration,
    ) -> BTreeSet<(String, SlotId)> {
        self.seen
            .iter()
            .filter(|(_, seen)| {
                let quiet = now.saturating_duration_since(seen.since);
                quiet
                    > if seen.started {
                        worker_timeout
                    } else {
                        start_timeout
                    }
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::WorkerHeartbeat;
    use crate::records::AssignedWorker;

    fn assignment(executors: Vec<usize>) -> BTreeMap<String, Assignment> {
        BTreeMap::from([(
            "wc-1".to_owned(),
            Assignment {
                topology_id: "wc-1".into(),
                topology: "wc".into(),
                version: 1,
                active: true,
                artifact: "d".into(),
                args: Vec::new(),
                parallelism: BTreeMap::new(),
                executors: executors.len(),
                workers: vec![AssignedWorker {
                    supervisor: "a".into(),
                    host: "h".into(),
                    port: 6700,
                    executors,
                }],
            },
        )])
    }

    fn beat(time_ms: u64) -> BTreeMap<String, BTreeMap<String, WorkerBeat>> {
        BTreeMap::from([(
            "wc-1".to_owned(),
            BTreeMap::from([(
                "a:6700".to_owned(),
                WorkerBeat {
                    supervisor: "a".into(),
                    port: 6700,
                    relayed_ms: time_ms,
                    heartbeat: WorkerHeartbeat {
                        pid: 1,
                        time_ms,
                        topology_id: "wc-1".into(),
                        version: 1,
                        executors: vec![0],
                        executed: 0,
                        emitted: 0,
                        errors: 0,
                        metrics_endpoint: None,
                        figures: Default::default(),
                    },
                },
            )]),
        )])
    }

    #[test]
    fn silence_is_judged_by_the_leaders_clock() {
        let timeout = Duration::from_secs(10);
        let start_timeout = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut tracker = HeartbeatTracker::new();
        tracker.observe(&assignment(vec![0]), &BTreeMap::new(), t0);
        tracker.observe(
            &assignment(vec![0]),
            &BTreeMap::new(),
            t0 + Duration::from_secs(20),
        );
        assert!(
            tracker
                .dead(t0 + Duration::from_secs(30), timeout, start_timeout)
                .is_empty()
        );
        assert_eq!(
            tracker
                .dead(t0 + Duration::from_secs(61), timeout, start_timeout)
                .len(),
            1,
            "never started"
        );
        // A heartbeat arrives; a stale one (same time) does not count as news.
        tracker.observe(&assignment(vec![0]), &beat(5), t0 + Duration::from_secs(5));
        tracker.observe(&assignment(vec![0]), &beat(5), t0 + Duration::from_secs(14));
        assert!(
            tracker
                .dead(t0 + Duration::from_secs(15), timeout, start_timeout)
                .is_empty()
        );
        assert_eq!(
            tracker
                .dead(t0 + Duration::from_secs(16), timeout, start_timeout)
                .len(),
            1
        );
        // Reassigned executors: the start timeout applies again, and the old heartbeat
        // is no news.
        tracker.observe(
            &assignment(vec![0, 1]),
            &beat(5),
            t0 + Duration::from_secs(16),
        );
        tracker.observe(
            &assignment(vec![0, 1]),
            &beat(5),
            t0 + Duration::from_secs(17),
        );
        assert!(
            tracker
                .dead(t0 + Duration::from_secs(40), timeout, start_timeout)
                .is_empty()
        );
        tracker.observe(
            &assignment(vec![0, 1]),
            &beat(41),
            t0 + Duration::from_secs(41),
        );
        assert_eq!(
            tracker
                .dead(t0 + Duration::from_secs(52), timeout, start_timeout)
                .len(),
            1
        );
        // Unassigned workers are forgotten; a reset forgets everything.
        tracker.observe(&BTreeMap::new(), &BTreeMap::new(), t0);
        assert!(tracker.seen.is_empty());
        tracker.observe(&assignment(vec![0]), &beat(5), t0);
        tracker.reset();
        assert!(
            tracker
                .dead(t0 + Duration::from_secs(999), timeout, start_timeout)
                .is_empty()
        );
    }
}
