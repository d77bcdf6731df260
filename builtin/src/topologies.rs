//! The built-in topologies of the demo and the benchmark tool, with the probes that measure
//! and check them.

use std::sync::Arc;

use super::components::{
    ConstSpout, CountBolt, IdentityBolt, NullBolt, PayloadSpout, SentenceSpout, SinkProbes,
    SourceOptions, SplitBolt, WordSpout,
};
use super::probe::WordCountProbe;
use super::stateful::StatefulCountBolt;
use super::windowed::WindowedCountBolt;
use super::words::{DEFAULT_VOCABULARY_SIZE, Vocabulary};
use squall_core::state::Checkpointing;
use squall_core::window::WindowSpec;
use squall_core::{Topology, TopologyBuilder, TopologyConfig, TopologyError};

/// Shape and settings of a built-in topology.
#[derive(Debug, Clone)]
pub struct BuiltinOptions {
    /// Settings of the topology (acking is on when `config.ackers` is not `Some(0)` and
    /// `source.tracked` is set).
    pub config: TopologyConfig,
    /// How the sources emit.
    pub source: SourceOptions,
    /// Source executors.
    pub spouts: usize,
    /// Executors of the middle step (identity, split), where there is one.
    pub middle: usize,
    /// Sink (or counter) executors.
    pub sinks: usize,
    /// Distinct words of the word counts.
    pub vocabulary: u32,
    /// Words per sentence in the demo.
    pub sentence_words: usize,
}

impl Default for BuiltinOptions {
    fn default() -> Self {
        Self {
            config: TopologyConfig::default().with_ackers(0),
            source: SourceOptions::default(),
            spouts: 1,
            middle: 1,
            sinks: 1,
            vocabulary: DEFAULT_VOCABULARY_SIZE,
            sentence_words: 8,
        }
    }
}

/// A built-in topology and its probes.
#[derive(Debug, Clone)]
pub struct BuiltinTopology {
    /// The topology, ready to run.
    pub topology: Arc<Topology>,
    /// Switch, rate and counters of its sources.
    pub source: SourceOptions,
    /// What its sinks measured.
    pub sinks: SinkProbes,
    /// For word counts: the tallies and counts to check exactly.
    pub words: Option<WordCountProbe>,
    /// Whether its sinks hold tuples for a while before they count them (in windows): a
    /// measurement then waits, once the sources stop, until every emitted tuple is counted.
    pub sinks_hold_tuples: bool,
}

/// Constant spout → null bolt.
///
/// # Errors
/// When the options make an invalid topology (zero parallelism, bad configuration).
pub fn const_null(name: &str, options: &BuiltinOptions) -> Result<BuiltinTopology, TopologyError> {
    let sinks = SinkProbes::default();
    let mut builder = TopologyBuilder::new();
    let source = options.source.clone();
    builder.set_spout(
        "const",
        move || ConstSpout::new(1, source.clone()),
        options.spouts,
    );
    let probes = sinks.clone();
    builder
        .set_bolt("null", move || NullBolt::new(&probes), options.sinks)
        .shuffle_grouping("const");
    finish(builder, name, options, sinks, None)
}

/// Payload spout → null bolt: tuples of one exact encoded size, `record_len` bytes (at least
/// [`PayloadSpout::record_len`]`(0)`), e.g. for measuring bytes moved between workers.
///
/// # Errors
/// When the options make an invalid topology, or `record_len` is too small.
pub fn payload_null(
    name: &str,
    record_len: usize,
    options: &BuiltinOptions,
) -> Result<BuiltinTopology, TopologyError> {
    let payload_len =
        PayloadSpout::payload_len_for(record_len).ok_or_else(|| TopologyError::InvalidConfig {
            setting: "record_len",
            value: record_len.to_string(),
            reason: "is smaller than a record with an empty payload and a stamp",
        })?;
    let sinks = SinkProbes::default();
    let mut builder = TopologyBuilder::new();
    let source = options.source.clone();
    builder.set_spout(
        "payload",
        move || PayloadSpout::new(payload_len, source.clone()),
        options.spouts,
    );
    let probes = sinks.clone();
    builder
        .set_bolt("null", move || NullBolt::new(&probes), options.sinks)
        .shuffle_grouping("payload");
    finish(builder, name, options, sinks, None)
}

/// Constant spout → identity bolt → null bolt.
///
/// # Errors
/// When the options make an invalid topology.
pub fn const_id_null(
    name: &str,
    options: &BuiltinOptions,
) -> Result<BuiltinTopology, TopologyError> {
    let sinks = SinkProbes::default();
    let mut builder = TopologyBuilder::new();
    let source = options.source.clone();
    builder.set_spout(
        "const",
        move || ConstSpout::new(1, source.clone()),
        options.spouts,
    );
    builder
        .set_bolt("identity", || IdentityBolt, options.middle)
        .shuffle_grouping("const");
    let probes = sinks.clone();
    builder
        .set_bolt("null", move || NullBolt::new(&probes), options.sinks)
        .shuffle_grouping("identity");
    finish(builder, name, options, sinks, None)
}

/// A builder holding the word counts' spouts ("words", emitting word ids, or strings when
/// `spelled`), with the probe that checks the counts and the sinks' probes.
fn word_source(
    spelled: bool,
    options: &BuiltinOptions,
) -> (TopologyBuilder, WordCountProbe, SinkProbes) {
    let probe = WordCountProbe::new(Vocabulary::new(options.vocabulary));
    let mut builder = TopologyBuilder::new();
    let (source, spout_probe) = (options.source.clone(), probe.clone());
    builder.set_spout(
        "words",
        move || {
            if spelled {
                WordSpout::spelled(1, spout_probe.clone(), source.clone())
            } else {
                WordSpout::ids(1, spout_probe.clone(), source.clone())
            }
        },
        options.spouts,
    );
    (builder, probe, SinkProbes::default())
}

