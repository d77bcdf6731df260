//! The linear DRPC builder (Storm's `LinearDRPCTopologyBuilder`): a function served by a
//! chain of bolts, with the request id carried for the user and the per-request
//! aggregation done for them.
//!
//! ```text
//! DRPC spout ──args [id, args]──▶ bolt 1 ──▶ … ──▶ bolt n ──fields(id)──▶ aggregate ──▶ return
//!      └─────────────────────finish [id, return-info], fields(id)──────────▲
//! ```
//!
//! Every bolt of the chain receives tuples whose field 0 is the request id and emits tuples
//! whose first field, named `id`, is that id. Bolts are `auto_ack` (each input acked after
//! `execute`, emits anchored to it), so the spout learns from the acker when all tuples of a
//! request have reached the aggregator; it then emits the request on its `finish` stream
//! and the aggregator answers. A bolt that fails its input fails the request.

use std::sync::Arc;

use squall_core::component::Bolt;
use squall_core::config::TopologyConfig;
use squall_core::grouping::Grouping;
use squall_core::topology::{Topology, TopologyBuilder, TopologyError};

use crate::aggregate::{Aggregation, DrpcAggregateBolt};
use crate::return_bolt::ReturnResultsBolt;
use crate::spout::{ARGS_STREAM, DrpcServers, DrpcSpout, FINISH_STREAM, SpoutShape};

/// Adds one bolt of the chain to a builder, subscribed to `source`'s `stream`.
type Install = Box<dyn FnOnce(&mut TopologyBuilder, &str, &str, Grouping)>;

/// One bolt of the chain.
struct Step {
    id: String,
    grouping: Grouping,
    install: Install,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("id", &self.id)
            .field("grouping", &self.grouping.name())
            .finish()
    }
}

/// Builds a topology that serves one DRPC function with a chain of bolts.
///
/// ```no_run
/// use squall_core::{Bolt, BoltOutput, OutputDeclarer, TopologyConfig, Tuple};
/// use squall_drpc::{Aggregation, DrpcServers, LinearDrpcBuilder};
///
/// /// Emits each character of the argument.
/// struct Chars;
/// impl Bolt for Chars {
///     fn declare_outputs(&self, d: &mut OutputDeclarer) { d.declare(&["id", "char"]); }
///     fn execute(&mut self, input: &Tuple<'_>, out: &mut BoltOutput<'_>) {
///         let id = input.get_str(0).unwrap();
///         for c in input.get_str(1).unwrap().chars() {
///             out.emit_anchored(input, &[id.into(), c.to_string().as_str().into()]);
///         }
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = squall_net::ClusterSecret::new(*b"0123456789abcdef0123")?;
/// let servers = DrpcServers::new(vec!["127.0.0.1:3772".into()], secret)?;
/// let mut builder = LinearDrpcBuilder::new("distinct-chars", servers);
/// builder.add_bolt("chars", || Chars, 2);
/// builder.aggregate(Aggregation::CountDistinct, 1);
/// let topology = builder.build("distinct-chars", TopologyConfig::default())?;
/// # let _ = topology; Ok(()) }
/// ```
#[derive(Debug)]
pub struct LinearDrpcBuilder {
    function: String,
    servers: DrpcServers,
    spout_parallelism: usize,
    steps: Vec<Step>,
    aggregation: Aggregation,
    value_field: usize,
    aggregate_parallelism: usize,
}

impl LinearDrpcBuilder {
    /// A builder for `function`, served from `servers`. The default aggregation counts the
    /// tuples of each request.
    pub fn new(function: &str, servers: DrpcServers) -> Self {
        Self {
            function: function.to_owned(),
            servers,
            spout_parallelism: 1,
            steps: Vec::new(),
            aggregation: Aggregation::Count,
            value_field: 1,
            aggregate_parallelism: 1,
        }
    }

    /// Runs `parallelism` spout tasks (default 1); each pulls from every server.
    pub fn spout_parallelism(&mut self, parallelism: usize) -> &mut Self {
        self.spout_parallelism = parallelism;
        self
    }

    /// Appends a bolt to the chain, fed by the previous one (the spout for the first) with
    /// shuffle grouping unless [`grouping`](Self::grouping) says otherwise.
    pub fn add_bolt<B, F>(&mut self, id: &str, factory: F, parallelism: usize) -> &mut Self
    where
        B: Bolt + 'static,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let own_id = id.to_owned();
        let install: Install = Box::new(move |builder, source, stream, grouping| {
            builder
                .set_bolt(&own_id, factory, parallelism)
                .auto_ack()
                .grouping_on(source, stream, grouping);
        });
        self.steps.push(Step {
            id: id.to_owned(),
            grouping: Grouping::Shuffle,
            install,
        });
        self
    }

    /// The grouping of the last added bolt's input.
    ///
    /// # Panics
    /// When no bolt was added yet.
    pub fn grouping(&mut self, grouping: Grouping) -> &mut Self {
        self.steps
            .last_mut()
            .expect("grouping() follows add_bolt()")
            .grouping = grouping;
        self
    }

    /// How each request's tuples become its answer, on which field of the last bolt's
    /// tuples (default: count, field 1), with `parallelism` aggregator tasks.
    pub fn aggregate(&mut self, aggregation: Aggregation, parallelism: usize) -> &mut Self {
        self.aggregation = aggregation;
        self.aggregate_parallelism = parallelism;
        self
    }

    /// The field of the last bolt's tuples that is aggregated (default 1: the first after
    /// the id).
    pub fn value_field(&mut self, field: usize) -> &mut Self {
        self.value_field = field;
        self
    }

    /// The topology: spout `drpc-spout`, the chain, `drpc-aggregate` and `drpc-return`.
    ///
    /// # Errors
    /// As [`TopologyBuilder::build`] (a last bolt without an `id` field, for instance).
    pub fn build(self, name: &str, config: TopologyConfig) -> Result<Arc<Topology>, TopologyError> {
        let mut builder = TopologyBuilder::new();
        let function = self.function.clone();
        let servers = self.servers.clone();
        builder.set_spout(
            "drpc-spout",
            move || DrpcSpout::new(&function, servers.clone(), SpoutShape::Linear),
            self.spout_parallelism,
        );
        let mut source = ("drpc-spout".to_owned(), ARGS_STREAM.to_owned());
        let mut last = None;
        for step in self.steps {
            (step.install)(&mut builder, &source.0, &source.1, step.grouping);
            source = (step.id.clone(), squall_core::DEFAULT_STREAM.to_owned());
            last = Some(step.id);
        }
        let aggregation = self.aggregation;
        let value_field = self.value_field;
        let mut aggregate = builder
            .set_bolt(
                "drpc-aggregate",
                move || DrpcAggregateBolt::new(aggregation, value_field),
                self.aggregate_parallelism,
            )
            .grouping_on(
                "drpc-spout",
                FINISH_STREAM,
                Grouping::Fields(vec!["id".to_owned()]),
            );
        // An empty chain aggregates the arguments themselves.
        let (chain_end, chain_stream) = match &last {
            Some(last) => (last.as_str(), squall_core::DEFAULT_STREAM),
            None => ("drpc-spout", ARGS_STREAM),
        };
        aggregate = aggregate.grouping_on(
            chain_end,
            chain_stream,
            Grouping::Fields(vec!["id".to_owned()]),
        );
        let _ = aggregate;
        let servers = self.servers;
        builder
            .set_bolt(
                "drpc-return",
                move || ReturnResultsBolt::new(servers.clone()),
                self.aggregate_parallelism,
            )
            .shuffle_grouping("drpc-aggregate");
        builder.build(name, config)
    }
}
