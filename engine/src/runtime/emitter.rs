//! The output side of an executor thread: encodes each tuple once, routes it through the
//! emitting task's groupings, and writes one record per target task into the right ring.

use std::fmt;

use super::acker_traffic::{AckerTraffic, Packed};
use super::anchor::Anchor;
use super::outputs::Outputs;
use super::tree_workers::TreeWorkers;
use crate::grouping::router::KeySource;
use crate::grouping::router::{RouteError, Router};
use crate::ids::{StreamId, TaskId};
use crate::tuple::{
    ANCHOR_BYTES, AnchorPairs, EncodeValue, FieldEncoder, HEADER_BYTES, MAX_ANCHORS, fields_len,
    write_header, write_record,
};

/// One output stream of one task: its number, shape and subscriptions.
#[derive(Debug)]
pub(crate) struct StreamRoute {
    pub(crate) id: StreamId,
    pub(crate) name: String,
    pub(crate) field_count: usize,
    pub(crate) direct: bool,
    pub(crate) routers: Vec<Router>,
    /// Whether every task the routers may pick runs in this worker: what lets a spout's
    /// tree on this stream have a named root (see `tree_root`).
    pub(crate) stays_in_worker: bool,
}

/// How an emitted tuple joins tuple trees.
#[derive(Clone, Copy)]
pub(crate) enum Anchoring<'a> {
    /// Untracked.
    None,
    /// A new tree from a spout: one fresh edge per target, their xor accumulated here. For
    /// a `named` root (see `tree_root`) the last target's edge makes the xor the root.
    Root {
        root: u64,
        named: bool,
        edges_xor: &'a std::cell::Cell<u64>,
    },
    /// Children of these anchors: one fresh edge per (anchor, target).
    Anchors(&'a [&'a Anchor]),
    /// Children of one input tuple read in place, `anchors` its pairs: one fresh edge per
    /// target, under each of its roots, their xor accumulated in `edges_xor` for its ack.
    Input {
        anchors: AnchorPairs<'a>,
        edges_xor: &'a std::cell::Cell<u64>,
    },
}

/// Why a tuple could not be emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The task's component declares no stream of this name.
    #[error("component {component:?} declares no stream {stream:?}")]
    UnknownStream {
        /// The emitting component.
        component: String,
        /// The stream named.
        stream: String,
    },
    /// The number of values differs from the stream's declared fields.
    #[error(
        "stream {stream:?} of component {component:?} declares {declared} fields, but {given} values were emitted"
    )]
    FieldCount {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// Fields declared.
        declared: usize,
        /// Values given.
        given: usize,
    },
    /// `emit_direct` on a stream not declared direct, or `emit` on a direct stream.
    #[error("stream {stream:?} of component {component:?} is {}: use {}", if *.direct { "direct" } else { "not direct" }, if *.direct { "emit_direct" } else { "emit" })]
    DirectMismatch {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// Whether the stream is direct.
        direct: bool,
    },
    /// `emit_direct` named a task that does not subscribe to the stream.
    #[error(
        "task {task} does not subscribe to stream {stream:?} of component {component:?} with direct grouping"
    )]
    NotASubscriber {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// The task named.
        task: TaskId,
    },
    /// A custom grouping chose a task that does not subscribe.
    #[error(
        "custom grouping on stream {stream:?} of component {component:?} chose task {task}, which does not subscribe"
    )]
    CustomGroupingChoseStranger {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// The task chosen.
        task: TaskId,
    },
    /// The encoded tuple is larger than a ring record.
    #[error(
        "tuple of {len} bytes on stream {stream:?} of component {component:?} exceeds the largest record of {max} bytes; raise ring_bytes"
    )]
    TooLarge {
        /// The emitting component.
        component: String,
        /// The stream.
        stream: String,
        /// Encoded size.
        len: usize,
        /// Largest record.
        max: usize,
    },
    /// More anchor pairs than a tuple can carry.
    #[error("tuple anchored to {count} tuple trees; at most {MAX_ANCHORS} fit")]
    TooManyAnchors {
        /// Distinct roots.
        count: usize,
    },
}

