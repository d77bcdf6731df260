//! Topologies described in YAML files, in the spirit of Storm's Flux: no Rust to write.
//!
//! A file names the topology, its settings, its spouts and bolts — built-in components
//! ([`ComponentRegistry::with_builtins`]) and shell components run by a subprocess that
//! speaks the multi-lang protocol ([`squall_multilang`]) — and the streams between them.
//! `docs/topology-files.md` is the reference; in short:
//!
//! ```yaml
//! name: wordcount
//! config:
//!   topology.max.spout.pending: 500
//! spouts:
//!   - id: sentences
//!     shell: {command: python3, args: [sentence_spout.py]}
//!     outputs: [{fields: [sentence]}]
//! bolts:
//!   - id: split
//!     parallelism: 2
//!     shell: {command: python3, args: [split_bolt.py]}
//!     outputs: [{fields: [word]}]
//!   - id: count
//!     builtin: field_count
//!     params: {field: word}
//! streams:
//!   - {from: sentences, to: split, grouping: shuffle}
//!   - {from: split, to: count, grouping: {type: fields, args: [word]}}
//! ```
//!
//! Relative paths (scripts, working and resources directories, files in params) are
//! resolved against the topology's artifact directory when one is given (a cluster worker
//! runs the file where the artifact was unpacked), else against the file's directory. Every
//! error names the file and the line and key at fault.
//!
//! ```
//! use squall_topology_file::{Overrides, TopologyFile};
//!
//! let text = "name: numbers\nspouts:\n  - id: numbers\n    builtin: sequence\n    params: {count: 100}\n\
//!             bolts:\n  - id: count\n    builtin: field_count\n\
//!             streams:\n  - {from: numbers, to: count, grouping: {type: fields, args: [n]}}\n";
//! let file = TopologyFile::parse(text, "numbers.yaml", std::path::Path::new(".")).unwrap();
//! let topology = file.build(&Overrides::default()).unwrap();
//! assert_eq!(topology.name(), "numbers");
//!
//! let typo = text.replace("grouping: {type: fields", "grouping: {type: feilds");
//! let error = TopologyFile::parse(&typo, "numbers.yaml", std::path::Path::new(".")).unwrap_err();
//! assert!(error.to_string().starts_with("numbers.yaml:10: streams[0].grouping.type: unknown variant `feilds`"), "{error}");
//! ```

mod build;
pub mod components;
mod config;
pub mod connectors;
pub mod drpc;
mod error;
mod locate;
mod registry;
mod schema;
pub mod stateful;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map as JsonMap, Value as JsonValue};

pub use config::{
    ACKERS_KEY, MAX_SPOUT_PENDING_KEY, MESSAGE_TIMEOUT_KEY, TICK_KEY, WAIT_STRATEGY_KEY,
    WORKERS_KEY,
};
pub use error::{FilePlace, TopologyFileError};
pub use registry::{
    BoltFactory, BoltMaker, BuiltinArgs, ComponentRegistry, ReplayableSpoutFactory,
    ReplayableSpoutMaker, SpoutFactory, SpoutMaker, StatefulBoltFactory, StatefulBoltMaker,
};

use schema::FileDef;
use squall_core::topology::Topology;

/// What the caller sets on top of the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Where the topology's artifact (this file and its resources) was unpacked: relative
    /// paths are resolved against it, and components see it as the setting
    /// [`squall.artifact.dir`](squall_multilang::ARTIFACT_DIR_KEY).
    pub artifact_dir: Option<PathBuf>,
    /// A name to use instead of the file's.
    pub name: Option<String>,
    /// Settings over the file's `config`.
    pub config: JsonMap<String, JsonValue>,
}

/// What a file or directory the topology needs is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A file.
    File,
    /// A directory, with everything in it.
    Directory,
}

/// A file or directory a topology file refers to, which must travel with it to a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The component that needs it (`None` for the topology file itself).
    pub component: Option<String>,
    /// Its path relative to the topology file's directory, as the artifact must hold it.
    pub path: PathBuf,
    /// A file or a directory.
    pub kind: ResourceKind,
}

