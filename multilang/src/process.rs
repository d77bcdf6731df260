//! A running subprocess and the three threads that talk to it, so that the executor thread
//! never waits on it: a writer (messages and heartbeats to its stdin), a reader (its stdout
//! cut into messages and decoded) and a logger (its stderr). The executor sends with
//! [`Subprocess::send`] and takes decoded [`Event`]s with [`Subprocess::try_event`], neither of
//! which blocks; the reader and writer wake the executor when they have something for it.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::framing::{FrameError, Framer};
use super::protocol::{ProtocolError, ShellCommand, decode_command, decode_pid, encode_heartbeat};
use super::spec::Launch;
use squall_core::context::ExecutorWaker;
use squall_core::ids::TaskId;

/// Lines of stderr kept for error reports.
const STDERR_TAIL_LINES: usize = 20;

/// Longest stderr line kept or logged, in bytes.
const STDERR_LINE_BYTES: usize = 2048;

/// How long the reader waits for the exit status after the subprocess closed its stdout.
const EXIT_STATUS_WAIT: Duration = Duration::from_secs(2);

/// Most characters of an offending message quoted in errors.
pub(crate) const QUOTE_CHARS: usize = 300;

/// Why a subprocess could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The working directory does not exist.
    #[error("working directory {dir} of `{command}` does not exist")]
    NoWorkingDir {
        /// The command line.
        command: String,
        /// The directory.
        dir: PathBuf,
    },
    /// The process could not be started.
    #[error("cannot start `{command}` in {dir}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The working directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The directory for the pid file could not be made.
    #[error("cannot create the pid directory {dir}: {source}")]
    PidDir {
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A helper thread could not be started.
    #[error("cannot start a thread for `{command}`: {source}")]
    Thread {
        /// The command line.
        command: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// A message that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The lines do not make a message.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The message is not a valid protocol message.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Something the subprocess did.
#[derive(Debug)]
pub(crate) enum Event {
    /// It answered the handshake with its pid.
    Pid(u32),
    /// It sent a command.
    Command(ShellCommand),
    /// It sent something that is not a message; nothing more is read from it.
    Malformed {
        /// The offending text.
        text: String,
        /// What is wrong with it.
        error: MessageError,
    },
    /// It closed its stdout (it exited, or is about to).
    Exited {
        /// Its exit status, if it was known within a moment.
        status: Option<ExitStatus>,
        /// A message it had started and not ended.
        unfinished: String,
    },
    /// Writing to its stdin failed.
    WriteFailed(String),
}

/// Who a subprocess works for, for logs.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    pub(crate) topology: String,
    pub(crate) component: String,
    pub(crate) task: TaskId,
}

/// What the threads share with the owner.
#[derive(Debug)]
struct Shared {
    epoch: Instant,
    /// Nanoseconds from `epoch` to the last complete message read.
    last_heard: AtomicU64,
    stderr_tail: Mutex<VecDeque<String>>,
    labels: Labels,
    os_pid: u32,
}

impl Shared {
    fn heard(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_heard.store(nanos, Ordering::Release);
    }
}

/// Wakes the owner's executor thread, if it has a waker.
#[derive(Clone)]
struct Notifier(Option<ExecutorWaker>);

impl Notifier {
    fn wake(&self) {
        if let Some(waker) = &self.0 {
            waker.wake();
        }
    }
}

/// Timers of the writer thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticks {
    /// How often the writer wakes the owner (so it checks for a hung subprocess) and, for
    /// bolts, sends a heartbeat tuple.
    pub(crate) every: Duration,
    /// Whether each tick sends a heartbeat tuple.
    pub(crate) heartbeats: bool,
}

/// How to start a subprocess.
pub(crate) struct SpawnOptions<'a> {
    pub(crate) launch: &'a Launch,
    pub(crate) labels: Labels,
    pub(crate) ticks: Ticks,
    pub(crate) max_message_bytes: usize,
    pub(crate) waker: Option<ExecutorWaker>,
}

