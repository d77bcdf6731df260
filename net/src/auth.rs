//! Mutual authentication: proofs that a peer knows the cluster secret, bound to one
//! connection by both sides' nonces.
//!
//! Each side opens with a HELLO carrying a fresh 32-byte nonce. Once it has both HELLOs, a
//! side sends an AUTH whose proof is
//!
//! ```text
//! HMAC-SHA-256(key = cluster secret,
//!              "squall v1 auth\0" || role || initiator's HELLO frame || acceptor's HELLO frame)
//! ```
//!
//! where `role` is `"initiator\0"` or `"acceptor\0"` for the side that proves, and each HELLO
//! frame is its 80 bytes as sent, header included (so the topology and plan version each side
//! announced are covered too). The role label keeps a proof from being
//! reflected back to its author; the nonces keep a recorded proof from being replayed on
//! another connection. Proofs are compared in constant time.
//!
//! What this buys: neither side accepts tuples from, or sends tuples to, a peer that cannot
//! prove the secret. It does not encrypt or sign the frames that follow, so it does not stop
//! an attacker who sits on the path and alters traffic; run workers on a private network or
//! through a tunnel where that matters.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::conn::Side;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 32;

/// Bytes of a proof.
pub const PROOF_LEN: usize = 32;

/// The shortest cluster secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The secret every worker of a cluster shares; the key of the handshake's proofs.
///
/// Cheap to clone (reference-counted). Its `Debug` output never shows the bytes.
#[derive(Clone)]
pub struct ClusterSecret(Arc<[u8]>);

/// A cluster secret shorter than [`MIN_SECRET_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cluster secret of {len} bytes is shorter than the minimum of {min} bytes")]
pub struct SecretTooShort {
    /// Length of the rejected secret.
    pub len: usize,
    /// [`MIN_SECRET_LEN`].
    pub min: usize,
}

impl ClusterSecret {
    /// A secret of at least [`MIN_SECRET_LEN`] bytes; use random bytes (32 or more).
    ///
    /// # Errors
    /// [`SecretTooShort`] for shorter secrets.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretTooShort> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort {
                len: bytes.len(),
                min: MIN_SECRET_LEN,
            });
        }
        Ok(Self(bytes.into()))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    /// The control plane's proof over a labelled message:
    /// `HMAC-SHA-256(secret, "squall control v1\0" || label || 0 || part_1 || ...)`, each part
    /// preceded by its length as 8 little-endian bytes, so part boundaries count. Requests to
    /// nimbus and DRPC messages are authenticated with it.
    pub fn prove(&self, label: &str, parts: &[&[u8]]) -> [u8; PROOF_LEN] {
        let tag = self
            .control_transcript(label, parts)
            .finalize()
            .into_bytes();
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(&tag);
        proof
    }

    /// Whether `proof` is [`prove`](Self::prove)`(label, parts)`, compared in constant time.
    pub fn verify(&self, label: &str, parts: &[&[u8]], proof: &[u8]) -> bool {
        self.control_transcript(label, parts)
            .verify_slice(proof)
            .is_ok()
    }

    fn control_transcript(&self, label: &str, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.mac();
        mac.update(b"squall control v1\0");
        mac.update(label.as_bytes());
        mac.update(&[0]);
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret(<{} bytes, redacted>)", self.0.len())
    }
}

/// Fresh random bytes a side puts in its HELLO.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// A nonce of the given bytes; tests use fixed ones to be deterministic.
    pub const fn from_bytes(bytes: [u8; NONCE_LEN]) -> Self {
        Self(bytes)
    }

    /// A nonce from the operating system's random source.
    ///
    /// # Errors
    /// When the operating system cannot provide random bytes.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; NONCE_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The nonce's bytes.
    pub fn as_bytes(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", Hex(&self.0))
    }
}

/// An AUTH frame's proof: an HMAC-SHA-256 tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proof([u8; PROOF_LEN]);

impl Proof {
    /// A proof of the given bytes.
    pub const fn from_bytes(bytes: [u8; PROOF_LEN]) -> Self {
        Self(bytes)
    }

    /// The proof's bytes.
    pub fn as_bytes(&self) -> &[u8; PROOF_LEN] {
        &self.0
    }

    /// The proof that `prover` knows `secret`, over the two HELLO frames of a connection.
    pub fn compute(
        secret: &ClusterSecret,
        prover: Side,
        initiator_hello: &[u8],
        acceptor_hello: &[u8],
    ) -> Self {
        let tag = transcript(secret, prover, initiator_hello, acceptor_hello)
            .finalize()
            .into_bytes();
        let mut bytes = [0u8; PROOF_LEN];
        bytes.copy_from_slice(&tag);
        Self(bytes)
    }

    /// Whether this is `prover`'s proof over the two HELLO frames, compared in constant
    /// time.
    pub fn verify(
        &self,
        secret: &ClusterSecret,
        prover: Side,
        initiator_hello: &[u8],
        acceptor_hello: &[u8],
    ) -> bool {
        transcript(secret, prover, initiator_hello, acceptor_hello)
            .verify_slice(&self.0)
            .is_ok()
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proof({})", Hex(&self.0))
    }
}

fn transcript(
    secret: &ClusterSecret,
    prover: Side,
    initiator_hello: &[u8],
    acceptor_hello: &[u8],
) -> HmacSha256 {
    let role: &[u8] = match prover {
        Side::Initiator => b"initiator\0",
        Side::Acceptor => b"acceptor\0",
    };
    secret
        .mac()
        .chain_update(b"squall v1 auth\0")
        .chain_update(role)
        .chain_update(initiator_hello)
        .chain_update(acceptor_hello)
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ClusterSecret {
        ClusterSecret::new(*b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn proofs_verify_only_for_their_role_secret_and_hellos() {
        let (a, b) = ([1u8; 64], [2u8; 64]);
        let proof = Proof::compute(&secret(), Side::Initiator, &a, &b);
        assert!(proof.verify(&secret(), Side::Initiator, &a, &b));
        assert!(!proof.verify(&secret(), Side::Acceptor, &a, &b));
        assert!(!proof.verify(&secret(), Side::Initiator, &b, &a));
        let other = ClusterSecret::new(*b"another secret of enough bytes").unwrap();
        assert!(!proof.verify(&other, Side::Initiator, &a, &b));
    }

    #[test]
    fn short_secrets_are_refused_and_secrets_never_print() {
        assert_eq!(
            ClusterSecret::new(*b"short").unwrap_err().to_string(),
            "cluster secret of 5 bytes is shorter than the minimum of 16 bytes"
        );
        assert_eq!(
            format!("{:?}", secret()),
            "ClusterSecret(<32 bytes, redacted>)"
        );
    }

    #[test]
    fn random_nonces_differ() {
        assert_ne!(Nonce::random().unwrap(), Nonce::random().unwrap());
    }
}
