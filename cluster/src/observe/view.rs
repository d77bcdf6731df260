//! What the REST API and the daemons' `/metrics` show: a snapshot of the cluster (or of a
//! local run) taken at one time, and the sums over its tasks.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use squall_core::metrics::TopologyMetrics;
use squall_core::worker::figures::{ErrorFigures, TaskFigures};
use squall_core::worker::{ComponentDescription, WorkerHeartbeat};

use crate::records::{ErrorRecord, NimbusInfo, SupervisorInfo};

/// One worker of a topology.
#[derive(Debug, Clone)]
pub struct WorkerView {
    /// Its supervisor.
    pub supervisor: String,
    /// Its host.
    pub host: String,
    /// Its slot port.
    pub port: u16,
    /// Executors assigned to it.
    pub executors: Vec<usize>,
    /// Its last heartbeat, once it sent one.
    pub heartbeat: Option<WorkerHeartbeat>,
}

/// One topology.
#[derive(Debug, Clone)]
pub struct TopologyView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `active`, `inactive`, `killed` or `rebalancing`.
    pub status: String,
    /// When it was submitted (or started), ms since the epoch.
    pub submitted_ms: u64,
    /// Workers asked for.
    pub workers_requested: usize,
    /// Its components.
    pub components: Vec<ComponentDescription>,
    /// Executors in all.
    pub executors: usize,
    /// Its workers.
    pub workers: Vec<WorkerView>,
    /// Errors reported about it by the control plane (launch failures, crashes).
    pub control_errors: Vec<ErrorRecord>,
}

/// One supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorView {
    /// Its registration.
    pub info: SupervisorInfo,
    /// Slots running workers.
    pub used: usize,
}

/// The whole cluster at one time.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// When it was taken, ms since the epoch.
    pub taken_ms: u64,
    /// The nimbuses, leader first.
    pub nimbuses: Vec<NimbusInfo>,
    /// The supervisors.
    pub supervisors: Vec<SupervisorView>,
    /// The topologies.
    pub topologies: Vec<TopologyView>,
}

/// A task's figures with where it runs.
#[derive(Debug, Clone)]
pub struct PlacedTask<'a> {
    /// The worker.
    pub worker: &'a WorkerView,
    /// The figures.
    pub figures: &'a TaskFigures,
}

/// Sums over several tasks; latency histograms merged bucket by bucket.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Tuples emitted.
    pub emitted: u64,
    /// Records sent to target tasks.
    pub transferred: u64,
    /// Tuples executed.
    pub executed: u64,
    /// Tuples (trees) acked.
    pub acked: u64,
    /// Tuples (trees) failed.
    pub failed: u64,
    /// Execute latency.
    pub execute_latency: Histogram<u64>,
    /// Complete latency.
    pub complete_latency: Histogram<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            emitted: 0,
            transferred: 0,
            executed: 0,
            acked: 0,
            failed: 0,
            execute_latency: TopologyMetrics::empty_histogram(),
            complete_latency: TopologyMetrics::empty_histogram(),
        }
    }
}

impl Totals {
    /// Adds one task's figures.
    pub fn add(&mut self, task: &TaskFigures) {
        self.emitted += task.emitted;
        self.transferred += task.transferred;
        self.executed += task.executed;
        self.acked += task.acked;
        self.failed += task.failed;
        task.execute_latency.add_to(&mut self.execute_latency);
        task.complete_latency.add_to(&mut self.complete_latency);
    }

    /// The sums over `tasks`.
    pub fn of<'a>(tasks: impl IntoIterator<Item = &'a TaskFigures>) -> Self {
        let mut totals = Self::default();
        for task in tasks {
            totals.add(task);
        }
        totals
    }
}

impl TopologyView {
    /// Every task reported by its workers, by task id.
    pub fn tasks(&self) -> Vec<PlacedTask<'_>> {
        let mut tasks: Vec<PlacedTask<'_>> = self
            .workers
            .iter()
            .filter_map(|worker| Some((worker, worker.heartbeat.as_ref()?)))
            .flat_map(|(worker, beat)| {
                beat.figures
                    .tasks
                    .iter()
                    .map(move |figures| PlacedTask { worker, figures })
            })
            .collect();
        tasks.sort_by_key(|task| task.figures.task);
        tasks
    }

    /// The task errors its workers reported, oldest first, with the worker.
    pub fn task_errors(&self) -> Vec<(&WorkerView, &ErrorFigures)> {
        let mut errors: Vec<(&WorkerView, &ErrorFigures)> = self
            .workers
            .iter()
            .filter_map(|worker| Some((worker, worker.heartbeat.as_ref()?)))
            .flat_map(|(worker, beat)| beat.figures.errors.iter().map(move |error| (worker, error)))
            .collect();
        errors.sort_by_key(|(_, error)| error.time_ms);
        errors
    }

    /// Per component, the sums over its tasks.
    pub fn component_totals(&self) -> BTreeMap<String, Totals> {
        let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
        for task in self.tasks() {
            totals
                .entry(task.figures.component.clone())
                .or_default()
                .add(task.figures);
        }
        totals
    }

    /// Tasks in all.
    pub fn task_count(&self) -> usize {
        self.components
            .iter()
            .map(|component| component.tasks)
            .sum()
    }
}

impl ClusterView {
    /// The topology with this id or name.
    pub fn topology(&self, id_or_name: &str) -> Option<&TopologyView> {
        self.topologies
            .iter()
            .find(|topology| topology.id == id_or_name || topology.name == id_or_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_core::worker::figures::LatencyBuckets;

    #[test]
    fn component_latencies_are_merged_from_every_task_exactly() {
        let mut all = TopologyMetrics::empty_histogram();
        let mut tasks = Vec::new();
        for (task, values) in [
            (1u32, [5_000u64, 7_000, 90_000]),
            (2, [1_000_000, 12, 4_000]),
        ] {
            let mut histogram = TopologyMetrics::empty_histogram();
            for value in values {
                histogram.record(value).unwrap();
                all.record(value).unwrap();
            }
            tasks.push(TaskFigures {
                task,
                component: "split".into(),
                executed: 3,
                execute_latency: LatencyBuckets::of(&histogram),
                ..TaskFigures::default()
            });
        }
        let totals = Totals::of(&tasks);
        assert_eq!(totals.executed, 6);
        assert_eq!(totals.execute_latency.len(), 6);
        for quantile in [0.25, 0.5, 0.75, 1.0] {
            assert_eq!(
                totals.execute_latency.value_at_quantile(quantile),
                all.value_at_quantile(quantile)
            );
        }
    }
}
