//! Emits of many tuples at once, tracked or not: the shape checked once, every tuple routed
//! (and its tree made) in a first pass, then every record written in a second.
//!
//! Split in two passes, each loop does one kind of work: the hashes of the keys, which do
//! not depend on each other, overlap in the processor, and the writes follow each other
//! without the routing's branches in between. The records are those of single emits, so
//! the receiving side cannot tell the two apart.

use super::emitter::{Anchoring, EmitError, EmitKey, Emitter, StreamRoute, shape_error, too_large};
use crate::ids::TaskId;
use crate::tuple::{
    ANCHOR_BYTES, EncodeValue, HEADER_BYTES, fields_len, write_anchors, write_fields, write_record,
};

/// Most tuples routed before their records are written: their targets are kept on the
/// stack.
const ROUTED_AHEAD: usize = crate::runtime::outputs::RUN_MAX;

impl Emitter {
    /// Routes each of `tuples` (untracked, not direct) through `stream`'s routers and sends
    /// its records; returns the number of records sent. Nothing is sent when the stream's
    /// shape does not fit or a tuple is too large.
    pub(crate) fn emit_batch<V: EncodeValue, const N: usize>(
        &mut self,
        component: &str,
        source: TaskId,
        stream: &mut StreamRoute,
        tuples: &[[V; N]],
    ) -> Result<usize, EmitError> {
        self.check_batch(component, stream, tuples, 0)?;
        if !Self::batch_goes_to_one(stream) {
            self.forget_last_targets();
            let mut records = 0;
            for values in tuples {
                records += self.emit(component, source, stream, Anchoring::None, None, values)?;
            }
            self.forget_last_targets();
            return Ok(records);
        }
        self.emit_batch_to_one(component, source, stream, tuples, 0, no_tree)
    }

    /// Whether [`emit_batch_to_one`](Self::emit_batch_to_one) takes `stream`: one router,
    /// which picks one task per tuple.
    pub(crate) fn batch_goes_to_one(stream: &StreamRoute) -> bool {
        matches!(stream.routers.as_slice(), [router] if router.picks_one())
    }

    /// Checks a batch of `tuples`, each record with `roots` anchors, against `stream`: its
    /// shape, and every record's size when the batch is longer than what
    /// [`emit_batch_to_one`](Self::emit_batch_to_one) checks as it routes, or goes
    /// elsewhere.
    pub(crate) fn check_batch<V: EncodeValue, const N: usize>(
        &self,
        component: &str,
        stream: &StreamRoute,
        tuples: &[[V; N]],
        roots: usize,
    ) -> Result<(), EmitError> {
        if N != stream.field_count || stream.direct {
            return Err(shape_error(component, stream, false, N));
        }
        if tuples.len() <= ROUTED_AHEAD && Self::batch_goes_to_one(stream) {
            return Ok(());
        }
        let max_record = self.outputs.max_record();
        for values in tuples {
            if let Err(len) = record_len(values, roots, max_record) {
                return Err(too_large(component, stream, len, max_record));
            }
        }
        Ok(())
    }

