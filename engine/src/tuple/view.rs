//! Reading tuples in place: a borrowed view over an encoded record.

use std::fmt;

use super::error::{DecodeError, FieldError};
use super::{ANCHOR_BYTES, HEADER_BYTES, MAX_NESTING, header};
use crate::ids::TaskId;
use crate::value::{ValueRef, ValueType};

#[inline(always)]
pub(super) fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Checks that `record` holds a whole header.
#[inline(always)]
pub(super) fn check_header(record: &[u8]) -> Result<(), DecodeError> {
    if record.len() < HEADER_BYTES {
        return Err(DecodeError::ShortHeader {
            len: record.len(),
            header: HEADER_BYTES,
        });
    }
    Ok(())
}

#[inline(always)]
pub(super) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4-byte slice"))
}

#[inline(always)]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8-byte slice"))
}

/// Decodes the value starting at `offset` of `bytes`; returns it and where the next value
/// starts. `index` only names the field in errors.
#[inline]
pub(crate) fn decode_value(
    bytes: &[u8],
    offset: usize,
    index: usize,
) -> Result<(ValueRef<'_>, usize), DecodeError> {
    decode_nested(bytes, offset, index, 0)
}

/// [`decode_value`] for a value inside `depth` lists and maps: deeper than [`MAX_NESTING`]
/// is an error, so a record cannot make the decoder recurse without bound (and overflow the
/// reading thread's stack) or check the same items over and over.
#[inline]
fn decode_nested(
    bytes: &[u8],
    offset: usize,
    index: usize,
    depth: usize,
) -> Result<(ValueRef<'_>, usize), DecodeError> {
    let Some(&tag) = bytes.get(offset) else {
        return Err(DecodeError::TruncatedField {
            index,
            value_type: ValueType::Null,
            offset,
            len: bytes.len(),
        });
    };
    let value_type =
        ValueType::from_tag(tag).ok_or(DecodeError::UnknownTag { index, offset, tag })?;
    let truncated = || DecodeError::TruncatedField {
        index,
        value_type,
        offset,
        len: bytes.len(),
    };
    let body = offset + 1;
    let fixed = |size: usize| {
        if bytes.len() < body + size {
            Err(truncated())
        } else {
            Ok(body + size)
        }
    };
    Ok(match value_type {
        ValueType::Null => (ValueRef::Null, body),
        ValueType::Bool => match bytes[fixed(1)? - 1] {
            // Only the two encodings the encoder writes: fields grouping hashes the bytes,
            // so one value must have one encoding.
            0 => (ValueRef::Bool(false), body + 1),
            1 => (ValueRef::Bool(true), body + 1),
            byte => {
                return Err(DecodeError::InvalidBool {
                    index,
                    offset,
                    byte,
                });
            }
        },
        ValueType::I64 => {
            let end = fixed(8)?;
            (ValueRef::I64(u64_at(bytes, body) as i64), end)
        }
        ValueType::U64 => {
            let end = fixed(8)?;
            (ValueRef::U64(u64_at(bytes, body)), end)
        }
        ValueType::F64 => {
            let end = fixed(8)?;
            (ValueRef::F64(f64::from_bits(u64_at(bytes, body))), end)
        }
        ValueType::Str | ValueType::Bytes => {
            let start = fixed(4)?;
            let len = u32_at(bytes, body) as usize;
            let end = start
                .checked_add(len)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(truncated)?;
            let payload = &bytes[start..end];
            let value = if value_type == ValueType::Str {
                ValueRef::Str(
                    std::str::from_utf8(payload)
                        .map_err(|_| DecodeError::InvalidUtf8 { index, offset })?,
                )
            } else {
                ValueRef::Bytes(payload)
            };
            (value, end)
        }
        ValueType::List | ValueType::Map => {
            let start = fixed(8)?;
            let len = u32_at(bytes, body) as usize;
            let count = u32_at(bytes, body + 4) as usize;
            let end = start
                .checked_add(len)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(truncated)?;
            let items = count
                .checked_mul(if value_type == ValueType::Map { 2 } else { 1 })
                .ok_or_else(truncated)?;
            if depth >= MAX_NESTING {
                return Err(DecodeError::TooDeep {
                    index,
                    offset,
                    max: MAX_NESTING,
                });
            }
            // Nested values are checked once here, so iterating over them cannot fail.
            let mut at = start;
            for _ in 0..items {
                at = decode_nested(&bytes[..end], at, index, depth + 1)?.1;
            }
            if at != end {
                return Err(truncated());
            }
            let nested = Nested {
                encoded: &bytes[offset..end],
                items: &bytes[start..end],
                count,
            };
            let value = if value_type == ValueType::List {
                ValueRef::List(ListRef(nested))
            } else {
                ValueRef::Map(MapRef(nested))
            };
            (value, end)
        }
    })
}

