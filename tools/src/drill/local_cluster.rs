//! A complete cluster on this machine for a drill: one ZooKeeper, nimbuses and supervisors
//! run from the `squall` binary, each with its own id, ports, data directory, configuration
//! file and log. Supervisors stand for hosts: on loopback, or each in a network namespace
//! of its own. Dropping the cluster kills every process it started, workers included.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use squall::cluster::ClusterConfig;
use squall::cluster::supervisor::pid_record::PidRecord;
use squall::cluster::supervisor::process::PID_FILE;

use crate::drill::netns::Hosts;
use crate::drill::zookeeper::ZooKeeperServer;

/// The timings of a drill cluster: those of small clusters in `docs/configuration.md`.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// ZooKeeper session timeout: how soon a dead host or leader is noticed.
    pub session: Duration,
    /// Supervisor: a worker silent this long is restarted.
    pub worker: Duration,
    /// Nimbus: a worker silent this long moves.
    pub nimbus_worker: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            session: Duration::from_secs(2),
            worker: Duration::from_secs(3),
            nimbus_worker: Duration::from_secs(8),
        }
    }
}

/// A port nobody listens on right now.
fn free_port(host: &str) -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((host, 0)).with_context(|| format!("no free port on {host}"))?;
    Ok(listener.local_addr()?.port())
}

/// Sends `signal` to process `pid` (and its group when `group`).
pub fn signal(pid: u32, signal: rustix::process::Signal, group: bool) {
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

/// Whether process `pid` lives (exists and is no zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

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
    /// SIGKILLs it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A worker process a supervisor runs, as found in its data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWorker {
    /// The supervisor's index.
    pub host: usize,
    /// The topology.
    pub topology_id: String,
    /// The slot's port.
    pub port: u16,
    /// The process id.
    pub pid: u32,
}

/// The processes of a drill cluster.
#[derive(Debug)]
pub struct LocalCluster {
    /// Every file of the cluster.
    pub dir: PathBuf,
    /// The ZooKeeper server.
    pub zookeeper: ZooKeeperServer,
    /// The nimbuses.
    pub nimbuses: Vec<Daemon>,
    /// The supervisors ("hosts").
    pub supervisors: Vec<Daemon>,
    /// The client configuration file.
    pub client_config: PathBuf,
    /// The supervisors' network namespaces, when they have their own.
    pub hosts: Option<Hosts>,
    squall: PathBuf,
}

impl LocalCluster {
    /// Writes the configuration of `nimbuses` nimbuses and `supervisors` supervisors with
    /// `slots` slots each under `dir`, starts ZooKeeper and every daemon (run by the
    /// `squall` binary at `squall`). Supervisors run in the namespaces of `hosts` when
    /// given, else on loopback.
    ///
    /// # Errors
    /// When ZooKeeper or a daemon cannot start, or a file cannot be written.
    pub fn start(
        squall: &Path,
        dir: &Path,
        nimbuses: usize,
        supervisors: usize,
        slots: usize,
        timings: Timings,
        hosts: Option<Hosts>,
    ) -> anyhow::Result<Self> {
        let server_host = hosts
            .as_ref()
            .map_or_else(|| "127.0.0.1".to_owned(), Hosts::gateway);
        let zookeeper = ZooKeeperServer::start(
            &dir.join("zookeeper"),
            &server_host,
            free_port(&server_host)?,
        )?;
        let secret_file = dir.join("secret");
        write_private(&secret_file, random_secret()?.as_bytes())
            .with_context(|| format!("cannot write {}", secret_file.display()))?;
        let mut base = ClusterConfig::default();
        base.cluster.name = "drill".into();
        base.cluster.secret_file = Some(secret_file);
        base.zookeeper.servers = vec![zookeeper.address()];
        base.zookeeper.root = "/squall-drill".into();
        base.zookeeper.session_timeout_ms = timings.session.as_millis() as u64;
        base.zookeeper.connect_timeout_ms = 2_000;
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
        let client_config = dir.join("client.toml");
        std::fs::write(&client_config, base.to_toml())
            .with_context(|| format!("cannot write {}", client_config.display()))?;
        let mut cluster = Self {
            dir: dir.to_owned(),
            zookeeper,
            nimbuses: Vec::new(),
            supervisors: Vec::new(),
            client_config,
            hosts,
            squall: squall.to_owned(),
        };
        for index in 0..nimbuses {
            let mut config = base.clone();
            config.nimbus.port = free_port(&server_host)?;
            config.nimbus.id = Some(format!("nimbus{index}"));
            config.nimbus.data_dir = dir.join(format!("nimbus{index}"));
            let daemon = cluster.daemon(&format!("nimbus{index}"), config)?;
            cluster.nimbuses.push(daemon);
        }
        for index in 0..supervisors {
            let mut config = base.clone();
            config.supervisor.id = Some(format!("host{index}"));
            if let Some(hosts) = &cluster.hosts {
                config.supervisor.host = hosts.address(index);
            }
            config.supervisor.ports = (0..slots)
                .map(|_| free_port("127.0.0.1"))
                .collect::<anyhow::Result<_>>()?;
            config.supervisor.data_dir = dir.join(format!("supervisor{index}"));
            let daemon = cluster.daemon(&format!("supervisor{index}"), config)?;
            cluster.supervisors.push(daemon);
        }
        for index in 0..nimbuses {
            cluster.start_nimbus(index)?;
        }
        for index in 0..supervisors {
            cluster.start_supervisor(index)?;
        }
        Ok(cluster)
    }

