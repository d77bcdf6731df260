//! General-purpose components for topology files: a spout of a text file's lines and a
//! bolt that counts tuples by the value of a field.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use squall_core::{
    Bolt, BoltOutput, ComponentError, MessageId, OutputDeclarer, OwnedValue, Spout, SpoutOutput,
    TaskId, TopologyContext, Tuple, ValueRef,
};

/// Emits the lines of a text file, `[line]`, each tracked and emitted again when its tree
/// fails. The tasks of the component share the lines: task `i` of `n` emits lines `i`,
/// `i + n`, ... Empty lines are skipped; with `repeat`, it starts over at the end.
#[derive(Debug)]
pub struct LinesSpout {
    path: PathBuf,
    field: String,
    repeat: bool,
    lines: Vec<String>,
    next_line: usize,
    step: usize,
    next_message: u64,
    in_flight: HashMap<u64, usize>,
    replay: VecDeque<(u64, usize)>,
}

impl LinesSpout {
    /// The lines of `path`, on field `field`.
    pub fn new(path: impl Into<PathBuf>, field: &str, repeat: bool) -> Self {
        Self {
            path: path.into(),
            field: field.to_owned(),
            repeat,
            lines: Vec::new(),
            next_line: 0,
            step: 1,
            next_message: 0,
            in_flight: HashMap::new(),
            replay: VecDeque::new(),
        }
    }

    /// The lines a run of this spout over `path` emits (all tasks together).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
        let text = std::fs::read_to_string(path)?;
        Ok(text
            .lines()
            .map(str::trim_end)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn emit(&mut self, message: u64, line: usize, output: &mut SpoutOutput<'_>) {
        self.in_flight.insert(message, line);
        output.emit_with_id(&[self.lines[line].as_str().into()], MessageId(message));
    }
}

impl Spout for LinesSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&[self.field.as_str()]);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.lines = Self::read_lines(&self.path)
            .map_err(|error| format!("cannot read {}: {error}", self.path.display()))?;
        self.next_line = context.task_index();
        self.step = context.component_tasks().len().max(1);
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if let Some((message, line)) = self.replay.pop_front() {
            self.emit(message, line, output);
            return;
        }
        if self.next_line >= self.lines.len() {
            if !self.repeat || self.lines.is_empty() {
                return;
            }
            self.next_line %= self.lines.len();
        }
        let (message, line) = (self.next_message, self.next_line);
        self.next_message += 1;
        self.next_line += self.step;
        self.emit(message, line, output);
    }

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.in_flight.remove(&message.0);
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if let Some(line) = self.in_flight.remove(&message.0) {
            self.replay.push_back((message.0, line));
        }
    }
}

/// Where a [`FieldCountBolt`] finds its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// The field of this name in the input's stream.
    Name(String),
    /// The field at this position.
    Index(usize),
}

impl FieldRef {
    /// The field of `input` it names, if `input` has it.
    pub fn value_of<'t>(&self, input: &Tuple<'t>) -> Option<ValueRef<'t>> {
        match self {
            FieldRef::Name(name) => input.get_by_name(name).ok(),
            FieldRef::Index(index) => input.get(*index).ok(),
        }
    }
}

/// The text a value is counted under: strings as they are, other values as they print.
fn key_text(value: &OwnedValue) -> String {
    match value {
        OwnedValue::Str(text) => text.clone(),
        OwnedValue::Null => "null".to_owned(),
        OwnedValue::Bool(v) => v.to_string(),
        OwnedValue::I64(v) => v.to_string(),
        OwnedValue::U64(v) => v.to_string(),
        OwnedValue::F64(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}

/// Counts its inputs by the value of one field. For each input it emits `[key, count]`
/// (anchored to the input; unless `emit` is off) and acks it. When it stops, it writes its
/// counts as a JSON object to its output file, if it has one (`{task}` in the path is
/// replaced by the task id, so that several tasks write several files).
#[derive(Debug)]
pub struct FieldCountBolt {
    field: FieldRef,
    key_name: String,
    emit: bool,
    output: Option<PathBuf>,
    counts: HashMap<String, (OwnedValue, u64)>,
    task: TaskId,
    reported_missing: bool,
}

impl FieldCountBolt {
    /// Counts by `field`; emits `[key_name, "count"]` tuples when `emit`.
    pub fn new(field: FieldRef, key_name: &str, emit: bool, output: Option<PathBuf>) -> Self {
        Self {
            field,
            key_name: key_name.to_owned(),
            emit,
            output,
            counts: HashMap::new(),
            task: TaskId(0),
            reported_missing: false,
        }
    }

    fn write_counts(&self, path: &Path) -> std::io::Result<()> {
        let counts: BTreeMap<&str, u64> = self
            .counts
            .iter()
            .map(|(key, (_, count))| (key.as_str(), *count))
            .collect();
        let text = serde_json::to_string_pretty(&counts).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        // Written aside and renamed, so a reader never sees half a file.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, path)
    }
}

impl Bolt for FieldCountBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        if self.emit {
            declarer.declare(&[self.key_name.as_str(), "count"]);
        }
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.task = context.task_id();
        self.output = self.output.take().map(|path| {
            PathBuf::from(
                path.to_string_lossy()
                    .replace("{task}", &self.task.to_string()),
            )
        });
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let Some(key) = self.field.value_of(input) else {
            if !self.reported_missing {
                self.reported_missing = true;
                output.report_error(format!(
                    "tuples on stream {:?} of {:?} have no field {:?}; they fail",
                    input.source_stream(),
                    input.source_component(),
                    self.field
                ));
            }
            output.fail(input);
            return;
        };
        let value = key.to_owned_value();
        let entry = self
            .counts
            .entry(key_text(&value))
            .or_insert_with(|| (value, 0));
        entry.1 += 1;
        if self.emit {
            let (key, count) = (&entry.0, entry.1);
            let values = [key.clone(), OwnedValue::U64(count)];
            if let Err(error) = output.try_emit(
                squall_core::DEFAULT_STREAM,
                &[input.anchor()],
                None,
                &values,
            ) {
                output.report_error(format!("cannot emit a count: {error}"));
            }
        }
        output.ack(input);
    }

    fn cleanup(&mut self) {
        if let Some(path) = &self.output
            && let Err(error) = self.write_counts(path)
        {
            tracing::error!(
                task = self.task.0,
                "cannot write the counts to {}: {error}",
                path.display()
            );
        }
    }
}
