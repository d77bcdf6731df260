//! Stateful bolts, and the wrapper that runs every bolt of a checkpointed topology: it
//! aligns barriers, snapshots and restores the state, and forwards the barriers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;

use super::align::{Alignment, Kind, Offer};
use super::backend::{StateBackend, StateError, TaskStore};
use super::kv::{Delta, Entries, KeyValueState};
use super::{BARRIER_STREAM, Checkpointing};
use crate::component::{Bolt, ComponentError};
use crate::context::{ExecutorWaker, TopologyContext};
use crate::runtime::{Anchor, BoltOutput, Tuple};
use crate::topology::{OutputDeclarer, Topology};
use crate::tuple::TupleRef;
use crate::value::Value;

/// A bolt with key-value state that survives failures: the state is checkpointed with the
/// topology's barriers and restored, before any tuple, after a restart or a rollback.
///
/// With replayable sources, every input affects the state exactly once, however often it
/// was processed: see the [module documentation](super).
pub trait StatefulBolt: Send {
    /// Declares the streams this bolt emits (called once, when the topology is built).
    fn declare_outputs(&self, _declarer: &mut OutputDeclarer) {}

    /// Called once on the executor thread, before the state is restored.
    ///
    /// # Errors
    /// A failure is reported with the topology, component and task; the task is not run.
    fn prepare(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// The state was restored from a checkpoint (at start, or on a rollback): anything the
    /// bolt keeps outside the state should be rebuilt from it now.
    fn restored(&mut self, _state: &KeyValueState) {}

    /// Processes one input, reading and updating `state`. Tracked inputs must be acked or
    /// failed through `output`, as for any bolt (or the bolt declared `auto_ack`).
    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    );

    /// Called once when the task stops, with the state as it stands (the writer still
    /// finishes the checkpoints handed to it).
    fn cleanup(&mut self, _state: &KeyValueState) {}
}

/// A boxed stateful bolt, as registries of components hand them out.
impl StatefulBolt for Box<dyn StatefulBolt> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        (**self).declare_outputs(declarer);
    }
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        (**self).prepare(context)
    }
    fn restored(&mut self, state: &KeyValueState) {
        (**self).restored(state);
    }
    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        (**self).execute(input, state, output);
    }
    fn cleanup(&mut self, state: &KeyValueState) {
        (**self).cleanup(state);
    }
}

/// What the wrapper runs.
pub(crate) enum Wrapped {
    Stateful(Box<dyn StatefulBolt>),
    Plain(Box<dyn Bolt>),
}

/// Runs a bolt of a checkpointed topology.
pub(crate) struct CheckpointedBolt {
    wrapped: Wrapped,
    checkpointing: Checkpointing,
    /// The component auto-acks: the wrapper does it, since it may process an input long
    /// after the executor handed it over.
    auto_ack: bool,
    running: Option<Running>,
}

/// The wrapper's state once prepared.
struct Running {
    topology: Arc<Topology>,
    /// Which topology streams are barrier streams, by stream id.
    barrier_streams: Vec<bool>,
    alignment: Alignment<Vec<u8>>,
    /// The barriers of the checkpoint being aligned, acked once it is taken.
    barrier_anchors: Vec<Anchor>,
    stateful: Option<Stateful>,
    /// A stateful task starts in a generation of its own: its rollback barrier (generation,
    /// restored checkpoint) goes downstream before anything it emits, or downstream tasks
    /// would take what it emits for the previous generation's and discard it.
    announce: Option<(u64, u64)>,
}

/// A stateful bolt's state and its writer thread.
struct Stateful {
    state: KeyValueState,
    /// The checkpoint the state was last restored to, while nothing changed since.
    clean_at: Option<u64>,
    requests: Option<mpsc::Sender<Request>>,
    replies: mpsc::Receiver<Saved>,
    /// Checkpoints handed to the writer, with the barriers to ack once each is durable.
    awaiting: VecDeque<(u64, Vec<Anchor>)>,
    writer: Option<std::thread::JoinHandle<()>>,
}

enum Request {
    Save(Delta),
    Restore(u64, mpsc::SyncSender<Result<Entries, StateError>>),
}

struct Saved {
    checkpoint: u64,
    result: Result<(), StateError>,
}

impl CheckpointedBolt {
    pub(crate) fn new(wrapped: Wrapped, checkpointing: Checkpointing, auto_ack: bool) -> Self {
        Self {
            wrapped,
            checkpointing,
            auto_ack,
            running: None,
        }
    }
}

