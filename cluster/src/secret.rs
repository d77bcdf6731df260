//! The cluster secret as the control plane uses it: loaded from the environment or a file,
//! the root of the workers' per-topology keys, and the key of the proofs that authenticate
//! requests to nimbus and its answers.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use squall_net::ClusterSecret;

use super::config::ClusterSettings;
use super::plan::SECRET_ENV;
use super::worker_key::WorkerKey;

/// How errors name the cluster secret.
const CLUSTER_SECRET: &str = "cluster secret";

/// Bytes of a proof ([`Secret::prove`]).
pub const PROOF_LEN: usize = squall_net::auth::PROOF_LEN;

/// Bytes of a key derived from the secret ([`Secret::derive_key`]).
pub const DERIVED_KEY_LEN: usize = 32;

/// Why no usable secret was found.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither the environment nor the configuration names a secret.
    #[error(
        "no cluster secret: set {SECRET_ENV} or cluster.secret_file in the configuration \
         (for example to a file made by `(umask 077; head -c 32 /dev/urandom | base64 > secret)`)"
    )]
    Missing,
    /// The secret file could not be read.
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        /// Whose secret: `cluster secret`, `client key`, ...
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret file can be read (or written) by users other than its owner.
    #[error(
        "the {what} file {path} is open to group or others (mode {mode:03o}); \
         make it private with `chmod 600 {path}`"
    )]
    NotPrivate {
        /// Whose secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The secret is unusable.
    #[error("the {what} from {origin} is unusable: {reason}")]
    Invalid {
        /// Whose secret.
        what: &'static str,
        /// Where it came from.
        origin: String,
        /// Why.
        reason: String,
    },
}

/// The secret shared by every daemon, client and worker of a cluster.
///
/// Cheap to clone; its `Debug` output never shows the bytes.
#[derive(Clone)]
pub struct Secret {
    bytes: Arc<[u8]>,
    net: ClusterSecret,
}

impl Secret {
    /// A secret of at least [`squall_net::auth::MIN_SECRET_LEN`] bytes, without NUL bytes
    /// (it travels in an environment variable).
    ///
    /// # Errors
    /// When the secret is too short or holds a NUL byte.
    pub fn new(bytes: impl Into<Vec<u8>>, origin: &str) -> Result<Self, SecretError> {
        Self::of(bytes.into(), CLUSTER_SECRET, origin)
    }

