//! What a task knows about itself and its topology.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map as JsonMap, Value as JsonValue};

use crate::ids::TaskId;
use crate::topology::{Component, StreamInfo, Topology};

/// Wakes a task's executor thread from another thread, so that it calls the task again
/// soon: [`Bolt::poll`](crate::Bolt::poll) for a bolt, `next_tuple` for a spout (unless it
/// is throttled). For components fed by threads of their own, such as the multi-language
/// bridge; cheap while the executor is busy, a futex wake-up when it sleeps.
#[derive(Clone)]
pub struct ExecutorWaker(Arc<dyn Fn() + Send + Sync>);

impl ExecutorWaker {
    pub(crate) fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(wake))
    }

    /// Wakes the executor thread (or makes its next wait return at once).
    pub fn wake(&self) {
        (self.0)();
    }
}

impl fmt::Debug for ExecutorWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExecutorWaker")
    }
}

/// A task's view of where it runs: its id, its component, its topology and its settings.
#[derive(Debug, Clone)]
pub struct TopologyContext {
    topology: Arc<Topology>,
    task: TaskId,
    component: usize,
    worker_tasks: Arc<[TaskId]>,
    config: Arc<JsonMap<String, JsonValue>>,
    waker: Option<ExecutorWaker>,
}

impl TopologyContext {
    pub(crate) fn new(topology: Arc<Topology>, task: TaskId, worker_tasks: Arc<[TaskId]>) -> Self {
        let component = topology
            .component_of(task)
            .map(Component::index)
            .expect("task ids come from the topology");
        let mut config = topology.config().user.clone();
        for (key, value) in &topology.components()[component].config().user {
            config.insert(key.clone(), value.clone());
        }
        Self {
            topology,
            task,
            component,
            worker_tasks,
            config: Arc::new(config),
            waker: None,
        }
    }

    pub(crate) fn set_waker(&mut self, waker: ExecutorWaker) {
        self.waker = Some(waker);
    }

    /// Wakes this task's executor thread from another thread; `None` outside an executor.
    pub fn waker(&self) -> Option<ExecutorWaker> {
        self.waker.clone()
    }

    /// This task's id.
    pub fn task_id(&self) -> TaskId {
        self.task
    }

    /// This task's component.
    pub fn component(&self) -> &Component {
        &self.topology.components()[self.component]
    }

    /// This task's component id.
    pub fn component_id(&self) -> &str {
        self.component().id()
    }

    /// Every task of this component, in ascending order.
    pub fn component_tasks(&self) -> Vec<TaskId> {
        self.component().task_ids().collect()
    }

    /// This task's position among its component's tasks (0-based).
    pub fn task_index(&self) -> usize {
        (self.task.0
            - self
                .component()
                .task_ids()
                .next()
                .map_or(0, |first| first.0)) as usize
    }

    /// The topology.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// The tasks running in this task's worker process.
    pub fn worker_tasks(&self) -> &[TaskId] {
        &self.worker_tasks
    }

    /// The free-form settings: the topology's, overridden by the component's.
    pub fn config(&self) -> &JsonMap<String, JsonValue> {
        &self.config
    }

    /// The stream `name` of this task's component.
    pub fn output_stream(&self, name: &str) -> Option<&StreamInfo> {
        self.topology.stream_of(self.component, name)
    }

    /// The component id of every task of the topology, indexed by task id.
    pub fn task_components(&self) -> impl Iterator<Item = (TaskId, &str)> + '_ {
        self.topology
            .components()
            .iter()
            .flat_map(|component| component.task_ids().map(move |task| (task, component.id())))
    }
}