/// The output side of one executor thread.
pub(crate) struct Emitter {
    /// Where records go: the routes, ports and their backlog.
    pub(crate) outputs: Outputs,
    pub(super) fields: FieldEncoder,
    /// Targets of the last emit that went through [`emit_to_many`](Self::emit_to_many).
    targets: Vec<TaskId>,
    /// Target of the last emit that had one router picking one task.
    single_target: [TaskId; 1],
    /// Whether the last emit's targets are `single_target` rather than `targets`.
    last_was_single: bool,
    pairs: Vec<(u64, u64)>,
    pub(crate) rng: fastrand::Rng,
    /// The ackers and the traffic gathered for them and from them.
    pub(crate) acker_traffic: AckerTraffic,
    /// Scratch for the encoded key fields of fields groupings.
    pub(super) key: Vec<u8>,
    /// The worker bits of trees (see `tree_workers`).
    pub(crate) tree_workers: TreeWorkers,
}

/// The key of the tuple being emitted, encoded only as far as a router asks.
pub(super) struct EmitKey<'a, V> {
    values: &'a [V],
    key: &'a mut Vec<u8>,
    fields: &'a mut FieldEncoder,
    /// Whether `fields` holds all of `values`.
    encoded: bool,
}

/// Most bytes of key fields encoded on the stack for hashing; longer keys go through the
/// emitter's scratch vector.
const STACK_KEY_BYTES: usize = 64;

/// Bytes of a key of one 64-bit field: its tag and the eight bytes.
const WORD_KEY_BYTES: usize = 9;

impl<'a, V> EmitKey<'a, V> {
    /// The key of `values`, with `key` and `fields` as scratch.
    #[inline(always)]
    pub(super) fn new(values: &'a [V], key: &'a mut Vec<u8>, fields: &'a mut FieldEncoder) -> Self {
        Self {
            values,
            key,
            fields,
            encoded: false,
        }
    }
}