/// Where the value starting at `offset` ends, checking only that it fits in `bytes` (its
/// contents are checked when it is decoded).
#[inline(always)]
fn skip_value(bytes: &[u8], offset: usize, index: usize) -> Result<usize, DecodeError> {
    let Some(&tag) = bytes.get(offset) else {
        return Err(truncated_field(bytes, offset, index, ValueType::Null as u8));
    };
    let end = match tag {
        2..=4 => offset + 9,
        0 => offset + 1,
        1 => offset + 2,
        5..=8 => return skip_sized(bytes, offset, index, tag),
        _ => return Err(unknown_tag(offset, index, tag)),
    };
    if end > bytes.len() {
        return Err(truncated_field(bytes, offset, index, tag));
    }
    Ok(end)
}

/// [`skip_value`] for the values that carry their length: strings, bytes, lists, maps.
#[inline(never)]
fn skip_sized(bytes: &[u8], offset: usize, index: usize, tag: u8) -> Result<usize, DecodeError> {
    let extra = if tag <= 6 { 5 } else { 9 };
    bytes
        .get(offset + 1..offset + 5)
        .and_then(|len| {
            let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
            offset.checked_add(extra)?.checked_add(len)
        })
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| truncated_field(bytes, offset, index, tag))
}

#[cold]
#[inline(never)]
fn truncated_field(bytes: &[u8], offset: usize, index: usize, tag: u8) -> DecodeError {
    DecodeError::TruncatedField {
        index,
        value_type: ValueType::from_tag(tag).unwrap_or(ValueType::Null),
        offset,
        len: bytes.len(),
    }
}

#[cold]
#[inline(never)]
fn unknown_tag(offset: usize, index: usize, tag: u8) -> DecodeError {
    DecodeError::UnknownTag { index, offset, tag }
}

#[cold]
#[inline(never)]
fn out_of_range(index: usize, count: usize) -> FieldError {
    FieldError::OutOfRange { index, count }
}

/// The encoded items of a list or map, checked when the view was made.
#[derive(Clone, Copy, PartialEq)]
struct Nested<'a> {
    /// The whole value: tag, length, count, items.
    encoded: &'a [u8],
    items: &'a [u8],
    count: usize,
}

impl<'a> Nested<'a> {
    fn values(self) -> impl Iterator<Item = ValueRef<'a>> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let (value, next) = decode_value(self.items, at, 0).ok()?;
            at = next;
            Some(value)
        })
    }
}

/// A list inside a tuple, decoded as it is iterated.
#[derive(Clone, Copy, PartialEq)]
pub struct ListRef<'a>(Nested<'a>);

impl<'a> ListRef<'a> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.count
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.count == 0
    }

    /// The items in order.
    pub fn iter(&self) -> impl Iterator<Item = ValueRef<'a>> + use<'a> {
        self.0.values().take(self.0.count)
    }

    /// The list exactly as encoded (tag included).
    pub fn encoded(&self) -> &'a [u8] {
        self.0.encoded
    }
}

impl fmt::Debug for ListRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A map inside a tuple, decoded as it is iterated.
#[derive(Clone, Copy, PartialEq)]
pub struct MapRef<'a>(Nested<'a>);

impl<'a> MapRef<'a> {
    /// Number of key/value pairs.
    pub fn len(&self) -> usize {
        self.0.count
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.count == 0
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (ValueRef<'a>, ValueRef<'a>)> + use<'a> {
        let mut values = self.0.values();
        std::iter::from_fn(move || Some((values.next()?, values.next()?))).take(self.0.count)
    }

