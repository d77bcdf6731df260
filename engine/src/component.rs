//! The traits user code implements: spouts (sources) and bolts (processing).
//!
//! A component is declared with a factory; each task of the component gets its own instance,
//! made on the executor thread that runs it, so instances need to be `Send` but never shared.

use std::error::Error;

use crate::context::TopologyContext;
use crate::ids::MessageId;
use crate::runtime::{BoltOutput, InputBatch, SpoutOutput, Tuple};
use crate::topology::OutputDeclarer;

/// The error type of component life-cycle calls: anything that explains what went wrong.
pub type ComponentError = Box<dyn Error + Send + Sync>;

/// A source of tuples.
///
/// The executor calls [`next_tuple`](Spout::next_tuple) in a loop while the topology is
/// active, the spout's outputs have room and, when tracking, fewer than `max_spout_pending`
/// of its tuple trees are in flight. A call that emits nothing tells the executor the spout
/// is idle; it then backs off briefly before asking again.
pub trait Spout: Send {
    /// Declares the streams this spout emits (called once, when the topology is built).
    fn declare_outputs(&self, _declarer: &mut OutputDeclarer) {}

    /// Called once on the executor thread before any other call.
    ///
    /// # Errors
    /// A failure is reported with the topology, component and task; the task is not run.
    fn open(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Emits zero or more tuples: one at a time with [`SpoutOutput::emit`], the simple
    /// way, or many at once with [`SpoutOutput::emit_batch`] (and
    /// [`emit_batch_with_ids`](SpoutOutput::emit_batch_with_ids) for tracked ones), the
    /// fast way. A pass of the executor calls it until the spout has emitted
    /// `spout_batch` tuples, or `spout_batch` times.
    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>);

    /// The tuple tree of `message` completed.
    fn ack(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {}

    /// The tuple tree of `message` failed or timed out; the spout may emit it again.
    fn fail(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {}

    /// The spout became active: called once its task has opened in an active topology,
    /// and again each time the topology is activated after a deactivation.
    fn activate(&mut self) {}

    /// The topology was deactivated, or is being killed: `next_tuple` will not be called
    /// until it is activated. A killed topology's spouts get this call before `close`.
    fn deactivate(&mut self) {}

    /// Called once when the task stops (kill, shutdown or a restart after a panic).
    fn close(&mut self) {}
}

/// A processing step: consumes tuples, emits tuples.
pub trait Bolt: Send {
    /// Declares the streams this bolt emits (called once, when the topology is built).
    fn declare_outputs(&self, _declarer: &mut OutputDeclarer) {}

    /// Called once on the executor thread before the first tuple.
    ///
    /// # Errors
    /// A failure is reported with the topology, component and task; the task is not run.
    fn prepare(&mut self, _context: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Processes one input tuple. Tracked inputs must eventually be acked or failed through
    /// `output` (or the component configured with `auto_ack`).
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>);

    /// Processes a run of input tuples — tuples of one stream for this task, in the order
    /// they arrived, read in place from the input ring — in one call: the fast path for a
    /// bolt that works on a run as a whole (a sum, a batched write). It is called only for a
    /// bolt whose [`wants_runs`](Bolt::wants_runs) is `true`. The default hands each tuple
    /// to [`execute`](Bolt::execute) through [`InputBatch::for_each`]:
    ///
    /// ```
    /// use squall_core::{Bolt, BoltOutput, InputBatch, Tuple, Value};
    ///
    /// /// Sums the first field of its input; emits the sum once per run of input.
    /// struct RunningSum(u64);
    ///
    /// impl Bolt for RunningSum {
    ///     fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
    ///         self.0 += input.get_u64(0).unwrap_or(0);
    ///         output.emit(&[Value::U64(self.0)]);
    ///     }
    ///
    ///     fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
    ///         let mut sum = self.0;
    ///         batch.for_each(|input, _output| sum += input.get_u64(0).unwrap_or(0));
    ///         self.0 = sum;
    ///         batch.output().emit(&[Value::U64(sum)]);
    ///     }
    ///
    ///     fn wants_runs(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// ```
    ///
    /// Every tuple must be visited through `for_each` (an auto-acking bolt's tuples are
    /// acked there) or taken by [`InputBatch::read_then_ack`], the faster path for a bolt
    /// that reads its input and anchors nothing to it; tuples left unvisited are handed to
    /// `execute` once this returns.
    fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
        batch.for_each(|input, output| self.execute(input, output));
    }

    /// Called by the executor on every pass of its loop, for bolts that produce output on
    /// their own (for instance from a subprocess); returns whether it did anything. The
    /// default does nothing.
    fn poll(&mut self, _output: &mut BoltOutput<'_>) -> bool {
        false
    }

    /// Whether [`poll`](Bolt::poll) should be called at all; checked once after `prepare`.
    fn wants_poll(&self) -> bool {
        false
    }

    /// Whether the executor gathers this bolt's input into runs for
    /// [`execute_batch`](Bolt::execute_batch); checked once after `prepare`. A bolt that
    /// overrides `execute_batch` returns `true`. The default, `false`, hands tuples to
    /// [`execute`](Bolt::execute) one by one, which is the cheaper path for a bolt that does
    /// nothing with a run as a whole: gathering runs costs more than it saves there.
    fn wants_runs(&self) -> bool {
        false
    }

    /// Called once when the task stops.
    fn cleanup(&mut self) {}
}
