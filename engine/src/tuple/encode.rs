//! Writing tuples: header and anchors, then each field value, straight into the memory the
//! record lives in (a ring slot, or a reusable buffer when one tuple goes to several tasks).

use super::{ANCHOR_BYTES, HEADER_BYTES, header};
use crate::ids::TaskId;
use crate::value::{OwnedValue, Value, ValueRef, ValueType};

/// A value that can be written in the tuple encoding.
///
/// Implemented by [`Value`] (what tasks emit), [`OwnedValue`] and [`ValueRef`] (so a bolt can
/// pass on what it read).
pub trait EncodeValue {
    /// The value's type.
    fn value_type(&self) -> ValueType;

    /// Bytes of its encoding (tag included); saturates at `usize::MAX`.
    fn encoded_len(&self) -> usize;

    /// Writes its encoding at the start of `out` and returns [`encoded_len`] bytes.
    ///
    /// # Panics
    /// When `out` is shorter than [`encoded_len`], or a length does not fit the encoding's
    /// 32-bit length fields (callers check [`encoded_len`] against the record limit first).
    ///
    /// [`encoded_len`]: EncodeValue::encoded_len
    fn write_to(&self, out: &mut [u8]) -> usize;

    /// The tag and the payload of a value encoded as a tag and eight bytes (`i64`, `u64`,
    /// `f64`); `None` for any other. Lets a caller build such an encoding in registers.
    #[inline(always)]
    fn fixed_word(&self) -> Option<(u8, u64)> {
        None
    }

    /// Appends the encoding to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.encoded_len(), 0);
        self.write_to(&mut out[start..]);
    }
}

/// Bytes of the tag plus a fixed payload.
const fn fixed(payload: usize) -> usize {
    1 + payload
}

#[inline(always)]
fn write_u32(out: &mut [u8], at: usize, value: usize) {
    let value = u32::try_from(value).unwrap_or_else(|_| {
        panic!("a tuple value of {value} bytes exceeds the encoding's 4 GiB limit")
    });
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[inline(always)]
fn write_bytes(out: &mut [u8], tag: ValueType, bytes: &[u8]) -> usize {
    out[0] = tag as u8;
    write_u32(out, 1, bytes.len());
    out[5..5 + bytes.len()].copy_from_slice(bytes);
    5 + bytes.len()
}

#[inline(always)]
fn write_u64(out: &mut [u8], tag: ValueType, value: u64) -> usize {
    let out = &mut out[..9];
    out[0] = tag as u8;
    out[1..].copy_from_slice(&value.to_le_bytes());
    9
}

/// Writes a list or map header (tag, items' byte length, count) and returns where the items
/// start.
#[inline]
fn write_nested_header(out: &mut [u8], tag: ValueType, items_len: usize, count: usize) -> usize {
    out[0] = tag as u8;
    write_u32(out, 1, items_len);
    write_u32(out, 5, count);
    9
}

macro_rules! impl_encode_value {
    ($Type:ident $(<$lt:lifetime>)?, $list_len:expr, $write_list:expr) => {
        impl$(<$lt>)? EncodeValue for $Type$(<$lt>)? {
            #[inline]
            fn value_type(&self) -> ValueType {
                $Type::value_type(self)
            }

            #[inline(always)]
            fn encoded_len(&self) -> usize {
                match self {
                    $Type::Null => fixed(0),
                    $Type::Bool(_) => fixed(1),
                    $Type::I64(_) | $Type::U64(_) | $Type::F64(_) => fixed(8),
                    $Type::Str(v) => 5usize.saturating_add(v.len()),
                    $Type::Bytes(v) => 5usize.saturating_add(v.len()),
                    nested => $list_len(nested),
                }
            }

            #[inline(always)]
            fn fixed_word(&self) -> Option<(u8, u64)> {
                match self {
                    $Type::I64(v) => Some((ValueType::I64 as u8, *v as u64)),
                    $Type::U64(v) => Some((ValueType::U64 as u8, *v)),
                    $Type::F64(v) => Some((ValueType::F64 as u8, v.to_bits())),
                    _ => None,
                }
            }

            #[inline(always)]
            fn write_to(&self, out: &mut [u8]) -> usize {
                match self {
                    $Type::Null => {
                        out[0] = ValueType::Null as u8;
                        1
                    }
                    $Type::Bool(v) => {
                        out[..2].copy_from_slice(&[ValueType::Bool as u8, u8::from(*v)]);
                        2
                    }
                    $Type::I64(v) => write_u64(out, ValueType::I64, *v as u64),
                    $Type::U64(v) => write_u64(out, ValueType::U64, *v),
                    $Type::F64(v) => write_u64(out, ValueType::F64, v.to_bits()),
                    $Type::Str(v) => write_bytes(out, ValueType::Str, v.as_bytes()),
                    $Type::Bytes(v) => write_bytes(out, ValueType::Bytes, v),
                    nested => $write_list(nested, out),
                }
            }
        }
    };
}

/// Plain numbers encode as the value of their type would (`u64` as [`Value::U64`], and so
/// on), with the type known at compile time: a batch of `[u64; N]` tuples has records of one
/// constant length, measured without a look at any value and written with two stores per
/// field, where a batch of [`Value`]s checks each value's type first.
macro_rules! impl_encode_fixed {
    ($($Type:ty => $tag:ident, $bits:expr;)*) => {$(
        impl EncodeValue for $Type {
            #[inline(always)]
            fn value_type(&self) -> ValueType {
                ValueType::$tag
            }

            #[inline(always)]
            fn encoded_len(&self) -> usize {
                fixed(8)
            }

            #[inline(always)]
            fn fixed_word(&self) -> Option<(u8, u64)> {
                Some((ValueType::$tag as u8, $bits(*self)))
            }

            #[inline(always)]
            fn write_to(&self, out: &mut [u8]) -> usize {
                write_u64(out, ValueType::$tag, $bits(*self))
            }
        }
    )*};
}

impl_encode_fixed! {
    u64 => U64, |v: u64| v;
    i64 => I64, |v: i64| v as u64;
    f64 => F64, f64::to_bits;
}

/// Bytes of a list or map whose items (and, for maps, keys) are `parts`.
#[inline(never)]
fn nested_len<'a, V: EncodeValue + 'a>(parts: impl Iterator<Item = &'a V>) -> usize {
    parts.fold(9usize, |sum, part| sum.saturating_add(part.encoded_len()))
}

/// Writes a list or map of `count` entries whose encoded parts are `parts`.
#[inline(never)]
fn write_nested<'a, V: EncodeValue + 'a>(
    out: &mut [u8],
    tag: ValueType,
    count: usize,
    total: usize,
    parts: impl Iterator<Item = &'a V>,
) -> usize {
    let mut at = write_nested_header(out, tag, total - 9, count);
    for part in parts {
        at += part.write_to(&mut out[at..]);
    }
    at
}

impl_encode_value!(
    Value<'a>,
    |nested: &Value<'_>| match nested {
        Value::List(items) => nested_len(items.iter()),
        Value::Map(pairs) => nested_len(pairs.iter().flat_map(|(k, v)| [k, v])),
        _ => unreachable!("scalars are measured above"),
    },
    |nested: &Value<'_>, out: &mut [u8]| match nested {
        Value::List(items) => write_nested(
            out,
            ValueType::List,
            items.len(),
            nested.encoded_len(),
            items.iter()
        ),
        Value::Map(pairs) => write_nested(
            out,
            ValueType::Map,
            pairs.len(),
            nested.encoded_len(),
            pairs.iter().flat_map(|(k, v)| [k, v]),
        ),
        _ => unreachable!("scalars are written above"),
    }
);

