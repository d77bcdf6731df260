//! The messages of the multi-lang protocol, as pure functions over text: decoding what a
//! subprocess sends, encoding what it is sent. No I/O here.
//!
//! Every message is one JSON value followed by a line `end`. From the host a subprocess
//! gets the handshake, bolt tuples (heartbeats among them), spout commands and, after an
//! emit that asked for them, the list of tasks the tuple went to. From a subprocess the host
//! gets the `{"pid": N}` handshake reply, then commands: `emit`, `ack`, `fail`, `sync`, `log`,
//! `error`, `metrics`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::values::{ValueError, json_kind, tuple_from_json, write_tuple_json};
use squall_core::ids::TaskId;
use squall_core::tuple::FieldIter;
use squall_core::value::OwnedValue;

/// The line that ends every message.
pub const END_LINE: &str = "end";

/// The stream of heartbeat tuples.
pub const HEARTBEAT_STREAM: &str = "__heartbeat";

/// The tuple id of heartbeat tuples (bolt tuple ids start at 1).
pub const HEARTBEAT_ID: u64 = 0;

/// The task number that heartbeat and tick tuples claim to come from, as in Storm.
pub const SYSTEM_TASK: i64 = -1;

/// Severity of a `log` command: Storm's numbers 0 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// 0.
    Trace,
    /// 1.
    Debug,
    /// 2, and the level of a message that names none.
    Info,
    /// 3.
    Warn,
    /// 4.
    Error,
}

/// An `emit` command.
#[derive(Debug, Clone, PartialEq)]
pub struct EmitCommand {
    /// The field values.
    pub tuple: Vec<OwnedValue>,
    /// The stream; `None` for the default stream.
    pub stream: Option<String>,
    /// Bolts: the tuple ids of the inputs to anchor to.
    pub anchors: Vec<String>,
    /// The task of a direct emit; `None` (also for `0`, as in Storm) otherwise.
    pub task: Option<TaskId>,
    /// Spouts: the message id (its JSON text) that makes the tuple tracked; `None` for
    /// untracked tuples (no id, or `null`).
    pub id: Option<String>,
    /// Whether the subprocess waits for the list of receiving tasks (default true; never
    /// answered for direct emits, as in Storm).
    pub need_task_ids: bool,
}

/// A command from a subprocess.
#[derive(Debug, Clone, PartialEq)]
pub enum ShellCommand {
    /// Emit a tuple.
    Emit(EmitCommand),
    /// Bolts: ack the input with this tuple id.
    Ack(String),
    /// Bolts: fail the input with this tuple id.
    Fail(String),
    /// Spouts: done with the current command. Bolts: reply to a heartbeat.
    Sync,
    /// Log a message on the host.
    Log {
        /// The text.
        msg: String,
        /// The severity.
        level: LogLevel,
    },
    /// Report an error (the subprocess keeps running).
    Error {
        /// The text.
        msg: String,
    },
    /// Update a metric.
    Metrics {
        /// The metric's name (not empty).
        name: String,
        /// Its parameters as JSON text, if any.
        params: Option<String>,
    },
}

impl ShellCommand {
    /// The command's name as it appears on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            ShellCommand::Emit(_) => "emit",
            ShellCommand::Ack(_) => "ack",
            ShellCommand::Fail(_) => "fail",
            ShellCommand::Sync => "sync",
            ShellCommand::Log { .. } => "log",
            ShellCommand::Error { .. } => "error",
            ShellCommand::Metrics { .. } => "metrics",
        }
    }
}

/// Why a message from a subprocess was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The text is not JSON.
    #[error("not valid JSON: {message}{hint}")]
    Json {
        /// The parser's message, with line and column.
        message: String,
        /// A hint for common mistakes (NaN, Infinity).
        hint: &'static str,
    },
    /// The message is JSON, but not an object.
    #[error("a message must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// No `command` field.
    #[error("the message has no \"command\"")]
    MissingCommand,
    /// A command this side does not know.
    #[error("unknown command {command:?} (expected emit, ack, fail, sync, log, error or metrics)")]
    UnknownCommand {
        /// The command as sent.
        command: String,
    },
    /// A required field is missing.
    #[error("{command:?} needs a {field:?} field")]
    MissingField {
        /// The command.
        command: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong JSON type or an impossible value.
    #[error("{command:?}: field {field:?} must be {expected}, found {found}")]
    InvalidField {
        /// The command.
        command: &'static str,
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was (a JSON type or the value, shortened).
        found: String,
    },
    /// The tuple of an emit holds a value with no counterpart in the engine.
    #[error("\"emit\": {0}")]
    Value(#[from] ValueError),
    /// The handshake reply is not `{"pid": N}`.
    #[error("the handshake reply must be {{\"pid\": <positive integer>}}, found {found}")]
    BadPid {
        /// What was sent instead.
        found: String,
    },
}

/// The message as it is on the wire: every field raw, checked one by one afterwards so that
/// errors name the field.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    command: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tuple: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    anchors: Option<&'a RawValue>,
    #[serde(borrow, default)]
    task: Option<&'a RawValue>,
    #[serde(borrow, default)]
    need_task_ids: Option<&'a RawValue>,
    #[serde(borrow, default)]
    msg: Option<&'a RawValue>,
    #[serde(borrow, default)]
    level: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pid: Option<&'a RawValue>,
}

