//! Why a frame could not be decoded or encoded. Neither error allocates.

use super::FrameType;

/// Why bytes received from a peer are not a valid frame.
///
/// Every variant names the offending value and the rule it breaks; offsets count bytes from
/// the start of the frame (its length field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length field is smaller than the frame header itself.
    #[error("frame length {len} is shorter than the {min}-byte frame header")]
    FrameTooShort {
        /// The length field.
        len: u32,
        /// [`HEADER_LEN`](super::HEADER_LEN).
        min: u32,
    },
    /// The length field exceeds the largest frame this side accepts.
    #[error("frame length {len} exceeds max {max}")]
    FrameTooLong {
        /// The length field.
        len: u32,
        /// The limit the decoder was given (at most [`MAX_FRAME_LEN`](super::MAX_FRAME_LEN)).
        max: u32,
    },
    /// The length field is not a multiple of 8; every frame is padded to 8 bytes.
    #[error("frame length {len} is not a multiple of 8")]
    UnalignedLength {
        /// The length field.
        len: u32,
    },
    /// The frame is encoded with a protocol version this side does not speak.
    #[error("protocol version {found} is not supported (this side speaks version {supported})")]
    UnsupportedVersion {
        /// The version byte of the frame header.
        found: u8,
        /// [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
        supported: u8,
    },
    /// The type byte names no frame type of this version.
    #[error("unknown frame type {found:#04x}")]
    UnknownFrameType {
        /// The type byte of the frame header.
        found: u8,
    },
    /// A reserved field holds something other than zero.
    #[error("{frame} frame has {value:#x} in the reserved field at byte {offset}, expected 0")]
    NonZeroReserved {
        /// The frame's type.
        frame: FrameType,
        /// Offset of the reserved field in the frame.
        offset: usize,
        /// The value found.
        value: u32,
    },
    /// A fixed-size frame has a body of the wrong size.
    #[error("{frame} frame body is {found} bytes, expected {expected}")]
    BodyLength {
        /// The frame's type.
        frame: FrameType,
        /// Body length found (frame length minus the header).
        found: usize,
        /// Body length of this frame type.
        expected: usize,
    },
    /// A variable-size frame is too short for its fixed part.
    #[error("{frame} frame body is {found} bytes, shorter than its {min}-byte fixed part")]
    BodyTooShort {
        /// The frame's type.
        frame: FrameType,
        /// Body length found.
        found: usize,
        /// Length of the fixed part of the body.
        min: usize,
    },
    /// A HELLO announces a highest protocol version of zero.
    #[error("HELLO announces max protocol version 0; versions start at 1")]
    HelloVersionZero,
    /// A HELLO announces a frame limit outside the range the protocol allows.
    #[error(
        "HELLO announces max frame length {found}, \
         outside {min}..={max} or not a multiple of 8"
    )]
    HelloFrameLimit {
        /// The announced limit.
        found: u32,
        /// [`MIN_FRAME_LIMIT`](super::MIN_FRAME_LIMIT).
        min: u32,
        /// [`MAX_FRAME_LEN`](super::MAX_FRAME_LEN).
        max: u32,
    },
    /// A BATCH record's header or bytes run past the end of the frame.
    #[error(
        "BATCH record {index} at byte {offset} needs {needed} bytes \
         but only {available} remain in the frame"
    )]
    TruncatedRecord {
        /// Index of the record in the batch, from 0.
        index: u32,
        /// Offset of the record's header in the frame.
        offset: usize,
        /// Bytes the record needs: its header, bytes and padding.
        needed: usize,
        /// Bytes left in the frame from `offset`.
        available: usize,
    },
    /// A BATCH frame holds bytes after the last of the records it declares.
    #[error("BATCH frame declares {declared} records but {trailing} bytes follow the last one")]
    TrailingBytes {
        /// The record count field.
        declared: u32,
        /// Bytes left after the declared records.
        trailing: usize,
    },
    /// A BATCH record's padding holds something other than zero.
    #[error("BATCH record {index} has non-zero padding at byte {offset}")]
    NonZeroPadding {
        /// Index of the record in the batch, from 0.
        index: u32,
        /// Offset of the first non-zero padding byte in the frame.
        offset: usize,
    },
    /// A CLOSE reason is longer than the protocol allows.
    #[error("CLOSE reason of {len} bytes exceeds max {max}")]
    CloseReasonTooLong {
        /// The reason length field.
        len: u32,
        /// [`MAX_CLOSE_REASON`](super::MAX_CLOSE_REASON).
        max: u32,
    },
    /// A CLOSE frame's length disagrees with its reason length.
    #[error("CLOSE frame body is {found} bytes but a {reason_len}-byte reason needs {expected}")]
    CloseLength {
        /// The reason length field.
        reason_len: u32,
        /// Body length found.
        found: usize,
        /// Body length the reason needs, padding included.
        expected: usize,
    },
    /// A CLOSE reason is not UTF-8.
    #[error("CLOSE reason is not UTF-8 after its first {valid_up_to} bytes")]
    CloseReasonNotUtf8 {
        /// Length of the reason's longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// A CLOSE frame's padding holds something other than zero.
    #[error("CLOSE frame has non-zero padding at byte {offset}")]
    CloseNonZeroPadding {
        /// Offset of the first non-zero padding byte in the frame.
        offset: usize,
    },
}

/// Why a frame could not be written into the buffer the caller provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The buffer is too small for the frame (or, for a batch, for one more record).
    #[error("frame needs {needed} bytes but the buffer has room for {available}")]
    BufferTooSmall {
        /// Bytes the frame or record needs.
        needed: usize,
        /// Bytes the buffer has left.
        available: usize,
    },
    /// A BATCH record is longer than any frame can carry.
    #[error("record of {len} bytes exceeds the largest record a frame carries, {max} bytes")]
    RecordTooLong {
        /// Length of the record.
        len: usize,
        /// [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN).
        max: usize,
    },
    /// A CLOSE reason is longer than the protocol allows.
    #[error("CLOSE reason of {len} bytes exceeds max {max}")]
    CloseReasonTooLong {
        /// Length of the reason.
        len: usize,
        /// [`MAX_CLOSE_REASON`](super::MAX_CLOSE_REASON).
        max: usize,
    },
}
