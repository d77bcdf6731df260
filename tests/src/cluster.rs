//! A whole cluster in processes on this machine: one real ZooKeeper, nimbus and supervisor
//! daemons run from the `squall` command line, each with its own configuration file, data
//! directory and log. Supervisors stand for hosts: on loopback ([`Cluster::new`]) or each in
//! a network namespace of its own with its own address ([`Cluster::on_namespaces`]);
//! [`Cluster::kill_host`] kills one with all its workers (and its link). Dropping the
//! cluster kills every process it started, workers included.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use squall::cluster::WorkerHeartbeat;
use squall::cluster::config::ClusterConfig;
use squall::cluster::protocol::TopologyReport;
use squall::cluster::records::{NimbusInfo, now_ms};
use squall::cluster::supervisor::pid_record::PidRecord;
use squall::cluster::supervisor::process::PID_FILE;
use squall::cluster::{NimbusClient, Secret};

use crate::netns::Hosts;
use crate::workers::{TEST_SECRET, free_port};
use crate::zookeeper::ZooKeeper;

/// Timings short enough for tests: those of the drill's clusters.
pub use squall_tools::drill::local_cluster::Timings;

/// One daemon process.
#[derive(Debug)]
pub struct Daemon {
    /// `nimbus0`, `supervisor2`, ...
    pub name: String,
    /// Its configuration.
    pub config: ClusterConfig,
    /// Its configuration file.
    pub config_path: PathBuf,
    /// Its log.
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for it to exit; true if it did.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        signal(child.id(), rustix::process::Signal::TERM, false);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

fn signal(pid: u32, signal: rustix::process::Signal, group: bool) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = if group {
            rustix::process::kill_process_group(pid, signal)
        } else {
            rustix::process::kill_process(pid, signal)
        };
    }
}

/// A worker process a supervisor runs, as found in its data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningWorker {
    /// The topology.
    pub topology_id: String,
    /// The slot's port.
    pub port: u16,
    /// The process id.
    pub pid: u32,
    /// Its directory.
    pub dir: PathBuf,
}

/// Processes of a test cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The ZooKeeper server.
    pub zookeeper: ZooKeeper,
    /// The cluster's root in ZooKeeper.
    pub root: String,
    /// Every file of the cluster.
    pub dir: tempfile::TempDir,
    /// The nimbuses.
    pub nimbuses: Vec<Daemon>,
    /// The supervisors ("hosts").
    pub supervisors: Vec<Daemon>,
    squall: PathBuf,
    env: Vec<(String, String)>,
    /// Settings shared by every daemon and the client.
    pub base: ClusterConfig,
    /// The supervisors' network namespaces, when they have their own.
    pub hosts: Option<Hosts>,
}

impl Cluster {
    /// A cluster of `nimbuses` nimbuses and `supervisors` supervisors with `slots` slots
    /// each, run by the `squall` binary at `squall`; `env` is added to every daemon's (and
    /// so every worker's) environment. Nothing is started yet.
    pub fn new(
        squall: &Path,
        nimbuses: usize,
        supervisors: usize,
        slots: usize,
        timings: Timings,
        env: &[(&str, &str)],
    ) -> Self {
        Self::build(squall, nimbuses, supervisors, slots, timings, env, None)
    }

    /// Like [`new`](Self::new), but each supervisor (and its workers) runs in a network
    /// namespace of its own, with its own address on a bridge; ZooKeeper and the nimbuses
    /// listen on this namespace's address on the bridge. Needs root (see
    /// [`crate::netns::available`]).
    pub fn on_namespaces(
        squall: &Path,
        nimbuses: usize,
        supervisors: usize,
        slots: usize,
        timings: Timings,
        env: &[(&str, &str)],
    ) -> Self {
        let hosts = Hosts::create(supervisors).expect("network namespaces for the hosts");
        Self::build(
            squall,
            nimbuses,
            supervisors,
            slots,
            timings,
            env,
            Some(hosts),
        )
    }