impl<V: EncodeValue> KeySource for EmitKey<'_, V> {
    /// Encodes the key fields and hashes them. The values are only ever read by inlined
    /// code here, never handed to a function call, which lets the compiler keep what it
    /// knows about them (their types, when the emitting code built them) for the encoding
    /// that follows.
    #[inline(always)]
    fn key_hash(&mut self, key: &[usize], seed: u64) -> u64 {
        // One 64-bit field (the most common key): with the length a constant, the compiler
        // keeps the nine bytes in registers. Written to a buffer and read back at once as
        // the hash's overlapping 8-byte words, they would stall the read on store
        // forwarding (a fifth of a word-count spout's time).
        if let [index] = *key
            && let Some((tag, payload)) = self.values[index].fixed_word()
        {
            // One 16-byte value covers both of the hash's reads, so each is folded into
            // shifts of it.
            let word = (u128::from(tag) | (u128::from(payload) << 8)).to_le_bytes();
            return xxhash_rust::xxh3::xxh3_64_with_seed(&word[..WORD_KEY_BYTES], seed);
        }
        let mut stack = [0u8; STACK_KEY_BYTES];
        let mut at = 0;
        for &index in key {
            let value = &self.values[index];
            let len = value.encoded_len();
            if len > STACK_KEY_BYTES - at {
                at = usize::MAX;
                break;
            }
            at += value.write_to(&mut stack[at..at + len]);
        }
        if at != usize::MAX {
            return xxhash_rust::xxh3::xxh3_64_with_seed(&stack[..at], seed);
        }
        self.key.clear();
        for &index in key {
            let value = &self.values[index];
            let start = self.key.len();
            self.key
                .resize(start.saturating_add(value.encoded_len()), 0);
            value.write_to(&mut self.key[start..]);
        }
        xxhash_rust::xxh3::xxh3_64_with_seed(self.key, seed)
    }

    fn encoded(&mut self) -> &FieldEncoder {
        if !self.encoded {
            self.fields.encode(self.values);
            self.encoded = true;
        }
        self.fields
    }
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl Emitter {
    pub(crate) fn new(
        outputs: Outputs,
        acker_traffic: AckerTraffic,
        seed: u64,
        tree_workers: TreeWorkers,
    ) -> Self {
        Self {
            outputs,
            fields: FieldEncoder::with_capacity(256),
            targets: Vec::with_capacity(16),
            single_target: [TaskId(0)],
            last_was_single: false,
            pairs: Vec::with_capacity(8),
            rng: fastrand::Rng::with_seed(seed),
            acker_traffic,
            tree_workers,
            key: Vec::with_capacity(64),
        }
    }

    /// Routes `values` through `stream`'s routers and sends a record to every target: written
    /// straight into the target's ring when there is one target, encoded once and copied
    /// when there are several. Returns the number of targets.
    #[inline(always)]
    pub(crate) fn emit<V: EncodeValue>(
        &mut self,
        component: &str,
        source: TaskId,
        stream: &mut StreamRoute,
        anchoring: Anchoring<'_>,
        direct: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        if values.len() != stream.field_count || direct.is_some() != stream.direct {
            return Err(shape_error(
                component,
                stream,
                direct.is_some(),
                values.len(),
            ));
        }
        if let [router] = stream.routers.as_mut_slice() {
            let mut key = EmitKey {
                values,
                key: &mut self.key,
                fields: &mut self.fields,
                encoded: false,
            };
            if let Some(target) = router.route_one(&mut key, direct) {
                let Some(target) = target else {
                    return Err(not_a_subscriber(component, stream, direct));
                };
                self.single_target = [target];
                self.last_was_single = true;
                self.emit_to_one(component, source, stream, anchoring, target, values)?;
                return Ok(1);
            }
        }
        self.emit_to_many(component, source, stream, anchoring, direct, values)
    }

    /// [`emit`](Self::emit) through several routers, or a router that may pick several
    /// targets.
    #[inline(never)]
    fn emit_to_many<V: EncodeValue>(
        &mut self,
        component: &str,
        source: TaskId,
        stream: &mut StreamRoute,
        anchoring: Anchoring<'_>,
        direct_task: Option<TaskId>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        self.last_was_single = false;
        self.targets.clear();
        let mut key = EmitKey {
            values,
            key: &mut self.key,
            fields: &mut self.fields,
            encoded: false,
        };
        for router in &mut stream.routers {
            router
                .route(&mut key, direct_task, &mut self.targets)
                .map_err(|error| match error {
                    RouteError::CustomChoseStranger(task) => {
                        EmitError::CustomGroupingChoseStranger {
                            component: component.to_owned(),
                            stream: stream.name.clone(),
                            task,
                        }
                    }
                })?;
        }
        let encoded = key.encoded;
        if direct_task.is_some() && self.targets.is_empty() && !stream.routers.is_empty() {
            return Err(not_a_subscriber(component, stream, direct_task));
        }
        let len = self.record_len(component, stream, anchoring, values)?;
        let field_count = values.len();
        let target_count = self.targets.len();
        if target_count == 1 {
            let target = self.targets[0];
            self.fill_pairs(anchoring, true);
            let pairs = &self.pairs;
            self.outputs.route_record(target, len, |out| {
                write_record(out, target, source, stream.id.0, pairs, values)
            });
        } else if target_count > 1 {
            if !encoded {
                self.fields.encode(values);
            }
            for index in 0..target_count {
                let target = self.targets[index];
                self.fill_pairs(anchoring, index + 1 == target_count);
                let (pairs, fields) = (&self.pairs, self.fields.bytes());
                let fill = |out: &mut [u8]| {
                    let at = write_header(out, target, source, stream.id.0, field_count, pairs);
                    out[at..].copy_from_slice(fields);
                };
                self.outputs.route_record(target, len, fill);
            }
        }
        Ok(target_count)
    }

    /// Bytes of the record of an emit of `values` with `anchoring`, checked against the
    /// largest record every port takes. For anchors, leaves scratch in `self.pairs`.
    #[inline(always)]
    fn record_len<V: EncodeValue>(
        &mut self,
        component: &str,
        stream: &StreamRoute,
        anchoring: Anchoring<'_>,
        values: &[V],
    ) -> Result<usize, EmitError> {
        let roots = match anchoring {
            Anchoring::None => 0,
            Anchoring::Root { .. } => 1,
            // A record's anchor count is 16 bits: an input never has more than MAX_ANCHORS.
            Anchoring::Input { anchors, .. } => anchors.len(),
            Anchoring::Anchors(anchors) => {
                let distinct = distinct_roots(anchors, &mut self.pairs);
                if distinct > MAX_ANCHORS {
                    return Err(EmitError::TooManyAnchors { count: distinct });
                }
                distinct
            }
        };
        let fields_len = fields_len(values);
        let len = (HEADER_BYTES + roots * ANCHOR_BYTES).saturating_add(fields_len);
        let max_record = self.outputs.max_record();
        if len > max_record || fields_len > u32::MAX as usize {
            return Err(too_large(component, stream, len, max_record));
        }
        Ok(len)
    }

    /// Sends one record to `target`, written straight into its ring.
    #[inline(always)]
    fn emit_to_one<V: EncodeValue>(
        &mut self,
        component: &str,
        source: TaskId,
        stream: &StreamRoute,
        anchoring: Anchoring<'_>,
        target: TaskId,
        values: &[V],
    ) -> Result<(), EmitError> {
        let len = self.record_len(component, stream, anchoring, values)?;
        let stream_id = stream.id.0;
        if let Anchoring::None = anchoring {
            self.outputs.route_record(
                target,
                len,
                #[inline(always)]
                |out| write_record(out, target, source, stream_id, &[], values),
            );
            return Ok(());
        }
        self.fill_pairs(anchoring, true);
        let pairs = &self.pairs;
        self.outputs.route_record(
            target,
            len,
            #[inline(always)]
            |out| write_record(out, target, source, stream_id, pairs, values),
        );
        Ok(())
    }

    /// Builds the anchor pairs of one record of an emit into `self.pairs`; `last` says
    /// whether it is the emit's last record.
    #[inline(always)]
    fn fill_pairs(&mut self, anchoring: Anchoring<'_>, last: bool) {
        match anchoring {
            Anchoring::None => self.pairs.clear(),
            Anchoring::Root {
                root,
                named,
                edges_xor,
            } => {
                self.pairs.clear();
                let edge = if named && last {
                    edges_xor.get() ^ root
                } else {
                    self.rng.u64(..)
                };
                edges_xor.set(edges_xor.get() ^ edge);
                self.pairs.push((root, edge));
            }
            Anchoring::Input { anchors, edges_xor } => {
                self.pairs.clear();
                let edge = self.rng.u64(..);
                edges_xor.set(edges_xor.get() ^ edge);
                self.pairs
                    .extend(anchors.iter().map(|(root, _)| (root, edge)));
            }
            Anchoring::Anchors(anchors) => {
                self.pairs.clear();
                for anchor in anchors {
                    if anchor.is_untracked() {
                        continue;
                    }
                    let edge = self.rng.u64(..);
                    anchor.add_child_edge(edge);
                    for &(root, _) in anchor.pairs() {
                        match self.pairs.iter_mut().find(|(r, _)| *r == root) {
                            Some((_, value)) => *value ^= edge,
                            None => self.pairs.push((root, edge)),
                        }
                    }
                }
            }
        }
    }

    /// Sends `entries` to `target` on system stream `stream`, as few records as the largest
    /// record allows, each with one bytes field holding the entries packed.
    pub(crate) fn send_packed<T: Packed>(
        &mut self,
        target: TaskId,
        source: TaskId,
        stream: StreamId,
        entries: &[T],
    ) {
        /// The bytes field's tag and length.
        const FIELD_HEAD: usize = 5;
        let room = self
            .outputs
            .max_record()
            .saturating_sub(HEADER_BYTES + FIELD_HEAD);
        let per_record = (room / T::BYTES).clamp(1, MAX_PACKED_ENTRIES);
        for chunk in entries.chunks(per_record) {
            let payload = chunk.len() * T::BYTES;
            self.outputs
                .route_record(target, HEADER_BYTES + FIELD_HEAD + payload, |out| {
                    let at = write_header(out, target, source, stream.0, 1, &[]);
                    out[at] = crate::value::ValueType::Bytes as u8;
                    out[at + 1..at + FIELD_HEAD].copy_from_slice(&(payload as u32).to_le_bytes());
                    let entries_out = &mut out[at + FIELD_HEAD..];
                    for (entry, slot) in chunk.iter().zip(entries_out.chunks_exact_mut(T::BYTES)) {
                        entry.write(slot);
                    }
                });
        }
    }

    /// Sends a system record of u64 fields to `target`.
    #[inline]
    pub(crate) fn send_system(
        &mut self,
        target: TaskId,
        source: TaskId,
        stream: StreamId,
        values: &[u64],
    ) {
        let len = HEADER_BYTES + 9 * values.len();
        self.outputs.route_record(target, len, |out| {
            let mut at = write_header(out, target, source, stream.0, values.len(), &[]);
            for value in values {
                out[at] = crate::value::ValueType::U64 as u8;
                out[at + 1..at + 9].copy_from_slice(&value.to_le_bytes());
                at += 9;
            }
        });
    }

    /// Makes the last emit's targets none: after an emit of many tuples, which has no one
    /// set of targets.
    #[inline]
    pub(super) fn forget_last_targets(&mut self) {
        self.last_was_single = false;
        self.targets.clear();
    }

    /// The target tasks of the last emit.
    #[inline]
    pub(crate) fn last_targets(&self) -> &[TaskId] {
        if self.last_was_single {
            &self.single_target
        } else {
            &self.targets
        }
    }

    /// The peer workers (bits) the last emit went to. Called once per tracked emit.
    #[inline]
    pub(crate) fn peers_of_last_targets(&self) -> u64 {
        self.last_targets()
            .iter()
            .fold(0, |bits, &task| bits | self.tree_workers.peer_of(task))
    }

    /// Whether tuple trees are tracked.
    #[inline]
    pub(crate) fn tracking(&self) -> bool {
        self.acker_traffic.tracking()
    }
}

