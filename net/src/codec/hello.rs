//! The handshake frames: HELLO and AUTH.

use super::{
    DecodeError, EncodeError, FrameType, HEADER_LEN, MAX_FRAME_LEN, MIN_FRAME_LIMIT,
    expect_body_len, frame_buf, le_u32, le_u64, write_header,
};
use crate::auth::{NONCE_LEN, Nonce, PROOF_LEN, Proof};
use crate::ids::{ClusterId, TopologyId, WorkerId};

/// Where the nonce starts in a HELLO body.
const NONCE_OFFSET: usize = 40;

/// HELLO: the first frame each side sends.
///
/// Body layout (72 bytes, little-endian):
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 8  | 2  | `max_version`: highest protocol version the sender speaks, at least 1 |
/// | 10 | 2  | reserved, zero |
/// | 12 | 4  | `max_frame_len`: largest frame the sender accepts |
/// | 16 | 8  | `cluster_id` |
/// | 24 | 8  | `worker_id` |
/// | 32 | 8  | `topology_id`: the topology the sender runs |
/// | 40 | 8  | `plan_version`: the assignment version the sender runs |
/// | 48 | 32 | `nonce`: fresh random bytes for this connection |
///
/// Both HELLO frames enter both AUTH proofs whole, so the topology and plan version a peer
/// announces are authenticated with the rest.
///
/// The header of a HELLO always carries version 1, whatever version the sender speaks, so
/// that any peer can read it and name a version mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Highest protocol version the sender speaks.
    pub max_version: u16,
    /// Largest frame the sender accepts, between [`MIN_FRAME_LIMIT`] and [`MAX_FRAME_LEN`],
    /// a multiple of 8. Its credit window is at least this large.
    pub max_frame_len: u32,
    /// The sender's cluster.
    pub cluster_id: ClusterId,
    /// The sender's worker id.
    pub worker_id: WorkerId,
    /// The topology the sender runs.
    pub topology_id: TopologyId,
    /// The assignment version the sender runs.
    pub plan_version: u64,
    /// Fresh random bytes; both nonces enter both proofs.
    pub nonce: Nonce,
}

impl Hello {
    /// Bytes of a HELLO body.
    pub const BODY_LEN: usize = 72;
    /// Bytes of a HELLO frame.
    pub const FRAME_LEN: usize = HEADER_LEN + Self::BODY_LEN;

    /// Decodes a HELLO body.
    ///
    /// # Errors
    /// [`DecodeError::BodyLength`], [`NonZeroReserved`](DecodeError::NonZeroReserved),
    /// [`HelloVersionZero`](DecodeError::HelloVersionZero) or
    /// [`HelloFrameLimit`](DecodeError::HelloFrameLimit).
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        expect_body_len(FrameType::Hello, body, Self::BODY_LEN)?;
        let max_version = u16::from_le_bytes([body[0], body[1]]);
        let reserved = u16::from_le_bytes([body[2], body[3]]);
        if reserved != 0 {
            return Err(DecodeError::NonZeroReserved {
                frame: FrameType::Hello,
                offset: HEADER_LEN + 2,
                value: u32::from(reserved),
            });
        }
        if max_version == 0 {
            return Err(DecodeError::HelloVersionZero);
        }
        let max_frame_len = le_u32(body, 4);
        if !(MIN_FRAME_LIMIT..=MAX_FRAME_LEN).contains(&max_frame_len)
            || !max_frame_len.is_multiple_of(8)
        {
            return Err(DecodeError::HelloFrameLimit {
                found: max_frame_len,
                min: MIN_FRAME_LIMIT,
                max: MAX_FRAME_LEN,
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&body[NONCE_OFFSET..NONCE_OFFSET + NONCE_LEN]);
        Ok(Self {
            max_version,
            max_frame_len,
            cluster_id: ClusterId(le_u64(body, 8)),
            worker_id: WorkerId(le_u64(body, 16)),
            topology_id: TopologyId(le_u64(body, 24)),
            plan_version: le_u64(body, 32),
            nonce: Nonce::from_bytes(nonce),
        })
    }

    /// Writes the HELLO frame at the start of `buf`; returns [`Self::FRAME_LEN`].
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `buf` is shorter than the frame.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let frame = frame_buf(buf, Self::FRAME_LEN)?;
        write_header(frame, FrameType::Hello);
        let body = &mut frame[HEADER_LEN..];
        body[0..2].copy_from_slice(&self.max_version.to_le_bytes());
        body[2..4].fill(0);
        body[4..8].copy_from_slice(&self.max_frame_len.to_le_bytes());
        body[8..16].copy_from_slice(&self.cluster_id.0.to_le_bytes());
        body[16..24].copy_from_slice(&self.worker_id.0.to_le_bytes());
        body[24..32].copy_from_slice(&self.topology_id.0.to_le_bytes());
        body[32..40].copy_from_slice(&self.plan_version.to_le_bytes());
        body[NONCE_OFFSET..NONCE_OFFSET + NONCE_LEN].copy_from_slice(self.nonce.as_bytes());
        Ok(Self::FRAME_LEN)
    }

    /// The encoded frame as an array.
    pub fn to_frame_bytes(&self) -> [u8; Self::FRAME_LEN] {
        let mut frame = [0u8; Self::FRAME_LEN];
        self.encode(&mut frame)
            .expect("the array is exactly one HELLO frame");
        frame
    }
}

/// AUTH: the sender's proof that it knows the cluster secret.
///
/// Body layout (32 bytes): the proof, an HMAC-SHA-256 over both HELLO frames (see
/// [`crate::auth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    /// The sender's proof.
    pub proof: Proof,
}

impl Auth {
    /// Bytes of an AUTH body.
    pub const BODY_LEN: usize = PROOF_LEN;
    /// Bytes of an AUTH frame.
    pub const FRAME_LEN: usize = HEADER_LEN + Self::BODY_LEN;

    /// Decodes an AUTH body.
    ///
    /// # Errors
    /// [`DecodeError::BodyLength`] when the body is not 32 bytes.
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        expect_body_len(FrameType::Auth, body, Self::BODY_LEN)?;
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(body);
        Ok(Self {
            proof: Proof::from_bytes(proof),
        })
    }

    /// Writes the AUTH frame at the start of `buf`; returns [`Self::FRAME_LEN`].
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `buf` is shorter than the frame.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let frame = frame_buf(buf, Self::FRAME_LEN)?;
        write_header(frame, FrameType::Auth);
        frame[HEADER_LEN..].copy_from_slice(self.proof.as_bytes());
        Ok(Self::FRAME_LEN)
    }
}
