//! A spout run by a subprocess.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHasher;

use super::protocol::{EmitCommand, ShellCommand, SpoutCommand, encode_spout_command};
use super::runner::{Role, Runner, ShellTask, pump, send_task_ids};
use super::spec::ShellSpec;
use squall_core::component::{ComponentError, Spout};
use squall_core::context::TopologyContext;
use squall_core::ids::{DEFAULT_STREAM, MessageId};
use squall_core::runtime::SpoutOutput;
use squall_core::topology::OutputDeclarer;

/// A spout whose tuples come from a subprocess speaking Storm's multi-lang protocol (for
/// instance a Python spout written with `pystorm` or Storm's `storm.py`).
///
/// The spout is a state machine that never waits: `next_tuple` sends `next` and returns; the
/// emits that follow are taken in later calls until the subprocess's `sync`. A new `next`
/// goes only once every command sent before it is answered; `ack`, `fail`, `activate` and
/// `deactivate` are sent at once, behind whatever is outstanding (the subprocess reads
/// them in order and answers each with `sync`). Message ids (any JSON value) are kept by the engine's
/// [`MessageId`] they were given and sent back verbatim with `ack` and `fail`. A subprocess
/// that exits, stays silent for the heartbeat timeout while a command is outstanding, or sends
/// something that is not a valid message is killed, the error reported, and a new one started
/// as the [`RestartPolicy`](super::RestartPolicy) says. See `docs/multilang.md`.
#[derive(Debug)]
pub struct ShellSpout {
    spec: Arc<ShellSpec>,
    state: Option<SpoutState>,
}

impl ShellSpout {
    /// A spout running `spec`.
    pub fn new(spec: ShellSpec) -> Self {
        Self::shared(Arc::new(spec))
    }

    /// A spout running `spec`, shared with the other tasks of the component.
    pub fn shared(spec: Arc<ShellSpec>) -> Self {
        Self { spec, state: None }
    }
}

#[derive(Debug)]
struct SpoutState {
    runner: Runner,
    /// Commands sent and not yet answered with `sync`, oldest first.
    outstanding: VecDeque<&'static str>,
    /// Commands for the next subprocess, while none runs.
    queue: VecDeque<SpoutCommand>,
    /// The JSON text of the id of each tracked message in flight.
    messages: HashMap<u64, String, BuildHasherDefault<FxHasher>>,
    next_message: u64,
}

impl Spout for ShellSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.spec.declare_outputs(declarer);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.state = Some(SpoutState {
            runner: Runner::start(&self.spec, context, Role::Spout)?,
            outstanding: VecDeque::new(),
            queue: VecDeque::new(),
            messages: HashMap::default(),
            next_message: 0,
        });
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if let Some(state) = &mut self.state {
            state.step(output, true);
        }
    }

    fn ack(&mut self, message: MessageId, output: &mut SpoutOutput<'_>) {
        if let Some(state) = &mut self.state {
            if let Some(id) = state.messages.remove(&message.0) {
                state.send(SpoutCommand::Ack(id));
            }
            state.step(output, false);
        }
    }

    fn fail(&mut self, message: MessageId, output: &mut SpoutOutput<'_>) {
        if let Some(state) = &mut self.state {
            if let Some(id) = state.messages.remove(&message.0) {
                state.send(SpoutCommand::Fail(id));
            }
            state.step(output, false);
        }
    }

    fn activate(&mut self) {
        if let Some(state) = &mut self.state {
            state.send(SpoutCommand::Activate);
        }
    }

    fn deactivate(&mut self) {
        if let Some(state) = &mut self.state {
            state.send(SpoutCommand::Deactivate);
        }
    }

    fn close(&mut self) {
        self.state = None;
    }
}

impl SpoutState {
    /// Takes what the subprocess sent, then asks for more tuples if `want_next` and every
    /// command sent is answered.
    fn step(&mut self, output: &mut SpoutOutput<'_>, want_next: bool) {
        self.revive(output, Instant::now());
        pump(self, output);
        if let Some(what) = self.runner.hung(!self.outstanding.is_empty()) {
            self.failure(output, &what);
        }
        if want_next && self.outstanding.is_empty() {
            self.send(SpoutCommand::Next);
        }
    }

    /// Starts the next subprocess if it is time, and sends it the commands kept for it.
    fn revive(&mut self, output: &mut SpoutOutput<'_>, now: Instant) {
        match self.runner.revive(now) {
            Ok(false) => {}
            Ok(true) => {
                for command in std::mem::take(&mut self.queue) {
                    self.send(command);
                }
            }
            Err(problem) => output.report_error(problem),
        }
    }

    /// Sends a command, or keeps it for the next subprocess while none runs (a `next` is
    /// not kept).
    fn send(&mut self, command: SpoutCommand) {
        let Some(process) = self.runner.process() else {
            if command != SpoutCommand::Next && !self.runner.is_down() {
                self.queue.push_back(command);
            }
            return;
        };
        let mut message = Vec::with_capacity(32);
        encode_spout_command(&mut message, &command);
        // A send to a writer that stopped is lost with the subprocess; its failure follows.
        process.send(message);
        self.outstanding.push_back(command.name());
    }

    fn emit(&mut self, emit: EmitCommand, output: &mut SpoutOutput<'_>) -> Result<(), String> {
        let stream = emit.stream.as_deref().unwrap_or(DEFAULT_STREAM);
        let message = emit.id.map(|id| {
            let message = self.next_message;
            self.next_message += 1;
            self.messages.insert(message, id);
            MessageId(message)
        });
        if let Err(error) = output.try_emit(stream, message, emit.task, &emit.tuple) {
            if let Some(message) = message {
                self.messages.remove(&message.0);
            }
            return Err(format!("emitted a tuple the engine refused: {error}"));
        }
        if emit.task.is_none() && emit.need_task_ids {
            send_task_ids(&mut self.runner, output.last_targets());
        }
        Ok(())
    }
}

impl<'a> ShellTask<SpoutOutput<'a>> for SpoutState {
    fn runner(&mut self) -> &mut Runner {
        &mut self.runner
    }

    fn command(
        &mut self,
        command: ShellCommand,
        output: &mut SpoutOutput<'a>,
    ) -> Result<(), String> {
        match command {
            ShellCommand::Emit(emit) => self.emit(emit, output),
            ShellCommand::Sync => {
                // A `sync` nothing waits for (some libraries send one after an error
                // report) changes nothing.
                self.outstanding.pop_front();
                Ok(())
            }
            ShellCommand::Ack(_) | ShellCommand::Fail(_) => Err(format!(
                "sent {:?}, which only bolts may send",
                command.name()
            )),
            other => {
                if let Some(report) = self.runner.note(other) {
                    output.report_error(report);
                }
                Ok(())
            }
        }
    }

    /// The subprocess failed: report, forget its commands, restart as the policy says.
    fn failure(&mut self, output: &mut SpoutOutput<'a>, what: &str) {
        let now = Instant::now();
        let lost = if self.outstanding.is_empty() {
            String::new()
        } else {
            let commands: Vec<&str> = self.outstanding.drain(..).collect();
            format!(
                "; the commands it had not answered are lost: {}",
                commands.join(", ")
            )
        };
        let (description, consequence) = self.runner.fail(what, now);
        output.report_error(format!("{description}{lost}{consequence}"));
        self.revive(output, now);
    }
}