impl_encode_value!(
    OwnedValue,
    |nested: &OwnedValue| match nested {
        OwnedValue::List(items) => nested_len(items.iter()),
        OwnedValue::Map(pairs) => nested_len(pairs.iter().flat_map(|(k, v)| [k, v])),
        _ => unreachable!("scalars are measured above"),
    },
    |nested: &OwnedValue, out: &mut [u8]| match nested {
        OwnedValue::List(items) => write_nested(
            out,
            ValueType::List,
            items.len(),
            nested.encoded_len(),
            items.iter()
        ),
        OwnedValue::Map(pairs) => write_nested(
            out,
            ValueType::Map,
            pairs.len(),
            nested.encoded_len(),
            pairs.iter().flat_map(|(k, v)| [k, v]),
        ),
        _ => unreachable!("scalars are written above"),
    }
);

impl_encode_value!(
    ValueRef<'a>,
    // A nested value read from a tuple is already encoded: it is copied as it is.
    |nested: &ValueRef<'_>| match nested {
        ValueRef::List(list) => list.encoded().len(),
        ValueRef::Map(map) => map.encoded().len(),
        _ => unreachable!("scalars are measured above"),
    },
    |nested: &ValueRef<'_>, out: &mut [u8]| {
        let encoded = match nested {
            ValueRef::List(list) => list.encoded(),
            ValueRef::Map(map) => map.encoded(),
            _ => unreachable!("scalars are written above"),
        };
        out[..encoded.len()].copy_from_slice(encoded);
        encoded.len()
    }
);

/// Bytes of the encoded fields `values`, saturating.
#[inline]
pub fn fields_len<V: EncodeValue>(values: &[V]) -> usize {
    values
        .iter()
        .fold(0usize, |sum, value| sum.saturating_add(value.encoded_len()))
}

/// Writes `values` back to back at the start of `out`; returns the bytes written.
#[inline(always)]
pub fn write_fields<V: EncodeValue>(values: &[V], out: &mut [u8]) -> usize {
    let mut at = 0;
    for value in values {
        at += value.write_to(&mut out[at..]);
    }
    at
}

