//! Checkpointed state on running topologies, in the embedded backend: counts exactly once
//! through a failed tuple and a crashed stateful task, and across a restart of the whole
//! topology.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_core::state::{
    Checkpointing, EmbeddedBackend, KeyValueState, ReplayOutput, ReplayableSpout, StateBackend,
    StatefulBolt,
};
use squall_core::{
    Bolt, BoltOutput, ComponentError, OutputDeclarer, TopologyBuilder, TopologyConfig,
    TopologyContext, Tuple, Value,
};
use squall_test_support::wait_for_or_explain;

const DISTINCT: usize = 97;

fn input(len: usize) -> Arc<Vec<String>> {
    Arc::new(
        (0..len)
            .map(|i| format!("w{}", (i * 31 + i / 7) % DISTINCT))
            .collect(),
    )
}

fn expected(words: &[String]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for word in words {
        *counts.entry(word.clone()).or_default() += 1;
    }
    counts
}

/// Emits its share of `words` (every `tasks`-th, from its own index); its position is how
/// many of its share it emitted.
struct Words {
    words: Arc<Vec<String>>,
    task: usize,
    tasks: usize,
    next: usize,
}

impl ReplayableSpout for Words {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word"]);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.task = context.task_index();
        self.tasks = context.component_tasks().len();
        Ok(())
    }

    /// Ten words a millisecond, so that checkpoints and faults fall in the middle.
    fn next_tuple(&mut self, output: &mut ReplayOutput<'_, '_>) {
        for _ in 0..10 {
            let Some(word) = self.words.get(self.next * self.tasks + self.task) else {
                break;
            };
            output.emit(&[Value::Str(word)]);
            self.next += 1;
        }
        output.idle_for(Duration::from_millis(1));
    }

    fn position(&self) -> Vec<u8> {
        (self.next as u64).to_le_bytes().to_vec()
    }

    fn seek(&mut self, position: Option<&[u8]>) -> Result<(), ComponentError> {
        self.next = match position {
            Some(bytes) => u64::from_le_bytes(bytes.try_into()?) as usize,
            None => 0,
        };
        Ok(())
    }
}

/// Passes words on; fails the `fail_at`-th one it sees, once.
struct Relay {
    seen: Arc<AtomicU64>,
    fail_at: u64,
    failed: Arc<AtomicBool>,
}

impl Bolt for Relay {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let seen = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if seen >= self.fail_at && !self.failed.swap(true, Ordering::SeqCst) {
            output.fail(input);
            return;
        }
        output.emit_anchored(input, &[Value::Str(input.get_str(0).unwrap())]);
        output.ack(input);
    }
}

/// Counts words in its state, mirrors the state where the test sees it, and panics on the
/// `panic_at`-th word it counts, once.
struct Counter {
    task: usize,
    mirror: Arc<Mutex<HashMap<(usize, String), u64>>>,
    counted: Arc<AtomicU64>,
    panic_at: u64,
    panicked: Arc<AtomicBool>,
}

impl StatefulBolt for Counter {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.task = context.task_index();
        Ok(())
    }

    fn restored(&mut self, state: &KeyValueState) {
        let mut mirror = self.mirror.lock().unwrap();
        mirror.retain(|(task, _), _| *task != self.task);
        for (key, _) in state.iter() {
            let word = String::from_utf8(key.to_vec()).unwrap();
            mirror.insert((self.task, word), state.get_u64(key));
        }
    }

    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        let counted = self.counted.fetch_add(1, Ordering::SeqCst) + 1;
        if counted >= self.panic_at && !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("a crash the test asked for");
        }
        let word = input.get_str(0).unwrap();
        let count = state.add_u64(word.as_bytes(), 1);
        self.mirror
            .lock()
            .unwrap()
            .insert((self.task, word.to_owned()), count);
        output.ack(input);
    }
}

/// The mirrored counts, summed over tasks.
fn totals(mirror: &Mutex<HashMap<(usize, String), u64>>) -> HashMap<String, u64> {
    let mut totals = HashMap::new();
    for ((_, word), count) in mirror.lock().unwrap().iter() {
        *totals.entry(word.clone()).or_default() += count;
    }
    totals
}

/// The committed counts in the backend, once the topology is stopped.
fn committed_counts(backend: &EmbeddedBackend, topology: &str) -> HashMap<String, u64> {
    let committed = backend
        .ledger(topology, 2)
        .unwrap()
        .view()
        .unwrap()
        .committed;
    let mut totals = HashMap::new();
    for task in 0..2 {
        let mut store = backend.task_store(topology, "count", task).unwrap();
        for (key, value) in store.read(committed).unwrap() {
            let count = u64::from_le_bytes(value.try_into().unwrap());
            *totals.entry(String::from_utf8(key).unwrap()).or_default() += count;
        }
    }
    totals
}

