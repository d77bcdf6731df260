//! Worker processes as a supervisor runs them.
//!
//! Each worker runs in its own directory (`<data_dir>/workers/<topology-id>-<port>`) as
//! `<program> worker --plan plan.json`, in a process group of its own (so that stopping it
//! also stops anything it started), with the cluster secret in its environment and its
//! output appended to `worker.log`. Its process id is kept in `worker.pid`, so that a
//! supervisor restarted on the same machine adopts its workers instead of orphaning them.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::decide::{DesiredWorker, ObservedWorker};
use crate::plan::{HEARTBEAT_FILE, SECRET_ENV, WorkerHeartbeat, WorkerPlan};
use crate::secret::Secret;

/// Name of the plan file in a worker's directory.
pub const PLAN_FILE: &str = "plan.json";
/// Name of the process-id file in a worker's directory.
pub const PID_FILE: &str = "worker.pid";
/// Name of the output file in a worker's directory.
pub const LOG_FILE: &str = "worker.log";

#[derive(Debug)]
enum Process {
    /// Started by this supervisor.
    Child(Child),
    /// Started by an earlier run of this supervisor.
    Adopted,
}

/// One worker process of this supervisor.
#[derive(Debug)]
pub struct LocalWorker {
    /// The topology it runs.
    pub topology_id: String,
    /// Its executors.
    pub executors: Vec<usize>,
    /// The plan it was last given.
    pub plan: WorkerPlan,
    /// Its directory.
    pub dir: PathBuf,
    /// Its process id.
    pub pid: u32,
    process: Process,
    started: Instant,
    stopping_since: Option<Instant>,
    exit: Option<String>,
}

/// The directory of the worker of `topology_id` on `port`.
pub fn worker_dir(workers_dir: &Path, topology_id: &str, port: u16) -> PathBuf {
    workers_dir.join(format!("{topology_id}-{port}"))
}

fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // The group may be gone already; nothing to do then.
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
}

impl LocalWorker {
    /// Starts `desired` with `program` in `dir` (created, emptied of an old heartbeat).
    ///
    /// # Errors
    /// When the directory, the plan or the process cannot be created.
    pub fn launch(
        dir: PathBuf,
        program: &Path,
        desired: &DesiredWorker,
        secret: &Secret,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let _ = std::fs::remove_file(dir.join(HEARTBEAT_FILE));
        let plan_path = dir.join(PLAN_FILE);
        desired.plan.write(&plan_path)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))?;
        let child = Command::new(program)
            .arg("worker")
            .arg("--plan")
            .arg(&plan_path)
            .current_dir(&dir)
            .env(SECRET_ENV, secret.env_value())
            // Workers log like their supervisor, so one shipper reads both.
            .env(
                crate::logging::LOG_FORMAT_ENV,
                crate::logging::current_format().name(),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|error| {
                std::io::Error::new(
                    error.kind(),
                    format!("cannot start {}: {error}", program.display()),
                )
            })?;
        let pid = child.id();
        std::fs::write(dir.join(PID_FILE), pid.to_string())?;
        Ok(Self {
            topology_id: desired.topology_id.clone(),
            executors: desired.executors.clone(),
            plan: desired.plan.clone(),
            dir,
            pid,
            process: Process::Child(child),
            started: Instant::now(),
            stopping_since: None,
            exit: None,
        })
    }

    /// Takes over the worker left running in `dir` by an earlier run of the supervisor,
    /// if its process is alive and its plan readable; returns the port and the worker.
    pub fn adopt(dir: &Path) -> Option<(u16, Self)> {
        let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let plan = WorkerPlan::read(&dir.join(PLAN_FILE)).ok()?;
        if !alive(pid) {
            return None;
        }
        let slot = plan.this_slot().clone();
        Some((
            slot.port,
            Self {
                topology_id: plan.topology_id.clone(),
                executors: slot.executors,
                plan,
                dir: dir.to_owned(),
                pid,
                process: Process::Adopted,
                started: Instant::now(),
                stopping_since: None,
                exit: None,
            },
        ))
    }

    /// Notes whether the process has ended.
    pub fn poll(&mut self) {
        if self.exit.is_some() {
            return;
        }
        match &mut self.process {
            Process::Child(child) => match child.try_wait() {
                Ok(Some(status)) => self.exit = Some(status.to_string()),
                Ok(None) => {}
                Err(error) => self.exit = Some(format!("lost track of it: {error}")),
            },
            Process::Adopted => {
                if !alive(self.pid) {
                    self.exit = Some("ended (adopted process)".to_owned());
                }
            }
        }
    }

    /// Its latest heartbeat, if it wrote one (an earlier process's is ignored).
    pub fn heartbeat(&self) -> Option<WorkerHeartbeat> {
        WorkerHeartbeat::read_from(&self.dir).filter(|beat| beat.pid == self.pid)
    }

    /// What the decisions need to know about it, at `now` (`now_ms` on the wall clock).
    pub fn observe(&self, now: Instant, now_ms: u64) -> ObservedWorker {
        ObservedWorker {
            topology_id: self.topology_id.clone(),
            executors: self.executors.clone(),
            plan: self.plan.clone(),
            exit: self.exit.clone(),
            stopping_for: self
                .stopping_since
                .map(|since| now.saturating_duration_since(since)),
            running_for: now.saturating_duration_since(self.started),
            heartbeat_age: self
                .heartbeat()
                .map(|beat| Duration::from_millis(now_ms.saturating_sub(beat.time_ms))),
        }
    }

    /// How long it has run.
    pub fn running_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Asks it to stop (SIGTERM to its process group).
    pub fn stop(&mut self) {
        if self.stopping_since.is_none() {
            self.stopping_since = Some(Instant::now());
        }
        signal_group(self.pid, Signal::TERM);
    }

    /// Forces it to stop (SIGKILL to its process group).
    pub fn kill(&mut self) {
        if self.stopping_since.is_none() {
            self.stopping_since = Some(Instant::now());
        }
        signal_group(self.pid, Signal::KILL);
    }

    /// Whether it was asked to stop.
    pub fn stopping(&self) -> bool {
        self.stopping_since.is_some()
    }

    /// Whether it has ended.
    pub fn ended(&self) -> bool {
        self.exit.is_some()
    }

    /// Gives it a new plan (written atomically; the worker notices the new file).
    ///
    /// # Errors
    /// When the plan cannot be written.
    pub fn rewrite(&mut self, plan: &WorkerPlan) -> std::io::Result<()> {
        plan.write(&self.dir.join(PLAN_FILE))?;
        self.plan = plan.clone();
        self.executors = plan.this_slot().executors.clone();
        Ok(())
    }
}
