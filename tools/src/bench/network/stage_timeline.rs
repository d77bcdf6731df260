//! The per-stage timeline of the traced records between two workers (built with the
//! `stage-trace` feature): joins the stamps both workers wrote out and summarises the time
//! between consecutive stages.
//!
//! Each worker writes one stamp per line, `from to ordinal stage nanoseconds`, where
//! `from to ordinal` name a traced record (its sending and receiving worker and its place
//! among the traced records of their connection) and the time is `CLOCK_MONOTONIC`, one
//! clock for both processes (`squall_net::trace`).

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use serde::Serialize;

/// The stages in the order a record passes them, by their names in the stamps.
pub const STAGES: [&str; 9] = [
    "write",
    "publish",
    "pick-up",
    "frame-written",
    "socket-read",
    "inbound-write",
    "inbound-publish",
    "executor-read",
    "credit-sent",
];

/// The intervals summarised, as (from, to) indices into [`STAGES`]: each stage after the
/// one before it, the credit return after the frame's arrival, and the whole way.
const TRANSITIONS: [(usize, usize); 9] = [
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (4, 5),
    (5, 6),
    (6, 7),
    (4, 8),
    (0, 7),
];

/// The time between two stages over the traced records that passed both.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageInterval {
    /// The earlier stage.
    pub from: String,
    /// The later stage.
    pub to: String,
    /// Traced records stamped at both.
    pub records: u64,
    /// Mean, in microseconds: unlike the percentiles, the means of consecutive intervals
    /// over the same records add up.
    pub mean_us: f64,
    /// Median, in microseconds.
    pub median_us: f64,
    /// 90th percentile, in microseconds.
    pub p90_us: f64,
    /// 99th percentile, in microseconds.
    pub p99_us: f64,
    /// Largest, in microseconds.
    pub max_us: f64,
}

/// Where the traced records spent their time between the two workers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTimeline {
    /// One record in this many of each outbound ring was traced.
    pub sample_every: u64,
    /// Traced records stamped from the executor's write to the receiving executor's read.
    pub complete_records: u64,
    /// Each stage after the one before it, then `socket-read → credit-sent` and
    /// `write → executor-read`.
    pub intervals: Vec<StageInterval>,
}

/// A traced record: its sending and receiving worker and its ordinal on their connection.
type RecordKey = (u64, u64, u64);

/// The stamps of each traced record, joined from any number of workers' stamp lines.
#[derive(Debug, Default)]
pub struct Stamps {
    records: HashMap<RecordKey, [Option<u64>; STAGES.len()]>,
}

impl Stamps {
    /// Adds the stamps of one worker, one per line; blank lines are skipped.
    ///
    /// # Errors
    /// When a line is not `from to ordinal stage nanoseconds` with a known stage.
    pub fn add_lines(&mut self, text: &str) -> anyhow::Result<()> {
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let parsed = parse_line(line).with_context(|| format!("stage stamp {line:?}"))?;
            let (key, stage, ns) = parsed;
            self.records.entry(key).or_default()[stage] = Some(ns);
        }
        Ok(())
    }

    /// The summary of every interval; intervals no record passed are left out.
    pub fn timeline(&self, sample_every: u64) -> StageTimeline {
        let complete_records = self
            .records
            .values()
            .filter(|stamps| stamps[0].is_some() && stamps[7].is_some())
            .count() as u64;
        let intervals = TRANSITIONS
            .iter()
            .filter_map(|&(from, to)| {
                let mut nanos: Vec<u64> = self
                    .records
                    .values()
                    .filter_map(|stamps| Some(stamps[to]?.saturating_sub(stamps[from]?)))
                    .collect();
                summarise(&mut nanos).map(|(median, p90, p99, max)| StageInterval {
                    from: STAGES[from].to_owned(),
                    to: STAGES[to].to_owned(),
                    records: nanos.len() as u64,
                    mean_us: micros(nanos.iter().sum::<u64>()) / nanos.len() as f64,
                    median_us: micros(median),
                    p90_us: micros(p90),
                    p99_us: micros(p99),
                    max_us: micros(max),
                })
            })
            .collect();
        StageTimeline {
            sample_every,
            complete_records,
            intervals,
        }
    }
}

fn parse_line(line: &str) -> anyhow::Result<(RecordKey, usize, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [from, to, ordinal, stage, ns] = fields[..] else {
        bail!("expected 5 fields, found {}", fields.len());
    };
    let Some(stage) = STAGES.iter().position(|name| *name == stage) else {
        bail!("unknown stage {stage:?}");
    };
    Ok((
        (from.parse()?, to.parse()?, ordinal.parse()?),
        stage,
        ns.parse()?,
    ))
}

