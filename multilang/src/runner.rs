//! The life of a shell component's subprocesses: start, watch for silence, fail, restart —
//! what shell spouts and bolts share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handshake;
use super::process::{Event, Labels, LaunchError, SpawnOptions, Subprocess, Ticks, quote};
use super::protocol::{LogLevel, ShellCommand, encode_handshake, encode_task_ids};
use super::restart::{RestartDecision, RestartTracker};
use super::spec::{Launch, ShellSpec, heartbeat_timeout, max_message_bytes};
use squall_core::component::ComponentError;
use squall_core::context::TopologyContext;
use squall_core::ids::TaskId;

/// How often bolts get a heartbeat tuple (and every shell task's executor is woken to look
/// for a hung subprocess), as in Storm.
pub(crate) const TICK_EVERY: Duration = Duration::from_secs(1);

/// Most events handled per call, so one call never runs for long.
const EVENTS_PER_CALL: usize = 4096;

/// What the subprocess did next.
#[derive(Debug)]
pub(crate) enum Next {
    /// It sent a command.
    Command(ShellCommand),
    /// It failed: exited, broke the protocol, stopped reading (the description).
    Failure(String),
}

/// What an exit looks like in a report.
fn exited(status: Option<std::process::ExitStatus>, unfinished: &str) -> String {
    let mut text = match status {
        Some(status) => format!("exited ({status})"),
        None => "closed its output".to_owned(),
    };
    if !unfinished.is_empty() {
        text.push_str(" in the middle of a message: ");
        text.push_str(&quote(unfinished));
    }
    text
}

/// A shell spout or bolt task, as [`pump`] drives it with the output type `O` of its calls.
pub(crate) trait ShellTask<O> {
    /// Its runner.
    fn runner(&mut self) -> &mut Runner;
    /// Carries out a command of the subprocess; `Err` describes a protocol violation.
    fn command(&mut self, command: ShellCommand, output: &mut O) -> Result<(), String>;
    /// The subprocess failed as `what` says: settle what it held, report, restart.
    fn failure(&mut self, output: &mut O, what: &str);
}

/// Handles what the subprocess did, up to a bound per call so one call never runs for long;
/// stops at a failure. Returns whether there was anything.
pub(crate) fn pump<O, T: ShellTask<O>>(task: &mut T, output: &mut O) -> bool {
    let mut handled = 0;
    while handled < EVENTS_PER_CALL {
        let Some(next) = task.runner().next() else {
            break;
        };
        handled += 1;
        let problem = match next {
            Next::Command(command) => task.command(command, output).err(),
            Next::Failure(problem) => Some(problem),
        };
        if let Some(problem) = problem {
            task.failure(output, &problem);
            break;
        }
    }
    handled > 0
}

/// What kind of component a runner serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Spout,
    Bolt,
    /// A bolt that gets whole windows, as tuples on the `__window` stream.
    WindowedBolt,
}

/// The current subprocess of a shell task, and what to do when it fails.
#[derive(Debug)]
pub(crate) struct Runner {
    context: TopologyContext,
    launch: Launch,
    labels: Labels,
    timeout: Duration,
    max_message_bytes: usize,
    role: Role,
    process: Option<Subprocess>,
    restarts: RestartTracker,
    /// When the next subprocess starts, while none runs.
    restart_at: Option<Instant>,
    /// The restart policy gave up: no subprocess will run again.
    down: bool,
}

impl Runner {
    /// Resolves the command for this task and starts the first subprocess.
    pub(crate) fn start(
        spec: &Arc<ShellSpec>,
        context: &TopologyContext,
        role: Role,
    ) -> Result<Self, ComponentError> {
        let config = context.config();
        let timeout = heartbeat_timeout(config)?;
        let max_message_bytes = max_message_bytes(config)?;
        let mut runner = Self {
            launch: spec.resolve(config),
            labels: Labels {
                topology: context.topology().name().to_owned(),
                component: context.component_id().to_owned(),
                task: context.task_id(),
            },
            context: context.clone(),
            timeout,
            max_message_bytes,
            role,
            process: None,
            restarts: RestartTracker::new(spec.restart_policy()),
            restart_at: None,
            down: false,
        };
        runner.process = Some(runner.spawn()?);
        Ok(runner)
    }

    fn spawn(&self) -> Result<Subprocess, LaunchError> {
        let conf = handshake::conf(&self.context);
        let context = handshake::context(&self.context, self.role == Role::WindowedBolt);
        let options = SpawnOptions {
            launch: &self.launch,
            labels: self.labels.clone(),
            ticks: Ticks {
                every: TICK_EVERY.min(self.timeout / 2),
                heartbeats: self.role != Role::Spout,
            },
            max_message_bytes: self.max_message_bytes,
            waker: self.context.waker(),
        };
        let process = Subprocess::spawn(options, |pid_dir| {
            let mut message = Vec::with_capacity(4096);
            encode_handshake(&mut message, &conf, &context, pid_dir);
            message
        })?;
        tracing::debug!(
            topology = %self.labels.topology,
            component = %self.labels.component,
            task = self.labels.task.0,
            pid = process.pid(),
            "started `{}`",
            self.launch.command_line()
        );
        Ok(process)
    }

    /// Starts the next subprocess if none runs and its time has come. Returns whether one
    /// started, or the error to report when starting failed (the runner then waits and tries
    /// again, or gives up, as its policy says).
    pub(crate) fn revive(&mut self, now: Instant) -> Result<bool, String> {
        match self.restart_at {
            Some(at) if at <= now && self.process.is_none() => {}
            _ => return Ok(false),
        }
        self.restart_at = None;
        match self.spawn() {
            Ok(process) => {
                self.process = Some(process);
                Ok(true)
            }
            Err(error) => {
                let consequence = self.decide(now, Duration::ZERO);
                Err(format!(
                    "cannot restart the subprocess: {error}{consequence}"
                ))
            }
        }
    }

