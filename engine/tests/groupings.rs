//! Every grouping, checked on a running topology: which task receives which tuple.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, SeenLog, SeqSpout, SpoutCounts};
use squall_core::grouping::{CustomGrouping, EmittedFields};
use squall_core::{
    Chaining, Grouping, MessageId, OutputDeclarer, Spout, SpoutOutput, TaskId, TopologyBuilder,
    TopologyConfig, Value, ValueRef,
};
use squall_test_support::wait_for;

const TUPLES: u64 = 4_000;

/// Received values per task of `component`.
fn per_task(log: &SeenLog, component_tasks: &[TaskId]) -> BTreeMap<TaskId, Vec<u64>> {
    let mut tasks: BTreeMap<TaskId, Vec<u64>> = component_tasks
        .iter()
        .map(|task| (*task, Vec::new()))
        .collect();
    for seen in log.lock().unwrap().iter() {
        if let Some(values) = tasks.get_mut(&seen.task) {
            values.push(seen.values[0]);
        }
    }
    tasks
}

/// Runs `src` → one recorder component with `grouping` and `tasks` tasks; returns what each
/// task received.
fn run_grouping(
    grouping: Grouping,
    tasks: usize,
    chaining: Chaining,
) -> BTreeMap<TaskId, Vec<u64>> {
    let counts = Arc::new(SpoutCounts::default());
    let log = SeenLog::default();
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(TUPLES, 50, Arc::clone(&spout_counts)),
        1,
    );
    let bolt_log = Arc::clone(&log);
    builder
        .set_bolt(
            "sink",
            move || Recorder::new(Arc::clone(&bolt_log)),
            tasks.min(2),
        )
        .tasks(tasks)
        .grouping("src", grouping);
    let config = TopologyConfig::default().with_chaining(chaining);
    let topology = builder.build("groupings", config).unwrap();
    let sink_tasks: Vec<TaskId> = topology.component("sink").unwrap().task_ids().collect();
    let running = squall_core::run(topology).unwrap();
    wait_for(
        "the spout to emit everything",
        Duration::from_secs(30),
        || counts.emitted() == TUPLES,
    );
    let report = running.kill(Duration::from_secs(30));
    assert!(report.drained, "everything in flight was processed");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    per_task(&log, &sink_tasks)
}

#[test]
fn shuffle_spreads_evenly_within_one() {
    for chaining in [Chaining::Never, Chaining::Threads(1)] {
        let received = run_grouping(Grouping::Shuffle, 4, chaining);
        for (task, values) in &received {
            assert!(
                values.len().abs_diff(TUPLES as usize / 4) <= 1,
                "task {task}: {}",
                values.len()
            );
        }
        // Any window of 4 consecutive tuples (by emit order) reaches 4 different tasks.
        let mut by_value = BTreeMap::new();
        for (task, values) in &received {
            for value in values {
                by_value.insert(*value, *task);
            }
        }
        let order: Vec<TaskId> = by_value.into_values().collect();
        assert_eq!(order.len(), TUPLES as usize);
        for window in order.windows(4) {
            let distinct: BTreeSet<_> = window.iter().collect();
            assert_eq!(distinct.len(), 4, "{window:?}");
        }
    }
}

#[test]
fn fields_routes_each_key_to_one_task() {
    let received = run_grouping(Grouping::Fields(vec!["key".into()]), 4, Chaining::Auto);
    let mut owner: BTreeMap<u64, TaskId> = BTreeMap::new();
    for (task, values) in &received {
        assert!(!values.is_empty(), "50 keys reach every one of 4 tasks");
        for value in values {
            let key = value % 50;
            assert_eq!(*owner.entry(key).or_insert(*task), *task, "key {key} split");
        }
    }
    assert_eq!(owner.len(), 50);
    let total: usize = received.values().map(Vec::len).sum();
    assert_eq!(total, TUPLES as usize);
}

#[test]
fn fields_grouping_agrees_with_the_documented_hash() {
    // The task of a key depends only on its encoded bytes: XXH3-64 mod task count.
    let received = run_grouping(Grouping::Fields(vec!["key".into()]), 3, Chaining::Auto);
    let tasks: Vec<TaskId> = received.keys().copied().collect();
    for (task, values) in &received {
        for value in values {
            let mut encoded = vec![3u8];
            encoded.extend_from_slice(&(value % 50).to_le_bytes());
            let hash = squall_core::grouping::hash::key_hash(&encoded);
            assert_eq!(tasks[(hash % 3) as usize], *task);
        }
    }
}

#[test]
fn all_sends_every_tuple_to_every_task() {
    let received = run_grouping(Grouping::All, 3, Chaining::Auto);
    for values in received.values() {
        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..TUPLES).collect::<Vec<_>>());
    }
}

#[test]
fn global_sends_everything_to_the_lowest_task() {
    let received = run_grouping(Grouping::Global, 3, Chaining::Auto);
    let mut tasks = received.iter();
    let (_, lowest) = tasks.next().unwrap();
    assert_eq!(lowest.len(), TUPLES as usize);
    assert!(tasks.all(|(_, values)| values.is_empty()));
}

#[test]
fn none_behaves_as_shuffle() {
    let received = run_grouping(Grouping::None, 4, Chaining::Auto);
    for values in received.values() {
        assert!(values.len().abs_diff(TUPLES as usize / 4) <= 1);
    }
}

