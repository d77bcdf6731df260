//! Bolts that take their input a run at a time (`Bolt::execute_batch`): every tuple is seen
//! once, in order per task, acked or auto-acked as with `execute`, and a panic in the middle
//! of a run fails only the tuple being executed.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SeqSpout, SpoutCounts};
use squall_core::{
    Bolt, BoltOutput, Chaining, InputBatch, TopologyBuilder, TopologyConfig, Tuple, Value,
};
use squall_test_support::wait_for;

/// Sums its input a run at a time and remembers the runs' sizes and the order it saw.
#[derive(Clone, Default)]
struct RunSummer {
    seen: Arc<Mutex<Vec<u64>>>,
    largest_run: Arc<AtomicUsize>,
    runs: Arc<AtomicU64>,
    /// Tuple number whose execution panics (once), if any.
    panic_on: Option<u64>,
    panicked: Arc<AtomicU64>,
    /// What each task saw, by task id.
    by_task: Arc<Mutex<std::collections::BTreeMap<u32, Vec<u64>>>>,
    task: u32,
}

impl Bolt for RunSummer {
    fn prepare(
        &mut self,
        context: &squall_core::TopologyContext,
    ) -> Result<(), squall_core::ComponentError> {
        self.task = context.task_id().0;
        Ok(())
    }

    fn execute(&mut self, _input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {
        unreachable!("every tuple arrives through execute_batch");
    }

    fn wants_runs(&self) -> bool {
        true
    }

    fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.largest_run.fetch_max(batch.len(), Ordering::SeqCst);
        let mut seen = Vec::with_capacity(batch.len());
        let panic_on = self.panic_on;
        let panicked = Arc::clone(&self.panicked);
        let store = Arc::clone(&self.seen);
        batch.for_each(|input, output| {
            let n = input.get_u64(0).unwrap();
            if Some(n) == panic_on && panicked.fetch_add(1, Ordering::SeqCst) == 0 {
                store.lock().unwrap().extend(seen.drain(..));
                panic!("cannot sum {n}");
            }
            seen.push(n);
            output.ack(input);
        });
        self.by_task
            .lock()
            .unwrap()
            .entry(self.task)
            .or_default()
            .extend_from_slice(&seen);
        self.seen.lock().unwrap().extend(seen);
        batch
            .output()
            .emit(&[Value::U64(self.runs.load(Ordering::SeqCst))]);
    }

    fn declare_outputs(&self, declarer: &mut squall_core::OutputDeclarer) {
        declarer.declare(&["runs"]);
    }
}

fn run(tuples: u64, bolt: RunSummer, chaining: Chaining) -> Arc<SpoutCounts> {
    run_tasks(tuples, bolt, chaining, 1, None)
}

