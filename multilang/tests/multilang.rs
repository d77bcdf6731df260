//! Real `pystorm` spouts and bolts inside Squall topologies: exact results, anchoring and
//! acks through a shell bolt, direct emits and task ids, heartbeats, and the failures a
//! subprocess can have (exit, hang, malformed output), each of which must fail and replay
//! what it held, report the error and restart it while the topology keeps running.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall_core::replay::{MessageSource, ReplayStats, ReplayingSpout};
use squall_core::{
    Bolt, BoltOutput, OutputDeclarer, OwnedValue, RunningTopology, TaskError, TaskId,
    TopologyBuilder, TopologyConfig, TopologyContext, Tuple,
};
use squall_multilang::{RestartPolicy, ShellBolt, ShellSpec, ShellSpout};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multilang")
}

fn python(script: &str) -> ShellSpec {
    squall_test_support::require_python_module("pystorm");
    ShellSpec::new("python3", [script]).base_dir(fixtures())
}

/// Waits until `done()`, or fails with the topology's errors and figures.
fn wait_for(running: &RunningTopology, what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    squall_test_support::wait_for_or_explain(what, timeout, done, || {
        let figures: Vec<String> = running
            .metrics()
            .components
            .iter()
            .map(|component| format!("{}: {:?}", component.component, component.counters))
            .collect();
        format!(
            "\nerrors: {:#?}\nfigures:\n{}",
            running.errors(),
            figures.join("\n")
        )
    });
}

/// One tuple a [`Collector`] received.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    task: TaskId,
    stream: String,
    values: Vec<OwnedValue>,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Records every tuple with the task that got it; acks it, except that it fails the first
/// delivery of each value of field 0 that is a multiple of `fail_multiples_of`.
#[derive(Debug)]
struct Collector {
    log: Log,
    task: TaskId,
    fail_multiples_of: Option<u64>,
    failed_once: BTreeSet<u64>,
}

impl Collector {
    fn new(log: &Log) -> Self {
        Self {
            log: Arc::clone(log),
            task: TaskId(0),
            fail_multiples_of: None,
            failed_once: BTreeSet::new(),
        }
    }

    fn failing_multiples_of(mut self, k: u64) -> Self {
        self.fail_multiples_of = Some(k);
        self
    }
}

impl Bolt for Collector {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), squall_core::ComponentError> {
        self.task = context.task_id();
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let values: Vec<OwnedValue> = input
            .fields()
            .map(|field| field.expect("well-formed").to_owned_value())
            .collect();
        self.log.lock().unwrap().push(Received {
            task: self.task,
            stream: input.source_stream().to_owned(),
            values,
        });
        if let (Some(k), Ok(n)) = (self.fail_multiples_of, input.get_u64(0))
            && n % k == 0
            && self.failed_once.insert(n)
        {
            output.fail(input);
            return;
        }
        output.ack(input);
    }
}

