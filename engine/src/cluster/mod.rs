//! What a topology looks like to a cluster: the plan a worker process runs, and the
//! description the control plane schedules from.
//!
//! The control plane (nimbus, supervisors) never loads user code. It schedules from a
//! [`TopologyDescription`] that the submitting program sends with its artifact; a
//! supervisor then starts the topology's program in worker mode with a [`WorkerPlan`] file,
//! and the worker rebuilds the same topology — component order, task ids and executor
//! indices are deterministic — and runs the executors the plan gives it.

pub mod plan;

pub use plan::{
    ComponentDescription, TopologyDescription, WorkerHeartbeat, WorkerPlan, WorkerPlanError,
    WorkerSlot,
};
