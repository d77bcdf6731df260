//! The bolt that runs a [`WindowedBolt`]: keeps the tuples, evaluates windows, emits late
//! tuples, and acks each input when it leaves its last window.

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::buffer::{Evaluated, ItemIter, Items, WindowBuffer};
use super::durable;
use super::spec::{TimeSource, WindowSpec};
use crate::component::{Bolt, ComponentError};
use crate::context::TopologyContext;
use crate::ids::TaskId;
use crate::runtime::{Anchor, BoltOutput, EmitError, Tuple};
use crate::state::KeyValueState;
use crate::topology::OutputDeclarer;
use crate::tuple::EncodeValue;
use crate::value::{OwnedValue, Value, ValueRef};

/// A bolt over windows of tuples; run it with [`crate::TopologyBuilder::set_windowed_bolt`].
pub trait WindowedBolt: Send {
    /// Declares the streams it emits on.
    fn declare_outputs(&self, _declarer: &mut OutputDeclarer) {}

    /// Called once per task before the first window.
    ///
    /// # Errors
    /// A failure to prepare; the task does not start.
    fn prepare(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Evaluates one window. Emits through `output` are anchored to every tuple of it.
    fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>);

    /// Called when the task stops.
    fn cleanup(&mut self) {}
}

/// A tuple held in a window: its values, and the time it was given.
pub struct WindowedTuple {
    values: Vec<OwnedValue>,
    /// The input's anchor while the window holds its tree open; none when the tuple is kept
    /// in checkpointed state instead (its input was acked).
    anchor: Option<Anchor>,
    /// Its place in arrival order, and its key in checkpointed state.
    seq: u64,
    time_ms: u64,
    /// A window holding it was failed, which failed its tree: it is not acked later.
    failed: Cell<bool>,
}

impl WindowedTuple {
    /// The tuple's values.
    pub fn values(&self) -> &[OwnedValue] {
        &self.values
    }

    /// Value `index` if it is an unsigned integer (or a non-negative signed one).
    pub fn u64(&self, index: usize) -> Option<u64> {
        match self.values.get(index)? {
            OwnedValue::U64(value) => Some(*value),
            OwnedValue::I64(value) => u64::try_from(*value).ok(),
            _ => None,
        }
    }

    /// Value `index` if it is a string.
    pub fn str(&self, index: usize) -> Option<&str> {
        match self.values.get(index)? {
            OwnedValue::Str(value) => Some(value),
            _ => None,
        }
    }

    /// Its time in milliseconds since the Unix epoch: when it arrived (processing time) or
    /// its time field (event time).
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }
}

impl fmt::Debug for WindowedTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowedTuple")
            .field("values", &self.values)
            .field("time_ms", &self.time_ms)
            .finish_non_exhaustive()
    }
}

/// One window to evaluate: its tuples, oldest first (by time, for time windows).
#[derive(Debug)]
pub struct Window<'a> {
    items: Items<'a, WindowedTuple>,
    bounds: Option<(u64, u64)>,
}

impl<'a> Window<'a> {
    /// Its tuples.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a WindowedTuple> + use<'a> {
        WindowTuples(self.items.iter())
    }

    /// How many tuples it holds (never zero).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no tuple (windows are evaluated only when they hold some).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A time window's start, inclusive, in ms since the Unix epoch.
    pub fn start_ms(&self) -> Option<u64> {
        self.bounds.map(|(start, _)| start)
    }

    /// A time window's end, exclusive, in ms since the Unix epoch.
    pub fn end_ms(&self) -> Option<u64> {
        self.bounds.map(|(_, end)| end)
    }
}

/// The tuples of a [`Window`], oldest first.
struct WindowTuples<'a>(ItemIter<'a, WindowedTuple>);

impl<'a> Iterator for WindowTuples<'a> {
    type Item = &'a WindowedTuple;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(_, tuple)| tuple)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for WindowTuples<'_> {}

/// Emits for a window's evaluation, each anchored to every tuple of the window.
pub struct WindowOutput<'o, 'b> {
    output: &'o mut BoltOutput<'b>,
    anchors: &'o [&'o Anchor],
    items: Items<'o, WindowedTuple>,
    /// Windows in checkpointed state: set when the window fails, so the input being
    /// processed fails (its tree carries the emits).
    input_failed: &'o Cell<bool>,
}