fn sentences() -> Vec<String> {
    let words = ["storm", "squall", "gale", "breeze", "wind", "calm", "gust"];
    (0..60)
        .map(|i| {
            (0..(i % 5 + 1))
                .map(|j| words[(i * 3 + j * 5) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn source_of(items: Vec<OwnedValue>) -> MessageSource {
    let mut items = items.into_iter();
    Box::new(move || items.next().map(|item| vec![item]))
}

fn numbers(count: u64) -> MessageSource {
    source_of((0..count).map(OwnedValue::U64).collect())
}

fn config() -> TopologyConfig {
    TopologyConfig::default().with_max_spout_pending(50)
}

fn u64_of(value: &OwnedValue) -> u64 {
    match value {
        OwnedValue::U64(n) => *n,
        other => panic!("expected a u64, got {other:?}"),
    }
}

fn kill(running: RunningTopology) -> Vec<TaskError> {
    running.kill(Duration::from_secs(10)).errors
}

#[test]
fn a_pystorm_bolt_splits_sentences_exactly() {
    let stats = Arc::new(ReplayStats::default());
    let log = Log::default();
    let split = python("split_bolt.py").output(&["word"]);
    let lines = sentences();
    let source_lines: Vec<OwnedValue> = lines.iter().cloned().map(OwnedValue::Str).collect();
    let mut builder = TopologyBuilder::new();
    let spout_stats = Arc::clone(&stats);
    builder.set_spout(
        "sentences",
        move || {
            let source = source_of(source_lines.clone());
            ReplayingSpout::new(&["sentence"], source, Arc::clone(&spout_stats))
        },
        1,
    );
    builder
        .set_bolt("split", move || ShellBolt::new(split.clone()), 2)
        .shuffle_grouping("sentences");
    add_sink(&mut builder, "count", &log, 2, None).fields_grouping("split", &["word"]);
    let topology = builder.build("split-words", config()).unwrap();
    let running = squall_core::run(topology).unwrap();
    wait_for(
        &running,
        "every sentence acked",
        Duration::from_secs(30),
        || stats.acked.load(Ordering::SeqCst) == lines.len() as u64,
    );
    let errors = kill(running);
    assert!(errors.is_empty(), "{errors:#?}");

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        for word in line.split_whitespace() {
            *expected.entry(word.to_owned()).or_default() += 1;
        }
    }
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    let mut task_of_word: HashMap<String, TaskId> = HashMap::new();
    for received in log.lock().unwrap().iter() {
        let OwnedValue::Str(word) = &received.values[0] else {
            panic!("words are strings: {received:?}");
        };
        *counted.entry(word.clone()).or_default() += 1;
        let task = *task_of_word.entry(word.clone()).or_insert(received.task);
        assert_eq!(
            task, received.task,
            "fields grouping keeps {word:?} on one task"
        );
    }
    assert_eq!(counted, expected);
    assert_eq!(stats.failed.load(Ordering::SeqCst), 0);
    assert_eq!(stats.unexpected.load(Ordering::SeqCst), 0);
}

/// Adds a [`Collector`] bolt (failing the first delivery of multiples of `fail_every`).
fn add_sink<'b>(
    builder: &'b mut TopologyBuilder,
    id: &str,
    log: &Log,
    parallelism: usize,
    fail_every: Option<u64>,
) -> squall_core::topology::BoltDeclarer<'b> {
    let log = Arc::clone(log);
    builder.set_bolt(
        id,
        move || {
            let collector = Collector::new(&log);
            match fail_every {
                Some(k) => collector.failing_multiples_of(k),
                None => collector,
            }
        },
        parallelism,
    )
}

/// A spout of the numbers 0..count on field "n".
fn number_spout(builder: &mut TopologyBuilder, count: u64, stats: &Arc<ReplayStats>) {
    let stats = Arc::clone(stats);
    builder.set_spout(
        "numbers",
        move || ReplayingSpout::new(&["n"], numbers(count), Arc::clone(&stats)),
        1,
    );
}

#[test]
fn acks_fails_and_anchors_flow_through_a_shell_bolt() {
    // The pystorm bolt fails the first delivery of multiples of 5 itself; the Rust bolt
    // after it fails the first delivery of multiples of 7, which only reaches the spout if
    // the shell bolt's emits are anchored to their inputs.
    let count = 100;
    let stats = Arc::new(ReplayStats::default());
    let log = Log::default();
    let mut builder = TopologyBuilder::new();
    number_spout(&mut builder, count, &stats);
    let relay = python("ack_fail_bolt.py").output(&["n"]);
    builder
        .set_bolt("relay", move || ShellBolt::new(relay.clone()), 1)
        .shuffle_grouping("numbers");
    add_sink(&mut builder, "sink", &log, 1, Some(7)).shuffle_grouping("relay");
    let running = squall_core::run(builder.build("anchoring", config()).unwrap()).unwrap();
    wait_for(
        &running,
        "every number acked",
        Duration::from_secs(30),
        || stats.acked.load(Ordering::SeqCst) == count,
    );
    let errors = kill(running);
    assert!(errors.is_empty(), "{errors:#?}");
    let fives = (0..count).filter(|n| n % 5 == 0).count() as u64;
    let sevens = (0..count).filter(|n| n % 7 == 0).count() as u64;
    let both = (0..count).filter(|n| n % 35 == 0).count() as u64;
    assert_eq!(stats.failed.load(Ordering::SeqCst), fives + sevens - both);
    assert_eq!(stats.unexpected.load(Ordering::SeqCst), 0);
    let seen: BTreeSet<u64> = log
        .lock()
        .unwrap()
        .iter()
        .map(|received| u64_of(&received.values[0]))
        .collect();
    assert_eq!(seen, (0..count).collect());
}

#[test]
fn a_shell_bolt_may_send_unknown_commands_and_name_a_lone_anchor() {
    // The Rust sink fails the first delivery of multiples of 7: those reach the spout only
    // if the lone-string anchors were honoured. An unknown command is a warning, so the
    // subprocess is never restarted; the one error reported is the bolt's own, naming its
    // command line.
    let count = 50;
    let stats = Arc::new(ReplayStats::default());
    let log = Log::default();
    let mut builder = TopologyBuilder::new();
    number_spout(&mut builder, count, &stats);
    let relay = python("lenient_bolt.py").output(&["n"]);
    builder
        .set_bolt("relay", move || ShellBolt::new(relay.clone()), 1)
        .shuffle_grouping("numbers");
    add_sink(&mut builder, "sink", &log, 1, Some(7)).shuffle_grouping("relay");
    let running = squall_core::run(builder.build("lenient", config()).unwrap()).unwrap();
    wait_for(
        &running,
        "every number acked",
        Duration::from_secs(30),
        || stats.acked.load(Ordering::SeqCst) == count,
    );
    let errors = kill(running);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let message = &errors[0].message;
    assert!(
        message.starts_with("subprocess `python3 lenient_bolt.py` (pid ")
            && message.ends_with(") reported an error: n is 3"),
        "{message}"
    );
    let sevens = (0..count).filter(|n| n % 7 == 0).count() as u64;
    assert_eq!(stats.failed.load(Ordering::SeqCst), sevens);
    assert_eq!(stats.unexpected.load(Ordering::SeqCst), 0);
}

#[test]
fn a_pystorm_spout_gets_acks_fails_and_life_cycle_commands() {
    let dir = tempfile::tempdir().unwrap();
    let spout_log = dir.path().join("spout.log");
    let count = 40;
    let log = Log::default();
    let mut builder = TopologyBuilder::new();
    let spout = python("numbers_spout.py").output(&["n", "text"]);
    builder
        .set_spout("numbers", move || ShellSpout::new(spout.clone()), 1)
        .set("test.count", count)
        .set("test.spout_log", spout_log.to_string_lossy().into_owned());
    add_sink(&mut builder, "sink", &log, 1, Some(10)).shuffle_grouping("numbers");
    let running = squall_core::run(builder.build("spout", config()).unwrap()).unwrap();
    let read_log = || std::fs::read_to_string(&spout_log).unwrap_or_default();
    let acked = |text: &str| text.lines().filter(|line| line.starts_with("ack ")).count();
    wait_for(
        &running,
        "every number acked",
        Duration::from_secs(30),
        || acked(&read_log()) == count as usize,
    );
    running.deactivate();
    wait_for(
        &running,
        "the spout deactivated",
        Duration::from_secs(10),
        || read_log().contains("deactivate"),
    );
    running.activate();
    wait_for(
        &running,
        "the spout activated again",
        Duration::from_secs(10),
        || {
            read_log()
                .lines()
                .filter(|line| *line == "activate")
                .count()
                == 2
        },
    );
    let errors = kill(running);
    assert!(errors.is_empty(), "{errors:#?}");

    let text = read_log();
    // Activated once when its task opened in the active topology, as Storm's ShellSpout
    // is, and once more on resume.
    assert_eq!(text.lines().next(), Some("activate"), "{text}");
    assert_eq!(text.lines().filter(|line| *line == "activate").count(), 2);
    let ids = |prefix: &str| -> BTreeSet<u64> {
        text.lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .map(|n| n.parse().unwrap())
            .collect()
    };
    assert_eq!(ids("ack "), (0..count).collect());
    assert_eq!(ids("fail "), (0..count).filter(|n| n % 10 == 0).collect());
    let received = log.lock().unwrap();
    assert_eq!(received.len() as u64, count + count / 10);
    for tuple in received.iter() {
        let n = u64_of(&tuple.values[0]);
        assert_eq!(tuple.values[1], OwnedValue::Str(format!("number {n}")));
    }
}

#[test]
fn direct_emits_reach_their_task_and_emits_report_their_receivers() {
    let count = 30;
    let stats = Arc::new(ReplayStats::default());
    let (direct, counted, reported) = (Log::default(), Log::default(), Log::default());
    let mut builder = TopologyBuilder::new();
    number_spout(&mut builder, count, &stats);
    let relay = python("direct_bolt.py")
        .output_direct_stream("direct", &["n"])
        .output_stream("counted", &["n"])
        .output_stream("reported", &["n", "task"]);
    builder
        .set_bolt("relay", move || ShellBolt::new(relay.clone()), 1)
        .shuffle_grouping("numbers");
    add_sink(&mut builder, "sink", &direct, 3, None).direct_grouping("relay", "direct");
    add_sink(&mut builder, "counter", &counted, 2, None).grouping_on(
        "relay",
        "counted",
        squall_core::Grouping::Shuffle,
    );
    add_sink(&mut builder, "reports", &reported, 1, None).grouping_on(
        "relay",
        "reported",
        squall_core::Grouping::Global,
    );
    let topology = builder.build("direct", config()).unwrap();
    let sinks: Vec<TaskId> = topology.component("sink").unwrap().task_ids().collect();
    let running = squall_core::run(topology).unwrap();
    wait_for(
        &running,
        "every number acked",
        Duration::from_secs(30),
        || stats.acked.load(Ordering::SeqCst) == count,
    );
    let errors = kill(running);
    assert!(errors.is_empty(), "{errors:#?}");

    let direct = direct.lock().unwrap();
    assert_eq!(direct.len() as u64, count);
    for received in direct.iter() {
        let n = u64_of(&received.values[0]);
        assert_eq!(received.task, sinks[(n % 3) as usize], "direct emit of {n}");
    }
    let receiver_of: BTreeMap<u64, u64> = counted
        .lock()
        .unwrap()
        .iter()
        .map(|received| (u64_of(&received.values[0]), u64::from(received.task.0)))
        .collect();
    let reported_receiver: BTreeMap<u64, u64> = reported
        .lock()
        .unwrap()
        .iter()
        .map(|received| (u64_of(&received.values[0]), u64_of(&received.values[1])))
        .collect();
    assert_eq!(receiver_of.len() as u64, count);
    assert_eq!(reported_receiver, receiver_of);
}

/// Runs numbers through the faulty bolt with heartbeat timeout `timeout`; `gate` holds back
/// the numbers from `hold_from` on until it opens.
struct FaultRun {
    stats: Arc<ReplayStats>,
    log: Log,
    running: RunningTopology,
    _marker_dir: tempfile::TempDir,
}

fn faulty_run(
    fault: &str,
    count: u64,
    timeout_secs: f64,
    gate: Option<(u64, Arc<AtomicBool>)>,
) -> FaultRun {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("faulted");
    let stats = Arc::new(ReplayStats::default());
    let log = Log::default();
    let mut builder = TopologyBuilder::new();
    let spout_stats = Arc::clone(&stats);
    builder.set_spout(
        "numbers",
        move || {
            let gate = gate.clone();
            let mut next = 0;
            let source: MessageSource = Box::new(move || {
                if next >= count {
                    return None;
                }
                if let Some((hold_from, open)) = &gate
                    && next >= *hold_from
                    && !open.load(Ordering::SeqCst)
                {
                    return None;
                }
                next += 1;
                Some(vec![OwnedValue::U64(next - 1)])
            });
            ReplayingSpout::new(&["n"], source, Arc::clone(&spout_stats))
        },
        1,
    );
    let faulty = python("faulty_bolt.py").output(&["n", "pid"]);
    builder
        .set_bolt("faulty", move || ShellBolt::new(faulty.clone()), 1)
        .shuffle_grouping("numbers")
        .set("test.fault", fault)
        .set("test.fault_after", 10)
        .set("test.marker", marker.to_string_lossy().into_owned())
        .set("topology.multilang.heartbeat.timeout", timeout_secs);
    add_sink(&mut builder, "sink", &log, 1, None).shuffle_grouping("faulty");
    let topology = builder.build(&format!("fault-{fault}"), config()).unwrap();
    FaultRun {
        stats,
        log,
        running: squall_core::run(topology).unwrap(),
        _marker_dir: marker_dir,
    }
}

/// Waits for every number to be acked, then checks that exactly one failure was reported,
/// by the faulty bolt's task, that what it held was failed and replayed, and that a second
/// subprocess took over. Returns the report.
fn recovered_once(run: FaultRun, count: u64) -> String {
    let FaultRun {
        stats,
        log,
        running,
        _marker_dir,
    } = run;
    wait_for(
        &running,
        "every number acked after the fault",
        Duration::from_secs(40),
        || stats.acked.load(Ordering::SeqCst) == count,
    );
    let faulty_task = running
        .topology()
        .component("faulty")
        .unwrap()
        .task_ids()
        .next()
        .unwrap();
    let errors = kill(running);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert_eq!(error.component, "faulty");
    assert_eq!(error.task, faulty_task);
    assert_eq!(error.kind, squall_core::TaskErrorKind::Reported);
    assert!(error.message.contains("restarting it"), "{}", error.message);
    assert!(
        stats.failed.load(Ordering::SeqCst) >= 1,
        "what the subprocess held failed"
    );
    assert_eq!(stats.unexpected.load(Ordering::SeqCst), 0);
    let log = log.lock().unwrap();
    let seen: BTreeSet<u64> = log.iter().map(|r| u64_of(&r.values[0])).collect();
    assert_eq!(seen, (0..count).collect(), "every number went through");
    let pids: BTreeSet<u64> = log.iter().map(|r| u64_of(&r.values[1])).collect();
    assert_eq!(pids.len(), 2, "a second subprocess took over: {pids:?}");
    error.to_string()
}

#[test]
fn a_bolt_subprocess_that_exits_is_restarted() {
    let report = recovered_once(faulty_run("exit", 40, 30.0, None), 40);
    assert!(report.contains("exited (exit status: 3)"), "{report}");
    assert!(
        report.contains("faulty bolt exiting on purpose"),
        "stderr is quoted: {report}"
    );
    assert!(report.contains("python3 faulty_bolt.py"), "{report}");
}

#[test]
fn a_bolt_subprocess_that_hangs_is_restarted() {
    let started = Instant::now();
    let report = recovered_once(faulty_run("hang", 40, 1.0, None), 40);
    assert!(
        report.contains("stopped answering: nothing received for"),
        "{report}"
    );
    assert!(report.contains("heartbeat timeout 1.0s"), "{report}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_bolt_subprocess_that_writes_garbage_is_restarted() {
    let report = recovered_once(faulty_run("garbage", 40, 30.0, None), 40);
    assert!(
        report.contains("sent a malformed message: not valid JSON"),
        "{report}"
    );
    assert!(
        report.contains(r#"\"tuple\": [oops]"#),
        "the offending text is quoted: {report}"
    );
}

#[test]
fn heartbeats_keep_an_idle_bolt_alive() {
    // With a one-second timeout, a bolt left without tuples for three seconds survives
    // only if it answers the heartbeats it is sent.
    let gate = Arc::new(AtomicBool::new(false));
    let run = faulty_run("none", 20, 1.0, Some((10, Arc::clone(&gate))));
    wait_for(
        &run.running,
        "the first numbers",
        Duration::from_secs(20),
        || run.stats.acked.load(Ordering::SeqCst) == 10,
    );
    std::thread::sleep(Duration::from_secs(3));
    gate.store(true, Ordering::SeqCst);
    wait_for(&run.running, "the rest", Duration::from_secs(20), || {
        run.stats.acked.load(Ordering::SeqCst) == 20
    });
    let log = Arc::clone(&run.log);
    let errors = kill(run.running);
    assert!(errors.is_empty(), "{errors:#?}");
    let pids: BTreeSet<u64> = log
        .lock()
        .unwrap()
        .iter()
        .map(|r| u64_of(&r.values[1]))
        .collect();
    assert_eq!(pids.len(), 1, "the same subprocess served all: {pids:?}");
}

/// Emits one tuple holding bytes, which JSON cannot carry.
#[derive(Debug)]
struct BytesSpout {
    sent: bool,
    failed: Arc<AtomicBool>,
}

impl squall_core::Spout for BytesSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["payload"]);
    }

    fn next_tuple(&mut self, output: &mut squall_core::SpoutOutput<'_>) {
        if !self.sent {
            self.sent = true;
            output.emit_with_id(
                &[squall_core::Value::Bytes(b"\x00\x01")],
                squall_core::MessageId(1),
            );
        }
    }

    fn fail(
        &mut self,
        _message: squall_core::MessageId,
        _output: &mut squall_core::SpoutOutput<'_>,
    ) {
        self.failed.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_value_json_cannot_carry_fails_its_tuple_with_a_clear_error() {
    let failed = Arc::new(AtomicBool::new(false));
    let mut builder = TopologyBuilder::new();
    let spout_failed = Arc::clone(&failed);
    builder.set_spout(
        "bytes",
        move || BytesSpout {
            sent: false,
            failed: Arc::clone(&spout_failed),
        },
        1,
    );
    let split = python("split_bolt.py")
        .output(&["word"])
        .restart(RestartPolicy::Never);
    builder
        .set_bolt("split", move || ShellBolt::new(split.clone()), 1)
        .shuffle_grouping("bytes");
    let running = squall_core::run(builder.build("bytes", config()).unwrap()).unwrap();
    wait_for(
        &running,
        "the tuple failed",
        Duration::from_secs(20),
        || failed.load(Ordering::SeqCst),
    );
    let errors = kill(running);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].component, "split");
    assert_eq!(
        errors[0].message,
        "a tuple from \"bytes\" on stream \"default\" cannot be sent to the subprocess, so it fails: \
         tuple[0]: a bytes value (2 bytes) has no JSON form; send it as a string or a list"
    );
}

/// Runs the numbers spout with a fault; waits until the second subprocess has emitted
/// every number again; returns the one error reported.
fn faulty_spout(fault: &str) -> TaskError {
    let dir = tempfile::tempdir().unwrap();
    let count = 30;
    let log = Log::default();
    let mut builder = TopologyBuilder::new();
    let spout = python("numbers_spout.py").output(&["n", "text"]);
    builder
        .set_spout("numbers", move || ShellSpout::new(spout.clone()), 1)
        .set("test.count", count)
        .set("test.fault", fault)
        .set("test.fault_after", 10)
        .set(
            "test.marker",
            dir.path().join("faulted").to_string_lossy().into_owned(),
        )
        .set("topology.multilang.heartbeat.timeout", 1.0);
    add_sink(&mut builder, "sink", &log, 1, None).shuffle_grouping("numbers");
    let topology = builder.build(&format!("spout-{fault}"), config()).unwrap();
    let running = squall_core::run(topology).unwrap();
    // The second subprocess starts over: it emits every number.
    wait_for(
        &running,
        "the second subprocess's numbers",
        Duration::from_secs(30),
        || log.lock().unwrap().len() as u64 >= 10 + count,
    );
    let errors = kill(running);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].component, "numbers");
    assert!(
        errors[0].message.contains("restarting it"),
        "{}",
        errors[0].message
    );
    let seen: BTreeSet<u64> = log
        .lock()
        .unwrap()
        .iter()
        .map(|r| u64_of(&r.values[0]))
        .collect();
    assert_eq!(seen, (0..count).collect());
    errors[0].clone()
}

