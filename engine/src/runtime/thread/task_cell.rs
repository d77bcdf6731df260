//! One task inside an executor thread: its component instance, routing and metrics.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::component::{Bolt, ComponentError, Spout};
use crate::context::TopologyContext;
use crate::grouping::Grouping;
use crate::grouping::router::Router;
use crate::ids::{DEFAULT_STREAM, MessageId, TaskId};
use crate::metrics::{SharedTaskMetrics, TaskMeter};
use crate::runtime::acker_traffic::{MalformedEntry, Verdict};
use crate::runtime::acking::{AckerLedger, PendingTrees};
use crate::runtime::collector::TaskStreams;
use crate::runtime::emitter::StreamRoute;
use crate::runtime::tree_root::RootLayout;
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

impl SpoutState {
    /// Settles the trees whose verdicts `verdicts` gives, up to the first malformed one,
    /// which it returns; the caller reports it and calls again for the rest. A verdict on a
    /// tree no longer pending (it timed out, or its slot holds another tree now) is dropped.
    /// Settled trees queue for `ack` or `fail`, and `meter` counts their complete latency.
    pub(crate) fn settle(
        &mut self,
        meter: &mut TaskMeter,
        now_nanos: u64,
        verdicts: impl Iterator<Item = Result<Verdict, MalformedEntry>>,
    ) -> Option<MalformedEntry> {
        let mut malformed = None;
        for verdict in verdicts {
            let Verdict {
                root,
                slot,
                completed,
            } = match verdict {
                Ok(verdict) => verdict,
                Err(error) => {
                    malformed = Some(error);
                    break;
                }
            };
            let Some(tree) = self.pending.take(root, slot) else {
                continue;
            };
            if completed {
                meter.record_complete(now_nanos.saturating_sub(tree.emitted_nanos));
            }
            self.settled
                .push_back((tree.message, completed, tree.stream));
        }
        meter.counters.pending = self.pending.len() as u64;
        malformed
    }
}

