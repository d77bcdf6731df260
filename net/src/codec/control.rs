//! Frames that steer an established connection: CREDIT and CLOSE.

use std::fmt;

use super::{
    DecodeError, EncodeError, FrameType, HEADER_LEN, MAX_CLOSE_REASON, expect_body_len, frame_buf,
    le_u32, le_u64, pad8, write_header,
};

/// CREDIT: raises the limit on BATCH bytes the sender of this frame accepts.
///
/// Body layout (8 bytes): `limit`, a `u64` counting the bytes of whole BATCH frames
/// (headers included) the peer may send on this connection in total, from its first BATCH.
/// Limits only grow; a lower limit than one sent before is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// Total BATCH bytes the peer may send since the connection started.
    pub limit: u64,
}

impl Credit {
    /// Bytes of a CREDIT body.
    pub const BODY_LEN: usize = 8;
    /// Bytes of a CREDIT frame.
    pub const FRAME_LEN: usize = HEADER_LEN + Self::BODY_LEN;

    /// Decodes a CREDIT body.
    ///
    /// # Errors
    /// [`DecodeError::BodyLength`] when the body is not 8 bytes.
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        expect_body_len(FrameType::Credit, body, Self::BODY_LEN)?;
        Ok(Self {
            limit: le_u64(body, 0),
        })
    }

    /// Writes the CREDIT frame at the start of `buf`; returns [`Self::FRAME_LEN`].
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `buf` is shorter than the frame.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let frame = frame_buf(buf, Self::FRAME_LEN)?;
        write_header(frame, FrameType::Credit);
        frame[HEADER_LEN..].copy_from_slice(&self.limit.to_le_bytes());
        Ok(Self::FRAME_LEN)
    }
}

/// Why a connection was closed, the code of a CLOSE frame.
///
/// Codes this crate does not know are kept as they are and displayed as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u32);

impl CloseCode {
    /// The sender shuts down or no longer needs the connection.
    pub const NORMAL: Self = Self(0);
    /// The peer broke the protocol (malformed or unexpected frame, credit overrun).
    pub const PROTOCOL_ERROR: Self = Self(1);
    /// The peer failed to prove the cluster secret.
    pub const AUTH_FAILED: Self = Self(2);
    /// The peers share no protocol version.
    pub const UNSUPPORTED_VERSION: Self = Self(3);
    /// The peers belong to different clusters.
    pub const CLUSTER_MISMATCH: Self = Self(4);
    /// The peer stayed silent for longer than the idle timeout, or the handshake took too long.
    pub const TIMEOUT: Self = Self(5);
    /// A newer connection from the same worker replaces this one.
    pub const REPLACED: Self = Self(6);
    /// The peer is not the worker expected on this connection.
    pub const UNEXPECTED_PEER: Self = Self(7);
    /// The peer runs another topology.
    pub const TOPOLOGY_MISMATCH: Self = Self(8);
    /// The peer runs an older assignment of the topology.
    pub const STALE_PLAN: Self = Self(9);

    /// The code's name, when it is one this crate knows.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NORMAL => "normal",
            Self::PROTOCOL_ERROR => "protocol error",
            Self::AUTH_FAILED => "authentication failed",
            Self::UNSUPPORTED_VERSION => "unsupported version",
            Self::CLUSTER_MISMATCH => "cluster mismatch",
            Self::TIMEOUT => "timeout",
            Self::REPLACED => "replaced",
            Self::UNEXPECTED_PEER => "unexpected peer",
            Self::TOPOLOGY_MISMATCH => "topology mismatch",
            Self::STALE_PLAN => "stale plan",
            _ => return None,
        })
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "code {}", self.0),
        }
    }
}

/// CLOSE: the sender is closing the connection and says why.
///
/// Body layout: `code` (`u32`), `reason_len` (`u32`, at most [`MAX_CLOSE_REASON`]), the
/// reason in UTF-8, then zero padding up to a multiple of 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    /// Why the connection closes.
    pub code: CloseCode,
    /// A human-readable explanation, at most [`MAX_CLOSE_REASON`] bytes.
    pub reason: &'a str,
}

