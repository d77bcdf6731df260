//! A run of input tuples for one bolt task, handed to [`Bolt::execute_batch`] in one call.
//!
//! The executor gathers records of its input ring that go to the same task on the same
//! stream (up to [`RUN_RECORDS`]: consecutive ones, or with several batch bolts on the
//! thread, a batch's records put in task order) and views them in place; the bolt walks them with
//! [`InputBatch::for_each`], whose closure the compiler sees whole, so the per-tuple call
//! into the bolt is a direct, inlinable call rather than one through the bolt's vtable.
//!
//! [`Bolt::execute_batch`]: crate::Bolt::execute_batch

use std::cell::Cell;
use std::fmt;
use std::time::Instant;

use super::anchor::Tuple;
use super::collector::{BoltOutput, TaskOutput, TaskStreams, refused};
use super::emitter::Emitter;
use super::run_state::RunState;
use crate::topology::Topology;
use crate::tuple::{EncodeValue, TupleRef};

/// Most records in one run: enough to spread the call over many tuples, few enough to
/// gather on the stack.
pub(crate) const RUN_RECORDS: usize = 64;

/// Input tuples of one stream for one bolt task, read in place from the ring.
///
/// Each tuple is handed out once: with [`for_each`](Self::for_each), with the same
/// semantics as [`Bolt::execute`](crate::Bolt::execute) — an auto-acking bolt's unanchored
/// emits anchor to the tuple, and the tuple is acked when the closure returns unless the
/// bolt settled it. Tuples a bolt leaves unvisited are executed one by one after
/// `execute_batch` returns.
pub struct InputBatch<'a> {
    pub(crate) views: &'a [TupleRef<'a>],
    /// Index of the next tuple to hand out.
    pub(crate) next: usize,
    /// Index of the tuple being executed, for the report of a panic.
    pub(crate) executing: &'a Cell<usize>,
    pub(crate) topology: &'a Topology,
    pub(crate) emitter: &'a mut Emitter,
    pub(crate) run_state: &'a RunState,
    pub(crate) task: &'a mut TaskStreams,
    pub(crate) auto_ack: bool,
}

