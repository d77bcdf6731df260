//! Windows backed by checkpointed state: a sliding event-time window over a replayable
//! source crashes in the middle of the stream, and the sums its windows feed into a stateful
//! sink are still exactly the reference's: no open window lost its contents, none was
//! counted twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_core::state::{
    Checkpointing, EmbeddedBackend, KeyValueState, ReplayOutput, ReplayableSpout, StateBackend,
    StatefulBolt,
};
use squall_core::window::{Extent, Window, WindowOutput, WindowSpec, WindowedBolt};
use squall_core::{
    BoltOutput, ComponentError, OutputDeclarer, TopologyBuilder, TopologyConfig, Tuple, Value,
};
use squall_test_support::wait_for_or_explain;

const TUPLES: u64 = 3_000;
const STEP_MS: u64 = 10;
const LENGTH_MS: u64 = 1_000;
const SLIDE_MS: u64 = 500;

/// Emits `[n, ts = n * 10]` for `n` in `0..3000`, a few a millisecond; its position is the
/// next `n`.
struct Numbers {
    next: u64,
}

impl ReplayableSpout for Numbers {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n", "ts"]);
    }

    fn next_tuple(&mut self, output: &mut ReplayOutput<'_, '_>) {
        for _ in 0..4 {
            if self.next == TUPLES {
                break;
            }
            output.emit(&[Value::U64(self.next), Value::U64(self.next * STEP_MS)]);
            self.next += 1;
        }
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

/// Sums `n` over each window; panics on window `crash_at` (counting from 0), once.
struct Sum {
    evaluated: Arc<AtomicU64>,
    crashed: Arc<AtomicBool>,
    crash_at: u64,
}

impl WindowedBolt for Sum {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["end", "sum"]);
    }

    fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>) {
        if self.evaluated.fetch_add(1, Ordering::SeqCst) == self.crash_at
            && !self.crashed.swap(true, Ordering::SeqCst)
        {
            panic!("a crash the test asked for");
        }
        let sum: u64 = window.iter().filter_map(|tuple| tuple.u64(0)).sum();
        output.emit(&[Value::U64(window.end_ms().unwrap()), Value::U64(sum)]);
    }
}

/// Adds each window's sum under its end, in state; mirrors the state for the test.
struct Sink {
    mirror: Arc<Mutex<BTreeMap<u64, u64>>>,
}

impl StatefulBolt for Sink {
    fn restored(&mut self, state: &KeyValueState) {
        let mut mirror = self.mirror.lock().unwrap();
        mirror.clear();
        for (key, _) in state.iter() {
            mirror.insert(
                u64::from_be_bytes(key.try_into().unwrap()),
                state.get_u64(key),
            );
        }
    }

    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        let end = input.get_u64(0).unwrap();
        let total = state.add_u64(&end.to_be_bytes(), input.get_u64(1).unwrap());
        self.mirror.lock().unwrap().insert(end, total);
        output.ack(input);
    }
}

/// The sum of every window the watermark closes, by its end.
fn reference() -> BTreeMap<u64, u64> {
    let newest = (TUPLES - 1) * STEP_MS;
    let mut sums = BTreeMap::new();
    let mut end = SLIDE_MS;
    while end <= newest {
        let start = end.saturating_sub(LENGTH_MS);
        let sum: u64 = (0..TUPLES)
            .filter(|n| (start..end).contains(&(n * STEP_MS)))
            .sum();
        sums.insert(end, sum);
        end += SLIDE_MS;
    }
    sums
}

#[test]
fn windows_in_state_lose_nothing_and_count_nothing_twice_through_a_crash() {
    // Early, in the middle, and late in the stream.
    for crash_at in [3, 20, 47] {
        crash_and_check(crash_at);
    }
}

fn crash_and_check(crash_at: u64) {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::new(dir.path());
    let mut builder = TopologyBuilder::new();
    builder.checkpointing(Checkpointing {
        interval: Duration::from_millis(50),
        backend: Arc::new(backend.clone()),
    });
    builder.set_replayable_spout("numbers", || Numbers { next: 0 }, 1);
    let spec = WindowSpec::sliding(
        Extent::Time(Duration::from_millis(LENGTH_MS)),
        Extent::Time(Duration::from_millis(SLIDE_MS)),
    )
    .unwrap()
    .with_event_time("ts", Duration::ZERO)
    .unwrap();
    let (evaluated, crashed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (bolt_evaluated, bolt_crashed) = (evaluated.clone(), crashed.clone());
    let evaluated_seen = evaluated.clone();
    builder
        .set_state_backed_windowed_bolt(
            "windows",
            move || Sum {
                evaluated: bolt_evaluated.clone(),
                crashed: bolt_crashed.clone(),
                crash_at,
            },
            1,
            &spec,
        )
        .shuffle_grouping("numbers");
    let mirror = Arc::new(Mutex::new(BTreeMap::new()));
    let sink_mirror = mirror.clone();
    builder
        .set_stateful_bolt(
            "sums",
            move || Sink {
                mirror: sink_mirror.clone(),
            },
            1,
        )
        .shuffle_grouping("windows");
    let config = TopologyConfig {
        message_timeout: Duration::from_secs(3),
        ..TopologyConfig::default()
    };
    let running = squall_core::run(builder.build("windows-in-state", config).unwrap()).unwrap();

    let want = reference();
    wait_for_or_explain(
        &format!("the window sums to be exact (crash at window {crash_at})"),
        Duration::from_secs(60),
        || *mirror.lock().unwrap() == want,
        || {
            let have = mirror.lock().unwrap().clone();
            let wrong: Vec<_> = want
                .iter()
                .filter(|(end, sum)| have.get(end) != Some(sum))
                .take(5)
                .collect();
            format!(
                ": {} evaluated, {} of {} windows, first wrong {wrong:?}, have there {:?}; errors {:?}",
                evaluated_seen.load(Ordering::SeqCst),
                have.len(),
                want.len(),
                wrong
                    .iter()
                    .map(|(end, _)| have.get(end))
                    .collect::<Vec<_>>(),
                running.errors()
            )
        },
    );
    // Checkpoints after the last window commit it.
    std::thread::sleep(Duration::from_millis(500));
    let report = running.kill(Duration::from_secs(10));
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.message.contains("a crash the test asked for")),
        "the windowed bolt crashed: {:?}",
        report.errors
    );
    assert!(
        evaluated.load(Ordering::SeqCst) > want.len() as u64,
        "the rollback evaluated windows again"
    );
    let committed = backend
        .ledger("windows-in-state", 1)
        .unwrap()
        .view()
        .unwrap()
        .committed;
    let mut store = backend.task_store("windows-in-state", "sums", 0).unwrap();
    let sums: BTreeMap<u64, u64> = store
        .read(committed)
        .unwrap()
        .into_iter()
        .map(|(key, value)| {
            (
                u64::from_be_bytes(key.try_into().unwrap()),
                u64::from_le_bytes(value.try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(sums, want);
    // The windows' own state holds only what the last, still open windows need.
    let mut windows = backend
        .task_store("windows-in-state", "windows", 0)
        .unwrap();
    let held = windows.read(committed).unwrap().len();
    assert!(
        held <= (LENGTH_MS / STEP_MS) as usize + 2,
        "{held} keys kept for the open windows"
    );
}
