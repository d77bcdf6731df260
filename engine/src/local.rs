//! Local mode: topologies running in this process, managed by name like on a cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::metrics::TopologyMetrics;
use crate::runtime::{KillReport, RunningTopology, StartError, TaskError};
use crate::topology::Topology;

/// What a local cluster refuses.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// A topology of that name is already running.
    #[error("a topology named {0:?} is already running")]
    AlreadyRunning(String),
    /// No topology of that name is running.
    #[error("no topology named {0:?} is running")]
    NotRunning(String),
    /// The topology could not start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Runs topologies in this process: the embedded engine, and the way tests run real
/// topologies without a cluster.
///
/// ```
/// use std::time::Duration;
/// use squall_core::{Bolt, BoltOutput, LocalCluster, Spout, SpoutOutput, TopologyBuilder, TopologyConfig, Tuple};
///
/// struct Count(u64);
/// impl Spout for Count {
///     fn declare_outputs(&self, d: &mut squall_core::OutputDeclarer) { d.declare(&["n"]); }
///     fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) {
///         if self.0 < 1000 { self.0 += 1; out.emit(&[self.0.into()]); }
///     }
/// }
/// struct Drop;
/// impl Bolt for Drop {
///     fn execute(&mut self, _: &Tuple<'_>, _: &mut BoltOutput<'_>) {}
/// }
///
/// let mut builder = TopologyBuilder::new();
/// builder.set_spout("count", || Count(0), 1);
/// builder.set_bolt("drop", || Drop, 1).shuffle_grouping("count");
/// let topology = builder.build("doc", TopologyConfig::default()).unwrap();
///
/// let cluster = LocalCluster::new();
/// cluster.submit(topology).unwrap();
/// let report = cluster.kill("doc", Duration::from_secs(5)).unwrap();
/// assert!(report.drained);
/// ```
#[derive(Debug, Default)]
pub struct LocalCluster {
    running: Mutex<BTreeMap<String, Arc<Mutex<Option<RunningTopology>>>>>,
}

impl LocalCluster {
    /// An empty local cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `topology` under its name.
    ///
    /// # Errors
    /// When a topology of that name runs already, or threads cannot start.
    pub fn submit(&self, topology: Arc<Topology>) -> Result<(), LocalClusterError> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let name = topology.name().to_owned();
        if running.contains_key(&name) {
            return Err(LocalClusterError::AlreadyRunning(name));
        }
        let handle = run(topology)?;
        running.insert(name, Arc::new(Mutex::new(Some(handle))));
        Ok(())
    }

    fn with<R>(
        &self,
        name: &str,
        f: impl FnOnce(&RunningTopology) -> R,
    ) -> Result<R, LocalClusterError> {
        let entry = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| LocalClusterError::NotRunning(name.to_owned()))?;
        let guard = entry.lock().unwrap_or_else(PoisonError::into_inner);
        let handle = guard
            .as_ref()
            .ok_or_else(|| LocalClusterError::NotRunning(name.to_owned()))?;
        Ok(f(handle))
    }

    /// Names of the running topologies.
    pub fn topologies(&self) -> Vec<String> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Resumes the spouts of `name`.
    ///
    /// # Errors
    /// When no such topology runs.
    pub fn activate(&self, name: &str) -> Result<(), LocalClusterError> {
        self.with(name, RunningTopology::activate)
    }

    /// Pauses the spouts of `name`.
    ///
    /// # Errors
    /// When no such topology runs.
    pub fn deactivate(&self, name: &str) -> Result<(), LocalClusterError> {
        self.with(name, RunningTopology::deactivate)
    }

    /// Figures of `name`.
    ///
    /// # Errors
    /// When no such topology runs.
    pub fn metrics(&self, name: &str) -> Result<TopologyMetrics, LocalClusterError> {
        self.with(name, RunningTopology::metrics)
    }

    /// Errors reported by the tasks of `name`.
    ///
    /// # Errors
    /// When no such topology runs.
    pub fn errors(&self, name: &str) -> Result<Vec<TaskError>, LocalClusterError> {
        self.with(name, RunningTopology::errors)
    }

    /// Kills `name`: deactivates it, lets what is in flight drain for up to `wait`, stops
    /// and joins its threads.
    ///
    /// # Errors
    /// When no such topology runs.
    pub fn kill(&self, name: &str, wait: Duration) -> Result<KillReport, LocalClusterError> {
        let entry = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .ok_or_else(|| LocalClusterError::NotRunning(name.to_owned()))?;
        let handle = entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| LocalClusterError::NotRunning(name.to_owned()))?;
        Ok(handle.kill(wait))
    }

    /// Kills every topology, each with `wait` to drain.
    pub fn shutdown(&self, wait: Duration) -> Vec<(String, KillReport)> {
        self.topologies()
            .into_iter()
            .filter_map(|name| self.kill(&name, wait).ok().map(|report| (name, report)))
            .collect()
    }
}

/// Starts every executor of `topology` in this process and returns its handle.
///
/// # Errors
/// When threads cannot start.
pub fn run(topology: Arc<Topology>) -> Result<RunningTopology, StartError> {
    crate::runtime::start::start_local(topology)
}
