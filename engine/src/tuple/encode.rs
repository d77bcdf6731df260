//! Writing tuples: field values into a reusable buffer, then header and anchors in front of
//! them wherever the record goes.

use super::{ANCHOR_BYTES, HEADER_BYTES, header};
use crate::value::{OwnedValue, Value, ValueRef, ValueType};

/// A value that can be written in the tuple encoding.
///
/// Implemented by [`Value`] (what tasks emit), [`OwnedValue`] and [`ValueRef`] (so a bolt can
/// pass on what it read).
pub trait EncodeValue {
    /// The value's type.
    fn value_type(&self) -> ValueType;

    /// Appends the tag byte and payload to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);
}

#[inline(always)]
fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).unwrap_or_else(|_| {
        panic!("a tuple value of {len} bytes exceeds the encoding's 4 GiB limit")
    });
    out.extend_from_slice(&len.to_le_bytes());
}

/// Writes a list or map: tag, room for the byte length, count, items; then patches the length.
fn encode_nested(
    out: &mut Vec<u8>,
    value_type: ValueType,
    count: usize,
    items: impl FnOnce(&mut Vec<u8>),
) {
    out.push(value_type as u8);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    put_len(out, count);
    let items_start = out.len();
    items(out);
    let items_len = u32::try_from(out.len() - items_start)
        .unwrap_or_else(|_| panic!("a tuple {value_type} exceeds the encoding's 4 GiB limit"));
    out[len_at..len_at + 4].copy_from_slice(&items_len.to_le_bytes());
}

macro_rules! encode_scalar_or {
    ($out:ident, $value:expr, $Enum:ident, $nested:expr) => {
        match $value {
            $Enum::Null => $out.push(ValueType::Null as u8),
            $Enum::Bool(v) => $out.extend_from_slice(&[ValueType::Bool as u8, u8::from(*v)]),
            $Enum::I64(v) => {
                $out.push(ValueType::I64 as u8);
                $out.extend_from_slice(&v.to_le_bytes());
            }
            $Enum::U64(v) => {
                $out.push(ValueType::U64 as u8);
                $out.extend_from_slice(&v.to_le_bytes());
            }
            $Enum::F64(v) => {
                $out.push(ValueType::F64 as u8);
                $out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            $Enum::Str(v) => {
                $out.push(ValueType::Str as u8);
                put_len($out, v.len());
                $out.extend_from_slice(v.as_bytes());
            }
            $Enum::Bytes(v) => {
                $out.push(ValueType::Bytes as u8);
                put_len($out, v.len());
                $out.extend_from_slice(v);
            }
            nested => $nested(nested),
        }
    };
}

impl EncodeValue for Value<'_> {
    #[inline]
    fn value_type(&self) -> ValueType {
        Value::value_type(self)
    }

    #[inline]
    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_scalar_or!(out, self, Value, |nested: &Value<'_>| match nested {
            Value::List(items) => encode_nested(out, ValueType::List, items.len(), |out| {
                items.iter().for_each(|item| item.encode_into(out))
            }),
            Value::Map(pairs) => encode_nested(out, ValueType::Map, pairs.len(), |out| {
                for (key, value) in pairs.iter() {
                    key.encode_into(out);
                    value.encode_into(out);
                }
            }),
            _ => unreachable!("scalars are encoded above"),
        })
    }
}

impl EncodeValue for OwnedValue {
    fn value_type(&self) -> ValueType {
        OwnedValue::value_type(self)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_scalar_or!(out, self, OwnedValue, |nested: &OwnedValue| match nested {
            OwnedValue::List(items) => encode_nested(out, ValueType::List, items.len(), |out| {
                items.iter().for_each(|item| item.encode_into(out))
            }),
            OwnedValue::Map(pairs) => encode_nested(out, ValueType::Map, pairs.len(), |out| {
                for (key, value) in pairs {
                    key.encode_into(out);
                    value.encode_into(out);
                }
            }),
            _ => unreachable!("scalars are encoded above"),
        })
    }
}

impl EncodeValue for ValueRef<'_> {
    fn value_type(&self) -> ValueType {
        ValueRef::value_type(self)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_scalar_or!(out, self, ValueRef, |nested: &ValueRef<'_>| match nested {
            // A nested value read from a tuple is already encoded: copy it as it is.
            ValueRef::List(list) => out.extend_from_slice(list.encoded()),
            ValueRef::Map(map) => out.extend_from_slice(map.encoded()),
            _ => unreachable!("scalars are encoded above"),
        })
    }
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

    /// Encodes `values` as `u64` fields (the system streams' shape).
    #[inline]
    pub(crate) fn encode_u64s(&mut self, values: &[u64]) {
        self.bytes.clear();
        self.bounds.clear();
        for value in values {
            self.bounds.push(self.bytes.len() as u32);
            self.bytes.push(ValueType::U64 as u8);
            self.bytes.extend_from_slice(&value.to_le_bytes());
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
    dest_task: u32,
    source_task: u32,
    stream: u16,
    field_count: usize,
    anchors: &[(u64, u64)],
) -> usize {
    let head = &mut out[..HEADER_BYTES];
    head[header::DEST_TASK..header::DEST_TASK + 4].copy_from_slice(&dest_task.to_le_bytes());
    head[header::SOURCE_TASK..header::SOURCE_TASK + 4].copy_from_slice(&source_task.to_le_bytes());
    head[header::STREAM..header::STREAM + 2].copy_from_slice(&stream.to_le_bytes());
    head[header::FIELD_COUNT..header::FIELD_COUNT + 2]
        .copy_from_slice(&(field_count as u16).to_le_bytes());
    head[header::ANCHOR_COUNT..header::ANCHOR_COUNT + 2]
        .copy_from_slice(&(anchors.len() as u16).to_le_bytes());
    head[14..16].copy_from_slice(&[0, 0]);
    let mut at = HEADER_BYTES;
    for (root, edge) in anchors {
        out[at..at + 8].copy_from_slice(&root.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&edge.to_le_bytes());
        at += ANCHOR_BYTES;
    }
    at
}

/// Encodes a whole record into `out` (cleared first): the slow, simple path for tests,
/// tools and system messages built outside an executor.
pub fn encode_record<V: EncodeValue>(
    out: &mut Vec<u8>,
    dest_task: u32,
    source_task: u32,
    stream: u16,
    anchors: &[(u64, u64)],
    values: &[V],
) {
    let mut fields = FieldEncoder::default();
    fields.encode(values);
    out.clear();
    out.resize(fields.record_len(anchors.len()), 0);
    let at = write_header(out, dest_task, source_task, stream, values.len(), anchors);
    out[at..].copy_from_slice(fields.bytes());
}
