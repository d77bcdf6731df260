//! A topology is validated before anything runs; every error names what is wrong.

mod common;

use std::sync::Arc;

use common::{Counter, SeqSpout, SpoutCounts};
use squall_core::{
    Grouping, OutputDeclarer, Spout, SpoutOutput, TopologyBuilder, TopologyConfig, TopologyError,
};

fn spout() -> SeqSpout {
    SeqSpout::new(0, 1, Arc::new(SpoutCounts::default()))
}

/// A spout with a direct stream "d" and a normal stream "normal".
struct TwoStreams;

impl Spout for TwoStreams {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare_direct_stream("d", &["x"]);
        declarer.declare_stream("normal", &["x", "y"]);
    }

    fn next_tuple(&mut self, _output: &mut SpoutOutput<'_>) {}
}

fn error_of(builder: TopologyBuilder) -> TopologyError {
    builder.build("t", TopologyConfig::default()).unwrap_err()
}

#[test]
fn unknown_component() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 1);
    builder
        .set_bolt("sink", Counter::default, 1)
        .shuffle_grouping("srcc");
    assert_eq!(
        error_of(builder).to_string(),
        "bolt \"sink\" subscribes to unknown component \"srcc\""
    );
}

#[test]
fn unknown_stream() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || TwoStreams, 1);
    builder
        .set_bolt("sink", Counter::default, 1)
        .shuffle_grouping("src");
    assert_eq!(
        error_of(builder).to_string(),
        "bolt \"sink\" subscribes to stream \"default\" of \"src\", which declares only [\"d\", \"normal\"]"
    );
}

#[test]
fn fields_grouping_on_an_undeclared_field() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || TwoStreams, 1);
    builder.set_bolt("sink", Counter::default, 1).grouping_on(
        "src",
        "normal",
        Grouping::Fields(vec!["z".into()]),
    );
    assert_eq!(
        error_of(builder).to_string(),
        "bolt \"sink\" groups stream \"normal\" of \"src\" by field \"z\", but the stream's fields are [\"x\", \"y\"]"
    );
}

#[test]
fn partial_key_grouping_on_an_undeclared_field() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 1);
    builder
        .set_bolt("sink", Counter::default, 1)
        .partial_key_grouping("src", &["word"]);
    assert!(
        matches!(error_of(builder), TopologyError::UnknownField { field, .. } if field == "word")
    );
}

#[test]
fn duplicate_ids() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("x", spout, 1);
    builder
        .set_bolt("x", Counter::default, 1)
        .shuffle_grouping("x");
    assert_eq!(
        error_of(builder).to_string(),
        "component id \"x\" is declared twice"
    );
}

#[test]
fn zero_parallelism() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 0);
    assert_eq!(
        error_of(builder).to_string(),
        "component \"src\" has parallelism 0: it needs at least one executor"
    );
}

#[test]
fn fewer_tasks_than_executors() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 4).tasks(2);
    assert_eq!(
        error_of(builder).to_string(),
        "component \"src\" has 2 tasks for 4 executors: every executor needs at least one task"
    );
}

#[test]
fn too_many_tasks_for_one_component() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 200_000_000);
    assert_eq!(
        error_of(builder).to_string(),
        "component \"src\" asks for 200000000 tasks, more than the limit of 65536 per component"
    );
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 1).tasks(65_537);
    assert!(matches!(
        error_of(builder),
        TopologyError::TooManyTasks { limit: 65_536, .. }
    ));
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 1).tasks(65_536);
    assert!(builder.build("t", TopologyConfig::default()).is_ok());
}

#[test]
fn direct_grouping_on_a_stream_not_declared_direct() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || TwoStreams, 1);
    builder
        .set_bolt("sink", Counter::default, 1)
        .direct_grouping("src", "normal");
    assert_eq!(
        error_of(builder).to_string(),
        "bolt \"sink\" uses direct grouping on stream \"normal\" of \"src\", which is not declared direct"
    );
}

#[test]
fn other_groupings_on_a_direct_stream() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", || TwoStreams, 1);
    builder
        .set_bolt("sink", Counter::default, 1)
        .grouping_on("src", "d", Grouping::Shuffle);
    assert_eq!(
        error_of(builder).to_string(),
        "bolt \"sink\" uses shuffle grouping on stream \"d\" of \"src\", which is declared direct and needs direct grouping"
    );
}

