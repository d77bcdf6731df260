//! Guaranteed processing: random topologies with injected faults, timeouts, multi-anchoring
//! and disabled tracking.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SeqSpout, SpoutCounts};
use proptest::prelude::*;
use squall_core::replay::{ReplayStats, ReplayingSpout};
use squall_core::{
    Anchor, Bolt, BoltOutput, Grouping, OutputDeclarer, TopologyBuilder, TopologyConfig, Tuple,
    Value,
};
use squall_test_support::wait_for;

/// Faults a bolt injects, per thousand tuples.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    fail: u32,
    drop: u32,
    panic: u32,
}

/// A bolt that emits `fanout` copies of each input's id anchored to it (or, joining, anchored
/// to the input and the one before), records the ids it processed, and injects faults.
struct Stage {
    fanout: u32,
    join: bool,
    faults: Faults,
    seen: Arc<Mutex<BTreeSet<u64>>>,
    rng: fastrand::Rng,
    held: Option<(Anchor, u64)>,
}

impl Bolt for Stage {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["id"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if input.is_tick() {
            // A join partner that never came: pass the held tuple on alone.
            if let Some((anchor, id)) = self.held.take() {
                for _ in 0..self.fanout {
                    output.emit_anchored(&anchor, &[Value::U64(id)]);
                }
                self.seen.lock().unwrap().insert(id);
                output.ack(&anchor);
            }
            return;
        }
        let roll = self.rng.u32(..1000);
        let faults = self.faults;
        if roll < faults.panic {
            panic!("injected panic");
        } else if roll < faults.panic + faults.fail {
            output.fail(input);
            return;
        } else if roll < faults.panic + faults.fail + faults.drop {
            return;
        }
        let id = input.get_u64(0).unwrap();
        if self.join {
            match self.held.take() {
                None => {
                    self.held = Some((input.anchor().clone(), id));
                    return;
                }
                Some((held, held_id)) => {
                    for _ in 0..self.fanout {
                        output.emit_on("default", &[&held, input.anchor()], &[Value::U64(id)]);
                        output.emit_on("default", &[&held, input.anchor()], &[Value::U64(held_id)]);
                    }
                    let mut seen = self.seen.lock().unwrap();
                    seen.insert(id);
                    seen.insert(held_id);
                    drop(seen);
                    output.ack(&held);
                    output.ack(input);
                    return;
                }
            }
        }
        for _ in 0..self.fanout {
            output.emit_anchored(input, &[Value::U64(id)]);
        }
        self.seen.lock().unwrap().insert(id);
        output.ack(input);
    }
}

/// One bolt of a random topology: its inputs (indices of earlier components, 0 = spout),
/// groupings, fan-out, joining and faults.
#[derive(Debug, Clone)]
struct StageShape {
    inputs: Vec<(usize, u8)>,
    fanout: u32,
    join: bool,
    parallelism: usize,
    faults: Faults,
}

fn grouping(choice: u8) -> Grouping {
    match choice % 6 {
        0 => Grouping::Shuffle,
        1 => Grouping::Fields(vec!["id".into()]),
        2 => Grouping::All,
        3 => Grouping::Global,
        4 => Grouping::LocalOrShuffle,
        _ => Grouping::PartialKey(vec!["id".into()]),
    }
}

fn stage_shape(position: usize) -> impl Strategy<Value = StageShape> {
    (
        proptest::collection::btree_map(0..=position, any::<u8>(), 1..=2),
        1u32..=2,
        proptest::bool::weighted(0.25),
        1usize..=2,
        (0u32..=30, 0u32..=20, 0u32..=10),
    )
        .prop_map(
            |(inputs, fanout, join, parallelism, (fail, drop, panic))| StageShape {
                inputs: inputs.into_iter().collect(),
                fanout,
                join,
                parallelism,
                faults: Faults { fail, drop, panic },
            },
        )
}

fn topology_shape() -> impl Strategy<Value = Vec<StageShape>> {
    (1usize..=4).prop_flat_map(|stages| (0..stages).map(stage_shape).collect::<Vec<_>>())
}

const MESSAGES: u64 = 300;

fn config() -> TopologyConfig {
    TopologyConfig::default()
        .with_message_timeout(Duration::from_millis(400))
        .with_ackers(2)
        .with_max_spout_pending(64)
}