fn parse_wire(text: &str) -> Result<Wire<'_>, ProtocolError> {
    let trimmed = text.trim_start();
    if !trimmed.is_empty() && !trimmed.starts_with('{') {
        // Say what it is when it is valid JSON of another type.
        if serde_json::from_str::<&RawValue>(text).is_ok() {
            return Err(ProtocolError::NotAnObject {
                found: json_kind(text),
            });
        }
    }
    serde_json::from_str(text).map_err(|error| {
        let hint = if text.contains("NaN") || text.contains("Infinity") {
            " (JSON has no NaN or Infinity)"
        } else {
            ""
        };
        if error.is_data() && !trimmed.starts_with('{') {
            return ProtocolError::NotAnObject {
                found: json_kind(text),
            };
        }
        ProtocolError::Json {
            message: error.to_string(),
            hint,
        }
    })
}

/// A raw value for an error message: its JSON text, at most 40 characters.
fn found(raw: &RawValue) -> String {
    let text = raw.get();
    let mut chars = text.chars();
    let short: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    }
}

fn string_field(
    command: &'static str,
    field: &'static str,
    raw: &RawValue,
) -> Result<String, ProtocolError> {
    serde_json::from_str::<String>(raw.get()).map_err(|_| ProtocolError::InvalidField {
        command,
        field,
        expected: "a string",
        found: found(raw),
    })
}

/// A tuple id: a string, or an integer (taken as its decimal form).
fn tuple_id(
    command: &'static str,
    field: &'static str,
    raw: &RawValue,
) -> Result<String, ProtocolError> {
    let text = raw.get().trim();
    if text.starts_with('"') {
        return string_field(command, field, raw);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(text.to_owned());
    }
    Err(ProtocolError::InvalidField {
        command,
        field,
        expected: "a tuple id (a string or an integer)",
        found: found(raw),
    })
}

/// Reads one message from a subprocess (its text without the `end` line).
///
/// # Errors
/// [`ProtocolError`] naming what is wrong: not JSON (with line and column), not an object, no
/// or an unknown command, a missing or ill-typed field, a tuple value with no counterpart.
pub fn decode_command(text: &str) -> Result<ShellCommand, ProtocolError> {
    let wire = parse_wire(text)?;
    let command = wire.command.ok_or(ProtocolError::MissingCommand)?;
    let Ok(name) = serde_json::from_str::<std::borrow::Cow<'_, str>>(command.get()) else {
        return Err(ProtocolError::InvalidField {
            command: "message",
            field: "command",
            expected: "a string",
            found: found(command),
        });
    };
    match name.as_ref() {
        "emit" => decode_emit(&wire).map(ShellCommand::Emit),
        "ack" | "fail" => {
            let command = if name == "ack" { "ack" } else { "fail" };
            let id = wire.id.ok_or(ProtocolError::MissingField {
                command,
                field: "id",
            })?;
            let id = tuple_id(command, "id", id)?;
            Ok(if command == "ack" {
                ShellCommand::Ack(id)
            } else {
                ShellCommand::Fail(id)
            })
        }
        "sync" => Ok(ShellCommand::Sync),
        "log" => {
            let msg = match wire.msg {
                Some(raw) => text_of("log", "msg", raw)?,
                None => String::new(),
            };
            let level = match wire.level {
                Some(raw) => log_level(raw)?,
                None => LogLevel::Info,
            };
            Ok(ShellCommand::Log { msg, level })
        }
        "error" => {
            let msg = match wire.msg {
                Some(raw) => text_of("error", "msg", raw)?,
                None => String::new(),
            };
            Ok(ShellCommand::Error { msg })
        }
        "metrics" => {
            let raw = wire.name.ok_or(ProtocolError::MissingField {
                command: "metrics",
                field: "name",
            })?;
            let name = string_field("metrics", "name", raw)?;
            if name.is_empty() {
                return Err(ProtocolError::InvalidField {
                    command: "metrics",
                    field: "name",
                    expected: "a metric name",
                    found: "an empty string".to_owned(),
                });
            }
            let params = wire.params.map(|raw| raw.get().replace(['\n', '\r'], " "));
            Ok(ShellCommand::Metrics { name, params })
        }
        other => Err(ProtocolError::UnknownCommand {
            command: other.chars().take(40).collect(),
        }),
    }
}

