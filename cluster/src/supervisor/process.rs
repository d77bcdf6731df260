//! Worker processes as a supervisor runs them.
//!
//! Each worker runs in its own directory (`<data_dir>/workers/<topology-id>-<port>`) as
//! `<program> worker --plan plan.json`, in a process group of its own (so that stopping it
//! also stops anything it started), with its topology's worker key (never the cluster
//! secret) in its environment and its output appended to `worker.log`. Its process id and
//! start time are kept in `worker.pid` ([`PidRecord`]), so that a supervisor restarted on the
//! same machine adopts its workers instead of orphaning them, and never mistakes a process
//! that reused the id for one.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::decide::{DesiredWorker, ObservedWorker};
use super::pid_record::PidRecord;
use crate::config::TlsSettings;
use crate::plan::{
    HEARTBEAT_FILE, SECRET_ENV, TOPOLOGY_ID_ENV, WORKER_KEY_ENV, WorkerHeartbeat, WorkerPlan,
};
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
    /// Started by an earlier run of this supervisor: not this process's child, so its id
    /// may be reused once it ends; the record tells.
    Adopted(PidRecord),
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

/// The record of the process a pid-alone `worker.pid` (written by an earlier version)
/// names, if that process works in `dir` — as the worker launched there does — so that a
/// supervisor upgraded under running workers still adopts them.
fn legacy_record(text: &str, dir: &Path) -> Option<PidRecord> {
    let pid: u32 = text.trim().parse().ok()?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    if cwd != dir.canonicalize().ok()? {
        return None;
    }
    PidRecord::of_running(pid)
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
        metrics_bind: &str,
        tls: &TlsSettings,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let _ = std::fs::remove_file(dir.join(HEARTBEAT_FILE));
        let plan_path = dir.join(PLAN_FILE);
        desired.plan.write(&plan_path)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))?;
        let mut command = Command::new(program);
        // Workers link with TLS only as this supervisor's configuration says, whatever its
        // own environment holds.
        for name in crate::tls::WORKER_TLS_ENV {
            command.env_remove(name);
        }
        let child = command
            .arg("worker")
            .arg("--plan")
            .arg(&plan_path)
            .current_dir(&dir)
            // The supervisor may hold the cluster secret in its own environment: a worker
            // must not inherit it, only its topology's key.
            .env_remove(SECRET_ENV)
            .env(
                WORKER_KEY_ENV,
                secret.worker_key(&desired.topology_id).env_value(),
            )
            .env(TOPOLOGY_ID_ENV, &desired.topology_id)
            .env(crate::app::WORKER_METRICS_ENV, metrics_bind)
            .envs(crate::tls::worker_link_env(tls))
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
        // The child is not reaped before this supervisor waits for it, so /proc describes
        // it even if it has exited already.
        let record = PidRecord::of_running(pid).map_or_else(
            || {
                tracing::warn!(
                    pid,
                    "no start time for the new worker; it cannot be adopted"
                );
                pid.to_string()
            },
            |record| record.to_string(),
        );
        std::fs::write(dir.join(PID_FILE), record)?;
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
    /// if the process its pid record names is still the one recorded (same start time) and
    /// its plan is readable; returns the port and the worker.
    pub fn adopt(dir: &Path) -> Option<(u16, Self)> {
        let text = std::fs::read_to_string(dir.join(PID_FILE)).ok()?;
        let record = match PidRecord::parse(&text) {
            Ok(record) => record,
            Err(error) => match legacy_record(&text, dir) {
                Some(record) => record,
                None => {
                    tracing::warn!(dir = %dir.display(), %error, "not adopting a worker");
                    return None;
                }
            },
        };
        if !record.is_running() {
            tracing::info!(
                dir = %dir.display(),
                pid = record.pid,
                "not adopting a worker: its process ended (its pid is free or reused)"
            );
            return None;
        }
        let plan = WorkerPlan::read(&dir.join(PLAN_FILE)).ok()?;
        let slot = plan.this_slot().clone();
        Some((
            slot.port,
            Self {
                topology_id: plan.topology_id.clone(),
                executors: slot.executors,
                plan,
                dir: dir.to_owned(),
                pid: record.pid,
                process: Process::Adopted(record),
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
            Process::Adopted(record) => {
                if !record.is_running() {
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
        self.signal(Signal::TERM);
    }

    /// Forces it to stop (SIGKILL to its process group).
    pub fn kill(&mut self) {
        if self.stopping_since.is_none() {
            self.stopping_since = Some(Instant::now());
        }
        self.signal(Signal::KILL);
    }

    /// Signals its process group, unless it is an adopted process that has ended: its id
    /// (and so its group's) may belong to another process by now.
    fn signal(&self, signal: Signal) {
        if let Process::Adopted(record) = &self.process
            && !record.is_running()
        {
            return;
        }
        signal_group(self.pid, signal);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::records::{AssignedWorker, Assignment};

    /// A worker program that only sleeps, and one desired worker of it.
    fn sleeper(dir: &Path) -> (PathBuf, DesiredWorker) {
        let program = dir.join("sleeper");
        std::fs::write(&program, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let assignment = Assignment {
            topology_id: "wc-1".into(),
            topology: "wc".into(),
            version: 1,
            active: true,
            artifact: "5e9b3c2d1f0a4b6c8d7e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c".into(),
            args: Vec::new(),
            parallelism: BTreeMap::new(),
            executors: 1,
            workers: vec![AssignedWorker {
                supervisor: "a".into(),
                host: "127.0.0.1".into(),
                port: 6700,
                executors: vec![0],
            }],
        };
        let assignments = BTreeMap::from([("wc-1".to_owned(), assignment)]);
        let desired = super::super::decide::desired_workers(
            "a",
            "test",
            "mio",
            &dir.join("artifacts"),
            &assignments,
        );
        (program, desired[&6700].clone())
    }

    #[test]
    fn only_the_recorded_process_is_adopted_and_signalled() {
        let temp = tempfile::tempdir().unwrap();
        let (program, desired) = sleeper(temp.path());
        let secret = Secret::new("0123456789abcdef0123", "test").unwrap();
        let dir = temp.path().join("workers").join("wc-1-6700");
        let mut launched = LocalWorker::launch(
            dir.clone(),
            &program,
            &desired,
            &secret,
            "127.0.0.1:0",
            &TlsSettings::default(),
        )
        .unwrap();
        let record = PidRecord::parse(&std::fs::read_to_string(dir.join(PID_FILE)).unwrap())
            .expect("a pid record with the start time");
        assert_eq!(record.pid, launched.pid);

        // The recorded process is adopted.
        let (port, adopted) = LocalWorker::adopt(&dir).expect("adopted");
        assert_eq!((port, adopted.pid), (6700, launched.pid));
        drop(adopted);

        // The same pid with another start time is another process: not adopted, and so
        // not signalled; the process runs on.
        let reused = PidRecord {
            start_ticks: record.start_ticks + 1,
            ..record
        };
        std::fs::write(dir.join(PID_FILE), reused.to_string()).unwrap();
        assert!(LocalWorker::adopt(&dir).is_none());
        // A record of a pid alone (an earlier version's) is adopted only when the process
        // works in the worker's directory.
        std::fs::write(dir.join(PID_FILE), record.pid.to_string()).unwrap();
        assert_eq!(
            LocalWorker::adopt(&dir).map(|(_, w)| w.pid),
            Some(record.pid)
        );
        std::fs::write(dir.join(PID_FILE), std::process::id().to_string()).unwrap();
        assert!(LocalWorker::adopt(&dir).is_none());

        // An adopted worker whose process ended and whose pid was taken by another process
        // is not signalled: stand in the running sleeper for that other process.
        let mut stale = LocalWorker {
            topology_id: desired.topology_id.clone(),
            executors: desired.executors.clone(),
            plan: desired.plan.clone(),
            dir: dir.clone(),
            pid: launched.pid,
            process: Process::Adopted(reused),
            started: Instant::now(),
            stopping_since: None,
            exit: None,
        };
        stale.poll();
        assert!(stale.ended());
        stale.kill();
        std::thread::sleep(Duration::from_millis(100));
        launched.poll();
        assert!(!launched.ended(), "an unrelated process was signalled");

        launched.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !launched.ended() {
            assert!(Instant::now() < deadline, "the sleeper did not stop");
            launched.poll();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
