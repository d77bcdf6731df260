//! Compares Squall's rings with `rtrb`, `crossbeam-queue`'s `ArrayQueue` and the `disruptor`
//! crate in one run: u64 throughput, u64 round-trip latency, and 64-byte record throughput
//! within a process and across two, with the threads pinned to two cores and unpinned.
//!
//! Every case runs in several short slices, and the slices of all cases are interleaved
//! round by round (in a rotating order), so that a machine whose speed drifts during the
//! run (a virtual machine whose cores move, a neighbour's burst of work) affects every case
//! alike and the ratios between cases stay meaningful.
//!
//! ```text
//! cargo run --release -p squall-benches --bin rings -- [--seconds N] [--json]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use squall_benches::endpoints::{
    RingReceiver, RingSender, array_queue, base, disruptor_batch, disruptor_single, mailbox,
    rtrb_chunks, rtrb_single, squall_batch, squall_single,
};
use squall_benches::harness::{self, Handles, Placement, Timing};
use squall_benches::latency::{self, Latencies};
use squall_benches::records::{self, RecordReceiver, RecordSender};
use squall_benches::report::{Report, RoundTripRow, ThroughputRow, case};
use squall_benches::stats::Samples;
use squall_ringbuf::record;

/// Untimed round trips at the start of every slice.
const ROUND_TRIP_WARMUP: u64 = 2_000;

/// Longest warm-up of a throughput slice.
const MAX_SLICE_WARMUP: Duration = Duration::from_millis(50);

#[derive(Debug, Parser)]
#[command(about = "Squall's rings side by side with rtrb, ArrayQueue and the disruptor")]
struct Args {
    /// Seconds counted per throughput case, spread over the rounds.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Timed round trips per latency case, spread over the rounds.
    #[arg(long, default_value_t = 1_000_000)]
    round_trips: u64,
    /// Rounds: every case runs once per round, in a rotating order.
    #[arg(long, default_value_t = 40)]
    rounds: usize,
    /// Values per claim, read or chunk (and records per publish).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Entries of every u64 ring (a power of two).
    #[arg(long, default_value_t = 4096)]
    capacity: usize,
    /// Data bytes of every record ring.
    #[arg(long, default_value_t = 256 * 1024)]
    record_ring_bytes: usize,
    /// Where the two threads run.
    #[arg(long, value_enum, default_value_t = Placements::Both)]
    placement: Placements,
    /// Runs only the cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Prints the results as JSON instead of Markdown tables.
    #[arg(long)]
    json: bool,
    /// Also writes the results as JSON to this file.
    #[arg(long)]
    json_file: Option<PathBuf>,
    /// Runs as the sending child of the cross-process case, on the ring file at this path.
    #[arg(long = "record-sender", hide = true)]
    record_sender: Option<PathBuf>,
    /// Core the sending child pins itself to.
    #[arg(long, hide = true)]
    core: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Placements {
    Pinned,
    Unpinned,
    Both,
}

impl Placements {
    fn list(self) -> Vec<Placement> {
        match self {
            Placements::Pinned => vec![Placement::Pinned],
            Placements::Unpinned => vec![Placement::Unpinned],
            Placements::Both => vec![Placement::Pinned, Placement::Unpinned],
        }
    }
}

/// One case: its name and how to run one slice of it.
struct Case<M> {
    name: &'static str,
    run: Box<dyn Fn(Placement) -> M>,
}

/// What a slice of a case measured, and how slices add up.
trait Measurement: Sized {
    fn merge(&mut self, other: Self);
}

impl Measurement for Samples {
    fn merge(&mut self, other: Self) {
        Samples::merge(self, other);
    }
}

impl Measurement for Latencies {
    fn merge(&mut self, other: Self) {
        Latencies::merge(self, other);
    }
}

/// Runs every case once per round, starting each round one case further along, and merges
/// the slices of each case.
fn interleave<M: Measurement>(
    kind: &str,
    cases: &[Case<M>],
    rounds: usize,
    placement: Placement,
) -> Vec<(&'static str, M)> {
    let mut merged: Vec<Option<M>> = cases.iter().map(|_| None).collect();
    for round in 0..rounds {
        eprintln!("{kind}: {} round {}/{rounds}", placement.name(), round + 1);
        for offset in 0..cases.len() {
            let index = (round + offset) % cases.len();
            let slice = (cases[index].run)(placement);
            match &mut merged[index] {
                Some(total) => total.merge(slice),
                empty => *empty = Some(slice),
            }
        }
    }
    cases
        .iter()
        .zip(merged)
        .filter_map(|(case, total)| Some((case.name, total?)))
        .collect()
}

/// The settings every slice needs.
#[derive(Debug, Clone, Copy)]
struct Slice {
    batch: usize,
    capacity: usize,
    record_ring_bytes: usize,
    timing: Timing,
    round_trips: u64,
}

impl Slice {
    fn throughput<S, R>(
        self,
        name: &'static str,
        handles: Handles,
        ends: fn(usize) -> (S, R),
    ) -> Case<Samples>
    where
        S: RingSender + 'static,
        R: RingReceiver + 'static,
    {
        Case {
            name,
            run: Box::new(move |placement| {
                let ends = ends(self.capacity);
                harness::throughput(placement, self.batch, self.timing, handles, ends)
            }),
        }
    }