    /// The value of the first pair whose key is the string `key`.
    pub fn get_str_key(&self, key: &str) -> Option<ValueRef<'a>> {
        self.iter()
            .find(|(k, _)| matches!(k, ValueRef::Str(k) if *k == key))
            .map(|(_, value)| value)
    }

    /// The map exactly as encoded (tag included).
    pub fn encoded(&self) -> &'a [u8] {
        self.0.encoded
    }
}

impl fmt::Debug for MapRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A tuple read in place from its encoded record.
///
/// Making the view checks only that the header and anchors fit; each field is decoded, and
/// checked, when it is read. Strings and bytes are lent from the record without copying.
///
/// The view holds the record's bytes up to the end of its own fields: for a tuple of a
/// packed record (see [`members`](Self::members)), the header, the tuples before it and its
/// own fields.
#[derive(Clone, Copy)]
pub struct TupleRef<'a> {
    record: &'a [u8],
    field_count: u16,
    anchor_count: u16,
    fields_start: u32,
}

impl<'a> TupleRef<'a> {
    /// A view of `record`, a record of one tuple, after checking that its header and
    /// anchor pairs fit.
    ///
    /// # Errors
    /// [`DecodeError::ShortHeader`], [`DecodeError::TruncatedAnchors`], or
    /// [`DecodeError::Packed`] for a record of several tuples.
    #[inline]
    pub fn parse(record: &'a [u8]) -> Result<Self, DecodeError> {
        check_header(record)?;
        match usize::from(u16_at(record, header::PACKED)) {
            0 => Self::parse_single(record),
            count => Err(DecodeError::Packed { count }),
        }
    }

    /// [`parse`](Self::parse) of a record whose header was checked and packs no tuples.
    #[inline(always)]
    pub(super) fn parse_single(record: &'a [u8]) -> Result<Self, DecodeError> {
        let anchor_count = u16_at(record, header::ANCHOR_COUNT);
        let anchors = usize::from(anchor_count);
        let fields_start = HEADER_BYTES + anchors * ANCHOR_BYTES;
        if record.len() < fields_start {
            return Err(DecodeError::TruncatedAnchors {
                len: record.len(),
                anchors,
            });
        }
        Ok(Self {
            record,
            field_count: u16_at(record, header::FIELD_COUNT),
            anchor_count,
            fields_start: fields_start as u32,
        })
    }

    /// The view of a tuple of a packed record whose fields start at `fields_start` of
    /// `record`, after its `anchor_count` anchor pairs, and run to its end, under the header
    /// at the start of `record`.
    #[inline(always)]
    pub(super) fn packed_member(record: &'a [u8], fields_start: usize, anchor_count: u16) -> Self {
        Self {
            record,
            field_count: u16_at(record, header::FIELD_COUNT),
            anchor_count,
            fields_start: fields_start as u32,
        }
    }

    /// Where the anchor pairs end and the fields start.
    #[inline(always)]
    fn anchors_start(&self) -> usize {
        self.fields_start as usize - usize::from(self.anchor_count) * ANCHOR_BYTES
    }

    /// Checks every field, and that nothing follows the last one.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let mut at = self.fields_start as usize;
        for index in 0..self.field_count() {
            at = decode_value(self.record, at, index)?.1;
        }
        match self.record.len() - at {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }

    /// The record of this tuple alone: its bytes as they arrived, or, for a tuple of a
    /// packed record, its header and fields made into a record of one tuple.
    pub fn to_record(&self) -> Vec<u8> {
        if u16_at(self.record, header::PACKED) == 0 {
            return self.record.to_vec();
        }
        let own = &self.record[self.anchors_start()..];
        let mut record = Vec::with_capacity(HEADER_BYTES + own.len());
        record.extend_from_slice(&self.record[..HEADER_BYTES]);
        record[header::PACKED..header::PACKED + 2].fill(0);
        record.extend_from_slice(own);
        record
    }

    /// The task this record was sent to.
    #[inline]
    pub fn dest_task(&self) -> TaskId {
        TaskId(u32_at(self.record, header::DEST_TASK))
    }

