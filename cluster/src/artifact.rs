//! Topology artifacts: what a submission uploads and a supervisor unpacks before it starts
//! workers.
//!
//! An artifact is an uncompressed tar archive whose first entry, [`MANIFEST_FILE`], names
//! the program workers run ([`ArtifactManifest::program`]): the topology's own binary for
//! topologies written in Rust, or none for topologies described in files, which the stock
//! `squall` binary runs (the files and their resources are the rest of the archive).
//! Entries carry no timestamps or owners, so the same files always make the same archive,
//! and artifacts are stored and fetched by the SHA-256 of their bytes.
//!
//! ```
//! use squall_cluster::artifact::{ArtifactBuilder, unpack};
//!
//! let mut builder = ArtifactBuilder::stock();
//! builder.add_bytes("topology.yaml", b"name: wc\n", false).unwrap();
//! let artifact = builder.build().unwrap();
//! assert_eq!(artifact.digest.len(), 64);
//!
//! let dir = tempfile::tempdir().unwrap();
//! let manifest = unpack(&artifact.bytes, &dir.path().join("wc")).unwrap();
//! assert_eq!(manifest.program, None);
//! assert_eq!(std::fs::read(dir.path().join("wc/topology.yaml")).unwrap(), b"name: wc\n");
//! ```

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validate::{self, InvalidValue};

/// Name of the manifest entry.
pub const MANIFEST_FILE: &str = "squall-artifact.json";

/// Format number of the manifest.
pub const FORMAT: u32 = 1;

/// Why an artifact could not be built, checked or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A path inside the archive is unsafe or malformed.
    #[error("artifact entry {path:?} is not a plain relative path")]
    BadPath {
        /// The entry's path.
        path: String,
    },
    /// The archive is malformed or lacks its manifest.
    #[error("the artifact is not valid: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A value of the manifest, or a digest, has a shape that could lead outside the
    /// artifact's directory.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The bytes do not have the expected digest.
    #[error("artifact digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
}

/// What an artifact holds and how its workers start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactManifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Path (inside the archive) of the program workers run as `<program> worker --plan
    /// <file>`; `None` for the stock `squall` binary.
    pub program: Option<String>,
    /// Every other entry, in archive order.
    pub files: Vec<String>,
}

/// An artifact's bytes and digest.
#[derive(Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The archive.
    pub bytes: Vec<u8>,
    /// SHA-256 of [`bytes`](Self::bytes), lowercase hex.
    pub digest: String,
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("bytes", &self.bytes.len())
            .field("digest", &self.digest)
            .finish()
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// Whether `digest` looks like a SHA-256 in lowercase hex.
pub fn is_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks an archive path: relative, no `.` or `..` components, no empty components.
fn check_entry_path(path: &str) -> Result<(), ArtifactError> {
    let bad = || ArtifactError::BadPath {
        path: path.to_owned(),
    };
    if path.is_empty() || path.ends_with('/') || path == MANIFEST_FILE {
        return Err(bad());
    }
    for component in Path::new(path).components() {
        if !matches!(component, Component::Normal(_)) {
            return Err(bad());
        }
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad());
    }
    Ok(())
}

/// Assembles an artifact.
#[derive(Debug, Clone)]
pub struct ArtifactBuilder {
    program: Option<String>,
    entries: Vec<(String, Vec<u8>, bool)>,
}