    /// What the subprocess did next, if anything (the handshake reply is taken silently).
    pub(crate) fn next(&mut self) -> Option<Next> {
        loop {
            let event = self.process.as_mut().and_then(Subprocess::try_event)?;
            return Some(match event {
                Event::Pid(_) => continue,
                Event::Command(command) => Next::Command(command),
                Event::Malformed { text, error } => Next::Failure(format!(
                    "sent a malformed message: {error}; the message: {}",
                    quote(&text)
                )),
                Event::Exited { status, unfinished } => Next::Failure(exited(status, &unfinished)),
                Event::WriteFailed(error) => {
                    Next::Failure(format!("stopped reading its input ({error})"))
                }
            });
        }
    }

    /// The component's id.
    pub(crate) fn component(&self) -> &str {
        &self.labels.component
    }

    /// The pid of the running subprocess (0 when none runs).
    pub(crate) fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, Subprocess::pid)
    }

    /// The running subprocess as reports name it: its command line and pid.
    fn who(&self) -> String {
        match &self.process {
            Some(process) => process.describe(),
            None => format!("subprocess `{}`", self.launch.command_line()),
        }
    }

    /// The running subprocess.
    pub(crate) fn process(&mut self) -> Option<&mut Subprocess> {
        self.process.as_mut()
    }

    /// Whether the policy gave up on restarting.
    pub(crate) fn is_down(&self) -> bool {
        self.down
    }

    /// What the subprocess's silence means: `Some(description)` when it said nothing for
    /// longer than the timeout while it had to answer (the handshake; heartbeats of bolts;
    /// spout commands when `waiting`).
    pub(crate) fn hung(&self, waiting: bool) -> Option<String> {
        let process = self.process.as_ref()?;
        if process.is_ready() && !waiting {
            return None;
        }
        let silent = process.silent_for();
        (silent > self.timeout).then(|| {
            let what = if process.is_ready() {
                "stopped answering"
            } else {
                "did not answer the handshake"
            };
            format!(
                "{what}: nothing received for {:.1}s (heartbeat timeout {:.1}s, setting {:?})",
                silent.as_secs_f64(),
                self.timeout.as_secs_f64(),
                super::spec::HEARTBEAT_TIMEOUT_KEY
            )
        })
    }

    /// Ends the current subprocess after `what` went wrong; returns the description to
    /// report (the subprocess, what happened, its stderr) and the consequence (when it
    /// restarts). Restarts at once when the policy says so.
    pub(crate) fn fail(&mut self, what: &str, now: Instant) -> (String, String) {
        let Some(process) = self.process.take() else {
            return (format!("subprocess {what}"), String::new());
        };
        let description = format!("{} {what}{}", process.describe(), process.stderr_tail());
        let lived = process.lived();
        drop(process);
        let consequence = self.decide(now, lived);
        (description, consequence)
    }

    fn decide(&mut self, now: Instant, lived: Duration) -> String {
        match self.restarts.on_failure(now, lived) {
            RestartDecision::After(delay) => {
                self.restart_at = Some(now + delay);
                if delay.is_zero() {
                    "; restarting it".to_owned()
                } else {
                    format!("; restarting it in {:.1}s", delay.as_secs_f64())
                }
            }
            RestartDecision::GiveUp => {
                self.down = true;
                "; not restarting it (restart policy): the component stays down".to_owned()
            }
        }
    }

    /// Carries out the commands spouts and bolts treat alike: `log` and `metrics` are
    /// logged, `error` returns the report to make.
    pub(crate) fn note(&self, command: ShellCommand) -> Option<String> {
        let (component, task, pid) = (&self.labels.component, self.labels.task.0, self.pid());
        match command {
            ShellCommand::Log { msg, level } => {
                match level {
                    LogLevel::Trace => {
                        tracing::trace!(target: "squall_multilang::log", %component, task, pid, "{msg}")
                    }
                    LogLevel::Debug => {
                        tracing::debug!(target: "squall_multilang::log", %component, task, pid, "{msg}")
                    }
                    LogLevel::Info => {
                        tracing::info!(target: "squall_multilang::log", %component, task, pid, "{msg}")
                    }
                    LogLevel::Warn => {
                        tracing::warn!(target: "squall_multilang::log", %component, task, pid, "{msg}")
                    }
                    LogLevel::Error => {
                        tracing::error!(target: "squall_multilang::log", %component, task, pid, "{msg}")
                    }
                }
                None
            }
            ShellCommand::Metrics { name, params } => {
                tracing::debug!(
                    target: "squall_multilang::metrics",
                    %component,
                    task,
                    metric = %name,
                    params = params.as_deref().unwrap_or("null"),
                    "metric update"
                );
                None
            }
            ShellCommand::Error { msg } => Some(format!("{} reported an error: {msg}", self.who())),
            other => Some(format!(
                "{} sent {:?} where it has no meaning; ignored",
                self.who(),
                other.name()
            )),
        }
    }
}

/// Answers an emit that asked which tasks got the tuple.
pub(crate) fn send_task_ids(runner: &mut Runner, tasks: &[TaskId]) {
    let mut reply = Vec::with_capacity(8 + 4 * tasks.len());
    encode_task_ids(&mut reply, tasks);
    if let Some(process) = runner.process() {
        process.send(reply);
    }
}
