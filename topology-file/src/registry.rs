//! The built-in components a topology file can name, and how embedders add their own.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map as JsonMap, Value as JsonValue};

use super::components::{FieldCountBolt, LinesSpout};
use squall_builtin::components::{
    ConstSpout, CountBolt, IdentityBolt, NullBolt, SentenceSpout, SinkProbes, SourceOptions,
    SplitBolt, WordSpout,
};
use squall_builtin::pacing::TuplesPerSecond;
use squall_builtin::probe::WordCountProbe;
use squall_builtin::words::{DEFAULT_VOCABULARY_SIZE, Vocabulary};
use squall_core::component::{Bolt, ComponentError, Spout};
use squall_core::context::TopologyContext;
use squall_core::ids::MessageId;
use squall_core::replay::{ReplayStats, ReplayingSpout};
use squall_core::runtime::{BoltOutput, SpoutOutput, Tuple};
use squall_core::state::{ReplayableSpout, StatefulBolt};
use squall_core::topology::OutputDeclarer;

/// Makes one spout instance per task.
pub type SpoutFactory = Arc<dyn Fn() -> Box<dyn Spout> + Send + Sync>;

/// Makes one bolt instance per task.
pub type BoltFactory = Arc<dyn Fn() -> Box<dyn Bolt> + Send + Sync>;

/// Makes one replayable spout instance per task (a source of checkpointed topologies).
pub type ReplayableSpoutFactory = Arc<dyn Fn() -> Box<dyn ReplayableSpout> + Send + Sync>;

/// Makes one stateful bolt instance per task.
pub type StatefulBoltFactory = Arc<dyn Fn() -> Box<dyn StatefulBolt> + Send + Sync>;

/// What a built-in gets from the file to make its factory.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinArgs<'a> {
    /// The component's id.
    pub component: &'a str,
    /// Its `params`.
    pub params: &'a JsonMap<String, JsonValue>,
    /// The directory relative paths in params are resolved against.
    pub base_dir: &'a Path,
    /// Its number of tasks.
    pub tasks: usize,
}

impl BuiltinArgs<'_> {
    /// The params as `T` (a struct that denies unknown fields names the wrong ones).
    ///
    /// # Errors
    /// The deserializer's message: unknown, missing or ill-typed params.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(JsonValue::Object(self.params.clone()))
            .map_err(|error| error.to_string())
    }

    /// `path` resolved against the base directory.
    pub fn path(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// Makes the factory of a built-in spout from its params.
pub type SpoutMaker = Arc<dyn Fn(&BuiltinArgs<'_>) -> Result<SpoutFactory, String> + Send + Sync>;

/// Makes the factory of a built-in bolt from its params.
pub type BoltMaker = Arc<dyn Fn(&BuiltinArgs<'_>) -> Result<BoltFactory, String> + Send + Sync>;

/// Makes the factory of a built-in replayable spout from its params.
pub type ReplayableSpoutMaker =
    Arc<dyn Fn(&BuiltinArgs<'_>) -> Result<ReplayableSpoutFactory, String> + Send + Sync>;

/// Makes the factory of a built-in stateful bolt from its params.
pub type StatefulBoltMaker =
    Arc<dyn Fn(&BuiltinArgs<'_>) -> Result<StatefulBoltFactory, String> + Send + Sync>;

/// One registered built-in.
#[derive(Clone)]
struct Entry<M> {
    maker: M,
    summary: &'static str,
}

/// The components a topology file may name with `builtin:`. [`with_builtins`] holds
/// Squall's own; an embedding program adds its components with [`add_spout`] and
/// [`add_bolt`].
///
/// [`with_builtins`]: ComponentRegistry::with_builtins
/// [`add_spout`]: ComponentRegistry::add_spout
/// [`add_bolt`]: ComponentRegistry::add_bolt
#[derive(Clone, Default)]
pub struct ComponentRegistry {
    spouts: BTreeMap<String, Entry<SpoutMaker>>,
    bolts: BTreeMap<String, Entry<BoltMaker>>,
    /// Spouts that can go back to a position: in a file with a `checkpoint` section they
    /// are used instead of a plain spout of the same name.
    replayable_spouts: BTreeMap<String, Entry<ReplayableSpoutMaker>>,
    stateful_bolts: BTreeMap<String, Entry<StatefulBoltMaker>>,
}

impl fmt::Debug for ComponentRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentRegistry")
            .field("spouts", &self.spouts.keys().collect::<Vec<_>>())
            .field("bolts", &self.bolts.keys().collect::<Vec<_>>())
            .field(
                "replayable_spouts",
                &self.replayable_spouts.keys().collect::<Vec<_>>(),
            )
            .field(
                "stateful_bolts",
                &self.stateful_bolts.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A boxed spout as a spout.
struct DynSpout(Box<dyn Spout>);

impl Spout for DynSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.0.declare_outputs(declarer);
    }
    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.0.open(context)
    }
    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        self.0.next_tuple(output);
    }
    fn ack(&mut self, message: MessageId, output: &mut SpoutOutput<'_>) {
        self.0.ack(message, output);
    }
    fn fail(&mut self, message: MessageId, output: &mut SpoutOutput<'_>) {
        self.0.fail(message, output);
    }
    fn activate(&mut self) {
        self.0.activate();
    }
    fn deactivate(&mut self) {
        self.0.deactivate();
    }
    fn close(&mut self) {
        self.0.close();
    }
}

/// A boxed bolt as a bolt.
struct DynBolt(Box<dyn Bolt>);

impl Bolt for DynBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.0.declare_outputs(declarer);
    }
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.0.prepare(context)
    }
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.0.execute(input, output);
    }
    fn poll(&mut self, output: &mut BoltOutput<'_>) -> bool {
        self.0.poll(output)
    }
    fn wants_poll(&self) -> bool {
        self.0.wants_poll()
    }
    fn cleanup(&mut self) {
        self.0.cleanup();
    }
}

