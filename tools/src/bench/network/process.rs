//! One worker process of a run between workers: started as `squall-bench worker --plan FILE`
//! the way a supervisor starts a worker, asked for its figures over its standard input and
//! output ([`worker`](super::worker)), and stopped with SIGTERM.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use squall::cluster::worker_key::{WORKER_KEY_ENV, WorkerKey};

use super::worker;

/// Longest wait for a worker to exit after SIGTERM (it drains for up to 5 s first).
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the coordinator asks a worker; see [`worker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The worker's counters and latency now.
    Sample,
    /// Forget the latency recorded so far, then sample.
    Reset,
    /// Stop the sources, then sample.
    Stop,
    /// Sample, with every latency recorded since the last reset.
    Latencies,
    /// Write the stage stamps taken since the last reset to
    /// [`STAGE_TRACE_FILE`](worker::STAGE_TRACE_FILE), then sample.
    #[cfg(feature = "stage-trace")]
    Trace,
}

impl Request {
    /// The request's line on the worker's standard input.
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Sample => "sample",
            Request::Reset => "reset",
            Request::Stop => "stop",
            Request::Latencies => "latencies",
            #[cfg(feature = "stage-trace")]
            Request::Trace => "trace",
        }
    }
}

/// One worker process, killed if still running when dropped.
#[derive(Debug)]
pub struct WorkerProcess {
    name: String,
    dir: PathBuf,
    child: Child,
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts the worker `name` in `dir` with the plan file `plan`, the worker key `key`,
    /// the stamp clock's `epoch`, the directory of the shared-memory rings, and more
    /// environment (`--tls`'s files).
    pub fn start(
        name: String,
        dir: &Path,
        plan: &Path,
        key: &WorkerKey,
        epoch: Duration,
        shm: Option<&Path>,
        env: &[(&'static str, OsString)],
    ) -> anyhow::Result<Self> {
        let program = std::env::current_exe().context("finding this program to start workers")?;
        let log = dir.join("worker.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .arg("worker")
            .arg("--plan")
            .arg(plan)
            .current_dir(dir)
            .env(WORKER_KEY_ENV, key.env_value())
            .env(worker::EPOCH_ENV, epoch.as_nanos().to_string())
            .env(
                "SQUALL_LOG",
                std::env::var("SQUALL_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        // Workers link with TLS only when asked (`--tls`), whatever this process inherited.
        for name in squall::cluster::tls::WORKER_TLS_ENV {
            command.env_remove(name);
        }
        command.envs(env.iter().map(|(key, value)| (key, value)));
        match shm {
            Some(shm) => command.env("SQUALL_SHM_DIR", shm),
            None => command.env_remove("SQUALL_SHM_DIR"),
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("starting the {name} worker"))?;
        let dir = dir.to_owned();
        let requests = child.stdin.take().expect("stdin is piped");
        let answers = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Self {
            name,
            dir,
            child,
            requests,
            answers,
            log,
        })
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Asks the worker `request` and reads its answer.
    pub fn request(&mut self, request: Request) -> anyhow::Result<worker::Sample> {
        let asked =
            writeln!(self.requests, "{}", request.as_str()).and_then(|()| self.requests.flush());
        let mut line = String::new();
        let read = asked.and_then(|()| self.answers.read_line(&mut line));
        match read {
            Ok(0) | Err(_) => {
                let status = self.exit_status();
                bail!(
                    "the {} worker stopped answering ({status})\n{}",
                    self.name,
                    self.log_tail()
                )
            }
            Ok(_) => serde_json::from_str(&line)
                .with_context(|| format!("the {} worker answered {line:?}", self.name)),
        }
    }

    fn exit_status(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".to_owned(),
            Err(error) => error.to_string(),
        }
    }

    /// The end of the worker's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!(
            "--- {} worker log ({}) ---\n{tail}",
            self.name,
            self.log.display()
        )
    }

    /// Asks the worker to stop as a supervisor does (SIGTERM: it drains and closes its
    /// connections); [`wait_for_exit`](Self::wait_for_exit) then sees it exit.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("running kill")?;
        if !signalled.success() {
            let status = self.exit_status();
            bail!("could not signal the {} worker ({status})", self.name);
        }
        Ok(())
    }

    /// Waits for the worker to exit after [`terminate`](Self::terminate) and checks that it
    /// exited cleanly.
    pub fn wait_for_exit(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!(
                    "the {} worker exited with {status}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the {} worker did not stop within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
