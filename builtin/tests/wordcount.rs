//! Word counts on running topologies are exact, whatever the threads, parallelism, encoding
//! and tracking.

use std::time::Duration;

use squall_builtin::topologies::{self, BuiltinOptions, BuiltinTopology};
use squall_core::{Chaining, TopologyConfig};

fn run(built: BuiltinTopology, for_how_long: Duration) -> u64 {
    let running = squall_core::run(built.topology.clone()).unwrap();
    std::thread::sleep(for_how_long);
    built.source.switch.turn_off();
    let report = running.kill(Duration::from_secs(60));
    assert!(report.drained, "in-flight words were all counted");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let check = built.words.unwrap().verify().expect("counts are exact");
    assert!(check.total > 10_000, "only {} words counted", check.total);
    check.total
}

fn options(chaining: Chaining, spouts: usize, sinks: usize, tracked: bool) -> BuiltinOptions {
    let mut options = BuiltinOptions {
        config: TopologyConfig::default()
            .with_chaining(chaining)
            .with_ackers(usize::from(tracked)),
        spouts,
        middle: 2,
        sinks,
        ..BuiltinOptions::default()
    };
    options.source.tracked = tracked;
    options
}

#[test]
fn word_ids_counted_exactly_on_separate_threads() {
    let built =
        topologies::wordcount("wc-ids", false, &options(Chaining::Never, 2, 3, false)).unwrap();
    run(built, Duration::from_millis(300));
}

#[test]
fn spelled_words_counted_exactly_on_one_thread() {
    let built =
        topologies::wordcount("wc-str", true, &options(Chaining::Threads(1), 1, 4, false)).unwrap();
    run(built, Duration::from_millis(300));
}

/// Each thread runs a spout and a counter; records cross between the threads both ways.
#[test]
fn word_ids_counted_exactly_with_slot_sharing_and_tracking() {
    let built =
        topologies::wordcount("wc-slots", false, &options(Chaining::Lanes(2), 2, 2, true)).unwrap();
    let failed = built.source.failed.clone();
    run(built, Duration::from_millis(300));
    assert_eq!(failed.total(), 0, "no tree failed");
}

#[test]
fn sentences_split_and_counted_exactly_with_tracking() {
    let options = options(Chaining::Auto, 2, 3, true);
    let built = topologies::sentence_wordcount("wc-sentences", &options).unwrap();
    let failed = built.source.failed.clone();
    run(built, Duration::from_millis(300));
    assert_eq!(failed.total(), 0, "no tree failed");
}

#[test]
fn more_tasks_than_executors() {
    let mut options = options(Chaining::Threads(2), 1, 2, true);
    options.vocabulary = 500;
    let mut built = topologies::wordcount("wc-tasks", false, &options).unwrap();
    // Rebuild with more count tasks than executors.
    let probe = built.words.clone().unwrap();
    let sinks = built.sinks.clone();
    let source = built.source.clone();
    let mut builder = squall_core::TopologyBuilder::new();
    let (spout_probe, spout_source) = (probe.clone(), source.clone());
    builder.set_spout(
        "words",
        move || {
            squall_builtin::components::WordSpout::ids(3, spout_probe.clone(), spout_source.clone())
        },
        1,
    );
    let (count_probe, count_sinks) = (probe.clone(), sinks.clone());
    builder
        .set_bolt(
            "count",
            move || squall_builtin::components::CountBolt::new(count_probe.clone(), &count_sinks),
            2,
        )
        .tasks(7)
        .fields_grouping("words", &["word"]);
    built.topology = builder.build("wc-tasks", options.config.clone()).unwrap();
    run(built, Duration::from_millis(300));
}