    fn of(bytes: Vec<u8>, what: &'static str, origin: &str) -> Result<Self, SecretError> {
        let invalid = |reason: String| SecretError::Invalid {
            what,
            origin: origin.to_owned(),
            reason,
        };
        if bytes.contains(&0) {
            return Err(invalid("it holds a NUL byte".to_owned()));
        }
        let net = ClusterSecret::new(bytes.clone()).map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            bytes: bytes.into(),
            net,
        })
    }

    /// The secret from [`SECRET_ENV`] if set, else from `settings.secret_file`.
    ///
    /// # Errors
    /// When neither is set, the file cannot be read, or the secret is unusable.
    pub fn load(settings: &ClusterSettings) -> Result<Self, SecretError> {
        if let Some(value) = std::env::var_os(SECRET_ENV).filter(|value| !value.is_empty()) {
            return Self::new(value.into_encoded_bytes(), SECRET_ENV);
        }
        match &settings.secret_file {
            Some(path) => Self::read(path),
            None => Err(SecretError::Missing),
        }
    }

    /// The secret in `path`, trailing whitespace removed.
    ///
    /// # Errors
    /// When the file cannot be read or the secret is unusable.
    pub fn read(path: &Path) -> Result<Self, SecretError> {
        Self::read_as(path, CLUSTER_SECRET)
    }

    /// The secret in `path`, checked like the cluster secret's file; errors call it
    /// `what` (`"client key"`, say).
    ///
    /// # Errors
    /// When the file cannot be read, others can open it, or the secret is unusable.
    pub fn read_as(path: &Path, what: &'static str) -> Result<Self, SecretError> {
        use std::os::unix::fs::PermissionsExt;
        let unreadable = |source| SecretError::Read {
            what,
            path: path.to_owned(),
            source,
        };
        // Anyone who reads the secret can submit topologies, i.e. run code as the daemons'
        // user: a file others can read is refused, not merely warned about.
        let mode = std::fs::metadata(path)
            .map_err(unreadable)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::NotPrivate {
                what,
                path: path.to_owned(),
                mode,
            });
        }
        let mut bytes = std::fs::read(path).map_err(unreadable)?;
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        Self::of(bytes, what, &path.display().to_string())
    }

    /// The secret's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The same secret as the worker-to-worker transport takes it.
    pub fn cluster_secret(&self) -> ClusterSecret {
        self.net.clone()
    }

    /// The key the workers of `topology_id` share ([`crate::worker_key`]): what a
    /// supervisor hands its workers instead of this secret.
    pub fn worker_key(&self, topology_id: &str) -> WorkerKey {
        WorkerKey::derive(&self.bytes, topology_id)
    }

    /// The value of [`SECRET_ENV`] for a daemon or client process.
    pub fn env_value(&self) -> OsString {
        // On Unix any bytes without NUL form a valid environment value.
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(self.bytes.to_vec())
    }

    /// A key for another use of the secret: HKDF-SHA-256 (RFC 5869) with the secret as input
    /// keying material, no salt, and `info` naming the use, so that no two uses share a key
    /// and none reveals the secret.
    pub fn derive_key(&self, info: &[u8]) -> [u8; DERIVED_KEY_LEN] {
        let mut key = [0u8; DERIVED_KEY_LEN];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &self.bytes)
            .expand(info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        key
    }

    /// The proof over a labelled message ([`ClusterSecret::prove`]).
    pub fn prove(&self, label: &str, parts: &[&[u8]]) -> [u8; PROOF_LEN] {
        self.net.prove(label, parts)
    }

    /// Whether `proof` is [`prove`](Self::prove)`(label, parts)`, compared in constant time.
    pub fn verify(&self, label: &str, parts: &[&[u8]], proof: &[u8]) -> bool {
        self.net.verify(label, parts, proof)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes, redacted>)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_and_never_shown() {
        let secret = Secret::new("0123456789abcdef-secret", "test").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(<23 bytes, redacted>)");
        let error = Secret::new("short", "the test").unwrap_err().to_string();
        assert!(
            error.starts_with(
                "the cluster secret from the test is unusable: cluster secret of 5 bytes"
            ),
            "{error}"
        );
        assert!(Secret::new(*b"0123456789abcdef\0", "test").is_err());
    }

    fn private_file(dir: &Path, contents: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("secret");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn files_lose_trailing_whitespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = private_file(dir.path(), "0123456789abcdef0123\n");
        let secret = Secret::read(&path).unwrap();
        assert_eq!(secret.env_value(), "0123456789abcdef0123");
    }

    #[test]
    fn files_others_can_open_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = private_file(dir.path(), "0123456789abcdef0123");
        for mode in [0o640, 0o604, 0o620, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = Secret::read(&path).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "the cluster secret file {p} is open to group or others (mode {mode:03o}); \
                     make it private with `chmod 600 {p}`",
                    p = path.display()
                )
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Secret::read(&path).is_ok());
    }

    #[test]
    fn derived_keys_depend_on_secret_and_use() {
        let secret = Secret::new("0123456789abcdef0123", "test").unwrap();
        let other = Secret::new("0123456789abcdef0124", "test").unwrap();
        let key = secret.derive_key(b"use one");
        assert_eq!(key, secret.derive_key(b"use one"));
        assert_ne!(key, secret.derive_key(b"use two"));
        assert_ne!(key, other.derive_key(b"use one"));
        // RFC 5869 with SHA-256, no salt: the first test vector's IKM and info give its OKM
        // prefix when the salt is empty (test case 3).
        let rfc = Secret::new(vec![0x0b; 22], "test").unwrap();
        assert_eq!(
            hex(&rfc.derive_key(b"")),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn proofs_bind_label_and_parts() {
        let secret = Secret::new("0123456789abcdef0123", "test").unwrap();
        let other = Secret::new("0123456789abcdef0124", "test").unwrap();
        let proof = secret.prove("request", &[b"nonce", b"body"]);
        assert!(secret.verify("request", &[b"nonce", b"body"], &proof));
        assert!(!other.verify("request", &[b"nonce", b"body"], &proof));
        assert!(!secret.verify("response", &[b"nonce", b"body"], &proof));
        // Part boundaries count: "nonceb" + "ody" is another transcript.
        assert!(!secret.verify("request", &[b"nonceb", b"ody"], &proof));
        assert!(!secret.verify("request", &[b"nonce", b"body"], &proof[..31]));
    }
}
