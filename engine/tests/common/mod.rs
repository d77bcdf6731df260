//! Components and helpers shared by the engine's integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use squall_core::{
    Bolt, BoltOutput, MessageId, OutputDeclarer, Spout, SpoutOutput, TaskId, TopologyContext,
    Tuple, Value, ValueRef,
};

/// Emits `[n, key]` for n in 0..limit (key = n % keys), optionally tracked with message id n,
/// then nothing; counts what it emitted, acked and failed.
#[derive(Debug, Clone)]
pub struct SeqSpout {
    pub next: u64,
    pub limit: u64,
    pub keys: u64,
    pub tracked: bool,
    /// Tuples emitted per call, in one `emit_batch` when more than one.
    pub batch: usize,
    pub counts: Arc<SpoutCounts>,
}

/// What a [`SeqSpout`] reports.
#[derive(Debug, Default)]
pub struct SpoutCounts {
    pub emitted: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub acked_ids: Mutex<Vec<u64>>,
    pub failed_ids: Mutex<Vec<u64>>,
}

impl SpoutCounts {
    pub fn emitted(&self) -> u64 {
        self.emitted.load(Ordering::SeqCst)
    }
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
}

impl SeqSpout {
    pub fn new(limit: u64, keys: u64, counts: Arc<SpoutCounts>) -> Self {
        Self {
            next: 0,
            limit,
            keys,
            tracked: false,
            batch: 1,
            counts,
        }
    }

    /// Emits up to `batch` tuples per call, in one batch.
    pub fn in_batches_of(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    pub fn tracked(mut self) -> Self {
        self.tracked = true;
        self
    }
}

impl Spout for SeqSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n", "key"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.next >= self.limit {
            return;
        }
        if self.batch > 1 {
            let count = (self.limit - self.next).min(self.batch as u64);
            let keys = self.keys.max(1);
            let ids: Vec<u64> = (self.next..self.next + count).collect();
            let tuples: Vec<[Value<'_>; 2]> = ids
                .iter()
                .map(|&n| [Value::U64(n), Value::U64(n % keys)])
                .collect();
            if self.tracked {
                let messages: Vec<MessageId> = ids.iter().copied().map(MessageId).collect();
                output.emit_batch_with_ids(&tuples, &messages);
            } else {
                output.emit_batch(&tuples);
            }
            self.next += count;
            self.counts.emitted.fetch_add(count, Ordering::SeqCst);
            return;
        }
        let n = self.next;
        self.next += 1;
        let values = [Value::U64(n), Value::U64(n % self.keys.max(1))];
        if self.tracked {
            output.emit_with_id(&values, MessageId(n));
        } else {
            output.emit(&values);
        }
        self.counts.emitted.fetch_add(1, Ordering::SeqCst);
    }

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.counts.acked.fetch_add(1, Ordering::SeqCst);
        self.counts.acked_ids.lock().unwrap().push(message.0);
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.counts.failed.fetch_add(1, Ordering::SeqCst);
        self.counts.failed_ids.lock().unwrap().push(message.0);
    }
}

/// One tuple as a [`Recorder`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub task: TaskId,
    pub source_component: String,
    pub stream: String,
    pub values: Vec<u64>,
}

/// Shared log of what recorders saw.
pub type SeenLog = Arc<Mutex<Vec<Seen>>>;

/// Records every tuple (its u64 fields) with the receiving task, and acks it.
#[derive(Debug)]
pub struct Recorder {
    pub log: SeenLog,
    pub task: TaskId,
    pub outputs: Vec<&'static str>,
}

impl Recorder {
    pub fn new(log: SeenLog) -> Self {
        Self {
            log,
            task: TaskId(0),
            outputs: Vec::new(),
        }
    }
}

impl Bolt for Recorder {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        if !self.outputs.is_empty() {
            declarer.declare(&self.outputs);
        }
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), squall_core::ComponentError> {
        self.task = context.task_id();
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let values = input
            .fields()
            .map(|field| match field {
                Ok(ValueRef::U64(value)) => value,
                Ok(ValueRef::I64(value)) => value as u64,
                other => panic!("unexpected field {other:?}"),
            })
            .collect();
        self.log.lock().unwrap().push(Seen {
            task: self.task,
            source_component: input.source_component().to_owned(),
            stream: input.source_stream().to_owned(),
            values,
        });
        output.ack(input);
    }
}

/// Counts the tuples it receives, and acks them.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    pub count: Arc<AtomicU64>,
}

impl Bolt for Counter {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        output.ack(input);
    }
}
