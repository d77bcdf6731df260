//! Topologies: components, the streams they declare, and the groupings that join them.
//!
//! [`TopologyBuilder`] collects spouts and bolts with their parallelism and subscriptions;
//! [`TopologyBuilder::build`] validates everything before anything runs and returns the
//! immutable [`Topology`] that executors, workers and the control plane share. Errors name
//! the component, stream and field at fault.

mod builder;
mod declare;
mod error;
mod model;
mod validate;

pub use builder::{BoltDeclarer, SpoutDeclarer, TopologyBuilder};
pub use declare::{OutputDeclarer, StreamDecl};
pub use error::TopologyError;
pub use model::{
    Component, ComponentKind, ExecutorSpec, Input, KeyedGrouping, StreamInfo, Subscriber, Topology,
};
pub use validate::MAX_TASKS_PER_COMPONENT;

pub(crate) mod builder_factory {
    pub(crate) use super::builder::Factory;
}