/// Most entries of acker traffic in one record: enough to carry a pass's worth, small
/// enough that one record never holds a ring's batch up for long.
const MAX_PACKED_ENTRIES: usize = 1024;

#[cold]
#[inline(never)]
pub(super) fn shape_error(
    component: &str,
    stream: &StreamRoute,
    direct: bool,
    given: usize,
) -> EmitError {
    if given != stream.field_count {
        EmitError::FieldCount {
            component: component.to_owned(),
            stream: stream.name.clone(),
            declared: stream.field_count,
            given,
        }
    } else {
        EmitError::DirectMismatch {
            component: component.to_owned(),
            stream: stream.name.clone(),
            direct: !direct,
        }
    }
}

#[cold]
#[inline(never)]
fn not_a_subscriber(component: &str, stream: &StreamRoute, task: Option<TaskId>) -> EmitError {
    EmitError::NotASubscriber {
        component: component.to_owned(),
        stream: stream.name.clone(),
        task: task.unwrap_or(TaskId(0)),
    }
}

#[cold]
#[inline(never)]
pub(super) fn too_large(
    component: &str,
    stream: &StreamRoute,
    len: usize,
    max: usize,
) -> EmitError {
    EmitError::TooLarge {
        component: component.to_owned(),
        stream: stream.name.clone(),
        len,
        max: max.min(u32::MAX as usize),
    }
}