/// Runs `tuples` through `tasks` tasks of `bolt` until every tree ended: grouped by the
/// `key` fields, or shuffled without them.
fn run_tasks(
    tuples: u64,
    bolt: RunSummer,
    chaining: Chaining,
    tasks: usize,
    key: Option<&[&str]>,
) -> Arc<SpoutCounts> {
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(tuples, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    let sum = builder.set_bolt("sum", move || bolt.clone(), tasks);
    match key {
        Some(fields) => sum.fields_grouping("src", fields),
        None => sum.shuffle_grouping("src"),
    };
    let config = TopologyConfig::default().with_chaining(chaining);
    let running = squall_core::run(builder.build("batches", config).unwrap()).unwrap();
    wait_for("every tree to end", Duration::from_secs(30), || {
        counts.acked() + counts.failed() == tuples
    });
    assert!(running.kill(Duration::from_secs(10)).drained);
    counts
}

#[test]
fn a_batch_bolt_sees_every_tuple_once_in_order_in_runs() {
    for chaining in [Chaining::Never, Chaining::Threads(1)] {
        let bolt = RunSummer::default();
        let counts = run(50_000, bolt.clone(), chaining);
        assert_eq!(counts.acked(), 50_000, "{chaining:?}");
        assert_eq!(counts.failed(), 0);
        let seen = bolt.seen.lock().unwrap().clone();
        assert_eq!(seen, (0..50_000).collect::<Vec<_>>(), "{chaining:?}");
        let largest = bolt.largest_run.load(Ordering::SeqCst);
        assert!(largest > 1, "runs of one tuple only ({chaining:?})");
        assert!(largest <= 64);
        assert!(bolt.runs.load(Ordering::SeqCst) < 50_000);
    }
}

#[test]
fn a_panic_inside_a_run_fails_only_the_tuple_being_executed() {
    // One task; then four on one thread, whose input is put in task order.
    for (chaining, tasks) in [(Chaining::Never, 1), (Chaining::Threads(1), 4)] {
        a_panic_fails_only_its_tuple(chaining, tasks);
    }
}

fn a_panic_fails_only_its_tuple(chaining: Chaining, tasks: usize) {
    let bolt = RunSummer {
        panic_on: Some(20_000),
        ..RunSummer::default()
    };
    let counts = run_tasks(40_000, bolt.clone(), chaining, tasks, None);
    assert_eq!(counts.failed(), 1, "only the panicking tuple's tree fails");
    assert_eq!(*counts.failed_ids.lock().unwrap(), [20_000]);
    assert_eq!(counts.acked(), 39_999);
    let mut seen = bolt.seen.lock().unwrap().clone();
    seen.sort_unstable();
    let expected: Vec<u64> = (0..40_000).filter(|n| *n != 20_000).collect();
    assert_eq!(
        seen, expected,
        "the rest of the run went to the restarted task"
    );
}

/// Counts through `execute` only: its `execute_batch` leaves the run alone.
#[derive(Clone, Default)]
struct Lazy {
    executed: Arc<AtomicU64>,
}

impl Bolt for Lazy {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.executed.fetch_add(1, Ordering::SeqCst);
        output.ack(input);
    }

    fn wants_runs(&self) -> bool {
        true
    }

    fn execute_batch(&mut self, _batch: &mut InputBatch<'_>) {}
}

#[test]
fn tuples_a_batch_leaves_unvisited_go_to_execute() {
    let counts = Arc::new(SpoutCounts::default());
    let bolt = Lazy::default();
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(10_000, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    let factory = bolt.clone();
    builder
        .set_bolt("lazy", move || factory.clone(), 1)
        .shuffle_grouping("src");
    let running =
        squall_core::run(builder.build("lazy", TopologyConfig::default()).unwrap()).unwrap();
    wait_for("every tree to end", Duration::from_secs(30), || {
        counts.acked() == 10_000
    });
    assert_eq!(bolt.executed.load(Ordering::SeqCst), 10_000);
    assert!(running.kill(Duration::from_secs(10)).drained);
}

#[test]
fn batch_bolts_sharing_a_thread_get_their_input_in_runs_each_in_order() {
    const TUPLES: u64 = 60_000;
    const TASKS: usize = 8;
    for chaining in [Chaining::Threads(1), Chaining::Threads(2)] {
        let bolt = RunSummer::default();
        let counts = run_tasks(TUPLES, bolt.clone(), chaining, TASKS, Some(&["n"]));
        assert_eq!(
            (counts.acked(), counts.failed()),
            (TUPLES, 0),
            "{chaining:?}"
        );
        let seen = bolt.by_task.lock().unwrap();
        assert_eq!(seen.len(), TASKS, "every task got input ({chaining:?})");
        let mut all = Vec::new();
        for (task, own) in seen.iter() {
            assert!(
                own.windows(2).all(|pair| pair[0] < pair[1]),
                "task {task} saw its input out of order ({chaining:?})"
            );
            all.extend_from_slice(own);
        }
        all.sort_unstable();
        assert_eq!(all, (0..TUPLES).collect::<Vec<_>>(), "{chaining:?}");
        // In the ring, a task's records are about one in eight: runs of consecutive records
        // would average little over one tuple.
        let runs = bolt.runs.load(Ordering::SeqCst);
        assert!(
            runs * 3 < TUPLES,
            "{runs} runs for {TUPLES} tuples ({chaining:?})"
        );
    }
}
