//! Compares Squall's word count with the same word count written for timely dataflow, in
//! one run, and prints the ratio of their records per second.
//!
//! Both count u64 word ids drawn uniformly from 10,000 distinct words by the engine's
//! [`WordIdGenerator`], route every occurrence of a word to one counter by the word, count
//! into the engine's [`WordMap`] (so the comparison measures the engines, not the maps), and
//! end with the engine's exact check of every word's count against what was generated.
//!
//! - Squall runs the topology of `squall-bench wordcount` (fields grouping on the word, no
//!   acking, one tuple in 64 stamped for latency, idle executors spinning then parking) in
//!   one of two shapes (`--shape`):
//!   - `lanes` (the default, the same shape as timely's): two word spouts and two count
//!     bolts on two threads, each thread running one spout and one counter
//!     ([`Chaining::Lanes`]), so a word crosses to the other thread only when the other
//!     counter owns it;
//!   - `pipeline`: `squall-bench wordcount`'s defaults, one spout on one thread feeding one
//!     counter on the other.
//! - timely runs two workers in this process (`Config::process(2)`). Each draws words in
//!   batches of [`RECORDS_PER_BATCH`], one epoch per batch, exchanges them by a hash of the
//!   word, and counts them in an operator of its own; a probe keeps at most
//!   [`EPOCHS_IN_FLIGHT`] epochs unfinished, so memory stays bounded.
//!
//! Each runs as its defaults have it: Squall pins its executor threads to cores, timely
//! leaves its workers to the scheduler.
//!
//! Both are measured alike, by this thread watching what their counters have counted: a
//! warm-up that is not counted, then a window of `--duration` whose records counted per
//! second are the round's figure. The sources then stop, what is in flight drains, and the
//! counts are checked. Rounds alternate between the systems (Squall, timely, Squall, ...),
//! so a machine whose speed drifts affects both alike; each system's figure is the median
//! of its rounds, and the ratio is the median of the ratios within each round.
//!
//! ```text
//! cargo run --release -p squall-benches --bin timely_wordcount -- \
//!     [--duration S] [--warmup S] [--rounds N] [--json]
//! ```

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rustc_hash::FxBuildHasher;
use serde::Serialize;
use squall::builtin::components::SourceOptions;
use squall::builtin::counts::{CountCheck, WordMap, verify_id_counts};
use squall::builtin::meter::{MeterCounter, ThroughputMeter};
use squall::builtin::topologies::{self, BuiltinOptions, BuiltinTopology};
use squall::builtin::words::{DEFAULT_VOCABULARY_SIZE, Vocabulary, WordIdGenerator, WordTally};
use squall::{Chaining, TopologyConfig, WaitStrategyKind};
use squall_benches::harness::Timing;
use squall_benches::stats::{median, paired_ratio};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Input, Operator, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;

/// Seed of the first word source; source `i` draws from `WORD_SEED + i`, as the spout tasks
/// of Squall's built-in word count do.
const WORD_SEED: u64 = 1;

/// Records a timely worker hands to its input per step: the size of timely's own buffers
/// (8 KiB of u64).
const RECORDS_PER_BATCH: usize = 1024;

/// Epochs (batches) a timely worker may have sent but not yet seen counted everywhere
/// before it stops generating and only steps: enough to keep both workers busy, few enough
/// that what is in flight stays in cache.
const EPOCHS_IN_FLIGHT: u64 = 16;

/// timely workers, one per core of the two-core machines this comparison was made for.
const TIMELY_WORKERS: usize = 2;

/// Stamp one tuple in this many, as `squall-bench` does by default.
const SQUALL_STAMP_EVERY: u32 = 64;

/// How often the measuring thread looks whether a system stopped on its own.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Longest wait for what is in flight to drain after Squall's sources stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(about = "Squall's word count side by side with the same word count on timely dataflow")]
struct Args {
    /// Seconds measured per round and system.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds each system runs, uncounted, before every measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Rounds: each runs Squall, then timely.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// How Squall's word count is laid out on the two cores.
    #[arg(long, value_enum, default_value_t = Shape::Lanes)]
    shape: Shape,
    /// Prints one JSON object per system and one for the ratio, one per line.
    #[arg(long)]
    json: bool,
}

