//! The validated, immutable shape of a topology that every executor, worker and daemon shares.

use std::fmt;
use std::ops::Range;

use super::builder::Factory;
use super::error::TopologyError;
use crate::config::{ComponentConfig, TopologyConfig};
use crate::grouping::Grouping;
use crate::ids::{StreamId, TaskId};

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// A user spout.
    Spout,
    /// A user bolt.
    Bolt,
    /// The system component that tracks tuple trees.
    Acker,
}

/// A grouping with its key fields resolved to indices in the stream's fields.
#[derive(Debug, Clone)]
pub struct KeyedGrouping {
    /// The grouping as declared.
    pub grouping: Grouping,
    /// Indices of the key fields (fields and partial-key groupings), in key order.
    pub key: Vec<usize>,
}

/// One subscription of a bolt.
#[derive(Debug, Clone)]
pub struct Input {
    /// Index of the source component.
    pub source: usize,
    /// The stream subscribed to.
    pub stream: StreamId,
    /// How the bolt's tasks share it.
    pub grouping: KeyedGrouping,
}

/// One subscriber of a stream.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Index of the subscribing component.
    pub component: usize,
    /// How its tasks share the stream.
    pub grouping: KeyedGrouping,
}

/// A stream of the topology.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Its number in tuple headers.
    pub id: StreamId,
    /// Index of the component that emits it (`None` for system streams).
    pub component: Option<usize>,
    /// Its name.
    pub name: String,
    /// Its field names.
    pub fields: Vec<String>,
    /// Whether it is a direct stream.
    pub direct: bool,
    /// The components subscribed to it, in component order.
    pub subscribers: Vec<Subscriber>,
}

impl StreamInfo {
    /// Index of the field called `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field == name)
    }
}

/// A component of the topology.
#[derive(Clone)]
pub struct Component {
    pub(crate) index: usize,
    pub(crate) id: String,
    pub(crate) kind: ComponentKind,
    pub(crate) factory: Option<Factory>,
    pub(crate) parallelism: usize,
    pub(crate) tasks: Range<u32>,
    pub(crate) outputs: Vec<StreamId>,
    pub(crate) inputs: Vec<Input>,
    pub(crate) config: ComponentConfig,
}

impl Component {
    /// Its position in [`Topology::components`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What it is.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// Its number of executors.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Its number of tasks.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Its task ids, in ascending order.
    pub fn task_ids(&self) -> impl ExactSizeIterator<Item = TaskId> + Clone + use<> {
        self.tasks.clone().map(TaskId)
    }

    /// The streams it emits, in declaration order.
    pub fn outputs(&self) -> &[StreamId] {
        &self.outputs
    }

    /// Its subscriptions.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// Its settings.
    pub fn config(&self) -> &ComponentConfig {
        &self.config
    }
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("parallelism", &self.parallelism)
            .field("tasks", &self.tasks)
            .field("outputs", &self.outputs)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

/// An executor: a group of consecutive tasks of one component, run by one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorSpec {
    /// Index of the component.
    pub component: usize,
    /// Its task ids.
    pub tasks: Range<u32>,
}

impl ExecutorSpec {
    /// Its task ids, in ascending order.
    pub fn task_ids(&self) -> impl ExactSizeIterator<Item = TaskId> + Clone + use<> {
        self.tasks.clone().map(TaskId)
    }
}

/// A validated topology.
///
/// Component order, task ids and stream ids are derived deterministically from the
/// declarations (components sorted by id, the acker last), so every process that builds the
/// same topology numbers everything the same way.
pub struct Topology {
    pub(crate) name: String,
    pub(crate) config: TopologyConfig,
    pub(crate) components: Vec<Component>,
    pub(crate) streams: Vec<StreamInfo>,
    /// Component index of each task id (index 0 is unused).
    pub(crate) task_components: Vec<u32>,
    pub(crate) executors: Vec<ExecutorSpec>,
}

impl Topology {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its settings.
    pub fn config(&self) -> &TopologyConfig {
        &self.config
    }

    /// Every component, user components sorted by id, then the acker if tracking is on.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The component with this id.
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|component| component.id == id)
    }

    /// The acker component, unless tracking is off.
    pub fn acker(&self) -> Option<&Component> {
        self.components
            .last()
            .filter(|component| component.kind == ComponentKind::Acker)
    }

    /// Every stream, indexed by its id (system streams first).
    pub fn streams(&self) -> &[StreamInfo] {
        &self.streams
    }

    /// The stream with this id.
    pub fn stream(&self, id: StreamId) -> Option<&StreamInfo> {
        self.streams.get(usize::from(id.0))
    }

    /// The stream `name` of component `component` (an index).
    pub fn stream_of(&self, component: usize, name: &str) -> Option<&StreamInfo> {
        self.components[component]
            .outputs
            .iter()
            .map(|id| &self.streams[usize::from(id.0)])
            .find(|stream| stream.name == name)
    }

    /// Number of tasks, system tasks included; ids run from 1 to this.
    pub fn task_count(&self) -> usize {
        self.task_components.len() - 1
    }

    /// The component of a task.
    pub fn component_of(&self, task: TaskId) -> Option<&Component> {
        let index = *self.task_components.get(task.index())?;
        self.components.get(index as usize)
    }

    /// Every executor, in component order.
    pub fn executors(&self) -> &[ExecutorSpec] {
        &self.executors
    }

    /// The same topology with other executor counts for some components (a rebalance).
    /// Tasks do not change — every task keeps its id, so fields grouping keeps sending each
    /// key to the same task — they are only spread over a different number of executors.
    ///
    /// # Errors
    /// [`TopologyError::UnknownComponent`] for a component that does not exist,
    /// [`TopologyError::ZeroParallelism`] or [`TopologyError::TooFewTasks`] for a count the
    /// component's tasks cannot take.
    pub fn with_executors(
        &self,
        executors: &std::collections::BTreeMap<String, usize>,
    ) -> Result<Topology, TopologyError> {
        let mut components = self.components.clone();
        for (id, &count) in executors {
            let component = components
                .iter_mut()
                .find(|component| &component.id == id)
                .ok_or_else(|| TopologyError::UnknownComponent {
                    component: "rebalance".to_owned(),
                    source_component: id.clone(),
                })?;
            if count == 0 {
                return Err(TopologyError::ZeroParallelism {
                    component: id.clone(),
                });
            }
            if count > component.tasks.len() {
                return Err(TopologyError::TooFewTasks {
                    component: id.clone(),
                    tasks: component.tasks.len(),
                    executors: count,
                });
            }
            component.parallelism = count;
        }
        let executors = components
            .iter()
            .flat_map(super::validate::split_into_executors)
            .collect();
        Ok(Topology {
            name: self.name.clone(),
            config: self.config.clone(),
            components,
            streams: self.streams.clone(),
            task_components: self.task_components.clone(),
            executors,
        })
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("name", &self.name)
            .field("components", &self.components)
            .field("executors", &self.executors.len())
            .finish_non_exhaustive()
    }
}
