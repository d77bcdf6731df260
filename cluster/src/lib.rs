//! Running topologies on a cluster: the contract with worker processes, and the control
//! plane — nimbus, supervisors and the client — on Apache ZooKeeper.
//!
//! The control plane (nimbus, supervisors) never loads user code. It schedules from a
//! [`TopologyDescription`] that the submitting program sends with its artifact; a
//! supervisor then starts the topology's program in worker mode with a [`WorkerPlan`] file,
//! and the worker rebuilds the same topology — component order, task ids and executor
//! indices are deterministic — and runs the executors the plan gives it.
//!
//! The pieces:
//!
//! - [`plan`]: the files a supervisor and its workers exchange.
//! - [`config`]: the TOML configuration shared by daemons and clients.
//! - [`store`]: the only code that talks to ZooKeeper, behind the [`Store`] trait;
//!   [`paths`] is the znode layout and [`records`] what the znodes hold.
//! - [`scheduler`], [`nimbus::decide`], [`nimbus::heartbeats`], [`supervisor::decide`]:
//!   every decision, as pure functions over records.
//! - [`election`], [`nimbus`], [`supervisor`]: the daemons.
//! - [`protocol`], [`client`], [`secret`]: authenticated requests to nimbus;
//!   [`client_keys`]: named client keys and their roles;
//!   [`worker_key`]: the per-topology keys workers hold instead of the secret.
//! - [`artifact`]: what a submission uploads and supervisors unpack.
//! - [`tls`]: TLS for connections to nimbus, configured by `[tls]`.
//! - [`drpc`]: the DRPC server (`squall drpc`) and its HTTP port.
//! - [`validate`]: the shapes values read from ZooKeeper must have before they name files.

pub mod app;
pub mod artifact;
pub mod client;
pub mod client_keys;
pub mod config;
pub mod drpc;
pub mod election;
pub mod logging;
pub mod nimbus;
pub mod observe;
pub mod paths;
pub mod protocol;
pub mod records;
pub mod request_limits;
pub mod scheduler;
pub mod secret;
mod shutdown;
pub mod store;
pub mod supervisor;
pub mod tls;
pub mod validate;
pub mod worker_key;
pub mod worker_stop;

pub use client::{ClientError, NimbusClient, Submission, Submitted};
pub use config::{ClusterConfig, ConfigError};
pub use plan::{
    ComponentDescription, TopologyDescription, WorkerHeartbeat, WorkerPlan, WorkerPlanError,
    WorkerSlot,
};
pub use secret::{Secret, SecretError};
/// The files a supervisor and its workers exchange (defined by the engine core, which reads them).
pub use squall_core::worker::plan;
pub use store::{Store, StoreError, ZkStore};
