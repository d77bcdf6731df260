//! Activation, ticks, panics, start failures, backpressure and kill, on running topologies.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Counter, SeqSpout, SpoutCounts};
use squall_core::{
    Bolt, BoltOutput, ComponentError, MessageId, OutputDeclarer, PanicPolicy, Spout, SpoutOutput,
    TaskErrorKind, TopologyBuilder, TopologyConfig, TopologyContext, TopologyState, Tuple, Value,
};
use squall_test_support::wait_for;

/// Emits forever, counting calls to `next_tuple`, `activate` and `deactivate`.
#[derive(Clone, Default)]
struct Endless {
    emitted: Arc<AtomicU64>,
    activations: Arc<AtomicU64>,
    deactivations: Arc<AtomicU64>,
}

impl Spout for Endless {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        let n = self.emitted.fetch_add(1, Ordering::SeqCst);
        output.emit(&[Value::U64(n)]);
    }

    fn activate(&mut self) {
        self.activations.fetch_add(1, Ordering::SeqCst);
    }

    fn deactivate(&mut self) {
        self.deactivations.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn deactivate_stops_the_spouts_and_activate_resumes_them() {
    let spout = Endless::default();
    let sink = Counter::default();
    let mut builder = TopologyBuilder::new();
    let factory = spout.clone();
    builder.set_spout("endless", move || factory.clone(), 1);
    let counter = sink.clone();
    builder
        .set_bolt("count", move || counter.clone(), 1)
        .shuffle_grouping("endless");
    let running = squall_core::run(
        builder
            .build("lifecycle", TopologyConfig::default())
            .unwrap(),
    )
    .unwrap();

    wait_for("tuples to flow", Duration::from_secs(10), || {
        sink.count.load(Ordering::SeqCst) > 1000
    });
    running.deactivate();
    assert_eq!(running.state(), TopologyState::Inactive);
    wait_for(
        "the spout to be deactivated",
        Duration::from_secs(10),
        || spout.deactivations.load(Ordering::SeqCst) == 1,
    );
    assert!(running.wait_until_drained(Duration::from_secs(10)));
    let stopped_at = spout.emitted.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        spout.emitted.load(Ordering::SeqCst),
        stopped_at,
        "no next_tuple while inactive"
    );
    assert_eq!(
        sink.count.load(Ordering::SeqCst),
        stopped_at,
        "everything emitted arrived"
    );

    running.activate();
    wait_for("tuples to flow again", Duration::from_secs(10), || {
        spout.emitted.load(Ordering::SeqCst) > stopped_at + 1000
    });
    // Once when its task opened in an active topology, once when the topology resumed.
    assert_eq!(spout.activations.load(Ordering::SeqCst), 2);
    let report = running.kill(Duration::from_secs(10));
    assert!(report.drained);
    assert_eq!(
        spout.deactivations.load(Ordering::SeqCst),
        2,
        "a killed topology's spout is deactivated before it closes"
    );
    assert_eq!(
        sink.count.load(Ordering::SeqCst),
        spout.emitted.load(Ordering::SeqCst)
    );
}

/// Counts tick tuples and checks what they look like.
#[derive(Clone, Default)]
struct TickCounter {
    ticks: Arc<AtomicU64>,
    data: Arc<AtomicU64>,
}

impl Bolt for TickCounter {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if input.is_tick() {
            assert_eq!(input.source_component(), "__system");
            assert_eq!(input.source_stream(), "__tick");
            assert_eq!(
                input.get_u64(0).unwrap(),
                20,
                "the tick carries its period in ms"
            );
            self.ticks.fetch_add(1, Ordering::SeqCst);
        } else {
            self.data.fetch_add(1, Ordering::SeqCst);
        }
        output.ack(input);
    }
}

#[test]
fn ticks_arrive_at_the_configured_frequency() {
    let bolt = TickCounter::default();
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || SeqSpout::new(100, 1, Arc::default()), 1);
    let factory = bolt.clone();
    builder
        .set_bolt("ticked", move || factory.clone(), 2)
        .shuffle_grouping("src")
        .tick_frequency(Duration::from_millis(20));
    let running =
        squall_core::run(builder.build("ticks", TopologyConfig::default()).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let ticks = bolt.ticks.load(Ordering::SeqCst);
    running.kill(Duration::from_secs(5));
    // Two tasks, one tick every 20 ms each, over half a second: about 50.
    assert!((35..=55).contains(&ticks), "{ticks} ticks");
    assert_eq!(bolt.data.load(Ordering::SeqCst), 100);
}

