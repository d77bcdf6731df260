//! The wire protocol's frames: encoding into caller-provided buffers and decoding from byte
//! slices into borrowed views, without I/O.
//!
//! Every frame starts with an 8-byte header:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | frame length in bytes, header included, a multiple of 8 (`u32`, little-endian) |
//! | 4 | 1 | protocol version, [`PROTOCOL_VERSION`] |
//! | 5 | 1 | frame type, [`FrameType`] |
//! | 6 | 2 | reserved, zero |
//!
//! followed by a body whose layout depends on the type; `docs/wire-protocol.md` specifies
//! each one byte by byte. [`decode_frame`] checks the header as soon as its bytes arrive, so
//! an oversized length or an unknown type is refused before the frame is buffered.
//!
//! ```
//! use squall_net::codec::{BatchEncoder, Decoded, Frame, MAX_FRAME_LEN, decode_frame};
//!
//! let mut buf = [0u8; 256];
//! let mut batch = BatchEncoder::new(&mut buf).unwrap();
//! batch.push(7, b"first tuple").unwrap();
//! batch.push(9, b"second").unwrap();
//! let len = batch.finish();
//!
//! // The first bytes alone are not a frame yet.
//! assert!(matches!(decode_frame(&buf[..10], MAX_FRAME_LEN), Ok(Decoded::Incomplete(_))));
//!
//! let Ok(Decoded::Frame { frame: Frame::Batch(view), len: consumed }) =
//!     decode_frame(&buf[..len], MAX_FRAME_LEN)
//! else {
//!     panic!("a whole batch frame decodes")
//! };
//! assert_eq!(consumed, len);
//! let records: Vec<(u32, &[u8])> = view.iter().map(|r| (r.dest_task, r.bytes)).collect();
//! assert_eq!(records, [(7, &b"first tuple"[..]), (9, &b"second"[..])]);
//! ```
#![forbid(unsafe_code)]

mod batch;
mod control;
mod error;
mod hello;

use std::fmt;

pub use batch::{BatchEncoder, BatchIter, BatchPosition, BatchView, Record, record_size};
pub use control::{Close, CloseCode, Credit};
pub use error::{DecodeError, EncodeError};
pub use hello::{Auth, Hello};

/// The protocol version this crate speaks, written in every frame header.
pub const PROTOCOL_VERSION: u8 = 1;

/// Bytes of the frame header.
pub const HEADER_LEN: usize = 8;

/// The largest frame the protocol allows, 16 MiB. A peer announces in its HELLO the largest
/// frame it accepts, which may be smaller.
pub const MAX_FRAME_LEN: u32 = 16 << 20;

/// The smallest frame limit a peer may announce, 64 KiB.
pub const MIN_FRAME_LIMIT: u32 = 64 << 10;

/// Bytes of a BATCH frame before its first record: the header, the record count and a
/// reserved word.
pub const BATCH_HEADER_LEN: usize = 16;

/// Bytes of a record's header in a BATCH frame: destination task and length.
pub const RECORD_HEADER_LEN: usize = 8;

/// The longest record a BATCH frame of [`MAX_FRAME_LEN`] carries.
pub const MAX_RECORD_LEN: usize = MAX_FRAME_LEN as usize - BATCH_HEADER_LEN - RECORD_HEADER_LEN;

/// The longest CLOSE reason, in bytes of UTF-8.
pub const MAX_CLOSE_REASON: usize = 1024;

/// `len` rounded up to a multiple of 8.
pub const fn pad8(len: usize) -> usize {
    (len + 7) & !7
}

/// The type of a frame, its header's type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Opens the handshake: version, cluster, worker, frame limit and a fresh nonce.
    Hello = 0x01,
    /// Proves knowledge of the cluster secret over both HELLOs.
    Auth = 0x02,
    /// Carries tuple records, each with its destination task.
    Batch = 0x03,
    /// Raises the sender's limit on BATCH bytes it accepts.
    Credit = 0x04,
    /// Keeps an idle connection alive.
    Heartbeat = 0x05,
    /// Ends the connection with a code and a reason.
    Close = 0x06,
}

