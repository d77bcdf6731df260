//! What a shell component runs: the command, where, with which outputs, and what happens
//! when its subprocess dies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map as JsonMap, Value as JsonValue};

use squall_core::topology::{OutputDeclarer, StreamDecl};

/// Topology (or component) setting: the directory relative paths of shell components are
/// resolved against (where a cluster worker unpacked the topology's artifact).
pub const ARTIFACT_DIR_KEY: &str = "squall.artifact.dir";

/// Topology (or component) setting: seconds a subprocess may stay silent while the host
/// waits for it (heartbeats of bolts, commands of spouts) before it counts as hung.
pub const HEARTBEAT_TIMEOUT_KEY: &str = "topology.multilang.heartbeat.timeout";

/// Storm's setting for the same timeout, read when [`HEARTBEAT_TIMEOUT_KEY`] is absent.
pub const STORM_SUBPROCESS_TIMEOUT_KEY: &str = "topology.subprocess.timeout.secs";

/// The heartbeat timeout when no setting names one.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// Topology (or component) setting: the largest message, in bytes, a subprocess may send.
pub const MAX_MESSAGE_BYTES_KEY: &str = "topology.multilang.max.message.bytes";

/// What happens when a subprocess exits, hangs or breaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Always start a new one: at once the first time, then after a back-off that doubles
    /// (from 100 ms up to 10 s) while subprocesses keep dying within 5 s of their start. The
    /// default.
    #[default]
    Always,
    /// Start a new one unless `max_restarts` restarts happened within the last `within`.
    Limited {
        /// Restarts allowed within the window.
        max_restarts: u32,
        /// The window.
        within: Duration,
    },
    /// Never: the component stays down (a bolt fails its inputs, a spout emits nothing).
    Never,
}

/// A component run by a subprocess that speaks the multi-lang protocol: its command line,
/// working and resources directories, environment, declared outputs and restart policy.
///
/// Relative directories and a relative program path (one with a `/`, like
/// `bin/split.sh`) are resolved against a base directory: the topology setting
/// [`ARTIFACT_DIR_KEY`] when present, else [`base_dir`](Self::base_dir) (a topology file's
/// directory), else the current directory. The subprocess runs in its working directory,
/// by default the resources directory, which is by default the base directory itself; so
/// `python3 split.py` finds `split.py` there.
///
/// ```
/// use squall_multilang::{RestartPolicy, ShellSpec};
///
/// let spec = ShellSpec::new("python3", ["split.py"])
///     .resources_dir("multilang")
///     .env("PYTHONUNBUFFERED", "1")
///     .output(&["word"])
///     .restart(RestartPolicy::Never);
/// assert_eq!(spec.command_line(), "python3 split.py");
/// ```
#[derive(Debug, Clone)]
pub struct ShellSpec {
    command: String,
    args: Vec<String>,
    working_dir: Option<PathBuf>,
    resources_dir: Option<PathBuf>,
    base_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    outputs: OutputDeclarer,
    restart: RestartPolicy,
}

impl ShellSpec {
    /// Runs `command` with `args`.
    pub fn new<I, S>(command: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            working_dir: None,
            resources_dir: None,
            base_dir: None,
            env: Vec::new(),
            outputs: OutputDeclarer::default(),
            restart: RestartPolicy::default(),
        }
    }

    /// Sets the working directory (relative: to the base directory).
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Sets the resources directory, where the scripts are (relative: to the base
    /// directory).
    pub fn resources_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.resources_dir = Some(dir.into());
        self
    }

    /// Sets the base directory used when the topology has no [`ARTIFACT_DIR_KEY`] setting.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Declares the default output stream.
    pub fn output(mut self, fields: &[&str]) -> Self {
        self.outputs.declare(fields);
        self
    }

    /// Declares a named output stream.
    pub fn output_stream(mut self, stream: &str, fields: &[&str]) -> Self {
        self.outputs.declare_stream(stream, fields);
        self
    }

    /// Declares a direct output stream.
    pub fn output_direct_stream(mut self, stream: &str, fields: &[&str]) -> Self {
        self.outputs.declare_direct_stream(stream, fields);
        self
    }

    /// Sets the restart policy.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// The program.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Its arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The command and its arguments, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.command.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The working directory as given.
    pub fn working_dir_setting(&self) -> Option<&Path> {
        self.working_dir.as_deref()
    }

    /// The resources directory as given.
    pub fn resources_dir_setting(&self) -> Option<&Path> {
        self.resources_dir.as_deref()
    }

    /// The declared output streams.
    pub fn outputs(&self) -> &[StreamDecl] {
        self.outputs.streams()
    }

    /// The restart policy.
    pub fn restart_policy(&self) -> RestartPolicy {
        self.restart
    }

    pub(crate) fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        for stream in self.outputs.streams() {
            let fields: Vec<&str> = stream.fields.iter().map(String::as_str).collect();
            if stream.direct {
                declarer.declare_direct_stream(&stream.name, &fields);
            } else {
                declarer.declare_stream(&stream.name, &fields);
            }
        }
    }

    /// Resolves the directories and program for a task whose settings are `config`.
    pub fn resolve(&self, config: &JsonMap<String, JsonValue>) -> Launch {
        let base = match config.get(ARTIFACT_DIR_KEY).and_then(JsonValue::as_str) {
            Some(dir) => PathBuf::from(dir),
            None => match &self.base_dir {
                Some(dir) => dir.clone(),
                None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            },
        };
        let resources = match &self.resources_dir {
            Some(dir) => base.join(dir),
            None => base.clone(),
        };
        let working_dir = match &self.working_dir {
            Some(dir) => base.join(dir),
            None => resources.clone(),
        };
        let program = PathBuf::from(&self.command);
        let program = if program.is_relative() && self.command.contains('/') {
            working_dir.join(program)
        } else {
            program
        };
        Launch {
            program,
            args: self.args.clone(),
            working_dir,
            resources_dir: resources,
            env: self.env.clone(),
        }
    }
}