    fn build(
        squall: &Path,
        nimbuses: usize,
        supervisors: usize,
        slots: usize,
        timings: Timings,
        env: &[(&str, &str)],
        hosts: Option<Hosts>,
    ) -> Self {
        let server_host = hosts
            .as_ref()
            .map_or_else(|| "127.0.0.1".to_owned(), Hosts::gateway);
        let zookeeper = ZooKeeper::start_on(&server_host);
        let root = zookeeper.fresh_root("cluster");
        let dir = tempfile::Builder::new()
            .prefix("squall-cluster-")
            .tempdir()
            .expect("a temporary directory");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, TEST_SECRET).expect("secret file");
        // Daemons refuse a secret file others can read.
        std::fs::set_permissions(
            &secret_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("a private secret file");
        let mut base = ClusterConfig::default();
        base.cluster.name = "test-cluster".into();
        base.cluster.secret_file = Some(secret_file);
        base.zookeeper = zookeeper.settings(&root, timings.session);
        base.client.timeout_ms = 20_000;
        base.nimbus.host = server_host.clone();
        base.nimbus.bind = server_host.clone();
        base.nimbus.monitor_interval_ms = 200;
        base.nimbus.worker_timeout_ms = timings.nimbus_worker.as_millis() as u64;
        base.nimbus.worker_start_timeout_ms = 30_000;
        base.nimbus.min_replicas = nimbuses.clamp(1, 2);
        base.nimbus.replication_timeout_ms = 10_000;
        base.supervisor.host = "127.0.0.1".into();
        base.supervisor.sync_interval_ms = 500;
        base.supervisor.monitor_interval_ms = 50;
        base.supervisor.heartbeat_relay_interval_ms = 250;
        base.supervisor.worker_timeout_ms = timings.worker.as_millis() as u64;
        base.supervisor.worker_start_timeout_ms = 20_000;
        base.supervisor.kill_grace_ms = 3_000;
        base.supervisor.transport = "mio".into();
        let mut cluster = Self {
            zookeeper,
            root,
            dir,
            nimbuses: Vec::new(),
            supervisors: Vec::new(),
            squall: squall.to_owned(),
            env: env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            base,
            hosts,
        };
        for index in 0..nimbuses {
            let mut config = cluster.base.clone();
            config.nimbus.port = free_port(&server_host);
            config.nimbus.id = Some(format!("nimbus{index}"));
            config.nimbus.data_dir = cluster.dir.path().join(format!("nimbus{index}"));
            // The HTTP service opens without a key on loopback only.
            if cluster.hosts.is_none() {
                config.nimbus.http_bind = format!("{server_host}:{}", free_port(&server_host));
            }
            let daemon = cluster.daemon(&format!("nimbus{index}"), config);
            cluster.nimbuses.push(daemon);
        }
        for index in 0..supervisors {
            let mut config = cluster.base.clone();
            config.supervisor.id = Some(format!("host{index}"));
            if let Some(hosts) = &cluster.hosts {
                config.supervisor.host = hosts.address(index);
            }
            config.supervisor.ports = (0..slots).map(|_| free_port("127.0.0.1")).collect();
            config.supervisor.data_dir = cluster.dir.path().join(format!("supervisor{index}"));
            config.supervisor.metrics_bind = format!("127.0.0.1:{}", free_port("127.0.0.1"));
            let daemon = cluster.daemon(&format!("supervisor{index}"), config);
            cluster.supervisors.push(daemon);
        }
        cluster
    }

