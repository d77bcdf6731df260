//! Receiving an uploaded artifact: its bytes go to a file as they arrive, hashed on the
//! way, so that an upload costs nimbus a buffer's worth of memory whatever its size.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::artifact::hex;

/// Bytes read from the connection at a time.
const CHUNK: usize = 64 << 10;

/// Why an upload was not received.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// The connection ended before the announced size.
    #[error("the artifact upload broke off after {received} of its {announced} bytes")]
    BrokeOff {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        announced: u64,
    },
    /// The bytes are not the announced artifact.
    #[error("the artifact's digest is {actual}, not {announced} as announced")]
    DigestMismatch {
        /// The digest announced.
        announced: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The connection or the file failed.
    #[error("cannot receive the artifact into {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl UploadError {
    fn with_path(self, path: &Path) -> Self {
        match self {
            Self::Io { source, .. } => Self::Io {
                path: path.display().to_string(),
                source,
            },
            other => other,
        }
    }
}

/// Reads exactly `announced` bytes from `connection` into a new file at `path` and checks
/// that their SHA-256 is `digest`. On any failure the file is removed.
///
/// # Errors
/// When the connection ends early, the digest differs, or the file cannot be written.
pub(crate) async fn receive(
    connection: &mut (impl AsyncRead + Unpin),
    path: &Path,
    digest: &str,
    announced: u64,
) -> Result<(), UploadError> {
    let io = |source| UploadError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(io)?;
    let result = receive_into(connection, file, digest, announced)
        .await
        .map_err(|error| error.with_path(path));
    if result.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    result
}

async fn receive_into(
    connection: &mut (impl AsyncRead + Unpin),
    mut file: tokio::fs::File,
    digest: &str,
    announced: u64,
) -> Result<(), UploadError> {
    let io = |source| UploadError::Io {
        path: String::new(),
        source,
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut received = 0u64;
    while received < announced {
        let wanted = usize::try_from(announced - received).map_or(CHUNK, |left| left.min(CHUNK));
        let read = connection.read(&mut buffer[..wanted]).await.map_err(io)?;
        if read == 0 {
            return Err(UploadError::BrokeOff {
                received,
                announced,
            });
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read]).await.map_err(io)?;
        received += read as u64;
    }
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    let actual = hex(&hasher.finalize());
    if actual != digest {
        return Err(UploadError::DigestMismatch {
            announced: digest.to_owned(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::sha256_hex;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Bytes larger than several chunks, not a repetition of one.
    fn upload_bytes() -> Vec<u8> {
        (0..CHUNK * 3 + 17)
            .map(|index| (index * 31 % 251) as u8)
            .collect()
    }

    #[test]
    fn an_upload_lands_in_its_file_with_its_digest_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let bytes = upload_bytes();
        let digest = sha256_hex(&bytes);
        // Bytes after the announced size belong to no one: they are not read.
        let mut sent = bytes.clone();
        sent.extend_from_slice(b"trailing");
        let mut connection = &sent[..];
        runtime()
            .block_on(receive(&mut connection, &path, &digest, bytes.len() as u64))
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(connection, b"trailing");
    }

    #[test]
    fn a_digest_mismatch_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let bytes = upload_bytes();
        let announced = "0".repeat(64);
        let error = runtime()
            .block_on(receive(
                &mut &bytes[..],
                &path,
                &announced,
                bytes.len() as u64,
            ))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the artifact's digest is {}, not {announced} as announced",
                sha256_hex(&bytes)
            )
        );
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_upload_that_breaks_off_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let bytes = upload_bytes();
        let digest = sha256_hex(&bytes);
        let error = runtime()
            .block_on(receive(
                &mut &bytes[..1000],
                &path,
                &digest,
                bytes.len() as u64,
            ))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the artifact upload broke off after 1000 of its {} bytes",
                bytes.len()
            )
        );
        assert!(!path.exists());
    }

    #[test]
    fn an_existing_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        std::fs::write(&path, b"someone else's").unwrap();
        let bytes = upload_bytes();
        let error = runtime()
            .block_on(receive(
                &mut &bytes[..],
                &path,
                &sha256_hex(&bytes),
                bytes.len() as u64,
            ))
            .unwrap_err();
        assert!(matches!(error, UploadError::Io { .. }), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }
}
