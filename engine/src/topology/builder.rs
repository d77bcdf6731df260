//! Declaring a topology: components, parallelism, subscriptions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as JsonValue;

use super::declare::OutputDeclarer;
use super::error::TopologyError;
use super::model::Topology;
use crate::component::{Bolt, Spout};
use crate::config::{ComponentConfig, TopologyConfig};
use crate::grouping::Grouping;
use crate::ids::DEFAULT_STREAM;
use crate::state::{
    BARRIER_FIELDS, BARRIER_STREAM, CheckpointedBolt, Checkpointing, CheckpointingSpout,
    ReplayableSpout, Source, StatefulBolt, Wrapped,
};

/// Makes one spout instance per task.
pub(crate) type SpoutFactory = Arc<dyn Fn() -> Box<dyn Spout> + Send + Sync>;
/// Makes one bolt instance per task.
pub(crate) type BoltFactory = Arc<dyn Fn() -> Box<dyn Bolt> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Factory {
    Spout(SpoutFactory),
    Bolt(BoltFactory),
}

/// A component that only runs in a checkpointed topology.
#[derive(Clone)]
pub(crate) enum CheckpointedFactory {
    Stateful(Arc<dyn Fn() -> Box<dyn StatefulBolt> + Send + Sync>),
    Replayable(Arc<dyn Fn() -> Box<dyn ReplayableSpout> + Send + Sync>),
}

/// A subscription as declared, before validation.
#[derive(Debug, Clone)]
pub(crate) struct InputDecl {
    pub(crate) source: String,
    pub(crate) stream: String,
    pub(crate) grouping: Grouping,
}

/// A component as declared, before validation.
pub(crate) struct ComponentDecl {
    pub(crate) id: String,
    pub(crate) factory: Factory,
    pub(crate) parallelism: usize,
    pub(crate) tasks: Option<usize>,
    pub(crate) outputs: OutputDeclarer,
    pub(crate) inputs: Vec<InputDecl>,
    pub(crate) config: ComponentConfig,
    /// Set for stateful bolts and replayable spouts: `factory` is made from it when the
    /// topology is built.
    pub(crate) checkpointed: Option<CheckpointedFactory>,
    /// The builder declared the barrier stream on it.
    pub(crate) barrier_declared: bool,
}

/// Builds a topology: spouts and bolts, their parallelism and how they subscribe to each
/// other's streams.
///
/// ```
/// use squall_core::{Bolt, BoltOutput, Spout, SpoutOutput, TopologyBuilder, TopologyConfig, Tuple};
///
/// struct Numbers(u64);
/// impl Spout for Numbers {
///     fn declare_outputs(&self, d: &mut squall_core::OutputDeclarer) {
///         d.declare(&["n"]);
///     }
///     fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) {
///         self.0 += 1;
///         out.emit(&[self.0.into()]);
///     }
/// }
///
/// struct Sink;
/// impl Bolt for Sink {
///     fn execute(&mut self, _input: &Tuple<'_>, _out: &mut BoltOutput<'_>) {}
/// }
///
/// let mut builder = TopologyBuilder::new();
/// builder.set_spout("numbers", || Numbers(0), 1);
/// builder.set_bolt("sink", || Sink, 2).fields_grouping("numbers", &["n"]);
/// let topology = builder.build("example", TopologyConfig::default()).unwrap();
/// assert_eq!(topology.component("sink").unwrap().task_count(), 2);
///
/// let mut broken = TopologyBuilder::new();
/// broken.set_spout("numbers", || Numbers(0), 1);
/// broken.set_bolt("sink", || Sink, 1).fields_grouping("numbers", &["m"]);
/// let error = broken.build("broken", TopologyConfig::default()).unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "bolt \"sink\" groups stream \"default\" of \"numbers\" by field \"m\", but the stream's fields are [\"n\"]"
/// );
/// ```
#[derive(Default)]
pub struct TopologyBuilder {
    pub(crate) components: Vec<ComponentDecl>,
    checkpointing: Option<Checkpointing>,
}