impl WindowOutput<'_, '_> {
    /// Emits on the default stream.
    ///
    /// # Panics
    /// When the emit is refused (see [`BoltOutput::try_emit`]); the executor reports it.
    pub fn emit(&mut self, values: &[Value<'_>]) {
        self.emit_on(crate::DEFAULT_STREAM, values);
    }

    /// Emits on the named stream.
    ///
    /// # Panics
    /// When the emit is refused.
    pub fn emit_on(&mut self, stream: &str, values: &[Value<'_>]) {
        self.output.emit_on(stream, self.anchors, values);
    }

    /// Emits on the named stream, or says why not; returns the number of target tasks
    /// (their ids are in [`last_targets`](Self::last_targets)).
    ///
    /// # Errors
    /// [`EmitError`] naming the problem; nothing was sent.
    pub fn try_emit_on<V: EncodeValue>(
        &mut self,
        stream: &str,
        values: &[V],
    ) -> Result<usize, EmitError> {
        self.output.try_emit(stream, self.anchors, None, values)
    }

    /// The tasks the last emit went to.
    pub fn last_targets(&self) -> &[TaskId] {
        self.output.last_targets()
    }

    /// Fails the window: the tree of every tuple it holds fails, so their spouts replay
    /// them, and those tuples are not acked when they leave their windows.
    pub fn fail(&mut self) {
        for (_, tuple) in self.items.iter() {
            if let Some(anchor) = &tuple.anchor
                && !tuple.failed.replace(true)
            {
                self.output.fail(anchor);
            }
        }
        self.input_failed.set(true);
    }

    /// Reports an error for this task; the topology keeps running.
    pub fn report_error(&mut self, message: impl Into<String>) {
        self.output.report_error(message);
    }
}

impl fmt::Debug for WindowOutput<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowOutput")
            .field("anchors", &self.anchors.len())
            .finish_non_exhaustive()
    }
}

/// Runs a [`WindowedBolt`] as a bolt.
pub struct WindowedBoltRunner<B> {
    bolt: B,
    spec: WindowSpec,
    buffer: WindowBuffer<WindowedTuple>,
    /// Tuples that left their last window, to ack (or to drop from state).
    expired: Vec<WindowedTuple>,
    /// Event time: the newest time seen.
    newest_ms: Option<u64>,
    /// The sequence number of the next tuple.
    next_seq: u64,
    /// Windows in checkpointed state: the progress last written to it.
    saved_progress: Option<durable::Saved>,
    /// Windows in checkpointed state: a tuple's value as it goes into the state.
    scratch: Vec<u8>,
}

/// Windows in checkpointed state: the input being processed, which anchors what the
/// windows it closes emit, and whether one of them failed it.
struct Current<'i> {
    anchor: Option<&'i Anchor>,
    failed: Cell<bool>,
}

impl<B: WindowedBolt> WindowedBoltRunner<B> {
    /// Runs `bolt` over windows shaped by `spec`.
    pub fn new(bolt: B, spec: WindowSpec) -> Self {
        Self {
            buffer: WindowBuffer::new(&spec),
            bolt,
            spec,
            expired: Vec::new(),
            newest_ms: None,
            next_seq: 0,
            saved_progress: None,
            scratch: Vec::new(),
        }
    }

    /// The time of `input`, or why it has none.
    fn time_of(&self, input: &Tuple<'_>) -> Result<u64, String> {
        match &self.spec.time {
            TimeSource::Processing => Ok(wall_clock_ms()),
            TimeSource::Event { field, .. } => match input.get_by_name(field) {
                Ok(ValueRef::U64(time)) => Ok(time),
                Ok(ValueRef::I64(time)) if time >= 0 => Ok(time as u64),
                Ok(other) => Err(format!(
                    "the window's time field {field:?} holds {:?}, not a time in ms since the Unix epoch",
                    other.to_owned_value()
                )),
                Err(error) => Err(format!("the window's time field {field:?}: {error}")),
            },
        }
    }