    fn daemon(&self, name: &str, config: ClusterConfig) -> Daemon {
        let config_path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&config_path, config.to_toml()).expect("configuration file");
        Daemon {
            name: name.to_owned(),
            config,
            config_path,
            log_path: self.dir.path().join(format!("{name}.log")),
            child: None,
        }
    }

    fn spawn(&self, daemon: &Daemon, command: &str, host: Option<usize>) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&daemon.log_path)
            .expect("log file");
        let mut process = match (host, &self.hosts) {
            (Some(host), Some(hosts)) => {
                let prefix = hosts.prefix(host);
                let mut process = Command::new(&prefix[0]);
                process.args(&prefix[1..]).arg(&self.squall);
                process
            }
            _ => Command::new(&self.squall),
        };
        process
            .arg(command)
            .arg("--config")
            .arg(&daemon.config_path)
            .env("RUST_LOG", "info")
            .env("SQUALL_LOG", "info")
            .env_remove("SQUALL_CLUSTER_SECRET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (key, value) in &self.env {
            process.env(key, value);
        }
        process.spawn().expect("the squall binary runs")
    }

    /// Starts nimbus `index`.
    pub fn start_nimbus(&mut self, index: usize) {
        let child = self.spawn(&self.nimbuses[index], "nimbus", None);
        self.nimbuses[index].child = Some(child);
    }

    /// Starts supervisor `index`.
    pub fn start_supervisor(&mut self, index: usize) {
        let child = self.spawn(&self.supervisors[index], "supervisor", Some(index));
        self.supervisors[index].child = Some(child);
    }

    /// Starts every daemon.
    pub fn start_all(&mut self) {
        for index in 0..self.nimbuses.len() {
            self.start_nimbus(index);
        }
        for index in 0..self.supervisors.len() {
            self.start_supervisor(index);
        }
    }

    /// Starts every daemon and waits until a nimbus leads and every supervisor is
    /// registered.
    pub fn start_and_settle(&mut self) {
        self.start_all();
        self.wait_for("a leader", Duration::from_secs(10), || self.leader());
        let client = self.client();
        let expected = self.supervisors.len();
        self.wait_for(
            "the supervisors to register",
            Duration::from_secs(10),
            || {
                let (_, supervisors) = client.list().ok()?;
                (supervisors.len() == expected).then_some(())
            },
        );
    }

    /// SIGKILLs the leading nimbus and waits (up to 10 s) for another to lead; returns how
    /// long that took.
    pub fn kill_leader(&mut self) -> Duration {
        let leader = self.leader_index().expect("a leader");
        let killed = Instant::now();
        self.kill_nimbus(leader);
        self.wait_for("a standby to lead", Duration::from_secs(10), || {
            self.leader_index().filter(|index| *index != leader)
        });
        killed.elapsed()
    }

    /// SIGKILLs nimbus `index`.
    pub fn kill_nimbus(&mut self, index: usize) {
        self.nimbuses[index].kill();
    }

    /// SIGKILLs supervisor `index` and every worker it runs, after taking its link down
    /// when it has one: the host dies.
    pub fn kill_host(&mut self, index: usize) {
        if let Some(hosts) = &self.hosts {
            hosts
                .set_link(index, false)
                .expect("taking a host's link down");
        }
        self.supervisors[index].kill();
        for worker in self.workers_of(index) {
            signal(worker.pid, rustix::process::Signal::KILL, true);
        }
    }

    /// SIGKILLs the worker process `pid` (and its process group).
    pub fn kill_worker(&self, pid: u32) {
        signal(pid, rustix::process::Signal::KILL, true);
    }

    /// The workers supervisor `index` runs now (per its pid files, live processes only).
    pub fn workers_of(&self, index: usize) -> Vec<RunningWorker> {
        let dir = self.supervisors[index]
            .config
            .supervisor
            .data_dir
            .join("workers");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut workers: Vec<RunningWorker> = entries
            .flatten()
            .filter_map(|entry| {
                let dir = entry.path();
                let record = std::fs::read_to_string(dir.join(PID_FILE)).ok()?;
                let pid = PidRecord::parse(&record).ok()?.pid;
                let alive = Path::new(&format!("/proc/{pid}")).exists()
                    && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .unwrap_or_default()
                        .contains(") Z ");
                if !alive {
                    return None;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let (topology_id, port) = name.rsplit_once('-')?;
                Some(RunningWorker {
                    topology_id: topology_id.to_owned(),
                    port: port.parse().ok()?,
                    pid,
                    dir,
                })
            })
            .collect();
        workers.sort_by_key(|worker| worker.port);
        workers
    }

    /// The workers with a heartbeat of their own younger than 2 s, with their supervisor's
    /// index.
    pub fn beating_workers(&self) -> Vec<(usize, RunningWorker)> {
        self.all_workers()
            .into_iter()
            .filter(|(_, worker)| {
                WorkerHeartbeat::read_from(&worker.dir).is_some_and(|beat| {
                    beat.pid == worker.pid && now_ms().saturating_sub(beat.time_ms) < 2_000
                })
            })
            .collect()
    }

    /// Every worker of every supervisor, with the supervisor's index.
    pub fn all_workers(&self) -> Vec<(usize, RunningWorker)> {
        (0..self.supervisors.len())
            .flat_map(|index| {
                self.workers_of(index)
                    .into_iter()
                    .map(move |worker| (index, worker))
            })
            .collect()
    }

    /// The client configuration.
    pub fn client_config(&self) -> ClusterConfig {
        self.base.clone()
    }

    /// A client of the cluster.
    pub fn client(&self) -> NimbusClient {
        NimbusClient::new(
            self.client_config(),
            Secret::new(TEST_SECRET, "test").expect("secret"),
        )
    }

    /// The elected leader, if any.
    pub fn leader(&self) -> Option<NimbusInfo> {
        self.client().leader().ok()
    }

    /// Index of the leading nimbus, if one leads.
    pub fn leader_index(&self) -> Option<usize> {
        let leader = self.leader()?;
        self.nimbuses
            .iter()
            .position(|nimbus| nimbus.config.nimbus.id() == leader.id)
    }

    /// The status of topology `name`, if the cluster answers.
    pub fn status(&self, name: &str) -> Option<TopologyReport> {
        self.client().status(name).ok()
    }

    /// Runs the `squall` command line with the client configuration; returns (success,
    /// stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let config = self.dir.path().join("client.toml");
        if !config.exists() {
            std::fs::write(&config, self.client_config().to_toml()).expect("client config");
        }
        let output = Command::new(&self.squall)
            .args(args)
            .env("SQUALL_CONF", &config)
            .env_remove("SQUALL_CLUSTER_SECRET")
            .output()
            .expect("the squall binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for daemon in self.nimbuses.iter().chain(&self.supervisors) {
            let log = daemon.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            text.push_str(&format!("\n----- {} (last lines) -----\n", daemon.name));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Polls `check` every 20 ms until it returns `Some`, for at most `timeout`; panics
    /// with `what` and the daemons' logs otherwise.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut() -> Option<T>,
    ) -> T {
        squall_test_support::poll_until(timeout, check).unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {what}{}",
                self.logs()
            )
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for daemon in self.nimbuses.iter_mut().chain(self.supervisors.iter_mut()) {
            daemon.kill();
        }
        for (_, worker) in self.all_workers() {
            signal(worker.pid, rustix::process::Signal::KILL, true);
        }
    }
}