/// Builds the bolts of `shape` onto `builder`; returns each bolt's log of processed ids.
fn add_stages(
    builder: &mut TopologyBuilder,
    shape: &[StageShape],
) -> Vec<Arc<Mutex<BTreeSet<u64>>>> {
    let mut logs = Vec::new();
    for (index, stage) in shape.iter().enumerate() {
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        logs.push(Arc::clone(&seen));
        let (fanout, join, faults) = (stage.fanout, stage.join, stage.faults);
        let make = move || Stage {
            fanout,
            join,
            faults,
            seen: Arc::clone(&seen),
            rng: fastrand::Rng::new(),
            held: None,
        };
        let mut declarer = builder
            .set_bolt(&format!("stage{index}"), make, stage.parallelism)
            .tick_frequency(Duration::from_millis(50));
        for &(input, choice) in &stage.inputs {
            let source = if input == 0 {
                "spout".to_owned()
            } else {
                format!("stage{}", input - 1)
            };
            declarer = declarer.grouping(&source, grouping(choice));
        }
    }
    logs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// With a replaying spout, every message is eventually processed by every bolt, and the
    /// spout ends with nothing pending.
    #[test]
    fn every_message_is_eventually_processed(shape in topology_shape()) {
        let stats = Arc::new(ReplayStats::default());
        let mut builder = TopologyBuilder::new();
        let spout_stats = Arc::clone(&stats);
        builder.set_spout("spout", move || ReplayingSpout::counting("id", MESSAGES, Arc::clone(&spout_stats)), 1);
        let logs = add_stages(&mut builder, &shape);
        let running = squall_core::run(builder.build("random", config()).unwrap()).unwrap();
        wait_for("every message acked", Duration::from_secs(120), || {
            stats.acked.load(Ordering::SeqCst) == MESSAGES
        });
        let report = running.kill(Duration::from_secs(10));
        prop_assert!(report.drained);
        prop_assert_eq!(stats.unexpected.load(Ordering::SeqCst), 0);
        prop_assert_eq!(stats.outstanding(), 0);
        for (index, log) in logs.iter().enumerate() {
            let seen = log.lock().unwrap();
            prop_assert_eq!(seen.len() as u64, MESSAGES, "stage{} saw {} of the messages", index, seen.len());
        }
    }

    /// Without replays, every message id gets exactly one ack or one fail.
    #[test]
    fn every_message_gets_exactly_one_outcome(shape in topology_shape()) {
        let counts = Arc::new(SpoutCounts::default());
        let mut builder = TopologyBuilder::new();
        let spout_counts = Arc::clone(&counts);
        builder.set_spout("spout", move || {
            let mut spout = SeqSpout::new(MESSAGES, 7, Arc::clone(&spout_counts)).tracked();
            spout.keys = MESSAGES;
            spout
        }, 1);
        // SeqSpout emits [n, key]; the stages read field 0 and declare ["id"] downstream, so
        // fields groupings on the spout use "n" — rename by grouping on shuffle there.
        let shape: Vec<StageShape> = shape
            .into_iter()
            .map(|mut stage| {
                for input in &mut stage.inputs {
                    if input.0 == 0 && matches!(input.1 % 6, 1 | 5) {
                        input.1 = 0;
                    }
                }
                stage
            })
            .collect();
        add_stages(&mut builder, &shape);
        let running = squall_core::run(builder.build("outcomes", config()).unwrap()).unwrap();
        wait_for("an outcome for every message", Duration::from_secs(60), || {
            counts.acked() + counts.failed() >= MESSAGES
        });
        // Late outcomes would show up now.
        std::thread::sleep(Duration::from_millis(900));
        running.kill(Duration::from_secs(10));
        let mut outcomes: Vec<u64> = counts.acked_ids.lock().unwrap().clone();
        outcomes.extend(counts.failed_ids.lock().unwrap().iter());
        outcomes.sort_unstable();
        prop_assert_eq!(outcomes, (0..MESSAGES).collect::<Vec<_>>());
    }
}

/// Holds every tuple without acking it.
#[derive(Default)]
struct Hoarder {
    held: Vec<Anchor>,
}