    /// Evaluates what is due at `watermark_ms`, then settles what expired.
    fn advance(
        &mut self,
        watermark_ms: u64,
        output: &mut BoltOutput<'_>,
        journal: Option<&mut KeyValueState>,
        current: &Current<'_>,
    ) {
        let Self {
            bolt,
            buffer,
            expired,
            ..
        } = self;
        buffer.advance(
            watermark_ms,
            &mut |window| evaluate(bolt, window, output, current),
            &mut |tuple| expired.push(tuple),
        );
        self.settle_expired(output, journal);
    }

    /// Acks the tuples that left their last window, or drops them from the state that kept
    /// them.
    fn settle_expired(&mut self, output: &mut BoltOutput<'_>, journal: Option<&mut KeyValueState>) {
        match journal {
            Some(state) => {
                for tuple in self.expired.drain(..) {
                    state.delete(&durable::tuple_key(tuple.seq));
                }
            }
            None => {
                for tuple in self.expired.drain(..) {
                    if let Some(anchor) = &tuple.anchor
                        && !tuple.failed.get()
                    {
                        output.ack(anchor);
                    }
                }
            }
        }
    }

    /// Sends a late tuple to the late stream. The emit and the ack go through the same
    /// anchor, which records what was emitted on it: the tuple's own while it holds one,
    /// else the input's, acked by [`process`](Self::process).
    fn late(&mut self, tuple: WindowedTuple, input: &Anchor, output: &mut BoltOutput<'_>) {
        let anchor = tuple.anchor.as_ref().unwrap_or(input);
        if let Some((stream, _)) = &self.spec.late_stream
            && let Err(error) = output.try_emit(stream, &[anchor], None, &tuple.values)
        {
            output.report_error(format!("a late tuple could not go to {stream:?}: {error}"));
        }
        if let Some(anchor) = &tuple.anchor {
            output.ack(anchor);
        }
    }