#[test]
fn reserved_and_empty_names() {
    let mut builder = TopologyBuilder::new();
    builder.set_spout("__acker", spout, 1);
    assert!(matches!(
        error_of(builder),
        TopologyError::InvalidComponentId { .. }
    ));
    let mut builder = TopologyBuilder::new();
    builder
        .set_spout("src", spout, 1)
        .output_stream("__tick", &["x"]);
    assert_eq!(
        error_of(builder).to_string(),
        "component \"src\" declares stream \"__tick\": stream names must be non-empty and not start with \"__\""
    );
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 1);
    assert!(matches!(
        builder.build("bad name!", TopologyConfig::default()),
        Err(TopologyError::InvalidTopologyName { .. })
    ));
}

#[test]
fn duplicate_streams_fields_and_subscriptions() {
    let mut builder = TopologyBuilder::new();
    builder
        .set_spout("src", spout, 1)
        .output_stream("default", &["again"]);
    assert_eq!(
        error_of(builder).to_string(),
        "component \"src\" declares stream \"default\" twice"
    );
    let mut builder = TopologyBuilder::new();
    builder
        .set_spout("src", spout, 1)
        .output_stream("s", &["a", "a"]);
    assert_eq!(
        error_of(builder).to_string(),
        "stream \"s\" of component \"src\" declares field \"a\" twice"
    );
    let mut builder = TopologyBuilder::new();
    builder.set_spout("src", spout, 1);
    builder
        .set_bolt("sink", Counter::default, 1)
        .shuffle_grouping("src")
        .all_grouping("src");
    assert_eq!(
        error_of(builder).to_string(),
        "bolt \"sink\" subscribes to stream \"default\" of \"src\" twice"
    );
}

#[test]
fn a_topology_needs_a_spout() {
    let mut builder = TopologyBuilder::new();
    builder.set_bolt("lonely", Counter::default, 1);
    assert_eq!(error_of(builder).to_string(), "topology \"t\" has no spout");
}

#[test]
fn bad_configuration_is_named() {
    let build = |config: TopologyConfig| {
        let mut builder = TopologyBuilder::new();
        builder.set_spout("src", spout, 1);
        builder.build("t", config).unwrap_err().to_string()
    };
    assert_eq!(
        build(TopologyConfig::default().with_workers(0)),
        "invalid configuration: workers = 0: a topology needs at least one worker"
    );
    assert_eq!(
        build(TopologyConfig {
            ring_bytes: 100,
            ..TopologyConfig::default()
        }),
        "invalid configuration: ring_bytes = 100: rings need at least 4096 bytes"
    );
    assert_eq!(
        build(TopologyConfig::default().with_message_timeout(std::time::Duration::ZERO)),
        "invalid configuration: message_timeout = 0s: must be longer than zero"
    );
}

#[test]
fn ids_are_deterministic() {
    let make = || {
        let mut builder = TopologyBuilder::new();
        builder
            .set_bolt("b", Counter::default, 2)
            .shuffle_grouping("a");
        builder.set_spout("a", spout, 3).tasks(5);
        builder.build("t", TopologyConfig::default()).unwrap()
    };
    let (one, two) = (make(), make());
    for topology in [&one, &two] {
        let a: Vec<u32> = topology
            .component("a")
            .unwrap()
            .task_ids()
            .map(|t| t.0)
            .collect();
        let b: Vec<u32> = topology
            .component("b")
            .unwrap()
            .task_ids()
            .map(|t| t.0)
            .collect();
        assert_eq!(a, [1, 2, 3, 4, 5]);
        assert_eq!(b, [6, 7]);
        assert_eq!(
            topology
                .acker()
                .unwrap()
                .task_ids()
                .map(|t| t.0)
                .collect::<Vec<_>>(),
            [8]
        );
        let executors: Vec<_> = topology
            .executors()
            .iter()
            .map(|e| e.tasks.clone())
            .collect();
        assert_eq!(executors, [1..3, 3..5, 5..6, 6..7, 7..8, 8..9]);
    }
}