/// A spout instance from a factory, as the topology builder takes it.
pub(crate) fn spout_of(factory: &SpoutFactory) -> impl Spout + use<> {
    DynSpout(factory())
}

/// A bolt instance from a factory, as the topology builder takes it.
pub(crate) fn bolt_of(factory: &BoltFactory) -> impl Bolt + use<> {
    DynBolt(factory())
}

impl ComponentRegistry {
    /// No components at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Squall's built-in components (see `docs/topology-files.md`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::empty();
        register_builtins(&mut registry);
        crate::stateful::register_stateful(&mut registry);
        crate::drpc::register_drpc(&mut registry, crate::drpc::DrpcDefaults::default());
        crate::connectors::register_connectors(&mut registry);
        registry
    }

    /// The DRPC components use `defaults` for the servers their params do not name and for
    /// the cluster secret (local mode gives its in-process server here).
    pub fn with_drpc(&mut self, defaults: crate::drpc::DrpcDefaults) -> &mut Self {
        crate::drpc::register_drpc(self, defaults);
        self
    }

    /// Adds (or replaces) a spout that files name `name`.
    pub fn add_spout(
        &mut self,
        name: &str,
        summary: &'static str,
        maker: impl Fn(&BuiltinArgs<'_>) -> Result<SpoutFactory, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.spouts.insert(
            name.to_owned(),
            Entry {
                maker: Arc::new(maker),
                summary,
            },
        );
        self
    }

    /// Adds (or replaces) a bolt that files name `name`.
    pub fn add_bolt(
        &mut self,
        name: &str,
        summary: &'static str,
        maker: impl Fn(&BuiltinArgs<'_>) -> Result<BoltFactory, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.bolts.insert(
            name.to_owned(),
            Entry {
                maker: Arc::new(maker),
                summary,
            },
        );
        self
    }

    /// Adds (or replaces) a replayable spout that files name `name` (see
    /// [`squall_core::state`]). A file with a `checkpoint` section uses it instead of a plain
    /// spout of the same name; a file without one uses the plain spout when there is one.
    pub fn add_replayable_spout(
        &mut self,
        name: &str,
        summary: &'static str,
        maker: impl Fn(&BuiltinArgs<'_>) -> Result<ReplayableSpoutFactory, String>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.replayable_spouts.insert(
            name.to_owned(),
            Entry {
                maker: Arc::new(maker),
                summary,
            },
        );
        self
    }

    /// Adds (or replaces) a stateful bolt that files name `name`; a file that uses one is
    /// checkpointed.
    pub fn add_stateful_bolt(
        &mut self,
        name: &str,
        summary: &'static str,
        maker: impl Fn(&BuiltinArgs<'_>) -> Result<StatefulBoltFactory, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.stateful_bolts.insert(
            name.to_owned(),
            Entry {
                maker: Arc::new(maker),
                summary,
            },
        );
        self
    }

    /// The spouts, replayable ones included: name and one line on each.
    pub fn spouts(&self) -> impl Iterator<Item = (&str, &'static str)> {
        let replayable_only = self
            .replayable_spouts
            .iter()
            .filter(|(name, _)| !self.spouts.contains_key(*name))
            .map(|(name, entry)| (name.as_str(), entry.summary));
        self.spouts
            .iter()
            .map(|(name, entry)| (name.as_str(), entry.summary))
            .chain(replayable_only)
    }

    /// The bolts, stateful ones included: name and one line on each.
    pub fn bolts(&self) -> impl Iterator<Item = (&str, &'static str)> {
        let stateful_only = self
            .stateful_bolts
            .iter()
            .filter(|(name, _)| !self.bolts.contains_key(*name))
            .map(|(name, entry)| (name.as_str(), entry.summary));
        self.bolts
            .iter()
            .map(|(name, entry)| (name.as_str(), entry.summary))
            .chain(stateful_only)
    }

    pub(crate) fn replayable_spout_maker(&self, name: &str) -> Option<&ReplayableSpoutMaker> {
        self.replayable_spouts.get(name).map(|entry| &entry.maker)
    }

    pub(crate) fn stateful_bolt_maker(&self, name: &str) -> Option<&StatefulBoltMaker> {
        self.stateful_bolts.get(name).map(|entry| &entry.maker)
    }

    pub(crate) fn spout_maker(&self, name: &str) -> Option<&SpoutMaker> {
        self.spouts.get(name).map(|entry| &entry.maker)
    }

    pub(crate) fn bolt_maker(&self, name: &str) -> Option<&BoltMaker> {
        self.bolts.get(name).map(|entry| &entry.maker)
    }
}

