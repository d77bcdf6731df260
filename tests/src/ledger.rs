//! Components whose every outcome is logged durably, for tests that crash workers: the
//! spout logs acked message ids, the counting bolt logs each message it processed before
//! acking it, so "nothing acknowledged was lost" and "everything was processed at least
//! once" can be checked from the files after any crash.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use squall::{
    Bolt, BoltOutput, ComponentError, MessageId, OutputDeclarer, Spout, SpoutOutput,
    TopologyContext, Tuple, Value,
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

fn append_log(path: &Path) -> Result<File, ComponentError> {
    Ok(OpenOptions::new().create(true).append(true).open(path)?)
}

/// Emits its share of the messages `[id, word]`, tracked; logs every acked id; replays
/// failed ones; after a restart skips the ids its log says were acked.
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
            self.to_send.push_back(message.0);
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

/// What the logs in a state directory say.
#[derive(Debug, Default)]
pub struct LedgerCheck {
    /// Ids the spouts logged as acked.
    pub acked: BTreeSet<u64>,
    /// Ids the counters logged as processed, with how often.
    pub processed: BTreeMap<u64, u64>,
}

impl LedgerCheck {
    /// Reads every log in `dir`: first every ack log, then every processed log.
    ///
    /// The order matters while workers still run. A counter logs a message before acking
    /// it, and a spout logs the ack only after it arrives, so every ack read first was
    /// preceded by a processed line that the later read sees. Read the other way round (or
    /// in directory order), a message processed and acked between the two reads would look
    /// acked but never processed.
    pub fn read(dir: &Path) -> Self {
        let mut check = LedgerCheck::default();
        let logs = |prefix: &str| -> Vec<String> {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
                .map(|entry| entry.path())
                .collect();
            paths.sort();
            paths
                .iter()
                .map(|path| std::fs::read_to_string(path).unwrap_or_default())
                .collect()
        };
        // A line still being written (no newline yet) is not read.
        fn complete(text: &str) -> impl Iterator<Item = &str> {
            text.split_inclusive('\n')
                .filter_map(|line| line.strip_suffix('\n'))
        }
        for text in logs("acked-") {
            check
                .acked
                .extend(complete(&text).filter_map(|line| line.parse::<u64>().ok()));
        }
        for text in logs("processed-") {
            for line in complete(&text) {
                let mut parts = line.split(' ');
                let (Some(id), Some(word)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let Ok(id) = id.parse::<u64>() else { continue };
                assert_eq!(
                    word,
                    word_of(id),
                    "message {id} was counted under the wrong word"
                );
                *check.processed.entry(id).or_insert(0) += 1;
            }
        }
        check
    }

    /// Checks that every acked message was processed and, when `complete`, that all
    /// `messages` were acked; returns how many were processed more than once.
    ///
    /// # Panics
    /// When a check fails.
    pub fn assert_consistent(&self, messages: u64, complete: bool) -> u64 {
        for id in &self.acked {
            assert!(
                self.processed.contains_key(id),
                "message {id} was acked but never processed"
            );
        }
        if complete {
            let missing: Vec<u64> = (0..messages)
                .filter(|id| !self.acked.contains(id))
                .take(10)
                .collect();
            assert!(
                missing.is_empty(),
                "messages never acked, for instance {missing:?}"
            );
        }
        self.processed.values().filter(|times| **times > 1).count() as u64
    }
}