impl Bolt for Hoarder {
    fn execute(&mut self, input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {
        self.held.push(input.anchor().clone());
    }
}

#[test]
fn a_stuck_tree_fails_within_the_timeout_plus_one_expiry_tick() {
    let timeout = Duration::from_millis(800);
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(1, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    builder
        .set_bolt("stuck", Hoarder::default, 1)
        .shuffle_grouping("src");
    let config = TopologyConfig::default().with_message_timeout(timeout);
    let running = squall_core::run(builder.build("timeout", config).unwrap()).unwrap();
    wait_for("the emit", Duration::from_secs(5), || counts.emitted() == 1);
    let emitted_at = Instant::now();
    wait_for("the timeout", Duration::from_secs(10), || {
        counts.failed() == 1
    });
    let took = emitted_at.elapsed();
    // The expiry tick of an 800 ms timeout is 100 ms; allow scheduling slack on top.
    assert!(
        took >= timeout - Duration::from_millis(20),
        "failed early, after {took:?}"
    );
    assert!(
        took <= timeout + Duration::from_millis(100 + 150),
        "failed late, after {took:?}"
    );
    assert_eq!(counts.acked(), 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counts.failed(), 1, "fail runs exactly once");
    running.kill(Duration::from_secs(1));
}

/// Waits for two inputs and acks the first only when the second arrives, emitting anchored
/// to both.
#[derive(Default)]
struct Pair {
    first: Option<Anchor>,
}

impl Bolt for Pair {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["pair"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        match self.first.take() {
            None => self.first = Some(input.anchor().clone()),
            Some(first) => {
                output.emit_on("default", &[&first, input.anchor()], &[Value::U64(1)]);
                output.ack(&first);
                output.ack(input);
            }
        }
    }
}

/// Acks everything.
#[derive(Clone, Default)]
struct Acker;

impl Bolt for Acker {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        output.ack(input);
    }
}

#[test]
fn a_multi_anchored_tuple_completes_both_trees_only_when_it_is_acked() {
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(3, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    builder
        .set_bolt("pair", Pair::default, 1)
        .global_grouping("src");
    builder
        .set_bolt("end", Acker::default, 1)
        .shuffle_grouping("pair");
    let config = TopologyConfig::default().with_message_timeout(Duration::from_secs(60));
    let running = squall_core::run(builder.build("pairs", config).unwrap()).unwrap();
    wait_for("the first pair", Duration::from_secs(10), || {
        counts.acked() == 2
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counts.acked(), 2, "the third message waits for a partner");
    assert_eq!(counts.failed(), 0);
    running.kill(Duration::from_millis(100));
}

#[test]
fn without_ackers_tracked_emits_are_acked_at_once() {
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(100, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    builder
        .set_bolt("stuck", Hoarder::default, 1)
        .shuffle_grouping("src");
    let config = TopologyConfig::default().with_ackers(0);
    let topology = builder.build("untracked", config).unwrap();
    assert!(topology.acker().is_none());
    let running = squall_core::run(topology).unwrap();
    wait_for("every ack", Duration::from_secs(10), || {
        counts.acked() == 100
    });
    running.kill(Duration::from_secs(1));
}

#[test]
fn an_explicit_fail_reaches_the_spout_at_once() {
    #[derive(Clone, Default)]
    struct Refuser;
    impl Bolt for Refuser {
        fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
            output.fail(input);
            output.ack(input); // ignored: already settled
        }
    }
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(50, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    builder
        .set_bolt("refuse", Refuser::default, 2)
        .shuffle_grouping("src");
    let config = TopologyConfig::default().with_message_timeout(Duration::from_secs(60));
    let running = squall_core::run(builder.build("refused", config).unwrap()).unwrap();
    wait_for("every fail", Duration::from_secs(5), || {
        counts.failed() == 50
    });
    assert_eq!(counts.acked(), 0);
    running.kill(Duration::from_secs(1));
}

#[test]
fn max_spout_pending_bounds_trees_in_flight() {
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(10_000, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    builder
        .set_bolt("hoard", Hoarder::default, 1)
        .shuffle_grouping("src");
    let config = TopologyConfig::default()
        .with_max_spout_pending(25)
        .with_message_timeout(Duration::from_secs(60));
    let running = squall_core::run(builder.build("pending", config).unwrap()).unwrap();
    wait_for("the limit", Duration::from_secs(5), || {
        counts.emitted() == 25
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(counts.emitted(), 25, "the spout is not asked for more");
    running.kill(Duration::from_millis(100));
}
