//! A checkpointed word count for the cluster tests: entries of a Redis stream (field `word`)
//! -> shuffle -> `relay` -> fields("word") -> `tally`, whose counts are stateful and
//! checkpointed in Redis. The stream spout is the replayable source, so the committed counts
//! are exact however the topology fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use squall::connectors::{RedisBackend, RedisStreamSource, RedisStreamSpout};
use squall::state::{Checkpointing, KeyValueState, StateBackend, StatefulBolt};
use squall::{
    Bolt, BoltOutput, ComponentError, OutputDeclarer, Topology, TopologyBuilder, TopologyConfig,
    Tuple, Value,
};

/// The stateful component's name.
pub const TALLY: &str = "tally";

/// The topology program's arguments.
#[derive(Debug, Clone)]
pub struct StreamCountArgs {
    /// The topology's name.
    pub name: String,
    /// The Redis server of the stream and of the state.
    pub redis: String,
    /// The stream read.
    pub stream: String,
    /// Spout executors.
    pub spouts: usize,
    /// Relay executors.
    pub relays: usize,
    /// Tally executors.
    pub counters: usize,
    /// Worker processes.
    pub workers: usize,
    /// Message timeout.
    pub timeout_ms: u64,
    /// Most trees in flight per spout task.
    pub pending: u32,
    /// Time between checkpoints.
    pub interval_ms: u64,
}

impl StreamCountArgs {
    /// Parses `--name value` pairs; `--redis` is required.
    ///
    /// # Errors
    /// On an unknown name, a missing value, a bad number or no `--redis`.
    pub fn parse(args: &[String]) -> Result<Self, ComponentError> {
        let mut parsed = Self {
            name: "stream-count".to_owned(),
            redis: String::new(),
            stream: "events".to_owned(),
            spouts: 2,
            relays: 2,
            counters: 2,
            workers: 2,
            timeout_ms: 5_000,
            pending: 500,
            interval_ms: 200,
        };
        let mut rest = args.iter();
        while let Some(name) = rest.next() {
            let value = rest.next().ok_or_else(|| format!("{name} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{name} {value:?} is not a number"))
            };
            match name.as_str() {
                "--name" => parsed.name = value.clone(),
                "--redis" => parsed.redis = value.clone(),
                "--stream" => parsed.stream = value.clone(),
                "--spouts" => parsed.spouts = number()? as usize,
                "--relays" => parsed.relays = number()? as usize,
                "--counters" => parsed.counters = number()? as usize,
                "--workers" => parsed.workers = number()? as usize,
                "--timeout-ms" => parsed.timeout_ms = number()?,
                "--pending" => parsed.pending = number()? as u32,
                "--interval-ms" => parsed.interval_ms = number()?,
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if parsed.redis.is_empty() {
            return Err("--redis URL is required".into());
        }
        Ok(parsed)
    }
}

/// The prefix of the state's keys in Redis.
pub const STATE_PREFIX: &str = "squall-state";

/// The consumer group reading the stream.
pub const GROUP: &str = "tally";

/// Passes the word on, anchored.
struct Relay;

impl Bolt for Relay {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        match input.get_str(0) {
            Ok(word) => {
                output.emit_anchored(input, &[Value::Str(word)]);
                output.ack(input);
            }
            Err(_) => output.fail(input),
        }
    }
}

/// Counts words (field 0) in checkpointed state, under the word.
#[derive(Debug)]
pub struct Tally;

impl StatefulBolt for Tally {
    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        if let Ok(word) = input.get_str(0) {
            state.add_u64(word.as_bytes(), 1);
        }
        output.ack(input);
    }
}

/// The topology.
///
/// # Errors
/// When the arguments are bad, the Redis address is malformed or the topology is invalid.
pub fn build_topology(args: &[String]) -> Result<Arc<Topology>, ComponentError> {
    let args = StreamCountArgs::parse(args)?;
    let backend = RedisBackend::new(&args.redis, STATE_PREFIX)?;
    let mut builder = TopologyBuilder::new();
    builder.checkpointing(Checkpointing {
        interval: Duration::from_millis(args.interval_ms),
        backend: Arc::new(backend),
    });
    let source = RedisStreamSource {
        url: args.redis.clone(),
        stream: args.stream.clone(),
        group: GROUP.into(),
        consumer: String::new(),
        fields: vec!["word".into()],
        batch: 200,
    };
    builder.set_replayable_spout(
        "events",
        move || RedisStreamSpout::new(source.clone()).expect("a valid stream source"),
        args.spouts,
    );
    builder
        .set_bolt("relay", || Relay, args.relays)
        .shuffle_grouping("events");
    builder
        .set_stateful_bolt(TALLY, || Tally, args.counters)
        .fields_grouping("relay", &["word"]);
    let config = TopologyConfig::default()
        .with_workers(args.workers)
        .with_message_timeout(Duration::from_millis(args.timeout_ms))
        .with_max_spout_pending(args.pending);
    Ok(builder.build(&args.name, config)?)
}

/// The committed counts of topology `name` in `backend`, summed over its `counters`
/// tally tasks; `spouts` is its number of spout tasks.
///
/// # Errors
/// When the backend cannot be read.
pub fn committed_counts(
    backend: &RedisBackend,
    name: &str,
    spouts: usize,
    counters: usize,
) -> Result<HashMap<String, u64>, ComponentError> {
    let committed = backend.ledger(name, spouts)?.view()?.committed;
    let mut totals = HashMap::new();
    for task in 0..counters {
        let mut store = backend.task_store(name, TALLY, task)?;
        for (key, value) in store.read(committed)? {
            let count = u64::from_le_bytes(
                value
                    .try_into()
                    .map_err(|_| "a count that is not 8 bytes".to_owned())?,
            );
            *totals
                .entry(String::from_utf8_lossy(&key).into_owned())
                .or_default() += count;
        }
    }
    Ok(totals)
}
