//! Records that pack several tuples of one length, for the same task, stream and source,
//! after one header: each tuple its anchor pairs (as many as the header announces), then
//! its fields.
//!
//! A batch emit of tuples of plain numbers writes a run of records that differ only in
//! their anchors and fields. Packed, the run pays for one header and one ring record: an
//! untracked `[u64; 2]` tuple takes 18 bytes of ring instead of 48, and the reader walks
//! the run without parsing a header per tuple. Packing is for the rings inside a worker;
//! every reader accepts packed records wherever they come from, and checks them as it reads
//! them.

use super::encode::{EncodeValue, fields_len, write_anchors, write_fields, write_header};
use super::error::DecodeError;
use super::view::{check_header, u16_at, u32_at};
use super::{ANCHOR_BYTES, HEADER_BYTES, TupleRef, header};
use crate::ids::TaskId;

/// The tuples of a record, in order: the one tuple of a plain record, or each tuple of a
/// packed one.
#[derive(Debug, Clone)]
pub struct Members<'a> {
    record: &'a [u8],
    /// A plain record's view, taken by the first call to `next`.
    single: Option<TupleRef<'a>>,
    /// The start of the next packed tuple, the length of each, and the anchor pairs each
    /// carries.
    next_start: usize,
    member_len: usize,
    anchor_count: u16,
    remaining: usize,
}

impl<'a> TupleRef<'a> {
    /// The tuples of `record`, a plain record or a packed one, after checking its header:
    /// the anchor pairs of a plain record fit; a packed one's bytes split evenly into its
    /// tuples, each long enough for its anchor pairs. Each tuple's fields are checked as
    /// they are read.
    ///
    /// # Errors
    /// [`DecodeError::ShortHeader`], [`DecodeError::TruncatedAnchors`] or
    /// [`DecodeError::PackedUneven`].
    #[inline(always)]
    pub fn members(record: &'a [u8]) -> Result<Members<'a>, DecodeError> {
        check_header(record)?;
        let count = usize::from(u16_at(record, header::PACKED));
        if count == 0 {
            return Ok(Members {
                record,
                single: Some(Self::parse_single(record)?),
                next_start: 0,
                member_len: 0,
                anchor_count: 0,
                remaining: 1,
            });
        }
        let anchor_count = u16_at(record, header::ANCHOR_COUNT);
        let len = record.len() - HEADER_BYTES;
        if !len.is_multiple_of(count) || len / count < usize::from(anchor_count) * ANCHOR_BYTES {
            return Err(DecodeError::PackedUneven { count, len });
        }
        Ok(Members {
            record,
            single: None,
            next_start: HEADER_BYTES,
            member_len: len / count,
            anchor_count,
            remaining: count,
        })
    }
}

impl<'a> Members<'a> {
    /// The task every tuple of the record goes to.
    #[inline(always)]
    pub fn dest_task(&self) -> TaskId {
        TaskId(u32_at(self.record, header::DEST_TASK))
    }

    /// The stream every tuple of the record was emitted on.
    #[inline(always)]
    pub fn stream_id(&self) -> u16 {
        u16_at(self.record, header::STREAM)
    }