impl std::fmt::Debug for TopologyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyBuilder")
            .field(
                "components",
                &self.components.iter().map(|c| &c.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TopologyBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a spout with `parallelism` executors (and as many tasks, unless
    /// [`SpoutDeclarer::tasks`] says otherwise). `factory` makes one instance per task; one
    /// extra instance is made now to read its [`declare_outputs`](Spout::declare_outputs).
    pub fn set_spout<S, F>(&mut self, id: &str, factory: F, parallelism: usize) -> SpoutDeclarer<'_>
    where
        S: Spout + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let mut outputs = OutputDeclarer::default();
        factory().declare_outputs(&mut outputs);
        let factory: SpoutFactory = Arc::new(move || Box::new(factory()));
        self.components.push(ComponentDecl {
            id: id.to_owned(),
            factory: Factory::Spout(factory),
            parallelism,
            tasks: None,
            outputs,
            inputs: Vec::new(),
            config: ComponentConfig::default(),
            checkpointed: None,
            barrier_declared: false,
        });
        SpoutDeclarer(self.components.last_mut().expect("just pushed"))
    }

    /// Adds a bolt with `parallelism` executors; see [`set_spout`](Self::set_spout).
    pub fn set_bolt<B, F>(&mut self, id: &str, factory: F, parallelism: usize) -> BoltDeclarer<'_>
    where
        B: Bolt + 'static,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let mut outputs = OutputDeclarer::default();
        factory().declare_outputs(&mut outputs);
        let factory: BoltFactory = Arc::new(move || Box::new(factory()));
        self.components.push(ComponentDecl {
            id: id.to_owned(),
            factory: Factory::Bolt(factory),
            parallelism,
            tasks: None,
            outputs,
            inputs: Vec::new(),
            config: ComponentConfig::default(),
            checkpointed: None,
            barrier_declared: false,
        });
        BoltDeclarer(self.components.last_mut().expect("just pushed"))
    }

    /// Adds a stateful bolt ([`crate::state`]): the topology becomes checkpointed.
    pub fn set_stateful_bolt<B, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: usize,
    ) -> BoltDeclarer<'_>
    where
        B: StatefulBolt + 'static,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let factory: Arc<dyn Fn() -> Box<dyn StatefulBolt> + Send + Sync> =
            Arc::new(move || Box::new(factory()));
        // Made again, with the topology's settings, when it is built.
        let placeholder = factory.clone();
        let declarer = self.set_bolt(
            id,
            move || {
                CheckpointedBolt::new(
                    Wrapped::Stateful(placeholder()),
                    Checkpointing::default(),
                    false,
                )
            },
            parallelism,
        );
        declarer.0.checkpointed = Some(CheckpointedFactory::Stateful(factory));
        declarer
    }

    /// Adds a replayable spout ([`crate::state`]): the topology becomes checkpointed.
    pub fn set_replayable_spout<S, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: usize,
    ) -> SpoutDeclarer<'_>
    where
        S: ReplayableSpout + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let factory: Arc<dyn Fn() -> Box<dyn ReplayableSpout> + Send + Sync> =
            Arc::new(move || Box::new(factory()));
        let placeholder = factory.clone();
        let declarer = self.set_spout(
            id,
            move || {
                CheckpointingSpout::new(Source::Replayable(placeholder()), Checkpointing::default())
            },
            parallelism,
        );
        declarer.0.checkpointed = Some(CheckpointedFactory::Replayable(factory));
        declarer
    }

    /// Sets how checkpoints are taken, and makes the topology checkpointed even without a
    /// stateful bolt. Without this call a checkpointed topology uses
    /// [`Checkpointing::default`].
    pub fn checkpointing(&mut self, checkpointing: Checkpointing) -> &mut Self {
        self.checkpointing = Some(checkpointing);
        self
    }

    /// Wraps every component of a checkpointed topology in the checkpoint protocol and
    /// wires the barrier stream between them.
    fn apply_checkpointing(&mut self) {
        let checkpointed = self.checkpointing.is_some()
            || self
                .components
                .iter()
                .any(|decl| decl.checkpointed.is_some());
        if !checkpointed {
            return;
        }
        let settings = self.checkpointing.clone().unwrap_or_default();
        for decl in &mut self.components {
            let settings = settings.clone();
            let auto_ack = std::mem::take(&mut decl.config.auto_ack);
            decl.factory = match (decl.checkpointed.clone(), decl.factory.clone()) {
                (Some(CheckpointedFactory::Stateful(factory)), _) => {
                    Factory::Bolt(Arc::new(move || {
                        Box::new(CheckpointedBolt::new(
                            Wrapped::Stateful(factory()),
                            settings.clone(),
                            auto_ack,
                        ))
                    }))
                }
                (Some(CheckpointedFactory::Replayable(factory)), _) => {
                    Factory::Spout(Arc::new(move || {
                        Box::new(CheckpointingSpout::new(
                            Source::Replayable(factory()),
                            settings.clone(),
                        ))
                    }))
                }
                (None, Factory::Bolt(factory)) => Factory::Bolt(Arc::new(move || {
                    Box::new(CheckpointedBolt::new(
                        Wrapped::Plain(factory()),
                        settings.clone(),
                        auto_ack,
                    ))
                })),
                (None, Factory::Spout(factory)) => Factory::Spout(Arc::new(move || {
                    Box::new(CheckpointingSpout::new(
                        Source::Plain(factory()),
                        settings.clone(),
                    ))
                })),
            };
            if !decl.barrier_declared {
                decl.outputs.declare_stream(BARRIER_STREAM, &BARRIER_FIELDS);
                decl.barrier_declared = true;
            }
            let mut sources: Vec<String> = decl
                .inputs
                .iter()
                .map(|input| input.source.clone())
                .collect();
            sources.sort();
            sources.dedup();
            for source in sources {
                decl.inputs.push(InputDecl {
                    source,
                    stream: BARRIER_STREAM.to_owned(),
                    grouping: Grouping::All,
                });
            }
        }
    }

    /// Whether the topology is checkpointed: it has a stateful bolt or a replayable
    /// spout, or [`checkpointing`](Self::checkpointing) was set.
    pub fn is_checkpointed(&self) -> bool {
        self.checkpointing.is_some() || self.components.iter().any(|d| d.checkpointed.is_some())
    }

    /// Validates the declarations and returns the topology.
    ///
    /// # Errors
    /// The first problem found, naming the component, stream or field at fault.
    pub fn build(
        mut self,
        name: &str,
        config: TopologyConfig,
    ) -> Result<Arc<Topology>, TopologyError> {
        if self.is_checkpointed() && config.ackers == Some(0) {
            return Err(TopologyError::InvalidConfig {
                setting: "ackers",
                value: "0".into(),
                reason: "a checkpointed topology needs tracking: a checkpoint commits when its barriers' trees complete",
            });
        }
        self.apply_checkpointing();
        super::validate::validate(name, self, config).map(Arc::new)
    }
}