/// Median, 90th and 99th percentile (nearest rank) and largest of `nanos`, which it sorts.
fn summarise(nanos: &mut [u64]) -> Option<(u64, u64, u64, u64)> {
    nanos.sort_unstable();
    let last = *nanos.last()?;
    let rank = |quantile: f64| {
        let rank = (quantile * nanos.len() as f64).ceil() as usize;
        nanos[rank.clamp(1, nanos.len()) - 1]
    };
    Some((rank(0.5), rank(0.9), rank(0.99), last))
}

fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1_000.0
}

impl StageTimeline {
    /// The timeline as an indented table, for under the scenario's row.
    pub fn table(&self) -> String {
        let mut text = format!(
            "  stage timeline: 1 record in {} traced, {} from write to executor read\n",
            self.sample_every, self.complete_records
        );
        let _ = writeln!(
            text,
            "    {:<34} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "interval", "records", "mean µs", "median µs", "p90 µs", "p99 µs", "max µs"
        );
        for interval in &self.intervals {
            let name = format!("{} → {}", interval.from, interval.to);
            let _ = writeln!(
                text,
                "    {name:<34} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                interval.records,
                interval.mean_us,
                interval.median_us,
                interval.p90_us,
                interval.p99_us,
                interval.max_us
            );
        }
        text.pop();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stamps of one record passing every stage, `step` ns apart, from `start`.
    fn record(ordinal: u64, start: u64, step: u64) -> String {
        STAGES
            .iter()
            .enumerate()
            .map(|(i, stage)| format!("1 2 {ordinal} {stage} {}\n", start + i as u64 * step))
            .collect()
    }

    #[test]
    fn stamps_from_both_workers_join_by_record() {
        let all = record(0, 1_000, 1_000);
        // The sending worker stamps the first four stages, the receiving one the rest.
        let (sender, receiver): (Vec<&str>, Vec<&str>) = all
            .lines()
            .partition(|line| STAGES[..4].contains(&line.split(' ').nth(3).unwrap()));
        let mut stamps = Stamps::default();
        stamps.add_lines(&receiver.join("\n")).unwrap();
        stamps.add_lines(&sender.join("\n")).unwrap();
        let timeline = stamps.timeline(1024);
        assert_eq!(timeline.complete_records, 1);
        assert_eq!(timeline.intervals.len(), TRANSITIONS.len());
        let whole = timeline.intervals.last().unwrap();
        assert_eq!(
            (whole.from.as_str(), whole.to.as_str()),
            ("write", "executor-read")
        );
        assert_eq!((whole.median_us, whole.mean_us), (7.0, 7.0));
        let credit = &timeline.intervals[7];
        assert_eq!(
            (credit.from.as_str(), credit.to.as_str()),
            ("socket-read", "credit-sent")
        );
        assert_eq!(credit.max_us, 4.0);
    }

    #[test]
    fn intervals_count_only_records_stamped_at_both_ends() {
        let mut stamps = Stamps::default();
        stamps
            .add_lines(&(record(0, 0, 1_000) + &record(1, 0, 3_000)))
            .unwrap();
        // A record whose sender stamps were cleared before the run's window.
        stamps
            .add_lines("1 2 2 socket-read 5000\n1 2 2 inbound-write 6000\n")
            .unwrap();
        // The same ordinal on another connection is another record.
        stamps.add_lines("2 1 0 write 0\n").unwrap();
        let timeline = stamps.timeline(1);
        assert_eq!(timeline.complete_records, 2);
        let first = &timeline.intervals[0];
        assert_eq!((first.records, first.mean_us), (2, 2.0));
        let arrival = &timeline.intervals[4];
        assert_eq!((arrival.from.as_str(), arrival.records), ("socket-read", 3));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut nanos: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(summarise(&mut nanos), Some((50, 90, 99, 100)));
        assert_eq!(summarise(&mut [7]), Some((7, 7, 7, 7)));
        assert_eq!(summarise(&mut []), None);
    }

    #[test]
    fn an_interval_no_record_passed_is_left_out() {
        let mut stamps = Stamps::default();
        stamps
            .add_lines("1 2 0 write 10\n1 2 0 publish 20\n")
            .unwrap();
        let timeline = stamps.timeline(8);
        assert_eq!(timeline.intervals.len(), 1);
        assert_eq!(timeline.complete_records, 0);
        assert!(timeline.table().contains("write → publish"));
    }

    #[test]
    fn malformed_lines_are_refused() {
        let mut stamps = Stamps::default();
        assert!(stamps.add_lines("1 2 0 teleported 10").is_err());
        assert!(stamps.add_lines("1 2 0 write").is_err());
        assert!(stamps.add_lines("1 2 x write 10").is_err());
    }

    #[cfg(feature = "stage-trace")]
    #[test]
    fn stage_names_are_those_the_workers_write() {
        let names: Vec<&str> = squall::stage_trace::Stage::ALL
            .iter()
            .map(|stage| stage.name())
            .collect();
        assert_eq!(names, STAGES);
    }
}