/// The tasks whose outputs this task receives.
fn upstream_tasks(context: &TopologyContext) -> Vec<crate::ids::TaskId> {
    let topology = context.topology();
    let mut tasks: Vec<_> = context
        .component()
        .inputs()
        .iter()
        .flat_map(|input| topology.components()[input.source].task_ids())
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    tasks
}

fn barrier_streams(topology: &Topology) -> Vec<bool> {
    let mut streams = vec![false; topology.streams().len()];
    for stream in topology.streams() {
        if stream.name == BARRIER_STREAM {
            streams[usize::from(stream.id.0)] = true;
        }
    }
    streams
}

/// Reads a barrier tuple's fields.
fn barrier_kind(input: &TupleRef<'_>) -> Kind {
    let generation = input.get_u64(0).unwrap_or(0);
    let checkpoint = input.get_u64(1).unwrap_or(0);
    if input.get_u64(2).unwrap_or(0) == 1 {
        Kind::Rollback {
            generation,
            restored: checkpoint,
        }
    } else {
        Kind::Checkpoint {
            generation,
            checkpoint,
        }
    }
}

/// A stateful task's books once opened: its store, the ledger, the generation it started
/// and the state it restored.
struct Opened {
    store: Box<dyn TaskStore>,
    ledger: Box<dyn super::CheckpointLedger>,
    generation: u64,
    restored: u64,
    entries: Entries,
}

/// Opens the task's books ([`super::open_books`]) and restores the checkpoint its
/// generation starts from.
fn open_state(
    backend: &Arc<dyn StateBackend>,
    context: &TopologyContext,
) -> Result<Opened, StateError> {
    let super::Books {
        mut store,
        ledger,
        view,
    } = super::open_books(backend, context, None)?;
    let entries = store.restore(view.restored)?;
    Ok(Opened {
        store,
        ledger,
        generation: view.generation,
        restored: view.restored,
        entries,
    })
}

/// How many checkpoints a writer saves between two folds of committed deltas into the
/// base.
const SAVES_PER_FOLD: u32 = 8;