/// Panics on every tuple whose `n` ends in 7; counts its instances.
#[derive(Clone, Default)]
struct Fragile {
    instances: Arc<AtomicU64>,
}

impl Bolt for Fragile {
    fn prepare(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        self.instances.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let n = input.get_u64(0).unwrap();
        if n % 10 == 7 {
            panic!("cannot handle {n}");
        }
        output.ack(input);
    }
}

#[test]
fn a_panicking_task_is_reported_restarted_and_its_tuple_failed() {
    let counts = Arc::new(SpoutCounts::default());
    let bolt = Fragile::default();
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(1000, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    let factory = bolt.clone();
    builder
        .set_bolt("fragile", move || factory.clone(), 1)
        .shuffle_grouping("src");
    let running =
        squall_core::run(builder.build("panics", TopologyConfig::default()).unwrap()).unwrap();
    wait_for("every tree to end", Duration::from_secs(30), || {
        counts.acked() + counts.failed() == 1000
    });
    assert_eq!(
        counts.failed(),
        100,
        "each panicking tuple fails its tree at once"
    );
    assert_eq!(counts.acked(), 900);
    let failed: Vec<u64> = counts.failed_ids.lock().unwrap().clone();
    assert!(failed.iter().all(|n| n % 10 == 7));
    assert_eq!(
        bolt.instances.load(Ordering::SeqCst),
        1 + 100,
        "restarted after every panic"
    );
    let errors = running.errors();
    assert_eq!(errors.len(), 100);
    let first = &errors[0];
    assert_eq!(first.topology, "panics");
    assert_eq!(first.component, "fragile");
    assert_eq!(first.kind, TaskErrorKind::Panic);
    assert!(
        first.message.contains("cannot handle 7"),
        "{}",
        first.message
    );
    assert!(
        first
            .to_string()
            .starts_with("topology \"panics\", component \"fragile\", task ")
    );
    assert!(running.stopped_by().is_none());
    assert!(running.kill(Duration::from_secs(10)).drained);
}

#[test]
fn the_stop_policy_stops_the_topology_and_names_the_task() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || SeqSpout::new(1000, 1, Arc::default()), 1);
    builder
        .set_bolt("fragile", Fragile::default, 1)
        .shuffle_grouping("src");
    let config = TopologyConfig::default().with_on_panic(PanicPolicy::StopTopology);
    let running = squall_core::run(builder.build("stops", config).unwrap()).unwrap();
    assert!(
        running.wait_until_stopped(Duration::from_secs(10)),
        "every thread exits"
    );
    let cause = running.stopped_by().expect("the panic stopped it");
    assert_eq!(
        (cause.component.as_str(), cause.kind),
        ("fragile", TaskErrorKind::Panic)
    );
    let fragile_task = running
        .topology()
        .component("fragile")
        .unwrap()
        .task_ids()
        .next()
        .unwrap();
    assert_eq!(cause.task, fragile_task);
    assert_eq!(running.state(), TopologyState::Stopping);
}

/// A spout whose `open` fails.
struct Unopenable;

impl Spout for Unopenable {
    fn open(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Err("the source at tcp://nowhere:1 refused the connection".into())
    }

    fn next_tuple(&mut self, _output: &mut SpoutOutput<'_>) {
        unreachable!("never opened")
    }
}

#[test]
fn a_failed_open_is_reported() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("source", || Unopenable, 1);
    let running = squall_core::run(
        builder
            .build("unopenable", TopologyConfig::default())
            .unwrap(),
    )
    .unwrap();
    wait_for("the failure report", Duration::from_secs(10), || {
        running.error_count() == 1
    });
    let error = running.errors().remove(0);
    assert_eq!(error.kind, TaskErrorKind::StartFailed);
    assert_eq!(error.component, "source");
    assert_eq!(
        error.message,
        "open failed: the source at tcp://nowhere:1 refused the connection"
    );
    running.kill(Duration::from_secs(1));
}

