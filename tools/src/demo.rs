//! `squall demo wordcount`: the built-in sentence word count, run locally with live progress
//! and a checked summary.

use std::time::Duration;

use anyhow::Context;
use squall::TopologyConfig;
use squall::builtin::components::SourceOptions;
use squall::builtin::pacing::TuplesPerSecond;
use squall::builtin::topologies::{self, BuiltinOptions};

use crate::args::RateSpec;
use crate::cli::WordcountDemoArgs;
use crate::format;
use crate::measure::measure;
use crate::progress::{ProgressLine, ProgressStyle};

/// Runs the demo; returns the summary lines.
///
/// # Errors
/// When the topology fails, does not drain, or counts a word wrong.
pub fn wordcount(args: &WordcountDemoArgs) -> anyhow::Result<Vec<String>> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rate = match args.rate {
        Some(RateSpec::PerSecond(rate)) => TuplesPerSecond::new(rate),
        Some(RateSpec::FractionOfMax(_)) => {
            anyhow::bail!(
                "--rate for the demo takes sentences per second, not a share of the maximum"
            )
        }
        None => None,
    };
    let options = BuiltinOptions {
        config: TopologyConfig::default().with_max_spout_pending(10_000),
        source: SourceOptions {
            rate,
            tracked: true,
            stamp_every: 64,
            ..SourceOptions::default()
        },
        spouts: 1,
        middle: 1,
        sinks: args.counters as usize,
        vocabulary: args.words,
        sentence_words: args.sentence_words as usize,
    };
    let built =
        topologies::sentence_wordcount("wordcount", &options).context("building the word count")?;
    let style = if args.quiet {
        ProgressStyle::Silent
    } else {
        ProgressStyle::for_stdout()
    };
    let mut progress = ProgressLine::new(style);
    if !args.quiet {
        println!(
            "squall: word count (sentences -> split -> count by word, every sentence tracked) on {cores} cores for {}",
            args.duration
        );
    }
    let measured = measure(
        &built,
        "wordcount",
        Duration::from_millis(500),
        args.duration.get(),
        &mut progress,
    )?;
    let counts = measured
        .counts
        .context("the word count reports its counts")?;
    let latency = squall::metrics::LatencySummary::of(&measured.latency);
    let complete = squall::metrics::LatencySummary::of(&measured.complete_latency);
    Ok(vec![
        format!(
            "words counted    {:>12} over {:.1}s ({} executor threads, {})",
            format::rate(measured.rate()),
            measured.seconds,
            measured.threads,
            if measured.pinned {
                "pinned"
            } else {
                "not pinned"
            }
        ),
        format!(
            "word latency     p50 {}  p99 {}  p99.9 {}  max {}",
            format::latency(latency.p50),
            format::latency(latency.p99),
            format::latency(latency.p999),
            format::latency(latency.max)
        ),
        format!(
            "sentence trees   p50 {}  p99 {} from emit to ack; {} failed",
            format::latency(complete.p50),
            format::latency(complete.p99),
            measured.failed
        ),
        format!(
            "counts           exact: {} words, {} distinct, spread over {} counters",
            format::count(counts.total),
            counts.distinct_words,
            counts.busy_counters
        ),
    ])
}