impl ArtifactBuilder {
    /// An artifact whose workers run the program at `path` (a topology binary), stored as
    /// `bin/<file name>`.
    ///
    /// # Errors
    /// When the program cannot be read.
    pub fn program(path: &Path) -> Result<Self, ArtifactError> {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| ArtifactError::BadPath {
                path: path.display().to_string(),
            })?;
        let entry = format!("bin/{name}");
        let mut builder = Self {
            program: Some(entry.clone()),
            entries: Vec::new(),
        };
        builder.add_file(&entry, path, true)?;
        Ok(builder)
    }

    /// An artifact run by the stock `squall` binary: add the topology file and its
    /// resources.
    pub fn stock() -> Self {
        Self {
            program: None,
            entries: Vec::new(),
        }
    }

    /// Adds the file at `local` as `entry`.
    ///
    /// # Errors
    /// When the path is unsafe or the file cannot be read.
    pub fn add_file(
        &mut self,
        entry: &str,
        local: &Path,
        executable: bool,
    ) -> Result<&mut Self, ArtifactError> {
        let bytes = std::fs::read(local).map_err(|source| ArtifactError::Io {
            action: "cannot read",
            path: local.to_owned(),
            source,
        })?;
        self.add_bytes(entry, &bytes, executable)
    }

    /// Adds `bytes` as `entry`.
    ///
    /// # Errors
    /// When the path is unsafe or already taken.
    pub fn add_bytes(
        &mut self,
        entry: &str,
        bytes: &[u8],
        executable: bool,
    ) -> Result<&mut Self, ArtifactError> {
        check_entry_path(entry)?;
        if self.entries.iter().any(|(name, _, _)| name == entry) {
            return Err(ArtifactError::BadPath {
                path: entry.to_owned(),
            });
        }
        self.entries
            .push((entry.to_owned(), bytes.to_vec(), executable));
        Ok(self)
    }

    /// Whether `entry` was added.
    pub fn contains(&self, entry: &str) -> bool {
        self.entries.iter().any(|(name, _, _)| name == entry)
    }

    /// The archive and its digest.
    ///
    /// # Errors
    /// Never in practice (writing to memory).
    pub fn build(&self) -> Result<Artifact, ArtifactError> {
        let manifest = ArtifactManifest {
            format: FORMAT,
            program: self.program.clone(),
            files: self
                .entries
                .iter()
                .map(|(name, _, _)| name.clone())
                .collect(),
        };
        let io = |source| ArtifactError::Io {
            action: "cannot build archive",
            path: PathBuf::from("<memory>"),
            source,
        };
        let mut builder = tar::Builder::new(Vec::new());
        let manifest = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
        append(&mut builder, MANIFEST_FILE, &manifest, false).map_err(io)?;
        for (name, bytes, executable) in &self.entries {
            append(&mut builder, name, bytes, *executable).map_err(io)?;
        }
        let bytes = builder.into_inner().map_err(io)?;
        let digest = sha256_hex(&bytes);
        Ok(Artifact { bytes, digest })
    }
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &str,
    bytes: &[u8],
    executable: bool,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(if executable { 0o755 } else { 0o644 });
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, bytes)
}

/// Unpacks the archive `bytes` into `dest` (which must not exist yet; it appears
/// complete or not at all) and returns its manifest.
///
/// # Errors
/// When the archive is malformed, lacks its manifest, holds unsafe paths or anything but
/// regular files, or `dest` cannot be written.
pub fn unpack(bytes: &[u8], dest: &Path) -> Result<ArtifactManifest, ArtifactError> {
    unpack_from(bytes, dest)
}