/// A bolt whose `prepare` always fails.
struct Unpreparable;

impl Bolt for Unpreparable {
    fn prepare(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Err("the database at postgres://nowhere refused the connection".into())
    }

    fn execute(&mut self, _input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {
        unreachable!("never prepared")
    }
}

/// Tuples sent to a task that never started fail their trees at once, long before the
/// message timeout, so the spout can replay them; the failure is reported once.
#[test]
fn records_for_a_task_that_never_started_fail_at_once() {
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(200, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    builder
        .set_bolt("sink", || Unpreparable, 1)
        .shuffle_grouping("src");
    let config = TopologyConfig {
        message_timeout: Duration::from_secs(300),
        ..TopologyConfig::default()
    };
    let started = Instant::now();
    let running = squall_core::run(builder.build("unprepared", config).unwrap()).unwrap();
    wait_for("every tree to fail", Duration::from_secs(20), || {
        counts.failed() == 200
    });
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(counts.acked(), 0);
    let errors = running.errors();
    let kinds: Vec<_> = errors.iter().map(|error| error.kind).collect();
    assert_eq!(
        kinds,
        [TaskErrorKind::StartFailed, TaskErrorKind::StartFailed],
        "{errors:?}"
    );
    assert!(errors[1].message.contains("fail at once"), "{errors:?}");
    running.kill(Duration::from_secs(1));
}

/// Sleeps a little on every 64th tuple, recording the highest input backlog it observed.
#[derive(Clone, Default)]
struct Slow {
    seen: Arc<AtomicU64>,
}

impl Bolt for Slow {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if self.seen.fetch_add(1, Ordering::SeqCst).is_multiple_of(64) {
            std::thread::sleep(Duration::from_micros(200));
        }
        output.ack(input);
    }
}

#[test]
fn a_slow_bolt_throttles_the_spout_and_nothing_is_dropped() {
    let spout = Endless::default();
    let bolt = Slow::default();
    let mut builder = TopologyBuilder::new();
    let factory = spout.clone();
    builder.set_spout("fast", move || factory.clone(), 1);
    let slow = bolt.clone();
    builder
        .set_bolt("slow", move || slow.clone(), 1)
        .shuffle_grouping("fast");
    let config = TopologyConfig {
        ring_bytes: 16 * 1024,
        chaining: squall_core::Chaining::Never,
        ..TopologyConfig::default()
    };
    let running = squall_core::run(builder.build("backpressure", config).unwrap()).unwrap();
    let started = Instant::now();
    let mut worst = 0;
    while started.elapsed() < Duration::from_millis(700) {
        let in_flight = spout.emitted.load(Ordering::SeqCst) - bolt.seen.load(Ordering::SeqCst);
        worst = worst.max(in_flight);
        std::thread::sleep(Duration::from_millis(5));
    }
    // A 16 KiB ring holds ~400 of these records; the spout stops at the first that does not
    // fit (plus at most the rest of one batch of next_tuple calls in the overflow).
    assert!(
        worst < 2_000,
        "in flight grew to {worst}: backpressure did not hold"
    );
    let metrics = running.metrics();
    let held = metrics
        .component("fast")
        .unwrap()
        .counters
        .backpressured_nanos;
    assert!(
        held > 50_000_000,
        "the spout waited for room most of the time, yet counts {held} ns held back"
    );
    let report = running.kill(Duration::from_secs(30));
    assert!(report.drained);
    assert_eq!(
        bolt.seen.load(Ordering::SeqCst),
        spout.emitted.load(Ordering::SeqCst)
    );
}

/// Blocks in execute until released.
#[derive(Clone, Default)]
struct Stuck {
    release: Arc<AtomicBool>,
}

impl Bolt for Stuck {
    fn execute(&mut self, _input: &Tuple<'_>, _output: &mut BoltOutput<'_>) {
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn kill_gives_up_draining_after_its_timeout_and_joins_every_thread() {
    let bolt = Stuck::default();
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || SeqSpout::new(10, 1, Arc::default()), 1);
    let stuck = bolt.clone();
    builder
        .set_bolt("stuck", move || stuck.clone(), 1)
        .shuffle_grouping("src");
    let running =
        squall_core::run(builder.build("stuck", TopologyConfig::default()).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let release = Arc::clone(&bolt.release);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        release.store(true, Ordering::SeqCst);
    });
    let report = running.kill(Duration::from_millis(200));
    assert!(
        !report.drained,
        "the stuck bolt held tuples past the timeout"
    );
    assert!(report.took < Duration::from_secs(5));
    releaser.join().unwrap();
}

/// Emits one tuple per call with a message id and remembers nothing: for counting metrics.
#[test]
fn metrics_count_what_happened() {
    let counts = Arc::new(SpoutCounts::default());
    let mut builder = TopologyBuilder::new();
    let spout_counts = Arc::clone(&counts);
    builder.set_spout(
        "src",
        move || SeqSpout::new(5_000, 1, Arc::clone(&spout_counts)).tracked(),
        1,
    );
    builder
        .set_bolt("count", Counter::default, 2)
        .all_grouping("src");
    let running =
        squall_core::run(builder.build("metrics", TopologyConfig::default()).unwrap()).unwrap();
    wait_for("every tree acked", Duration::from_secs(30), || {
        counts.acked() == 5_000
    });
    // Counters are published on every pass, histograms at most every few milliseconds.
    wait_for("metrics to catch up", Duration::from_secs(5), || {
        let metrics = running.metrics();
        let src = metrics.component("src").unwrap();
        let sink = metrics.component("count").unwrap();
        src.counters.acked == 5_000
            && !src.complete_latency.is_empty()
            && sink.counters.acked == 10_000
            && !sink.execute_latency.is_empty()
    });
    let metrics = running.metrics();
    let src = metrics.component("src").unwrap();
    assert_eq!(src.counters.emitted, 5_000);
    assert_eq!(
        src.counters.transferred, 10_000,
        "all grouping to two tasks"
    );
    assert_eq!(src.counters.pending, 0);
    assert!(
        !src.complete_latency.is_empty(),
        "complete latency is measured"
    );
    let sink = metrics.component("count").unwrap();
    assert_eq!(
        (sink.counters.executed, sink.counters.acked),
        (10_000, 10_000)
    );
    assert!(
        !sink.execute_latency.is_empty(),
        "a sample of executions is timed"
    );
    assert_eq!(metrics.tasks.len(), 1 + 2 + 1);
    running.kill(Duration::from_secs(5));
}

/// Remembers messages it was told about, to check `ack` and `fail` each run once.
#[derive(Clone, Default)]
struct Ledger {
    settled: Arc<Mutex<Vec<(u64, bool)>>>,
}

impl Spout for Ledger {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n"]);
    }