#[test]
fn local_or_shuffle_uses_every_local_task() {
    // In one process every task is local, so it spreads like shuffle.
    let received = run_grouping(Grouping::LocalOrShuffle, 4, Chaining::Auto);
    for values in received.values() {
        assert!(values.len().abs_diff(TUPLES as usize / 4) <= 1);
    }
}

#[test]
fn partial_key_keeps_each_key_on_at_most_two_tasks_and_balances_load() {
    let received = run_grouping(Grouping::PartialKey(vec!["key".into()]), 4, Chaining::Auto);
    let mut holders: BTreeMap<u64, BTreeSet<TaskId>> = BTreeMap::new();
    for (task, values) in &received {
        for value in values {
            holders.entry(value % 50).or_default().insert(*task);
        }
    }
    assert!(holders.values().all(|tasks| tasks.len() <= 2));
    let loads: Vec<usize> = received.values().map(Vec::len).collect();
    let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
    assert!(*max - *min <= TUPLES as usize / 8, "unbalanced: {loads:?}");
}

/// Sends each tuple to the task at index `n % tasks` and, for multiples of 10, to every task.
struct ModuloGrouping {
    targets: Vec<TaskId>,
}

impl CustomGrouping for ModuloGrouping {
    fn prepare(&mut self, _emitter: TaskId, targets: &[TaskId]) {
        self.targets = targets.to_vec();
    }

    fn choose_tasks(&mut self, fields: EmittedFields<'_>, chosen: &mut Vec<TaskId>) {
        let Some(ValueRef::U64(n)) = fields.get(0) else {
            panic!("n is a u64")
        };
        if n % 10 == 0 {
            chosen.extend_from_slice(&self.targets);
        } else {
            chosen.push(self.targets[(n % self.targets.len() as u64) as usize]);
        }
    }
}

#[test]
fn custom_grouping_decides() {
    let grouping = Grouping::custom(|| ModuloGrouping {
        targets: Vec::new(),
    });
    let received = run_grouping(grouping, 3, Chaining::Auto);
    let tasks: Vec<TaskId> = received.keys().copied().collect();
    for (index, task) in tasks.iter().enumerate() {
        for value in &received[task] {
            assert!(
                value % 10 == 0 || value % 3 == index as u64,
                "{value} at task index {index}"
            );
        }
        let multiples = received[task].iter().filter(|v| *v % 10 == 0).count();
        assert_eq!(multiples, (TUPLES / 10) as usize);
    }
}

/// Emits `[n]` on the direct stream "picked" to the task with index `n % tasks`.
struct DirectSpout {
    next: u64,
    targets: Vec<TaskId>,
    counts: Arc<SpoutCounts>,
}

impl Spout for DirectSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare_direct_stream("picked", &["n"]);
    }

    fn open(
        &mut self,
        context: &squall_core::TopologyContext,
    ) -> Result<(), squall_core::ComponentError> {
        self.targets = context
            .topology()
            .component("sink")
            .unwrap()
            .task_ids()
            .collect();
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.next == TUPLES {
            return;
        }
        let target = self.targets[(self.next % self.targets.len() as u64) as usize];
        output.emit_direct(
            target,
            "picked",
            &[Value::U64(self.next)],
            Some(MessageId(self.next)),
        );
        self.next += 1;
        self.counts
            .emitted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn ack(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.counts
            .acked
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn direct_grouping_delivers_to_the_named_task() {
    let counts = Arc::new(SpoutCounts::default());
    let log = SeenLog::default();
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || DirectSpout {
            next: 0,
            targets: Vec::new(),
            counts: Arc::clone(&spout_counts),
        },
        1,
    );
    let bolt_log = Arc::clone(&log);
    builder
        .set_bolt("sink", move || Recorder::new(Arc::clone(&bolt_log)), 3)
        .direct_grouping("src", "picked");
    let topology = builder.build("direct", TopologyConfig::default()).unwrap();
    let tasks: Vec<TaskId> = topology.component("sink").unwrap().task_ids().collect();
    let running = squall_core::run(topology).unwrap();
    wait_for("every direct tuple acked", Duration::from_secs(30), || {
        counts.acked() == TUPLES
    });
    let report = running.kill(Duration::from_secs(10));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for seen in log.lock().unwrap().iter() {
        assert_eq!(seen.stream, "picked");
        assert_eq!(seen.task, tasks[(seen.values[0] % 3) as usize]);
    }
    assert_eq!(log.lock().unwrap().len(), TUPLES as usize);
}

/// Emits direct to a task that does not subscribe: the emit must be refused and reported.
struct StrayDirectSpout;

impl Spout for StrayDirectSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare_direct_stream("picked", &["n"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        // The spout's own task is not a subscriber.
        let own = output.task();
        let error = output
            .try_emit("picked", None, Some(own), &[Value::U64(1)])
            .unwrap_err();
        output.report_error(error.to_string());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn direct_emits_to_non_subscribers_are_refused() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || StrayDirectSpout, 1);
    builder
        .set_bolt("sink", || Recorder::new(SeenLog::default()), 2)
        .direct_grouping("src", "picked");
    let topology = builder.build("stray", TopologyConfig::default()).unwrap();
    let running = squall_core::run(topology).unwrap();
    wait_for(
        "the refusal to be reported",
        Duration::from_secs(10),
        || running.error_count() > 0,
    );
    let error = running.errors().remove(0);
    assert_eq!(error.component, "src");
    assert_eq!(
        error.message,
        "task 3 does not subscribe to stream \"picked\" of component \"src\" with direct grouping"
    );
}