    /// Whether the record packs several tuples (or might: one packed tuple counts too).
    #[inline(always)]
    pub fn is_packed(&self) -> bool {
        u16_at(self.record, header::PACKED) != 0
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = TupleRef<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<TupleRef<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if let Some(single) = self.single.take() {
            return Some(single);
        }
        let fields_start = self.next_start + usize::from(self.anchor_count) * ANCHOR_BYTES;
        self.next_start += self.member_len;
        Some(TupleRef::packed_member(
            &self.record[..self.next_start],
            fields_start,
            self.anchor_count,
        ))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Members<'_> {}

/// Marks the record written at the start of `out` as packing `count` tuples (at least 1,
/// at most `u16::MAX`).
#[inline(always)]
pub(crate) fn mark_packed(out: &mut [u8], count: usize) {
    debug_assert!((1..=usize::from(u16::MAX)).contains(&count));
    out[header::PACKED..header::PACKED + 2].copy_from_slice(&(count as u16).to_le_bytes());
}

/// Encodes `tuples`, each with its anchor pairs from `anchors` (one list per tuple, all as
/// long; or none at all, untracked) and each of the same encoded length, into `out`
/// (cleared first) as one packed record: the simple path for tests and tools.
///
/// # Panics
/// If `tuples` is empty or longer than `u16::MAX`, their encoded lengths or anchor counts
/// differ, or `anchors` is neither empty nor one list per tuple.
pub fn encode_packed_record<V: EncodeValue, T: AsRef<[V]>>(
    out: &mut Vec<u8>,
    dest_task: TaskId,
    source_task: TaskId,
    stream: u16,
    tuples: &[T],
    anchors: &[&[(u64, u64)]],
) {
    let first = tuples
        .first()
        .expect("a packed record holds a tuple")
        .as_ref();
    let fields = fields_len(first);
    assert!(
        tuples
            .iter()
            .all(|tuple| fields_len(tuple.as_ref()) == fields),
        "the tuples of a packed record have one encoded length"
    );
    let pairs = anchors.first().map_or(0, |pairs| pairs.len());
    assert!(
        anchors.is_empty()
            || (anchors.len() == tuples.len() && anchors.iter().all(|a| a.len() == pairs)),
        "one list of anchor pairs per tuple, all as long"
    );
    let member_len = pairs * ANCHOR_BYTES + fields;
    out.clear();
    out.resize(HEADER_BYTES + member_len * tuples.len(), 0);
    let first_anchors = anchors.first().copied().unwrap_or_default();
    write_header(
        out,
        dest_task,
        source_task,
        stream,
        first.len(),
        first_anchors,
    );
    for (index, tuple) in tuples.iter().enumerate() {
        let start = HEADER_BYTES + index * member_len;
        let own = anchors.get(index).copied().unwrap_or_default();
        let at = start + write_anchors(&mut out[start..], own);
        write_fields(tuple.as_ref(), &mut out[at..at + fields]);
    }
    mark_packed(out, tuples.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::encode_record;
    use crate::value::Value;

    fn packed(tuples: &[[u64; 2]]) -> Vec<u8> {
        let mut record = Vec::new();
        encode_packed_record(&mut record, TaskId(7), TaskId(3), 16, tuples, &[]);
        record
    }

    #[test]
    fn a_packed_record_reads_as_its_tuples_in_order() {
        let record = packed(&[[1, 10], [2, 20], [3, 30]]);
        let members = TupleRef::members(&record).unwrap();
        assert_eq!((members.dest_task(), members.stream_id()), (TaskId(7), 16));
        assert!(members.is_packed());
        assert_eq!(members.len(), 3);
        let read: Vec<(u64, u64)> = members
            .map(|tuple| {
                assert_eq!(tuple.source_task(), TaskId(3));
                assert!(tuple.anchors().is_empty());
                tuple.validate().unwrap();
                (tuple.get_u64(0).unwrap(), tuple.get_u64(1).unwrap())
            })
            .collect();
        assert_eq!(read, [(1, 10), (2, 20), (3, 30)]);
    }

    #[test]
    fn each_tuple_of_a_packed_record_carries_its_own_anchor_pairs() {
        let mut record = Vec::new();
        let anchors: [&[(u64, u64)]; 2] = [&[(1, 2)], &[(3, 4)]];
        encode_packed_record(
            &mut record,
            TaskId(7),
            TaskId(3),
            16,
            &[[5u64], [6]],
            &anchors,
        );
        let tuples: Vec<_> = TupleRef::members(&record).unwrap().collect();
        assert_eq!(tuples[0].anchors().iter().collect::<Vec<_>>(), [(1, 2)]);
        assert_eq!(tuples[1].anchors().iter().collect::<Vec<_>>(), [(3, 4)]);
        assert_eq!((tuples[0].get_u64(0), tuples[1].get_u64(0)), (Ok(5), Ok(6)));
        let mut alone = Vec::new();
        encode_record(&mut alone, TaskId(7), TaskId(3), 16, &[(3, 4)], &[6u64]);
        assert_eq!(tuples[1].to_record(), alone);
    }

    #[test]
    fn a_plain_record_is_one_member() {
        let mut record = Vec::new();
        encode_record(
            &mut record,
            TaskId(7),
            TaskId(3),
            16,
            &[(5, 6)],
            &[Value::U64(9)],
        );
        let mut members = TupleRef::members(&record).unwrap();
        assert!(!members.is_packed());
        assert_eq!(members.len(), 1);
        let tuple = members.next().unwrap();
        assert_eq!(tuple.anchors().iter().collect::<Vec<_>>(), [(5, 6)]);
        assert_eq!(tuple.get_u64(0), Ok(9));
        assert!(members.next().is_none());
        assert_eq!(tuple.to_record(), record);
    }

    #[test]
    fn a_packed_tuple_becomes_a_record_of_its_own() {
        let record = packed(&[[1, 10], [2, 20]]);
        let second = TupleRef::members(&record).unwrap().nth(1).unwrap();
        let mut alone = Vec::new();
        encode_record(&mut alone, TaskId(7), TaskId(3), 16, &[], &[2u64, 20]);
        assert_eq!(second.to_record(), alone);
        assert_eq!(TupleRef::parse(&alone).unwrap().get_u64(1), Ok(20));
    }

    #[test]
    fn a_packed_record_is_not_read_as_one_tuple() {
        let record = packed(&[[1, 10], [2, 20]]);
        assert_eq!(
            TupleRef::parse(&record).unwrap_err(),
            DecodeError::Packed { count: 2 }
        );
    }

    #[test]
    fn malformed_packed_records_are_refused_with_what_is_wrong() {
        // Each tuple's 18 bytes cannot hold the two anchor pairs the header announces.
        let mut anchored = packed(&[[1, 10], [2, 20]]);
        anchored[header::ANCHOR_COUNT] = 2;
        assert_eq!(
            TupleRef::members(&anchored).unwrap_err(),
            DecodeError::PackedUneven { count: 2, len: 36 }
        );
        let mut uneven = packed(&[[1, 10], [2, 20]]);
        uneven.push(0);
        assert_eq!(
            TupleRef::members(&uneven).unwrap_err(),
            DecodeError::PackedUneven { count: 2, len: 37 }
        );
        assert!(matches!(
            TupleRef::members(&uneven[..9]),
            Err(DecodeError::ShortHeader { len: 9, .. })
        ));
        // Fields that lie about their length fail as they are read, inside their own tuple.
        let mut lying = packed(&[[1, 10], [2, 20]]);
        lying[HEADER_BYTES] = 5;
        let first = TupleRef::members(&lying).unwrap().next().unwrap();
        assert!(first.get_u64(0).is_err());
        assert!(first.validate().is_err());
    }
}