impl fmt::Debug for InputBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputBatch")
            .field("task", &self.task.task)
            .field("len", &self.views.len())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<'a> InputBatch<'a> {
    /// Tuples in the batch, handed out or not.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Whether the batch holds no tuple (never, for a batch handed to a bolt).
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Tuples not handed out yet.
    pub fn remaining(&self) -> usize {
        self.views.len() - self.next
    }

    /// The task's output outside any one tuple, for what a bolt emits for the run as a
    /// whole: emits are unanchored unless given anchors (kept with
    /// [`Tuple::anchor`](crate::Tuple::anchor)).
    pub fn output(&mut self) -> BoltOutput<'_> {
        BoltOutput {
            out: TaskOutput {
                emitter: self.emitter,
                run_state: self.run_state,
                task: self.task,
            },
            auto_anchor: None,
        }
    }

    /// Lends the tuples not handed out yet to `read` all at once, as views, and acks the
    /// ones it took: `read` returns how many it took, from the first; the others stay in the
    /// batch (for [`for_each`](Self::for_each), or `execute` once the call returns).
    ///
    /// The fast path for a bolt that reads its input and anchors nothing to it (a sink, a
    /// counter): no [`Tuple`], anchor or output is made per tuple, and each tuple taken is
    /// acked, tracked or not, as `execute` acking it would ack it, but only once `read`
    /// returns. A panic in `read` acks none of them: the first fails and the task restarts
    /// as for a panic in `execute`. What the bolt emits for the run goes through
    /// [`output`](Self::output), unanchored. Execute latencies are not sampled for tuples
    /// taken this way.
    ///
    /// ```
    /// use squall_core::{Bolt, BoltOutput, InputBatch, Tuple};
    ///
    /// /// Sums the ids in field 0 of its input, acking every tuple.
    /// struct IdSum(u64);
    ///
    /// impl Bolt for IdSum {
    ///     fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
    ///         match input.get_u64(0) {
    ///             Ok(id) => {
    ///                 self.0 += id;
    ///                 output.ack(input);
    ///             }
    ///             Err(_) => output.fail(input),
    ///         }
    ///     }
    ///
    ///     fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
    ///         // Takes the tuples up to the first without an id, which `execute` fails.
    ///         batch.read_then_ack(|tuples| {
    ///             for (taken, tuple) in tuples.iter().enumerate() {
    ///                 let Ok(id) = tuple.get_u64(0) else {
    ///                     return taken;
    ///                 };
    ///                 self.0 += id;
    ///             }
    ///             tuples.len()
    ///         });
    ///     }
    ///
    ///     fn wants_runs(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// ```
    #[inline]
    pub fn read_then_ack(&mut self, read: impl FnOnce(&'a [TupleRef<'a>]) -> usize) -> usize {
        let first = self.next;
        let rest = &self.views[first..];
        self.executing.set(first);
        let taken = read(rest).min(rest.len());
        self.next = first + taken;
        let taken_views = &rest[..taken];
        if let Some(view) = taken_views.first() {
            TaskOutput {
                emitter: self.emitter,
                run_state: self.run_state,
                task: self.task,
            }
            .ack_read(view.stream_id(), taken_views);
        }
        taken
    }

    /// Maps each tuple not handed out yet to one tuple on the default stream, anchored to
    /// it, and acks it: Storm's basic bolt over a run. `map` returns the values to emit, or
    /// `None` to stop at a tuple it cannot take (left in the batch, for
    /// [`for_each`](Self::for_each) or `execute`). Returns how many were taken.
    ///
    /// The fast path for a bolt that transforms each tuple into one: no [`Tuple`], anchor
    /// or output is made per tuple, and each tuple taken is emitted and acked, tracked or
    /// not, as `emit_anchored` then `ack` would. Each is acked right after its child is
    /// written, so a panic in `map` fails only the tuple it was mapping, as in `execute`.
    /// Execute latencies are not sampled for tuples taken this way.
    ///
    /// # Panics
    /// When the emit is refused (no default stream, or a field count other than declared),
    /// as [`BoltOutput::emit`] does; the task restarts as for any panic.
    ///
    /// ```
    /// use squall_core::{Bolt, BoltOutput, InputBatch, OutputDeclarer, Tuple, Value};
    ///
    /// /// Doubles the number in field 0.
    /// struct Double;
    ///
    /// impl Bolt for Double {
    ///     fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
    ///         declarer.declare(&["doubled"]);
    ///     }
    ///
    ///     fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
    ///         match input.get_u64(0) {
    ///             Ok(n) => {
    ///                 output.emit_anchored(input, &[Value::U64(2 * n)]);
    ///                 output.ack(input);
    ///             }
    ///             Err(_) => output.fail(input),
    ///         }
    ///     }
    ///
    ///     fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
    ///         // Stops at a tuple without a number, which `execute` then fails.
    ///         batch.map_then_ack(|tuple| Some([2 * tuple.get_u64(0).ok()?]));
    ///     }
    ///
    ///     fn wants_runs(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// ```
    #[inline]
    pub fn map_then_ack<V: EncodeValue, const N: usize>(
        &mut self,
        mut map: impl FnMut(&TupleRef<'a>) -> Option<[V; N]>,
    ) -> usize {
        let first = self.next;
        let mut out = TaskOutput {
            emitter: self.emitter,
            run_state: self.run_state,
            task: self.task,
        };
        let stream = out.default_index().unwrap_or_else(|error| refused(error));
        for view in &self.views[first..] {
            self.executing.set(self.next);
            let Some(values) = map(view) else {
                break;
            };
            if let Err(error) = out.emit_child_then_ack(stream, view, &values) {
                refused(error)
            }
            self.next += 1;
        }
        self.next - first
    }

    /// Calls `each` with every tuple not handed out yet, in order, and the output to use for
    /// it.
    #[inline]
    pub fn for_each(&mut self, mut each: impl FnMut(&Tuple<'_>, &mut BoltOutput<'_>)) {
        while let Some(&view) = self.views.get(self.next) {
            self.executing.set(self.next);
            self.next += 1;
            let output = TaskOutput {
                emitter: self.emitter,
                run_state: self.run_state,
                task: self.task,
            };
            execute_tuple(view, self.topology, output, self.auto_ack, &mut each);
        }
    }
}

