//! The tracked topology of fault drills and the cluster tests: every outcome is logged
//! durably in a state directory, the spout logging each acked message id and the counting
//! bolt each message it processed (before acking it), so "nothing acknowledged was lost"
//! and "everything was processed at least once" can be checked from the files after any
//! crash ([`crate::drill::ledger`] reads them).
//!
//! Arguments: `--messages N --state-dir DIR [--name NAME] [--spouts S] [--relays R]
//! [--counters C] [--workers W] [--timeout-ms T] [--pending P] [--rate R]` (R: messages per
//! second per spout task, 0 for as fast as possible).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall::{
    Bolt, BoltOutput, ComponentError, MessageId, OutputDeclarer, Spout, SpoutOutput, Topology,
    TopologyBuilder, TopologyConfig, TopologyContext, Tuple, Value,
};

/// Distinct words of the test vocabulary.
pub const WORDS: u64 = 97;

/// The word of message `id`.
pub fn word_of(id: u64) -> String {
    format!("w{}", id % WORDS)
}

/// The topology program's arguments.
#[derive(Debug, Clone)]
pub struct LedgerArgs {
    /// The topology's name.
    pub name: String,
    /// Messages in all.
    pub messages: u64,
    /// Where the logs go.
    pub state_dir: PathBuf,
    /// Spout executors (and tasks).
    pub spouts: usize,
    /// Relay executors.
    pub relays: usize,
    /// Counter executors.
    pub counters: usize,
    /// Worker processes.
    pub workers: usize,
    /// Message timeout.
    pub timeout_ms: u64,
    /// Most trees in flight per spout task.
    pub pending: u32,
    /// Messages per second each spout task emits at most (0: as fast as it can).
    pub rate: u64,
}

impl LedgerArgs {
    /// Parses `--name value` pairs.
    ///
    /// # Errors
    /// On an unknown name, a missing value or a bad number.
    pub fn parse(args: &[String]) -> Result<Self, ComponentError> {
        let mut parsed = LedgerArgs {
            name: "wordcount".to_owned(),
            messages: 1000,
            state_dir: PathBuf::from("."),
            spouts: 1,
            relays: 2,
            counters: 2,
            workers: 1,
            timeout_ms: 10_000,
            pending: 500,
            rate: 0,
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
                "--messages" => parsed.messages = number()?,
                "--name" => parsed.name = value.clone(),
                "--state-dir" => parsed.state_dir = PathBuf::from(value),
                "--spouts" => parsed.spouts = number()? as usize,
                "--relays" => parsed.relays = number()? as usize,
                "--counters" => parsed.counters = number()? as usize,
                "--workers" => parsed.workers = number()? as usize,
                "--timeout-ms" => parsed.timeout_ms = number()?,
                "--pending" => parsed.pending = number()? as u32,
                "--rate" => parsed.rate = number()?,
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        Ok(parsed)
    }
}

/// The tracked topology: spouts `messages` -> shuffle -> `relay` -> fields("word") ->
/// `count`, every tree acked.
///
/// # Errors
/// When the arguments are bad or the topology is invalid.
pub fn build_topology(args: &[String]) -> Result<Arc<Topology>, ComponentError> {
    let args = LedgerArgs::parse(args)?;
    let mut builder = TopologyBuilder::new();
    let spout_args = args.clone();
    builder.set_spout(
        "messages",
        move || LedgerSpout::new(&spout_args),
        args.spouts,
    );
    builder
        .set_bolt("relay", || RelayBolt, args.relays)
        .shuffle_grouping("messages");
    let bolt_args = args.clone();
    builder
        .set_bolt("count", move || LedgerBolt::new(&bolt_args), args.counters)
        .fields_grouping("relay", &["word"]);
    let config = TopologyConfig::default()
        .with_workers(args.workers)
        .with_message_timeout(Duration::from_millis(args.timeout_ms))
        .with_max_spout_pending(args.pending);
    Ok(builder.build(&args.name, config)?)
}

fn append_log(path: &Path) -> Result<File, ComponentError> {
    Ok(OpenOptions::new().create(true).append(true).open(path)?)
}

/// Emits its share of the messages `[id, word]`, tracked; logs every acked id; replays
/// failed ones first; after a restart skips the ids its log says were acked.
#[derive(Debug)]
pub struct LedgerSpout {
    args: LedgerArgs,
    to_send: VecDeque<u64>,
    in_flight: BTreeSet<u64>,
    log: Option<File>,
    opened: Option<Instant>,
    emitted: u64,
}

impl LedgerSpout {
    /// A spout for `args`.
    pub fn new(args: &LedgerArgs) -> Self {
        Self {
            args: args.clone(),
            to_send: VecDeque::new(),
            in_flight: BTreeSet::new(),
            log: None,
            opened: None,
            emitted: 0,
        }
    }