struct Faults {
    fail_at: u64,
    panic_at: u64,
}

struct Run {
    mirror: Arc<Mutex<HashMap<(usize, String), u64>>>,
    counted: Arc<AtomicU64>,
    running: squall_core::RunningTopology,
}

fn start(name: &str, words: &Arc<Vec<String>>, backend: &EmbeddedBackend, faults: Faults) -> Run {
    let mirror = Arc::new(Mutex::new(HashMap::new()));
    let counted = Arc::new(AtomicU64::new(0));
    let mut builder = TopologyBuilder::new();
    builder.checkpointing(Checkpointing {
        interval: Duration::from_millis(100),
        backend: Arc::new(backend.clone()),
    });
    let spout_words = words.clone();
    builder.set_replayable_spout(
        "words",
        move || Words {
            words: spout_words.clone(),
            task: 0,
            tasks: 1,
            next: 0,
        },
        2,
    );
    let (seen, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    builder
        .set_bolt(
            "relay",
            move || Relay {
                seen: seen.clone(),
                fail_at: faults.fail_at,
                failed: failed.clone(),
            },
            2,
        )
        .shuffle_grouping("words");
    let (bolt_mirror, bolt_counted) = (mirror.clone(), counted.clone());
    let panicked = Arc::new(AtomicBool::new(false));
    builder
        .set_stateful_bolt(
            "count",
            move || Counter {
                task: 0,
                mirror: bolt_mirror.clone(),
                counted: bolt_counted.clone(),
                panic_at: faults.panic_at,
                panicked: panicked.clone(),
            },
            2,
        )
        .fields_grouping("relay", &["word"]);
    let config = TopologyConfig {
        max_spout_pending: Some(2_000),
        // Trees lost with the crashed counter's held inputs time out soon, so the kill
        // drains.
        message_timeout: Duration::from_secs(3),
        ..TopologyConfig::default()
    };
    let topology = builder.build(name, config).unwrap();
    Run {
        mirror,
        counted,
        running: squall_core::run(topology).unwrap(),
    }
}

fn wait_for_counts(run: &Run, want: &HashMap<String, u64>, what: &str) {
    wait_for_or_explain(
        what,
        Duration::from_secs(60),
        || totals(&run.mirror) == *want,
        || {
            let have = totals(&run.mirror);
            let wrong: Vec<_> = want
                .iter()
                .filter(|(word, count)| have.get(*word) != Some(count))
                .take(5)
                .map(|(word, count)| format!("{word}: {:?} not {count}", have.get(word)))
                .collect();
            format!(
                "; {} words counted, wrong: {wrong:?}; errors: {:?}",
                run.counted.load(Ordering::SeqCst),
                run.running.errors()
            )
        },
    );
}

#[test]
fn every_word_counts_once_through_a_failed_tuple_and_a_crashed_counter() {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::new(dir.path());
    let words = input(20_000);
    let want = expected(&words);
    let run = start(
        "exactly-once",
        &words,
        &backend,
        Faults {
            fail_at: 5_000,
            panic_at: 12_000,
        },
    );
    wait_for_counts(&run, &want, "the counts to be exact");
    // Checkpoints after the last word commit it.
    std::thread::sleep(Duration::from_millis(600));
    let report = run.running.kill(Duration::from_secs(10));
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.message.contains("a crash the test asked for")),
        "the counter crashed: {:?}",
        report.errors
    );
    assert!(
        run.counted.load(Ordering::SeqCst) > words.len() as u64,
        "the rollbacks replayed words"
    );
    assert_eq!(committed_counts(&backend, "exactly-once"), want);
}

#[test]
fn a_restarted_topology_goes_on_from_its_committed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::new(dir.path());
    let words = input(30_000);
    let want = expected(&words);
    let no_faults = || Faults {
        fail_at: u64::MAX,
        panic_at: u64::MAX,
    };
    let first = start("restarted", &words, &backend, no_faults());
    wait_for_or_explain(
        "half the words to be counted",
        Duration::from_secs(60),
        || first.counted.load(Ordering::SeqCst) >= 10_000,
        String::new,
    );
    first.running.kill(Duration::from_secs(10));
    let committed: u64 = committed_counts(&backend, "restarted").values().sum();
    assert!(committed < words.len() as u64, "{committed} committed");

    let second = start("restarted", &words, &backend, no_faults());
    wait_for_counts(&second, &want, "the counts to be exact after the restart");
    std::thread::sleep(Duration::from_millis(600));
    second.running.kill(Duration::from_secs(10));
    assert_eq!(committed_counts(&backend, "restarted"), want);
}
