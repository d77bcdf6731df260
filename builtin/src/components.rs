//! The spouts and bolts of the built-in demo and benchmark topologies.
//!
//! Every source stamps a sample of its tuples with the time they were (or, under a constant
//! rate, were meant to be) emitted, in a `stamp` field; the sinks record the time since the
//! stamp, so the latency percentiles cover the whole path. Unsampled tuples carry
//! [`NO_STAMP`].

use std::time::Duration;

use super::clock::{NO_STAMP, monotonic_nanos};
use super::counts::WordMap;
use super::latency::{LatencyHistogram, LatencyRecorder};
use super::meter::{MeterCounter, ThroughputMeter};
use super::pacing::{RatePacer, TuplesPerSecond};
use super::probe::{EmitSwitch, WordCountProbe};
use super::words::{SentenceGenerator, Vocabulary, WordIdGenerator, WordTally};
use squall_core::{
    Bolt, BoltOutput, ComponentError, InputBatch, MessageId, OutputDeclarer, Spout, SpoutOutput,
    TaskId, TopologyContext, Tuple, TupleRef, Value, tuple::EncodeValue,
};

/// Most tuples a paced source emits per `next_tuple` call when it has fallen behind.
const PACED_BURST: u64 = 64;

/// Tuples the word source emits per `next_tuple` call, in one batch, when it is not paced.
const WORD_RUN: usize = 64;

/// Shortest rest a paced source asks of its executor between bursts. Above 50 k tuples/s
/// per task, tuples are due closer together than a thread can sleep and wake, so they go
/// out in bursts this far apart: a tuple waits at most this long past its intended time
/// (which its stamp keeps), and the thread sleeps instead of polling every microsecond.
const PACED_REST_NANOS: u64 = 20_000;

/// How a source emits: when to stop, how fast, what to stamp, whether to track.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Turned off to stop every source holding it.
    pub switch: EmitSwitch,
    /// Emit at this constant rate (per source task) instead of flat out.
    pub rate: Option<TuplesPerSecond>,
    /// Stamp one tuple in this many (0: none).
    pub stamp_every: u32,
    /// Emit every tuple with a message id, so its tree is tracked.
    pub tracked: bool,
    /// Counts tuples emitted, over every source task.
    pub emitted: ThroughputMeter,
    /// Counts trees failed (tracked sources).
    pub failed: ThroughputMeter,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            switch: EmitSwitch::new(),
            rate: None,
            stamp_every: 1024,
            tracked: false,
            emitted: ThroughputMeter::new(),
            failed: ThroughputMeter::new(),
        }
    }
}

/// The per-task emitting state shared by the built-in sources.
#[derive(Debug)]
struct Emission {
    options: SourceOptions,
    pacer: Option<RatePacer>,
    stamp_countdown: u32,
    next_message: u64,
    emitted: MeterCounter,
    failed: MeterCounter,
}

impl Emission {
    fn new(options: SourceOptions) -> Self {
        let emitted = options.emitted.counter();
        let failed = options.failed.counter();
        Self {
            pacer: options
                .rate
                .map(|rate| RatePacer::new(rate, monotonic_nanos())),
            stamp_countdown: options.stamp_every,
            next_message: 0,
            emitted,
            failed,
            options,
        }
    }

    /// How many tuples to emit now (0 when stopped or not yet due). When a paced source
    /// has nothing due, it tells the executor how long to rest.
    #[inline]
    fn due(&self, output: &mut SpoutOutput<'_>) -> u64 {
        self.due_up_to(output, 1)
    }

    /// [`due`](Self::due) for a source that emits `unpaced` tuples per call when it is not
    /// paced.
    #[inline]
    fn due_up_to(&self, output: &mut SpoutOutput<'_>, unpaced: u64) -> u64 {
        if !self.options.switch.is_on() {
            return 0;
        }
        let Some(pacer) = &self.pacer else {
            return unpaced;
        };
        let now = monotonic_nanos();
        let due = pacer.due(now);
        if due == 0 {
            let until_due = pacer.next_intended_nanos().saturating_sub(now);
            output.idle_for(Duration::from_nanos(until_due.max(PACED_REST_NANOS)));
        }
        due.min(PACED_BURST)
    }