    /// Whether the rate allows another emit now.
    fn paced_out(&self) -> bool {
        let (rate, Some(opened)) = (self.args.rate, self.opened) else {
            return false;
        };
        rate > 0 && self.emitted as f64 >= opened.elapsed().as_secs_f64() * rate as f64
    }
}

impl Spout for LedgerSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["id", "word"]);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        let path = self
            .args
            .state_dir
            .join(format!("acked-{}.log", context.task_id()));
        let acked: BTreeSet<u64> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.parse().ok())
            .collect();
        let tasks = context.component_tasks().len() as u64;
        let index = context.task_index() as u64;
        self.to_send = (0..self.args.messages)
            .filter(|id| id % tasks == index && !acked.contains(id))
            .collect();
        self.log = Some(append_log(&path)?);
        self.opened = Some(Instant::now());
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.paced_out() {
            return;
        }
        let Some(id) = self.to_send.pop_front() else {
            return;
        };
        self.emitted += 1;
        self.in_flight.insert(id);
        output.emit_with_id(&[Value::U64(id), Value::Str(&word_of(id))], MessageId(id));
    }

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if self.in_flight.remove(&message.0) {
            let log = self.log.as_mut().expect("opened");
            // One write per line: `writeln!` on a file makes a system call per piece, and a
            // worker killed between them would leave a torn line for its successor to
            // append to.
            log.write_all(format!("{}\n", message.0).as_bytes())
                .expect("the ack log is writable");
        }
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if self.in_flight.remove(&message.0) {
            // Replayed next, not after every message still to send: a drill's spout has
            // half an hour of messages queued, and its final check waits for the replays.
            self.to_send.push_front(message.0);
        }
    }
}

/// Passes every tuple on, anchored, and acks it.
#[derive(Debug, Default)]
pub struct RelayBolt;

impl Bolt for RelayBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["id", "word"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let (Ok(id), Ok(word)) = (input.get_u64(0), input.get_str(1)) else {
            output.fail(input);
            return;
        };
        output.emit_anchored(input, &[Value::U64(id), Value::Str(word)]);
        output.ack(input);
    }
}

/// Counts words, logging `id word` for every tuple before acking it.
#[derive(Debug)]
pub struct LedgerBolt {
    args: LedgerArgs,
    log: Option<File>,
    counts: BTreeMap<String, u64>,
}

impl LedgerBolt {
    /// A counter for `args`.
    pub fn new(args: &LedgerArgs) -> Self {
        Self {
            args: args.clone(),
            log: None,
            counts: BTreeMap::new(),
        }
    }
}

impl Bolt for LedgerBolt {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        let path = self.args.state_dir.join(format!(
            "processed-{}-{}.log",
            context.task_id(),
            std::process::id()
        ));
        self.log = Some(append_log(&path)?);
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let (Ok(id), Ok(word)) = (input.get_u64(0), input.get_str(1)) else {
            output.fail(input);
            return;
        };
        *self.counts.entry(word.to_owned()).or_insert(0) += 1;
        let log = self.log.as_mut().expect("prepared");
        // One write per line, as for the ack log.
        log.write_all(format!("{id} {word}\n").as_bytes())
            .expect("the processed log is writable");
        output.ack(input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn arguments_parse_with_defaults_for_the_rest() {
        let args = LedgerArgs::parse(&strings(&[
            "--messages",
            "500",
            "--state-dir",
            "/tmp/ledger",
            "--name",
            "drill",
            "--rate",
            "100",
        ]))
        .expect("parses");
        assert_eq!(args.name, "drill");
        assert_eq!(args.messages, 500);
        assert_eq!(args.state_dir, PathBuf::from("/tmp/ledger"));
        assert_eq!((args.spouts, args.counters, args.rate), (1, 2, 100));
    }

    #[test]
    fn bad_arguments_are_named() {
        let error = LedgerArgs::parse(&strings(&["--messages", "many"])).unwrap_err();
        assert!(error.to_string().contains("\"many\""), "{error}");
        let error = LedgerArgs::parse(&strings(&["--spouts"])).unwrap_err();
        assert!(
            error.to_string().contains("--spouts needs a value"),
            "{error}"
        );
        let error = LedgerArgs::parse(&strings(&["--colour", "red"])).unwrap_err();
        assert!(error.to_string().contains("--colour"), "{error}");
    }

    #[test]
    fn the_topology_is_named_by_its_arguments() {
        let topology =
            build_topology(&strings(&["--name", "drill", "--workers", "3"])).expect("builds");
        assert_eq!(topology.name(), "drill");
    }
}