    /// [`emit_batch`](Self::emit_batch) through one router that picks one task per tuple
    /// (checked by the caller with [`check_batch`](Self::check_batch)). With `roots` 1,
    /// each record is in the tree whose `(root, edge)` pair `tree` gives it: called once
    /// per tuple, in order, with its index and target, once every record of the batch was
    /// checked and before it is written. With `roots` 0 the records are untracked.
    #[inline(always)]
    pub(crate) fn emit_batch_to_one<V: EncodeValue, const N: usize>(
        &mut self,
        component: &str,
        source: TaskId,
        stream: &mut StreamRoute,
        tuples: &[[V; N]],
        roots: usize,
        mut tree: impl FnMut(&mut Emitter, usize, TaskId) -> (u64, u64),
    ) -> Result<usize, EmitError> {
        let max_record = self.outputs.max_record();
        self.forget_last_targets();
        let stream_id = stream.id.0;
        let router = &mut stream.routers[0];
        let mut targets = [TaskId(0); ROUTED_AHEAD];
        let mut lens = [0u32; ROUTED_AHEAD];
        let mut pairs = [(0u64, 0u64); ROUTED_AHEAD];
        // Every record of a batch of one chunk is checked before the trees are made.
        if tuples.len() <= ROUTED_AHEAD {
            for (len, values) in lens.iter_mut().zip(tuples) {
                *len = match record_len(values, roots, max_record) {
                    Ok(len) => len,
                    Err(len) => return Err(too_large(component, stream, len, max_record)),
                };
            }
        }
        for (chunk_index, chunk) in tuples.chunks(ROUTED_AHEAD).enumerate() {
            let first = chunk_index * ROUTED_AHEAD;
            for (index, values) in chunk.iter().enumerate() {
                let mut key = EmitKey::new(values, &mut self.key, &mut self.fields);
                let target = match router.route_one(&mut key, None) {
                    Some(Some(task)) => task,
                    _ => unreachable!("a router that picks one task picked none"),
                };
                targets[index] = target;
                if tuples.len() > ROUTED_AHEAD {
                    // Checked by `check_batch`.
                    lens[index] = record_len(values, roots, usize::MAX).unwrap_or(u32::MAX);
                }
                if roots != 0 {
                    pairs[index] = tree(self, first + index, target);
                }
            }
            let targets = &targets[..chunk.len()];
            let lens = &lens[..chunk.len()];
            if lens.iter().all(|&len| len == lens[0]) {
                // One length (tuples of plain numbers): each ring's share in one claim.
                // They may share packed records: after the first, each its anchors and
                // fields alone.
                self.outputs.route_run(
                    targets,
                    lens[0] as usize,
                    #[inline(always)]
                    |index, out| {
                        let anchors = record_anchors(roots, &pairs, index);
                        write_record(
                            out,
                            targets[index],
                            source,
                            stream_id,
                            anchors,
                            &chunk[index],
                        )
                    },
                    Some(
                        #[inline(always)]
                        |index: usize, out: &mut [u8]| {
                            let at = write_anchors(out, record_anchors(roots, &pairs, index));
                            write_fields(&chunk[index], &mut out[at..]);
                        },
                    ),
                );
                continue;
            }
            for (index, (&target, values)) in targets.iter().zip(chunk).enumerate() {
                let anchors = record_anchors(roots, &pairs, index);
                self.outputs.route_record(
                    target,
                    lens[index] as usize,
                    #[inline(always)]
                    |out| write_record(out, target, source, stream_id, anchors, values),
                );
            }
        }
        Ok(tuples.len())
    }
}

/// The anchors of record `index` of a chunk: the pair of its tree, or none untracked.
#[inline(always)]
fn record_anchors(roots: usize, pairs: &[(u64, u64)], index: usize) -> &[(u64, u64)] {
    if roots == 0 {
        &[]
    } else {
        std::slice::from_ref(&pairs[index])
    }
}

/// The tree of an untracked batch's records, never asked for.
fn no_tree(_: &mut Emitter, _: usize, _: TaskId) -> (u64, u64) {
    unreachable!("an untracked batch has no trees")
}