    /// The task that emitted the tuple.
    #[inline]
    pub fn source_task(&self) -> TaskId {
        TaskId(u32_at(self.record, header::SOURCE_TASK))
    }

    /// The topology-wide id of the stream the tuple was emitted on.
    #[inline]
    pub fn stream_id(&self) -> u16 {
        u16_at(self.record, header::STREAM)
    }

    /// Number of fields.
    #[inline]
    pub fn field_count(&self) -> usize {
        usize::from(self.field_count)
    }

    /// Whether the tuple carries no anchor pair (it belongs to no tracked tree).
    #[inline(always)]
    pub(crate) fn is_unanchored(&self) -> bool {
        self.anchor_count == 0
    }

    /// The (root id, edge id) pairs tying this tuple to spout tuple trees.
    #[inline]
    pub fn anchors(&self) -> AnchorPairs<'a> {
        AnchorPairs {
            bytes: &self.record[self.anchors_start()..self.fields_start as usize],
        }
    }

    /// The encoded fields, back to back.
    #[inline]
    pub fn fields_bytes(&self) -> &'a [u8] {
        &self.record[self.fields_start as usize..]
    }

    /// Offset of field `index` in the record.
    #[inline(always)]
    fn field_offset(&self, index: usize) -> Result<usize, FieldError> {
        if index >= self.field_count() {
            return Err(out_of_range(index, self.field_count()));
        }
        let mut at = self.fields_start as usize;
        for skipped in 0..index {
            at = skip_value(self.record, at, skipped)?;
        }
        Ok(at)
    }

    /// Field `index`.
    ///
    /// # Errors
    /// [`FieldError::OutOfRange`], or a decode error for a malformed record.
    #[inline]
    pub fn get(&self, index: usize) -> Result<ValueRef<'a>, FieldError> {
        let at = self.field_offset(index)?;
        Ok(decode_value(self.record, at, index)?.0)
    }

    /// The encoded bytes (tag and payload) of field `index`: what fields grouping hashes.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    #[inline]
    pub fn field_bytes(&self, index: usize) -> Result<&'a [u8], FieldError> {
        let at = self.field_offset(index)?;
        let end = skip_value(self.record, at, index)?;
        Ok(&self.record[at..end])
    }

    /// The fields in order; a malformed field ends the iteration with its error.
    pub fn fields(&self) -> FieldIter<'a> {
        FieldIter {
            record: self.record,
            at: self.fields_start as usize,
            index: 0,
            count: self.field_count(),
        }
    }

    fn typed<T>(
        &self,
        index: usize,
        expected: ValueType,
        pick: impl FnOnce(ValueRef<'a>) -> Option<T>,
    ) -> Result<T, FieldError> {
        let value = self.get(index)?;
        let actual = value.value_type();
        pick(value).ok_or(FieldError::WrongType {
            index,
            expected,
            actual,
        })
    }

    /// Field `index` as a `u64`.
    ///
    /// # Errors
    /// Out of range, another type, or a malformed record.
    #[inline(always)]
    pub fn get_u64(&self, index: usize) -> Result<u64, FieldError> {
        if let Ok(at) = self.field_offset(index)
            && let Some([tag, word @ ..]) = self.record.get(at..at + 9)
            && *tag == ValueType::U64 as u8
        {
            let word: [u8; 8] = word.try_into().expect("8 bytes");
            return Ok(u64::from_le_bytes(word));
        }
        self.get_u64_slow(index)
    }

    /// [`get_u64`](Self::get_u64) when the field is not a well-formed `u64`: the error.
    #[cold]
    #[inline(never)]
    fn get_u64_slow(&self, index: usize) -> Result<u64, FieldError> {
        self.typed(index, ValueType::U64, |v| match v {
            ValueRef::U64(v) => Some(v),
            _ => None,
        })
    }

    /// Field `index` as an `i64`.
    ///
    /// # Errors
    /// Out of range, another type, or a malformed record.
    #[inline(always)]
    pub fn get_i64(&self, index: usize) -> Result<i64, FieldError> {
        if let Ok(at) = self.field_offset(index)
            && let Some([tag, word @ ..]) = self.record.get(at..at + 9)
            && *tag == ValueType::I64 as u8
        {
            let word: [u8; 8] = word.try_into().expect("8 bytes");
            return Ok(i64::from_le_bytes(word));
        }
        self.get_i64_slow(index)
    }

    /// [`get_i64`](Self::get_i64) when the field is not a well-formed `i64`: the error.
    #[cold]
    #[inline(never)]
    fn get_i64_slow(&self, index: usize) -> Result<i64, FieldError> {
        self.typed(index, ValueType::I64, |v| match v {
            ValueRef::I64(v) => Some(v),
            _ => None,
        })
    }

    /// Field `index` as an `f64`.
    ///
    /// # Errors
    /// Out of range, another type, or a malformed record.
    #[inline(always)]
    pub fn get_f64(&self, index: usize) -> Result<f64, FieldError> {
        if let Ok(at) = self.field_offset(index)
            && let Some([tag, word @ ..]) = self.record.get(at..at + 9)
            && *tag == ValueType::F64 as u8
        {
            let word: [u8; 8] = word.try_into().expect("8 bytes");
            return Ok(f64::from_bits(u64::from_le_bytes(word)));
        }
        self.get_f64_slow(index)
    }

    /// [`get_f64`](Self::get_f64) when the field is not a well-formed `f64`: the error.
    #[cold]
    #[inline(never)]
    fn get_f64_slow(&self, index: usize) -> Result<f64, FieldError> {
        self.typed(index, ValueType::F64, |v| match v {
            ValueRef::F64(v) => Some(v),
            _ => None,
        })
    }

    /// Field `index` as a `bool`.
    ///
    /// # Errors
    /// Out of range, another type, or a malformed record.
    #[inline]
    pub fn get_bool(&self, index: usize) -> Result<bool, FieldError> {
        self.typed(index, ValueType::Bool, |v| match v {
            ValueRef::Bool(v) => Some(v),
            _ => None,
        })
    }

    /// Field `index` as a string borrowed from the record.
    ///
    /// # Errors
    /// Out of range, another type, or a malformed record.
    #[inline]
    pub fn get_str(&self, index: usize) -> Result<&'a str, FieldError> {
        self.typed(index, ValueType::Str, |v| match v {
            ValueRef::Str(v) => Some(v),
            _ => None,
        })
    }

    /// Field `index` as bytes borrowed from the record.
    ///
    /// # Errors
    /// Out of range, another type, or a malformed record.
    #[inline]
    pub fn get_bytes(&self, index: usize) -> Result<&'a [u8], FieldError> {
        self.typed(index, ValueType::Bytes, |v| match v {
            ValueRef::Bytes(v) => Some(v),
            _ => None,
        })
    }
}

