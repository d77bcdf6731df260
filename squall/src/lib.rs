//! Squall, all in one: the engine core and every crate built on it, under one name.
//!
//! An embedder that runs topologies in its own process needs only [`squall_core`], which this
//! crate re-exports at its root; the other crates come in as modules:
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | (root) | `squall-core` | topologies, tuples, groupings, executors, acking, metrics, local mode, workers |
//! | [`multilang`] | `squall-multilang` | Storm's multi-lang protocol: spouts and bolts as subprocesses |
//! | [`builtin`] | `squall-builtin` | the built-in spouts and bolts of topology files, demos and benchmarks |
//! | [`topology_file`] | `squall-topology-file` | topologies described in YAML files |
//! | [`cluster`] | `squall-cluster` | nimbus, supervisors and the client on Apache ZooKeeper |
//! | [`app`] | `squall-cluster` | the entry point of a topology program (local, submit and worker modes) |
//!
//! ```
//! use squall::{TopologyBuilder, TopologyConfig};
//! use squall::builtin::components::ConstSpout;
//! # let _ = (TopologyBuilder::new(), TopologyConfig::default());
//! # let _ = std::any::type_name::<ConstSpout>();
//! ```
#![forbid(unsafe_code)]

pub use squall_core::*;

pub use squall_builtin as builtin;
pub use squall_cluster as cluster;
pub use squall_cluster::{app, logging};
pub use squall_connectors as connectors;
pub use squall_drpc as drpc;
pub use squall_multilang as multilang;
pub use squall_topology_file as topology_file;