    fn daemon(&self, name: &str, config: ClusterConfig) -> anyhow::Result<Daemon> {
        let config_path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config.to_toml())
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        Ok(Daemon {
            name: name.to_owned(),
            config,
            config_path,
            log_path: self.dir.join(format!("{name}.log")),
            child: None,
        })
    }

    fn spawn(&self, daemon: &Daemon, command: &str, host: Option<usize>) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&daemon.log_path)
            .with_context(|| format!("cannot open {}", daemon.log_path.display()))?;
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
            .env_remove("SQUALL_CONF")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        process
            .spawn()
            .with_context(|| format!("cannot run {} {command}", self.squall.display()))
    }

    /// Starts nimbus `index`.
    ///
    /// # Errors
    /// When it cannot be run.
    pub fn start_nimbus(&mut self, index: usize) -> anyhow::Result<()> {
        let child = self.spawn(&self.nimbuses[index], "nimbus", None)?;
        self.nimbuses[index].child = Some(child);
        Ok(())
    }

    /// Starts supervisor `index`.
    ///
    /// # Errors
    /// When it cannot be run.
    pub fn start_supervisor(&mut self, index: usize) -> anyhow::Result<()> {
        let child = self.spawn(&self.supervisors[index], "supervisor", Some(index))?;
        self.supervisors[index].child = Some(child);
        Ok(())
    }

    /// The index of the nimbus with id `id`.
    pub fn nimbus_index(&self, id: &str) -> Option<usize> {
        self.nimbuses
            .iter()
            .position(|nimbus| nimbus.config.nimbus.id() == id)
    }

    /// The index of the supervisor with id `id`.
    pub fn supervisor_index(&self, id: &str) -> Option<usize> {
        self.supervisors
            .iter()
            .position(|supervisor| supervisor.config.supervisor.id() == id)
    }

    /// The host (network) of a supervisor is lost with every process on it: its link goes
    /// down when it has one, then it and its workers are SIGKILLed.
    ///
    /// # Errors
    /// When the link cannot be taken down.
    pub fn kill_host(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(hosts) = &self.hosts {
            hosts.set_link(index, false)?;
        }
        self.supervisors[index].kill();
        for worker in self.workers_of(index) {
            signal(worker.pid, rustix::process::Signal::KILL, true);
        }
        Ok(())
    }

    /// The workers supervisor `index` runs now (per its pid files, live processes only).
    pub fn workers_of(&self, index: usize) -> Vec<LocalWorker> {
        let dir = self.supervisors[index]
            .config
            .supervisor
            .data_dir
            .join("workers");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut workers: Vec<LocalWorker> = entries
            .flatten()
            .filter_map(|entry| {
                let record = std::fs::read_to_string(entry.path().join(PID_FILE)).ok()?;
                let pid = PidRecord::parse(&record).ok()?.pid;
                if !alive(pid) {
                    return None;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let (topology_id, port) = name.rsplit_once('-')?;
                Some(LocalWorker {
                    host: index,
                    topology_id: topology_id.to_owned(),
                    port: port.parse().ok()?,
                    pid,
                })
            })
            .collect();
        workers.sort_by_key(|worker| worker.port);
        workers
    }

    /// Every worker of every supervisor.
    pub fn all_workers(&self) -> Vec<LocalWorker> {
        (0..self.supervisors.len())
            .flat_map(|index| self.workers_of(index))
            .collect()
    }

    /// Where the daemons' logs are.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.nimbuses
            .iter()
            .chain(&self.supervisors)
            .map(|daemon| daemon.log_path.clone())
            .chain([self.zookeeper.log_path()])
            .collect()
    }
}

/// 32 random bytes, base64-free: hex is a valid secret file too.
fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
        .context("cannot read /dev/urandom for the cluster secret")?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let workers = self.all_workers();
        for daemon in self.nimbuses.iter_mut().chain(self.supervisors.iter_mut()) {
            daemon.kill();
        }
        for worker in workers {
            signal(worker.pid, rustix::process::Signal::KILL, true);
        }
    }
}

/// Writes `contents` to a new file at `path` that only its owner can read, as daemons
/// require of the cluster secret.
fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(contents)
}
