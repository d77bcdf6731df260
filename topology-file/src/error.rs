//! Errors of topology files: each names the file, and the line and key at fault.

use std::fmt;
use std::path::PathBuf;

use squall_core::topology::TopologyError;

/// Where in a file something is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlace {
    /// The file, as given (or `<text>` for text parsed directly).
    pub file: String,
    /// The line, from 1, when known.
    pub line: Option<usize>,
    /// The key path, such as `bolts[2].grouping.type`, when known.
    pub key: Option<String>,
}

impl fmt::Display for FilePlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        Ok(())
    }
}

/// Why a topology file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TopologyFileError {
    /// The file cannot be read.
    #[error("cannot read topology file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape (the YAML parser's message).
    #[error("{place}: {message}")]
    Syntax {
        /// Where.
        place: FilePlace,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not acceptable (unknown builtin, missing component, ...).
    #[error("{place}: {message}")]
    Invalid {
        /// Where.
        place: FilePlace,
        /// What is wrong.
        message: String,
    },
    /// The components and streams do not make a valid topology.
    #[error("{file}: {source}")]
    Topology {
        /// The file.
        file: String,
        /// What the topology validation found, naming the component, stream or field.
        source: Box<TopologyError>,
    },
}

impl TopologyFileError {
    /// Where the error is, when it is in the file.
    pub fn place(&self) -> Option<&FilePlace> {
        match self {
            TopologyFileError::Syntax { place, .. } | TopologyFileError::Invalid { place, .. } => {
                Some(place)
            }
            TopologyFileError::Read { .. } | TopologyFileError::Topology { .. } => None,
        }
    }

    /// The YAML parser's error, with its position and key path.
    pub(crate) fn syntax(file: &str, error: &serde_yaml_ng::Error) -> Self {
        let text = error.to_string();
        let (line, message) = match error.location() {
            Some(at) => {
                let suffix = format!(" at line {} column {}", at.line(), at.column());
                let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
                (Some(at.line()), message)
            }
            None => (None, text),
        };
        TopologyFileError::Syntax {
            place: FilePlace {
                file: file.to_owned(),
                line,
                key: None,
            },
            message,
        }
    }
}
