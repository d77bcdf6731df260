//! The node daemon: registers its slots, runs the workers the assignments give it,
//! restarts those that crash or go silent, stops those no longer assigned, and relays
//! their heartbeats to ZooKeeper.
//!
//! Three tasks share the work. The *sync* task keeps the registration alive and turns the
//! assignments into the workers this node should run ([`decide::desired_workers`]). The
//! *monitor* loop, which never waits on ZooKeeper, compares them with the workers it runs
//! ([`decide::next_step`]) and acts; so workers keep running, and crashed ones are
//! restarted, while ZooKeeper or nimbus is unreachable. The *relay* task copies heartbeats
//! to ZooKeeper for the leader nimbus.

pub mod decide;
mod logs;
mod metrics;
pub mod pid_record;
pub mod process;

mod tasks;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use self::decide::{Backoff, DesiredWorker, Step, Timeouts, next_step};
use self::process::{LocalWorker, worker_dir};
use super::artifact;
use super::config::ClusterConfig;
use super::plan::WorkerHeartbeat;
use super::records::{SupervisorInfo, now_ms};
use super::secret::{Secret, SecretError};
use super::shutdown;
use super::store::{ZkIdentity, ZkStore};

/// Why a supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No usable secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Its directories cannot be created.
    #[error("cannot create {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The program that runs topology files cannot be found.
    #[error("cannot locate the squall binary for supervisor.worker_program: {0}")]
    Program(std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The metrics address cannot be served.
    #[error(transparent)]
    Metrics(#[from] crate::observe::http::HttpError),
}

/// Heartbeats of this node's workers, by (topology, port), for the relay task.
type Beats = Arc<Mutex<BTreeMap<(String, u16), WorkerHeartbeat>>>;

/// An error to record in ZooKeeper: (topology, source, message).
type ErrorReport = (String, String, String);

/// Runs a supervisor until SIGTERM or SIGINT.
///
/// # Errors
/// When the secret, the directories or the runtime is unusable.
pub fn run(config: ClusterConfig) -> Result<(), SupervisorError> {
    let secret = Secret::load(&config.cluster)?;
    shutdown::run_daemon(|stop| serve(config, secret, stop)).map_err(SupervisorError::Runtime)?
}

/// Runs a supervisor until `shutdown` turns true, then stops its workers and leaves.
///
/// # Errors
/// When the directories or the program for topology files are unusable.
pub async fn serve(
    config: ClusterConfig,
    secret: Secret,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SupervisorError> {
    let settings = &config.supervisor;
    let data_dir = settings.data_dir.clone();
    let artifacts_dir = data_dir.join("artifacts");
    let workers_dir = data_dir.join("workers");
    for dir in [&artifacts_dir, &workers_dir] {
        std::fs::create_dir_all(dir).map_err(|source| SupervisorError::Directory {
            path: dir.clone(),
            source,
        })?;
    }
    let worker_program = match &settings.worker_program {
        Some(program) => program.clone(),
        None => std::env::current_exe().map_err(SupervisorError::Program)?,
    };
    let beats: Beats = Arc::new(Mutex::new(BTreeMap::new()));
    let started_ms = now_ms();
    let metrics_server = if settings.metrics_bind.is_empty() {
        None
    } else {
        let loopback = settings
            .metrics_bind
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|address| address.ip().is_loopback());
        let access = match (&config.nimbus.http_key_file, loopback) {
            (Some(path), _) => Some(crate::observe::HttpAccess::Key(Secret::read(path)?)),
            (None, true) => Some(crate::observe::HttpAccess::Open),
            (None, false) => None,
        };
        let handler = metrics::handler(
            settings.id(),
            settings.host.clone(),
            settings.ports.len(),
            started_ms,
            beats.clone(),
            metrics::LogAccess {
                workers_dir: workers_dir.clone(),
                access,
            },
        );
        Some(crate::observe::http::HttpServer::start(
            &settings.metrics_bind,
            "squall-supervisor-metrics",
            handler,
        )?)
    };
    let info = SupervisorInfo {
        id: settings.id(),
        host: settings.host.clone(),
        ports: settings.ports.clone(),
        started_ms,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        metrics_endpoint: metrics_server
            .as_ref()
            .map(|server| crate::observe::advertised(server.local_addr(), &settings.host)),
    };
    tracing::info!(supervisor = %info.id, host = %info.host, ports = ?info.ports, "supervisor starting");

    let mut monitor = Monitor {
        config: config.clone(),
        secret: secret.clone(),
        id: info.id.clone(),
        artifacts_dir: artifacts_dir.clone(),
        workers_dir: workers_dir.clone(),
        worker_program,
        workers: BTreeMap::new(),
        backoff: BTreeMap::new(),
        desired: None,
        fetching: BTreeSet::new(),
        fetch_failed: BTreeMap::new(),
        beats,
        errors: None,
    };
    monitor.adopt();
    sweep_pid_dirs();

    let store = ZkStore::connect_retrying(
        &config.zookeeper,
        &ZkIdentity::from_secret(&secret),
        Duration::from_millis(500),
    )
    .await;
    let (desired_sender, mut desired) = watch::channel(None);
    let (error_sender, error_receiver) = mpsc::unbounded_channel();
    let (fetched_sender, mut fetched) = mpsc::unbounded_channel();
    monitor.errors = Some(error_sender);

    let sync = tokio::spawn(tasks::sync(
        store.clone(),
        info.clone(),
        config.clone(),
        desired_sender,
        shutdown.clone(),
    ));
    let relay = tokio::spawn(tasks::relay(
        store.clone(),
        info.id.clone(),
        Duration::from_millis(settings.heartbeat_relay_interval_ms),
        monitor.beats.clone(),
        shutdown.clone(),
    ));
    let reporter = tokio::spawn(tasks::report(store.clone(), error_receiver));
    let client = super::client::NimbusClient::new(config.clone(), secret);

    let mut tick = tokio::time::interval(Duration::from_millis(settings.monitor_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = desired.changed() => {
                if changed.is_err() {
                    break;
                }
                monitor.desired = desired.borrow_and_update().clone();
                monitor.clean_artifacts();
            }
            Some((digest, result)) = fetched.recv() => monitor.fetched(digest, result),
            () = crate::shutdown::requested(&mut shutdown) => break,
        }
        for digest in monitor.step() {
            tokio::spawn(tasks::fetch(
                store.clone(),
                client.clone(),
                digest,
                artifacts_dir.clone(),
                fetched_sender.clone(),
            ));
        }
    }

    tracing::info!("stopping workers");
    monitor.stop_all().await;
    sync.abort();
    relay.abort();
    tasks::forget_heartbeats(&store, &info.id, &monitor.ports_by_topology()).await;
    drop(monitor);
    let _ = tokio::time::timeout(Duration::from_secs(2), reporter).await;
    store.close().await;
    drop(metrics_server);
    tracing::info!(supervisor = %info.id, "supervisor stopped");
    Ok(())
}

/// The monitor loop's state: the workers this node runs and what it should run.
struct Monitor {
    config: ClusterConfig,
    secret: Secret,
    id: String,
    artifacts_dir: PathBuf,
    workers_dir: PathBuf,
    worker_program: PathBuf,
    workers: BTreeMap<u16, LocalWorker>,
    backoff: BTreeMap<u16, (Backoff, Instant)>,
    /// `None` until the assignments were read once: until then nothing is stopped.
    desired: Option<BTreeMap<u16, DesiredWorker>>,
    fetching: BTreeSet<String>,
    fetch_failed: BTreeMap<String, Instant>,
    beats: Beats,
    errors: Option<mpsc::UnboundedSender<ErrorReport>>,
}

impl Monitor {
    fn timeouts(&self) -> Timeouts {
        let settings = &self.config.supervisor;
        Timeouts {
            worker: Duration::from_millis(settings.worker_timeout_ms),
            start: Duration::from_millis(settings.worker_start_timeout_ms),
            kill_grace: Duration::from_millis(settings.kill_grace_ms),
        }
    }

    fn report(&self, topology_id: &str, port: u16, message: String) {
        if let Some(errors) = &self.errors {
            let _ = errors.send((
                topology_id.to_owned(),
                format!("{}:{port}", self.id),
                message,
            ));
        }
    }

    /// Takes over workers left running by an earlier run; removes the remains of others.
    fn adopt(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.workers_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            match LocalWorker::adopt(&dir) {
                Some((port, worker)) if self.config.supervisor.ports.contains(&port) => {
                    tracing::info!(port, topology = %worker.topology_id, pid = worker.pid, "adopted running worker");
                    self.workers.insert(port, worker);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
    }

    fn artifact_ready(&self, digest: &str) -> bool {
        self.artifacts_dir
            .join(digest)
            .join(artifact::MANIFEST_FILE)
            .is_file()
    }

    /// One pass over the slots; returns the artifacts to fetch.
    fn step(&mut self) -> Vec<String> {
        let now = Instant::now();
        let now_ms = now_ms();
        for worker in self.workers.values_mut() {
            worker.poll();
        }
        self.publish_beats();
        let Some(desired) = self.desired.clone() else {
            // Assignments never read yet: keep whatever runs.
            return Vec::new();
        };
        let ports: BTreeSet<u16> = desired.keys().chain(self.workers.keys()).copied().collect();
        let timeouts = self.timeouts();
        let mut to_fetch = Vec::new();
        for port in ports {
            let want = desired.get(&port);
            let observed = self
                .workers
                .get(&port)
                .map(|worker| worker.observe(now, now_ms));
            let ready = want.is_some_and(|want| self.artifact_ready(&want.artifact));
            let may_launch = self
                .backoff
                .get(&port)
                .is_none_or(|(backoff, since)| now.duration_since(*since) >= backoff.delay());
            let Some(step) = next_step(want, observed.as_ref(), ready, may_launch, &timeouts)
            else {
                continue;
            };
            match step {
                Step::Fetch => {
                    let digest = &want.expect("fetch implies a desired worker").artifact;
                    let retry_ok = self
                        .fetch_failed
                        .get(digest)
                        .is_none_or(|failed| now.duration_since(*failed) >= Duration::from_secs(2));
                    if retry_ok && self.fetching.insert(digest.clone()) {
                        to_fetch.push(digest.clone());
                    }
                }
                Step::Launch => self.launch(port, want.expect("launch implies a desired worker")),
                Step::Rewrite => {
                    let plan = &want.expect("rewrite implies a desired worker").plan;
                    let worker = self
                        .workers
                        .get_mut(&port)
                        .expect("rewrite implies a worker");
                    match worker.rewrite(plan) {
                        Ok(()) => {
                            tracing::info!(port, topology = %worker.topology_id, version = plan.version, active = plan.active, "worker plan updated")
                        }
                        Err(error) => tracing::warn!(port, %error, "cannot update worker plan"),
                    }
                }
                Step::Stop { reason } => {
                    let worker = self.workers.get_mut(&port).expect("stop implies a worker");
                    tracing::info!(port, topology = %worker.topology_id, pid = worker.pid, %reason, "stopping worker");
                    let unhealthy = want.is_some_and(|want| want.topology_id == worker.topology_id);
                    if unhealthy {
                        let topology = worker.topology_id.clone();
                        self.report(&topology, port, format!("restarting worker: {reason}"));
                    }
                    self.workers.get_mut(&port).expect("present").stop();
                }
                Step::Kill => {
                    let worker = self.workers.get_mut(&port).expect("kill implies a worker");
                    tracing::warn!(
                        port,
                        pid = worker.pid,
                        "worker did not stop in time; killing it"
                    );
                    worker.kill();
                }
                Step::Reap { crashed } => self.reap(port, crashed, want, now),
            }
        }
        to_fetch
    }

    fn launch(&mut self, port: u16, want: &DesiredWorker) {
        let artifact_dir = self.artifacts_dir.join(&want.artifact);
        let program = match artifact::read_manifest(&artifact_dir) {
            Ok(manifest) => manifest.program.map_or_else(
                || self.worker_program.clone(),
                |program| artifact_dir.join(program),
            ),
            Err(error) => {
                tracing::warn!(port, %error, "unreadable artifact; fetching it again");
                let _ = std::fs::remove_dir_all(&artifact_dir);
                return;
            }
        };
        let dir = worker_dir(&self.workers_dir, &want.topology_id, port);
        match LocalWorker::launch(
            dir,
            &program,
            want,
            &self.secret,
            &self.config.supervisor.worker_metrics_bind,
            &self.config.tls,
        ) {
            Ok(worker) => {
                tracing::info!(
                    port,
                    topology = %want.topology_id,
                    pid = worker.pid,
                    executors = ?want.executors,
                    "worker started"
                );
                self.workers.insert(port, worker);
            }
            Err(error) => {
                tracing::error!(port, topology = %want.topology_id, %error, "cannot start worker");
                self.report(
                    &want.topology_id,
                    port,
                    format!("cannot start worker: {error}"),
                );
                let entry = self
                    .backoff
                    .entry(port)
                    .or_insert_with(|| (Backoff::default(), Instant::now()));
                entry.0.crashed(Duration::ZERO);
                entry.1 = Instant::now();
            }
        }
    }

    fn reap(
        &mut self,
        port: u16,
        crashed: Option<String>,
        want: Option<&DesiredWorker>,
        now: Instant,
    ) {
        let Some(worker) = self.workers.remove(&port) else {
            return;
        };
        self.beats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(worker.topology_id.clone(), port));
        match crashed {
            Some(status) => {
                let ran = worker.running_for(now);
                tracing::warn!(port, topology = %worker.topology_id, pid = worker.pid, %status, ran_ms = ran.as_millis() as u64, "worker ended unexpectedly; restarting it");
                self.report(
                    &worker.topology_id,
                    port,
                    format!(
                        "worker (pid {}) ended after {} s: {status}",
                        worker.pid,
                        ran.as_secs()
                    ),
                );
                let entry = self
                    .backoff
                    .entry(port)
                    .or_insert_with(|| (Backoff::default(), Instant::now()));
                entry.0.crashed(ran);
                entry.1 = now;
            }
            None => {
                tracing::info!(port, topology = %worker.topology_id, pid = worker.pid, "worker stopped");
            }
        }
        // A worker that was killed (or crashed) left its multi-lang pid directories behind.
        sweep_pid_dirs();
        let still_wanted = want.is_some_and(|want| want.topology_id == worker.topology_id);
        if !still_wanted {
            let _ = std::fs::remove_dir_all(&worker.dir);
            self.backoff.remove(&port);
        }
    }

    fn fetched(&mut self, digest: String, result: Result<(), String>) {
        self.fetching.remove(&digest);
        match result {
            Ok(()) => {
                tracing::info!(artifact = %digest, "artifact ready");
                self.fetch_failed.remove(&digest);
            }
            Err(reason) => {
                tracing::warn!(artifact = %digest, %reason, "cannot fetch artifact");
                self.fetch_failed.insert(digest.clone(), Instant::now());
                let affected: Vec<(String, u16)> = self
                    .desired
                    .iter()
                    .flatten()
                    .filter(|(_, want)| want.artifact == digest)
                    .map(|(port, want)| (want.topology_id.clone(), *port))
                    .collect();
                for (topology, port) in affected {
                    self.report(
                        &topology,
                        port,
                        format!("cannot fetch artifact {digest}: {reason}"),
                    );
                }
            }
        }
    }

    fn publish_beats(&self) {
        let mut beats = BTreeMap::new();
        let now_ms = now_ms();
        let fresh = self.config.supervisor.worker_timeout_ms;
        for (port, worker) in &self.workers {
            if worker.stopping() || worker.ended() {
                continue;
            }
            if let Some(beat) = worker.heartbeat()
                && now_ms.saturating_sub(beat.time_ms) <= fresh
            {
                beats.insert((worker.topology_id.clone(), *port), beat);
            }
        }
        *self.beats.lock().unwrap_or_else(PoisonError::into_inner) = beats;
    }

    /// Deletes unpacked artifacts no desired or running worker uses.
    fn clean_artifacts(&self) {
        let Some(desired) = &self.desired else {
            return;
        };
        let used: BTreeSet<String> = desired
            .values()
            .map(|want| want.artifact.clone())
            .chain(self.workers.values().filter_map(|worker| {
                worker
                    .plan
                    .artifact_dir
                    .file_name()
                    .and_then(|name| name.to_str())
                    .map(str::to_owned)
            }))
            .chain(self.fetching.iter().cloned())
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.artifacts_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if artifact::is_digest(&name) && !used.contains(&name) {
                tracing::info!(artifact = %name, "deleting unused artifact");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    fn ports_by_topology(&self) -> Vec<(String, u16)> {
        self.desired
            .iter()
            .flatten()
            .map(|(port, want)| (want.topology_id.clone(), *port))
            .collect()
    }

    /// Stops every worker: SIGTERM, then SIGKILL after the grace period; removes their
    /// directories.
    async fn stop_all(&mut self) {
        for worker in self.workers.values_mut() {
            worker.poll();
            if !worker.ended() {
                worker.stop();
            }
        }
        let deadline = Instant::now() + Duration::from_millis(self.config.supervisor.kill_grace_ms);
        while Instant::now() < deadline {
            for worker in self.workers.values_mut() {
                worker.poll();
            }
            if self.workers.values().all(LocalWorker::ended) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for worker in self.workers.values_mut() {
            if !worker.ended() {
                worker.kill();
            }
        }
        for _ in 0..20 {
            for worker in self.workers.values_mut() {
                worker.poll();
            }
            if self.workers.values().all(LocalWorker::ended) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (port, worker) in std::mem::take(&mut self.workers) {
            tracing::info!(port, topology = %worker.topology_id, "worker stopped");
            let _ = std::fs::remove_dir_all(&worker.dir);
        }
    }
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("id", &self.id)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// Removes the multi-lang pid directories of workers that no longer run (the workers'
/// temporary directory is this process's, which they inherit).
fn sweep_pid_dirs() {
    for dir in squall_multilang::pid_dir::sweep_orphaned(&std::env::temp_dir()) {
        tracing::info!(dir = %dir.display(), "removed the pid directory of a worker that ended");
    }
}

/// Where a supervisor with data directory `data_dir` unpacks artifacts.
pub fn artifacts_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("artifacts")
}
