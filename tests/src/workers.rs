//! Worker processes of one topology, started from plan files the way a supervisor starts
//! them, and killed when the guard is dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use squall::cluster::worker_key::{WORKER_KEY_ENV, WorkerKey};
use squall::cluster::{Secret, TopologyDescription, WorkerHeartbeat, WorkerPlan, WorkerSlot};

/// The cluster secret of the test clusters.
pub const TEST_SECRET: &str = "the test cluster's secret, long enough";

/// The worker key of `topology_id` under [`TEST_SECRET`], as a supervisor derives it.
pub fn test_worker_key(topology_id: &str) -> WorkerKey {
    Secret::new(TEST_SECRET, "the test secret")
        .expect("a usable secret")
        .worker_key(topology_id)
}

/// A port nobody listens on right now, below the kernel's ephemeral range (from 32768 by
/// default): a port the kernel picked could go to an outgoing connection, a ZooKeeper
/// client's say, before the test's daemon binds it. Ports are handed out in turn from a
/// start that differs per process, so concurrent tests do not pick the same one.
pub fn free_port(host: &str) -> u16 {
    const FIRST: u16 = 10_000;
    const SPAN: u16 = 22_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let offset = (NEXT.fetch_add(1, Ordering::Relaxed) % SPAN + start) % SPAN;
        let port = FIRST + offset;
        if TcpListener::bind((host, port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port on {host} between {FIRST} and {}",
        FIRST + SPAN
    )
}

/// The description `program describe -- args` prints.
pub fn describe(program: &Path, args: &[String]) -> TopologyDescription {
    let output = Command::new(program)
        .arg("describe")
        .args(args)
        .output()
        .expect("the topology program runs");
    assert!(
        output.status.success(),
        "describe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("describe prints a description")
}

/// One worker's files and process.
#[derive(Debug)]
pub struct WorkerProcess {
    /// Its working directory (heartbeats, logs).
    pub dir: PathBuf,
    /// Its plan file.
    pub plan_path: PathBuf,
    /// Extra command prefix (e.g. `ip netns exec <name>`).
    pub prefix: Vec<String>,
    child: Option<Child>,
}

/// The worker processes of one topology.
#[derive(Debug)]
pub struct Workers {
    program: PathBuf,
    /// The workers, in plan order.
    pub workers: Vec<WorkerProcess>,
}

impl Workers {
    /// Plans `description` over one worker per host in `hosts` (executors dealt round-robin)
    /// and writes the plan files under `root`; starts nothing.
    pub fn plan(
        program: &Path,
        args: &[String],
        hosts: &[String],
        transport: &str,
        root: &Path,
    ) -> Self {
        let description = describe(program, args);
        let mut slots: Vec<WorkerSlot> = hosts
            .iter()
            .enumerate()
            .map(|(index, host)| WorkerSlot {
                id: format!("host{index}:{}", free_port("127.0.0.1")),
                host: host.clone(),
                port: 0,
                executors: Vec::new(),
            })
            .collect();
        for slot in &mut slots {
            slot.port = slot
                .id
                .rsplit(':')
                .next()
                .and_then(|port| port.parse().ok())
                .expect("port");
        }
        for executor in 0..description.executor_components.len() {
            slots[executor % hosts.len()].executors.push(executor);
        }
        let workers = (0..hosts.len())
            .map(|index| {
                let dir = root.join(format!("worker{index}"));
                std::fs::create_dir_all(&dir).expect("worker dir");
                let plan = WorkerPlan {
                    topology_id: "wordcount-1".into(),
                    topology: description.name.clone(),
                    cluster_id: "test-cluster".into(),
                    version: 1,
                    workers: slots.clone(),
                    this_worker: index,
                    parallelism: Default::default(),
                    artifact_dir: root.to_owned(),
                    transport: transport.to_owned(),
                    args: args.to_vec(),
                    active: true,
                };
                let plan_path = dir.join("plan.json");
                plan.write(&plan_path).expect("plan written");
                WorkerProcess {
                    dir,
                    plan_path,
                    prefix: Vec::new(),
                    child: None,
                }
            })
            .collect();
        Self {
            program: program.to_owned(),
            workers,
        }
    }

    /// The plan of worker `index`.
    pub fn plan_of(&self, index: usize) -> WorkerPlan {
        WorkerPlan::read(&self.workers[index].plan_path).expect("plan readable")
    }

    /// Starts worker `index`.
    pub fn start(&mut self, index: usize) {
        let key = test_worker_key(&self.plan_of(index).topology_id);
        let worker = &mut self.workers[index];
        let mut command = match worker.prefix.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        let log = std::fs::File::create(worker.dir.join("worker.log")).expect("log file");
        command
            .arg("worker")
            .arg("--plan")
            .arg(&worker.plan_path)
            .current_dir(&worker.dir)
            .env(WORKER_KEY_ENV, key.env_value())
            .env("SQUALL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        worker.child = Some(command.spawn().expect("worker starts"));
    }

    /// Starts every worker.
    pub fn start_all(&mut self) {
        for index in 0..self.workers.len() {
            self.start(index);
        }
    }

    /// Kills worker `index` with SIGKILL and reaps it.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.workers[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops worker `index` with SIGTERM, waiting up to `timeout` for it to exit.
    pub fn terminate(&mut self, index: usize, timeout: Duration) -> bool {
        let Some(mut child) = self.workers[index].child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
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

    /// Whether worker `index` is running.
    pub fn is_running(&mut self, index: usize) -> bool {
        self.workers[index]
            .child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The latest heartbeat of worker `index`.
    pub fn heartbeat(&self, index: usize) -> Option<WorkerHeartbeat> {
        WorkerHeartbeat::read_from(&self.workers[index].dir)
    }

    /// The log of worker `index`.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.workers[index].dir.join("worker.log")).unwrap_or_default()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for index in 0..self.workers.len() {
            self.kill(index);
        }
    }
}