/// A running subprocess.
pub(crate) struct Subprocess {
    child: Arc<Mutex<Option<Child>>>,
    outgoing: Option<Sender<Vec<u8>>>,
    events: Receiver<Event>,
    shared: Arc<Shared>,
    started: Instant,
    pid_dir: PathBuf,
    command: String,
    /// The pid it reported in the handshake, once it did.
    reported_pid: Option<u32>,
}

impl fmt::Debug for Subprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subprocess")
            .field("command", &self.command)
            .field("pid", &self.shared.os_pid)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A text for an error message: at most [`QUOTE_CHARS`] characters, quoted and escaped.
pub(crate) fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let short: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

impl Subprocess {
    /// Starts the subprocess and its threads; `handshake` makes the first message from the
    /// pid directory.
    pub(crate) fn spawn(
        options: SpawnOptions<'_>,
        handshake: impl FnOnce(&Path) -> Vec<u8>,
    ) -> Result<Self, LaunchError> {
        let launch = options.launch;
        let command = launch.command_line();
        if !launch.working_dir.is_dir() {
            return Err(LaunchError::NoWorkingDir {
                command,
                dir: launch.working_dir.clone(),
            });
        }
        let pid_dir = super::pid_dir::new_path(options.labels.task);
        std::fs::create_dir_all(&pid_dir).map_err(|source| LaunchError::PidDir {
            dir: pid_dir.clone(),
            source,
        })?;
        let mut command_builder = Command::new(&launch.program);
        command_builder
            .args(&launch.args)
            .current_dir(&launch.working_dir)
            .envs(launch.env.iter().map(|(key, value)| (key, value)));
        super::environment::withhold_secrets(&mut command_builder);
        let mut child = command_builder
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| {
                let _ = std::fs::remove_dir_all(&pid_dir);
                LaunchError::Spawn {
                    command: command.clone(),
                    dir: launch.working_dir.clone(),
                    source,
                }
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three pipes were asked for");
        };
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            last_heard: AtomicU64::new(0),
            stderr_tail: Mutex::new(VecDeque::new()),
            labels: options.labels,
            os_pid: child.id(),
        });
        let child = Arc::new(Mutex::new(Some(child)));
        let (outgoing, to_write) = mpsc::channel::<Vec<u8>>();
        let (event_sender, events) = mpsc::channel::<Event>();
        // The handshake goes first: the writer takes messages in order.
        let _ = outgoing.send(handshake(&pid_dir));
        let process = Self {
            child: Arc::clone(&child),
            outgoing: Some(outgoing),
            events,
            shared: Arc::clone(&shared),
            started: Instant::now(),
            pid_dir,
            command: command.clone(),
            reported_pid: None,
        };
        let notifier = Notifier(options.waker);
        let task = shared.labels.task;
        let thread_error = |source| LaunchError::Thread {
            command: command.clone(),
            source,
        };
        {
            let (shared, notifier, events) =
                (Arc::clone(&shared), notifier.clone(), event_sender.clone());
            let ticks = options.ticks;
            let child = Arc::clone(&child);
            std::thread::Builder::new()
                .name(format!("squall-ml-w{task}"))
                .spawn(move || {
                    let ends = WriterEnds {
                        events,
                        notifier,
                        child,
                    };
                    write_loop(stdin, &to_write, ticks, &ends, &shared);
                })
                .map_err(thread_error)?;
        }
        let (stderr_done, stderr_closed) = mpsc::channel::<()>();
        {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("squall-ml-e{task}"))
                .spawn(move || {
                    stderr_loop(stderr, &shared);
                    let _ = stderr_done.send(());
                })
                .map_err(thread_error)?;
        }
        {
            let (shared, max) = (Arc::clone(&shared), options.max_message_bytes);
            let ends = Ends {
                child,
                stderr_closed,
            };
            std::thread::Builder::new()
                .name(format!("squall-ml-r{task}"))
                .spawn(move || read_loop(stdout, &event_sender, &ends, max, &notifier, &shared))
                .map_err(thread_error)?;
        }
        Ok(process)
    }

    /// Queues a message for its stdin; false when the writer has stopped.
    pub(crate) fn send(&self, message: Vec<u8>) -> bool {
        self.outgoing
            .as_ref()
            .is_some_and(|outgoing| outgoing.send(message).is_ok())
    }

    /// The next thing it did, if any.
    pub(crate) fn try_event(&mut self) -> Option<Event> {
        match self.events.try_recv() {
            Ok(event) => {
                if let Event::Pid(pid) = event {
                    self.reported_pid = Some(pid);
                }
                Some(event)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// How long since its last complete message (or its start).
    pub(crate) fn silent_for(&self) -> Duration {
        let heard = Duration::from_nanos(self.shared.last_heard.load(Ordering::Acquire));
        self.shared.epoch.elapsed().saturating_sub(heard)
    }

    /// How long it has been running.
    pub(crate) fn lived(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether it answered the handshake.
    pub(crate) fn is_ready(&self) -> bool {
        self.reported_pid.is_some()
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.shared.os_pid
    }

    /// The command line and pid, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("subprocess `{}` (pid {})", self.command, self.shared.os_pid)
    }

    /// The last lines it wrote to stderr, for error reports (empty if none).
    pub(crate) fn stderr_tail(&self) -> String {
        let tail = lock(&self.shared.stderr_tail);
        if tail.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!("; its stderr ends with:\n{}", lines.join("\n"))
    }
}

impl Drop for Subprocess {
    fn drop(&mut self) {
        // Closing the channel ends the writer; killing the process ends the reader and the
        // stderr thread (their pipes close).
        self.outgoing = None;
        let child = lock(&self.child).take();
        let pid_dir = std::mem::take(&mut self.pid_dir);
        let Some(mut child) = child else {
            let _ = std::fs::remove_dir_all(&pid_dir);
            return;
        };
        let _ = child.kill();
        // Removed here rather than by the reaper below: a worker that is stopping exits
        // without waiting for its reaper threads.
        let _ = std::fs::remove_dir_all(&pid_dir);
        let pid = self.shared.os_pid;
        // Reaping waits for the kernel; it happens off the executor thread.
        let reaper = std::thread::Builder::new()
            .name("squall-ml-reap".to_owned())
            .spawn(move || {
                let _ = child.wait();
            });
        if reaper.is_err() {
            tracing::warn!(
                pid,
                "cannot start a thread to reap a killed subprocess; it stays a zombie until the worker exits"
            );
        }
    }
}

/// Where the writer reports, and the subprocess it writes to.
struct WriterEnds {
    events: Sender<Event>,
    notifier: Notifier,
    child: Arc<Mutex<Option<Child>>>,
}

/// Whether the subprocess exits within [`EXIT_STATUS_WAIT`]: a write that failed because it
/// exited is then left to the reader, which reports the exit with its status and stderr.
fn exits_soon(child: &Mutex<Option<Child>>) -> bool {
    let deadline = Instant::now() + EXIT_STATUS_WAIT;
    loop {
        match lock(child).as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) => return true,
            Some(Ok(None)) if Instant::now() < deadline => {}
            _ => return false,
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write_loop(
    stdin: ChildStdin,
    messages: &Receiver<Vec<u8>>,
    ticks: Ticks,
    ends: &WriterEnds,
    shared: &Shared,
) {
    let (events, notifier) = (&ends.events, &ends.notifier);
    let mut out = BufWriter::with_capacity(64 * 1024, stdin);
    let mut next_tick = Instant::now() + ticks.every;
    let mut heartbeat = Vec::new();
    if ticks.heartbeats {
        encode_heartbeat(&mut heartbeat);
    }
    loop {
        let first = match messages.recv_timeout(next_tick.saturating_duration_since(Instant::now()))
        {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let write = || -> std::io::Result<()> {
            if let Some(message) = first {
                out.write_all(&message)?;
                while let Ok(message) = messages.try_recv() {
                    out.write_all(&message)?;
                }
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + ticks.every;
                if ticks.heartbeats {
                    out.write_all(&heartbeat)?;
                }
                notifier.wake();
            }
            out.flush()
        };
        if let Err(error) = write() {
            tracing::debug!(
                component = %shared.labels.component,
                task = shared.labels.task.0,
                pid = shared.os_pid,
                "writing to the subprocess failed: {error}"
            );
            if exits_soon(&ends.child) {
                return;
            }
            let _ = events.send(Event::WriteFailed(error.to_string()));
            notifier.wake();
            return;
        }
    }
}

/// What the reader looks at once the subprocess closed its stdout.
struct Ends {
    child: Arc<Mutex<Option<Child>>>,
    /// Signalled when the stderr thread has read everything.
    stderr_closed: Receiver<()>,
}

/// Waits a moment for the exit status of a subprocess that closed its stdout, and for the
/// last of its stderr, so the report has both.
fn exit_status(ends: &Ends) -> Option<ExitStatus> {
    let deadline = Instant::now() + EXIT_STATUS_WAIT;
    let status = loop {
        match lock(&ends.child).as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => break Some(status),
            Some(Ok(None)) if Instant::now() < deadline => {}
            _ => break None,
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = ends
        .stderr_closed
        .recv_timeout(deadline.saturating_duration_since(Instant::now()));
    status
}

fn read_loop(
    stdout: ChildStdout,
    events: &Sender<Event>,
    ends: &Ends,
    max_message_bytes: usize,
    notifier: &Notifier,
    shared: &Shared,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut framer = Framer::new(max_message_bytes);
    let mut line = Vec::with_capacity(256);
    let mut awaiting_pid = true;
    let send = |event: Event| {
        let _ = events.send(event);
        notifier.wake();
    };
    loop {
        line.clear();
        // Room for the rest of the message, its newline, a `\r` and one byte more to tell a
        // line that is too long.
        let limit = framer.room().saturating_add(3) as u64;
        let read = (&mut reader).take(limit).read_until(b'\n', &mut line);
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                send(Event::WriteFailed(format!(
                    "reading its stdout failed: {error}"
                )));
                return;
            }
        };
        if read == 0 {
            let status = exit_status(ends);
            send(Event::Exited {
                status,
                unfinished: framer.pending().to_owned(),
            });
            return;
        }
        if read as u64 == limit && !line.ends_with(b"\n") {
            let mut text = framer.pending().to_owned();
            text.push_str(&String::from_utf8_lossy(
                &line[..line.len().min(QUOTE_CHARS)],
            ));
            send(Event::Malformed {
                text,
                error: FrameError::TooLarge {
                    max: max_message_bytes,
                }
                .into(),
            });
            return;
        }
        let pending = framer.pending().to_owned();
        let message = match framer.push_line(&line) {
            Ok(None) => continue,
            Ok(Some(message)) => message,
            Err(error) => {
                let mut text = pending;
                text.push('\n');
                text.push_str(&String::from_utf8_lossy(&line));
                send(Event::Malformed {
                    text,
                    error: error.into(),
                });
                return;
            }
        };
        shared.heard();
        let event = if awaiting_pid {
            awaiting_pid = false;
            match decode_pid(&message) {
                Ok(pid) => Event::Pid(pid),
                Err(error) => Event::Malformed {
                    text: message,
                    error: error.into(),
                },
            }
        } else {
            match decode_command(&message) {
                Ok(command) => Event::Command(command),
                // Storm's ShellBolt logs a command it does not know and carries on; so do
                // both shell components here, rather than restarting the subprocess.
                Err(ProtocolError::UnknownCommand { command }) => {
                    tracing::warn!(
                        topology = %shared.labels.topology,
                        component = %shared.labels.component,
                        task = shared.labels.task.0,
                        pid = shared.os_pid,
                        "ignoring an unknown multi-lang command {command:?}"
                    );
                    continue;
                }
                Err(error) => Event::Malformed {
                    text: message,
                    error: error.into(),
                },
            }
        };
        let stop = matches!(event, Event::Malformed { .. });
        send(event);
        if stop {
            return;
        }
    }
}

fn stderr_loop(stderr: ChildStderr, shared: &Shared) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match (&mut reader)
            .take(STDERR_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        tracing::warn!(
            target: "squall_multilang::stderr",
            topology = %shared.labels.topology,
            component = %shared.labels.component,
            task = shared.labels.task.0,
            pid = shared.os_pid,
            "{text}"
        );
        let mut tail = lock(&shared.stderr_tail);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.to_owned());
    }
}
