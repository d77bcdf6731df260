//! Errors of reading encoded tuples.

use thiserror::Error;

use crate::value::ValueType;

/// A record is not a well-formed tuple.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The record is shorter than the fixed header.
    #[error("tuple record of {len} bytes is shorter than the {header}-byte header")]
    ShortHeader {
        /// Bytes in the record.
        len: usize,
        /// Bytes the header needs.
        header: usize,
    },
    /// The anchor pairs the header announces run past the end of the record.
    #[error(
        "tuple record of {len} bytes cannot hold the {anchors} anchor pairs its header announces"
    )]
    TruncatedAnchors {
        /// Bytes in the record.
        len: usize,
        /// Anchor pairs announced.
        anchors: usize,
    },
    /// A field's bytes run past the end of the record.
    #[error(
        "field {index} ({value_type}) at byte {offset} runs past the end of the {len}-byte record"
    )]
    TruncatedField {
        /// Position of the field.
        index: usize,
        /// Its type, from its tag.
        value_type: ValueType,
        /// Where it starts in the record.
        offset: usize,
        /// Bytes in the record.
        len: usize,
    },
    /// A field starts with a tag byte that names no type.
    #[error("field {index} at byte {offset} has unknown type tag {tag:#04x}")]
    UnknownTag {
        /// Position of the field.
        index: usize,
        /// Where it starts in the record.
        offset: usize,
        /// The tag byte.
        tag: u8,
    },
    /// A bool field holds a byte other than 0 or 1.
    #[error("bool field {index} at byte {offset} holds {byte:#04x}, not 0 or 1")]
    InvalidBool {
        /// Position of the field.
        index: usize,
        /// Where it starts in the record.
        offset: usize,
        /// The payload byte.
        byte: u8,
    },
    /// A string field is not UTF-8.
    #[error("string field {index} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Position of the field.
        index: usize,
        /// Where it starts in the record.
        offset: usize,
    },
    /// Lists and maps are nested deeper than [`MAX_NESTING`](super::MAX_NESTING) levels.
    #[error("field {index} nests lists and maps deeper than {max} levels (at byte {offset})")]
    TooDeep {
        /// Position of the field.
        index: usize,
        /// Where the list or map past the limit starts in the record.
        offset: usize,
        /// [`MAX_NESTING`](super::MAX_NESTING).
        max: usize,
    },
    /// Bytes follow the last field the header announces.
    #[error("tuple record has {extra} bytes after its last field")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The record packs several tuples, and was read as one: read it with
    /// [`TupleRef::members`](super::TupleRef::members).
    #[error("tuple record packs {count} tuples; it was read as one")]
    Packed {
        /// Tuples the header announces.
        count: usize,
    },
    /// A packed record's bytes after the header do not split into its tuples evenly (every
    /// tuple packed in one record has the same encoded length), or a tuple's share is too
    /// short for the anchor pairs each carries.
    #[error(
        "tuple record packs {count} tuples in {len} bytes after its header, which do not split \
         evenly into tuples that hold their anchor pairs"
    )]
    PackedUneven {
        /// Tuples the header announces.
        count: usize,
        /// Bytes after the header.
        len: usize,
    },
}

/// A field could not be read as asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldError {
    /// The tuple has fewer fields.
    #[error("field index {index} is out of range: the tuple has {count} fields")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// Fields in the tuple.
        count: usize,
    },
    /// No field has this name in the tuple's stream.
    #[error("stream {stream:?} has no field named {name:?}")]
    UnknownName {
        /// The stream's name.
        stream: String,
        /// The name asked for.
        name: String,
    },
    /// The field holds another type.
    #[error("field {index} is {actual}, not {expected}")]
    WrongType {
        /// The index of the field.
        index: usize,
        /// The type asked for.
        expected: ValueType,
        /// The type it holds.
        actual: ValueType,
    },
    /// The record is malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
