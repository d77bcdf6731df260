//! A word count whose counts live in checkpointed state (the embedded backend, in a
//! temporary directory). Midway, one tuple fails and the counting task crashes; the topology
//! rolls back to its last committed checkpoint, the source replays from there, and every
//! count still comes out exact.
//!
//! ```text
//! cargo run --release -p squall --example exactly_once
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall::state::{
    Checkpointing, EmbeddedBackend, KeyValueState, ReplayOutput, ReplayableSpout, StateBackend,
    StatefulBolt,
};
use squall::{
    BoltOutput, ComponentError, OutputDeclarer, TopologyBuilder, TopologyConfig, Tuple, Value,
};

const WORDS: [&str; 8] = [
    "storm", "squall", "gale", "breeze", "gust", "tempest", "zephyr", "cyclone",
];
const TOTAL: u64 = 200_000;

/// Word `i` of the input: a fixed, uneven mix.
fn word(i: u64) -> &'static str {
    WORDS[((i * i + i / 3) % WORDS.len() as u64) as usize]
}

/// Emits words 0..TOTAL; its position is how many it emitted, so it can go back.
struct Words {
    next: u64,
}

impl ReplayableSpout for Words {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word"]);
    }

    fn next_tuple(&mut self, output: &mut ReplayOutput<'_, '_>) {
        for _ in 0..100 {
            if self.next == TOTAL {
                output.idle_for(Duration::from_millis(5));
                return;
            }
            output.emit(&[Value::Str(word(self.next))]);
            self.next += 1;
        }
        // About 100,000 words a second, so that checkpoints fall along the way.
        output.idle_for(Duration::from_millis(1));
    }

    fn position(&self) -> Vec<u8> {
        self.next.to_le_bytes().to_vec()
    }

    fn seek(&mut self, position: Option<&[u8]>) -> Result<(), ComponentError> {
        self.next = match position {
            Some(bytes) => u64::from_le_bytes(bytes.try_into()?),
            None => 0,
        };
        Ok(())
    }
}

/// Counts words in its state; fails one input and crashes once along the way.
struct Count {
    seen: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    crashed: Arc<AtomicBool>,
    latest: Arc<Mutex<HashMap<String, u64>>>,
}

impl StatefulBolt for Count {
    fn restored(&mut self, state: &KeyValueState) {
        let mut latest = self.latest.lock().unwrap();
        latest.clear();
        for (word, _) in state.iter() {
            latest.insert(
                String::from_utf8_lossy(word).into_owned(),
                state.get_u64(word),
            );
        }
    }

    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        let seen = self.seen.fetch_add(1, Ordering::Relaxed);
        if seen == 50_000 && !self.failed.swap(true, Ordering::Relaxed) {
            println!("failing one tuple: the topology rolls back");
            output.fail(input);
            return;
        }
        if seen >= 120_000 && !self.crashed.swap(true, Ordering::Relaxed) {
            println!("crashing the counter: it restarts and the topology rolls back");
            panic!("a crash on purpose");
        }
        let word = input.get_str(0).unwrap_or_default();
        let count = state.add_u64(word.as_bytes(), 1);
        self.latest.lock().unwrap().insert(word.to_owned(), count);
        output.ack(input);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The crash is on purpose: one line for it, not a backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("(a task panicked: {info})")));
    let dir = tempfile_dir()?;
    let backend = EmbeddedBackend::new(&dir);
    let (seen, latest) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(Mutex::new(HashMap::new())),
    );

    let mut builder = TopologyBuilder::new();
    builder.checkpointing(Checkpointing {
        interval: Duration::from_millis(200),
        backend: Arc::new(backend.clone()),
    });
    builder.set_replayable_spout("words", || Words { next: 0 }, 1);
    let (bolt_seen, bolt_latest) = (seen.clone(), latest.clone());
    let (failed, crashed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    builder
        .set_stateful_bolt(
            "count",
            move || Count {
                seen: bolt_seen.clone(),
                failed: failed.clone(),
                crashed: crashed.clone(),
                latest: bolt_latest.clone(),
            },
            1,
        )
        .shuffle_grouping("words");
    let config = TopologyConfig {
        message_timeout: Duration::from_secs(3),
        ..TopologyConfig::default()
    };
    let running = squall::run(builder.build("exactly-once", config)?)?;

    let mut expected: HashMap<String, u64> = HashMap::new();
    for i in 0..TOTAL {
        *expected.entry(word(i).to_owned()).or_default() += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while *latest.lock().unwrap() != expected {
        if Instant::now() > deadline {
            return Err("the counts did not come out exact in time".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // One more checkpoint commits the last words.
    std::thread::sleep(Duration::from_millis(600));
    running.kill(Duration::from_secs(10));

    let committed = backend.ledger("exactly-once", 1)?.view()?.committed;
    let mut store = backend.task_store("exactly-once", "count", 0)?;
    let mut counts: Vec<(String, u64)> = store
        .read(committed)?
        .into_iter()
        .map(|(word, count)| {
            let count = u64::from_le_bytes(count.try_into().unwrap_or_default());
            (String::from_utf8_lossy(&word).into_owned(), count)
        })
        .collect();
    counts.sort();
    println!(
        "{} words processed for {TOTAL} in the input; committed checkpoint {committed}:",
        seen.load(Ordering::Relaxed)
    );
    for (word, count) in &counts {
        let exact = if expected.get(word) == Some(count) {
            "exact"
        } else {
            "WRONG"
        };
        println!("  {word:<8} {count:>7}  {exact}");
    }
    let all_exact = counts.len() == expected.len()
        && counts
            .iter()
            .all(|(word, count)| expected.get(word) == Some(count));
    std::fs::remove_dir_all(&dir)?;
    if all_exact {
        println!("every word counted exactly once");
        Ok(())
    } else {
        Err("a count is wrong".into())
    }
}

/// A fresh directory for the state.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("squall-exactly-once-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
