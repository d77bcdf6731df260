//! What can be wrong with a topology.

use thiserror::Error;

/// A topology that cannot run, and why. Every variant names what is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopologyError {
    /// The topology has no spout, so nothing would ever flow.
    #[error("topology {topology:?} has no spout")]
    NoSpouts {
        /// The topology's name.
        topology: String,
    },
    /// The topology name is empty or has characters other than letters, digits, `-`, `_`, `.`.
    #[error("topology name {name:?} is invalid: use 1 to 128 letters, digits, '-', '_' or '.'")]
    InvalidTopologyName {
        /// The name given.
        name: String,
    },
    /// Two components share an id.
    #[error("component id {component:?} is declared twice")]
    DuplicateComponent {
        /// The id.
        component: String,
    },
    /// A component id is empty or reserved for the system (starts with `__`).
    #[error(
        "component id {component:?} is invalid: ids must be non-empty and not start with \"__\""
    )]
    InvalidComponentId {
        /// The id.
        component: String,
    },
    /// A component asks for zero executors.
    #[error("component {component:?} has parallelism 0: it needs at least one executor")]
    ZeroParallelism {
        /// The component.
        component: String,
    },
    /// A component asks for more tasks (or executors) than one component may have.
    #[error(
        "component {component:?} asks for {tasks} tasks, more than the limit of {limit} per component"
    )]
    TooManyTasks {
        /// The component.
        component: String,
        /// Tasks asked for.
        tasks: usize,
        /// [`MAX_TASKS_PER_COMPONENT`](crate::topology::MAX_TASKS_PER_COMPONENT).
        limit: usize,
    },
    /// A component has fewer tasks than executors.
    #[error(
        "component {component:?} has {tasks} tasks for {executors} executors: every executor needs at least one task"
    )]
    TooFewTasks {
        /// The component.
        component: String,
        /// Tasks asked for.
        tasks: usize,
        /// Executors asked for.
        executors: usize,
    },
    /// A component declares the same stream twice.
    #[error("component {component:?} declares stream {stream:?} twice")]
    DuplicateStream {
        /// The component.
        component: String,
        /// The stream.
        stream: String,
    },
    /// A stream name is empty or reserved (starts with `__`).
    #[error(
        "component {component:?} declares stream {stream:?}: stream names must be non-empty and not start with \"__\""
    )]
    InvalidStreamName {
        /// The component.
        component: String,
        /// The stream.
        stream: String,
    },
    /// A stream declares the same field twice.
    #[error("stream {stream:?} of component {component:?} declares field {field:?} twice")]
    DuplicateField {
        /// The component.
        component: String,
        /// The stream.
        stream: String,
        /// The field.
        field: String,
    },
    /// A bolt subscribes to a component that does not exist.
    #[error("bolt {component:?} subscribes to unknown component {source_component:?}")]
    UnknownComponent {
        /// The subscribing bolt.
        component: String,
        /// The component it names.
        source_component: String,
    },
    /// A bolt subscribes to a stream its source does not declare.
    #[error(
        "bolt {component:?} subscribes to stream {stream:?} of {source_component:?}, which declares only {declared:?}"
    )]
    UnknownStream {
        /// The subscribing bolt.
        component: String,
        /// The source component.
        source_component: String,
        /// The stream it names.
        stream: String,
        /// The streams the source declares.
        declared: Vec<String>,
    },
    /// A fields or partial-key grouping names a field the stream does not have.
    #[error(
        "bolt {component:?} groups stream {stream:?} of {source_component:?} by field {field:?}, but the stream's fields are {declared:?}"
    )]
    UnknownField {
        /// The subscribing bolt.
        component: String,
        /// The source component.
        source_component: String,
        /// The stream.
        stream: String,
        /// The field it names.
        field: String,
        /// The fields the stream declares.
        declared: Vec<String>,
    },
    /// A fields or partial-key grouping names no field at all.
    #[error(
        "bolt {component:?} groups stream {stream:?} of {source_component:?} by an empty list of fields"
    )]
    EmptyKey {
        /// The subscribing bolt.
        component: String,
        /// The source component.
        source_component: String,
        /// The stream.
        stream: String,
    },
    /// A direct grouping on a stream not declared direct.
    #[error(
        "bolt {component:?} uses direct grouping on stream {stream:?} of {source_component:?}, which is not declared direct"
    )]
    DirectGroupingOnIndirectStream {
        /// The subscribing bolt.
        component: String,
        /// The source component.
        source_component: String,
        /// The stream.
        stream: String,
    },
    /// A non-direct grouping on a direct stream.
    #[error(
        "bolt {component:?} uses {grouping} grouping on stream {stream:?} of {source_component:?}, which is declared direct and needs direct grouping"
    )]
    IndirectGroupingOnDirectStream {
        /// The subscribing bolt.
        component: String,
        /// The source component.
        source_component: String,
        /// The stream.
        stream: String,
        /// The grouping used.
        grouping: &'static str,
    },
    /// A bolt subscribes to the same stream twice.
    #[error("bolt {component:?} subscribes to stream {stream:?} of {source_component:?} twice")]
    DuplicateSubscription {
        /// The subscribing bolt.
        component: String,
        /// The source component.
        source_component: String,
        /// The stream.
        stream: String,
    },
    /// More tasks, streams or fields than the tuple encoding can number.
    #[error("topology needs {count} {what}, more than the limit of {limit}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {setting} = {value}: {reason}")]
    InvalidConfig {
        /// The setting.
        setting: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
