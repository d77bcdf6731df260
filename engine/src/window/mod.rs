//! Windowed bolts: a bolt that sees its input as windows of tuples, tumbling or sliding, by
//! count or by time (processing time, or event time from a field with watermarks).
//!
//! A [`WindowedBolt`] is run by [`WindowedBoltRunner`], an ordinary [`crate::Bolt`] that
//! keeps the tuples of open windows, evaluates each window once, and keeps at-least-once:
//!
//! - every tuple the bolt emits while evaluating a window is anchored to every tuple of the
//!   window, so a failure downstream replays them;
//! - each input is acked when it leaves the last window that holds it, not before;
//! - a tuple that arrives after every window it belongs to was evaluated (event time only)
//!   is late: it goes to the late stream if one is set, anchored to the input, and is acked.
//!
//! ```
//! use std::time::Duration;
//!
//! use squall_core::window::{Extent, Window, WindowOutput, WindowSpec, WindowedBolt};
//! use squall_core::{OutputDeclarer, TopologyBuilder, Value};
//!
//! /// Sums field 0 over each window.
//! struct Sum;
//!
//! impl WindowedBolt for Sum {
//!     fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
//!         declarer.declare(&["sum"]);
//!     }
//!
//!     fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>) {
//!         let sum: u64 = window.iter().filter_map(|tuple| tuple.u64(0)).sum();
//!         output.emit(&[Value::U64(sum)]);
//!     }
//! }
//!
//! let spec = WindowSpec::sliding(
//!     Extent::Time(Duration::from_secs(10)),
//!     Extent::Time(Duration::from_secs(1)),
//! )
//! .unwrap()
//! .with_event_time("ts", Duration::from_millis(500))
//! .unwrap();
//! let mut builder = TopologyBuilder::new();
//! builder.set_windowed_bolt("sum", || Sum, 1, &spec);
//! ```
//!
//! Windows live in the task's memory: a restarted task starts with empty windows, and the
//! inputs it held are replayed by their spouts when their trees time out. Windows *backed by
//! state* ([`TopologyBuilder::set_state_backed_windowed_bolt`], [`StateBackedWindows`]) are
//! kept in a checkpointed topology's state instead: a restarted or rolled-back task rebuilds
//! its open windows from the last checkpoint, inputs are acked as soon as they are in the
//! windows (so windows may be longer than the message timeout), and with replayable sources
//! every input is in the windows exactly once.

mod buffer;
mod durable;
mod runner;
mod spec;

pub use durable::StateBackedWindows;
pub use runner::{Window, WindowOutput, WindowedBolt, WindowedBoltRunner, WindowedTuple};
pub use spec::{Extent, TimeSource, WindowSpec, WindowSpecError};

use crate::topology::{BoltDeclarer, TopologyBuilder};

impl TopologyBuilder {
    /// Adds a windowed bolt with `parallelism` executors; processing-time windows get the
    /// tick tuples that move their clock.
    pub fn set_windowed_bolt<B, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: usize,
        spec: &WindowSpec,
    ) -> BoltDeclarer<'_>
    where
        B: WindowedBolt + 'static,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let spec_for_tasks = spec.clone();
        let declarer = self.set_bolt(
            id,
            move || WindowedBoltRunner::new(factory(), spec_for_tasks.clone()),
            parallelism,
        );
        with_clock(declarer, spec)
    }

    /// Adds a windowed bolt whose open windows are kept in checkpointed state
    /// ([`StateBackedWindows`]); the topology becomes checkpointed ([`crate::state`]).
    pub fn set_state_backed_windowed_bolt<B, F>(
        &mut self,
        id: &str,
        factory: F,
        parallelism: usize,
        spec: &WindowSpec,
    ) -> BoltDeclarer<'_>
    where
        B: WindowedBolt + 'static,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let spec_for_tasks = spec.clone();
        let declarer = self.set_stateful_bolt(
            id,
            move || StateBackedWindows::new(factory(), spec_for_tasks.clone()),
            parallelism,
        );
        with_clock(declarer, spec)
    }
}

/// Processing-time windows get the tick tuples that move their clock.
fn with_clock<'b>(declarer: BoltDeclarer<'b>, spec: &WindowSpec) -> BoltDeclarer<'b> {
    match spec.clock_period() {
        Some(period) => declarer.tick_frequency(period),
        None => declarer,
    }
}
