//! Tuples as bolts see them, and the anchors that tie emitted tuples to spout tuple trees.

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

use crate::ids::{SYSTEM_COMPONENT, StreamId, TaskId};
use crate::topology::{StreamInfo, Topology};
use crate::tuple::TupleRef;

/// What a bolt acks, fails, or anchors new tuples to: the spout tuple trees (root id, edge
/// id) an input tuple belongs to, and the xor of the edge ids of the tuples anchored to it
/// so far.
///
/// Every input [`Tuple`] carries one ([`Tuple::anchor`]). A bolt that settles an input
/// after `execute` returns keeps a clone, anchors its emits to that clone and acks that same
/// clone: the clone carries the edges anchored to it, and acking it reports them.
#[derive(Clone, Default)]
pub struct Anchor {
    pairs: SmallVec<[(u64, u64); 2]>,
    ack_value: Cell<u64>,
    /// The peer workers the tuples anchored to it went to (`tree_workers`).
    child_workers: Cell<u64>,
    settled: Cell<bool>,
    /// The topology-wide id of the stream the input came on, for per-stream counts.
    stream: u16,
}

impl Anchor {
    #[inline(always)]
    fn with_pairs(pairs: SmallVec<[(u64, u64); 2]>, stream: u16) -> Self {
        Self {
            pairs,
            ack_value: Cell::new(0),
            child_workers: Cell::new(0),
            settled: Cell::new(false),
            stream,
        }
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: impl Iterator<Item = (u64, u64)>, stream: u16) -> Self {
        Self::with_pairs(pairs.collect(), stream)
    }

    /// The anchor of an input record's pairs. One pair (a spout's tuple, or a bolt's
    /// child of one input) is the common case, built in place without the generic collect,
    /// which the compiler leaves out of line.
    #[inline(always)]
    fn of_record(anchors: crate::tuple::AnchorPairs<'_>, stream: u16) -> Self {
        let pairs = match anchors.iter().next() {
            Some(pair) if anchors.len() == 1 => SmallVec::from_buf_and_len([pair, (0, 0)], 1),
            _ => anchors.iter().collect(),
        };
        Self::with_pairs(pairs, stream)
    }

    /// The topology-wide id of the stream the input came on.
    #[inline]
    pub(crate) fn stream(&self) -> u16 {
        self.stream
    }

    /// The (root id, edge id) pairs; empty for an untracked tuple.
    #[inline]
    pub fn pairs(&self) -> &[(u64, u64)] {
        &self.pairs
    }

    /// Whether the tuple belongs to no tracked tree (acking it is free and does nothing).
    #[inline]
    pub fn is_untracked(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Whether it has been acked or failed.
    #[inline]
    pub fn is_settled(&self) -> bool {
        self.settled.get()
    }

    /// Adds a new child edge: called once per anchored emit and target task.
    #[inline]
    pub(crate) fn add_child_edge(&self, edge: u64) {
        self.ack_value.set(self.ack_value.get() ^ edge);
    }

    /// Notes the peer workers (bits) an anchored emit went to.
    #[inline]
    pub(crate) fn add_child_workers(&self, workers: u64) {
        self.child_workers.set(self.child_workers.get() | workers);
    }

    /// The peer workers the tuples anchored to it went to.
    #[inline]
    pub(crate) fn child_workers(&self) -> u64 {
        self.child_workers.get()
    }

    /// Marks it settled; returns whether it was not settled before.
    #[inline]
    pub(crate) fn settle(&self) -> bool {
        !self.settled.replace(true)
    }

    /// The value the acker xors in for `edge` when this tuple is acked.
    #[inline]
    pub(crate) fn ack_value_for(&self, edge: u64) -> u64 {
        edge ^ self.ack_value.get()
    }
}

impl fmt::Debug for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anchor")
            .field("pairs", &self.pairs)
            .field("settled", &self.settled.get())
            .finish()
    }
}

impl AsRef<Anchor> for Anchor {
    fn as_ref(&self) -> &Anchor {
        self
    }
}

