//! Windowed bolts on running topologies: results against a reference computed here, late
//! tuples, and acking when a tuple leaves its last window.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Recorder, SeenLog, SpoutCounts};
use squall_core::grouping::Grouping;
use squall_core::window::{Extent, Window, WindowOutput, WindowSpec, WindowedBolt};
use squall_core::{
    Bolt, BoltOutput, MessageId, OutputDeclarer, Spout, SpoutOutput, TopologyBuilder,
    TopologyConfig, Tuple, Value,
};
use squall_test_support::wait_for;

/// Emits `[n, ts]` from a script, tracked with message id n; replays what fails.
#[derive(Clone)]
struct Scripted {
    script: Arc<Vec<(u64, u64)>>,
    next: usize,
    replay: Vec<u64>,
    counts: Arc<SpoutCounts>,
}

impl Spout for Scripted {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n", "ts"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        let n = match self.replay.pop() {
            Some(n) => n,
            None if self.next < self.script.len() => {
                self.next += 1;
                self.next as u64 - 1
            }
            None => return,
        };
        let (value, ts) = self.script[n as usize];
        output.emit_with_id(&[Value::U64(value), Value::U64(ts)], MessageId(n));
        self.counts.emitted.fetch_add(1, Ordering::SeqCst);
    }

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.counts.acked.fetch_add(1, Ordering::SeqCst);
        self.counts.acked_ids.lock().unwrap().push(message.0);
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.counts.failed.fetch_add(1, Ordering::SeqCst);
        self.counts.failed_ids.lock().unwrap().push(message.0);
        self.replay.push(message.0);
    }
}

/// Emits `[start, end, count, sum of field 0]` per window (`start` and `end` 0 for count
/// windows).
struct SumWindow;

impl WindowedBolt for SumWindow {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["start", "end", "count", "sum"]);
    }

    fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>) {
        let sum: u64 = window.iter().map(|tuple| tuple.u64(0).unwrap()).sum();
        output.emit(&[
            Value::U64(window.start_ms().unwrap_or(0)),
            Value::U64(window.end_ms().unwrap_or(0)),
            Value::U64(window.len() as u64),
            Value::U64(sum),
        ]);
    }
}

fn scripted(script: Vec<(u64, u64)>, counts: &Arc<SpoutCounts>) -> Scripted {
    Scripted {
        script: Arc::new(script),
        next: 0,
        replay: Vec::new(),
        counts: Arc::clone(counts),
    }
}

fn recorded(log: &SeenLog, stream: &str) -> Vec<Vec<u64>> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|seen| seen.stream == stream)
        .map(|seen| seen.values.clone())
        .collect()
}

/// What event-time windows of `length` sliding by `slide`, with watermarks `lag` behind
/// the newest time, must give for `script` processed in order: the windows evaluated (in
/// order), the late tuples, and the tuples that left their last window (to be acked).
fn reference(
    script: &[(u64, u64)],
    length: u64,
    slide: u64,
    lag: u64,
) -> (Vec<Vec<u64>>, Vec<Vec<u64>>, BTreeSet<u64>) {
    let last_end = |ts: u64| (ts + length) / slide * slide;
    let (mut kept, mut late) = (Vec::new(), Vec::new());
    let mut watermark = 0;
    for (index, &(value, ts)) in script.iter().enumerate() {
        if last_end(ts) <= watermark {
            late.push(vec![value, ts]);
        } else {
            kept.push((index as u64, value, ts));
        }
        watermark = watermark.max(ts.saturating_sub(lag));
    }
    let mut windows = Vec::new();
    let mut end = slide;
    while end <= watermark {
        let start = end.saturating_sub(length);
        let inside: Vec<_> = kept
            .iter()
            .filter(|(_, _, ts)| (start..end).contains(ts))
            .collect();
        if !inside.is_empty() {
            let sum = inside.iter().map(|(_, value, _)| value).sum();
            windows.push(vec![start, end, inside.len() as u64, sum]);
        }
        end += slide;
    }
    let mut settled: BTreeSet<u64> = kept
        .iter()
        .filter(|(_, _, ts)| last_end(*ts) <= watermark)
        .map(|(index, _, _)| *index)
        .collect();
    settled.extend(
        script
            .iter()
            .enumerate()
            .filter(|(_, (value, ts))| late.contains(&vec![*value, *ts]))
            .map(|(index, _)| index as u64),
    );
    (windows, late, settled)
}