impl<'a> Close<'a> {
    /// Bytes of the fixed part of a CLOSE body.
    pub const FIXED_BODY_LEN: usize = 8;

    /// Bytes of this CLOSE frame.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + Self::FIXED_BODY_LEN + pad8(self.reason.len())
    }

    /// Decodes a CLOSE body, borrowing the reason.
    ///
    /// # Errors
    /// [`DecodeError::BodyTooShort`], [`CloseReasonTooLong`](DecodeError::CloseReasonTooLong),
    /// [`CloseLength`](DecodeError::CloseLength),
    /// [`CloseNonZeroPadding`](DecodeError::CloseNonZeroPadding) or
    /// [`CloseReasonNotUtf8`](DecodeError::CloseReasonNotUtf8).
    pub fn decode_body(body: &'a [u8]) -> Result<Self, DecodeError> {
        if body.len() < Self::FIXED_BODY_LEN {
            return Err(DecodeError::BodyTooShort {
                frame: FrameType::Close,
                found: body.len(),
                min: Self::FIXED_BODY_LEN,
            });
        }
        let code = CloseCode(le_u32(body, 0));
        let reason_len = le_u32(body, 4);
        if reason_len as usize > MAX_CLOSE_REASON {
            return Err(DecodeError::CloseReasonTooLong {
                len: reason_len,
                max: MAX_CLOSE_REASON as u32,
            });
        }
        let expected = Self::FIXED_BODY_LEN + pad8(reason_len as usize);
        if body.len() != expected {
            return Err(DecodeError::CloseLength {
                reason_len,
                found: body.len(),
                expected,
            });
        }
        let reason_end = Self::FIXED_BODY_LEN + reason_len as usize;
        if let Some(at) = body[reason_end..].iter().position(|&b| b != 0) {
            return Err(DecodeError::CloseNonZeroPadding {
                offset: HEADER_LEN + reason_end + at,
            });
        }
        let reason =
            std::str::from_utf8(&body[Self::FIXED_BODY_LEN..reason_end]).map_err(|error| {
                DecodeError::CloseReasonNotUtf8 {
                    valid_up_to: error.valid_up_to(),
                }
            })?;
        Ok(Self { code, reason })
    }

    /// Writes the CLOSE frame at the start of `buf`; returns its length.
    ///
    /// # Errors
    /// [`EncodeError::CloseReasonTooLong`] for a reason over [`MAX_CLOSE_REASON`] bytes,
    /// [`EncodeError::BufferTooSmall`] when `buf` is shorter than the frame.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.reason.len() > MAX_CLOSE_REASON {
            return Err(EncodeError::CloseReasonTooLong {
                len: self.reason.len(),
                max: MAX_CLOSE_REASON,
            });
        }
        let len = self.frame_len();
        let frame = frame_buf(buf, len)?;
        write_header(frame, FrameType::Close);
        let body = &mut frame[HEADER_LEN..];
        body[0..4].copy_from_slice(&self.code.0.to_le_bytes());
        body[4..8].copy_from_slice(&(self.reason.len() as u32).to_le_bytes());
        let reason_end = Self::FIXED_BODY_LEN + self.reason.len();
        body[Self::FIXED_BODY_LEN..reason_end].copy_from_slice(self.reason.as_bytes());
        body[reason_end..].fill(0);
        Ok(len)
    }

    /// The longest prefix of `reason` that fits a CLOSE frame, cut at a character boundary.
    pub fn truncate_reason(reason: &str) -> &str {
        if reason.len() <= MAX_CLOSE_REASON {
            return reason;
        }
        let mut end = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        &reason[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_display_with_names() {
        assert_eq!(
            CloseCode::AUTH_FAILED.to_string(),
            "authentication failed (2)"
        );
        assert_eq!(CloseCode(4711).to_string(), "code 4711");
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(MAX_CLOSE_REASON);
        let cut = Close::truncate_reason(&reason);
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert_eq!(cut.len(), MAX_CLOSE_REASON);
        let odd = format!("x{reason}");
        assert_eq!(Close::truncate_reason(&odd).len(), MAX_CLOSE_REASON - 1);
    }
}
