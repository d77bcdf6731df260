//! A bolt run by a subprocess.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHasher;
use smallvec::SmallVec;

use super::handshake::seconds;
use super::protocol::{
    EmitCommand, SYSTEM_TASK, ShellCommand, TupleSource, encode_bolt_tuple, encode_bolt_tuple_raw,
};
use super::runner::{Role, Runner, ShellTask, pump, send_task_ids};
use super::spec::ShellSpec;
use squall_core::component::{Bolt, ComponentError};
use squall_core::context::TopologyContext;
use squall_core::ids::{DEFAULT_STREAM, SYSTEM_COMPONENT, TICK_STREAM};
use squall_core::runtime::{Anchor, BoltOutput, Tuple};
use squall_core::topology::OutputDeclarer;

/// In-flight inputs at which a warning says the subprocess is falling behind.
const IN_FLIGHT_WARNING: usize = 100_000;

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<FxHasher>>;

/// A bolt whose tuples are processed by a subprocess speaking Storm's multi-lang protocol
/// (for instance a Python bolt written with `pystorm` or Storm's `storm.py`).
///
/// Each input is sent with a tuple id (the decimal form of a per-task counter, as a JSON
/// string) and kept, with its [`Anchor`], until the subprocess acks or fails that id; emits
/// anchor to the inputs they name. A subprocess that exits, stops answering heartbeats for
/// the heartbeat timeout, or sends something that is not a valid message is killed: every
/// input it held is failed (so tracked trees replay), the error is reported with the
/// offending text, and a new subprocess starts as the [`RestartPolicy`](super::RestartPolicy)
/// says. See `docs/multilang.md`.
///
/// The executor never waits for the subprocess: `execute` queues the tuple for a writer
/// thread, and replies are decoded by a reader thread and handled in `poll` (or in the next
/// `execute`).
#[derive(Debug)]
pub struct ShellBolt {
    spec: Arc<ShellSpec>,
    state: Option<BoltState>,
}

impl ShellBolt {
    /// A bolt running `spec`.
    pub fn new(spec: ShellSpec) -> Self {
        Self::shared(Arc::new(spec))
    }

    /// A bolt running `spec`, shared with the other tasks of the component.
    pub fn shared(spec: Arc<ShellSpec>) -> Self {
        Self { spec, state: None }
    }
}

#[derive(Debug)]
struct BoltState {
    runner: Runner,
    /// Inputs sent and not yet acked or failed, by tuple id.
    in_flight: IdMap<Anchor>,
    next_id: u64,
    /// Messages for the next subprocess, while none runs.
    backlog: Vec<Vec<u8>>,
    /// Size of the last tuple message, to size the next one's buffer.
    last_message_len: usize,
}

impl Bolt for ShellBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.spec.declare_outputs(declarer);
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.state = Some(BoltState {
            runner: Runner::start(&self.spec, context, Role::Bolt)?,
            in_flight: IdMap::default(),
            next_id: super::protocol::HEARTBEAT_ID + 1,
            backlog: Vec::new(),
            last_message_len: 64,
        });
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        match &mut self.state {
            Some(state) => state.execute(input, output),
            None => output.fail(input),
        }
    }

    fn poll(&mut self, output: &mut BoltOutput<'_>) -> bool {
        self.state.as_mut().is_some_and(|state| state.poll(output))
    }

    fn wants_poll(&self) -> bool {
        true
    }

    fn cleanup(&mut self) {
        self.state = None;
    }
}

/// A tuple id as the subprocess sends it back.
fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

impl BoltState {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if self.runner.is_down() {
            output.fail(input);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut message = Vec::with_capacity(self.last_message_len + 16);
        if input.is_tick() {
            // Storm's tick tuples carry their period in seconds.
            let millis = input.get_u64(0).unwrap_or(0);
            let period = seconds(std::time::Duration::from_millis(millis));
            let source = TupleSource {
                component: SYSTEM_COMPONENT,
                stream: TICK_STREAM,
                task: SYSTEM_TASK,
            };
            encode_bolt_tuple_raw(&mut message, id, source, &format!("[{period}]"));
        } else {
            let source = TupleSource {
                component: input.source_component(),
                stream: input.source_stream(),
                task: i64::from(input.source_task().0),
            };
            if let Err(error) = encode_bolt_tuple(&mut message, id, source, input.fields()) {
                output.report_error(format!(
                    "a tuple from {:?} on stream {:?} cannot be sent to the subprocess, so it fails: {error}",
                    input.source_component(),
                    input.source_stream()
                ));
                output.fail(input);
                return;
            }
        }
        self.last_message_len = message.len();
        self.in_flight.insert(id, input.anchor().clone());
        if self.in_flight.len() == IN_FLIGHT_WARNING {
            tracing::warn!(
                component = %self.runner.component(),
                task = output.task().0,
                "{IN_FLIGHT_WARNING} tuples wait for the subprocess: a shell bolt does not slow its inputs down; bound them with topology.max.spout.pending"
            );
        }
        match self.runner.process() {
            // A send to a writer that stopped is lost with the subprocess: its failure
            // event follows and fails this input too.
            Some(process) => {
                process.send(message);
            }
            None => self.backlog.push(message),
        }
        self.pump(output);
    }