/// The encoded fields of one tuple, in a buffer reused from tuple to tuple.
///
/// After [`encode`](Self::encode) it holds the fields' bytes exactly as they follow the
/// anchors in a record, and where each field starts, so groupings can hash the bytes of key
/// fields without decoding anything. Once its buffers have grown to the largest tuple seen,
/// encoding allocates nothing.
#[derive(Debug, Default)]
pub struct FieldEncoder {
    bytes: Vec<u8>,
    /// Start of each field in `bytes`, then the end of the last one.
    bounds: Vec<u32>,
}

impl FieldEncoder {
    /// An empty encoder with room for tuples of about `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            bounds: Vec::with_capacity(16),
        }
    }

    /// Encodes `values`, replacing what the encoder held.
    #[inline]
    pub fn encode<V: EncodeValue>(&mut self, values: &[V]) {
        self.bytes.clear();
        self.bounds.clear();
        for value in values {
            self.bounds.push(self.bytes.len() as u32);
            value.encode_into(&mut self.bytes);
        }
        self.bounds.push(self.bytes.len() as u32);
    }

    /// The encoded fields, back to back.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of fields encoded.
    #[inline]
    pub fn field_count(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }

    /// The encoded bytes (tag and payload) of field `index`.
    ///
    /// # Panics
    /// If `index` is not below [`field_count`](Self::field_count).
    #[inline]
    pub fn field(&self, index: usize) -> &[u8] {
        &self.bytes[self.bounds[index] as usize..self.bounds[index + 1] as usize]
    }

    /// Field `index`, decoded.
    ///
    /// # Panics
    /// If `index` is not below [`field_count`](Self::field_count).
    pub fn value(&self, index: usize) -> ValueRef<'_> {
        let (value, _) = super::view::decode_value(self.field(index), 0, index)
            .expect("the encoder wrote this field itself");
        value
    }

    /// Bytes of a whole record carrying these fields and `anchors` anchor pairs.
    #[inline]
    pub fn record_len(&self, anchors: usize) -> usize {
        HEADER_BYTES + anchors * ANCHOR_BYTES + self.bytes.len()
    }
}

/// Writes a record's header and anchor pairs at the start of `out` and returns where the
/// fields go.
///
/// # Panics
/// If `out` is shorter than the header and anchors, or a count exceeds its 16-bit field
/// (the emit path checks both before calling).
#[inline(always)]
pub(crate) fn write_header(
    out: &mut [u8],
    dest_task: TaskId,
    source_task: TaskId,
    stream: u16,
    field_count: usize,
    anchors: &[(u64, u64)],
) -> usize {
    let mut head = [0u8; HEADER_BYTES];
    head[header::DEST_TASK..header::DEST_TASK + 4].copy_from_slice(&dest_task.0.to_le_bytes());
    head[header::SOURCE_TASK..header::SOURCE_TASK + 4]
        .copy_from_slice(&source_task.0.to_le_bytes());
    head[header::STREAM..header::STREAM + 2].copy_from_slice(&stream.to_le_bytes());
    head[header::FIELD_COUNT..header::FIELD_COUNT + 2]
        .copy_from_slice(&(field_count as u16).to_le_bytes());
    head[header::ANCHOR_COUNT..header::ANCHOR_COUNT + 2]
        .copy_from_slice(&(anchors.len() as u16).to_le_bytes());
    out[..HEADER_BYTES].copy_from_slice(&head);
    HEADER_BYTES + write_anchors(&mut out[HEADER_BYTES..], anchors)
}

/// Writes `anchors` back to back at the start of `out`; returns the bytes written.
#[inline(always)]
pub(crate) fn write_anchors(out: &mut [u8], anchors: &[(u64, u64)]) -> usize {
    let mut at = 0;
    for (root, edge) in anchors {
        out[at..at + 8].copy_from_slice(&root.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&edge.to_le_bytes());
        at += ANCHOR_BYTES;
    }
    at
}

/// Writes a whole record, header, anchor pairs and fields, at the start of `out`, which
/// must be exactly as long as the record.
#[inline(always)]
pub(crate) fn write_record<V: EncodeValue>(
    out: &mut [u8],
    dest_task: TaskId,
    source_task: TaskId,
    stream: u16,
    anchors: &[(u64, u64)],
    values: &[V],
) {
    let at = write_header(out, dest_task, source_task, stream, values.len(), anchors);
    write_fields(values, &mut out[at..]);
}

/// Encodes a whole record into `out` (cleared first): the simple path for tests, tools and
/// system messages built outside an executor.
pub fn encode_record<V: EncodeValue>(
    out: &mut Vec<u8>,
    dest_task: TaskId,
    source_task: TaskId,
    stream: u16,
    anchors: &[(u64, u64)],
    values: &[V],
) {
    out.clear();
    out.resize(
        HEADER_BYTES + anchors.len() * ANCHOR_BYTES + fields_len(values),
        0,
    );
    write_record(out, dest_task, source_task, stream, anchors, values);
}