    fn next_tuple(&mut self, _output: &mut SpoutOutput<'_>) {}

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.settled.lock().unwrap().push((message.0, true));
    }
}

#[test]
fn a_topology_with_nothing_to_do_drains_at_once() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("idle", Ledger::default, 2);
    let running =
        squall_core::run(builder.build("idle", TopologyConfig::default()).unwrap()).unwrap();
    let report = running.kill(Duration::from_secs(5));
    assert!(report.drained);
    assert!(report.took < Duration::from_secs(1));
}

/// Emits one tracked tuple per call, then asks to rest for `rest`; records when it was
/// called and what was acked.
#[derive(Clone)]
struct Resting {
    rest: Duration,
    calls: Arc<Mutex<Vec<Instant>>>,
    acked: Arc<AtomicU64>,
}

impl Spout for Resting {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        let n = calls.len() as u64;
        output.emit_with_id(&[Value::U64(n)], MessageId(n));
        output.idle_for(self.rest);
    }

    fn ack(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.acked.fetch_add(1, Ordering::SeqCst);
    }
}

fn run_resting(rest: Duration) -> (squall_core::RunningTopology, Resting) {
    let spout = Resting {
        rest,
        calls: Arc::default(),
        acked: Arc::default(),
    };
    let mut builder = TopologyBuilder::new();
    let factory = spout.clone();
    builder.set_spout("resting", move || factory.clone(), 1);
    builder
        .set_bolt("count", Counter::default, 1)
        .shuffle_grouping("resting");
    let config = TopologyConfig::default().with_ackers(1);
    let running = squall_core::run(builder.build("resting", config).unwrap()).unwrap();
    (running, spout)
}