macro_rules! common_declarer_methods {
    () => {
        /// Sets the number of tasks (at least the parallelism; default equal to it).
        pub fn tasks(self, tasks: usize) -> Self {
            self.0.tasks = Some(tasks);
            self
        }

        /// Delivers a tick tuple to every task of the component this often.
        pub fn tick_frequency(self, every: Duration) -> Self {
            self.0.config.tick_frequency = Some(every);
            self
        }

        /// Sets a free-form setting for this component's tasks.
        pub fn set(self, key: &str, value: impl Into<JsonValue>) -> Self {
            self.0.config.user.insert(key.to_owned(), value.into());
            self
        }

        /// Declares one more output stream (besides those the component declares itself).
        pub fn output_stream(self, name: &str, fields: &[&str]) -> Self {
            self.0.outputs.declare_stream(name, fields);
            self
        }

        /// Declares one more direct output stream.
        pub fn output_direct_stream(self, name: &str, fields: &[&str]) -> Self {
            self.0.outputs.declare_direct_stream(name, fields);
            self
        }
    };
}

/// Settings of a spout being declared.
#[derive(Debug)]
pub struct SpoutDeclarer<'a>(&'a mut ComponentDecl);

impl SpoutDeclarer<'_> {
    common_declarer_methods!();
}

/// Settings and subscriptions of a bolt being declared.
#[derive(Debug)]
pub struct BoltDeclarer<'a>(&'a mut ComponentDecl);

impl BoltDeclarer<'_> {
    common_declarer_methods!();

    /// Acks every input after `execute` unless the bolt settled it, and anchors emits to the
    /// input (Storm's `BasicBolt` behaviour).
    pub fn auto_ack(self) -> Self {
        self.0.config.auto_ack = true;
        self
    }

    /// Subscribes to `stream` of `source` with `grouping`.
    pub fn grouping_on(self, source: &str, stream: &str, grouping: Grouping) -> Self {
        self.0.inputs.push(InputDecl {
            source: source.to_owned(),
            stream: stream.to_owned(),
            grouping,
        });
        self
    }

    /// Subscribes to the default stream of `source` with `grouping`.
    pub fn grouping(self, source: &str, grouping: Grouping) -> Self {
        self.grouping_on(source, DEFAULT_STREAM, grouping)
    }

    /// Shuffle grouping on the default stream of `source`.
    pub fn shuffle_grouping(self, source: &str) -> Self {
        self.grouping(source, Grouping::Shuffle)
    }

    /// Fields grouping on the default stream of `source`.
    pub fn fields_grouping(self, source: &str, fields: &[&str]) -> Self {
        self.grouping(source, Grouping::Fields(to_strings(fields)))
    }

    /// All grouping on the default stream of `source`.
    pub fn all_grouping(self, source: &str) -> Self {
        self.grouping(source, Grouping::All)
    }

    /// Global grouping on the default stream of `source`.
    pub fn global_grouping(self, source: &str) -> Self {
        self.grouping(source, Grouping::Global)
    }

    /// None grouping on the default stream of `source`.
    pub fn none_grouping(self, source: &str) -> Self {
        self.grouping(source, Grouping::None)
    }

    /// Direct grouping on `stream` of `source` (which must be declared direct).
    pub fn direct_grouping(self, source: &str, stream: &str) -> Self {
        self.grouping_on(source, stream, Grouping::Direct)
    }

    /// Local-or-shuffle grouping on the default stream of `source`.
    pub fn local_or_shuffle_grouping(self, source: &str) -> Self {
        self.grouping(source, Grouping::LocalOrShuffle)
    }

    /// Partial-key grouping on the default stream of `source`.
    pub fn partial_key_grouping(self, source: &str, fields: &[&str]) -> Self {
        self.grouping(source, Grouping::PartialKey(to_strings(fields)))
    }
}

impl std::fmt::Debug for ComponentDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentDecl")
            .field("id", &self.id)
            .field("parallelism", &self.parallelism)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

fn to_strings(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|field| (*field).to_owned()).collect()
}