/// Params of the built-in sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceParams {
    /// Tuples per second per task (flat out when absent).
    #[serde(default)]
    rate: Option<u64>,
    /// Emit with message ids (default true).
    #[serde(default = "yes")]
    tracked: bool,
    /// `const`: the value.
    #[serde(default)]
    value: Option<u64>,
    /// `words`, `sentences`: distinct words.
    #[serde(default)]
    vocabulary: Option<u32>,
    /// `words`: strings (default) or u64 ids.
    #[serde(default = "yes")]
    spelled: bool,
    /// `sentences`: words per sentence.
    #[serde(default)]
    words_per_sentence: Option<usize>,
}

fn yes() -> bool {
    true
}

impl SourceParams {
    fn options(&self) -> SourceOptions {
        SourceOptions {
            rate: self.rate.and_then(TuplesPerSecond::new),
            tracked: self.tracked,
            stamp_every: 64,
            ..SourceOptions::default()
        }
    }

    fn probe(&self) -> WordCountProbe {
        WordCountProbe::new(Vocabulary::new(
            self.vocabulary.unwrap_or(DEFAULT_VOCABULARY_SIZE).max(1),
        ))
    }
}

/// Params that some built-ins take none of.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinesParams {
    file: PathBuf,
    #[serde(default = "line_field")]
    field: String,
    #[serde(default)]
    repeat: bool,
}

fn line_field() -> String {
    "line".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceParams {
    #[serde(default)]
    count: Option<u64>,
    #[serde(default = "n_field")]
    field: String,
}

fn n_field() -> String {
    "n".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldCountParams {
    /// A field name or position.
    #[serde(default)]
    field: Option<JsonValue>,
    #[serde(default = "yes")]
    emit: bool,
    #[serde(default)]
    output: Option<PathBuf>,
}

fn spout<S: Spout + 'static>(make: impl Fn() -> S + Send + Sync + 'static) -> SpoutFactory {
    Arc::new(move || Box::new(make()))
}

fn bolt<B: Bolt + 'static>(make: impl Fn() -> B + Send + Sync + 'static) -> BoltFactory {
    Arc::new(move || Box::new(make()))
}