#[test]
fn a_spout_that_asks_to_rest_is_not_called_before_its_time() {
    let (running, spout) = run_resting(Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(300));
    let calls = spout.calls.lock().unwrap().clone();
    running.kill(Duration::from_secs(5));
    // Without the rest the spout would be called millions of times in 300 ms.
    assert!(
        (10..=31).contains(&calls.len()),
        "{} calls in 300 ms",
        calls.len()
    );
    for pair in calls.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(9),
            "called again after {gap:?}"
        );
    }
}

#[test]
fn a_resting_spout_still_receives_its_acks() {
    let (running, spout) = run_resting(Duration::from_secs(3600));
    wait_for("the one tuple to be acked", Duration::from_secs(10), || {
        spout.acked.load(Ordering::SeqCst) == 1
    });
    assert_eq!(spout.calls.lock().unwrap().len(), 1);
    running.kill(Duration::from_secs(5));
}

/// Emits 0..1000 with message ids, evens on `even` and odds on `odd`.
struct Parity {
    next: u64,
}

impl Spout for Parity {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare_stream("even", &["n"]);
        declarer.declare_stream("odd", &["n"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.next < 1000 {
            let stream = if self.next.is_multiple_of(2) {
                "even"
            } else {
                "odd"
            };
            output.emit_on(stream, &[Value::U64(self.next)], Some(MessageId(self.next)));
            self.next += 1;
        }
    }
}

/// Fails the odd multiples of 3, acks everything else.
struct Judge;

impl Bolt for Judge {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let n = input.get_u64(0).unwrap();
        if n % 2 == 1 && n.is_multiple_of(3) {
            output.fail(input);
        } else {
            output.ack(input);
        }
    }
}

#[test]
fn tasks_count_what_they_executed_acked_and_failed_per_stream() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("parity", || Parity { next: 0 }, 1);
    builder
        .set_bolt("judge", || Judge, 2)
        .grouping_on("parity", "even", squall_core::Grouping::Shuffle)
        .grouping_on("parity", "odd", squall_core::Grouping::Shuffle);
    let running = squall_core::run(
        builder
            .build("per-stream", TopologyConfig::default())
            .unwrap(),
    )
    .unwrap();
    wait_for("every tree settled", Duration::from_secs(20), || {
        let metrics = running.metrics();
        let spout = metrics.component("parity").unwrap();
        metrics.component("judge").unwrap().counters.executed == 1000
            && spout.counters.acked + spout.counters.failed == 1000
    });
    let metrics = running.metrics();
    let mut per_stream = std::collections::BTreeMap::new();
    for task in metrics
        .tasks
        .iter()
        .filter(|task| task.component == "judge")
    {
        for input in &task.inputs {
            assert_eq!(input.component, "parity");
            let sum: &mut (u64, u64, u64) = per_stream.entry(input.stream.clone()).or_default();
            sum.0 += input.executed;
            sum.1 += input.acked;
            sum.2 += input.failed;
        }
    }
    // Odd multiples of 3 below 1000: 3, 9, ..., 999.
    assert_eq!(
        per_stream,
        std::collections::BTreeMap::from([
            ("even".to_owned(), (500, 500, 0)),
            ("odd".to_owned(), (500, 333, 167)),
        ])
    );
    // The spout counts its trees by the stream their root went out on.
    let spout = metrics.tasks.iter().find(|task| task.component == "parity");
    let trees: Vec<(&str, u64, u64, u64)> = spout
        .unwrap()
        .streams
        .iter()
        .map(|stream| {
            (
                stream.stream.as_str(),
                stream.emitted,
                stream.acked,
                stream.failed,
            )
        })
        .collect();
    assert_eq!(trees, [("even", 500, 500, 0), ("odd", 500, 333, 167)]);
    running.kill(Duration::from_secs(5));
}