/// The writer thread: saves deltas in order, compacts what the ledger says is committed,
/// restores when asked.
fn write_loop(
    mut store: Box<dyn TaskStore>,
    mut ledger: Box<dyn super::CheckpointLedger>,
    requests: mpsc::Receiver<Request>,
    replies: mpsc::Sender<Saved>,
    waker: Option<ExecutorWaker>,
) {
    let mut compacted = 0;
    let mut saved_since_fold = 0;
    for request in requests {
        match request {
            Request::Save(delta) => {
                let checkpoint = delta.checkpoint;
                let result = store.save(&delta);
                drop(delta);
                saved_since_fold += 1;
                // Folding rewrites what the deltas wrote: done every few checkpoints, it
                // costs a fraction of the writes, and a restore reads a few deltas more.
                if result.is_ok() && saved_since_fold >= SAVES_PER_FOLD {
                    saved_since_fold = 0;
                    match ledger.view() {
                        Ok(view) if view.committed > compacted => {
                            match store.compact(view.committed) {
                                Ok(()) => compacted = view.committed,
                                Err(error) => tracing::warn!("compacting checkpoints: {error}"),
                            }
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!("reading the checkpoint ledger: {error}"),
                    }
                }
                if replies.send(Saved { checkpoint, result }).is_err() {
                    return;
                }
                if let Some(waker) = &waker {
                    waker.wake();
                }
            }
            Request::Restore(checkpoint, reply) => {
                let _ = reply.send(store.restore(checkpoint));
            }
        }
    }
}

impl Bolt for CheckpointedBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        match &self.wrapped {
            Wrapped::Stateful(bolt) => bolt.declare_outputs(declarer),
            Wrapped::Plain(bolt) => bolt.declare_outputs(declarer),
        }
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        let topology = context.topology().clone();
        let (generation, restored, stateful) = match &mut self.wrapped {
            Wrapped::Plain(bolt) => {
                bolt.prepare(context)?;
                (0, 0, None)
            }
            Wrapped::Stateful(bolt) => {
                bolt.prepare(context)?;
                let Opened {
                    store,
                    ledger,
                    generation,
                    restored,
                    entries,
                } = open_state(&self.checkpointing.backend, context)?;
                let mut state = KeyValueState::new();
                state.restore(entries);
                tracing::info!(
                    component = context.component_id(),
                    task = context.task_index(),
                    checkpoint = restored,
                    generation,
                    keys = state.len(),
                    "state restored at start"
                );
                bolt.restored(&state);
                let (requests, requests_in) = mpsc::channel();
                let (replies_out, replies) = mpsc::channel();
                let waker = context.waker();
                let writer = std::thread::Builder::new()
                    .name(format!("squall-state-{}", context.task_id().0))
                    .spawn(move || write_loop(store, ledger, requests_in, replies_out, waker))?;
                (
                    generation,
                    restored,
                    Some(Stateful {
                        state,
                        clean_at: Some(restored),
                        requests: Some(requests),
                        replies,
                        awaiting: VecDeque::new(),
                        writer: Some(writer),
                    }),
                )
            }
        };
        self.running = Some(Running {
            barrier_streams: barrier_streams(&topology),
            alignment: Alignment::new(upstream_tasks(context), generation),
            topology,
            barrier_anchors: Vec::new(),
            stateful,
            announce: (generation > 0).then_some((generation, restored)),
        });
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.announce(output);
        let running = self.running.as_mut().expect("prepared before execute");
        let is_barrier = running
            .barrier_streams
            .get(usize::from(input.stream_id().0))
            .copied()
            .unwrap_or(false);
        let kind = if is_barrier {
            barrier_kind(input.view())
        } else {
            Kind::Data
        };
        let offer = running
            .alignment
            .offer(input.source_task(), kind, || input.view().to_record());
        if self.settle(offer, input, output) {
            self.release(output);
        }
    }

    fn poll(&mut self, output: &mut BoltOutput<'_>) -> bool {
        self.announce(output);
        let Some(stateful) = self.running.as_mut().and_then(|r| r.stateful.as_mut()) else {
            return match &mut self.wrapped {
                Wrapped::Plain(bolt) => bolt.poll(output),
                Wrapped::Stateful(_) => false,
            };
        };
        let mut progress = false;
        while let Ok(saved) = stateful.replies.try_recv() {
            progress = true;
            let Some((checkpoint, anchors)) = stateful.awaiting.pop_front() else {
                continue;
            };
            debug_assert_eq!(checkpoint, saved.checkpoint);
            match saved.result {
                Ok(()) => anchors.iter().for_each(|anchor| output.ack(anchor)),
                Err(error) => {
                    output.report_error(format!("checkpoint {checkpoint} was not saved: {error}"));
                    anchors.iter().for_each(|anchor| output.fail(anchor));
                }
            }
        }
        progress
    }

    fn wants_poll(&self) -> bool {
        match &self.wrapped {
            Wrapped::Stateful(_) => true,
            Wrapped::Plain(bolt) => bolt.wants_poll(),
        }
    }

    fn cleanup(&mut self) {
        let stateful = self.running.as_mut().and_then(|r| r.stateful.as_mut());
        match (&mut self.wrapped, &stateful) {
            (Wrapped::Stateful(bolt), Some(stateful)) => bolt.cleanup(&stateful.state),
            (Wrapped::Stateful(bolt), None) => bolt.cleanup(&KeyValueState::new()),
            (Wrapped::Plain(bolt), _) => bolt.cleanup(),
        }
        if let Some(stateful) = stateful {
            // The writer finishes what it was given, then stops.
            stateful.requests = None;
            if let Some(writer) = stateful.writer.take() {
                let _ = writer.join();
            }
        }
    }
}

impl CheckpointedBolt {
    /// Sends the rollback barrier of the generation the task started in, once.
    fn announce(&mut self, output: &mut BoltOutput<'_>) {
        let Some((generation, restored)) = self.running.as_mut().and_then(|r| r.announce.take())
        else {
            return;
        };
        output.emit_on(
            BARRIER_STREAM,
            &[],
            &[Value::U64(generation), Value::U64(restored), Value::U64(1)],
        );
    }

    /// Acts on the verdict about `input`; returns whether held inputs may now proceed.
    fn settle(&mut self, offer: Offer, input: &Tuple<'_>, output: &mut BoltOutput<'_>) -> bool {
        match offer {
            Offer::Process => {
                self.run_wrapped(input, output);
                false
            }
            Offer::Held => false,
            Offer::Discard | Offer::Noted => {
                output.ack(input);
                false
            }
            Offer::Joined => {
                let running = self.running.as_mut().expect("prepared");
                running.barrier_anchors.push(input.anchor().clone());
                false
            }
            Offer::Aligned { checkpoint } => {
                let running = self.running.as_mut().expect("prepared");
                running.barrier_anchors.push(input.anchor().clone());
                self.take_checkpoint(checkpoint, output);
                true
            }
            Offer::RolledBack {
                generation,
                restored,
            } => {
                output.ack(input);
                self.roll_back(generation, restored, output);
                true
            }
        }
    }

