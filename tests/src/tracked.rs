//! A tracked spout for tests that count what was acked and failed: it emits numbered
//! tuples once each and never replays them, so a failed id stays failed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall::{MessageId, OutputDeclarer, Spout, SpoutOutput, Value};

/// Distinct words the numbered tuples carry: `word-0` … `word-96`.
pub const WORDS: u64 = 97;

/// The ids the spout saw acked and failed.
#[derive(Debug, Default)]
pub struct Settled {
    /// Ids whose trees completed.
    pub acked: BTreeSet<u64>,
    /// Ids whose trees failed.
    pub failed: BTreeSet<u64>,
}

/// Emits `[id, word]` for ids `0..count`, one every `every` (flat out when zero), each
/// tracked by its id, the word being `word-{id % 97}`.
#[derive(Debug)]
pub struct Numbered {
    next: u64,
    count: u64,
    every: Duration,
    settled: Arc<Mutex<Settled>>,
}

impl Numbered {
    /// A spout of `count` tuples, recording what settled in `settled`.
    pub fn new(count: u64, every: Duration, settled: Arc<Mutex<Settled>>) -> Self {
        Self {
            next: 0,
            count,
            every,
            settled,
        }
    }
}

impl Spout for Numbered {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["id", "word"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.next == self.count {
            output.idle_for(Duration::from_millis(5));
            return;
        }
        let word = format!("word-{}", self.next % WORDS);
        output.emit_with_id(
            &[Value::U64(self.next), Value::Str(&word)],
            MessageId(self.next),
        );
        self.next += 1;
        if !self.every.is_zero() {
            output.idle_for(self.every);
        }
    }

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.settled.lock().unwrap().acked.insert(message.0);
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.settled.lock().unwrap().failed.insert(message.0);
    }
}
