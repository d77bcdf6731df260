//! Checks on values that come from outside a daemon — ZooKeeper records, artifact
//! manifests — before they become file names or programs to run.
//!
//! ZooKeeper is shared state that anyone with access to the ensemble can write; a
//! topology id of `../../etc` or an artifact digest of `/tmp/x` must not reach
//! `Path::join`, which would leave the data directory or replace it. Every value is held to
//! the shape the system itself generates, so anything else is refused rather than cleaned.

use std::path::{Component, Path};

/// The longest topology id accepted (worker directories append `-<port>` and must stay
/// within a file name's 255 bytes).
pub const MAX_TOPOLOGY_ID_LEN: usize = 200;

/// A value that does not have the shape its field requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is refused: {expected}")]
pub struct InvalidValue {
    /// Which field held it (`assignment artifact`, `manifest program`, ...).
    pub field: &'static str,
    /// The value, as found.
    pub value: String,
    /// The shape the field requires.
    pub expected: &'static str,
}

impl InvalidValue {
    fn new(field: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            field,
            value: value.to_owned(),
            expected,
        }
    }
}

/// Checks a topology id: `<name>-<seconds>` or `<name>-<seconds>-<n>` as nimbus makes
/// them, where the name holds only ASCII letters, digits, `_`, `-` and `.`.
///
/// # Errors
/// When `id` has another shape; `field` names where it was found.
pub fn topology_id(field: &'static str, id: &str) -> Result<(), InvalidValue> {
    const EXPECTED: &str =
        "a topology id is <name>-<digits>, at most 200 letters, digits, '_', '-' or '.'";
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let ends_in_number = id
        .rsplit_once('-')
        .is_some_and(|(name, number)| !name.is_empty() && is_digits(number));
    if id.len() <= MAX_TOPOLOGY_ID_LEN && id.chars().all(plain) && ends_in_number {
        Ok(())
    } else {
        Err(InvalidValue::new(field, id, EXPECTED))
    }
}

/// Checks an artifact digest: a SHA-256 in lowercase hex.
///
/// # Errors
/// When `digest` has another shape; `field` names where it was found.
pub fn digest(field: &'static str, digest: &str) -> Result<(), InvalidValue> {
    if crate::artifact::is_digest(digest) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            field,
            digest,
            "a digest is 64 lowercase hex digits",
        ))
    }
}

/// Checks a path inside an artifact (its program, its files): relative, made of plain
/// names only — no `..`, no `.`, no empty or absolute parts — and free of control
/// characters.
///
/// # Errors
/// When `path` could lead outside the directory it is joined to; `field` names where it
/// was found.
pub fn relative_path(field: &'static str, path: &str) -> Result<(), InvalidValue> {
    let plain_parts = path
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");
    let plain_components = Path::new(path)
        .components()
        .all(|component| matches!(component, Component::Normal(_)));
    if !path.is_empty() && plain_parts && plain_components && !path.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            field,
            path,
            "a path inside an artifact is relative, without '..', '.' or empty parts",
        ))
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_ids_as_nimbus_makes_them_pass() {
        for id in ["wc-1700000000", "wc-1700000000-2", "my.top_ology-x-17"] {
            assert_eq!(topology_id("topology id", id), Ok(()), "{id}");
        }
    }

    #[test]
    fn topology_ids_that_leave_a_directory_are_refused() {
        for id in [
            "",
            "..",
            ".",
            "../../etc-1",
            "/etc/passwd-1",
            "wc",
            "wc-",
            "-17",
            "wc-17/..",
            "wc-1\n",
            &format!("{}-1", "a".repeat(200)),
        ] {
            let error = topology_id("assignment topology_id", id).unwrap_err();
            assert_eq!(error.field, "assignment topology_id");
            assert_eq!(error.value, id);
        }
        assert_eq!(
            topology_id("topology id", "../x").unwrap_err().to_string(),
            "topology id \"../x\" is refused: a topology id is <name>-<digits>, at most 200 \
             letters, digits, '_', '-' or '.'"
        );
    }

    #[test]
    fn digests_are_lowercase_hex_sha256() {
        assert_eq!(digest("artifact", &"ab".repeat(32)), Ok(()));
        for bad in [
            "",
            "/tmp/x",
            "../artifacts",
            &"AB".repeat(32),
            &"a".repeat(63),
            &format!("{}/", "a".repeat(63)),
        ] {
            assert_eq!(digest("artifact", bad).unwrap_err().value, bad);
        }
    }

    #[test]
    fn artifact_paths_stay_inside() {
        for good in ["bin/wordcount", "a", "resources/split.py"] {
            assert_eq!(relative_path("manifest program", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/bin/sh",
            "../sh",
            "bin/../../sh",
            "./bin",
            "bin//x",
            "bin/",
            "bin/x\0",
        ] {
            let error = relative_path("manifest program", bad).unwrap_err();
            assert_eq!(error.field, "manifest program", "{bad}");
        }
    }
}
