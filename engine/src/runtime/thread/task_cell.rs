//! One task inside an executor thread: its component instance, routing and metrics.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::component::{Bolt, ComponentError, Spout};
use crate::context::TopologyContext;
use crate::grouping::router::Router;
use crate::ids::{DEFAULT_STREAM, MessageId, TaskId};
use crate::metrics::{SharedTaskMetrics, TaskMeter};
use crate::runtime::acking::{AckerLedger, PendingTrees};
use crate::runtime::collector::TaskStreams;
use crate::runtime::emitter::StreamRoute;
use crate::topology::builder_factory::Factory;
use crate::topology::{ComponentKind, Topology};

/// A spout task's state.
pub(crate) struct SpoutState {
    pub(crate) spout: Box<dyn Spout>,
    pub(crate) pending: PendingTrees,
    /// Trees that settled and whose `ack` or `fail` is still to be called, in order:
    /// message, outcome, output stream. Verdicts, timeouts and trees that ended as their
    /// root was emitted all queue here, and one call delivers the lot.
    pub(crate) settled: VecDeque<(MessageId, bool, u16)>,
    /// Whether `activate` (rather than `deactivate`) was the last call.
    pub(crate) active: bool,
    /// Consecutive `next_tuple` calls that emitted nothing.
    pub(crate) idle_calls: u32,
    /// Not asked for tuples before this time (idle back-off).
    pub(crate) next_poll_nanos: u64,
}

/// A bolt task's state.
pub(crate) struct BoltState {
    pub(crate) bolt: Box<dyn Bolt>,
    pub(crate) auto_ack: bool,
    pub(crate) polls: bool,
}

/// What runs in a task.
///
/// `repr(u8)`: a plain one-byte tag, cheap to dispatch on for every record.
#[repr(u8)]
pub(crate) enum TaskBody {
    Spout(SpoutState),
    Bolt(BoltState),
    Acker(AckerLedger),
    /// The task could not start; the trees of records for it fail at once (reported once).
    Dead,
}

/// One task of an executor thread.
pub(crate) struct TaskCell {
    /// Its id, component, output streams and counters.
    pub(crate) out: TaskStreams,
    pub(crate) context: TopologyContext,
    pub(crate) shared: Arc<SharedTaskMetrics>,
    pub(crate) body: TaskBody,
    /// Tick period and the time of the next tick.
    pub(crate) tick: Option<(u64, u64)>,
    /// Whether a record for this dead task was already reported.
    pub(crate) reported_dead: bool,
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Why a task could not start.
pub(crate) struct StartFailure(pub(crate) String);

impl TaskCell {
    /// Builds the task's routing and metrics (not its component instance: see [`start`]).
    pub(crate) fn new(
        topology: &Arc<Topology>,
        task: TaskId,
        worker_tasks: &Arc<[TaskId]>,
        shared: Arc<SharedTaskMetrics>,
        rng: &mut fastrand::Rng,
        now_nanos: u64,
    ) -> Self {
        let component = topology.component_of(task).expect("task of the topology");
        let is_local = |candidate: &TaskId| worker_tasks.binary_search(candidate).is_ok();
        let streams: Vec<StreamRoute> = component
            .outputs()
            .iter()
            .map(|id| {
                let info = topology.stream(*id).expect("declared stream");
                let routers = info
                    .subscribers
                    .iter()
                    .map(|subscriber| {
                        let targets: Vec<TaskId> = topology.components()[subscriber.component]
                            .task_ids()
                            .collect();
                        let local: Vec<TaskId> = targets.iter().copied().filter(is_local).collect();
                        Router::new(&subscriber.grouping, task, &targets, &local, rng)
                    })
                    .collect();
                StreamRoute {
                    id: *id,
                    name: info.name.clone(),
                    field_count: info.fields.len(),
                    direct: info.direct,
                    routers,
                }
            })
            .collect();
        let default_stream = streams
            .iter()
            .position(|route| route.name == DEFAULT_STREAM);
        let config = topology.config();
        let tick = component.config().tick_frequency.map(|every| {
            let every = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX).max(1);
            (every, now_nanos.saturating_add(every))
        });
        let output_streams = streams.len();
        Self {
            out: TaskStreams {
                task,
                component_id: component.id().to_owned(),
                streams,
                default_stream,
                meter: TaskMeter::new(
                    config.latency_sample_every,
                    output_streams,
                    shared.input_table_len(),
                ),
                peer_reach: 0,
            },
            context: TopologyContext::new(Arc::clone(topology), task, Arc::clone(worker_tasks)),
            shared,
            body: TaskBody::Dead,
            tick: tick.filter(|_| component.kind() == ComponentKind::Bolt),
            reported_dead: false,
        }
    }