/// A parsed topology file.
#[derive(Debug, Clone)]
pub struct TopologyFile {
    def: FileDef,
    text: String,
    /// The file, as messages name it.
    file: String,
    /// Its directory (absolute when it could be made so).
    dir: PathBuf,
    /// Its name within its directory.
    file_name: Option<PathBuf>,
}

/// Reads the topology file at `path` and builds its topology, with the built-in components.
/// This is what a cluster worker calls, with the artifact directory in `overrides`.
///
/// # Errors
/// [`TopologyFileError`] naming the file, line and key at fault.
pub fn topology_from_file(
    path: &Path,
    overrides: &Overrides,
) -> Result<Arc<Topology>, TopologyFileError> {
    TopologyFile::read(path)?.build(overrides)
}

impl TopologyFile {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// When it cannot be read or is not a topology file.
    pub fn read(path: &Path) -> Result<Self, TopologyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let mut file = Self::parse(&text, &path.display().to_string(), &dir)?;
        file.file_name = path.file_name().map(PathBuf::from);
        Ok(file)
    }

    /// Parses `text`, named `file` in messages, whose relative paths start from `dir`.
    ///
    /// # Errors
    /// [`TopologyFileError::Syntax`] with the line and key of the first problem.
    pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Self, TopologyFileError> {
        let def: FileDef = serde_yaml_ng::from_str(text)
            .map_err(|error| TopologyFileError::syntax(file, &error))?;
        Ok(Self {
            def,
            text: text.to_owned(),
            file: file.to_owned(),
            dir: dir.to_owned(),
            file_name: None,
        })
    }

    /// The topology's name, as the file gives it.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// Builds the topology with Squall's built-in components.
    ///
    /// # Errors
    /// [`TopologyFileError`] naming the key and line at fault, or what the topology
    /// validation found.
    pub fn build(&self, overrides: &Overrides) -> Result<Arc<Topology>, TopologyFileError> {
        self.build_with(overrides, &ComponentRegistry::with_builtins())
    }

    /// Builds the topology with the components of `registry`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with(
        &self,
        overrides: &Overrides,
        registry: &ComponentRegistry,
    ) -> Result<Arc<Topology>, TopologyFileError> {
        build::Build {
            def: &self.def,
            text: &self.text,
            file: &self.file,
            file_dir: &self.dir,
            registry,
        }
        .build(overrides)
    }

    /// The files and directories the topology needs besides the engine, relative to the
    /// file's directory, for a submitter to ship: the file itself, each shell component's
    /// resources and working directories when set, else the arguments and program that
    /// name files there; and the files built-ins read (`lines`). Absolute paths are left
    /// out: they must exist on every node.
    pub fn resources(&self) -> Vec<Resource> {
        let mut resources = Vec::new();
        let mut add = |component: Option<&str>, path: &Path, kind: ResourceKind| {
            if path.is_absolute() {
                return;
            }
            let resource = Resource {
                component: component.map(str::to_owned),
                path: path.to_owned(),
                kind,
            };
            if !resources.contains(&resource) {
                resources.push(resource);
            }
        };
        if let Some(name) = &self.file_name {
            add(None, name, ResourceKind::File);
        }
        for extra in &self.def.resources {
            let kind = if self.dir.join(extra).is_dir() {
                ResourceKind::Directory
            } else {
                ResourceKind::File
            };
            add(None, extra, kind);
        }
        let components = self.def.spouts.iter().chain(&self.def.bolts);
        for component in components {
            let id = Some(component.id.as_str());
            if let Some(shell) = &component.shell {
                let mut dirs = Vec::new();
                for dir in [&shell.resources, &shell.cwd].into_iter().flatten() {
                    add(id, dir, ResourceKind::Directory);
                    dirs.push(dir.clone());
                }
                if dirs.is_empty() {
                    let program = Path::new(&shell.command);
                    if shell.command.contains('/') {
                        add(id, program, ResourceKind::File);
                    }
                    for arg in &shell.args {
                        let arg = Path::new(arg);
                        if arg.is_relative() && self.dir.join(arg).is_file() {
                            add(id, arg, ResourceKind::File);
                        }
                    }
                }
            }
            if component.builtin.as_deref() == Some("lines")
                && let Some(JsonValue::String(file)) = component.params.get("file")
            {
                add(id, Path::new(file), ResourceKind::File);
            }
        }
        resources
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