#[test]
fn event_time_windows_match_a_reference_and_late_tuples_go_to_the_late_stream() {
    // Times move forward 37 ms a tuple with up to 150 ms of jitter; every 25th tuple is
    // 1.5 s behind, late for every window it belongs to.
    let script: Vec<(u64, u64)> = (0..300u64)
        .map(|i| {
            let on_time = 10_000 + 37 * i + (i * 7919) % 150;
            let ts = if i % 25 == 24 {
                on_time - 1_500
            } else {
                on_time
            };
            (i * 3 + 1, ts)
        })
        .collect();
    let (length, slide, lag) = (1_000, 250, 200);
    let (expected_windows, expected_late, expected_acked) = reference(&script, length, slide, lag);
    assert!(expected_late.len() >= 10, "the script has late tuples");

    let counts = Arc::new(SpoutCounts::default());
    let log: SeenLog = Arc::default();
    let spec = WindowSpec::sliding(
        Extent::Time(Duration::from_millis(length)),
        Extent::Time(Duration::from_millis(slide)),
    )
    .unwrap()
    .with_event_time("ts", Duration::from_millis(lag))
    .unwrap()
    .with_late_stream("late", &["n", "ts"])
    .unwrap();
    let mut builder = TopologyBuilder::new();
    let spout = scripted(script.clone(), &counts);
    builder.set_spout("script", move || spout.clone(), 1);
    builder
        .set_windowed_bolt("windows", || SumWindow, 1, &spec)
        .shuffle_grouping("script");
    let sink_log = Arc::clone(&log);
    builder
        .set_bolt("sink", move || Recorder::new(Arc::clone(&sink_log)), 1)
        .shuffle_grouping("windows")
        .grouping_on("windows", "late", Grouping::Shuffle);
    let config = TopologyConfig::default().with_ackers(1);
    let running = squall_core::run(builder.build("windows", config).unwrap()).unwrap();

    squall_test_support::wait_for_or_explain(
        "every window and late tuple",
        Duration::from_secs(20),
        || {
            recorded(&log, "default").len() == expected_windows.len()
                && recorded(&log, "late").len() == expected_late.len()
                && counts.acked() == expected_acked.len() as u64
        },
        || {
            format!(
                ": {} of {} windows, {} of {} late, {} of {} acked",
                recorded(&log, "default").len(),
                expected_windows.len(),
                recorded(&log, "late").len(),
                expected_late.len(),
                counts.acked(),
                expected_acked.len()
            )
        },
    );
    // Nothing more is acked: the tuples of windows still open stay held.
    std::thread::sleep(Duration::from_millis(200));
    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(recorded(&log, "default"), expected_windows);
    assert_eq!(recorded(&log, "late"), expected_late);
    let acked: BTreeSet<u64> = counts.acked_ids.lock().unwrap().iter().copied().collect();
    assert_eq!(acked, expected_acked);
    assert_eq!(counts.failed(), 0);
}

/// Fails the first result it sees for a window whose sum is `fail_sum`; acks the rest.
struct FailOnce {
    fail_sum: u64,
    failed: Arc<Mutex<bool>>,
    log: SeenLog,
}

impl Bolt for FailOnce {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let sum = input.get_u64(3).unwrap();
        let mut failed = self.failed.lock().unwrap();
        if sum == self.fail_sum && !*failed {
            *failed = true;
            output.fail(input);
            return;
        }
        drop(failed);
        Recorder::new(Arc::clone(&self.log)).execute(input, output);
    }
}

#[test]
fn count_windows_ack_each_input_once_it_leaves_its_last_window_and_replay_a_failed_one() {
    // Tumbling windows of 5: the sink fails the result of the second window once, so its 5
    // inputs fail and are replayed, then make a window again.
    let script: Vec<(u64, u64)> = (0..20u64).map(|i| (i, 0)).collect();
    let counts = Arc::new(SpoutCounts::default());
    let log: SeenLog = Arc::default();
    let spec = WindowSpec::tumbling(Extent::Count(5)).unwrap();
    let mut builder = TopologyBuilder::new();
    let spout = scripted(script, &counts);
    builder.set_spout("script", move || spout.clone(), 1);
    builder
        .set_windowed_bolt("windows", || SumWindow, 1, &spec)
        .shuffle_grouping("script");
    let (sink_log, failed) = (Arc::clone(&log), Arc::new(Mutex::new(false)));
    builder
        .set_bolt(
            "sink",
            move || FailOnce {
                fail_sum: 5 + 6 + 7 + 8 + 9,
                failed: Arc::clone(&failed),
                log: Arc::clone(&sink_log),
            },
            1,
        )
        .shuffle_grouping("windows");
    let config = TopologyConfig::default().with_ackers(1);
    let running = squall_core::run(builder.build("count-windows", config).unwrap()).unwrap();
    wait_for("all 20 inputs acked", Duration::from_secs(20), || {
        counts.acked() == 20
    });
    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let mut failed_ids = counts.failed_ids.lock().unwrap().clone();
    failed_ids.sort_unstable();
    assert_eq!(failed_ids, vec![5, 6, 7, 8, 9]);
    let mut acked_ids = counts.acked_ids.lock().unwrap().clone();
    acked_ids.sort_unstable();
    assert_eq!(acked_ids, (0..20).collect::<Vec<_>>());
    // Four windows reached the sink: the replayed inputs formed the last one.
    let sums: Vec<u64> = recorded(&log, "default").iter().map(|w| w[3]).collect();
    assert_eq!(sums.len(), 4, "{sums:?}");
    assert_eq!(sums.iter().sum::<u64>(), (0..20).sum::<u64>());
}