/// Like [`unpack`], reading the archive from `archive` (an uploaded artifact's file) instead
/// of memory.
///
/// # Errors
/// As [`unpack`].
pub fn unpack_from(archive: impl Read, dest: &Path) -> Result<ArtifactManifest, ArtifactError> {
    let malformed = |reason: String| ArtifactError::Malformed { reason };
    let staging = staging_path(dest);
    let _ = std::fs::remove_dir_all(&staging);
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| ArtifactError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&staging).map_err(io("cannot create", &staging))?;
    let result = (|| {
        let mut archive = tar::Archive::new(archive);
        let mut manifest: Option<ArtifactManifest> = None;
        let mut unpacked: Vec<String> = Vec::new();
        let entries = archive
            .entries()
            .map_err(|error| malformed(error.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|error| malformed(error.to_string()))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(malformed(
                    "it holds an entry that is not a regular file".into(),
                ));
            }
            let name = entry
                .path()
                .map_err(|error| malformed(error.to_string()))?
                .to_str()
                .ok_or_else(|| malformed("an entry's path is not UTF-8".into()))?
                .to_owned();
            if manifest.is_none() {
                if name != MANIFEST_FILE {
                    return Err(malformed(format!("its first entry is not {MANIFEST_FILE}")));
                }
                let mut text = Vec::new();
                entry
                    .read_to_end(&mut text)
                    .map_err(|error| malformed(error.to_string()))?;
                let parsed: ArtifactManifest = serde_json::from_slice(&text)
                    .map_err(|error| malformed(format!("bad manifest: {error}")))?;
                if parsed.format != FORMAT {
                    return Err(malformed(format!(
                        "manifest format {} is not {FORMAT}",
                        parsed.format
                    )));
                }
                manifest = Some(parsed);
                continue;
            }
            check_entry_path(&name)?;
            if unpacked.contains(&name) {
                return Err(malformed(format!("it holds the entry {name} twice")));
            }
            let target = staging.join(&name);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
            }
            let executable = entry.header().mode().is_ok_and(|mode| mode & 0o111 != 0);
            let mut file = std::fs::File::create(&target).map_err(io("cannot create", &target))?;
            std::io::copy(&mut entry, &mut file).map_err(io("cannot write", &target))?;
            file.flush().map_err(io("cannot write", &target))?;
            if executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                    .map_err(io("cannot make executable", &target))?;
            }
            unpacked.push(name);
        }
        let manifest = manifest.ok_or_else(|| malformed("it is empty".into()))?;
        if manifest.files != unpacked {
            return Err(malformed(format!(
                "its manifest lists the files {:?} but it holds {unpacked:?}",
                manifest.files
            )));
        }
        // The program is run from the unpacked directory: it must be one of its files, not
        // a path that leads elsewhere.
        if let Some(program) = &manifest.program {
            validate::relative_path("manifest program", program)?;
        }
        if let Some(program) = &manifest.program
            && !unpacked.contains(program)
        {
            return Err(malformed(format!(
                "its program {program:?} is not one of its files"
            )));
        }
        let text = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
        let manifest_path = staging.join(MANIFEST_FILE);
        std::fs::write(&manifest_path, text).map_err(io("cannot write", &manifest_path))?;
        Ok(manifest)
    })();
    match result {
        Ok(manifest) => {
            std::fs::rename(&staging, dest).map_err(io("cannot rename into", dest))?;
            Ok(manifest)
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(error)
        }
    }
}

/// Reads the manifest of an artifact unpacked in `dir`.
///
/// # Errors
/// When it is missing or malformed.
pub fn read_manifest(dir: &Path) -> Result<ArtifactManifest, ArtifactError> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read(&path).map_err(|source| ArtifactError::Io {
        action: "cannot read",
        path: path.clone(),
        source,
    })?;
    let manifest: ArtifactManifest =
        serde_json::from_slice(&text).map_err(|error| ArtifactError::Malformed {
            reason: format!("bad manifest {}: {error}", path.display()),
        })?;
    // The program is joined to `dir` and executed: the file on disk is checked again, not
    // trusted because `unpack` checked it once.
    if let Some(program) = &manifest.program {
        validate::relative_path("manifest program", program)?;
    }
    Ok(manifest)
}

fn staging_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    PathBuf::from(name)
}

/// How the files of uploads still being received begin.
const UPLOAD_PREFIX: &str = ".upload-";

/// Artifacts kept by a nimbus, one file per digest.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
}

