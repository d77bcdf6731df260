//! Per-topology worker keys: what a worker holds instead of the cluster secret.
//!
//! A supervisor derives the key of a topology from the cluster secret and hands it to the
//! topology's workers in [`WORKER_KEY_ENV`]:
//!
//! ```text
//! key = HKDF-SHA-256(ikm  = cluster secret,
//!                    salt = "squall worker key v1",
//!                    info = "squall worker key v1\0topology\0" || topology id,
//!                    32 bytes)
//! ```
//!
//! written as 64 lowercase hex digits; those 64 ASCII bytes are the key of the data plane's
//! handshake proofs ([`squall_net::auth`]). Workers of one topology share it, so they prove
//! themselves to each other; a worker of another topology holds another key and fails the
//! handshake. Nimbus verifies requests with the cluster secret only, so a request signed
//! with a worker key is refused: a leaked worker key gives no way to submit, kill or list.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;

use hkdf::Hkdf;
use sha2::Sha256;
use squall_net::ClusterSecret;

pub use crate::plan::WORKER_KEY_ENV;

/// Bytes of key material HKDF produces.
const KEY_BYTES: usize = 32;

/// Characters of a key as it travels: hex of its 32 bytes.
pub const WORKER_KEY_LEN: usize = 2 * KEY_BYTES;

const SALT: &[u8] = b"squall worker key v1";
const INFO_PREFIX: &[u8] = b"squall worker key v1\0topology\0";

/// A worker key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerKeyError {
    /// No key in the environment.
    #[error("no worker key: {WORKER_KEY_ENV} is not set (supervisors set it for their workers)")]
    Missing,
    /// The key is not what a supervisor derives.
    #[error(
        "the worker key in {WORKER_KEY_ENV} is unusable: expected {WORKER_KEY_LEN} lowercase hex \
         digits, found {found}"
    )]
    Malformed {
        /// What the value looks like, without showing it.
        found: String,
    },
}

/// The key the workers of one topology share. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerKey(Arc<str>);

impl WorkerKey {
    /// The key of `topology_id` under the cluster secret `secret_bytes`.
    pub(crate) fn derive(secret_bytes: &[u8], topology_id: &str) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), secret_bytes);
        let mut info = INFO_PREFIX.to_vec();
        info.extend_from_slice(topology_id.as_bytes());
        let mut key = [0u8; KEY_BYTES];
        hkdf.expand(&info, &mut key)
            .expect("32 bytes is within HKDF-SHA-256's output limit");
        Self(crate::artifact::hex(&key).into())
    }

    /// A key as a worker receives it.
    ///
    /// # Errors
    /// [`WorkerKeyError::Malformed`] unless it is [`WORKER_KEY_LEN`] lowercase hex digits.
    pub fn parse(value: &str) -> Result<Self, WorkerKeyError> {
        let well_formed = value.len() == WORKER_KEY_LEN
            && value
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !well_formed {
            let found = if value.is_empty() {
                "an empty value".to_owned()
            } else if value.len() != WORKER_KEY_LEN {
                format!("{} bytes", value.len())
            } else {
                "other characters".to_owned()
            };
            return Err(WorkerKeyError::Malformed { found });
        }
        Ok(Self(value.into()))
    }

    /// The key from [`WORKER_KEY_ENV`].
    ///
    /// # Errors
    /// When the variable is unset or the key malformed.
    pub fn from_env() -> Result<Self, WorkerKeyError> {
        match std::env::var_os(WORKER_KEY_ENV) {
            None => Err(WorkerKeyError::Missing),
            Some(value) => Self::parse(&value.to_string_lossy()),
        }
    }

    /// The value of [`WORKER_KEY_ENV`] for a worker process.
    pub fn env_value(&self) -> OsString {
        OsString::from(&*self.0)
    }

    /// The key as the worker-to-worker handshake takes it.
    pub fn transport_secret(&self) -> ClusterSecret {
        ClusterSecret::new(self.0.as_bytes().to_vec()).expect("64 bytes is long enough")
    }
}

impl fmt::Debug for WorkerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn keys_are_stable_per_topology_and_secret() {
        let key = WorkerKey::derive(SECRET, "words-1");
        assert_eq!(key, WorkerKey::derive(SECRET, "words-1"));
        assert_ne!(key, WorkerKey::derive(SECRET, "words-2"));
        assert_ne!(
            key,
            WorkerKey::derive(b"another secret of enough bytes", "words-1")
        );
        let text = key.env_value().into_string().unwrap();
        assert_eq!(text.len(), WORKER_KEY_LEN);
        assert_eq!(WorkerKey::parse(&text).unwrap(), key);
        // The secret never appears in the key.
        assert!(!text.as_bytes().windows(SECRET.len()).any(|w| w == SECRET));
    }

    #[test]
    fn keys_follow_rfc_5869_hkdf() {
        // Computed independently: HKDF-SHA-256 with the salt and info above.
        let key = WorkerKey::derive(SECRET, "words-1");
        let hkdf = Hkdf::<Sha256>::new(Some(b"squall worker key v1"), SECRET);
        let mut expected = [0u8; 32];
        hkdf.expand(b"squall worker key v1\0topology\0words-1", &mut expected)
            .unwrap();
        assert_eq!(key.env_value(), crate::artifact::hex(&expected).as_str());
    }

    #[test]
    fn malformed_keys_are_named_without_being_shown() {
        let cases = [
            ("", "an empty value"),
            ("abc", "3 bytes"),
            (&"g".repeat(64), "other characters"),
            (&"A".repeat(64), "other characters"),
        ];
        for (value, found) in cases {
            assert_eq!(
                WorkerKey::parse(value).unwrap_err().to_string(),
                format!(
                    "the worker key in SQUALL_WORKER_KEY is unusable: expected 64 lowercase hex \
                     digits, found {found}"
                )
            );
        }
        let key = WorkerKey::derive(SECRET, "words-1");
        assert_eq!(format!("{key:?}"), "WorkerKey(<redacted>)");
    }
}