/// Word spout → fields grouping on the word → count bolts; word ids (`spelled` false) or
/// strings.
///
/// # Errors
/// When the options make an invalid topology.
pub fn wordcount(
    name: &str,
    spelled: bool,
    options: &BuiltinOptions,
) -> Result<BuiltinTopology, TopologyError> {
    let (mut builder, probe, sinks) = word_source(spelled, options);
    let (count_probe, probes) = (probe.clone(), sinks.clone());
    builder
        .set_bolt(
            "count",
            move || CountBolt::new(count_probe.clone(), &probes),
            options.sinks,
        )
        .fields_grouping("words", &["word"]);
    finish(builder, name, options, sinks, Some(probe))
}

/// The word count of [`wordcount`] (u64 ids) with windowed counters: each count task
/// counts its input window by window, in windows shaped by `spec`.
///
/// # Errors
/// When the options make an invalid topology.
pub fn wordcount_windowed(
    name: &str,
    spec: &WindowSpec,
    options: &BuiltinOptions,
) -> Result<BuiltinTopology, TopologyError> {
    let (mut builder, probe, sinks) = word_source(false, options);
    let (count_probe, probes) = (probe.clone(), sinks.clone());
    builder
        .set_windowed_bolt(
            "count",
            move || WindowedCountBolt::new(count_probe.clone(), &probes),
            options.sinks,
            spec,
        )
        .fields_grouping("words", &["word"]);
    let mut built = finish(builder, name, options, sinks, Some(probe))?;
    built.sinks_hold_tuples = true;
    Ok(built)
}

/// Sentence spout → split bolt (shuffle) → count bolts (fields grouping on the word).
///
/// # Errors
/// When the options make an invalid topology.
pub fn sentence_wordcount(
    name: &str,
    options: &BuiltinOptions,
) -> Result<BuiltinTopology, TopologyError> {
    let sinks = SinkProbes::default();
    let probe = WordCountProbe::new(Vocabulary::new(options.vocabulary));
    let mut builder = TopologyBuilder::new();
    let (source, spout_probe, words) = (
        options.source.clone(),
        probe.clone(),
        options.sentence_words,
    );
    builder.set_spout(
        "sentences",
        move || SentenceSpout::new(1, words, spout_probe.clone(), source.clone()),
        options.spouts,
    );
    builder
        .set_bolt("split", || SplitBolt, options.middle)
        .shuffle_grouping("sentences");
    let (count_probe, probes) = (probe.clone(), sinks.clone());
    builder
        .set_bolt(
            "count",
            move || CountBolt::new(count_probe.clone(), &probes),
            options.sinks,
        )
        .fields_grouping("split", &["word"]);
    finish(builder, name, options, sinks, Some(probe))
}

/// The word count of [`wordcount`] (u64 ids) with its counts in checkpointed state
/// ([`squall_core::state`]), checkpointed as `checkpointing` says.
///
/// # Errors
/// When the options make an invalid topology.
pub fn wordcount_stateful(
    name: &str,
    checkpointing: Checkpointing,
    options: &BuiltinOptions,
) -> Result<BuiltinTopology, TopologyError> {
    let (mut builder, probe, sinks) = word_source(false, options);
    let (count_probe, probes) = (probe.clone(), sinks.clone());
    builder.checkpointing(checkpointing);
    builder
        .set_stateful_bolt(
            "count",
            move || StatefulCountBolt::new(count_probe.clone(), &probes),
            options.sinks,
        )
        .fields_grouping("words", &["word"]);
    finish(builder, name, options, sinks, Some(probe))
}

fn finish(
    builder: TopologyBuilder,
    name: &str,
    options: &BuiltinOptions,
    sinks: SinkProbes,
    words: Option<WordCountProbe>,
) -> Result<BuiltinTopology, TopologyError> {
    Ok(BuiltinTopology {
        topology: builder.build(name, options.config.clone())?,
        source: options.source.clone(),
        sinks,
        words,
        sinks_hold_tuples: false,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use squall_core::tuple::encode_record;
    use squall_core::{TaskId, Value};

    #[test]
    fn payload_records_have_the_size_asked_for() {
        assert_eq!(PayloadSpout::record_len(70), 100);
        assert_eq!(PayloadSpout::payload_len_for(100), Some(70));
        let mut record = Vec::new();
        encode_record(
            &mut record,
            TaskId(2),
            TaskId(1),
            16,
            &[],
            &[Value::Bytes(&[7; 70]), Value::U64(42)],
        );
        assert_eq!(record.len(), 100);
        let error = payload_null(
            "p",
            PayloadSpout::record_len(0) - 1,
            &BuiltinOptions::default(),
        )
        .expect_err("no room for the stamp");
        assert!(error.to_string().contains("record_len"), "{error}");
    }

    #[test]
    fn payload_tuples_reach_the_sink_with_stamps() {
        let mut options = BuiltinOptions::default();
        options.source.stamp_every = 1;
        let built = payload_null("payload", 100, &options).expect("valid");
        let running = squall_core::run(Arc::clone(&built.topology)).expect("starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while built.sinks.received.total() < 1_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        built.source.switch.turn_off();
        let report = running.kill(Duration::from_secs(10));
        assert!(report.drained && report.errors.is_empty(), "{report:?}");
        assert_eq!(built.sinks.received.total(), built.source.emitted.total());
        assert!(built.sinks.latency.summary().samples >= 1_000);
    }
}
