//! Spouts that emit in batches (`SpoutOutput::emit_batch`, `emit_batch_with_ids`): every
//! tuple goes where a single emit sends it, once, in order per task; tracked batches complete
//! and fail tree by tree, packed records too; a batch of the wrong shape is refused whole.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Recorder, SeenLog, SeqSpout, SpoutCounts};
use squall_core::{
    Bolt, BoltOutput, Chaining, OutputDeclarer, Spout, SpoutOutput, TopologyBuilder,
    TopologyConfig, Tuple, Value,
};
use squall_test_support::wait_for;

const TUPLES: u64 = 20_000;

fn config(chaining: Chaining, ackers: usize) -> TopologyConfig {
    TopologyConfig::default()
        .with_chaining(chaining)
        .with_ackers(ackers)
        .with_max_spout_pending(1_000)
        .with_message_timeout(Duration::from_secs(60))
}

/// Runs a spout emitting batches of `batch` into three recorders keyed by `key`, until
/// every tuple was seen. Batches longer than 128 are routed in several chunks.
fn keyed_run(chaining: Chaining, tracked: bool, batch: usize) -> (SeenLog, Arc<SpoutCounts>) {
    let counts = Arc::new(SpoutCounts::default());
    let log = SeenLog::default();
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || {
            let spout = SeqSpout::new(TUPLES, 97, Arc::clone(&spout_counts)).in_batches_of(batch);
            if tracked { spout.tracked() } else { spout }
        },
        1,
    );
    let bolt_log = Arc::clone(&log);
    builder
        .set_bolt("record", move || Recorder::new(Arc::clone(&bolt_log)), 3)
        .fields_grouping("src", &["key"]);
    let topology = builder
        .build("batches", config(chaining, usize::from(tracked)))
        .unwrap();
    let running = squall_core::run(topology).unwrap();
    wait_for("every tuple", Duration::from_secs(30), || {
        log.lock().unwrap().len() as u64 >= TUPLES
            && (!tracked || counts.acked() + counts.failed() >= TUPLES)
    });
    assert!(running.kill(Duration::from_secs(10)).drained);
    (log, counts)
}

fn check_keyed(log: &SeenLog) {
    let seen = log.lock().unwrap();
    assert_eq!(seen.len() as u64, TUPLES, "every tuple once");
    let mut task_of_key = BTreeMap::new();
    let mut last_of_key: BTreeMap<u64, u64> = BTreeMap::new();
    for tuple in seen.iter() {
        let [n, key] = tuple.values[..] else {
            panic!("two fields: {tuple:?}")
        };
        assert_eq!(key, n % 97);
        let task = *task_of_key.entry(key).or_insert(tuple.task);
        assert_eq!(task, tuple.task, "key {key} went to one task");
        if let Some(&last) = last_of_key.get(&key) {
            assert!(n > last, "key {key}: {n} after {last}, in emit order");
        }
        last_of_key.insert(key, n);
    }
    let tasks: std::collections::BTreeSet<_> = task_of_key.values().collect();
    assert_eq!(tasks.len(), 3, "the keys spread over the three tasks");
}

#[test]
fn batches_reach_their_keyed_tasks_once_in_order() {
    for (chaining, batch) in [(Chaining::Never, 50), (Chaining::Threads(1), 300)] {
        let (log, counts) = keyed_run(chaining, false, batch);
        check_keyed(&log);
        assert_eq!(counts.emitted(), TUPLES);
    }
}

#[test]
fn tracked_batches_complete_tree_by_tree() {
    for (chaining, batch) in [(Chaining::Never, 50), (Chaining::Threads(1), 300)] {
        let (log, counts) = keyed_run(chaining, true, batch);
        check_keyed(&log);
        let mut acked = counts.acked_ids.lock().unwrap().clone();
        acked.sort_unstable();
        assert_eq!(acked, (0..TUPLES).collect::<Vec<_>>(), "{chaining:?}");
        assert_eq!(counts.failed(), 0);
    }
}

/// Fails the tuples whose id is a multiple of seven, acks the rest.
struct FailSevens;

impl Bolt for FailSevens {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if input.get_u64(0).unwrap().is_multiple_of(7) {
            output.fail(input);
        } else {
            output.ack(input);
        }
    }
}

