//! The one binary encoding of a tuple, from emit to wire.
//!
//! A task writes each tuple once, as a compact record: a 16-byte header, the anchor ids that
//! tie it to spout tuple trees, then its field values. The same bytes sit in the ring between
//! two executors, in a batch frame between two workers, and under the [`TupleRef`] a bolt
//! reads — which decodes fields lazily and lends strings and bytes without copying them.
//!
//! # Layout
//!
//! All integers are little-endian. `docs/tuple-encoding.md` gives the same table with
//! examples.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4 | destination task id |
//! | 4  | 4 | source task id |
//! | 8  | 2 | stream id (topology-wide numbering, see [`StreamId`](crate::StreamId)) |
//! | 10 | 2 | number of fields |
//! | 12 | 2 | number of anchor pairs `n` |
//! | 14 | 2 | tuples packed `p`: 0 for a record of one tuple |
//! | 16 | 16·n | anchor pairs: root id (u64), edge id (u64) |
//! | 16 + 16·n | … | the fields, one after another |
//!
//! A packed record (`p` ≥ 1) carries `p` tuples of one length for the same task, stream
//! and source after one header, each its own `n` anchor pairs and then its fields: a run of
//! a batch emit pays for one header and one ring record instead of one per tuple.
//! [`TupleRef::members`] reads either kind; [`TupleRef::parse`] refuses a packed record.
//!
//! Each field is a tag byte ([`ValueType`](crate::ValueType) as `u8`) and a payload:
//!
//! | tag | type | payload |
//! |----:|------|---------|
//! | 0 | null | none |
//! | 1 | bool | 1 byte, 0 or 1 |
//! | 2 | i64 | 8 bytes |
//! | 3 | u64 | 8 bytes |
//! | 4 | f64 | 8 bytes, IEEE-754 bits |
//! | 5 | string | u32 byte length, UTF-8 bytes |
//! | 6 | bytes | u32 byte length, bytes |
//! | 7 | list | u32 byte length of the items, u32 item count, items |
//! | 8 | map | u32 byte length of the pairs, u32 pair count, key, value, key, value… |
//!
//! Lists and maps carry their byte length so a reader skips them in one step. They nest at
//! most [`MAX_NESTING`] levels deep.

mod encode;
mod error;
mod packed;
mod view;

pub use encode::{EncodeValue, FieldEncoder, encode_record, fields_len, write_fields};
pub use error::{DecodeError, FieldError};
pub use packed::{Members, encode_packed_record};
pub use view::{AnchorPairs, FieldIter, ListRef, MapRef, TupleRef};

pub(crate) use encode::{write_anchors, write_header, write_record};
pub(crate) use packed::mark_packed;
pub(crate) use view::decode_value;

/// Bytes of the fixed record header.
pub const HEADER_BYTES: usize = 16;

/// Bytes of one anchor pair (root id, edge id).
pub const ANCHOR_BYTES: usize = 16;

/// Most fields a tuple can have.
pub const MAX_FIELDS: usize = u16::MAX as usize;

/// Most anchor pairs (distinct spout tuple trees) a tuple can belong to.
pub const MAX_ANCHORS: usize = u16::MAX as usize;

/// Most levels of lists and maps inside one field: a field nested deeper does not decode
/// ([`DecodeError::TooDeep`]).
pub const MAX_NESTING: usize = 128;

/// Offsets inside the header.
pub(crate) mod header {
    pub const DEST_TASK: usize = 0;
    pub const SOURCE_TASK: usize = 4;
    pub const STREAM: usize = 8;
    pub const FIELD_COUNT: usize = 10;
    pub const ANCHOR_COUNT: usize = 12;
    pub const PACKED: usize = 14;
}