    /// Processes one input. Without a `journal`, windows hold their inputs' trees open and
    /// ack each input when it leaves its last window. With one (windows in checkpointed
    /// state), each tuple is written to the journal while a window holds it and the input is
    /// acked at once: the checkpoint keeps it, and a rollback replays what came after.
    pub(crate) fn process(
        &mut self,
        input: &Tuple<'_>,
        output: &mut BoltOutput<'_>,
        mut journal: Option<&mut KeyValueState>,
    ) {
        let current = Current {
            anchor: journal.is_some().then(|| input.anchor()),
            failed: Cell::new(false),
        };
        if input.is_tick() {
            if self.spec.time == TimeSource::Processing {
                self.advance(wall_clock_ms(), output, journal.as_deref_mut(), &current);
            }
            self.save_progress(journal);
            return;
        }
        let time_ms = match self.time_of(input) {
            Ok(time_ms) => time_ms,
            Err(problem) => {
                output.report_error(problem);
                output.fail(input);
                return;
            }
        };
        let values = match input
            .fields()
            .map(|field| field.map(|value| value.to_owned_value()))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(values) => values,
            Err(error) => {
                output.report_error(format!("a windowed tuple could not be read: {error}"));
                output.fail(input);
                return;
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let tuple = WindowedTuple {
            values,
            anchor: journal.is_none().then(|| input.anchor().clone()),
            seq,
            time_ms,
            failed: Cell::new(false),
        };
        let Self {
            bolt,
            buffer,
            expired,
            ..
        } = self;
        let pushed = buffer.push(
            time_ms,
            tuple,
            &mut |window| evaluate(bolt, window, output, &current),
            &mut |tuple| expired.push(tuple),
        );
        match pushed {
            Err(late) => self.late(late, input.anchor(), output),
            Ok(()) => {
                if let Some(state) = journal.as_deref_mut() {
                    durable::encode_tuple(time_ms, input.fields_bytes(), &mut self.scratch);
                    state.put(&durable::tuple_key(seq), &self.scratch);
                }
            }
        }
        self.settle_expired(output, journal.as_deref_mut());
        match &self.spec.time {
            TimeSource::Event { lag, .. } => {
                let newest = self.newest_ms.map_or(time_ms, |newest| newest.max(time_ms));
                self.newest_ms = Some(newest);
                let lag_ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
                self.advance(
                    newest.saturating_sub(lag_ms),
                    output,
                    journal.as_deref_mut(),
                    &current,
                );
            }
            TimeSource::Processing => {
                if matches!(self.spec.length, super::Extent::Time(_)) {
                    self.advance(time_ms, output, journal.as_deref_mut(), &current);
                }
            }
        }
        if journal.is_some() {
            if current.failed.get() {
                output.fail(input);
            } else {
                output.ack(input);
            }
        }
        self.save_progress(journal);
    }

    /// Writes where the windows stand to the journal, when it moved.
    fn save_progress(&mut self, journal: Option<&mut KeyValueState>) {
        let Some(state) = journal else {
            return;
        };
        let progress = durable::Saved {
            buffer: self.buffer.progress(),
            newest_ms: self.newest_ms,
        };
        if self.saved_progress != Some(progress) {
            state.put(durable::PROGRESS_KEY, &progress.encode());
            self.saved_progress = Some(progress);
        }
    }

    /// Rebuilds the windows from the tuples and progress in `state`, as
    /// [`process`](Self::process) journaled them.
    pub(crate) fn restore_from(&mut self, state: &KeyValueState) {
        let mut saved = durable::Saved::default();
        let mut items: Vec<WindowedTuple> = Vec::new();
        for (key, value) in state.iter() {
            if key == durable::PROGRESS_KEY {
                match durable::Saved::decode(value) {
                    Some(progress) => saved = progress,
                    None => tracing::error!("the windows' progress in state is unreadable"),
                }
                continue;
            }
            let Some(seq) = durable::seq_of(key) else {
                continue;
            };
            match durable::decode_tuple(value) {
                Ok((time_ms, values)) => items.push(WindowedTuple {
                    values,
                    anchor: None,
                    seq,
                    time_ms,
                    failed: Cell::new(false),
                }),
                Err(error) => {
                    tracing::error!(seq, "a windowed tuple in state is unreadable: {error}")
                }
            }
        }
        items.sort_by_key(|tuple| tuple.seq);
        self.next_seq = items.last().map_or(0, |tuple| tuple.seq + 1);
        self.newest_ms = saved.newest_ms;
        self.expired.clear();
        self.buffer.restore(
            saved.buffer,
            items
                .into_iter()
                .map(|tuple| (tuple.time_ms, tuple))
                .collect(),
        );
        self.saved_progress = Some(saved);
    }

    /// The windowed bolt.
    pub(crate) fn bolt_mut(&mut self) -> &mut B {
        &mut self.bolt
    }
}

fn evaluate<B: WindowedBolt>(
    bolt: &mut B,
    window: Evaluated<'_, WindowedTuple>,
    output: &mut BoltOutput<'_>,
    current: &Current<'_>,
) {
    let anchors: Vec<&Anchor> = window
        .items
        .iter()
        .filter_map(|(_, tuple)| tuple.anchor.as_ref())
        .chain(current.anchor)
        .collect();
    let mut window_output = WindowOutput {
        output,
        anchors: &anchors,
        items: window.items,
        input_failed: &current.failed,
    };
    bolt.execute(
        &Window {
            items: window.items,
            bounds: window.bounds,
        },
        &mut window_output,
    );
}

impl<B: WindowedBolt> Bolt for WindowedBoltRunner<B> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.bolt.declare_outputs(declarer);
        if let Some((stream, fields)) = &self.spec.late_stream {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            declarer.declare_stream(stream, &fields);
        }
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.bolt.prepare(context)
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.process(input, output, None);
    }

    fn cleanup(&mut self) {
        self.bolt.cleanup();
    }
}

impl<B> fmt::Debug for WindowedBoltRunner<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowedBoltRunner")
            .field("spec", &self.spec)
            .field("held", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