/// Layouts of Squall's word count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Shape {
    /// Two spouts and two counters, one of each per thread (timely's shape).
    Lanes,
    /// One spout thread feeding one counter thread (`squall-bench wordcount`'s defaults).
    Pipeline,
}

impl Args {
    /// The warm-up and window of every run.
    fn timing(&self) -> Result<Timing, String> {
        let seconds = |name: &str, value: f64, least: f64| {
            if value.is_finite() && value >= least {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(format!(
                    "--{name} {value}: expected at least {least} seconds"
                ))
            }
        };
        Ok(Timing {
            warmup: seconds("warmup", self.warmup, 0.0)?,
            measure: seconds("duration", self.duration, 0.001)?,
        })
    }
}

/// What one run of one system measured and checked.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Records counted in the measured window.
    records: u64,
    /// Length of the window.
    seconds: f64,
    /// Words counted over the whole run (warm-up and drain included), checked exactly.
    checked: CountCheck,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
}

/// Records counted in a measured window.
#[derive(Debug, Clone, Copy)]
struct Window {
    records: u64,
    seconds: f64,
}

/// Lets a system warm up, then counts what `counted` (a running total) gains over the
/// window; stops early when `alive` says the system stopped on its own.
fn watch_window(timing: Timing, counted: impl Fn() -> u64, alive: impl Fn() -> bool) -> Window {
    sleep_while_alive(timing.warmup, &alive);
    let (start, start_count) = (Instant::now(), counted());
    sleep_while_alive(timing.measure, &alive);
    Window {
        records: counted() - start_count,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Sleeps for `duration`, waking now and then to give up when `alive` says no.
fn sleep_while_alive(duration: Duration, alive: &impl Fn() -> bool) {
    let deadline = Instant::now() + duration;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !alive() {
            return;
        }
        std::thread::sleep(left.min(LOOK_EVERY));
    }
}

/// Fails unless every word generated was counted once, and the totals agree.
fn check_totals(
    system: &str,
    checked: CountCheck,
    generated: u64,
    counted: u64,
) -> Result<(), String> {
    if checked.total == generated && counted == generated {
        Ok(())
    } else {
        Err(format!(
            "{system}: {generated} words generated, {} in the final counts, {counted} counted \
             while running",
            checked.total
        ))
    }
}

// --- Squall -----------------------------------------------------------------------------

/// The options `squall-bench wordcount` builds its topology with, laid out as `shape`.
fn squall_wordcount_options(shape: Shape) -> BuiltinOptions {
    let (chaining, instances) = match shape {
        Shape::Lanes => (Chaining::Lanes(2), 2),
        Shape::Pipeline => (Chaining::Auto, 1),
    };
    BuiltinOptions {
        config: TopologyConfig::default()
            .with_ackers(0)
            .with_wait_strategy(WaitStrategyKind::SpinThenPark)
            .with_chaining(chaining),
        source: SourceOptions {
            rate: None,
            stamp_every: SQUALL_STAMP_EVERY,
            tracked: false,
            ..SourceOptions::default()
        },
        spouts: instances,
        middle: 1,
        sinks: instances,
        vocabulary: DEFAULT_VOCABULARY_SIZE,
        ..BuiltinOptions::default()
    }
}

/// How Squall ran, for the report.
#[derive(Debug, Clone, Copy, Serialize)]
struct SquallShape {
    layout: Shape,
    executor_threads: usize,
    pinned: bool,
}

/// Runs Squall's built-in word count once, as `squall-bench wordcount` does: warm-up,
/// window, sources off, drain, exact count check.
fn run_squall(timing: Timing, shape: Shape) -> Result<(Run, SquallShape), String> {
    let built = topologies::wordcount("wordcount", false, &squall_wordcount_options(shape))
        .map_err(|error| format!("squall: building the word count: {error}"))?;
    let running = squall::run(Arc::clone(&built.topology))
        .map_err(|error| format!("squall: starting the word count: {error}"))?;
    let shape = SquallShape {
        layout: shape,
        executor_threads: running.thread_count(),
        pinned: running.is_pinned(),
    };
    let window = watch_window(
        timing,
        || built.sinks.received.total(),
        || !running.has_stopped(),
    );
    built.source.switch.turn_off();
    if let Some(failure) = running.stopped_by() {
        return Err(format!("squall: the word count stopped: {failure}"));
    }
    let report = running.kill(DRAIN_TIMEOUT);
    if let Some(error) = report.errors.first() {
        return Err(format!(
            "squall: {} task errors, the first: {error}",
            report.errors.len()
        ));
    }
    if !report.drained {
        return Err(format!(
            "squall: tuples still in flight {DRAIN_TIMEOUT:?} after the sources stopped"
        ));
    }
    let checked = check_squall_counts(&built)?;
    Ok((
        Run {
            records: window.records,
            seconds: window.seconds,
            checked,
        },
        shape,
    ))
}

/// Checks the counts of a stopped Squall word count exactly, and its totals.
fn check_squall_counts(built: &BuiltinTopology) -> Result<CountCheck, String> {
    let probe = built
        .words
        .as_ref()
        .ok_or("squall: the word count has no count probe")?;
    let checked = probe
        .verify()
        .map_err(|error| format!("squall: word counts are wrong: {error}"))?;
    check_totals(
        "squall",
        checked,
        probe.emitted_total(),
        built.sinks.received.total(),
    )?;
    Ok(checked)
}

// --- timely -----------------------------------------------------------------------------

/// What one timely worker generated and counted.
#[derive(Debug)]
struct WorkerCounts {
    generated: WordTally,
    counted: WordMap<u64, u64>,
}

/// The worker a word is counted by is picked from this hash of it, by timely's exchange.
fn word_hash(word: &u64) -> u64 {
    FxBuildHasher.hash_one(word)
}

/// A worker's handles on its counting dataflow.
struct CountDataflow {
    /// Where the worker's words go in.
    input: InputHandle<u64, CapacityContainerBuilder<Vec<u64>>>,
    /// How far the counting has got, over all workers.
    probe: ProbeHandle<u64>,
    /// The counts of the words routed to this worker.
    counts: Rc<RefCell<WordMap<u64, u64>>>,
}

/// Builds the counting dataflow on `worker`: input, exchange by word, count.
fn build_count_dataflow(worker: &mut Worker, mut counted: MeterCounter) -> CountDataflow {
    let mut input = InputHandle::new();
    let probe = ProbeHandle::new();
    let vocabulary = DEFAULT_VOCABULARY_SIZE as usize;
    let counts = Rc::new(RefCell::new(WordMap::with_capacity_and_hasher(
        vocabulary,
        Default::default(),
    )));
    let operator_counts = Rc::clone(&counts);
    worker.dataflow(|scope| {
        scope
            .input_from(&mut input)
            .unary::<CapacityContainerBuilder<Vec<u64>>, _, _, _>(
                Exchange::new(word_hash),
                "Count",
                move |_capability, _info| {
                    move |words, _output| {
                        let mut counts = operator_counts.borrow_mut();
                        words.for_each(|_time, batch| {
                            for &word in batch.iter() {
                                *counts.entry(word).or_insert(0) += 1;
                            }
                            counted.add(batch.len() as u64);
                        });
                    }
                },
            )
            .probe_with(&probe);
    });
    CountDataflow {
        input,
        probe,
        counts,
    }
}

/// One timely worker: generates words until `stop`, then closes its input, lets everything
/// in flight be counted, and hands back what it generated and counted.
fn timely_worker(worker: &mut Worker, stop: &AtomicBool, counted: MeterCounter) -> WorkerCounts {
    let CountDataflow {
        mut input,
        probe,
        counts,
    } = build_count_dataflow(worker, counted);
    let seed = WORD_SEED + worker.index() as u64;
    let mut words = WordIdGenerator::new(seed, DEFAULT_VOCABULARY_SIZE);
    let mut generated = WordTally::new(DEFAULT_VOCABULARY_SIZE);
    let mut batch = Vec::with_capacity(RECORDS_PER_BATCH);
    let mut epoch = 0u64;
    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        for _ in 0..RECORDS_PER_BATCH {
            let word = words.next_id();
            generated.add(word);
            batch.push(word);
        }
        input.send_batch(&mut batch);
        epoch += 1;
        input.advance_to(epoch);
        worker.step();
        // Flow control, as in timely's examples, but with some slack: wait only when the
        // counts fall more than EPOCHS_IN_FLIGHT epochs behind, so the workers overlap.
        let oldest_allowed = epoch.saturating_sub(EPOCHS_IN_FLIGHT);
        worker.step_while(|| probe.less_than(&oldest_allowed));
    }
    drop(input);
    worker.step_while(|| !probe.done());
    let counted = std::mem::take(&mut *counts.borrow_mut());
    WorkerCounts { generated, counted }
}