    fn round_trips<S, R>(self, name: &'static str, ring: fn(usize) -> (S, R)) -> Case<Latencies>
    where
        S: RingSender + 'static,
        R: RingReceiver + 'static,
    {
        Case {
            name,
            run: Box::new(move |placement| {
                latency::round_trips(
                    placement,
                    ROUND_TRIP_WARMUP,
                    self.round_trips,
                    ring(self.capacity),
                    ring(self.capacity),
                )
            }),
        }
    }

    fn records(self, name: &'static str, run: fn(Slice, Placement) -> Samples) -> Case<Samples> {
        Case {
            name,
            run: Box::new(move |placement| run(self, placement)),
        }
    }
}

fn u64_throughput_cases(slice: Slice) -> Vec<Case<Samples>> {
    use Handles::{Apart, SideBySide};
    vec![
        slice.throughput(case::BASE, Apart, |_| base()),
        slice.throughput(case::SQUALL_BATCH, Apart, squall_batch),
        slice.throughput(case::RTRB_CHUNKS, Apart, rtrb_chunks),
        slice.throughput(case::DISRUPTOR_BATCH, Apart, disruptor_batch),
        slice.throughput(case::SQUALL_SINGLE, Apart, squall_single),
        slice.throughput(case::RTRB_SINGLE, Apart, rtrb_single),
        slice.throughput(case::DISRUPTOR_SINGLE, Apart, disruptor_single),
        slice.throughput(case::ARRAY_QUEUE, Apart, array_queue),
        slice.throughput(case::SQUALL_SINGLE_SIDE_BY_SIDE, SideBySide, squall_single),
        slice.throughput(case::RTRB_SINGLE_SIDE_BY_SIDE, SideBySide, rtrb_single),
    ]
}

fn round_trip_cases(slice: Slice) -> Vec<Case<Latencies>> {
    vec![
        slice.round_trips(case::BASE_WORD, |_| mailbox()),
        slice.round_trips(case::SQUALL_SINGLE, squall_single),
        slice.round_trips(case::SQUALL_BATCH, squall_batch),
        slice.round_trips(case::RTRB_SINGLE, rtrb_single),
        slice.round_trips(case::RTRB_CHUNKS, rtrb_chunks),
        slice.round_trips(case::DISRUPTOR_SINGLE, disruptor_single),
        slice.round_trips(case::ARRAY_QUEUE, array_queue),
    ]
}

fn record_cases(slice: Slice) -> Vec<Case<Samples>> {
    vec![
        slice.records(case::RECORDS_HEAP, |slice, placement| {
            let (producer, consumer) = record::heap_ring(slice.record_ring_bytes);
            let ends = (RecordSender(producer), RecordReceiver(consumer));
            harness::throughput(placement, slice.batch, slice.timing, Handles::Apart, ends)
        }),
        slice.records(case::RECORDS_PROCESSES, |slice, placement| {
            records::cross_process_throughput(
                placement,
                slice.batch,
                slice.timing,
                slice.record_ring_bytes,
            )
        }),
        slice.records(case::RECORDS_MAPPED, |slice, placement| {
            let dir = records::ring_dir();
            let ring = records::create_ring(dir.path(), "in-process.ring", slice.record_ring_bytes);
            let ends = (
                RecordSender(ring.producer().expect("attach producer")),
                RecordReceiver(ring.consumer().expect("attach consumer")),
            );
            harness::throughput(placement, slice.batch, slice.timing, Handles::Apart, ends)
        }),
    ]
}

fn main() {
    let args = Args::parse();
    if let Some(path) = &args.record_sender {
        records::run_child_sender(path, args.core, args.batch);
        return;
    }
    assert!(
        args.capacity.is_power_of_two(),
        "--capacity must be a power of two (the disruptor requires it), got {}",
        args.capacity
    );
    assert!(args.batch > 0, "--batch must be at least 1");
    assert!(args.rounds > 0, "--rounds must be at least 1");
    let measure = Duration::from_secs_f64(args.seconds / args.rounds as f64);
    let slice = Slice {
        batch: args.batch,
        capacity: args.capacity,
        record_ring_bytes: args.record_ring_bytes,
        timing: Timing {
            warmup: (measure / 4).min(MAX_SLICE_WARMUP),
            measure,
        },
        round_trips: args.round_trips.div_ceil(args.rounds as u64),
    };
    let wanted = |name: &str| {
        args.filter
            .as_deref()
            .is_none_or(|filter| name.contains(filter))
    };
    let throughput_cases: Vec<_> = u64_throughput_cases(slice)
        .into_iter()
        .filter(|case| wanted(case.name))
        .collect();
    let round_trip_cases: Vec<_> = round_trip_cases(slice)
        .into_iter()
        .filter(|case| wanted(case.name))
        .collect();
    let record_cases: Vec<_> = record_cases(slice)
        .into_iter()
        .filter(|case| wanted(case.name))
        .collect();

    let mut report = Report::default();
    for placement in args.placement.list() {
        for (case, samples) in
            interleave("u64 throughput", &throughput_cases, args.rounds, placement)
        {
            let result = samples.summary();
            report.throughput.push(ThroughputRow {
                case,
                placement,
                result,
            });
        }
        for (case, latencies) in
            interleave("round trips", &round_trip_cases, args.rounds, placement)
        {
            let result = latencies.summary();
            report.round_trips.push(RoundTripRow {
                case,
                placement,
                result,
            });
        }
        for (case, samples) in interleave("records", &record_cases, args.rounds, placement) {
            let result = samples.summary();
            report.records.push(ThroughputRow {
                case,
                placement,
                result,
            });
        }
    }
    report.check_targets();
    let json = serde_json::to_string_pretty(&report).expect("serialise the report");
    if let Some(path) = &args.json_file {
        std::fs::write(path, &json)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.to_markdown());
    }
}