/// A bolt task's state.
pub(crate) struct BoltState {
    pub(crate) bolt: Box<dyn Bolt>,
    pub(crate) auto_ack: bool,
    pub(crate) polls: bool,
    /// Whether its input goes to `execute_batch` in runs (`Bolt::wants_runs`).
    pub(crate) runs: bool,
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
    /// Whether the task is a bolt that takes its input in runs.
    pub(super) fn takes_runs(&self) -> bool {
        matches!(self.body, TaskBody::Bolt(BoltState { runs: true, .. }))
    }

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
                let mut stays_in_worker = true;
                let routers = info
                    .subscribers
                    .iter()
                    .map(|subscriber| {
                        let targets: Vec<TaskId> = topology.components()[subscriber.component]
                            .task_ids()
                            .collect();
                        let local: Vec<TaskId> = targets.iter().copied().filter(is_local).collect();
                        let picks_local_only = local.len() == targets.len()
                            || match subscriber.grouping.grouping {
                                Grouping::LocalOrShuffle => !local.is_empty(),
                                Grouping::Global => targets.first().is_some_and(is_local),
                                _ => false,
                            };
                        stays_in_worker &= picks_local_only;
                        Router::new(&subscriber.grouping, task, &targets, &local, rng)
                    })
                    .collect();
                StreamRoute {
                    id: *id,
                    name: info.name.clone(),
                    field_count: info.fields.len(),
                    direct: info.direct,
                    routers,
                    stays_in_worker,
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
                RootLayout::of(&topology),
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
                    runs: bolt.wants_runs(),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::TaskPlacement;
    use crate::runtime::anchor::Tuple;
    use crate::runtime::collector::BoltOutput;
    use crate::testing::{NullBolt, NullSpout};
    use crate::{TopologyBuilder, TopologyConfig};

    /// A bolt whose `prepare` answers `Err`, or panics, and whose `cleanup` may panic.
    #[derive(Debug)]
    enum Troubled {
        RefusesToStart,
        PanicsAtStart,
        PanicsAtCleanup,
    }

    impl Bolt for Troubled {
        fn prepare(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
            match self {
                Self::RefusesToStart => Err("no database".into()),
                Self::PanicsAtStart => panic!("boom"),
                Self::PanicsAtCleanup => Ok(()),
            }
        }

        fn execute(&mut self, _input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {}

        fn cleanup(&mut self) {
            if matches!(self, Self::PanicsAtCleanup) {
                panic!("cleanup exploded");
            }
        }
    }

    const NOW: u64 = 5_000;

    fn topology() -> Arc<Topology> {
        let mut builder = TopologyBuilder::new();
        builder.set_spout("numbers", || NullSpout::declaring(&["n"]), 1);
        builder
            .set_bolt("every-second", || NullBolt::declaring(&["n"]), 2)
            .shuffle_grouping("numbers")
            .tick_frequency(Duration::from_secs(1));
        builder
            .set_bolt("sink", || NullBolt, 1)
            .all_grouping("numbers");
        for (id, behaviour) in [("refuses", 0), ("panics", 1), ("messy", 2)] {
            builder
                .set_bolt(
                    id,
                    move || match behaviour {
                        0 => Troubled::RefusesToStart,
                        1 => Troubled::PanicsAtStart,
                        _ => Troubled::PanicsAtCleanup,
                    },
                    1,
                )
                .shuffle_grouping("numbers");
        }
        builder
            .build("cells", TopologyConfig::default().with_ackers(1))
            .unwrap()
    }

    /// The cell of the first task of `component`, in a worker running every task.
    fn cell(topology: &Arc<Topology>, component: &str) -> TaskCell {
        let all: Arc<[TaskId]> = (1..=topology.task_count() as u32).map(TaskId).collect();
        cell_in(topology, component, &all)
    }

    /// The cell of the first task of `component`, in a worker running `worker_tasks`.
    fn cell_in(
        topology: &Arc<Topology>,
        component: &str,
        worker_tasks: &Arc<[TaskId]>,
    ) -> TaskCell {
        let component = topology
            .components()
            .iter()
            .find(|candidate| candidate.id() == component)
            .unwrap();
        let task = component.task_ids().next().unwrap();
        let placement = TaskPlacement {
            executor: 0,
            thread: 0,
            core: None,
        };
        let shared = Arc::new(SharedTaskMetrics::new(
            task,
            component.index(),
            placement,
            Vec::new(),
            Vec::new(),
        ));
        let mut rng = fastrand::Rng::with_seed(3);
        TaskCell::new(topology, task, worker_tasks, shared, &mut rng, NOW)
    }

    #[test]
    fn a_stream_stays_in_the_worker_when_every_task_it_may_reach_runs_there() {
        let topology = topology();
        assert!(cell(&topology, "numbers").out.streams[0].stays_in_worker);
        let second_counter = topology
            .components()
            .iter()
            .find(|component| component.id() == "every-second")
            .unwrap()
            .task_ids()
            .nth(1)
            .unwrap();
        let elsewhere: Arc<[TaskId]> = (1..=topology.task_count() as u32)
            .map(TaskId)
            .filter(|&task| task != second_counter)
            .collect();
        let spout = cell_in(&topology, "numbers", &elsewhere);
        assert!(
            !spout.out.streams[0].stays_in_worker,
            "a shuffle may pick the counter on another worker"
        );
    }

    #[test]
    fn routes_follow_the_subscriptions_and_only_bolts_tick() {
        let topology = topology();
        let spout = cell(&topology, "numbers");
        assert_eq!(spout.out.component_id, "numbers");
        assert_eq!(spout.out.streams.len(), 1);
        let route = &spout.out.streams[0];
        assert_eq!((route.name.as_str(), route.field_count), ("default", 1));
        assert_eq!(
            route.routers.len(),
            5,
            "one router per subscribing component"
        );
        assert_eq!(spout.out.default_stream, Some(0));
        assert_eq!(spout.tick, None);
        let ticking = cell(&topology, "every-second");
        assert_eq!(ticking.tick, Some((1_000_000_000, NOW + 1_000_000_000)));
        let sink = cell(&topology, "sink");
        assert!(sink.out.streams.is_empty());
        assert_eq!(sink.out.default_stream, None);
    }

    #[test]
    fn verdicts_settle_their_pending_trees_and_a_malformed_one_stops_the_run_only_there() {
        let topology = topology();
        let mut cell = cell(&topology, "numbers");
        assert!(cell.start(NOW).is_ok());
        let TaskBody::Spout(state) = &mut cell.body else {
            unreachable!("a spout")
        };
        let slots: Vec<u32> = (1..=4_u64)
            .map(|tree| state.pending.insert(tree * 11, MessageId(tree), 0, NOW))
            .collect();
        let verdict = |tree: usize, completed| {
            Ok(Verdict {
                root: (tree as u64 + 1) * 11,
                slot: slots[tree],
                completed,
            })
        };
        let malformed = MalformedEntry::Kind {
            what: "tree verdict",
            kind: 7,
        };
        let stale = Ok(Verdict {
            root: 99,
            slot: slots[3],
            completed: true,
        });
        let mut verdicts = [
            verdict(0, true),
            Err(malformed.clone()),
            verdict(1, false),
            stale,
            verdict(2, true),
        ]
        .into_iter();
        let meter = &mut cell.out.meter;
        assert_eq!(
            state.settle(meter, NOW + 500, &mut verdicts),
            Some(malformed)
        );
        assert_eq!(state.settled, [(MessageId(1), true, 0)]);
        assert_eq!(state.settle(meter, NOW + 900, &mut verdicts), None);
        assert_eq!(
            state.settled,
            [
                (MessageId(1), true, 0),
                (MessageId(2), false, 0),
                (MessageId(3), true, 0)
            ]
        );
        assert_eq!(state.pending.len(), 1, "the stale verdict settled nothing");
        assert_eq!(meter.counters.pending, 1);
    }

    #[test]
    fn tasks_start_as_what_their_component_is() {
        let topology = topology();
        let mut spout = cell(&topology, "numbers");
        assert!(matches!(spout.body, TaskBody::Dead), "dead until started");
        assert!(spout.start(NOW).is_ok());
        assert!(matches!(spout.body, TaskBody::Spout(ref state) if !state.active));
        let mut bolt = cell(&topology, "every-second");
        assert!(bolt.start(NOW).is_ok());
        assert!(matches!(bolt.body, TaskBody::Bolt(_)));
        let mut acker = cell(&topology, crate::ids::ACKER_COMPONENT);
        assert!(acker.start(NOW).is_ok());
        assert!(matches!(acker.body, TaskBody::Acker(_)));
    }

    #[test]
    fn a_refused_or_panicking_start_leaves_the_task_dead_with_the_reason() {
        let topology = topology();
        let mut refuses = cell(&topology, "refuses");
        let StartFailure(reason) = refuses.start(NOW).err().unwrap();
        assert_eq!(reason, "prepare failed: no database");
        assert!(matches!(refuses.body, TaskBody::Dead));
        let mut panics = cell(&topology, "panics");
        let StartFailure(reason) = panics.start(NOW).err().unwrap();
        assert_eq!(reason, "prepare panicked: boom");
        assert!(matches!(panics.body, TaskBody::Dead));
    }

    #[test]
    fn stopping_returns_a_cleanup_panic_and_leaves_the_task_dead() {
        let topology = topology();
        let mut messy = cell(&topology, "messy");
        assert!(messy.start(NOW).is_ok());
        assert_eq!(messy.stop().as_deref(), Some("cleanup exploded"));
        assert!(matches!(messy.body, TaskBody::Dead));
        assert_eq!(messy.stop(), None, "a dead task stops quietly");
    }

    #[test]
    fn panic_payloads_become_text() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&17_u32), "panic with a non-string payload");
    }
}