impl FrameType {
    /// The frame type for a header's type byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x01 => Self::Hello,
            0x02 => Self::Auth,
            0x03 => Self::Batch,
            0x04 => Self::Credit,
            0x05 => Self::Heartbeat,
            0x06 => Self::Close,
            _ => return None,
        })
    }

    /// The type's name as the protocol document spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hello => "HELLO",
            Self::Auth => "AUTH",
            Self::Batch => "BATCH",
            Self::Credit => "CREDIT",
            Self::Heartbeat => "HEARTBEAT",
            Self::Close => "CLOSE",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded frame, borrowing variable-size parts from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Auth`].
    Auth(Auth),
    /// See [`BatchView`].
    Batch(BatchView<'a>),
    /// See [`Credit`].
    Credit(Credit),
    /// A frame with an empty body that only shows the peer is alive.
    Heartbeat,
    /// See [`Close`].
    Close(Close<'a>),
}

impl Frame<'_> {
    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello(_) => FrameType::Hello,
            Self::Auth(_) => FrameType::Auth,
            Self::Batch(_) => FrameType::Batch,
            Self::Credit(_) => FrameType::Credit,
            Self::Heartbeat => FrameType::Heartbeat,
            Self::Close(_) => FrameType::Close,
        }
    }

    /// Bytes the encoded frame takes, header included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Hello(_) => Hello::FRAME_LEN,
            Self::Auth(_) => Auth::FRAME_LEN,
            Self::Batch(batch) => batch.frame_len(),
            Self::Credit(_) => Credit::FRAME_LEN,
            Self::Heartbeat => HEADER_LEN,
            Self::Close(close) => close.frame_len(),
        }
    }

    /// Writes the frame at the start of `buf` and returns its length.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `buf` is shorter than
    /// [`encoded_len`](Self::encoded_len), [`EncodeError::CloseReasonTooLong`] for a CLOSE
    /// reason over [`MAX_CLOSE_REASON`] bytes. Nothing is written then.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Self::Hello(hello) => hello.encode(buf),
            Self::Auth(auth) => auth.encode(buf),
            Self::Batch(batch) => batch.encode(buf),
            Self::Credit(credit) => credit.encode(buf),
            Self::Heartbeat => {
                let out = frame_buf(buf, HEADER_LEN)?;
                write_header(out, FrameType::Heartbeat);
                Ok(HEADER_LEN)
            }
            Self::Close(close) => close.encode(buf),
        }
    }
}

/// How many more bytes a partial frame needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// At least this many: the input ends before the length field.
    AtLeast(usize),
    /// Exactly this many complete the frame.
    Exactly(usize),
}

impl Needed {
    /// The number of bytes, whether exact or a lower bound.
    pub fn bytes(self) -> usize {
        match self {
            Self::AtLeast(n) | Self::Exactly(n) => n,
        }
    }
}

/// What [`decode_frame`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid frame of `len` bytes; the next frame starts at `input[len..]`.
    Frame {
        /// The frame, borrowing from the input.
        frame: Frame<'a>,
        /// Bytes the frame took.
        len: usize,
    },
    /// The input is a valid beginning of a frame but ends too early.
    Incomplete(Needed),
}

/// A frame header whose length, version and type have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Frame length in bytes, header included.
    pub len: u32,
    /// The frame's type.
    pub frame_type: FrameType,
}

impl FrameHeader {
    /// Decodes the header at the start of `input`, checking what can be checked with the
    /// bytes present: the length (against `max_frame_len`) once its 4 bytes are there, then
    /// version, type and reserved field once all 8 are.
    ///
    /// # Errors
    /// [`DecodeError::FrameTooShort`], [`FrameTooLong`](DecodeError::FrameTooLong),
    /// [`UnalignedLength`](DecodeError::UnalignedLength),
    /// [`UnsupportedVersion`](DecodeError::UnsupportedVersion),
    /// [`UnknownFrameType`](DecodeError::UnknownFrameType) or
    /// [`NonZeroReserved`](DecodeError::NonZeroReserved).
    pub fn decode(input: &[u8], max_frame_len: u32) -> Result<Result<Self, Needed>, DecodeError> {
        let Some(len_bytes) = input.first_chunk::<4>() else {
            return Ok(Err(Needed::AtLeast(HEADER_LEN - input.len())));
        };
        let len = u32::from_le_bytes(*len_bytes);
        let max = max_frame_len.min(MAX_FRAME_LEN);
        if len < HEADER_LEN as u32 {
            return Err(DecodeError::FrameTooShort {
                len,
                min: HEADER_LEN as u32,
            });
        }
        if len > max {
            return Err(DecodeError::FrameTooLong { len, max });
        }
        if !len.is_multiple_of(8) {
            return Err(DecodeError::UnalignedLength { len });
        }
        let Some(header) = input.first_chunk::<HEADER_LEN>() else {
            return Ok(Err(Needed::Exactly(len as usize - input.len())));
        };
        if header[4] != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: header[4],
                supported: PROTOCOL_VERSION,
            });
        }
        let Some(frame_type) = FrameType::from_byte(header[5]) else {
            return Err(DecodeError::UnknownFrameType { found: header[5] });
        };
        let reserved = u16::from_le_bytes([header[6], header[7]]);
        if reserved != 0 {
            return Err(DecodeError::NonZeroReserved {
                frame: frame_type,
                offset: 6,
                value: u32::from(reserved),
            });
        }
        Ok(Ok(Self { len, frame_type }))
    }
}

/// Decodes the frame at the start of `input`, refusing frames longer than `max_frame_len`
/// (itself capped at [`MAX_FRAME_LEN`]).
///
/// Returns [`Decoded::Incomplete`] when `input` is a valid but partial frame, saying how
/// many more bytes are needed. Never panics, whatever the input.
///
/// # Errors
/// A [`DecodeError`] naming what is wrong: the header's checks (see
/// [`FrameHeader::decode`]), then the body's (wrong size, non-zero reserved field or
/// padding, truncated record, invalid UTF-8 in a CLOSE reason...).
pub fn decode_frame(input: &[u8], max_frame_len: u32) -> Result<Decoded<'_>, DecodeError> {
    let header = match FrameHeader::decode(input, max_frame_len)? {
        Ok(header) => header,
        Err(needed) => return Ok(Decoded::Incomplete(needed)),
    };
    let len = header.len as usize;
    let Some(frame_bytes) = input.get(..len) else {
        return Ok(Decoded::Incomplete(Needed::Exactly(len - input.len())));
    };
    let body = &frame_bytes[HEADER_LEN..];
    let frame = decode_body(header.frame_type, body)?;
    Ok(Decoded::Frame { frame, len })
}

/// Decodes a frame body (the bytes after the header) of type `frame_type`.
///
/// # Errors
/// As [`decode_frame`] for the body's checks. Offsets in errors count from the start of the
/// frame, as if the 8-byte header preceded `body`.
pub fn decode_body(frame_type: FrameType, body: &[u8]) -> Result<Frame<'_>, DecodeError> {
    Ok(match frame_type {
        FrameType::Hello => Frame::Hello(Hello::decode_body(body)?),
        FrameType::Auth => Frame::Auth(Auth::decode_body(body)?),
        FrameType::Batch => Frame::Batch(BatchView::decode_body(body)?),
        FrameType::Credit => Frame::Credit(Credit::decode_body(body)?),
        FrameType::Heartbeat => {
            expect_body_len(FrameType::Heartbeat, body, 0)?;
            Frame::Heartbeat
        }
        FrameType::Close => Frame::Close(Close::decode_body(body)?),
    })
}

/// Checks that a fixed-size body has its size.
fn expect_body_len(frame: FrameType, body: &[u8], expected: usize) -> Result<(), DecodeError> {
    if body.len() == expected {
        Ok(())
    } else {
        Err(DecodeError::BodyLength {
            frame,
            found: body.len(),
            expected,
        })
    }
}

/// The first `len` bytes of `buf`, or the error saying it is too small.
fn frame_buf(buf: &mut [u8], len: usize) -> Result<&mut [u8], EncodeError> {
    let available = buf.len();
    buf.get_mut(..len).ok_or(EncodeError::BufferTooSmall {
        needed: len,
        available,
    })
}

/// Writes a frame header for a frame that fills all of `frame`.
fn write_header(frame: &mut [u8], frame_type: FrameType) {
    let len = u32::try_from(frame.len()).expect("frames are shorter than 4 GiB");
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame[4] = PROTOCOL_VERSION;
    frame[5] = frame_type as u8;
    frame[6..8].fill(0);
}

/// The little-endian `u32` at `at`; the caller has checked the bounds.
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// The little-endian `u64` at `at`; the caller has checked the bounds.
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_checked_before_the_body_arrives() {
        let oversize = u32::MAX.to_le_bytes();
        assert_eq!(
            decode_frame(&oversize, MAX_FRAME_LEN),
            Err(DecodeError::FrameTooLong {
                len: u32::MAX,
                max: MAX_FRAME_LEN
            })
        );
        assert_eq!(
            DecodeError::FrameTooLong {
                len: u32::MAX,
                max: MAX_FRAME_LEN
            }
            .to_string(),
            "frame length 4294967295 exceeds max 16777216"
        );
        let unknown = [16, 0, 0, 0, 1, 0x7f, 0, 0];
        assert_eq!(
            decode_frame(&unknown, MAX_FRAME_LEN),
            Err(DecodeError::UnknownFrameType { found: 0x7f })
        );
        let bad_version = [16, 0, 0, 0, 9, 0x04, 0, 0];
        assert_eq!(
            decode_frame(&bad_version, MAX_FRAME_LEN),
            Err(DecodeError::UnsupportedVersion {
                found: 9,
                supported: 1
            })
        );
    }

    #[test]
    fn partial_input_says_what_it_needs() {
        assert_eq!(
            decode_frame(&[], MAX_FRAME_LEN),
            Ok(Decoded::Incomplete(Needed::AtLeast(8)))
        );
        assert_eq!(
            decode_frame(&[16, 0, 0], MAX_FRAME_LEN),
            Ok(Decoded::Incomplete(Needed::AtLeast(5)))
        );
        assert_eq!(
            decode_frame(&[16, 0, 0, 0, 1], MAX_FRAME_LEN),
            Ok(Decoded::Incomplete(Needed::Exactly(11)))
        );
        assert_eq!(
            decode_frame(&[16, 0, 0, 0, 1, 4, 0, 0, 1], MAX_FRAME_LEN),
            Ok(Decoded::Incomplete(Needed::Exactly(7)))
        );
    }

    #[test]
    fn heartbeat_round_trips() {
        let mut buf = [0u8; 8];
        assert_eq!(Frame::Heartbeat.encode(&mut buf), Ok(8));
        assert_eq!(
            decode_frame(&buf, MAX_FRAME_LEN),
            Ok(Decoded::Frame {
                frame: Frame::Heartbeat,
                len: 8
            })
        );
        assert_eq!(
            Frame::Heartbeat.encode(&mut [0u8; 7]),
            Err(EncodeError::BufferTooSmall {
                needed: 8,
                available: 7
            })
        );
    }
}