    /// The stamp of the next tuple: its intended time under a rate, else now; one in
    /// `stamp_every`.
    #[inline]
    fn next_stamp(&mut self) -> u64 {
        let index = self.pacer.as_mut().map(|pacer| pacer.mark_sent(1));
        if self.options.stamp_every == 0 {
            return NO_STAMP;
        }
        self.stamp_countdown -= 1;
        if self.stamp_countdown > 0 {
            return NO_STAMP;
        }
        self.stamp_countdown = self.options.stamp_every;
        // The intended time takes a 128-bit division: only stamped tuples pay for it.
        match (&self.pacer, index) {
            (Some(pacer), Some(index)) => pacer.intended_nanos(index),
            _ => monotonic_nanos(),
        }
    }

    #[inline(always)]
    fn emit(&mut self, output: &mut SpoutOutput<'_>, values: &[Value<'_>]) {
        if self.options.tracked {
            self.next_message += 1;
            output.emit_with_id(values, MessageId(self.next_message));
        } else {
            output.emit(values);
        }
        self.emitted.add(1);
    }

    /// Emits `tuples` in one batch, each with the next message id when tracked (`messages`
    /// is scratch for them, at least as long as `tuples`).
    #[inline(always)]
    fn emit_batch<V: EncodeValue, const N: usize>(
        &mut self,
        output: &mut SpoutOutput<'_>,
        tuples: &[[V; N]],
        messages: &mut [MessageId],
    ) {
        if self.options.tracked {
            let messages = &mut messages[..tuples.len()];
            for message in messages.iter_mut() {
                self.next_message += 1;
                *message = MessageId(self.next_message);
            }
            output.emit_batch_with_ids(tuples, messages);
        } else {
            output.emit_batch(tuples);
        }
        self.emitted.add(tuples.len() as u64);
    }

    /// Emits the tuples due now, up to `run`'s length, in one batch of plain numbers:
    /// `tuple` makes each from its stamp. `run` and `messages` are scratch of one length.
    #[inline(always)]
    fn emit_run<const N: usize>(
        &mut self,
        output: &mut SpoutOutput<'_>,
        run: &mut [[u64; N]],
        messages: &mut [MessageId],
        mut tuple: impl FnMut(u64) -> [u64; N],
    ) {
        let due = (self.due_up_to(output, run.len() as u64) as usize).min(run.len());
        if due == 0 {
            return;
        }
        let run = &mut run[..due];
        for slot in run.iter_mut() {
            *slot = tuple(self.next_stamp());
        }
        self.emit_batch(output, run, messages);
    }
}

/// Tuples a constant source emits per `next_tuple` call when not paced.
const CONST_RUN: usize = 64;

/// Emits a constant value and a stamp: `[value: u64, stamp: u64]`.
#[derive(Debug)]
pub struct ConstSpout {
    emission: Emission,
    value: u64,
}

impl ConstSpout {
    /// A source of `value`.
    pub fn new(value: u64, options: SourceOptions) -> Self {
        Self {
            emission: Emission::new(options),
            value,
        }
    }
}

impl Spout for ConstSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["value", "stamp"]);
    }

    /// Emits in batches of plain numbers: tracked or not, they cost less per tuple than
    /// single emits, with their length known without a look at the values.
    #[inline]
    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        let value = self.value;
        self.emission.emit_run(
            output,
            &mut [[0; 2]; CONST_RUN],
            &mut [MessageId(0); CONST_RUN],
            |stamp| [value, stamp],
        );
    }

    fn fail(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.emission.failed.add(1);
    }
}

/// Emits a fixed payload and a stamp: `[payload: bytes, stamp: u64]`, so that its tuples have
/// one exact encoded size, [`PayloadSpout::record_len`]. [`NullBolt`] reads the stamp.
#[derive(Debug)]
pub struct PayloadSpout {
    emission: Emission,
    payload: Box<[u8]>,
}

impl PayloadSpout {
    /// A source of tuples carrying `payload_len` bytes.
    pub fn new(payload_len: usize, options: SourceOptions) -> Self {
        // A recognisable pattern rather than zeros, for whoever looks at the bytes.
        let payload = (0..payload_len).map(|at| (at % 251) as u8).collect();
        Self {
            emission: Emission::new(options),
            payload,
        }
    }

    /// Bytes of the encoded record of an untracked tuple with `payload_len` bytes of payload:
    /// the record header, the bytes field (tag, length, payload) and the stamp (tag, `u64`).
    pub fn record_len(payload_len: usize) -> usize {
        let payload = vec![0; payload_len];
        squall_core::tuple::HEADER_BYTES
            + squall_core::tuple::fields_len(&[Value::Bytes(&payload), Value::U64(0)])
    }

    /// The payload length that makes records of `record_len` bytes, if one does.
    pub fn payload_len_for(record_len: usize) -> Option<usize> {
        record_len.checked_sub(Self::record_len(0))
    }
}

