//! A reference spout with at-least-once delivery: it keeps every message until its tuple tree
//! completes and emits it again when the tree fails or times out.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{MessageId, OutputDeclarer, OwnedValue, Spout, SpoutOutput};

/// Where a [`ReplayingSpout`] gets new messages: `None` when there is nothing right now.
pub type MessageSource = Box<dyn FnMut() -> Option<Vec<OwnedValue>> + Send>;

/// What a [`ReplayingSpout`] did, shared with whoever watches it.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Distinct messages taken from the source.
    pub messages: AtomicU64,
    /// Emissions, first ones and replays.
    pub emitted: AtomicU64,
    /// Emissions that were replays.
    pub replayed: AtomicU64,
    /// Trees completed (each message is acked once, by its last emission).
    pub acked: AtomicU64,
    /// Trees failed or timed out.
    pub failed: AtomicU64,
    /// `ack` or `fail` for a message that was not in flight: must stay zero.
    pub unexpected: AtomicU64,
}

impl ReplayStats {
    /// Messages taken from the source that are not yet acked.
    pub fn outstanding(&self) -> u64 {
        self.messages.load(Ordering::SeqCst) - self.acked.load(Ordering::SeqCst)
    }
}

/// Emits messages from a source on its default stream, each tracked; keeps each until it is
/// acked and emits it again (same message id, same values) after a fail or timeout.
///
/// Message ids are assigned in order from 0, so a sink can tell which messages it saw.
pub struct ReplayingSpout {
    fields: Vec<String>,
    source: MessageSource,
    next_id: u64,
    in_flight: BTreeMap<u64, Vec<OwnedValue>>,
    to_replay: VecDeque<u64>,
    stats: Arc<ReplayStats>,
}

impl fmt::Debug for ReplayingSpout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayingSpout")
            .field("fields", &self.fields)
            .field("in_flight", &self.in_flight.len())
            .field("to_replay", &self.to_replay.len())
            .finish_non_exhaustive()
    }
}

impl ReplayingSpout {
    /// A spout declaring `fields` on its default stream and emitting what `source` gives.
    pub fn new(fields: &[&str], source: MessageSource, stats: Arc<ReplayStats>) -> Self {
        Self {
            fields: fields.iter().map(|field| (*field).to_owned()).collect(),
            source,
            next_id: 0,
            in_flight: BTreeMap::new(),
            to_replay: VecDeque::new(),
            stats,
        }
    }

    /// A spout of `count` messages `[n]`, n from 0, on field `field`.
    pub fn counting(field: &str, count: u64, stats: Arc<ReplayStats>) -> Self {
        let mut next = 0;
        let source: MessageSource = Box::new(move || {
            (next < count).then(|| {
                next += 1;
                vec![OwnedValue::U64(next - 1)]
            })
        });
        Self::new(&[field], source, stats)
    }

    fn emit(&mut self, id: u64, output: &mut SpoutOutput<'_>) {
        let values = &self.in_flight[&id];
        if let Err(error) =
            output.try_emit(crate::DEFAULT_STREAM, Some(MessageId(id)), None, values)
        {
            output.report_error(format!("message {id} cannot be emitted: {error}"));
            return;
        }
        self.stats.emitted.fetch_add(1, Ordering::SeqCst);
    }
}

impl Spout for ReplayingSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        let fields: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        declarer.declare(&fields);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if let Some(id) = self.to_replay.pop_front() {
            self.stats.replayed.fetch_add(1, Ordering::SeqCst);
            self.emit(id, output);
            return;
        }
        let Some(values) = (self.source)() else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        self.stats.messages.fetch_add(1, Ordering::SeqCst);
        self.in_flight.insert(id, values);
        self.emit(id, output);
    }

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if self.in_flight.remove(&message.0).is_some() {
            self.stats.acked.fetch_add(1, Ordering::SeqCst);
        } else {
            self.stats.unexpected.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if self.in_flight.contains_key(&message.0) {
            self.stats.failed.fetch_add(1, Ordering::SeqCst);
            self.to_replay.push_back(message.0);
        } else {
            self.stats.unexpected.fetch_add(1, Ordering::SeqCst);
        }
    }
}