/// Runs the timely word count once: warm-up, window, stop, drain, exact count check.
fn run_timely(timing: Timing) -> Result<Run, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let counted = ThroughputMeter::new();
    let workers = {
        let (stop, counted) = (Arc::clone(&stop), counted.clone());
        timely::execute(timely::Config::process(TIMELY_WORKERS), move |worker| {
            timely_worker(worker, &stop, counted.counter())
        })
        .map_err(|error| format!("timely: cannot start the workers: {error}"))?
    };
    let window = watch_window(timing, || counted.total(), || true);
    stop.store(true, Ordering::Relaxed);
    let results = workers
        .join()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("timely: a worker failed: {error}"))?;
    let checked = check_timely_counts(results, counted.total())?;
    Ok(Run {
        records: window.records,
        seconds: window.seconds,
        checked,
    })
}

/// Checks the workers' counts exactly against what they generated: every word counted as
/// often as it was drawn, and by one worker only.
fn check_timely_counts(workers: Vec<WorkerCounts>, counted: u64) -> Result<CountCheck, String> {
    let mut generated = WordTally::new(DEFAULT_VOCABULARY_SIZE);
    let mut counters = Vec::with_capacity(workers.len());
    for worker in workers {
        generated.merge(&worker.generated);
        counters.push(worker.counted);
    }
    let vocabulary = Vocabulary::new(DEFAULT_VOCABULARY_SIZE);
    let checked = verify_id_counts(&generated, &counters, &vocabulary)
        .map_err(|error| format!("timely: word counts are wrong: {error}"))?;
    check_totals("timely", checked, generated.total(), counted)?;
    Ok(checked)
}

