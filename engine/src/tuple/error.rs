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
    /// A string field is not UTF-8.
    #[error("string field {index} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Position of the field.
        index: usize,
        /// Where it starts in the record.
        offset: usize,
    },
    /// Bytes follow the last field the header announces.
    #[error("tuple record has {extra} bytes after its last field")]
    TrailingBytes {
        /// How many.
        extra: usize,
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