    /// Makes the component instance and runs `open`/`prepare`; the body stays [`TaskBody::Dead`]
    /// if that fails.
    pub(crate) fn start(&mut self, now_nanos: u64) -> Result<(), StartFailure> {
        let topology = Arc::clone(self.context.topology());
        let component = topology
            .component_of(self.out.task)
            .expect("task of the topology");
        let timeout_nanos =
            u64::try_from(topology.config().message_timeout.as_nanos()).unwrap_or(u64::MAX);
        // With a pending limit, the maps are sized for it up front and never grow: twice the
        // limit, so that clearing out removed entries always happens in place.
        let max_pending = 2 * topology.config().max_spout_pending.unwrap_or(0) as usize;
        let spout_tasks: usize = topology
            .components()
            .iter()
            .filter(|component| component.kind() == ComponentKind::Spout)
            .map(|component| component.task_count())
            .sum();
        let acker_share =
            max_pending * spout_tasks / topology.acker().map_or(1, |a| a.task_count());
        self.body = TaskBody::Dead;
        let context = &self.context;
        let body = match (component.kind(), component.factory.as_ref()) {
            (ComponentKind::Acker, _) => TaskBody::Acker(AckerLedger::with_capacity(
                timeout_nanos,
                now_nanos,
                acker_share,
            )),
            (_, Some(Factory::Spout(factory))) => {
                let spout = guarded("open", || {
                    let mut spout = factory();
                    spout.open(context).map(|()| spout)
                })?;
                TaskBody::Spout(SpoutState {
                    spout,
                    pending: PendingTrees::with_capacity(timeout_nanos, now_nanos, max_pending),
                    settled: VecDeque::with_capacity(max_pending.clamp(64, 4096)),
                    // `activate` comes next if the topology is active, as in Storm.
                    active: false,
                    idle_calls: 0,
                    next_poll_nanos: 0,
                })
            }
            (_, Some(Factory::Bolt(factory))) => {
                let bolt = guarded("prepare", || {
                    let mut bolt = factory();
                    bolt.prepare(context).map(|()| bolt)
                })?;
                TaskBody::Bolt(BoltState {
                    polls: bolt.wants_poll(),
                    bolt,
                    auto_ack: component.config().auto_ack,
                })
            }
            (_, None) => return Err(StartFailure("component has no factory".to_owned())),
        };
        self.body = body;
        Ok(())
    }

    /// Runs `close`/`cleanup` (panics are caught and returned as text).
    pub(crate) fn stop(&mut self) -> Option<String> {
        let body = std::mem::replace(&mut self.body, TaskBody::Dead);
        let result = catch_unwind(AssertUnwindSafe(move || match body {
            TaskBody::Spout(mut state) => state.spout.close(),
            TaskBody::Bolt(mut state) => state.bolt.cleanup(),
            TaskBody::Acker(_) | TaskBody::Dead => {}
        }));
        result.err().map(|payload| panic_message(payload.as_ref()))
    }
}

/// Runs a start-up call, turning an error or a panic into a [`StartFailure`].
fn guarded<T>(
    what: &str,
    call: impl FnOnce() -> Result<T, ComponentError>,
) -> Result<T, StartFailure> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StartFailure(format!("{what} failed: {error}"))),
        Err(payload) => Err(StartFailure(format!(
            "{what} panicked: {}",
            panic_message(payload.as_ref())
        ))),
    }
}