/// Bytes of the record of `values` with `roots` anchors; `Err` with them when it is larger
/// than `max_record`.
#[inline(always)]
fn record_len<V: EncodeValue>(values: &[V], roots: usize, max_record: usize) -> Result<u32, usize> {
    let len = (HEADER_BYTES + roots * ANCHOR_BYTES).saturating_add(fields_len(values));
    match u32::try_from(len) {
        Ok(short) if len <= max_record => Ok(short),
        _ => Err(len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grouping::Grouping;
    use crate::grouping::router::Router;
    use crate::runtime::task_fixture::{STREAM, emitter, records};
    use crate::topology::KeyedGrouping;
    use crate::tuple::TupleRef;
    use crate::value::Value;
    use squall_ringbuf::record::RecordConsumer;

    /// A stream of two fields from task 9 to tasks 1 (this thread) and 2 (port 0), through
    /// `groupings`, each keyed by the first field; every router's choices fixed by one seed.
    fn stream(groupings: &[Grouping]) -> StreamRoute {
        let mut rng = fastrand::Rng::with_seed(5);
        let targets = [TaskId(1), TaskId(2)];
        let routers = groupings
            .iter()
            .map(|grouping| {
                let keyed = KeyedGrouping {
                    grouping: grouping.clone(),
                    key: vec![0],
                };
                Router::new(&keyed, TaskId(9), &targets, &targets, &mut rng)
            })
            .collect();
        StreamRoute {
            id: STREAM,
            name: "words".to_owned(),
            field_count: 2,
            direct: false,
            routers,
            stays_in_worker: true,
        }
    }

    /// The records that reached each of the two readers, as (dest, source, values).
    type Sent = [Vec<(TaskId, TaskId, u64, u64)>; 2];

    /// Every record sent to each of the two readers, decoded as (dest, source, values).
    fn sent(emitter: &mut Emitter, readers: &mut [&mut RecordConsumer; 2]) -> Sent {
        emitter.outputs.local.publish();
        emitter.outputs.publish_all();
        readers.each_mut().map(|reader| {
            records(reader)
                .iter()
                .flat_map(|record| TupleRef::members(record).expect("a well-formed record"))
                .map(|view| {
                    assert!(view.anchors().is_empty(), "untracked");
                    (
                        view.dest_task(),
                        view.source_task(),
                        view.get_u64(0).unwrap(),
                        view.get_u64(1).unwrap(),
                    )
                })
                .collect()
        })
    }

    fn tuples(count: u64) -> Vec<[Value<'static>; 2]> {
        (0..count)
            .map(|n| [Value::U64(n * 7919 % 1000), Value::U64(n)])
            .collect()
    }

    /// What a batch sends to each reader, and what single emits of the same tuples send.
    fn batch_and_singles(groupings: &[Grouping], tuples: &[[Value<'_>; 2]]) -> (Sent, Sent) {
        let (mut batch, mut local, mut port) = emitter(1 << 20);
        let mut route = stream(groupings);
        let records = batch
            .emit_batch("words", TaskId(9), &mut route, tuples)
            .unwrap();
        let by_batch = sent(&mut batch, &mut [&mut local, &mut port]);
        assert_eq!(records, by_batch[0].len() + by_batch[1].len());
        assert!(
            batch.last_targets().is_empty(),
            "a batch has no one set of targets"
        );
        let (mut single, mut local, mut port) = emitter(1 << 20);
        let mut route = stream(groupings);
        for values in tuples {
            single
                .emit(
                    "words",
                    TaskId(9),
                    &mut route,
                    Anchoring::None,
                    None,
                    values,
                )
                .unwrap();
        }
        (by_batch, sent(&mut single, &mut [&mut local, &mut port]))
    }

    #[test]
    fn a_batch_sends_the_records_single_emits_send() {
        let tuples = tuples(1000);
        for groupings in [
            vec![Grouping::Fields(vec!["word".into()])],
            vec![Grouping::Shuffle],
            vec![Grouping::Global],
            vec![Grouping::All],
            vec![Grouping::Fields(vec!["word".into()]), Grouping::Shuffle],
            vec![Grouping::PartialKey(vec!["word".into()])],
        ] {
            let (by_batch, by_singles) = batch_and_singles(&groupings, &tuples);
            assert_eq!(by_batch, by_singles, "{groupings:?}");
        }
        let (by_batch, _) = batch_and_singles(&[Grouping::All], &tuples);
        assert_eq!(by_batch.map(|sent| sent.len()), [1000, 1000]);
    }

    #[test]
    fn plain_numbers_are_routed_and_written_as_their_values() {
        let values = tuples(300);
        let plain: Vec<[u64; 2]> = values
            .iter()
            .map(|tuple| {
                tuple.each_ref().map(|value| match value {
                    Value::U64(n) => *n,
                    other => unreachable!("{other:?}"),
                })
            })
            .collect();
        for (groupings, records) in [
            (vec![Grouping::Fields(vec!["word".into()])], 300),
            (vec![Grouping::Shuffle], 300),
            (vec![Grouping::All], 600),
        ] {
            let sent_by = |tuples: &dyn Fn(&mut Emitter, &mut StreamRoute) -> usize| {
                let (mut emitter, mut local, mut port) = emitter(1 << 20);
                let mut route = stream(&groupings);
                assert_eq!(tuples(&mut emitter, &mut route), records);
                sent(&mut emitter, &mut [&mut local, &mut port])
            };
            let by_plain = sent_by(&|emitter, route| {
                emitter
                    .emit_batch("words", TaskId(9), route, &plain)
                    .unwrap()
            });
            let by_values = sent_by(&|emitter, route| {
                emitter
                    .emit_batch("words", TaskId(9), route, &values)
                    .unwrap()
            });
            assert_eq!(by_plain, by_values, "{groupings:?}");
        }
    }

    #[test]
    fn a_batch_of_the_wrong_shape_or_size_sends_nothing() {
        let (mut emitter, mut local, mut port) = emitter(4096);
        let mut route = stream(&[Grouping::Shuffle]);
        let one_field = [[Value::U64(1)]; 3];
        assert!(matches!(
            emitter.emit_batch("words", TaskId(9), &mut route, &one_field),
            Err(EmitError::FieldCount {
                declared: 2,
                given: 1,
                ..
            })
        ));
        let big = vec![7u8; 8192];
        for count in [3, ROUTED_AHEAD + 3] {
            let mut tuples = vec![[Value::U64(1), Value::U64(2)]; count];
            tuples[count - 2] = [Value::U64(1), Value::Bytes(&big)];
            assert!(matches!(
                emitter.emit_batch("words", TaskId(9), &mut route, &tuples),
                Err(EmitError::TooLarge { .. })
            ));
        }
        route.direct = true;
        assert!(matches!(
            emitter.emit_batch(
                "words",
                TaskId(9),
                &mut route,
                &[[Value::U64(1), Value::U64(2)]]
            ),
            Err(EmitError::DirectMismatch { direct: true, .. })
        ));
        assert_eq!(
            sent(&mut emitter, &mut [&mut local, &mut port]),
            [vec![], vec![]]
        );
    }
}
