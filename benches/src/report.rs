//! The results of one run: Markdown tables for people, JSON for tools, and the targets
//! checked as ratios within the run.

use std::fmt::Write as _;

use serde::Serialize;

use crate::harness::Placement;
use crate::latency::{Clock, RoundTrips};
use crate::stats::{Throughput, paired_ratio};

/// Names of the cases, shared by the runner and the target checks.
pub mod case {
    /// Harness alone, no ring.
    pub const BASE: &str = "base (harness only)";
    /// Squall's typed ring, claim/publish and read/release.
    pub const SQUALL_BATCH: &str = "squall claim/read";
    /// Squall's typed ring, push/pop.
    pub const SQUALL_SINGLE: &str = "squall push/pop";
    /// Squall's typed ring, push/pop, with both handles side by side in one struct.
    pub const SQUALL_SINGLE_SIDE_BY_SIDE: &str = "squall push/pop, handles side by side";
    /// `rtrb`, push/pop, with both handles side by side in one struct.
    pub const RTRB_SINGLE_SIDE_BY_SIDE: &str = "rtrb push/pop, handles side by side";
    /// `rtrb`, chunk API.
    pub const RTRB_CHUNKS: &str = "rtrb chunks";
    /// `rtrb`, push/pop.
    pub const RTRB_SINGLE: &str = "rtrb push/pop";
    /// `crossbeam-queue`'s `ArrayQueue`.
    pub const ARRAY_QUEUE: &str = "crossbeam ArrayQueue";
    /// The `disruptor` crate, batch publication.
    pub const DISRUPTOR_BATCH: &str = "disruptor batch";
    /// The `disruptor` crate, one event per publication.
    pub const DISRUPTOR_SINGLE: &str = "disruptor publish";
    /// Round trips without a ring: one shared word per direction.
    pub const BASE_WORD: &str = "base (shared word)";
    /// Record ring over the heap, two threads.
    pub const RECORDS_HEAP: &str = "records: heap, 2 threads";
    /// Record ring over a mapped file, two threads.
    pub const RECORDS_MAPPED: &str = "records: mapped file, 2 threads";
    /// Record ring over a mapped file, two processes.
    pub const RECORDS_PROCESSES: &str = "records: mapped file, 2 processes";
}

/// One throughput case in one placement.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// Case name (see [`case`]).
    pub case: &'static str,
    /// Where the threads ran.
    pub placement: Placement,
    /// What was measured.
    pub result: Throughput,
}

/// One round-trip case in one placement.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTripRow {
    /// Case name (see [`case`]).
    pub case: &'static str,
    /// Where the threads ran.
    pub placement: Placement,
    /// What was measured, in nanoseconds.
    pub result: RoundTrips,
}

/// One target, checked as a ratio of two results of the same run.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What the target says.
    pub target: String,
    /// Where the threads ran.
    pub placement: Placement,
    /// Our figure.
    pub ours: f64,
    /// The case we are compared with.
    pub reference_case: &'static str,
    /// Its figure.
    pub reference: f64,
    /// Median over rounds of `ours / reference` within the round (see
    /// [`paired_ratio`]).
    pub ratio: f64,
    /// Whether the ratio is within the target.
    pub met: bool,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// u64 throughput, items per second.
    pub throughput: Vec<ThroughputRow>,
    /// u64 round trips, nanoseconds.
    pub round_trips: Vec<RoundTripRow>,
    /// 64-byte record throughput, records per second.
    pub records: Vec<ThroughputRow>,
    /// The targets, checked.
    pub targets: Vec<TargetCheck>,
}

/// Whether larger or smaller figures are better for a target.
#[derive(Debug, Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// A case's figure for a target: over the whole run, and round by round.
#[derive(Debug, Clone, Copy)]
struct Figure<'r> {
    overall: f64,
    per_round: &'r [f64],
}

/// One target: our case, the peers it is compared with, and the bound on the ratio.
struct Target<'r> {
    text: &'static str,
    ours: Option<Figure<'r>>,
    peers: Vec<(&'static str, Option<Figure<'r>>)>,
    bound: f64,
    better: Better,
}

