//! One drill in progress: the client, the tracked topology's ledger, the local cluster when
//! the drill started one, and the wait for a recovery.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use squall::cluster::NimbusClient;

use crate::drill::local_cluster::LocalCluster;
use crate::drill::probe::{ClusterView, Expectation};

/// How often the cluster and the ledger are looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// How much longer than its bound the drill waits for a recovery, so that a missed bound
/// still gets a time.
const GRACE: Duration = Duration::from_secs(15);

/// The state of a running drill.
#[derive(Debug)]
pub struct Session {
    /// A client of the cluster.
    pub client: NimbusClient,
    /// The tracked topology's name.
    pub topology: String,
    /// Where its ledger is written.
    pub state_dir: PathBuf,
    /// The cluster the drill started, if it did.
    pub local: Option<LocalCluster>,
    /// Workers the topology should run now.
    pub workers: usize,
    /// Whether its spouts should run now.
    pub active: bool,
}

/// How a wait for recovery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Time from the fault until the cluster was consistent and the ledger advanced.
    pub time: Option<Duration>,
    /// The last inconsistency seen.
    pub problem: Option<String>,
}

impl Session {
    /// How far the ledger has got: the bytes of every ack log (each ack appends a line).
    pub fn progress(&self) -> u64 {
        std::fs::read_dir(&self.state_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("acked-"))
            .filter_map(|entry| entry.metadata().ok())
            .map(|metadata| metadata.len())
            .sum()
    }

    /// The expectation of a healthy cluster now.
    pub fn healthy(&self) -> Expectation {
        Expectation {
            workers: self.workers,
            active: self.active,
            ..Expectation::default()
        }
    }

    /// What the cluster says now: the leader, `list` through it, and the topology's status.
    ///
    /// # Errors
    /// What failed, in words.
    pub fn view(&self) -> Result<ClusterView, String> {
        let leader = self
            .client
            .leader()
            .map_err(|error| format!("no leader: {error}"))?;
        let (topologies, _) = self
            .client
            .list()
            .map_err(|error| format!("`list` fails: {error}"))?;
        if !topologies
            .iter()
            .any(|summary| summary.name == self.topology)
        {
            return Err(format!("`list` does not show {}", self.topology));
        }
        let report = self
            .client
            .status(&self.topology)
            .map_err(|error| format!("`status` fails: {error}"))?;
        Ok(ClusterView::of(&report, leader.id))
    }

    /// Waits until the cluster matches `expected` and, after that, the ledger advances;
    /// returns the time since `since`. Gives up `GRACE` after `bound`.
    pub fn await_recovery(
        &self,
        since: Instant,
        expected: &Expectation,
        bound: Duration,
    ) -> Recovery {
        let give_up = since + bound + GRACE;
        let mut problem = None;
        // The ledger's progress when the cluster was first seen consistent (again).
        let mut consistent_at: Option<u64> = None;
        while Instant::now() < give_up {
            match self.view().and_then(|view| view.check(expected)) {
                Ok(()) => {
                    let progress = self.progress();
                    match consistent_at {
                        Some(before) if progress > before => {
                            return Recovery {
                                time: Some(since.elapsed()),
                                problem: None,
                            };
                        }
                        Some(_) => {}
                        None => consistent_at = Some(progress),
                    }
                }
                Err(now) => {
                    consistent_at = None;
                    problem = Some(now);
                }
            }
            std::thread::sleep(POLL);
        }
        Recovery {
            time: None,
            problem: Some(problem.unwrap_or_else(|| "the ledger did not advance".into())),
        }
    }

    /// Waits until the ledger has not advanced for `quiet`, at most `timeout`; returns how
    /// long that took from the call, or `None`.
    pub fn await_quiet(&self, quiet: Duration, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut last = self.progress();
        let mut since = Instant::now();
        while start.elapsed() < timeout {
            std::thread::sleep(POLL);
            let now = self.progress();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return Some(since - start);
            }
        }
        None
    }

    /// The local cluster.
    ///
    /// # Errors
    /// When the drill runs against an existing cluster.
    pub fn local(&mut self) -> anyhow::Result<&mut LocalCluster> {
        self.local
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("this fault needs a cluster the drill started"))
    }
}