// --- rounds and report ------------------------------------------------------------------

/// One system's figures over all rounds.
#[derive(Debug, Serialize)]
struct SystemReport {
    system: &'static str,
    /// Median over the rounds of the records counted per second in the window.
    records_per_sec: f64,
    /// Each round's records per second.
    per_round: Vec<f64>,
    /// Records counted in all the windows.
    records: u64,
    /// Length of all the windows, in seconds.
    seconds: f64,
    /// Words counted over every whole run and checked exactly.
    words_checked: u64,
    /// Counters that counted at least one word, in the run with the fewest.
    busy_counters: usize,
    /// Squall's executor threads and pinning; `None` for timely.
    #[serde(skip_serializing_if = "Option::is_none")]
    squall: Option<SquallShape>,
    /// timely's workers; `None` for Squall.
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
}

impl SystemReport {
    fn new(system: &'static str, runs: &[Run]) -> Self {
        let per_round: Vec<f64> = runs.iter().map(Run::rate).collect();
        Self {
            system,
            records_per_sec: median(&per_round),
            per_round,
            records: runs.iter().map(|run| run.records).sum(),
            seconds: runs.iter().map(|run| run.seconds).sum(),
            words_checked: runs.iter().map(|run| run.checked.total).sum(),
            busy_counters: runs
                .iter()
                .map(|run| run.checked.busy_counters)
                .min()
                .unwrap_or(0),
            squall: None,
            workers: None,
        }
    }
}