/// The text of a `msg`: a string as it is, anything else as its JSON text (Storm's
/// libraries stringify what they log).
fn text_of(
    command: &'static str,
    field: &'static str,
    raw: &RawValue,
) -> Result<String, ProtocolError> {
    if raw.get().trim_start().starts_with('"') {
        string_field(command, field, raw)
    } else {
        Ok(raw.get().to_owned())
    }
}

fn log_level(raw: &RawValue) -> Result<LogLevel, ProtocolError> {
    let invalid = || ProtocolError::InvalidField {
        command: "log",
        field: "level",
        expected: "0 to 4 or trace, debug, info, warn, error",
        found: found(raw),
    };
    let text = raw.get().trim();
    let name = if text.starts_with('"') {
        string_field("log", "level", raw)?.to_ascii_lowercase()
    } else {
        text.to_owned()
    };
    Ok(match name.as_str() {
        "0" | "trace" => LogLevel::Trace,
        "1" | "debug" => LogLevel::Debug,
        "2" | "info" => LogLevel::Info,
        "3" | "warn" | "warning" => LogLevel::Warn,
        "4" | "error" | "critical" => LogLevel::Error,
        _ => return Err(invalid()),
    })
}

fn decode_emit(wire: &Wire<'_>) -> Result<EmitCommand, ProtocolError> {
    const EMIT: &str = "emit";
    let tuple = wire.tuple.ok_or(ProtocolError::MissingField {
        command: EMIT,
        field: "tuple",
    })?;
    let tuple = tuple_from_json(tuple)?;
    let stream = match wire.stream {
        Some(raw) => Some(string_field(EMIT, "stream", raw)?),
        None => None,
    };
    let anchors = match wire.anchors {
        None => Vec::new(),
        // A lone string is one anchor, as Storm's own serializer accepts.
        Some(raw) if raw.get().trim_start().starts_with('"') => {
            vec![tuple_id(EMIT, "anchors", raw)?]
        }
        Some(raw) => {
            let items: Vec<&RawValue> =
                serde_json::from_str(raw.get()).map_err(|_| ProtocolError::InvalidField {
                    command: EMIT,
                    field: "anchors",
                    expected: "an array of tuple ids, or one tuple id as a string",
                    found: found(raw),
                })?;
            items
                .into_iter()
                .map(|item| tuple_id(EMIT, "anchors", item))
                .collect::<Result<_, _>>()?
        }
    };
    let task = match wire.task {
        None => None,
        Some(raw) => match raw.get().trim().parse::<i64>() {
            Ok(0) => None,
            Ok(task) => Some(TaskId(u32::try_from(task).map_err(|_| {
                ProtocolError::InvalidField {
                    command: EMIT,
                    field: "task",
                    expected: "a task id (a positive integer)",
                    found: found(raw),
                }
            })?)),
            Err(_) => {
                return Err(ProtocolError::InvalidField {
                    command: EMIT,
                    field: "task",
                    expected: "a task id (a positive integer)",
                    found: found(raw),
                });
            }
        },
    };
    let need_task_ids = match wire.need_task_ids {
        None => true,
        Some(raw) => match raw.get().trim() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ProtocolError::InvalidField {
                    command: EMIT,
                    field: "need_task_ids",
                    expected: "true or false",
                    found: found(raw),
                });
            }
        },
    };
    // Raw newlines can only be whitespace between tokens (JSON strings escape them), so
    // folding them keeps the id's meaning and keeps it on one line when it is echoed back.
    let id = wire
        .id
        .map(|raw| raw.get().trim().replace(['\n', '\r'], " "));
    Ok(EmitCommand {
        tuple,
        stream,
        anchors,
        task,
        id,
        need_task_ids,
    })
}

/// Reads the handshake reply `{"pid": N}`.
///
/// # Errors
/// [`ProtocolError`] when the text is not JSON, not an object, or has no positive `pid`.
pub fn decode_pid(text: &str) -> Result<u32, ProtocolError> {
    let wire = parse_wire(text)?;
    let raw = wire.pid.ok_or_else(|| ProtocolError::BadPid {
        found: text.chars().take(60).collect(),
    })?;
    match raw.get().trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(ProtocolError::BadPid {
            found: format!("pid {}", found(raw)),
        }),
    }
}

