//! Taking records out of rings and the own queue, and handing each to its task: a bolt's
//! `execute`, a spout's `ack`/`fail`, or the acker's ledger.

use std::cell::Cell;
use std::iter::Peekable;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use super::task_cell::{BoltState, TaskBody, TaskCell, panic_message};
use super::task_order::HeldInput;
use super::{ExecutorThread, InputPort};
use crate::config::PanicPolicy;
use crate::ids::{StreamId, TaskId};
use crate::runtime::acker_traffic::{
    AckerReport, MalformedEntry, Packed, ReportKind, Verdict, unpack,
};
use crate::runtime::acking::TreeOutcome;
use crate::runtime::anchor::{Anchor, Tuple};
use crate::runtime::collector::TaskOutput;
use crate::runtime::input_batch::{InputBatch, RUN_RECORDS, execute_tuple};
use crate::runtime::run_state::TaskErrorKind;
use crate::runtime::start::Plane;
use crate::tuple::{Members, TupleRef, encode_record};
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
    ///
    /// It takes records while the batch's tuples number fewer than `input_batch`: a packed
    /// record carries many, and a batch bounded in records alone could then run past what
    /// the thread's outputs were sized for before it looks at its backlog again. The records
    /// not taken stay in the ring for the next batch. Nothing is peeked once the bound is
    /// reached (see `gather_run`), so no record is taken and left unprocessed.
    pub(super) fn process_guarded<'r>(&mut self, records: &mut impl Iterator<Item = &'r [u8]>) {
        self.batch_clock = self.now_nanos();
        self.tuples_left = self.input_batch;
        if self.task_order_counts.is_some() {
            self.process_in_task_order(records);
            return;
        }
        self.each_record_guarded(&mut records.peekable(), |thread, record, rest| {
            thread.process_record(record, rest);
        });
    }

    /// [`process_guarded`](Self::process_guarded) on a thread with several batch bolts:
    /// their records are held back and run in task order (see `task_order`) once the rest
    /// of the batch is processed, or whenever the buffer fills.
    // Out of line, so the loop of a thread without batch bolts stays as it was.
    #[inline(never)]
    fn process_in_task_order<'r>(&mut self, records: &mut impl Iterator<Item = &'r [u8]>) {
        let mut held = HeldInput::new();
        self.each_record_guarded(&mut records.peekable(), |thread, record, rest| match thread
            .batch_bolt_input(record)
        {
            Some((cell, members)) => {
                thread.tuples_left = thread.tuples_left.saturating_sub(members.len());
                for view in members {
                    if held.hold(cell, view) {
                        thread.run_held(&mut held);
                    }
                }
            }
            None => thread.process_record(record, rest),
        });
        self.run_held(&mut held);
    }

    /// Calls `each` with every record of `records` and the records after it, under one
    /// guard: a panic is handled (see [`record_panicked`](Self::record_panicked)) and the
    /// records after the one that panicked go on.
    #[inline(always)]
    fn each_record_guarded<'r, I: Iterator<Item = &'r [u8]>>(
        &mut self,
        records: &mut Peekable<I>,
        mut each: impl FnMut(&mut Self, &'r [u8], &mut Peekable<I>),
    ) {
        loop {
            let mut current: &[u8] = &[];
            let result = catch_unwind(AssertUnwindSafe(|| {
                while self.tuples_left > 0
                    && let Some(record) = records.next()
                {
                    current = record;
                    each(self, record, records);
                }
            }));
            match result {
                Ok(()) => return,
                Err(payload) => self.record_panicked(current, payload.as_ref()),
            }
        }
    }

    /// The cell and tuples of `record` if it goes to a bolt that takes runs.
    #[inline]
    fn batch_bolt_input<'r>(&self, record: &'r [u8]) -> Option<(u16, Members<'r>)> {
        let members = TupleRef::members(record).ok()?;
        let index = self.cell_index(members.dest_task())?;
        self.tasks[index]
            .takes_runs()
            .then_some((index as u16, members))
    }

    /// Runs the records `held` in task order. A task that stopped taking runs since its
    /// records were held (it panicked and did not restart) gets them as it now is.
    fn run_held(&mut self, held: &mut HeldInput<'_>) {
        if held.is_empty() {
            return;
        }
        let mut counts = self
            .task_order_counts
            .take()
            .expect("a thread that orders runs");
        let mut sorted = held.take_sorted(&mut counts);
        while let Some((index, run)) = sorted.next_run() {
            match self.tasks[index].body {
                TaskBody::Bolt(_) => self.run_bolt(index, run),
                _ => {
                    for view in run {
                        self.dead_task_input(index, *view);
                    }
                }
            }
        }
        self.task_order_counts = Some(counts);
    }

    /// Handles a panic while `record` was being processed (a bolt that runs a record's
    /// tuples one by one is handed a record of one tuple).
    fn record_panicked(&mut self, record: &[u8], payload: &(dyn std::any::Any + Send)) {
        let view = TupleRef::members(record)
            .ok()
            .and_then(|mut members| members.next());
        self.tuple_panicked(view, payload);
    }

    /// Handles a panic while `view` was being processed, or outside any task without one.
    fn tuple_panicked(&mut self, view: Option<TupleRef<'_>>, payload: &(dyn std::any::Any + Send)) {
        let panic = panic_message(payload);
        let Some(view) = view else {
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

    /// Processes what this thread's tasks sent each other, and the acker traffic they
    /// gathered, until none is left.
    pub(super) fn drain_local(&mut self) {
        loop {
            self.flush_acker_traffic();
            if !self.emitter.outputs.local.has_unpublished() {
                return;
            }
            self.emitter.outputs.local.flush_overflow();
            self.emitter.outputs.local.publish();
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

    /// Hands one record to its task, with the records after it that go to the same bolt
    /// task on the same stream. (The caller counts them in `processed`.) Always inlined:
    /// called from two loops, it was left out of line, a call per record.
    #[inline(always)]
    pub(super) fn process_record<'r, I: Iterator<Item = &'r [u8]>>(
        &mut self,
        record: &'r [u8],
        rest: &mut Peekable<I>,
    ) {
        let mut members = match TupleRef::members(record) {
            Ok(members) => members,
            Err(error) => {
                self.report_malformed(None, format!("{error}"));
                return;
            }
        };
        self.tuples_left = self.tuples_left.saturating_sub(members.len());
        let task = members.dest_task();
        let Some(index) = self.cell_index(task) else {
            self.report_malformed(
                None,
                format!("record for task {task}, which does not run on this thread"),
            );
            return;
        };
        let stream = StreamId(members.stream_id());
        match &self.tasks[index].body {
            TaskBody::Bolt(BoltState { runs: true, .. }) => self.gather_run(index, members, rest),
            // A packed record runs as a run, so a panic fails the one tuple it hit.
            TaskBody::Bolt(_) if members.is_packed() => self.run_members(index, members),
            TaskBody::Bolt(_) => self.execute_bolt(index, members.next().expect("one tuple")),
            TaskBody::Dead => {
                for view in members {
                    self.dead_task_input(index, view);
                }
            }
            _ if members.is_packed() => {
                let message = format!("a spout or acker received {} packed tuples", members.len());
                self.report_malformed(Some(index), message);
            }
            TaskBody::Spout(_) => {
                self.tree_verdicts(index, members.next().expect("one tuple"), stream);
            }
            TaskBody::Acker(_) => {
                self.acker_message(index, members.next().expect("one tuple"), stream);
            }
        }
    }

    /// Runs bolt task `index` on the tuples of one packed record, as runs.
    #[cold]
    #[inline(never)]
    fn run_members(&mut self, index: usize, members: Members<'_>) {
        let mut run: SmallVec<[TupleRef<'_>; RUN_RECORDS]> = SmallVec::new();
        self.add_to_run(index, &mut run, members);
        self.run_bolt(index, &run);
    }

    /// Adds `members` to `run`, running bolt task `index` on the run whenever it is full
    /// before the next one is added: `run` is never left empty.
    #[inline(always)]
    fn add_to_run<'r>(
        &mut self,
        index: usize,
        run: &mut SmallVec<[TupleRef<'r>; RUN_RECORDS]>,
        members: Members<'r>,
    ) {
        for view in members {
            if run.len() == RUN_RECORDS {
                self.run_bolt(index, run);
                run.clear();
            }
            run.push(view);
        }
    }

    /// A record for a task that is not running: its trees fail at once, so their spouts
    /// replay them now rather than after the message timeout.
    fn dead_task_input(&mut self, index: usize, view: TupleRef<'_>) {
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
    fn execute_bolt(&mut self, index: usize, view: TupleRef<'_>) {
        let Self {
            topology,
            tasks,
            emitter,
            run_state,
            ..
        } = self;
        let TaskCell { out, body, .. } = &mut tasks[index];
        let TaskBody::Bolt(state) = body else {
            unreachable!("dispatched to a bolt")
        };
        let output = TaskOutput {
            emitter,
            run_state,
            task: out,
        };
        let bolt = &mut state.bolt;
        execute_tuple(view, topology, output, state.auto_ack, |tuple, output| {
            bolt.execute(tuple, output);
        });
    }

    /// Gathers the tuples of `first` and of the records that follow it in `rest` for the
    /// same task on the same stream, and runs the bolt on them in runs of up to
    /// [`RUN_RECORDS`].
    #[inline]
    fn gather_run<'r, I: Iterator<Item = &'r [u8]>>(
        &mut self,
        index: usize,
        first: Members<'r>,
        rest: &mut Peekable<I>,
    ) {
        let (task, stream) = (first.dest_task(), first.stream_id());
        let mut run: SmallVec<[TupleRef<'r>; RUN_RECORDS]> = SmallVec::new();
        let mut members = first;
        loop {
            self.add_to_run(index, &mut run, members);
            // A record peeked and refused is the next one processed; none is peeked past the
            // batch's bound, where the caller stops.
            if self.tuples_left == 0 {
                break;
            }
            let Some(next) = rest
                .peek()
                .and_then(|record| TupleRef::members(record).ok())
            else {
                break;
            };
            if next.dest_task() != task
                || next.stream_id() != stream
                || run.len() + next.len() > RUN_RECORDS
            {
                break;
            }
            rest.next();
            self.tuples_left = self.tuples_left.saturating_sub(next.len());
            members = next;
        }
        self.run_bolt(index, &run);
    }

    /// Runs bolt task `index` on `views`, one run of its input, through its
    /// `execute_batch`. A panic is handled here: the tuple being executed fails, the task is
    /// restarted (or stopped) as configured, and the rest of the run goes to what the task
    /// became.
    pub(super) fn run_bolt(&mut self, index: usize, views: &[TupleRef<'_>]) {
        let executing = Cell::new(0);
        let result = {
            let Self {
                topology,
                tasks,
                emitter,
                run_state,
                ..
            } = self;
            let TaskCell { out, body, .. } = &mut tasks[index];
            let TaskBody::Bolt(state) = body else {
                unreachable!("dispatched to a bolt")
            };
            let mut batch = InputBatch {
                views,
                next: 0,
                executing: &executing,
                topology,
                emitter,
                run_state,
                task: out,
                auto_ack: state.auto_ack,
            };
            let bolt = &mut state.bolt;
            catch_unwind(AssertUnwindSafe(|| {
                bolt.execute_batch(&mut batch);
                if batch.remaining() > 0 {
                    batch.for_each(|tuple, output| bolt.execute(tuple, output));
                }
            }))
        };
        let Err(payload) = result else {
            return;
        };
        let at = executing.get();
        self.tuple_panicked(Some(views[at]), payload.as_ref());
        let rest = &views[at + 1..];
        if rest.is_empty() {
            return;
        }
        match self.tasks[index].body {
            TaskBody::Bolt(_) => self.run_bolt(index, rest),
            _ => {
                for view in rest {
                    self.dead_task_input(index, *view);
                }
            }
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
        self.emitter.acker_traffic.report_failed(task, anchor);
    }

    /// Sends or applies the acker traffic gathered since the last flush. Reports for an
    /// acker and verdicts for a spout of this thread are applied in place, which may gather
    /// more (a settled spout may emit), applied in turn; the rest leave as one record per
    /// destination, in the order they were gathered.
    pub(super) fn flush_acker_traffic(&mut self) {
        if self.emitter.acker_traffic.is_empty() {
            return;
        }
        let source = self.tasks.first().map_or(TaskId(0), |cell| cell.out.task);
        loop {
            if let Some((acker, reports)) = self.emitter.acker_traffic.reports.take_next() {
                match self.local_cell(acker, |body| matches!(body, TaskBody::Acker(_))) {
                    Some(index) => {
                        for &report in &reports {
                            self.apply_report(index, report);
                        }
                    }
                    None => {
                        self.emitter
                            .send_packed(acker, source, StreamId::ACKER_REPORTS, &reports);
                    }
                }
                self.emitter.acker_traffic.reports.give_back(acker, reports);
            } else if let Some((spout, verdicts)) = self.emitter.acker_traffic.verdicts.take_next()
            {
                match self.local_cell(spout, |body| matches!(body, TaskBody::Spout(_))) {
                    Some(index) => {
                        let malformed = self.settle_trees(index, verdicts.iter().copied().map(Ok));
                        debug_assert!(malformed.is_none(), "verdicts gathered in place");
                        self.deliver_settled(index);
                    }
                    None => {
                        self.emitter
                            .send_packed(spout, source, StreamId::TREE_VERDICTS, &verdicts);
                    }
                }
                self.emitter
                    .acker_traffic
                    .verdicts
                    .give_back(spout, verdicts);
            } else {
                return;
            }
        }
    }

    /// The cell of `task`, if it runs on this thread with a body `is_kind` accepts.
    fn local_cell(&self, task: TaskId, is_kind: impl Fn(&TaskBody) -> bool) -> Option<usize> {
        self.cell_index(task)
            .filter(|&index| is_kind(&self.tasks[index].body))
    }

    /// A record of verdicts for spout task `index`.
    fn tree_verdicts(&mut self, index: usize, view: TupleRef<'_>, stream: StreamId) {
        if stream != StreamId::TREE_VERDICTS {
            let message = format!("spout task received a record on stream {}", stream.0);
            self.report_malformed(Some(index), message);
            return;
        }
        let Some(mut verdicts) = self.packed_entries::<Verdict>(index, view) else {
            return;
        };
        while let Some(error) = self.settle_trees(index, &mut verdicts) {
            self.report_malformed(Some(index), error.to_string());
        }
        self.deliver_settled(index);
    }

    /// The entries packed in the one bytes field of `view`, or `None` after reporting why
    /// they cannot be read.
    fn packed_entries<'r, T: Packed + 'r>(
        &self,
        index: usize,
        view: TupleRef<'r>,
    ) -> Option<impl Iterator<Item = Result<T, MalformedEntry>> + 'r> {
        let unpacked = view
            .get_bytes(0)
            .map_err(|error| format!("{} record without its entries: {error}", T::WHAT))
            .and_then(|bytes| unpack::<T>(bytes).map_err(|error| error.to_string()));
        match unpacked {
            Ok(entries) => Some(entries),
            Err(message) => {
                self.report_malformed(Some(index), message);
                None
            }
        }
    }

    /// Settles the trees of spout task `index` whose verdicts `verdicts` gives, up to the
    /// first malformed one, which it returns.
    fn settle_trees(
        &mut self,
        index: usize,
        verdicts: impl Iterator<Item = Result<Verdict, MalformedEntry>>,
    ) -> Option<MalformedEntry> {
        let now = self.batch_clock;
        let cell = &mut self.tasks[index];
        let TaskBody::Spout(state) = &mut cell.body else {
            unreachable!("dispatched to a spout")
        };
        state.settle(&mut cell.out.meter, now, verdicts)
    }

    /// Calls the `ack` and `fail` of spout task `index` for the trees settled so far.
    fn deliver_settled(&mut self, index: usize) {
        let now = self.batch_clock;
        self.call_spout(index, super::spouts::SpoutCall::Settle, now);
    }

    /// One record for the acker's ledger: reports, or the loss of a link.
    fn acker_message(&mut self, index: usize, view: TupleRef<'_>, stream: StreamId) {
        match stream {
            StreamId::LINK_LOST => self.link_lost(index, view),
            StreamId::ACKER_REPORTS => {
                let Some(reports) = self.packed_entries::<AckerReport>(index, view) else {
                    return;
                };
                for report in reports {
                    match report {
                        Ok(report) => self.apply_report(index, report),
                        Err(error) => self.report_malformed(Some(index), error.to_string()),
                    }
                }
            }
            other => {
                let message = format!("acker received a record on stream {}", other.0);
                self.report_malformed(Some(index), message);
            }
        }
    }

    /// Applies one report to the ledger of acker task `index`, gathering the verdict on
    /// the tree when it settles.
    #[inline]
    fn apply_report(&mut self, index: usize, report: AckerReport) {
        let now = self.batch_clock;
        let cell = &mut self.tasks[index];
        let TaskBody::Acker(ledger) = &mut cell.body else {
            unreachable!("dispatched to an acker")
        };
        let AckerReport {
            root,
            value,
            workers,
            ..
        } = report;
        let outcome = match report.kind {
            ReportKind::Init => {
                ledger.init(root, value, workers, (report.reporter, report.slot), now)
            }
            ReportKind::Ack => ledger.ack(root, value, workers, now),
            ReportKind::Fail => ledger.fail(root, now),
        };
        cell.out.meter.counters.executed += 1;
        cell.out.meter.counters.pending = ledger.len() as u64;
        let Some(outcome) = outcome else {
            return;
        };
        let (spout_task, slot, completed) = match outcome {
            TreeOutcome::Completed { spout_task, slot } => {
                cell.out.meter.counters.acked += 1;
                (spout_task, slot, true)
            }
            TreeOutcome::Failed { spout_task, slot } => {
                cell.out.meter.counters.failed += 1;
                (spout_task, slot, false)
            }
        };
        let verdict = Verdict {
            root,
            slot,
            completed,
        };
        self.send_verdict(index, spout_task, verdict);
    }

    /// Gathers `verdict` for `spout_task`, reporting a spout task that does not exist (a
    /// malformed report started the tree).
    // Always inlined: out of line, the verdict reached the push through memory, stored field
    // by field and loaded whole, and the load waited for the stores on every verdict (a
    // tenth of the acker's thread in a profile of `const-id-null --acking`).
    #[inline(always)]
    fn send_verdict(&mut self, index: usize, spout_task: TaskId, verdict: Verdict) {
        if !self
            .emitter
            .acker_traffic
            .verdicts
            .push(spout_task, verdict)
        {
            self.no_such_spout(index, spout_task);
        }
    }

    #[cold]
    #[inline(never)]
    fn no_such_spout(&self, index: usize, spout_task: TaskId) {
        let message = format!("a tree was started by task {spout_task}, which does not exist");
        self.report_malformed(Some(index), message);
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
        ledger.fail_routed_through(link, own, |root, spout_task, slot| {
            failed.push((root, spout_task, slot));
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
        for (root, spout_task, slot) in failed {
            let verdict = Verdict {
                root,
                slot,
                completed: false,
            };
            self.send_verdict(index, spout_task, verdict);
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
            self.run_bolt(index, &[view]);
        }
        self.tick_record = record;
    }
}