impl Spout for PayloadSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["payload", "stamp"]);
    }

    #[inline]
    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        for _ in 0..self.emission.due(output) {
            let stamp = self.emission.next_stamp();
            self.emission
                .emit(output, &[Value::Bytes(&self.payload), Value::U64(stamp)]);
        }
    }

    fn fail(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.emission.failed.add(1);
    }
}

/// Emits word ids drawn uniformly from a vocabulary, and a stamp: `[word: u64, stamp: u64]`;
/// or, with [`WordSpout::spelled`], the words themselves: `[word: string, stamp: u64]`.
#[derive(Debug)]
pub struct WordSpout {
    emission: Emission,
    ids: WordIdGenerator,
    tally: WordTally,
    spelled: Option<Vocabulary>,
    probe: WordCountProbe,
    seed: u64,
    /// The tuples of the batch being emitted (ids only), and their message ids.
    run: Box<[[u64; 2]; WORD_RUN]>,
    messages: Box<[MessageId; WORD_RUN]>,
}

impl WordSpout {
    /// A source of word ids; each task draws from its own seed (`seed` plus its task id) and
    /// reports what it drew to `probe` when it closes.
    pub fn ids(seed: u64, probe: WordCountProbe, options: SourceOptions) -> Self {
        let size = u32::try_from(probe.vocabulary().len()).unwrap_or(u32::MAX);
        Self {
            emission: Emission::new(options),
            ids: WordIdGenerator::new(seed, size),
            tally: WordTally::new(size),
            spelled: None,
            probe,
            seed,
            run: Box::new([[0; 2]; WORD_RUN]),
            messages: Box::new([MessageId(0); WORD_RUN]),
        }
    }

    /// A source of words spelled out as strings.
    pub fn spelled(seed: u64, probe: WordCountProbe, options: SourceOptions) -> Self {
        let vocabulary = probe.vocabulary().clone();
        Self {
            spelled: Some(vocabulary),
            ..Self::ids(seed, probe, options)
        }
    }
}

impl Spout for WordSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word", "stamp"]);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.ids = WordIdGenerator::new(
            self.seed.wrapping_add(u64::from(context.task_id().0)),
            self.ids.vocabulary_size(),
        );
        Ok(())
    }

    #[inline]
    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.spelled.is_none() {
            let (ids, tally) = (&mut self.ids, &mut self.tally);
            self.emission
                .emit_run(output, &mut self.run[..], &mut self.messages[..], |stamp| {
                    let id = ids.next_id();
                    tally.add(id);
                    [id, stamp]
                });
            return;
        }
        for _ in 0..self.emission.due(output) {
            let id = self.ids.next_id();
            self.tally.add(id);
            let stamp = self.emission.next_stamp();
            let word = match &self.spelled {
                Some(vocabulary) => Value::Str(vocabulary.word(id)),
                None => Value::U64(id),
            };
            self.emission.emit(output, &[word, Value::U64(stamp)]);
        }
    }

    fn fail(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.emission.failed.add(1);
    }

    fn close(&mut self) {
        self.probe.report_tally(&self.tally);
    }
}

/// Emits sentences of words: `[sentence: string]`, for the split → count demo.
#[derive(Debug)]
pub struct SentenceSpout {
    emission: Emission,
    sentences: SentenceGenerator,
    line: String,
    tally: WordTally,
    probe: WordCountProbe,
    seed: u64,
}

impl SentenceSpout {
    /// Sentences of `words_per_sentence` words from the probe's vocabulary.
    pub fn new(
        seed: u64,
        words_per_sentence: usize,
        probe: WordCountProbe,
        options: SourceOptions,
    ) -> Self {
        let vocabulary = probe.vocabulary().clone();
        let size = u32::try_from(vocabulary.len()).unwrap_or(u32::MAX);
        Self {
            emission: Emission::new(options),
            sentences: SentenceGenerator::new(seed, vocabulary, words_per_sentence),
            line: String::new(),
            tally: WordTally::new(size),
            probe,
            seed,
        }
    }
}

impl Spout for SentenceSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["sentence", "stamp"]);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        let vocabulary = self.probe.vocabulary().clone();
        let words = self.sentences.words_per_sentence();
        self.sentences = SentenceGenerator::new(
            self.seed.wrapping_add(u64::from(context.task_id().0)),
            vocabulary,
            words,
        );
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        for _ in 0..self.emission.due(output) {
            self.sentences
                .next_sentence(&mut self.line, &mut self.tally);
            let stamp = self.emission.next_stamp();
            let line = std::mem::take(&mut self.line);
            self.emission
                .emit(output, &[Value::Str(&line), Value::U64(stamp)]);
            self.line = line;
        }
    }

    fn fail(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.emission.failed.add(1);
    }

    fn close(&mut self) {
        self.probe.report_tally(&self.tally);
    }
}