/// An input tuple: the encoded record viewed in place, where it came from, and its anchor.
///
/// Dereferences to [`TupleRef`] for field access (`get`, `get_u64`, `get_str`, ...).
pub struct Tuple<'a> {
    view: TupleRef<'a>,
    topology: &'a Topology,
    anchor: Anchor,
}

impl<'a> Tuple<'a> {
    #[inline(always)]
    pub(crate) fn new(view: TupleRef<'a>, topology: &'a Topology) -> Self {
        let anchor = if view.is_unanchored() {
            Anchor {
                stream: view.stream_id(),
                ..Anchor::default()
            }
        } else {
            Anchor::of_record(view.anchors(), view.stream_id())
        };
        Self {
            view,
            topology,
            anchor,
        }
    }

    /// The encoded tuple.
    pub fn view(&self) -> &TupleRef<'a> {
        &self.view
    }

    /// The anchor to ack, fail or anchor to.
    pub fn anchor(&self) -> &Anchor {
        &self.anchor
    }

    /// The emitting task.
    pub fn source_task(&self) -> TaskId {
        self.view.source_task()
    }

    /// The emitting component's id (`__system` for ticks).
    pub fn source_component(&self) -> &'a str {
        self.topology
            .component_of(self.source_task())
            .map_or(SYSTEM_COMPONENT, |component| component.id())
    }

    /// The stream's description (name and fields), if the id is known.
    pub fn stream(&self) -> Option<&'a StreamInfo> {
        self.topology.stream(self.stream_id())
    }

    /// The stream's name.
    pub fn source_stream(&self) -> &'a str {
        self.stream().map_or("", |stream| &stream.name)
    }

    /// The stream's id.
    pub fn stream_id(&self) -> StreamId {
        StreamId(self.view.stream_id())
    }

    /// The stream's field names.
    pub fn field_names(&self) -> &'a [String] {
        self.stream().map_or(&[], |stream| &stream.fields)
    }

    /// Whether this is a tick tuple.
    pub fn is_tick(&self) -> bool {
        self.stream_id() == StreamId::TICK
    }

    /// The field called `name`.
    ///
    /// # Errors
    /// [`FieldError::UnknownName`](crate::tuple::FieldError::UnknownName) when the stream has
    /// no such field, or the errors of [`TupleRef::get`].
    pub fn get_by_name(&self, name: &str) -> Result<crate::ValueRef<'a>, crate::tuple::FieldError> {
        let index = self
            .stream()
            .and_then(|stream| stream.field_index(name))
            .ok_or_else(|| crate::tuple::FieldError::UnknownName {
                stream: self.source_stream().to_owned(),
                name: name.to_owned(),
            })?;
        self.view.get(index)
    }
}

impl<'a> Deref for Tuple<'a> {
    type Target = TupleRef<'a>;

    fn deref(&self) -> &TupleRef<'a> {
        &self.view
    }
}

impl AsRef<Anchor> for Tuple<'_> {
    fn as_ref(&self) -> &Anchor {
        &self.anchor
    }
}

impl fmt::Debug for Tuple<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tuple")
            .field("source_component", &self.source_component())
            .field("stream", &self.source_stream())
            .field("view", &self.view)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task_fixture::{OneTask, input};

    fn anchor_of(pairs: &[(u64, u64)]) -> Anchor {
        let fixture = OneTask::new();
        let record = input(1, pairs);
        let view = TupleRef::parse(&record).expect("a well-formed record");
        Tuple::new(view, &fixture.topology).anchor().clone()
    }

    #[test]
    fn an_input_anchor_holds_its_records_pairs() {
        assert!(anchor_of(&[]).is_untracked());
        assert_eq!(anchor_of(&[(7, 70)]).pairs(), [(7, 70)]);
        assert_eq!(anchor_of(&[(7, 70), (8, 80)]).pairs(), [(7, 70), (8, 80)]);
        let three = [(7, 70), (8, 80), (9, 90)];
        assert_eq!(anchor_of(&three).pairs(), three);
    }
}