/// Runs `tuples` tracked tuples, emitted in batches of 64, through `tasks` tasks of a bolt
/// made by `judge`, each on a thread of its own; checks that each multiple of seven failed
/// alone and the rest were acked.
fn judged_by<B: Bolt + 'static>(judge: fn() -> B, tasks: usize, tuples: u64) {
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || {
            SeqSpout::new(tuples, 10, Arc::clone(&spout_counts))
                .in_batches_of(64)
                .tracked()
        },
        1,
    );
    builder
        .set_bolt("judge", judge, tasks)
        .shuffle_grouping("src");
    let topology = builder.build("sevens", config(Chaining::Never, 1)).unwrap();
    let running = squall_core::run(topology).unwrap();
    wait_for("every verdict", Duration::from_secs(20), || {
        counts.acked() + counts.failed() == tuples
    });
    let sorted = |ids: &Mutex<Vec<u64>>| {
        let mut ids = ids.lock().unwrap().clone();
        ids.sort_unstable();
        ids
    };
    let (sevens, rest): (Vec<u64>, Vec<u64>) = (0..tuples).partition(|n| n.is_multiple_of(7));
    assert_eq!(sorted(&counts.failed_ids), sevens);
    assert_eq!(sorted(&counts.acked_ids), rest);
    running.kill(Duration::from_secs(1));
}

#[test]
fn a_failed_tuple_of_a_batch_fails_its_own_tree_alone() {
    judged_by(|| FailSevens, 2, 1_000);
}

/// Panics on the tuples whose id is a multiple of seven, acks the rest.
struct PanicOnSevens;

impl Bolt for PanicOnSevens {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let id = input.get_u64(0).unwrap();
        assert!(!id.is_multiple_of(7), "seven divides {id}");
        output.ack(input);
    }
}

/// A batch to a bolt on a thread of its own arrives packed, several tuples to a record; a
/// panic on one of them fails that tuple's tree alone, and the restarted task gets the rest.
#[test]
fn a_panic_on_a_tuple_of_a_packed_record_fails_that_tuple_alone() {
    judged_by(|| PanicOnSevens, 1, 700);
}

/// Emits one batch of one-field tuples on a two-field stream, then one good batch.
struct WrongShape {
    refused: Arc<Mutex<Option<String>>>,
    done: Arc<AtomicBool>,
}

impl Spout for WrongShape {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n", "key"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let stream = output.stream("default").unwrap();
        let wrong = [[Value::U64(1)], [Value::U64(2)]];
        let error = output.try_emit_batch(stream, &wrong).unwrap_err();
        *self.refused.lock().unwrap() = Some(error.to_string());
        let good = [
            [Value::U64(3), Value::U64(0)],
            [Value::U64(4), Value::U64(1)],
        ];
        assert_eq!(output.try_emit_batch(stream, &good), Ok(2));
    }
}

/// Counts what arrives.
struct Count(Arc<AtomicU64>);

impl Bolt for Count {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.0
            .fetch_add(input.get_u64(0).unwrap(), Ordering::SeqCst);
        output.ack(input);
    }
}

#[test]
fn a_batch_of_the_wrong_shape_is_refused_whole() {
    let refused = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let sum = Arc::new(AtomicU64::new(0));
    let mut builder = TopologyBuilder::new();
    let (spout_refused, spout_done) = (Arc::clone(&refused), Arc::clone(&done));
    builder.set_spout(
        "src",
        move || WrongShape {
            refused: Arc::clone(&spout_refused),
            done: Arc::clone(&spout_done),
        },
        1,
    );
    let bolt_sum = Arc::clone(&sum);
    builder
        .set_bolt("count", move || Count(Arc::clone(&bolt_sum)), 1)
        .shuffle_grouping("src");
    let running =
        squall_core::run(builder.build("shape", config(Chaining::Auto, 0)).unwrap()).unwrap();
    wait_for("the good batch", Duration::from_secs(10), || {
        sum.load(Ordering::SeqCst) == 7
    });
    let message = refused.lock().unwrap().clone().unwrap();
    assert!(
        message.contains("declares 2 fields, but 1 values were emitted"),
        "{message}"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        sum.load(Ordering::SeqCst),
        7,
        "nothing of the wrong batch arrived"
    );
    running.kill(Duration::from_secs(1));
}
