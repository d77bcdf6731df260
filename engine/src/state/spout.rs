//! Sources of a checkpointed topology: replayable spouts, and the wrapper that runs every
//! spout there. It starts each checkpoint by emitting a barrier after what the source
//! emitted so far, records the source's position under the checkpoint, reports the
//! checkpoint to the ledger when its barrier's tree completes, and rolls back.

use std::collections::BTreeMap;
use std::time::Duration;

use super::backend::{CheckpointLedger, LedgerView, StateError, TaskStore};
use super::kv::Delta;
use super::{BARRIER_STREAM, Checkpointing};
use crate::component::{ComponentError, Spout};
use crate::context::TopologyContext;
use crate::ids::MessageId;
use crate::runtime::SpoutOutput;
use crate::topology::OutputDeclarer;
use crate::value::Value;

/// Message ids of barriers have this bit set; data ids of replayable sources do not.
const BARRIER_BIT: u64 = 1 << 63;
/// Data ids of replayable sources: the generation above this many bits, a sequence below.
const SEQUENCE_BITS: u32 = 40;
/// The key under which a source task's position is checkpointed.
const POSITION_KEY: &[u8] = b"position";
/// How often a source reads the ledger to learn of rollbacks and commits.
const LEDGER_POLL: Duration = Duration::from_millis(250);
/// After it opens, a source emits nothing for this long but follows the ledger closely:
/// every task of a starting topology starts a generation, and what a source emitted in
/// one that is soon left behind would be discarded (and, from a plain spout, lost).
const STARTUP_QUIET: Duration = Duration::from_millis(250);
/// How often the ledger is read during the quiet start.
const STARTUP_POLL: Duration = Duration::from_millis(25);

/// A source that can go back: it names its position after what it emitted, and can start
/// again from a position it named before. Run in a checkpointed topology, it makes every
/// input count exactly once in the state of the topology's stateful bolts.
pub trait ReplayableSpout: Send {
    /// Declares the streams this spout emits.
    fn declare_outputs(&self, _declarer: &mut OutputDeclarer) {}

    /// Called once on the executor thread, before [`seek`](Self::seek).
    ///
    /// # Errors
    /// A failure is reported with the topology, component and task; the task is not run.
    fn open(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Emits zero or more tuples (see [`Spout::next_tuple`]).
    fn next_tuple(&mut self, output: &mut ReplayOutput<'_, '_>);

    /// The position after everything emitted so far, in the source's own terms.
    fn position(&self) -> Vec<u8>;

    /// Goes back to `position` (`None`: the start): what it emits next is what came after
    /// that position. Called after `open`, and on every rollback.
    ///
    /// # Errors
    /// When the source cannot go there now; it is asked again.
    fn seek(&mut self, position: Option<&[u8]>) -> Result<(), ComponentError>;

    /// Everything up to `position` is in a committed checkpoint and will never be asked
    /// for again: the source may release it.
    fn committed(&mut self, _position: &[u8]) {}

    /// The topology was activated (see [`Spout::activate`]).
    fn activate(&mut self) {}

    /// The topology was deactivated (see [`Spout::deactivate`]).
    fn deactivate(&mut self) {}

    /// Called once when the task stops.
    fn close(&mut self) {}
}

/// A boxed replayable spout, as registries of components hand them out.
impl ReplayableSpout for Box<dyn ReplayableSpout> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        (**self).declare_outputs(declarer);
    }
    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        (**self).open(context)
    }
    fn next_tuple(&mut self, output: &mut ReplayOutput<'_, '_>) {
        (**self).next_tuple(output);
    }
    fn position(&self) -> Vec<u8> {
        (**self).position()
    }
    fn seek(&mut self, position: Option<&[u8]>) -> Result<(), ComponentError> {
        (**self).seek(position)
    }
    fn committed(&mut self, position: &[u8]) {
        (**self).committed(position);
    }
    fn activate(&mut self) {
        (**self).activate();
    }
    fn deactivate(&mut self) {
        (**self).deactivate();
    }
    fn close(&mut self) {
        (**self).close();
    }
}