/// The ratio of the two systems' rates.
#[derive(Debug, Serialize)]
struct RatioReport {
    ratio: &'static str,
    /// Median over the rounds of Squall's rate divided by timely's in the same round.
    value: f64,
    /// Each round's ratio.
    per_round: Vec<f64>,
}

impl RatioReport {
    fn new(squall: &SystemReport, timely: &SystemReport) -> Self {
        Self {
            ratio: "squall/timely",
            value: paired_ratio(&squall.per_round, &timely.per_round),
            per_round: squall
                .per_round
                .iter()
                .zip(&timely.per_round)
                .map(|(squall, timely)| squall / timely)
                .collect(),
        }
    }
}

/// Runs Squall then timely in every round; returns both systems' reports.
fn run_rounds(
    timing: Timing,
    rounds: usize,
    layout: Shape,
) -> Result<(SystemReport, SystemReport), String> {
    let mut squall_runs = Vec::with_capacity(rounds);
    let mut timely_runs = Vec::with_capacity(rounds);
    let mut shape = None;
    for round in 1..=rounds {
        let (squall, squall_shape) = run_squall(timing, layout)?;
        eprintln!("round {round}/{rounds}: squall {}", millions(squall.rate()));
        let timely = run_timely(timing)?;
        eprintln!("round {round}/{rounds}: timely {}", millions(timely.rate()));
        squall_runs.push(squall);
        timely_runs.push(timely);
        shape = Some(squall_shape);
    }
    let mut squall = SystemReport::new("squall", &squall_runs);
    squall.squall = shape;
    let mut timely = SystemReport::new("timely", &timely_runs);
    timely.workers = Some(TIMELY_WORKERS);
    Ok((squall, timely))
}

fn millions(rate: f64) -> String {
    format!("{:.2} M records/s", rate / 1e6)
}

fn print_text(timing: Timing, squall: &SystemReport, timely: &SystemReport, ratio: &RatioReport) {
    println!(
        "word count, u64 ids from {DEFAULT_VOCABULARY_SIZE} words, {} rounds of {:.1}s warm-up + \
         {:.1}s measured; medians over the rounds:",
        squall.per_round.len(),
        timing.warmup.as_secs_f64(),
        timing.measure.as_secs_f64()
    );
    let rounds = |report: &SystemReport| {
        let rates: Vec<String> = report
            .per_round
            .iter()
            .map(|rate| format!("{:.2}", rate / 1e6))
            .collect();
        rates.join(", ")
    };
    let shape = squall.squall.map_or(String::new(), |shape| {
        format!(
            "{:?} shape, {} executor threads, {}",
            shape.layout,
            shape.executor_threads,
            if shape.pinned { "pinned" } else { "unpinned" }
        )
    });
    println!(
        "squall  {}  (rounds: {} M/s; {shape})",
        millions(squall.records_per_sec),
        rounds(squall)
    );
    println!(
        "timely  {}  (rounds: {} M/s; {TIMELY_WORKERS} workers)",
        millions(timely.records_per_sec),
        rounds(timely)
    );
    let per_round: Vec<String> = ratio.per_round.iter().map(|r| format!("{r:.3}")).collect();
    println!(
        "squall/timely = {:.3}  (median of the ratios within each round: {})",
        ratio.value,
        per_round.join(", ")
    );
}

fn print_json(
    squall: &SystemReport,
    timely: &SystemReport,
    ratio: &RatioReport,
) -> Result<(), String> {
    println!("{}", json_line(squall)?);
    println!("{}", json_line(timely)?);
    println!("{}", json_line(ratio)?);
    Ok(())
}

fn json_line(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|error| format!("cannot write JSON: {error}"))
}

fn run(args: &Args) -> Result<(), String> {
    let timing = args.timing()?;
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".to_owned());
    }
    let (squall, timely) = run_rounds(timing, args.rounds, args.shape)?;
    let ratio = RatioReport::new(&squall, &timely);
    if args.json {
        print_json(&squall, &timely, &ratio)
    } else {
        print_text(timing, &squall, &timely, &ratio);
        Ok(())
    }
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("timely_wordcount: {error}");
            ExitCode::FAILURE
        }
    }
}