/// Executes one input tuple with [`Bolt::execute`](crate::Bolt::execute)'s semantics:
/// `execute` gets the tuple and its output (unanchored emits anchored to it when
/// `auto_ack`), an auto-acked tuple the bolt did not settle is acked after, and the task's
/// meter counts it (and times it, when sampled). Shared by runs and single tuples.
#[inline(always)]
pub(crate) fn execute_tuple(
    view: TupleRef<'_>,
    topology: &Topology,
    out: TaskOutput<'_>,
    auto_ack: bool,
    execute: impl FnOnce(&Tuple<'_>, &mut BoltOutput<'_>),
) {
    let tuple = Tuple::new(view, topology);
    let started = out.task.meter.sample_execute().then(Instant::now);
    let mut output = BoltOutput {
        out,
        auto_anchor: auto_ack.then_some(tuple.anchor()),
    };
    execute(&tuple, &mut output);
    if auto_ack && !tuple.anchor().is_settled() {
        output.ack(tuple.anchor());
    }
    let meter = &mut output.out.task.meter;
    meter.input_executed(tuple.anchor().stream());
    if let Some(started) = started {
        meter.record_execute(started.elapsed().as_nanos() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use crate::runtime::acker_traffic::ReportKind;
    use crate::runtime::task_fixture::{OneTask, input};

    /// Runs `each` over a batch of `records` for the fixture's task.
    fn run_batch(
        task: &mut OneTask,
        records: &[Vec<u8>],
        auto_ack: bool,
        mut each: impl FnMut(&mut InputBatch<'_>),
    ) {
        let views: Vec<TupleRef<'_>> = records
            .iter()
            .map(|record| TupleRef::parse(record).unwrap())
            .collect();
        let executing = Cell::new(usize::MAX);
        let mut batch = InputBatch {
            views: &views,
            next: 0,
            executing: &executing,
            topology: &task.topology,
            emitter: &mut task.emitter,
            run_state: &task.run_state,
            task: &mut task.task,
            auto_ack,
        };
        each(&mut batch);
    }

    #[test]
    fn every_tuple_is_handed_out_once_in_order_and_auto_acked_unless_settled() {
        let mut task = OneTask::new();
        let records: Vec<Vec<u8>> = (1..=3).map(|n| input(n, &[(100 + n, n)])).collect();
        run_batch(&mut task, &records, true, |batch| {
            assert_eq!((batch.len(), batch.remaining()), (3, 3));
            batch.for_each(|tuple, output| {
                let n = tuple.get_u64(0).unwrap();
                output.emit(&[Value::U64(n * 10)]);
                if n == 2 {
                    output.fail(tuple);
                }
            });
            assert_eq!(batch.remaining(), 0);
            // Nothing is handed out twice.
            batch.for_each(|_, _| panic!("handed out again"));
        });
        let sent = task.sent();
        assert_eq!(
            sent.iter().map(|(value, _)| *value).collect::<Vec<_>>(),
            [10, 20, 30]
        );
        for (n, (_, anchors)) in (1..=3).zip(&sent) {
            assert_eq!(anchors.len(), 1);
            assert_eq!(anchors[0].0, 100 + n, "auto-anchored to its input's tree");
        }
        let reports = task.reports();
        let kinds: Vec<(u64, ReportKind)> = reports.iter().map(|r| (r.root, r.kind)).collect();
        assert_eq!(
            kinds,
            [
                (101, ReportKind::Ack),
                (102, ReportKind::Fail),
                (103, ReportKind::Ack)
            ]
        );
        let counters = task.task.meter.counters;
        assert_eq!(
            (counters.executed, counters.acked, counters.failed),
            (3, 2, 1)
        );
    }

    /// The task's acker reports as (root, value, kind).
    fn root_value_kind(task: &mut OneTask) -> Vec<(u64, u64, ReportKind)> {
        task.reports()
            .iter()
            .map(|report| (report.root, report.value, report.kind))
            .collect()
    }

    #[test]
    fn tuples_read_as_views_are_acked_once_read_and_the_rest_stay() {
        let mut task = OneTask::new();
        let records = [
            input(1, &[]),
            input(2, &[(20, 2), (21, 3)]),
            input(3, &[(30, 4)]),
            input(4, &[(40, 5)]),
        ];
        run_batch(&mut task, &records, true, |batch| {
            let taken = batch.read_then_ack(|views| {
                let values: Vec<u64> = views.iter().map(|view| view.get_u64(0).unwrap()).collect();
                assert_eq!(values, [1, 2, 3, 4]);
                3
            });
            assert_eq!((taken, batch.remaining()), (3, 1));
            batch.for_each(|tuple, _| assert_eq!(tuple.get_u64(0), Ok(4)));
            assert_eq!(
                batch.read_then_ack(|views| views.len() + 5),
                0,
                "nothing left"
            );
        });
        let reports = root_value_kind(&mut task);
        assert_eq!(
            reports,
            [
                (20, 2, ReportKind::Ack),
                (21, 3, ReportKind::Ack),
                (30, 4, ReportKind::Ack),
                (40, 5, ReportKind::Ack),
            ],
            "each root acked with its edge, the one executed after the ones read"
        );
        let counters = task.task.meter.counters;
        assert_eq!((counters.executed, counters.acked), (4, 4));
    }

    #[test]
    fn untracked_input_read_in_place_goes_out_again_in_one_unanchored_batch() {
        let mut task = OneTask::new();
        let records: Vec<Vec<u8>> = (1..=5).map(|n| input(n, &[])).collect();
        run_batch(&mut task, &records, true, |batch| {
            let mut copies = [[0u64; 1]; 5];
            let read = batch.read_then_ack(|tuples| {
                for (copy, tuple) in copies.iter_mut().zip(tuples) {
                    *copy = [tuple.get_u64(0).unwrap() * 2];
                }
                tuples.len()
            });
            batch.output().emit_batch(&copies[..read]);
        });
        assert_eq!(
            task.sent(),
            (1..=5).map(|n| (n * 2, vec![])).collect::<Vec<_>>()
        );
        assert!(task.reports().is_empty());
        let counters = task.task.meter.counters;
        assert_eq!(
            (counters.executed, counters.acked, counters.emitted),
            (5, 5, 5)
        );
    }

    #[test]
    fn mapped_tuples_go_out_anchored_to_their_input_which_is_acked_with_the_child_s_edge() {
        let mut task = OneTask::new();
        let records = [
            input(1, &[]),
            input(2, &[(20, 2), (21, 3)]),
            input(3, &[(30, 4)]),
            input(0, &[(40, 5)]),
        ];
        run_batch(&mut task, &records, false, |batch| {
            let taken = batch.map_then_ack(|tuple| {
                let n = tuple.get_u64(0).unwrap();
                (n != 0).then_some([n * 10])
            });
            assert_eq!((taken, batch.remaining()), (3, 1), "stops at the 0");
        });
        let sent = task.sent();
        assert_eq!(
            sent.iter().map(|(value, _)| *value).collect::<Vec<_>>(),
            [10, 20, 30]
        );
        assert!(
            sent[0].1.is_empty(),
            "an untracked input has untracked children"
        );
        let (child_edge, second_edge) = (sent[1].1[0].1, sent[1].1[1].1);
        assert_eq!(
            sent[1].1.iter().map(|(root, _)| *root).collect::<Vec<_>>(),
            [20, 21],
            "the child is in every tree of its input"
        );
        assert_eq!(child_edge, second_edge, "one fresh edge per target");
        let third_edge = sent[2].1[0].1;
        let reports = root_value_kind(&mut task);
        assert_eq!(
            reports,
            [
                (20, 2 ^ child_edge, ReportKind::Ack),
                (21, 3 ^ child_edge, ReportKind::Ack),
                (30, 4 ^ third_edge, ReportKind::Ack),
            ],
            "each input's edge xor its child's, as emit_anchored then ack report them"
        );
        let counters = task.task.meter.counters;
        assert_eq!(
            (counters.executed, counters.acked, counters.emitted),
            (3, 3, 3)
        );
    }

    #[test]
    fn without_auto_ack_inputs_stay_unsettled_and_emits_unanchored() {
        let mut task = OneTask::new();
        let records = [input(4, &[(7, 1)])];
        run_batch(&mut task, &records, false, |batch| {
            batch.for_each(|tuple, output| {
                output.emit(&[Value::U64(tuple.get_u64(0).unwrap())]);
                assert!(!tuple.anchor().is_settled());
            });
        });
        assert_eq!(task.sent(), [(4, vec![])]);
        assert!(task.reports().is_empty());
        assert_eq!(task.task.meter.counters.executed, 1);
    }

    #[test]
    fn the_run_s_own_output_emits_unanchored() {
        let mut task = OneTask::new();
        let records: Vec<Vec<u8>> = (1..=4).map(|n| input(n, &[(n, n)])).collect();
        run_batch(&mut task, &records, true, |batch| {
            let mut sum = 0;
            batch.for_each(|tuple, _| sum += tuple.get_u64(0).unwrap());
            batch.output().emit(&[Value::U64(sum)]);
        });
        assert_eq!(task.sent(), [(10, vec![])]);
        assert_eq!(task.reports().len(), 4, "each input acked");
    }
}