/// What a sink measures: tuples received, and the latency of stamped ones.
#[derive(Debug, Clone, Default)]
pub struct SinkProbes {
    /// Tuples received, over every sink task.
    pub received: ThroughputMeter,
    /// Latency from each stamp to its arrival at a sink.
    pub latency: LatencyHistogram,
}

/// One sink task's measuring state.
#[derive(Debug)]
pub(crate) struct SinkMeters {
    pub(crate) received: MeterCounter,
    pub(crate) latency: LatencyRecorder,
}

impl SinkMeters {
    pub(crate) fn new(probes: &SinkProbes) -> Self {
        Self {
            received: probes.received.counter(),
            latency: probes.latency.recorder(),
        }
    }

    /// Counts `input` and records its latency from the stamp in field `stamp_field`.
    #[inline(always)]
    pub(crate) fn record(&mut self, input: &TupleRef<'_>, stamp_field: usize) {
        self.received.add(1);
        if let Ok(stamp) = input.get_u64(stamp_field) {
            self.latency.record_since(stamp);
        }
    }
}

/// Drops what it receives after counting it and recording its latency (stamp in field 1),
/// and acks it.
#[derive(Debug)]
pub struct NullBolt {
    meters: SinkMeters,
}

impl NullBolt {
    /// A sink reporting to `probes`.
    pub fn new(probes: &SinkProbes) -> Self {
        Self {
            meters: SinkMeters::new(probes),
        }
    }
}

impl Bolt for NullBolt {
    #[inline]
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.meters.record(input, 1);
        output.ack(input);
    }

    /// Reads a run in place, counting and timing each tuple, and acks it whole.
    fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
        batch.read_then_ack(|tuples| {
            for tuple in tuples {
                self.meters.record(tuple, 1);
            }
            tuples.len()
        });
    }

    fn wants_runs(&self) -> bool {
        true
    }

    fn cleanup(&mut self) {
        self.meters.latency.flush();
    }
}

/// Emits every input unchanged, anchored to it, and acks it.
#[derive(Debug, Default)]
pub struct IdentityBolt;

impl Bolt for IdentityBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["value", "stamp"]);
    }

    #[inline]
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let (Ok(value), Ok(stamp)) = (input.get_u64(0), input.get_u64(1)) else {
            output.fail(input);
            return;
        };
        output.emit_anchored(input, &[Value::U64(value), Value::U64(stamp)]);
        output.ack(input);
    }

    /// Passes runs on as plain numbers, each anchored to its input, and stops at a tuple
    /// that is not two numbers, for `execute` to fail.
    #[inline]
    fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
        batch.map_then_ack(|input| Some([input.get_u64(0).ok()?, input.get_u64(1).ok()?]));
    }

    fn wants_runs(&self) -> bool {
        true
    }
}

/// Splits sentences into words: `[word: string, stamp: u64]`, anchored to the sentence; the
/// sentence's stamp goes with its first word only.
#[derive(Debug, Default)]
pub struct SplitBolt;

impl Bolt for SplitBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word", "stamp"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let Ok(sentence) = input.get_str(0) else {
            output.fail(input);
            return;
        };
        // A sentence from a file has no time stamp.
        let mut stamp = input.get_u64(1).unwrap_or(NO_STAMP);
        for word in sentence.split(' ').filter(|word| !word.is_empty()) {
            output.emit_anchored(input, &[Value::Str(word), Value::U64(stamp)]);
            stamp = NO_STAMP;
        }
        output.ack(input);
    }
}

/// Counts words by id (field 0 a `u64`) or by spelling (a string); reports its counts to the
/// probe when it stops, acks every input, and records latency from field 1.
#[derive(Debug)]
pub struct CountBolt {
    by_id: WordMap<u64, u64>,
    by_word: WordMap<Box<str>, u64>,
    probe: WordCountProbe,
    meters: SinkMeters,
    task: TaskId,
}

impl CountBolt {
    /// A counter reporting to `probe` and `sinks`.
    pub fn new(probe: WordCountProbe, sinks: &SinkProbes) -> Self {
        // Sized in `prepare`, once the counter knows how many share the vocabulary.
        Self {
            by_id: WordMap::default(),
            by_word: WordMap::default(),
            probe,
            meters: SinkMeters::new(sinks),
            task: TaskId(0),
        }
    }
}