impl fmt::Debug for TupleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TupleRef")
            .field("dest_task", &self.dest_task())
            .field("source_task", &self.source_task())
            .field("stream_id", &self.stream_id())
            .field("anchors", &self.anchors())
            .field("fields", &self.fields().collect::<Vec<_>>())
            .finish()
    }
}

/// The fields of a tuple, decoded one by one.
#[derive(Debug, Clone)]
pub struct FieldIter<'a> {
    record: &'a [u8],
    at: usize,
    index: usize,
    count: usize,
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = Result<ValueRef<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        match decode_value(self.record, self.at, self.index) {
            Ok((value, next)) => {
                self.at = next;
                self.index += 1;
                Some(Ok(value))
            }
            Err(error) => {
                self.index = self.count;
                Some(Err(error))
            }
        }
    }
}

/// The anchor pairs of a tuple.
#[derive(Clone, Copy)]
pub struct AnchorPairs<'a> {
    bytes: &'a [u8],
}

impl AnchorPairs<'_> {
    /// Number of pairs.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len() / ANCHOR_BYTES
    }

    /// Whether the tuple is untracked.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The `(root id, edge id)` pairs in order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.bytes
            .chunks_exact(ANCHOR_BYTES)
            .map(|pair| (u64_at(pair, 0), u64_at(pair, 8)))
    }
}

impl fmt::Debug for AnchorPairs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