impl ArtifactStore {
    /// The store in `dir` (created if missing).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dir).map_err(|source| ArtifactError::Io {
            action: "cannot create",
            path: dir.to_owned(),
            source,
        })?;
        // Uploads that a stopped nimbus left unfinished.
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(UPLOAD_PREFIX))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// A fresh file name in the store's directory for an upload of the artifact `digest`
    /// to be received into before it is checked and [adopted](Self::adopt).
    ///
    /// # Errors
    /// When the digest has the wrong shape.
    pub fn upload_path(&self, digest: &str) -> Result<PathBuf, ArtifactError> {
        validate::digest("artifact digest", digest)?;
        let mut unique = [0u8; 8];
        // A clash only makes one of two simultaneous uploads of one artifact fail.
        let _ = getrandom::fill(&mut unique);
        Ok(self
            .dir
            .join(format!("{UPLOAD_PREFIX}{digest}-{}", hex(&unique))))
    }

    /// Makes the received file `upload` the artifact `digest` (whose bytes the caller has
    /// checked against it).
    ///
    /// # Errors
    /// When the digest has the wrong shape or the file cannot be moved.
    pub fn adopt(&self, digest: &str, upload: &Path) -> Result<(), ArtifactError> {
        validate::digest("artifact digest", digest)?;
        let path = self.path(digest);
        std::fs::rename(upload, &path).map_err(|source| ArtifactError::Io {
            action: "cannot rename into",
            path,
            source,
        })
    }

    /// Where the artifact `digest` is kept.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.tar"))
    }

    /// Whether the artifact `digest` is here.
    pub fn contains(&self, digest: &str) -> bool {
        is_digest(digest) && self.path(digest).is_file()
    }

    /// Stores `bytes` after checking that they are the artifact `digest`.
    ///
    /// # Errors
    /// When the digest differs or the file cannot be written.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<(), ArtifactError> {
        validate::digest("artifact digest", digest)?;
        let actual = sha256_hex(bytes);
        if actual != digest {
            return Err(ArtifactError::DigestMismatch {
                expected: digest.to_owned(),
                actual,
            });
        }
        let path = self.path(digest);
        let staging = staging_path(&path);
        let io = |source| ArtifactError::Io {
            action: "cannot write",
            path: path.clone(),
            source,
        };
        std::fs::write(&staging, bytes).map_err(io)?;
        std::fs::rename(&staging, &path).map_err(io)
    }

    /// The bytes of the artifact `digest`, checked against it.
    ///
    /// # Errors
    /// When it is missing, unreadable or corrupt.
    pub fn get(&self, digest: &str) -> Result<Vec<u8>, ArtifactError> {
        validate::digest("artifact digest", digest)?;
        let path = self.path(digest);
        let bytes = std::fs::read(&path).map_err(|source| ArtifactError::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        })?;
        let actual = sha256_hex(&bytes);
        if actual != digest {
            return Err(ArtifactError::DigestMismatch {
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The digests held.
    pub fn list(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut digests: Vec<String> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let digest = name.strip_suffix(".tar")?;
                is_digest(digest).then(|| digest.to_owned())
            })
            .collect();
        digests.sort();
        digests
    }

    /// Deletes the artifact `digest`.
    pub fn remove(&self, digest: &str) {
        if !is_digest(digest) {
            return;
        }
        let _ = std::fs::remove_file(self.path(digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_round_trip_and_stay_executable() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("wordcount");
        std::fs::write(&program, b"#!/bin/sh\necho hi\n").unwrap();
        let mut builder = ArtifactBuilder::program(&program).unwrap();
        builder
            .add_bytes("resources/split.py", b"print()\n", false)
            .unwrap();
        let artifact = builder.build().unwrap();
        assert_eq!(
            artifact,
            builder.build().unwrap(),
            "archives are reproducible"
        );
        let dest = dir.path().join("unpacked");
        let manifest = unpack(&artifact.bytes, &dest).unwrap();
        assert_eq!(manifest.program.as_deref(), Some("bin/wordcount"));
        assert_eq!(manifest.files, ["bin/wordcount", "resources/split.py"]);
        assert_eq!(read_manifest(&dest).unwrap(), manifest);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dest.join("bin/wordcount"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert!(!dir.path().join("unpacked.partial").exists());
    }

    #[test]
    fn unsafe_paths_and_strange_archives_are_refused() {
        let mut builder = ArtifactBuilder::stock();
        for bad in [
            "../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "",
            "dir/",
            MANIFEST_FILE,
        ] {
            assert!(
                matches!(
                    builder.add_bytes(bad, b"", false),
                    Err(ArtifactError::BadPath { .. })
                ),
                "{bad:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(b"not a tar", &dir.path().join("x")).unwrap_err();
        assert!(matches!(error, ArtifactError::Malformed { .. }), "{error}");
        // An archive without manifest.
        let mut plain = tar::Builder::new(Vec::new());
        append(&mut plain, "a.txt", b"a", false).unwrap();
        let error = unpack(&plain.into_inner().unwrap(), &dir.path().join("y")).unwrap_err();
        assert!(error.to_string().contains("first entry is not"), "{error}");
        assert!(!dir.path().join("y").exists());
    }

    /// An archive with `manifest` as its manifest and `entries` after it.
    fn archive(manifest: &str, entries: &[&str]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        append(&mut tar, MANIFEST_FILE, manifest.as_bytes(), false).unwrap();
        for name in entries {
            append(&mut tar, name, b"#!/bin/sh\n", true).unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[test]
    fn a_program_outside_the_artifact_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for program in ["/bin/sh", "../../bin/sh", "bin/../../sh"] {
            let manifest = format!(r#"{{"format":1,"program":"{program}","files":["bin/real"]}}"#);
            let error =
                unpack(&archive(&manifest, &["bin/real"]), &dir.path().join("x")).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("manifest program {program:?} is refused")),
                "{error}"
            );
            assert!(!dir.path().join("x").exists());
        }
        let manifest = r#"{"format":1,"program":"missing","files":["bin/real"]}"#;
        let error = unpack(&archive(manifest, &["bin/real"]), &dir.path().join("x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the artifact is not valid: its program \"missing\" is not one of its files"
        );
    }

    #[test]
    fn a_manifest_changed_on_disk_cannot_name_a_program_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("unpacked");
        let manifest = r#"{"format":1,"program":"bin/real","files":["bin/real"]}"#;
        unpack(&archive(manifest, &["bin/real"]), &dest).unwrap();
        assert_eq!(
            read_manifest(&dest).unwrap().program.as_deref(),
            Some("bin/real")
        );
        for program in ["/bin/sh", "../../../bin/sh"] {
            let tampered = format!(r#"{{"format":1,"program":"{program}","files":["bin/real"]}}"#);
            std::fs::write(dest.join(MANIFEST_FILE), tampered).unwrap();
            let error = read_manifest(&dest).unwrap_err();
            assert!(
                matches!(&error, ArtifactError::Invalid(invalid) if invalid.field == "manifest program" && invalid.value == program),
                "{error}"
            );
        }
    }

    #[test]
    fn the_store_refuses_digests_that_are_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(&dir.path().join("store")).unwrap();
        std::fs::write(dir.path().join("outside.tar"), b"x").unwrap();
        for digest in ["../outside", "/tmp/x"] {
            assert!(!store.contains(digest));
            assert!(matches!(
                store.get(digest),
                Err(ArtifactError::Invalid(invalid)) if invalid.value == digest
            ));
            assert!(matches!(
                store.put(digest, b"x"),
                Err(ArtifactError::Invalid(_))
            ));
            store.remove(digest);
        }
        assert!(dir.path().join("outside.tar").exists());
    }

    #[test]
    fn the_manifest_must_list_exactly_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = r#"{"format":1,"program":null,"files":["a"]}"#;
        let error = unpack(&archive(manifest, &["a", "b"]), &dir.path().join("x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"the artifact is not valid: its manifest lists the files ["a"] but it holds ["a", "b"]"#
        );
        let manifest = r#"{"format":1,"program":null,"files":["a","a"]}"#;
        let error = unpack(&archive(manifest, &["a", "a"]), &dir.path().join("x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the artifact is not valid: it holds the entry a twice"
        );
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn the_store_checks_digests() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let artifact = ArtifactBuilder::stock().build().unwrap();
        assert!(matches!(
            store.put(&"0".repeat(64), &artifact.bytes),
            Err(ArtifactError::DigestMismatch { .. })
        ));
        store.put(&artifact.digest, &artifact.bytes).unwrap();
        assert!(store.contains(&artifact.digest));
        assert_eq!(store.list(), std::slice::from_ref(&artifact.digest));
        assert_eq!(store.get(&artifact.digest).unwrap(), artifact.bytes);
        std::fs::write(store.path(&artifact.digest), b"tampered").unwrap();
        assert!(store.get(&artifact.digest).is_err());
        store.remove(&artifact.digest);
        assert!(store.list().is_empty());
        assert!(is_digest(&artifact.digest));
        assert!(!is_digest("ABC"));
    }
}