/// What a replayable spout emits through: tuples are tracked, with ids the wrapper owns.
pub struct ReplayOutput<'s, 'o> {
    output: &'s mut SpoutOutput<'o>,
    generation: u64,
    sequence: &'s mut u64,
}

impl std::fmt::Debug for ReplayOutput<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayOutput")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl ReplayOutput<'_, '_> {
    fn next_id(&mut self) -> MessageId {
        *self.sequence = (*self.sequence + 1) & ((1 << SEQUENCE_BITS) - 1);
        MessageId((self.generation << SEQUENCE_BITS) | *self.sequence)
    }

    /// Emits a tracked tuple on the default stream.
    ///
    /// # Panics
    /// When the emit is refused (see [`SpoutOutput::emit_with_id`]).
    pub fn emit(&mut self, values: &[Value<'_>]) {
        let id = self.next_id();
        self.output.emit_with_id(values, id);
    }

    /// Emits a tracked tuple on `stream`.
    ///
    /// # Panics
    /// When the emit is refused.
    pub fn emit_on(&mut self, stream: &str, values: &[Value<'_>]) {
        let id = self.next_id();
        self.output.emit_on(stream, values, Some(id));
    }

    /// Asks not to be called again for `wait` (see [`SpoutOutput::idle_for`]).
    pub fn idle_for(&mut self, wait: Duration) {
        self.output.idle_for(wait);
    }

    /// Reports an error without stopping.
    pub fn report_error(&mut self, message: impl Into<String>) {
        self.output.report_error(message);
    }
}

/// What the wrapper runs.
pub(crate) enum Source {
    Replayable(Box<dyn ReplayableSpout>),
    /// A spout that cannot go back: it still starts checkpoints, but on a rollback what it
    /// emitted since the restored checkpoint is not emitted again.
    Plain(Box<dyn Spout>),
}

/// The ledger and the task's store, once opened.
struct SourceBooks {
    ledger: Box<dyn CheckpointLedger>,
    store: Box<dyn TaskStore>,
    /// This task's number among every source task of the topology.
    source: usize,
}

/// Runs a spout of a checkpointed topology.
pub(crate) struct CheckpointingSpout {
    source: Source,
    checkpointing: Checkpointing,
    books: Option<SourceBooks>,
    generation: u64,
    /// The next checkpoint to start.
    next_checkpoint: u64,
    /// When to start it, on the executor's clock (nanoseconds); 0: one interval after the
    /// next call.
    next_checkpoint_at: u64,
    /// When to read the ledger next, on the executor's clock.
    next_ledger_poll: u64,
    /// The newest committed checkpoint this task knows of.
    committed: u64,
    /// Positions of started checkpoints that are not committed yet.
    positions: BTreeMap<u64, Vec<u8>>,
    /// A generation was entered: its rollback barrier goes out before anything else.
    announce: Option<u64>,
    /// A generation whose seek failed, to try again.
    seek_pending: Option<LedgerView>,
    sequence: u64,
    /// The end of the quiet start ([`STARTUP_QUIET`]), on the executor's clock; `None`
    /// before the first call.
    quiet_until: Option<u64>,
    /// This incarnation's claim on its source task ([`CheckpointLedger::claim`]).
    claim: u64,
    /// A newer incarnation of this task claimed it: this one emits, acknowledges and
    /// reports nothing more.
    superseded: bool,
}

impl CheckpointingSpout {
    pub(crate) fn new(source: Source, checkpointing: Checkpointing) -> Self {
        Self {
            source,
            checkpointing,
            books: None,
            generation: 0,
            next_checkpoint: 1,
            next_checkpoint_at: 0,
            next_ledger_poll: 0,
            committed: 0,
            positions: BTreeMap::new(),
            announce: None,
            seek_pending: None,
            sequence: 0,
            quiet_until: None,
            claim: 0,
            superseded: false,
        }
    }

    fn books(&mut self) -> &mut SourceBooks {
        self.books.as_mut().expect("opened before use")
    }

    /// Moves to the generation `view` describes: back to its checkpoint's position, with
    /// its rollback barrier to announce.
    fn enter(&mut self, view: LedgerView) -> Result<(), String> {
        self.seek_pending = Some(view);
        let restored = self
            .books()
            .store
            .restore(view.restored)
            .map_err(|error| error.to_string())?;
        if let Source::Replayable(spout) = &mut self.source {
            let position = restored
                .iter()
                .find(|(key, _)| key == POSITION_KEY)
                .map(|(_, value)| value.as_slice());
            spout
                .seek(position)
                .map_err(|error| format!("going back to checkpoint {}: {error}", view.restored))?;
        }
        self.seek_pending = None;
        self.generation = view.generation;
        self.next_checkpoint = view.restored + 1;
        self.next_checkpoint_at = 0;
        self.committed = self.committed.max(view.committed);
        self.positions.clear();
        self.announce = Some(view.restored);
        Ok(())
    }

    /// Acts on the ledger's view: a newer generation is entered, a newer commit released.
    fn follow(&mut self, view: LedgerView) -> Result<(), String> {
        if view.superseded || self.superseded {
            if !self.superseded {
                tracing::warn!(
                    source = self.books().source,
                    "a newer incarnation of this source task runs elsewhere: this one stops"
                );
            }
            self.superseded = true;
            self.positions.clear();
            return Ok(());
        }
        if view.generation > self.generation {
            self.enter(view)?;
        }
        if view.committed > self.committed && view.generation == self.generation {
            self.committed = view.committed;
            let committed = self.committed;
            let mut released = None;
            while let Some(entry) = self.positions.first_entry() {
                if *entry.key() > committed {
                    break;
                }
                released = Some(entry.remove());
            }
            if let (Some(position), Source::Replayable(spout)) = (released, &mut self.source) {
                spout.committed(&position);
            }
            self.books()
                .store
                .compact(committed)
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    /// Starts a new generation after a loss seen in generation `seen`.
    fn roll_back(&mut self, seen: u64) -> Result<(), String> {
        let view = self
            .books()
            .ledger
            .roll_back(seen)
            .map_err(|error| error.to_string())?;
        self.follow(view)
    }

    /// Starts checkpoint `next_checkpoint`: records the position, emits the barrier.
    fn start_checkpoint(&mut self, output: &mut SpoutOutput<'_>) -> Result<(), StateError> {
        let checkpoint = self.next_checkpoint;
        let position = match &self.source {
            Source::Replayable(spout) => Some(spout.position()),
            Source::Plain(_) => None,
        };
        if let Some(position) = &position {
            let mut delta = Delta::new(checkpoint);
            delta.push(POSITION_KEY, Some(position));
            self.books().store.save(&delta)?;
        }
        self.positions
            .insert(checkpoint, position.unwrap_or_default());
        self.next_checkpoint += 1;
        output.emit_on(
            BARRIER_STREAM,
            &[
                Value::U64(self.generation),
                Value::U64(checkpoint),
                Value::U64(0),
            ],
            Some(MessageId(
                BARRIER_BIT | (self.generation << 32) | (checkpoint & 0xffff_ffff),
            )),
        );
        Ok(())
    }

    fn report(&self, output: &mut SpoutOutput<'_>, error: impl std::fmt::Display) {
        output.report_error(format!(
            "checkpointing with {}: {error}",
            self.checkpointing.backend.describe()
        ));
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The index of `context`'s task among every spout task of the topology.
fn source_index(context: &TopologyContext) -> usize {
    let before: usize = context
        .topology()
        .components()
        .iter()
        .take_while(|component| component.index() != context.component().index())
        .filter(|component| component.kind() == crate::topology::ComponentKind::Spout)
        .map(|component| component.task_count())
        .sum();
    before + context.task_index()
}

impl Spout for CheckpointingSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        match &self.source {
            Source::Replayable(spout) => spout.declare_outputs(declarer),
            Source::Plain(spout) => spout.declare_outputs(declarer),
        }
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        match &mut self.source {
            Source::Replayable(spout) => spout.open(context)?,
            Source::Plain(spout) => spout.open(context)?,
        }
        let source = source_index(context);
        let opened = super::open_books(&self.checkpointing.backend, context, Some(source))?;
        let view = opened.view;
        self.claim = view.generation;
        self.books = Some(SourceBooks {
            ledger: opened.ledger,
            store: opened.store,
            source,
        });
        // A source that cannot go back yet (its server is down) is not a failed start:
        // the seek is tried again from `next_tuple`, which emits nothing until it works.
        if let Err(error) = self.enter(view) {
            tracing::warn!(
                component = context.component_id(),
                task = context.task_index(),
                "checkpointing: {error}; trying again"
            );
        }
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        let now = output.now_nanos;
        let quiet_until = *self
            .quiet_until
            .get_or_insert_with(|| now.saturating_add(nanos(STARTUP_QUIET)));
        let quiet = now < quiet_until;
        if self.next_checkpoint_at == 0 {
            self.next_checkpoint_at = now
                .max(quiet_until)
                .saturating_add(nanos(self.checkpointing.interval));
        }
        if now >= self.next_ledger_poll {
            let every = if quiet { STARTUP_POLL } else { LEDGER_POLL };
            self.next_ledger_poll =
                now.saturating_add(nanos(every.min(self.checkpointing.interval)));
            let (source, claim) = (self.books().source, self.claim);
            let followed = match self.seek_pending {
                Some(view) => self.enter(view),
                None => self
                    .books()
                    .ledger
                    .source_view(source, claim)
                    .map_err(|error| error.to_string())
                    .and_then(|view| self.follow(view)),
            };
            if let Err(error) = followed {
                self.report(output, error);
            }
        }
        if self.seek_pending.is_some() || self.superseded {
            output.idle_for(LEDGER_POLL);
            return;
        }
        if let Some(restored) = self.announce.take() {
            output.emit_on(
                BARRIER_STREAM,
                &[
                    Value::U64(self.generation),
                    Value::U64(restored),
                    Value::U64(1),
                ],
                None,
            );
        }
        if quiet {
            output.idle_for(STARTUP_POLL);
            return;
        }
        if now >= self.next_checkpoint_at {
            self.next_checkpoint_at = now.saturating_add(nanos(self.checkpointing.interval));
            if let Err(error) = self.start_checkpoint(output) {
                self.report(output, error);
            }
            return;
        }
        match &mut self.source {
            Source::Replayable(spout) => spout.next_tuple(&mut ReplayOutput {
                output,
                generation: self.generation,
                sequence: &mut self.sequence,
            }),
            Source::Plain(spout) => spout.next_tuple(output),
        }
    }

    fn ack(&mut self, message: MessageId, output: &mut SpoutOutput<'_>) {
        if message.0 & BARRIER_BIT != 0 {
            let generation = (message.0 & !BARRIER_BIT) >> 32;
            let checkpoint = message.0 & 0xffff_ffff;
            let claim = self.claim;
            let books = self.books();
            let source = books.source;
            let followed = books
                .ledger
                .complete(generation, source, claim, checkpoint)
                .map_err(|error| error.to_string())
                .and_then(|view| self.follow(view));
            if let Err(error) = followed {
                self.report(output, error);
            }
            return;
        }
        if let Source::Plain(spout) = &mut self.source {
            spout.ack(message, output);
        }
    }

    fn fail(&mut self, message: MessageId, output: &mut SpoutOutput<'_>) {
        let generation = if message.0 & BARRIER_BIT != 0 {
            (message.0 & !BARRIER_BIT) >> 32
        } else {
            match &mut self.source {
                Source::Plain(spout) => {
                    // It replays its own tuples; only a lost barrier makes a rollback.
                    spout.fail(message, output);
                    return;
                }
                Source::Replayable(_) => message.0 >> SEQUENCE_BITS,
            }
        };
        if generation == self.generation
            && !self.superseded
            && let Err(error) = self.roll_back(generation)
        {
            self.report(output, error);
        }
    }

    fn activate(&mut self) {
        match &mut self.source {
            Source::Replayable(spout) => spout.activate(),
            Source::Plain(spout) => spout.activate(),
        }
    }

    fn deactivate(&mut self) {
        match &mut self.source {
            Source::Replayable(spout) => spout.deactivate(),
            Source::Plain(spout) => spout.deactivate(),
        }
    }

    fn close(&mut self) {
        match &mut self.source {
            Source::Replayable(spout) => spout.close(),
            Source::Plain(spout) => spout.close(),
        }
    }
}