/// A resolved command line, ready to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program (a path when the command had a `/`, else a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it runs.
    pub working_dir: PathBuf,
    /// Where its resources are.
    pub resources_dir: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A duration setting in seconds (an integer or a float).
pub(crate) fn seconds_setting(
    config: &JsonMap<String, JsonValue>,
    key: &str,
) -> Option<Result<Duration, String>> {
    let value = config.get(key)?;
    Some(
        value
            .as_f64()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .filter(|duration| !duration.is_zero())
            .ok_or_else(|| {
                format!("setting {key:?} must be a positive number of seconds, found {value}")
            }),
    )
}

/// The heartbeat timeout of a task with settings `config`.
///
/// # Errors
/// A message naming the setting when it is not a positive number of seconds.
pub(crate) fn heartbeat_timeout(config: &JsonMap<String, JsonValue>) -> Result<Duration, String> {
    seconds_setting(config, HEARTBEAT_TIMEOUT_KEY)
        .or_else(|| seconds_setting(config, STORM_SUBPROCESS_TIMEOUT_KEY))
        .unwrap_or(Ok(DEFAULT_HEARTBEAT_TIMEOUT))
}

/// The message size limit of a task with settings `config`.
///
/// # Errors
/// A message naming the setting when it is not a positive integer.
pub(crate) fn max_message_bytes(config: &JsonMap<String, JsonValue>) -> Result<usize, String> {
    match config.get(MAX_MESSAGE_BYTES_KEY) {
        None => Ok(super::framing::DEFAULT_MAX_MESSAGE_BYTES),
        Some(value) => value
            .as_u64()
            .and_then(|bytes| usize::try_from(bytes).ok())
            .filter(|bytes| *bytes > 0)
            .ok_or_else(|| {
                format!(
                    "setting {MAX_MESSAGE_BYTES_KEY:?} must be a positive integer, found {value}"
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_artifact_dir_then_the_base_dir() {
        let spec = ShellSpec::new("bin/run.sh", ["a.py"])
            .resources_dir("res")
            .base_dir("/topologies/words");
        let launch = spec.resolve(&JsonMap::new());
        assert_eq!(launch.resources_dir, PathBuf::from("/topologies/words/res"));
        assert_eq!(launch.working_dir, PathBuf::from("/topologies/words/res"));
        assert_eq!(
            launch.program,
            PathBuf::from("/topologies/words/res/bin/run.sh")
        );

        let mut config = JsonMap::new();
        config.insert(ARTIFACT_DIR_KEY.to_owned(), "/artifacts/7".into());
        let launch = spec.clone().working_dir("/tmp").resolve(&config);
        assert_eq!(launch.resources_dir, PathBuf::from("/artifacts/7/res"));
        assert_eq!(launch.working_dir, PathBuf::from("/tmp"));
        assert_eq!(launch.program, PathBuf::from("/tmp/bin/run.sh"));

        let plain = ShellSpec::new("python3", ["x.py"]).resolve(&config);
        assert_eq!(plain.program, PathBuf::from("python3"));
        assert_eq!(plain.working_dir, PathBuf::from("/artifacts/7"));
    }

    #[test]
    fn timeouts_come_from_settings() {
        let mut config = JsonMap::new();
        assert_eq!(heartbeat_timeout(&config), Ok(DEFAULT_HEARTBEAT_TIMEOUT));
        config.insert(STORM_SUBPROCESS_TIMEOUT_KEY.to_owned(), 7.into());
        assert_eq!(heartbeat_timeout(&config), Ok(Duration::from_secs(7)));
        config.insert(HEARTBEAT_TIMEOUT_KEY.to_owned(), 1.5.into());
        assert_eq!(heartbeat_timeout(&config), Ok(Duration::from_millis(1500)));
        config.insert(HEARTBEAT_TIMEOUT_KEY.to_owned(), "soon".into());
        let error = heartbeat_timeout(&config).unwrap_err();
        assert!(error.contains(HEARTBEAT_TIMEOUT_KEY), "{error}");
        config.insert(MAX_MESSAGE_BYTES_KEY.to_owned(), 0.into());
        assert!(max_message_bytes(&config).is_err());
    }
}
