//! Taking records out of rings and the own queue, and handing each to its task: a bolt's
//! `execute`, a spout's `ack`/`fail`, or the acker's ledger.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::task_cell::{TaskBody, TaskCell, panic_message};
use super::{ExecutorThread, InputPort};
use crate::config::PanicPolicy;
use crate::ids::{StreamId, TaskId};
use crate::runtime::acking::TreeOutcome;
use crate::runtime::anchor::{Anchor, Tuple};
use crate::runtime::collector::{BoltOutput, TaskOutput};
use crate::runtime::run_state::TaskErrorKind;
use crate::runtime::start::Plane;
use crate::tuple::{TupleRef, encode_record};
use crate::value::Value;

impl ExecutorThread {
    /// Drains the inputs of one plane, one batch per ring, and what those batches sent to
    /// this thread's own tasks. Returns whether anything was processed.
    pub(super) fn drain_inputs(&mut self, plane: Plane) -> bool {
        let mut inputs = std::mem::take(match plane {
            Plane::Ack => &mut self.ack_inputs,
            Plane::Data => &mut self.data_inputs,
        });
        let mut progress = false;
        for port in &mut inputs {
            progress |= self.drain_port(port);
        }
        match plane {
            Plane::Ack => self.ack_inputs = inputs,
            Plane::Data => self.data_inputs = inputs,
        }
        progress
    }

    fn drain_port(&mut self, port: &mut InputPort) -> bool {
        if !port.has_records() {
            return false;
        }
        let batch = port.consumer.read_lazy(self.input_batch);
        self.process_guarded(&mut batch.iter());
        let taken = batch.taken();
        batch.release();
        if taken == 0 {
            return false;
        }
        if !port.is_from_peers() {
            self.processed += taken as u64;
        }
        port.consumed += taken as u64;
        port.counters
            .consumed
            .store(port.consumed, Ordering::Release);
        #[cfg(feature = "stage-trace")]
        port.counters.traced.drained(port.consumed);
        if let Some(carrier) = &port.producer {
            // SeqCst fence: orders the release of the batch above before the load of the
            // flag, pairing with the fence in the sink's `deliver` (`worker::inbound`), so a
            // transport that found this ring full either sees the room or gets woken.
            std::sync::atomic::fence(Ordering::SeqCst);
            if port.counters.producer_waiting.load(Ordering::Relaxed)
                && port.counters.producer_waiting.swap(false, Ordering::AcqRel)
            {
                carrier.room_freed();
            }
        }
        self.drain_local();
        true
    }