    fn poll(&mut self, output: &mut BoltOutput<'_>) -> bool {
        let mut progress = self.revive(output, Instant::now());
        progress |= self.pump(output);
        if let Some(what) = self.runner.hung(true) {
            self.failure(output, &what);
            progress = true;
        }
        progress
    }

    /// Starts the next subprocess if it is time, and hands it the backlog.
    fn revive(&mut self, output: &mut BoltOutput<'_>, now: Instant) -> bool {
        match self.runner.revive(now) {
            Ok(false) => false,
            Ok(true) => {
                if let Some(process) = self.runner.process() {
                    for message in self.backlog.drain(..) {
                        process.send(message);
                    }
                }
                true
            }
            Err(problem) => {
                self.fail_in_flight(output);
                output.report_error(problem);
                true
            }
        }
    }

    /// Handles what the subprocess did; returns whether there was anything.
    fn pump(&mut self, output: &mut BoltOutput<'_>) -> bool {
        pump(self, output)
    }

    fn take(&mut self, id: &str, what: &str) -> Result<Anchor, String> {
        parse_id(id)
            .and_then(|key| self.in_flight.remove(&key))
            .ok_or_else(|| {
                format!("{what} tuple id {id:?}, which is not in flight (unknown, or already acked or failed)")
            })
    }

    fn emit(&mut self, emit: EmitCommand, output: &mut BoltOutput<'_>) -> Result<(), String> {
        let mut anchors: SmallVec<[&Anchor; 4]> = SmallVec::with_capacity(emit.anchors.len());
        for id in &emit.anchors {
            let anchor = parse_id(id)
                .and_then(|key| self.in_flight.get(&key))
                .ok_or_else(|| {
                    format!(
                        "emitted a tuple anchored to tuple id {id:?}, which is not in flight (unknown, or already acked or failed)"
                    )
                })?;
            anchors.push(anchor);
        }
        let stream = emit.stream.as_deref().unwrap_or(DEFAULT_STREAM);
        output
            .try_emit(stream, &anchors, emit.task, &emit.tuple)
            .map_err(|error| format!("emitted a tuple the engine refused: {error}"))?;
        if emit.task.is_none() && emit.need_task_ids {
            send_task_ids(&mut self.runner, output.last_targets());
        }
        Ok(())
    }

    fn fail_in_flight(&mut self, output: &mut BoltOutput<'_>) -> usize {
        let count = self.in_flight.len();
        for (_, anchor) in self.in_flight.drain() {
            output.fail(&anchor);
        }
        self.backlog.clear();
        count
    }
}

impl<'a> ShellTask<BoltOutput<'a>> for BoltState {
    fn runner(&mut self) -> &mut Runner {
        &mut self.runner
    }

    fn command(
        &mut self,
        command: ShellCommand,
        output: &mut BoltOutput<'a>,
    ) -> Result<(), String> {
        match command {
            ShellCommand::Emit(emit) => self.emit(emit, output),
            ShellCommand::Ack(id) => {
                let anchor = self.take(&id, "acked")?;
                output.ack(&anchor);
                Ok(())
            }
            ShellCommand::Fail(id) => {
                let anchor = self.take(&id, "failed")?;
                output.fail(&anchor);
                Ok(())
            }
            ShellCommand::Sync => Ok(()),
            other => {
                if let Some(report) = self.runner.note(other) {
                    output.report_error(report);
                }
                Ok(())
            }
        }
    }

    /// The subprocess failed: fail what it held, report, restart as the policy says.
    fn failure(&mut self, output: &mut BoltOutput<'a>, what: &str) {
        let now = Instant::now();
        let failed = self.fail_in_flight(output);
        let (description, consequence) = self.runner.fail(what, now);
        output.report_error(format!(
            "{description}; failed the {failed} tuples it held{consequence}"
        ));
        self.revive(output, now);
    }
}