    /// Processes the held inputs that may proceed, until none can.
    fn release(&mut self, output: &mut BoltOutput<'_>) {
        loop {
            let running = self.running.as_mut().expect("prepared");
            let held = running.alignment.take_held();
            if held.is_empty() {
                return;
            }
            let topology = running.topology.clone();
            let mut progress = false;
            for held in held {
                let running = self.running.as_mut().expect("prepared");
                let (offer, item) = running.alignment.readmit(held);
                let Some(record) = item else {
                    continue;
                };
                progress = true;
                let view = TupleRef::parse(&record).expect("held records were parsed before");
                let tuple = Tuple::new(view, &topology);
                self.settle(offer, &tuple, output);
            }
            if !progress {
                return;
            }
        }
    }

    fn run_wrapped(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let auto_anchor = self.auto_ack.then_some(input.anchor());
        let mut inner = output.reborrow(auto_anchor);
        match &mut self.wrapped {
            Wrapped::Plain(bolt) => bolt.execute(input, &mut inner),
            Wrapped::Stateful(bolt) => {
                let stateful = self
                    .running
                    .as_mut()
                    .and_then(|running| running.stateful.as_mut())
                    .expect("a stateful bolt has state once prepared");
                bolt.execute(input, &mut stateful.state, &mut inner);
            }
        }
        if self.auto_ack && !input.anchor().is_settled() {
            output.ack(input);
        }
    }

    /// Checkpoint `checkpoint` is aligned: hand the changes to the writer, forward the
    /// barrier, and ack the barriers once the changes are durable.
    fn take_checkpoint(&mut self, checkpoint: u64, output: &mut BoltOutput<'_>) {
        let running = self.running.as_mut().expect("prepared");
        let anchors = std::mem::take(&mut running.barrier_anchors);
        let generation = running.alignment.generation();
        {
            let anchors: Vec<&Anchor> = anchors.iter().collect();
            output.emit_on(
                BARRIER_STREAM,
                &anchors,
                &[
                    Value::U64(generation),
                    Value::U64(checkpoint),
                    Value::U64(0),
                ],
            );
        }
        running.alignment.finish_checkpoint();
        match running.stateful.as_mut() {
            None => anchors.iter().for_each(|anchor| output.ack(anchor)),
            Some(stateful) => {
                let delta = stateful.state.take_changes(checkpoint);
                if !delta.is_empty() {
                    stateful.clean_at = None;
                }
                let sent = stateful
                    .requests
                    .as_ref()
                    .is_some_and(|requests| requests.send(Request::Save(delta)).is_ok());
                if sent {
                    stateful.awaiting.push_back((checkpoint, anchors));
                } else {
                    output.report_error(format!(
                        "checkpoint {checkpoint} was not saved: the state writer stopped"
                    ));
                    anchors.iter().for_each(|anchor| output.fail(anchor));
                }
            }
        }
    }

    /// Every channel moved to `generation`: restore checkpoint `restored` and forward the
    /// rollback barrier.
    fn roll_back(&mut self, generation: u64, restored: u64, output: &mut BoltOutput<'_>) {
        let running = self.running.as_mut().expect("prepared");
        // The checkpoint being aligned was abandoned; its barriers belong to a generation
        // that no longer counts.
        for anchor in std::mem::take(&mut running.barrier_anchors) {
            output.ack(&anchor);
        }
        if let Some(stateful) = running.stateful.as_mut()
            && (stateful.clean_at != Some(restored) || stateful.state.has_changes())
        {
            let entries = restore(stateful, restored).unwrap_or_else(|error| {
                // Going on would count inputs twice or not at all: the task restarts and
                // starts a new generation instead.
                panic!("restoring checkpoint {restored} failed: {error}")
            });
            stateful.state.restore(entries);
            stateful.clean_at = Some(restored);
            tracing::info!(
                checkpoint = restored,
                generation,
                keys = stateful.state.len(),
                "state rolled back"
            );
            if let Wrapped::Stateful(bolt) = &mut self.wrapped {
                bolt.restored(&stateful.state);
            }
        }
        output.emit_on(
            BARRIER_STREAM,
            &[],
            &[Value::U64(generation), Value::U64(restored), Value::U64(1)],
        );
    }
}

/// Asks the writer (after whatever it is writing) for the state as of `checkpoint`.
fn restore(stateful: &mut Stateful, checkpoint: u64) -> Result<Entries, StateError> {
    let stopped = || StateError::new("state writer", "it stopped");
    let (reply, answer) = mpsc::sync_channel(1);
    stateful
        .requests
        .as_ref()
        .ok_or_else(stopped)?
        .send(Request::Restore(checkpoint, reply))
        .map_err(|_| stopped())?;
    answer.recv().map_err(|_| stopped())?
}