impl Target<'_> {
    /// Compares ours with the best peer (by its figure over the whole run), round by round.
    fn check(self, placement: Placement) -> Option<TargetCheck> {
        let better = self.better;
        let (reference_case, reference) = self
            .peers
            .into_iter()
            .filter_map(|(case, figure)| Some((case, figure?)))
            .reduce(|best, next| match better {
                Better::Higher if next.1.overall > best.1.overall => next,
                Better::Lower if next.1.overall < best.1.overall => next,
                _ => best,
            })?;
        let ours = self.ours?;
        let ratio = paired_ratio(ours.per_round, reference.per_round);
        Some(TargetCheck {
            target: self.text.to_owned(),
            placement,
            ours: ours.overall,
            reference_case,
            reference: reference.overall,
            ratio,
            met: match better {
                Better::Higher => ratio >= self.bound,
                Better::Lower => ratio <= self.bound,
            },
        })
    }
}

impl Report {
    /// Checks every target whose cases were run, for each placement.
    pub fn check_targets(&mut self) {
        let mut checks = Vec::new();
        for placement in [Placement::Pinned, Placement::Unpinned] {
            let throughput = |case| {
                find(&self.throughput, case, placement).map(|row| Figure {
                    overall: row.result.p50,
                    per_round: &row.result.per_round,
                })
            };
            let round_trip = |case| {
                find(&self.round_trips, case, placement).map(|row| Figure {
                    overall: row.result.p50_interpolated,
                    per_round: &row.result.per_round,
                })
            };
            let records = |case| {
                find(&self.records, case, placement).map(|row| Figure {
                    overall: row.result.p50,
                    per_round: &row.result.per_round,
                })
            };
            let targets = [
                Target {
                    text: "batched typed ring >= 0.95x the fastest peer's batched throughput",
                    ours: throughput(case::SQUALL_BATCH),
                    peers: vec![
                        (case::RTRB_CHUNKS, throughput(case::RTRB_CHUNKS)),
                        (case::DISRUPTOR_BATCH, throughput(case::DISRUPTOR_BATCH)),
                    ],
                    bound: 0.95,
                    better: Better::Higher,
                },
                Target {
                    text: "single-value typed ring >= 0.95x rtrb push/pop",
                    ours: throughput(case::SQUALL_SINGLE),
                    peers: vec![(case::RTRB_SINGLE, throughput(case::RTRB_SINGLE))],
                    bound: 0.95,
                    better: Better::Higher,
                },
                Target {
                    text: "round-trip p50 (interpolated) <= 1.1x the best peer's",
                    ours: round_trip(case::SQUALL_SINGLE),
                    peers: vec![
                        (case::RTRB_SINGLE, round_trip(case::RTRB_SINGLE)),
                        (case::RTRB_CHUNKS, round_trip(case::RTRB_CHUNKS)),
                        (case::ARRAY_QUEUE, round_trip(case::ARRAY_QUEUE)),
                        (case::DISRUPTOR_SINGLE, round_trip(case::DISRUPTOR_SINGLE)),
                    ],
                    bound: 1.1,
                    better: Better::Lower,
                },
                Target {
                    text: "cross-process record ring >= 0.7x in-process",
                    ours: records(case::RECORDS_PROCESSES),
                    peers: vec![(case::RECORDS_HEAP, records(case::RECORDS_HEAP))],
                    bound: 0.7,
                    better: Better::Higher,
                },
            ];
            checks.extend(
                targets
                    .into_iter()
                    .filter_map(|target| target.check(placement)),
            );
        }
        self.targets = checks;
    }