#[test]
fn spout_subprocesses_that_exit_hang_or_write_garbage_are_restarted() {
    let exited = faulty_spout("exit").message;
    assert!(exited.contains("exited (exit status: 4)"), "{exited}");
    assert!(
        exited.contains("numbers spout exiting on purpose"),
        "{exited}"
    );
    let hung = faulty_spout("hang").message;
    assert!(
        hung.contains("stopped answering: nothing received for"),
        "{hung}"
    );
    assert!(
        hung.contains("the commands it had not answered are lost: next"),
        "{hung}"
    );
    let garbage = faulty_spout("garbage").message;
    assert!(
        garbage.contains("sent a malformed message: not valid JSON: expected ident at line 1 column 2; the message: \"this is not JSON\""),
        "{garbage}"
    );
}

#[test]
fn a_subprocess_sees_none_of_the_workers_secrets() {
    // The secrets reach the subprocess's launch as a worker's environment would carry them;
    // the bolt reports which SQUALL_ variables it sees and which values hold the marker.
    let marker = "secret-marker-7f3a";
    let environment = python("environment_bolt.py")
        .output(&["names", "leaked"])
        .env("SQUALL_CLUSTER_SECRET", format!("cluster {marker}"))
        .env("SQUALL_WORKER_KEY", format!("key {marker}"))
        .env("SQUALL_NIMBUS_TOKEN", format!("token {marker}"))
        .env("SQUALL_LOG", "info");
    let stats = Arc::new(ReplayStats::default());
    let log = Log::default();
    let mut builder = TopologyBuilder::new();
    let spout_stats = Arc::clone(&stats);
    builder.set_spout(
        "markers",
        move || {
            let source = source_of(vec![OwnedValue::Str(marker.to_owned()); 3]);
            ReplayingSpout::new(&["marker"], source, Arc::clone(&spout_stats))
        },
        1,
    );
    builder
        .set_bolt(
            "environment",
            move || ShellBolt::new(environment.clone()),
            1,
        )
        .shuffle_grouping("markers");
    add_sink(&mut builder, "report", &log, 1, None).shuffle_grouping("environment");
    let topology = builder.build("environment", config()).unwrap();
    let running = squall_core::run(topology).unwrap();
    wait_for(
        &running,
        "every marker acked",
        Duration::from_secs(30),
        || stats.acked.load(Ordering::SeqCst) == 3,
    );
    let errors = kill(running);
    assert!(errors.is_empty(), "{errors:#?}");
    let reports = log.lock().unwrap().clone();
    assert_eq!(reports.len(), 3, "{reports:?}");
    for report in reports {
        let [OwnedValue::Str(names), OwnedValue::Str(leaked)] = &report.values[..] else {
            panic!("two strings: {report:?}");
        };
        let names: Vec<&str> = names.split(',').collect();
        assert!(names.contains(&"SQUALL_LOG"), "{names:?}");
        for secret in [
            "SQUALL_CLUSTER_SECRET",
            "SQUALL_WORKER_KEY",
            "SQUALL_NIMBUS_TOKEN",
        ] {
            assert!(!names.contains(&secret), "{secret} reached the subprocess");
        }
        assert_eq!(leaked, "", "no variable holds a secret");
    }
}