    /// Processes `records`, catching a panic of the task code they run: the panicking task
    /// is handled (see [`task_panicked`](Self::task_panicked)) and the rest of the records
    /// are processed. One guard covers a whole batch, so the fast path pays for it once.
    pub(super) fn process_guarded<'r>(&mut self, records: &mut impl Iterator<Item = &'r [u8]>) {
        self.batch_clock = self.now_nanos();
        loop {
            let mut current: &[u8] = &[];
            let result = catch_unwind(AssertUnwindSafe(|| {
                for record in records.by_ref() {
                    current = record;
                    self.process_record(record);
                }
            }));
            match result {
                Ok(()) => return,
                Err(payload) => self.record_panicked(current, payload.as_ref()),
            }
        }
    }

    /// Handles a panic while `record` was being processed.
    fn record_panicked(&mut self, record: &[u8], payload: &(dyn std::any::Any + Send)) {
        let panic = panic_message(payload);
        let Ok(view) = TupleRef::parse(record) else {
            tracing::error!(thread = self.index, "a panic outside any task: {panic}");
            return;
        };
        let Some(index) = self.cell_index(view.dest_task()) else {
            tracing::error!(thread = self.index, "a panic outside any task: {panic}");
            return;
        };
        let tuple = Tuple::new(view, &self.topology);
        let message = format!(
            "execute panicked on a tuple from {:?} stream {:?}: {panic}",
            tuple.source_component(),
            tuple.source_stream(),
        );
        let anchor = tuple.anchor().clone();
        drop(tuple);
        self.task_panicked(index, message, Some(&anchor));
    }

    /// Processes what this thread's tasks sent each other, until none is left.
    pub(super) fn drain_local(&mut self) {
        while self.emitter.local.has_unpublished() {
            self.emitter.local.flush_overflow();
            self.emitter.local.publish();
            let Some(mut consumer) = self.local_input.take() else {
                return;
            };
            loop {
                let batch = consumer.read_lazy(self.input_batch);
                self.process_guarded(&mut batch.iter());
                let taken = batch.taken();
                batch.release();
                if taken == 0 {
                    break;
                }
                self.processed += taken as u64;
            }
            self.local_input = Some(consumer);
        }
    }

    #[inline]
    fn cell_index(&self, task: TaskId) -> Option<usize> {
        self.cell_of_task
            .get(task.index())
            .copied()
            .filter(|index| *index != u16::MAX)
            .map(usize::from)
    }

    /// Hands one record to its task. (The caller counts it in `processed`.)
    #[inline]
    pub(super) fn process_record(&mut self, record: &[u8]) {
        let view = match TupleRef::parse(record) {
            Ok(view) => view,
            Err(error) => {
                self.report_malformed(None, format!("{error}"));
                return;
            }
        };
        let task = view.dest_task();
        let Some(index) = self.cell_index(task) else {
            self.report_malformed(
                None,
                format!("record for task {task}, which does not run on this thread"),
            );
            return;
        };
        let stream = StreamId(view.stream_id());
        match self.tasks[index].body {
            TaskBody::Bolt(_) => self.execute_bolt(index, view),
            TaskBody::Spout(_) => self.settle_tree(index, view, stream),
            TaskBody::Acker(_) => self.acker_message(index, view, stream),
            TaskBody::Dead => {
                // Its trees fail at once, so their spouts replay them now rather than after
                // the message timeout.
                let tuple = Tuple::new(view, &self.topology);
                let anchor = tuple.anchor().clone();
                drop(tuple);
                self.fail_input(index, &anchor);
                if !self.tasks[index].reported_dead {
                    self.tasks[index].reported_dead = true;
                    let error = self.task_error(
                        index,
                        TaskErrorKind::StartFailed,
                        "records for this task fail at once: it did not start".to_owned(),
                    );
                    self.run_state.report(error);
                }
            }
        }
    }

    fn report_malformed(&self, index: Option<usize>, message: String) {
        let (component, task) = match index {
            Some(index) => (
                self.tasks[index].out.component_id.clone(),
                self.tasks[index].out.task,
            ),
            None => (format!("executor thread {}", self.index), TaskId(0)),
        };
        self.run_state.report(crate::runtime::run_state::TaskError {
            topology: self.topology.name().to_owned(),
            component,
            task,
            kind: TaskErrorKind::MalformedRecord,
            message,
            at: std::time::SystemTime::now(),
        });
    }

    /// Runs a bolt's `execute` on one record. A panic propagates to the caller's guard.
    #[inline(always)]
    pub(super) fn execute_bolt(&mut self, index: usize, view: TupleRef<'_>) {
        let Self {
            topology,
            tasks,
            emitter,
            run_state,
            ..
        } = self;
        let tuple = Tuple::new(view, topology);
        let TaskCell { out, body, .. } = &mut tasks[index];
        let TaskBody::Bolt(state) = body else {
            unreachable!("dispatched to a bolt")
        };
        let started = out.meter.sample_execute().then(Instant::now);
        let auto_ack = state.auto_ack;
        let mut output = BoltOutput {
            out: TaskOutput {
                emitter,
                run_state,
                task: out,
            },
            auto_anchor: auto_ack.then_some(tuple.anchor()),
        };
        state.bolt.execute(&tuple, &mut output);
        if auto_ack && !tuple.anchor().is_settled() {
            output.ack(tuple.anchor());
        }
        let meter = &mut output.out.task.meter;
        meter.input_executed(tuple.anchor().stream());
        if let Some(started) = started {
            meter.record_execute(started.elapsed().as_nanos() as u64);
        }
    }

    /// Reports a panic, fails the input being processed (so its tree replays at once) and
    /// restarts the task, or stops the topology, as configured.
    pub(super) fn task_panicked(&mut self, index: usize, message: String, input: Option<&Anchor>) {
        if let Some(anchor) = input {
            self.fail_input(index, anchor);
        }
        let error = self.task_error(index, TaskErrorKind::Panic, message);
        self.fail_task(error);
        if self.topology.config().on_panic == PanicPolicy::RestartTask {
            // The instance may be half-updated: it is dropped without `cleanup`, as a crashed
            // worker's would be, and a fresh one starts.
            let old = std::mem::replace(&mut self.tasks[index].body, TaskBody::Dead);
            if catch_unwind(AssertUnwindSafe(move || drop(old))).is_err() {
                tracing::warn!(
                    task = self.tasks[index].out.task.0,
                    "dropping a panicked task panicked too"
                );
            }
            let now = self.now_nanos();
            self.start_task(index, now);
        }
    }

    /// Fails the trees of an input task `index` will never process, unless it was settled.
    fn fail_input(&mut self, index: usize, anchor: &Anchor) {
        if !anchor.settle() {
            return;
        }
        let task = self.tasks[index].out.task;
        self.tasks[index].out.meter.input_failed(anchor.stream());
        for &(root, _) in anchor.pairs() {
            if let Some(acker) = self.emitter.acker_of(root) {
                self.emitter
                    .send_system(acker, task, StreamId::ACK_FAIL, &[root]);
            }
        }
    }

    /// A spout's tree completed or failed.
    fn settle_tree(&mut self, index: usize, view: TupleRef<'_>, stream: StreamId) {
        let acked = match stream {
            StreamId::ACK_ACK => true,
            StreamId::ACK_FAIL => false,
            other => {
                let message = format!("spout task received a record on stream {}", other.0);
                self.report_malformed(Some(index), message);
                return;
            }
        };
        let Ok(root) = view.get_u64(0) else {
            self.report_malformed(Some(index), "acker reply without a root id".to_owned());
            return;
        };
        let now = self.batch_clock;
        let cell = &mut self.tasks[index];
        let TaskBody::Spout(state) = &mut cell.body else {
            unreachable!("dispatched to a spout")
        };
        // A tree that timed out before its outcome arrived was already failed.
        let Some(tree) = state.pending.take(root) else {
            return;
        };
        cell.out.meter.counters.pending = state.pending.len() as u64;
        cell.out.meter.tree_settled(tree.stream, acked);
        if acked {
            cell.out
                .meter
                .record_complete(now.saturating_sub(tree.emitted_nanos));
        }
        self.call_spout(
            index,
            super::spouts::SpoutCall::Settled(tree.message, acked),
            now,
        );
    }

    /// One message for the acker's ledger.
    fn acker_message(&mut self, index: usize, view: TupleRef<'_>, stream: StreamId) {
        if stream == StreamId::LINK_LOST {
            self.link_lost(index, view);
            return;
        }
        let now = self.batch_clock;
        let cell = &mut self.tasks[index];
        let TaskBody::Acker(ledger) = &mut cell.body else {
            unreachable!("dispatched to an acker")
        };
        let (root, value) = match (view.get_u64(0), view.get_u64(1)) {
            (Ok(root), value) => (root, value),
            (Err(error), _) => {
                self.report_malformed(
                    Some(index),
                    format!("acker message without a root id: {error}"),
                );
                return;
            }
        };
        // Reporters that name no workers touched none beyond what others report.
        let workers = view.get_u64(2).unwrap_or(0);
        let outcome = match (stream, value) {
            (StreamId::ACK_INIT, Ok(edges)) => {
                ledger.init(root, edges, workers, view.source_task(), now)
            }
            (StreamId::ACK_ACK, Ok(value)) => ledger.ack(root, value, workers, now),
            (StreamId::ACK_FAIL, _) => ledger.fail(root, now),
            (other, _) => {
                let message = format!("acker received a malformed record on stream {}", other.0);
                self.report_malformed(Some(index), message);
                return;
            }
        };
        cell.out.meter.counters.executed += 1;
        cell.out.meter.counters.pending = ledger.len() as u64;
        let Some(outcome) = outcome else {
            return;
        };
        let task = cell.out.task;
        match outcome {
            TreeOutcome::Completed { spout_task } => {
                cell.out.meter.counters.acked += 1;
                self.emitter
                    .send_system(spout_task, task, StreamId::ACK_ACK, &[root]);
            }
            TreeOutcome::Failed { spout_task } => {
                cell.out.meter.counters.failed += 1;
                self.emitter
                    .send_system(spout_task, task, StreamId::ACK_FAIL, &[root]);
            }
        }
    }

    /// A worker lost its link to another: acker task `index` fails the trees that touched
    /// both (see `tree_workers`), telling their spouts at once.
    fn link_lost(&mut self, index: usize, view: TupleRef<'_>) {
        let Ok(link) = view.get_u64(0) else {
            self.report_malformed(Some(index), "link loss without its workers".to_owned());
            return;
        };
        let own = self.emitter.tree_workers.own();
        let cell = &mut self.tasks[index];
        let TaskBody::Acker(ledger) = &mut cell.body else {
            unreachable!("dispatched to an acker")
        };
        let mut failed = Vec::new();
        ledger.fail_routed_through(link, own, |root, spout_task| {
            failed.push((root, spout_task));
        });
        cell.out.meter.counters.failed += failed.len() as u64;
        cell.out.meter.counters.pending = ledger.len() as u64;
        let task = cell.out.task;
        if !failed.is_empty() {
            tracing::info!(
                acker = task.0,
                trees = failed.len(),
                "a link between workers was lost: failing the trees routed through it"
            );
        }
        for (root, spout_task) in failed {
            self.emitter
                .send_system(spout_task, task, StreamId::ACK_FAIL, &[root]);
        }
    }

    /// Delivers a tick tuple to bolt task `index`.
    pub(super) fn deliver_tick(&mut self, index: usize, every_nanos: u64) {
        let mut record = std::mem::take(&mut self.tick_record);
        let task = self.tasks[index].out.task;
        encode_record(
            &mut record,
            task,
            TaskId(0),
            StreamId::TICK.0,
            &[],
            &[Value::U64(every_nanos / 1_000_000)],
        );
        if let Ok(view) = TupleRef::parse(&record) {
            let result = catch_unwind(AssertUnwindSafe(|| self.execute_bolt(index, view)));
            if let Err(payload) = result {
                self.record_panicked(&record, payload.as_ref());
            }
        }
        self.tick_record = record;
    }
}