/// Ends a message: a newline, `end`, a newline.
fn finish(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\nend\n");
}

/// The handshake: topology configuration, context and the directory for the pid file.
pub fn encode_handshake(
    out: &mut Vec<u8>,
    conf: &serde_json::Map<String, serde_json::Value>,
    context: &serde_json::Value,
    pid_dir: &std::path::Path,
) {
    let message = serde_json::json!({
        "conf": conf,
        "context": context,
        "pidDir": pid_dir.to_string_lossy(),
    });
    let _ = serde_json::to_writer(&mut *out, &message);
    finish(out);
}

/// Where a bolt tuple comes from, as the subprocess is told.
#[derive(Debug, Clone, Copy)]
pub struct TupleSource<'a> {
    /// The emitting component (`__system` for ticks and heartbeats).
    pub component: &'a str,
    /// The stream.
    pub stream: &'a str,
    /// The emitting task (-1 for ticks and heartbeats).
    pub task: i64,
}

/// A tuple for a bolt: `{"id", "comp", "stream", "task", "tuple"}`. The tuple id is the
/// decimal form of `id`, as a string.
///
/// # Errors
/// [`ValueError`] when a field has no JSON form; `out` is then left as it was.
pub fn encode_bolt_tuple(
    out: &mut Vec<u8>,
    id: u64,
    source: TupleSource<'_>,
    fields: FieldIter<'_>,
) -> Result<(), ValueError> {
    let start = out.len();
    write_tuple_head(out, id, source);
    if let Err(error) = write_tuple_json(out, fields) {
        out.truncate(start);
        return Err(error);
    }
    out.push(b'}');
    finish(out);
    Ok(())
}

/// A tuple for a bolt whose field values are already JSON (ticks).
pub fn encode_bolt_tuple_raw(
    out: &mut Vec<u8>,
    id: u64,
    source: TupleSource<'_>,
    tuple_json: &str,
) {
    write_tuple_head(out, id, source);
    out.extend_from_slice(tuple_json.as_bytes());
    out.push(b'}');
    finish(out);
}

fn write_tuple_head(out: &mut Vec<u8>, id: u64, source: TupleSource<'_>) {
    use std::io::Write as _;
    let _ = write!(out, "{{\"id\":\"{id}\",\"comp\":");
    let _ = serde_json::to_writer(&mut *out, source.component);
    out.extend_from_slice(b",\"stream\":");
    let _ = serde_json::to_writer(&mut *out, source.stream);
    let _ = write!(out, ",\"task\":{},\"tuple\":", source.task);
}

/// The heartbeat tuple a bolt must answer with `sync`.
pub fn encode_heartbeat(out: &mut Vec<u8>) {
    encode_bolt_tuple_raw(
        out,
        HEARTBEAT_ID,
        TupleSource {
            component: squall_core::ids::SYSTEM_COMPONENT,
            stream: HEARTBEAT_STREAM,
            task: SYSTEM_TASK,
        },
        "[]",
    );
}

/// A command for a spout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoutCommand {
    /// Emit the next tuples, if any.
    Next,
    /// The tree of the message with this id (its JSON text) completed.
    Ack(String),
    /// The tree of the message with this id failed.
    Fail(String),
    /// The topology was activated.
    Activate,
    /// The topology was deactivated.
    Deactivate,
}

impl SpoutCommand {
    /// The command's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            SpoutCommand::Next => "next",
            SpoutCommand::Ack(_) => "ack",
            SpoutCommand::Fail(_) => "fail",
            SpoutCommand::Activate => "activate",
            SpoutCommand::Deactivate => "deactivate",
        }
    }
}

/// A spout command: `{"command": "next"}`, `{"command": "ack", "id": ...}`, ...
pub fn encode_spout_command(out: &mut Vec<u8>, command: &SpoutCommand) {
    out.extend_from_slice(b"{\"command\":\"");
    out.extend_from_slice(command.name().as_bytes());
    out.push(b'"');
    if let SpoutCommand::Ack(id) | SpoutCommand::Fail(id) = command {
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(id.as_bytes());
    }
    out.push(b'}');
    finish(out);
}

/// The tasks an emit went to: `[3, 4]`.
pub fn encode_task_ids(out: &mut Vec<u8>, tasks: &[TaskId]) {
    use std::io::Write as _;
    out.push(b'[');
    for (index, task) in tasks.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{task}");
    }
    out.push(b']');
    finish(out);
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