/// Ids a counter takes from a run before counting them: the longest run the executor hands
/// out.
const COUNT_RUN: usize = 64;

/// Room a counter makes for its share of a `vocabulary` spread over `tasks` counters: a fifth
/// more than an even share and a little more, so an uneven split does not grow the map after
/// warm-up; one counter gets exactly the vocabulary.
fn counter_capacity(vocabulary: usize, tasks: usize) -> usize {
    if tasks <= 1 {
        return vocabulary;
    }
    (vocabulary.div_ceil(tasks) * 5 / 4 + 64).min(vocabulary)
}

impl CountBolt {
    /// Counts a word that is not an id: a string; false for anything else.
    fn count_other(&mut self, input: &TupleRef<'_>) -> bool {
        let Ok(word) = input.get_str(0) else {
            return false;
        };
        match self.by_word.get_mut(word) {
            Some(count) => *count += 1,
            None => {
                self.by_word.insert(word.into(), 1);
            }
        }
        true
    }

    /// Counts `tuples` up to the first whose word is neither an id nor a string, and
    /// returns how many it counted. The ids are taken first and counted after, in a loop of
    /// nothing but map updates, whose lookups the CPU overlaps.
    #[inline(always)]
    fn count_run(&mut self, tuples: &[TupleRef<'_>]) -> usize {
        let mut ids = [0u64; COUNT_RUN];
        let mut taken_ids = 0;
        let mut counted = tuples.len();
        for (index, tuple) in tuples.iter().enumerate() {
            match tuple.get_u64(0) {
                Ok(id) if taken_ids < COUNT_RUN => {
                    ids[taken_ids] = id;
                    taken_ids += 1;
                }
                Ok(id) => *self.by_id.entry(id).or_insert(0) += 1,
                Err(_) if self.count_other(tuple) => {}
                Err(_) => {
                    counted = index;
                    break;
                }
            }
            self.meters.record(tuple, 1);
        }
        for &id in &ids[..taken_ids] {
            *self.by_id.entry(id).or_insert(0) += 1;
        }
        counted
    }
}

impl Bolt for CountBolt {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.task = context.task_id();
        // Each counter holds only the words grouped to it. Sized for the whole vocabulary,
        // sixteen counters scattered their words over sixteen times the buckets, one cache
        // line per word, and counting became a cache miss per tuple.
        let capacity = counter_capacity(
            self.probe.vocabulary().len(),
            context.component_tasks().len(),
        );
        self.by_id = WordMap::with_capacity_and_hasher(capacity, Default::default());
        self.by_word = WordMap::with_capacity_and_hasher(capacity, Default::default());
        Ok(())
    }

    #[inline]
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        // Typed accessors, ids first: `get_u64` reads the id in place, where the general
        // `get` returns its value through memory, and reading that back stalled the counter.
        if let Ok(id) = input.get_u64(0) {
            *self.by_id.entry(id).or_insert(0) += 1;
        } else if !self.count_other(input) {
            output.fail(input);
            return;
        }
        self.meters.record(input, 1);
        output.ack(input);
    }

    /// Reads a run in place and counts it, acking what it counted (see `count_run`).
    fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
        batch.read_then_ack(|tuples| self.count_run(tuples));
    }

    fn wants_runs(&self) -> bool {
        true
    }

    fn cleanup(&mut self) {
        self.meters.latency.flush();
        if !self.by_id.is_empty() || self.by_word.is_empty() {
            self.probe
                .report_id_counts(self.task, std::mem::take(&mut self.by_id));
        }
        if !self.by_word.is_empty() {
            self.probe
                .report_word_counts(self.task, std::mem::take(&mut self.by_word));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::counter_capacity;

    #[test]
    fn a_counter_makes_room_for_its_share_of_the_vocabulary() {
        assert_eq!(
            counter_capacity(10_000, 1),
            10_000,
            "one counter: every word"
        );
        assert_eq!(counter_capacity(10_000, 0), 10_000);
        assert_eq!(counter_capacity(10_000, 16), 625 * 5 / 4 + 64);
        assert_eq!(
            counter_capacity(100, 2),
            100,
            "never more than the vocabulary"
        );
        // An uneven split of the vocabulary over the counters still fits: a share five
        // standard deviations above the mean stays inside the room made for it.
        let mean = 10_000.0 / 16.0;
        let deviation = (mean * (1.0 - 1.0 / 16.0_f64)).sqrt();
        assert!(mean + 5.0 * deviation < counter_capacity(10_000, 16) as f64);
    }
}
