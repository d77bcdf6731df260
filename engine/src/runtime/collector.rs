//! The output collectors handed to spouts and bolts: emit, anchor, ack and fail.

use std::cell::Cell;
use std::fmt;

use super::acker_traffic::{AckerReport, ReportKind};
use super::acking::PendingTrees;
use super::anchor::Anchor;
use super::emitter::{Anchoring, EmitError, Emitter, StreamRoute};
use super::run_state::{RunState, TaskError, TaskErrorKind};
use super::tree_root;
use crate::ids::{DEFAULT_STREAM, MessageId, TaskId};
use crate::metrics::TaskMeter;
use crate::tuple::{EncodeValue, TupleRef};
use crate::value::Value;

/// A pre-resolved output stream, for emitting on a named stream without looking its name up
/// on every tuple. Get one from [`SpoutOutput::stream`] or [`BoltOutput::stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHandle(usize);

/// A task's identity, output streams and counters: the part of its task cell that its collectors
/// use. Kept together so that a collector is three pointers to build per call.
pub(crate) struct TaskStreams {
    pub(crate) task: TaskId,
    pub(crate) component_id: String,
    pub(crate) streams: Vec<StreamRoute>,
    pub(crate) default_stream: Option<usize>,
    pub(crate) meter: TaskMeter,
    /// Peer workers (as a mask) the task's tuples can reach.
    pub(crate) peer_reach: u64,
}

impl TaskStreams {
    /// Counts `tuples` emitted on `stream`, sent as `records` records.
    #[inline(always)]
    fn count_emits(&mut self, stream: usize, tuples: usize, records: usize) {
        self.meter.counters.emitted += tuples as u64;
        self.meter.counters.transferred += records as u64;
        let counts = &mut self.meter.streams[stream];
        counts.emitted += tuples as u64;
        counts.transferred += records as u64;
    }
}

/// What every collector shares: the emitting task and its streams.
pub(crate) struct TaskOutput<'a> {
    pub(crate) emitter: &'a mut Emitter,
    pub(crate) run_state: &'a RunState,
    pub(crate) task: &'a mut TaskStreams,
}