fn register_builtins(registry: &mut ComponentRegistry) {
    registry
        .add_spout(
            "lines",
            "the lines of a text file ([line]), tracked and replayed on failure",
            |args| {
                let params: LinesParams = args.params()?;
                let path = args.path(&params.file);
                LinesSpout::read_lines(&path)
                    .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                Ok(spout(move || {
                    LinesSpout::new(path.clone(), &params.field, params.repeat)
                }))
            },
        )
        .add_spout(
            "sequence",
            "the numbers 0, 1, 2, ... ([n], up to `count`), tracked and replayed on failure",
            |args| {
                let params: SequenceParams = args.params()?;
                let count = params.count.unwrap_or(u64::MAX);
                Ok(spout(move || {
                    ReplayingSpout::counting(&params.field, count, Arc::new(ReplayStats::default()))
                }))
            },
        )
        .add_spout(
            "const",
            "a constant u64 and a time stamp ([value, stamp])",
            |args| {
                let params: SourceParams = args.params()?;
                let (value, options) = (params.value.unwrap_or(1), params.options());
                Ok(spout(move || ConstSpout::new(value, options.clone())))
            },
        )
        .add_spout(
            "words",
            "random words of a vocabulary and a time stamp ([word, stamp])",
            |args| {
                let params: SourceParams = args.params()?;
                let (options, probe, spelled) = (params.options(), params.probe(), params.spelled);
                Ok(spout(move || {
                    if spelled {
                        WordSpout::spelled(1, probe.clone(), options.clone())
                    } else {
                        WordSpout::ids(1, probe.clone(), options.clone())
                    }
                }))
            },
        )
        .add_spout(
            "sentences",
            "random sentences of a vocabulary and a time stamp ([sentence, stamp])",
            |args| {
                let params: SourceParams = args.params()?;
                let (options, probe) = (params.options(), params.probe());
                let words = params.words_per_sentence.unwrap_or(8).max(1);
                Ok(spout(move || {
                    SentenceSpout::new(1, words, probe.clone(), options.clone())
                }))
            },
        );
    registry
        .add_bolt(
            "field_count",
            "counts tuples by a field; emits [key, count]; writes its counts to `output`",
            |args| {
                let params: FieldCountParams = args.params()?;
                let (field, key_name) = crate::stateful::field_ref(params.field.as_ref())?;
                let output = params.output.map(|path| args.path(&path));
                if let Some(path) = &output
                    && args.tasks > 1
                    && !path.to_string_lossy().contains("{task}")
                {
                    return Err(format!(
                        "output {} is written by each of the {} tasks: put {{task}} in the name",
                        path.display(),
                        args.tasks
                    ));
                }
                Ok(bolt(move || {
                    FieldCountBolt::new(field.clone(), &key_name, params.emit, output.clone())
                }))
            },
        )
        .add_bolt("null", "acks and drops every tuple", |args| {
            let NoParams {} = args.params()?;
            let probes = SinkProbes::default();
            Ok(bolt(move || NullBolt::new(&probes)))
        })
        .add_bolt(
            "identity",
            "passes on [value, stamp] tuples of u64s, anchored",
            |args| {
                let NoParams {} = args.params()?;
                Ok(bolt(|| IdentityBolt))
            },
        )
        .add_bolt(
            "split",
            "splits [sentence] or [sentence, stamp] tuples on spaces into [word, stamp] tuples, anchored",
            |args| {
                let NoParams {} = args.params()?;
                Ok(bolt(|| SplitBolt))
            },
        )
        .add_bolt(
            "count",
            "counts [word, stamp] tuples by word (the benchmark word count)",
            |args| {
                let NoParams {} = args.params()?;
                let (probe, sinks) = (
                    WordCountProbe::new(Vocabulary::new(DEFAULT_VOCABULARY_SIZE)),
                    SinkProbes::default(),
                );
                Ok(bolt(move || CountBolt::new(probe.clone(), &sinks)))
            },
        );
}