/// Number of distinct roots over `anchors`, using `scratch` (cleared) as working space.
fn distinct_roots(anchors: &[&Anchor], scratch: &mut Vec<(u64, u64)>) -> usize {
    match anchors {
        [] => 0,
        [single] => single.pairs().len(),
        _ => {
            scratch.clear();
            for anchor in anchors {
                scratch.extend(anchor.pairs().iter().map(|&(root, _)| (root, 0)));
            }
            scratch.sort_unstable();
            scratch.dedup();
            scratch.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::acker_traffic::{Verdict, unpack};
    use crate::runtime::task_fixture::{emitter, records};
    use crate::tuple::TupleRef;

    #[test]
    fn keys_hash_the_same_whether_built_in_registers_or_encoded() {
        use crate::grouping::hash::{SECOND_CANDIDATE_SEED, multi_key_hash};
        use crate::grouping::router::KeySource;
        use crate::tuple::EncodeValue;
        use crate::value::Value;

        let values = [
            Value::U64(0),
            Value::U64(u64::MAX),
            Value::I64(-7),
            Value::F64(2.5),
            Value::U64(0x0123_4567_89ab_cdef),
            Value::Str("apple"),
        ];
        let (mut scratch, mut fields) = (Vec::new(), FieldEncoder::default());
        for (index, value) in values.iter().enumerate() {
            let mut encoded = Vec::new();
            value.encode_into(&mut encoded);
            for seed in [0, SECOND_CANDIDATE_SEED] {
                let mut key = EmitKey {
                    values: &values,
                    key: &mut scratch,
                    fields: &mut fields,
                    encoded: false,
                };
                assert_eq!(
                    key.key_hash(&[index], seed),
                    multi_key_hash([encoded.as_slice()].into_iter(), seed),
                    "{value:?} with seed {seed}"
                );
            }
        }
    }

    #[test]
    fn records_go_to_their_task_s_route_and_count_when_they_stay_in_the_worker() {
        let (mut emitter, mut local_reader, mut port_reader) = emitter(4096);
        emitter.send_system(TaskId(1), TaskId(9), StreamId::LINK_LOST, &[5]);
        emitter.send_system(TaskId(2), TaskId(9), StreamId::LINK_LOST, &[6]);
        emitter.outputs.local.publish();
        emitter.outputs.publish_all();
        let local = records(&mut local_reader);
        let remote = records(&mut port_reader);
        assert_eq!(local.len(), 1);
        assert_eq!(remote.len(), 1);
        let view = TupleRef::parse(&local[0]).unwrap();
        assert_eq!((view.dest_task(), view.get_u64(0)), (TaskId(1), Ok(5)));
        let view = TupleRef::parse(&remote[0]).unwrap();
        assert_eq!((view.dest_task(), view.get_u64(0)), (TaskId(2), Ok(6)));
        assert_eq!(
            emitter.outputs.records_sent, 2,
            "both rings are this worker's"
        );
    }

    #[test]
    fn packed_entries_are_split_over_records_no_larger_than_the_largest() {
        let (mut emitter, _, mut port_reader) = emitter(2048);
        let verdicts: Vec<Verdict> = (1..=300)
            .map(|root| Verdict {
                root,
                slot: root as u32,
                completed: root % 3 != 0,
            })
            .collect();
        emitter.send_packed(TaskId(2), TaskId(1), StreamId::TREE_VERDICTS, &verdicts);
        let mut read = Vec::new();
        let mut count = 0;
        loop {
            emitter.outputs.publish_all();
            let arrived = records(&mut port_reader);
            if arrived.is_empty() && !emitter.outputs.is_backlogged() {
                break;
            }
            for record in arrived {
                assert!(record.len() <= emitter.outputs.max_record());
                let view = TupleRef::parse(&record).unwrap();
                assert_eq!(view.stream_id(), StreamId::TREE_VERDICTS.0);
                let entries = unpack::<Verdict>(view.get_bytes(0).unwrap()).unwrap();
                read.extend(entries.map(Result::unwrap));
                count += 1;
            }
            emitter.outputs.flush_overflow();
        }
        assert!(
            count > 1,
            "300 verdicts do not fit one record of a 2 KiB ring"
        );
        assert_eq!(read.len(), verdicts.len(), "every entry");
        assert!(read == verdicts, "in order");
    }
}