    /// The report as Markdown tables, placements side by side.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let placements = self.placements();
        if !self.throughput.is_empty() {
            out.push_str(THROUGHPUT_NOTE);
            out.push_str("\nu64 throughput, millions of items per second:\n\n");
            throughput_table(&mut out, &self.throughput, &placements);
        }
        if !self.round_trips.is_empty() {
            let _ = writeln!(
                out,
                "\nu64 round trips, nanoseconds (HDR histogram; the clock advances in steps of {:.1} ns, \
                 within which the interpolated median is placed):\n",
                Clock::get().step_nanos()
            );
            round_trip_table(&mut out, &self.round_trips, &placements);
        }
        if !self.records.is_empty() {
            let _ = writeln!(
                out,
                "\n{}-byte records, millions of records per second:\n",
                crate::records::RECORD_LEN
            );
            throughput_table(&mut out, &self.records, &placements);
        }
        if !self.targets.is_empty() {
            out.push_str(
                "\nTargets (ours and the reference over the whole run; the ratio is the median of \
                 the ratios within each round):\n\n",
            );
            out.push_str("| target | placement | ours | reference | ratio | met |\n");
            out.push_str("|---|---|---:|---|---:|---|\n");
            for check in &self.targets {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} ({}) | {:.2} | {} |",
                    check.target,
                    check.placement.name(),
                    figure(check.ours),
                    check.reference_case,
                    figure(check.reference),
                    check.ratio,
                    if check.met { "yes" } else { "**no**" }
                );
            }
        }
        out
    }

    fn placements(&self) -> Vec<Placement> {
        [Placement::Pinned, Placement::Unpinned]
            .into_iter()
            .filter(|placement| {
                let in_rows =
                    |rows: &[ThroughputRow]| rows.iter().any(|row| row.placement == *placement);
                in_rows(&self.throughput)
                    || in_rows(&self.records)
                    || self
                        .round_trips
                        .iter()
                        .any(|row| row.placement == *placement)
            })
            .collect()
    }
}

/// How to read the throughput tables.
const THROUGHPUT_NOTE: &str = "Throughput: median rate of the counted intervals (p10-p90 in \
brackets); an interval counts when both threads had their cores for 90% of it or more.\n";

/// Rates in millions, round trips in nanoseconds: large figures are rates.
fn figure(value: f64) -> String {
    if value >= 1e5 {
        format!("{:.1} M/s", value / 1e6)
    } else {
        format!("{value:.0} ns")
    }
}

/// Case names in the order they were first run.
fn cases_in_order<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut cases: Vec<&str> = Vec::new();
    for name in names {
        if !cases.contains(&name) {
            cases.push(name);
        }
    }
    cases
}

/// A row of results: one case in one placement.
trait Row {
    fn case(&self) -> &'static str;
    fn placement(&self) -> Placement;
}

impl Row for ThroughputRow {
    fn case(&self) -> &'static str {
        self.case
    }
    fn placement(&self) -> Placement {
        self.placement
    }
}

impl Row for RoundTripRow {
    fn case(&self) -> &'static str {
        self.case
    }
    fn placement(&self) -> Placement {
        self.placement
    }
}

/// The row of `case` in `placement`, if it was run.
fn find<'r, R: Row>(rows: &'r [R], case: &str, placement: Placement) -> Option<&'r R> {
    rows.iter()
        .find(|row| row.case() == case && row.placement() == placement)
}

/// A Markdown table with one line per case and, per placement, the `columns` that `cells`
/// fills in (as `" a | b |"`).
fn table<R: Row>(
    out: &mut String,
    rows: &[R],
    placements: &[Placement],
    columns: &[&str],
    cells: impl Fn(&R) -> String,
) {
    out.push_str("| case |");
    for placement in placements {
        for column in columns {
            let _ = write!(out, " {} {column} |", placement.name());
        }
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(placements.len() * columns.len()));
    out.push('\n');
    for case in cases_in_order(rows.iter().map(Row::case)) {
        let _ = write!(out, "| {case} |");
        for &placement in placements {
            match find(rows, case, placement) {
                Some(row) => out.push_str(&cells(row)),
                None => out.push_str(&" - |".repeat(columns.len())),
            }
        }
        out.push('\n');
    }
}

fn throughput_table(out: &mut String, rows: &[ThroughputRow], placements: &[Placement]) {
    table(
        out,
        rows,
        placements,
        &["p50 (p10-p90)", "intervals kept"],
        |row| {
            let r = &row.result;
            format!(
                " {:.1} ({:.1}-{:.1}) | {}/{} |",
                r.p50 / 1e6,
                r.p10 / 1e6,
                r.p90 / 1e6,
                r.intervals,
                r.intervals + r.dropped
            )
        },
    );
}

fn round_trip_table(out: &mut String, rows: &[RoundTripRow], placements: &[Placement]) {
    table(
        out,
        rows,
        placements,
        &["p50", "p50 interpolated", "p99", "p99.9"],
        |row| {
            let r = &row.result;
            format!(
                " {} | {:.1} | {} | {} |",
                r.p50, r.p50_interpolated, r.p99, r.p999
            )
        },
    );
}