impl TaskOutput<'_> {
    /// [`emit_batch`](Self::emit_batch) on the default stream; panics with the reason when
    /// refused.
    #[inline(always)]
    fn emit_default_batch<V: EncodeValue, const N: usize>(&mut self, tuples: &[[V; N]]) {
        let result = self
            .default_index()
            .and_then(|stream| self.emit_batch(stream, tuples));
        if let Err(error) = result {
            refused(error)
        }
    }

    /// Acks `views`, input tuples of stream `stream` read in place (see
    /// [`InputBatch::read_then_ack`](super::InputBatch::read_then_ack)): each root of a
    /// tracked one gets the ack `execute` would send for a tuple with no children, and all
    /// are counted executed and acked.
    pub(crate) fn ack_read(&mut self, stream: u16, views: &[TupleRef<'_>]) {
        self.task
            .meter
            .inputs_executed_and_acked(stream, views.len() as u64);
        if !self.emitter.tracking() {
            return;
        }
        let workers = self.emitter.tree_workers.own();
        for view in views {
            for (root, edge) in view.anchors().iter() {
                self.report_ack(root, edge, workers);
            }
        }
    }

    /// Emits `values` on `stream` as the only children of input `view`, read in place, then
    /// acks `view`: what `emit_anchored` and `ack` do for a tuple, without making the tuple
    /// or its anchor.
    #[inline(always)]
    pub(crate) fn emit_child_then_ack<V: EncodeValue>(
        &mut self,
        stream: usize,
        view: &TupleRef<'_>,
        values: &[V],
    ) -> Result<(), EmitError> {
        let anchors = view.anchors();
        if anchors.is_empty() || !self.emitter.tracking() {
            self.emit(stream, Anchoring::None, None, values)?;
        } else {
            let edges_xor = Cell::new(0);
            let anchoring = Anchoring::Input {
                anchors,
                edges_xor: &edges_xor,
            };
            self.emit(stream, anchoring, None, values)?;
            let workers = self.emitter.tree_workers.own() | self.emitter.peers_of_last_targets();
            for (root, edge) in anchors.iter() {
                self.report_ack(root, edge ^ edges_xor.get(), workers);
            }
        }
        self.task
            .meter
            .inputs_executed_and_acked(view.stream_id(), 1);
        Ok(())
    }

    /// Gathers this task's ack of its part of tree `root` for the tree's acker: `value` to
    /// xor into the tree's ledger, `workers` the workers it and its children touched.
    #[inline(always)]
    fn report_ack(&mut self, root: u64, value: u64, workers: u64) {
        self.emitter.acker_traffic.report(AckerReport {
            kind: ReportKind::Ack,
            reporter: self.task.task,
            root,
            value,
            workers,
            slot: 0,
        });
    }

    fn resolve(&self, stream: &str) -> Result<usize, EmitError> {
        if stream == DEFAULT_STREAM
            && let Some(index) = self.task.default_stream
        {
            return Ok(index);
        }
        self.task
            .streams
            .iter()
            .position(|route| route.name == stream)
            .ok_or_else(|| EmitError::UnknownStream {
                component: self.task.component_id.clone(),
                stream: stream.to_owned(),
            })
    }

    /// The default stream, without comparing names.
    #[inline(always)]
    pub(crate) fn default_index(&self) -> Result<usize, EmitError> {
        match self.task.default_stream {
            Some(index) => Ok(index),
            None => Err(no_default_stream(&self.task.component_id)),
        }
    }

    /// Whether the task should stop emitting for now: an output to a thread of this worker
    /// is backlogged, or one of the peers its tuples can reach is congested.
    #[inline]
    pub(crate) fn is_backlogged(&self) -> bool {
        self.emitter.outputs.is_locally_backlogged()
            || (self.task.peer_reach != 0
                && (self.emitter.outputs.congested_peers() | self.run_state.congestion.congested())
                    & self.task.peer_reach
                    != 0)
    }

    fn handle(&self, stream: &str) -> Option<StreamHandle> {
        self.resolve(stream).ok().map(StreamHandle)
    }

    #[inline(always)]
    fn emit<V: EncodeValue>(
        &mut self,
        stream: usize,
        anchoring: Anchoring<'_>,
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        let task = &mut *self.task;
        let targets = self.emitter.emit(
            &task.component_id,
            task.task,
            &mut task.streams[stream],
            anchoring,
            direct,
            values,
        )?;
        task.count_emits(stream, 1, targets);
        Ok(targets)
    }

    #[inline(always)]
    fn emit_batch<V: EncodeValue, const N: usize>(
        &mut self,
        stream: usize,
        tuples: &[[V; N]],
    ) -> Result<usize, EmitError> {
        let task = &mut *self.task;
        let records = self.emitter.emit_batch(
            &task.component_id,
            task.task,
            &mut task.streams[stream],
            tuples,
        )?;
        task.count_emits(stream, tuples.len(), records);
        Ok(records)
    }

    fn report(&mut self, kind: TaskErrorKind, message: String) {
        self.run_state.report(TaskError {
            topology: self.run_state.topology.clone(),
            component: self.task.component_id.clone(),
            task: self.task.task,
            kind,
            message,
            at: std::time::SystemTime::now(),
        });
    }

    fn targets(&self) -> &[TaskId] {
        self.emitter.last_targets()
    }
}

#[cold]
#[inline(never)]
fn no_default_stream(component: &str) -> EmitError {
    EmitError::UnknownStream {
        component: component.to_owned(),
        stream: DEFAULT_STREAM.to_owned(),
    }
}

/// Emits of an emit call that could not be sent are programming errors; they panic so that
/// the executor reports them with the task and applies the topology's panic policy.
#[cold]
#[inline(never)]
pub(crate) fn refused(error: EmitError) -> ! {
    panic!("emit refused: {error}")
}

/// A spout's output: emits new tuples, tracked (with a message id) or not.
pub struct SpoutOutput<'a> {
    pub(crate) out: TaskOutput<'a>,
    pub(crate) pending: &'a mut PendingTrees,
    /// Acks and fails to hand to the spout once the current call returns (here, trees that
    /// ended on emit: nothing subscribed, or tracking off).
    pub(crate) settled: &'a mut std::collections::VecDeque<(MessageId, bool, u16)>,
    pub(crate) now_nanos: u64,
    /// Set by [`SpoutOutput::idle_for`]: `next_tuple` is not called again before this time.
    pub(crate) idle_until_nanos: Option<u64>,
}

impl fmt::Debug for SpoutOutput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpoutOutput")
            .field("task", &self.out.task.task)
            .field("component", &self.out.task.component_id)
            .finish_non_exhaustive()
    }
}