#[test]
fn a_tuple_without_its_time_field_fails_with_an_error_naming_the_field() {
    let counts = Arc::new(SpoutCounts::default());
    let spec = WindowSpec::tumbling(Extent::Time(Duration::from_secs(1)))
        .unwrap()
        .with_event_time("when", Duration::ZERO)
        .unwrap();
    let mut builder = TopologyBuilder::new();
    let spout = scripted(vec![(1, 1)], &counts);
    builder.set_spout("script", move || spout.clone(), 1);
    builder
        .set_windowed_bolt("windows", || SumWindow, 1, &spec)
        .shuffle_grouping("script");
    let config = TopologyConfig::default().with_ackers(1);
    let running = squall_core::run(builder.build("no-time", config).unwrap()).unwrap();
    wait_for("the tuple to fail", Duration::from_secs(10), || {
        counts.failed() >= 1
    });
    let report = running.kill(Duration::from_secs(5));
    assert!(
        report
            .errors
            .iter()
            .any(|error| error.message.contains("the window's time field \"when\"")),
        "{:#?}",
        report.errors
    );
}

#[test]
fn processing_time_windows_close_on_the_clock_without_more_input() {
    // All input arrives at once; only the clock (tick tuples) closes the window after it.
    let script: Vec<(u64, u64)> = (0..50u64).map(|i| (i, 0)).collect();
    let counts = Arc::new(SpoutCounts::default());
    let log: SeenLog = Arc::default();
    let spec = WindowSpec::tumbling(Extent::Time(Duration::from_millis(200))).unwrap();
    let mut builder = TopologyBuilder::new();
    let spout = scripted(script, &counts);
    builder.set_spout("script", move || spout.clone(), 1);
    builder
        .set_windowed_bolt("windows", || SumWindow, 1, &spec)
        .shuffle_grouping("script");
    let sink_log = Arc::clone(&log);
    builder
        .set_bolt("sink", move || Recorder::new(Arc::clone(&sink_log)), 1)
        .shuffle_grouping("windows");
    let config = TopologyConfig::default().with_ackers(1);
    let running = squall_core::run(builder.build("clock-windows", config).unwrap()).unwrap();
    wait_for("all 50 inputs acked", Duration::from_secs(10), || {
        counts.acked() == 50
    });
    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let windows = recorded(&log, "default");
    assert_eq!(windows.iter().map(|w| w[2]).sum::<u64>(), 50, "{windows:?}");
    for window in &windows {
        assert_eq!(window[1] - window[0], 200, "{window:?}");
        assert_eq!(window[1] % 200, 0, "{window:?}");
    }
}

/// Fails the window whose sum is `fail_sum` the first time it comes; sums the others.
struct FailWindowOnce {
    fail_sum: u64,
    failed: Arc<Mutex<bool>>,
}

impl WindowedBolt for FailWindowOnce {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        SumWindow.declare_outputs(declarer);
    }

    fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>) {
        let sum: u64 = window.iter().map(|tuple| tuple.u64(0).unwrap()).sum();
        let mut failed = self.failed.lock().unwrap();
        if sum == self.fail_sum && !*failed {
            *failed = true;
            output.fail();
            return;
        }
        SumWindow.execute(window, output);
    }
}

#[test]
fn a_window_the_bolt_fails_fails_its_inputs_once_and_they_are_never_acked_before_replay() {
    let script: Vec<(u64, u64)> = (0..20u64).map(|i| (i, 0)).collect();
    let counts = Arc::new(SpoutCounts::default());
    let log: SeenLog = Arc::default();
    let spec = WindowSpec::tumbling(Extent::Count(5)).unwrap();
    let mut builder = TopologyBuilder::new();
    let spout = scripted(script, &counts);
    builder.set_spout("script", move || spout.clone(), 1);
    let failed = Arc::new(Mutex::new(false));
    builder
        .set_windowed_bolt(
            "windows",
            move || FailWindowOnce {
                fail_sum: 10 + 11 + 12 + 13 + 14,
                failed: Arc::clone(&failed),
            },
            1,
            &spec,
        )
        .shuffle_grouping("script");
    let sink_log = Arc::clone(&log);
    builder
        .set_bolt("sink", move || Recorder::new(Arc::clone(&sink_log)), 1)
        .shuffle_grouping("windows");
    let config = TopologyConfig::default().with_ackers(1);
    let running = squall_core::run(builder.build("failed-window", config).unwrap()).unwrap();
    wait_for("all 20 inputs acked", Duration::from_secs(20), || {
        counts.acked() == 20
    });
    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let mut failed_ids = counts.failed_ids.lock().unwrap().clone();
    failed_ids.sort_unstable();
    assert_eq!(failed_ids, vec![10, 11, 12, 13, 14]);
    let mut acked_ids = counts.acked_ids.lock().unwrap().clone();
    acked_ids.sort_unstable();
    assert_eq!(acked_ids, (0..20).collect::<Vec<_>>());
    let sums: Vec<u64> = recorded(&log, "default").iter().map(|w| w[3]).collect();
    assert_eq!(sums.len(), 4, "{sums:?}");
    assert_eq!(sums.iter().sum::<u64>(), (0..20).sum::<u64>());
}