impl SpoutOutput<'_> {
    /// This task's id.
    pub fn task(&self) -> TaskId {
        self.out.task.task
    }

    /// The stream called `name`, resolved once for [`emit_to`](Self::emit_to).
    pub fn stream(&self, name: &str) -> Option<StreamHandle> {
        self.out.handle(name)
    }

    /// Emits an untracked tuple on the default stream.
    ///
    /// # Panics
    /// When the emit is refused (see [`try_emit`](Self::try_emit)); the executor reports it.
    #[inline(always)]
    pub fn emit(&mut self, values: &[Value<'_>]) {
        let result = self
            .out
            .default_index()
            .and_then(|stream| self.emit_resolved(stream, None, None, values));
        if let Err(error) = result {
            refused(error)
        }
    }

    /// Emits untracked tuples on the default stream, one per item of `tuples`: the fast
    /// way to emit many. Each tuple goes where [`emit`](Self::emit) would send it, and the
    /// records are the same; the stream's shape is checked once, and all of the tuples are
    /// routed before any is written. It pays where routing costs, on a keyed stream (a
    /// fields grouping hashes every key); to one task, single emits are as fast.
    ///
    /// A tuple is an array of [`Value`]s, or of plain `u64`, `i64` or `f64` when every field
    /// has that type: those encode as `Value::U64` (and so on) would, so nothing downstream
    /// can tell, and with the type fixed the records' length is known without looking at a
    /// value.
    ///
    /// ```
    /// # use squall_core::{SpoutOutput, Value};
    /// // In `next_tuple`: 64 words drawn, emitted on the stack without allocating.
    /// fn emit_words(words: [u64; 64], output: &mut SpoutOutput<'_>) {
    ///     output.emit_batch(&words.map(|word| [word]));
    /// }
    ///
    /// // Fields of several types go as values.
    /// fn emit_named(words: [(u64, &str); 16], output: &mut SpoutOutput<'_>) {
    ///     output.emit_batch(&words.map(|(id, name)| [Value::U64(id), Value::Str(name)]));
    /// }
    /// ```
    ///
    /// # Panics
    /// When the emit is refused (see [`try_emit_batch`](Self::try_emit_batch)); the
    /// executor reports it. Nothing is sent then.
    #[inline]
    pub fn emit_batch<V: EncodeValue, const N: usize>(&mut self, tuples: &[[V; N]]) {
        self.out.emit_default_batch(tuples);
    }

    /// Emits tuples on the default stream, each tracked as the message id at the same
    /// place in `messages`: [`emit_with_id`](Self::emit_with_id) for many tuples at once,
    /// as [`emit_batch`](Self::emit_batch) is for untracked ones. A batch may take the
    /// spout's trees in flight past `max_spout_pending` by up to its length.
    ///
    /// # Panics
    /// When `messages` is not as long as `tuples`, or the emit is refused (see
    /// [`try_emit_batch_with_ids`](Self::try_emit_batch_with_ids)). Nothing is sent then.
    #[inline]
    pub fn emit_batch_with_ids<V: EncodeValue, const N: usize>(
        &mut self,
        tuples: &[[V; N]],
        messages: &[MessageId],
    ) {
        let result = self
            .out
            .default_index()
            .and_then(|stream| self.emit_batch_tracked(stream, tuples, messages));
        if let Err(error) = result {
            refused(error)
        }
    }

    /// [`emit_batch_with_ids`](Self::emit_batch_with_ids) on a resolved stream, or says why
    /// not, as [`try_emit_batch`](Self::try_emit_batch). Returns the number of records
    /// sent.
    ///
    /// # Errors
    /// [`EmitError`] naming the problem; nothing was sent.
    ///
    /// # Panics
    /// When `messages` is not as long as `tuples`.
    pub fn try_emit_batch_with_ids<V: EncodeValue, const N: usize>(
        &mut self,
        stream: StreamHandle,
        tuples: &[[V; N]],
        messages: &[MessageId],
    ) -> Result<usize, EmitError> {
        self.emit_batch_tracked(stream.0, tuples, messages)
    }

    /// Emits `tuples` as new trees: routed all before any is written when the stream has one
    /// router picking one task per tuple and trees are tracked, else one by one after the
    /// whole batch is checked.
    #[inline(always)]
    fn emit_batch_tracked<V: EncodeValue, const N: usize>(
        &mut self,
        stream: usize,
        tuples: &[[V; N]],
        messages: &[MessageId],
    ) -> Result<usize, EmitError> {
        assert_eq!(
            tuples.len(),
            messages.len(),
            "a batch needs one message id per tuple"
        );
        let task = &mut *self.out.task;
        let route = &mut task.streams[stream];
        let emitter = &mut *self.out.emitter;
        emitter.check_batch(&task.component_id, route, tuples, 1)?;
        if !emitter.tracking() || !Emitter::batch_goes_to_one(route) {
            let mut records = 0;
            for (values, &message) in tuples.iter().zip(messages) {
                records += self.emit_tracked(stream, message, None, values)?;
            }
            return Ok(records);
        }
        let spout = task.task;
        let stays_in_worker = route.stays_in_worker;
        let (pending, now) = (&mut *self.pending, self.now_nanos);
        let records = emitter.emit_batch_to_one(
            &task.component_id,
            spout,
            route,
            tuples,
            1,
            #[inline(always)]
            |emitter, index, target| {
                // As `emit_tracked` does for one tuple.
                let (slot, generation) = pending.upcoming();
                let named = if stays_in_worker {
                    emitter.acker_traffic.named_root(spout, slot, generation)
                } else {
                    None
                };
                let root = named.unwrap_or_else(|| tree_root::announced(&mut emitter.rng));
                // A named root's one edge is the root itself: the tree's xor is then the root.
                let edge = match named {
                    Some(root) => root,
                    None => emitter.rng.u64(..),
                };
                let inserted = pending.insert(root, messages[index], stream as u16, now);
                debug_assert_eq!(inserted, slot, "the slot the root names");
                if named.is_none() {
                    emitter.acker_traffic.report(AckerReport {
                        kind: ReportKind::Init,
                        reporter: spout,
                        root,
                        value: edge,
                        workers: emitter.tree_workers.own() | emitter.tree_workers.peer_of(target),
                        slot,
                    });
                }
                (root, edge)
            },
        )?;
        task.meter.counters.pending = pending.len() as u64;
        task.count_emits(stream, tuples.len(), records);
        Ok(records)
    }

    /// [`emit_batch`](Self::emit_batch) on a resolved stream, or says why not: the stream is
    /// direct, the tuples have the wrong number of values, or one is too large. Returns the
    /// number of records sent.
    ///
    /// # Errors
    /// [`EmitError`] naming the problem; nothing was sent.
    pub fn try_emit_batch<V: EncodeValue, const N: usize>(
        &mut self,
        stream: StreamHandle,
        tuples: &[[V; N]],
    ) -> Result<usize, EmitError> {
        self.out.emit_batch(stream.0, tuples)
    }

    /// Emits a tuple on the default stream, tracked as `message`: the spout's `ack` or
    /// `fail` is called with it once its tuple tree completes, fails or times out.
    ///
    /// # Panics
    /// When the emit is refused.
    #[inline]
    pub fn emit_with_id(&mut self, values: &[Value<'_>], message: MessageId) {
        let result = self
            .out
            .default_index()
            .and_then(|stream| self.emit_resolved(stream, Some(message), None, values));
        if let Err(error) = result {
            refused(error)
        }
    }

    /// Emits on the named stream, tracked when `message` is given.
    ///
    /// # Panics
    /// When the emit is refused.
    pub fn emit_on(&mut self, stream: &str, values: &[Value<'_>], message: Option<MessageId>) {
        if let Err(error) = self.try_emit(stream, message, None, values) {
            refused(error)
        }
    }

    /// Emits on a resolved stream, tracked when `message` is given.
    ///
    /// # Panics
    /// When the emit is refused.
    #[inline]
    pub fn emit_to(
        &mut self,
        stream: StreamHandle,
        values: &[Value<'_>],
        message: Option<MessageId>,
    ) {
        if let Err(error) = self.emit_resolved(stream.0, message, None, values) {
            refused(error)
        }
    }

    /// Emits on a direct stream to `task`, tracked when `message` is given.
    ///
    /// # Panics
    /// When the emit is refused.
    pub fn emit_direct(
        &mut self,
        task: TaskId,
        stream: &str,
        values: &[Value<'_>],
        message: Option<MessageId>,
    ) {
        if let Err(error) = self.try_emit(stream, message, Some(task), values) {
            refused(error)
        }
    }

    /// Emits, or says why not: unknown stream, wrong number of values, direct mismatch, a
    /// task that does not subscribe, a tuple too large. Returns the number of target tasks
    /// (their ids are in [`last_targets`](Self::last_targets)).
    ///
    /// # Errors
    /// [`EmitError`] naming the problem; nothing was sent.
    pub fn try_emit<V: EncodeValue>(
        &mut self,
        stream: &str,
        message: Option<MessageId>,
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        let stream = self.out.resolve(stream)?;
        self.emit_resolved(stream, message, direct, values)
    }

    #[inline(always)]
    fn emit_resolved<V: EncodeValue>(
        &mut self,
        stream: usize,
        message: Option<MessageId>,
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        match message {
            None => self.out.emit(stream, Anchoring::None, direct, values),
            Some(message) => self.emit_tracked(stream, message, direct, values),
        }
    }

    /// Emits a tuple with a message id: a new tracked tree, or settled at once when tracking
    /// is off or nothing subscribes.
    #[inline(always)]
    fn emit_tracked<V: EncodeValue>(
        &mut self,
        stream: usize,
        message: MessageId,
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        if !self.out.emitter.tracking() {
            let targets = self.out.emit(stream, Anchoring::None, direct, values)?;
            self.settled.push_back((message, true, stream as u16));
            return Ok(targets);
        }
        // A tree that stays in this worker until its first ack gets a named root and no
        // init report; one whose first records may leave it is announced (see `tree_root`).
        let (slot, generation) = self.pending.upcoming();
        let named = if self.out.task.streams[stream].stays_in_worker {
            let spout = self.out.task.task;
            self.out
                .emitter
                .acker_traffic
                .named_root(spout, slot, generation)
        } else {
            None
        };
        let root = named.unwrap_or_else(|| tree_root::announced(&mut self.out.emitter.rng));
        let edges = Cell::new(0);
        let targets = self.out.emit(
            stream,
            Anchoring::Root {
                root,
                named: named.is_some(),
                edges_xor: &edges,
            },
            direct,
            values,
        )?;
        if targets == 0 {
            self.settled.push_back((message, true, stream as u16));
            return Ok(0);
        }
        let inserted = self
            .pending
            .insert(root, message, stream as u16, self.now_nanos);
        debug_assert_eq!(inserted, slot, "the slot the root names");
        self.out.task.meter.counters.pending = self.pending.len() as u64;
        if named.is_some() {
            return Ok(targets);
        }
        let workers =
            self.out.emitter.tree_workers.own() | self.out.emitter.peers_of_last_targets();
        self.out.emitter.acker_traffic.report(AckerReport {
            kind: ReportKind::Init,
            reporter: self.out.task.task,
            root,
            value: edges.get(),
            workers,
            slot,
        });
        Ok(targets)
    }

    /// The tasks the last successful emit went to.
    pub fn last_targets(&self) -> &[TaskId] {
        self.out.targets()
    }

    /// Reports an error without stopping: it appears in the topology's errors with this
    /// task.
    pub fn report_error(&mut self, message: impl Into<String>) {
        self.out.report(TaskErrorKind::Reported, message.into());
    }

    /// Tracked trees of this task in flight.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Tuples this task emitted so far.
    #[inline]
    pub(crate) fn emitted(&self) -> u64 {
        self.out.task.meter.counters.emitted
    }

    /// Tells the executor that this spout has nothing to emit for `wait`: `next_tuple` is
    /// not called again before then, and the thread may sleep until then when nothing else
    /// needs it. Acks, fails and the thread's other tasks are served meanwhile.
    ///
    /// A source that knows when its next tuple is due (a paced source, a poll interval)
    /// says so here rather than being polled in a loop: without a hint, a spout that emits
    /// nothing is polled again at once and then backed off, and one that emits a tuple each
    /// call keeps its thread busy however low its rate.
    pub fn idle_for(&mut self, wait: std::time::Duration) {
        let wait = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.idle_until_nanos = Some(self.now_nanos.saturating_add(wait));
    }

    /// Whether the spout should not be asked for more now: an output is backlogged or it has
    /// `max_pending` trees in flight.
    #[inline]
    pub(crate) fn is_throttled(&self, max_pending: Option<usize>) -> bool {
        self.out.is_backlogged() || max_pending.is_some_and(|max| self.pending.len() >= max)
    }
}

/// A bolt's output: emits (anchored or not), acks and fails inputs.
pub struct BoltOutput<'a> {
    pub(crate) out: TaskOutput<'a>,
    /// The input being executed, when the bolt auto-acks: unanchored emits anchor to it.
    pub(crate) auto_anchor: Option<&'a Anchor>,
}

impl fmt::Debug for BoltOutput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoltOutput")
            .field("task", &self.out.task.task)
            .field("component", &self.out.task.component_id)
            .finish_non_exhaustive()
    }
}

impl BoltOutput<'_> {
    /// The same output, with unanchored emits anchored to `auto_anchor`: for a wrapper that
    /// auto-acks on behalf of the bolt it runs, on inputs it may have held.
    pub(crate) fn reborrow<'b>(&'b mut self, auto_anchor: Option<&'b Anchor>) -> BoltOutput<'b> {
        BoltOutput {
            out: TaskOutput {
                emitter: &mut *self.out.emitter,
                run_state: self.out.run_state,
                task: &mut *self.out.task,
            },
            auto_anchor,
        }
    }

    /// This task's id.
    pub fn task(&self) -> TaskId {
        self.out.task.task
    }

    /// The stream called `name`, resolved once for [`emit_to`](Self::emit_to).
    pub fn stream(&self, name: &str) -> Option<StreamHandle> {
        self.out.handle(name)
    }

    /// Emits on the default stream: unanchored, or anchored to the input for an auto-acking
    /// bolt.
    ///
    /// # Panics
    /// When the emit is refused (see [`try_emit`](Self::try_emit)); the executor reports it.
    #[inline]
    pub fn emit(&mut self, values: &[Value<'_>]) {
        let auto = self.auto_anchor;
        let anchors = auto.as_slice();
        if let Err(error) = self.try_emit_resolved(None, anchors, None, values) {
            refused(error)
        }
    }

    /// Emits untracked tuples on the default stream in one batch, each routed before any is
    /// written, as [`SpoutOutput::emit_batch`] does (plain numbers or [`Value`]s): for what a
    /// bolt emits for a run as a whole, or for untracked input it read with
    /// [`InputBatch::read_then_ack`](super::InputBatch::read_then_ack). The tuples are
    /// unanchored, even on an output whose single emits anchor to an input.
    ///
    /// # Panics
    /// When the emit is refused (as [`SpoutOutput::try_emit_batch`] says why). Nothing is
    /// sent then.
    #[inline]
    pub fn emit_batch<V: EncodeValue, const N: usize>(&mut self, tuples: &[[V; N]]) {
        self.out.emit_default_batch(tuples);
    }

    /// Emits on the default stream, anchored to `anchor` (an input [`Tuple`](super::Tuple) or
    /// a kept [`Anchor`]).
    ///
    /// # Panics
    /// When the emit is refused.
    #[inline]
    pub fn emit_anchored(&mut self, anchor: &impl AsRef<Anchor>, values: &[Value<'_>]) {
        if let Err(error) = self.try_emit_resolved(None, &[anchor.as_ref()], None, values) {
            refused(error)
        }
    }

    /// Emits on `stream`, anchored to every anchor in `anchors` (none: unanchored).
    ///
    /// # Panics
    /// When the emit is refused.
    pub fn emit_on(&mut self, stream: &str, anchors: &[&Anchor], values: &[Value<'_>]) {
        if let Err(error) = self.try_emit(stream, anchors, None, values) {
            refused(error)
        }
    }

    /// Emits on a resolved stream, anchored to every anchor in `anchors`.
    ///
    /// # Panics
    /// When the emit is refused.
    #[inline]
    pub fn emit_to(&mut self, stream: StreamHandle, anchors: &[&Anchor], values: &[Value<'_>]) {
        if let Err(error) = self.try_emit_resolved(Some(stream.0), anchors, None, values) {
            refused(error)
        }
    }

    /// Emits on a direct stream to `task`.
    ///
    /// # Panics
    /// When the emit is refused.
    pub fn emit_direct(
        &mut self,
        task: TaskId,
        stream: &str,
        anchors: &[&Anchor],
        values: &[Value<'_>],
    ) {
        if let Err(error) = self.try_emit(stream, anchors, Some(task), values) {
            refused(error)
        }
    }

    /// Emits, or says why not. Returns the number of target tasks (their ids are in
    /// [`last_targets`](Self::last_targets)).
    ///
    /// # Errors
    /// [`EmitError`] naming the problem; nothing was sent and no anchor changed.
    pub fn try_emit<V: EncodeValue>(
        &mut self,
        stream: &str,
        anchors: &[&Anchor],
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        let stream = self.out.resolve(stream)?;
        self.try_emit_resolved(Some(stream), anchors, direct, values)
    }

    #[inline]
    fn try_emit_resolved<V: EncodeValue>(
        &mut self,
        stream: Option<usize>,
        anchors: &[&Anchor],
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        let stream = match stream {
            Some(stream) => stream,
            None => self.out.default_index()?,
        };
        if anchors.is_empty() || !self.out.emitter.tracking() {
            return self.out.emit(stream, Anchoring::None, direct, values);
        }
        let targets = self
            .out
            .emit(stream, Anchoring::Anchors(anchors), direct, values)?;
        let peers = self.out.emitter.peers_of_last_targets();
        if peers != 0 {
            for anchor in anchors {
                anchor.add_child_workers(peers);
            }
        }
        Ok(targets)
    }

    /// Acks an input: its part of every tuple tree it belongs to is done. Acking twice, or
    /// after failing, does nothing.
    #[inline(always)]
    pub fn ack(&mut self, anchor: &impl AsRef<Anchor>) {
        let anchor = anchor.as_ref();
        if !anchor.settle() {
            return;
        }
        self.out.task.meter.input_acked(anchor.stream());
        if !anchor.is_untracked() {
            self.send_acks(anchor);
        }
    }

    /// Tells the ackers of a tracked input's trees that it was acked.
    #[inline]
    fn send_acks(&mut self, anchor: &Anchor) {
        let workers = self.out.emitter.tree_workers.own() | anchor.child_workers();
        for &(root, edge) in anchor.pairs() {
            self.out
                .report_ack(root, anchor.ack_value_for(edge), workers);
        }
    }

    /// Fails an input: every tuple tree it belongs to fails now (the spouts may replay).
    /// Failing twice, or after acking, does nothing.
    #[inline]
    pub fn fail(&mut self, anchor: &impl AsRef<Anchor>) {
        let anchor = anchor.as_ref();
        if !anchor.settle() {
            return;
        }
        self.out.task.meter.input_failed(anchor.stream());
        self.out
            .emitter
            .acker_traffic
            .report_failed(self.out.task.task, anchor);
    }

    /// The tasks the last successful emit went to.
    pub fn last_targets(&self) -> &[TaskId] {
        self.out.targets()
    }

    /// Reports an error without stopping: it appears in the topology's errors with this
    /// task.
    pub fn report_error(&mut self, message: impl Into<String>) {
        self.out.report(TaskErrorKind::Reported, message.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::acker_traffic::ReportKind;
    use crate::runtime::task_fixture::OneTask;

    #[test]
    fn an_anchored_emit_adds_a_fresh_edge_and_the_ack_reports_it() {
        let mut task = OneTask::new();
        let input = Anchor::from_pairs([(77, 0xE0)].into_iter(), 16);
        let mut output = task.output(Some(&input));
        output.emit(&[Value::U64(5)]);
        output.ack(&input);
        let sent = task.sent();
        assert_eq!(sent.len(), 1);
        let (value, anchors) = &sent[0];
        assert_eq!(*value, 5);
        let [(root, child_edge)] = anchors[..] else {
            panic!("one anchor pair: {anchors:?}")
        };
        assert_eq!(root, 77);
        assert_ne!(child_edge, 0);
        let reports = task.reports();
        assert_eq!(reports.len(), 1);
        let report = reports[0];
        assert_eq!(report.kind, ReportKind::Ack);
        assert_eq!((report.root, report.reporter), (77, TaskId(1)));
        // The input's own edge leaves the tree, its child's joins it.
        assert_eq!(report.value, 0xE0 ^ child_edge);
        let counters = task.task.meter.counters;
        assert_eq!(
            (counters.emitted, counters.transferred, counters.acked),
            (1, 1, 1)
        );
    }

    /// Emits one tracked tuple from task 1 as a spout; returns its record's anchor pairs.
    fn spout_emit(task: &mut OneTask, pending: &mut PendingTrees) -> Vec<(u64, u64)> {
        let mut settled = std::collections::VecDeque::new();
        let mut output = SpoutOutput {
            out: TaskOutput {
                emitter: &mut task.emitter,
                run_state: &task.run_state,
                task: &mut task.task,
            },
            pending,
            settled: &mut settled,
            now_nanos: 0,
            idle_until_nanos: None,
        };
        output.emit_with_id(&[Value::U64(1)], MessageId(10));
        assert!(settled.is_empty(), "a tracked tree, not settled on emit");
        let sent = task.sent();
        assert_eq!(sent.len(), 1);
        sent[0].1.clone()
    }

    #[test]
    fn a_tree_that_stays_in_the_worker_is_named_and_not_announced() {
        let mut task = OneTask::new();
        let mut pending = PendingTrees::new(1_000_000_000, 0);
        let anchors = spout_emit(&mut task, &mut pending);
        let [(root, edge)] = anchors[..] else {
            panic!("one anchor pair: {anchors:?}")
        };
        assert_eq!(edge, root, "the one first edge is the root");
        let roots = tree_root::RootLayout::new(3, None, 1).unwrap();
        assert_eq!(roots.spout_of(root), Some((TaskId(1), 0)));
        assert!(task.reports().is_empty(), "no init report");
        assert_eq!(
            pending.take(root, 0).map(|tree| tree.message),
            Some(MessageId(10))
        );
    }

    #[test]
    fn a_tree_that_may_leave_the_worker_is_announced() {
        let mut task = OneTask::new();
        task.task.streams[0].stays_in_worker = false;
        let mut pending = PendingTrees::new(1_000_000_000, 0);
        let anchors = spout_emit(&mut task, &mut pending);
        let [(root, edge)] = anchors[..] else {
            panic!("one anchor pair: {anchors:?}")
        };
        assert!(root >> 63 == 0, "a random root, not a named one");
        let reports = task.reports();
        assert_eq!(reports.len(), 1);
        let init = reports[0];
        assert_eq!(init.kind, ReportKind::Init);
        assert_eq!(
            (init.root, init.value, init.reporter, init.slot),
            (root, edge, TaskId(1), 0)
        );
    }

    #[test]
    fn an_input_settles_once_whatever_follows() {
        let mut task = OneTask::new();
        let input = Anchor::from_pairs([(5, 1), (6, 2)].into_iter(), 16);
        let mut output = task.output(None);
        output.fail(&input);
        output.ack(&input);
        output.fail(&input);
        let reports = task.reports();
        assert_eq!(reports.len(), 2, "one failure per tree");
        assert!(reports.iter().all(|report| report.kind == ReportKind::Fail));
        assert_eq!(
            reports.iter().map(|report| report.root).collect::<Vec<_>>(),
            [5, 6]
        );
        let counters = task.task.meter.counters;
        assert_eq!((counters.acked, counters.failed), (0, 1));
    }

    #[test]
    fn untracked_inputs_ack_for_free_and_emits_stay_unanchored() {
        let mut task = OneTask::new();
        let input = Anchor::default();
        let mut output = task.output(Some(&input));
        output.emit(&[Value::U64(1)]);
        output.ack(&input);
        assert_eq!(task.sent(), [(1, vec![])]);
        assert!(task.reports().is_empty());
        assert_eq!(task.task.meter.counters.acked, 1);
    }

    #[test]
    fn refused_emits_say_why_and_send_nothing() {
        let mut task = OneTask::new();
        let mut output = task.output(None);
        let unknown = output
            .try_emit("nope", &[], None, &[Value::U64(1)])
            .unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "component \"sink\" declares no stream \"nope\""
        );
        let too_many = output
            .try_emit("default", &[], None, &[Value::U64(1), Value::U64(2)])
            .unwrap_err();
        assert!(
            matches!(
                too_many,
                EmitError::FieldCount {
                    declared: 1,
                    given: 2,
                    ..
                }
            ),
            "{too_many}"
        );
        assert!(task.sent().is_empty());
        assert_eq!(task.task.meter.counters.emitted, 0);
    }

    #[test]
    fn reported_errors_name_the_task_and_its_component() {
        let mut task = OneTask::new();
        task.output(None).report_error("disk full");
        let errors = task.run_state.errors();
        assert_eq!(errors.len(), 1);
        let error = &errors[0];
        assert_eq!(
            (error.component.as_str(), error.task, error.message.as_str()),
            ("sink", TaskId(1), "disk full")
        );
        assert_eq!(error.kind, TaskErrorKind::Reported);
    }
}
