//! A windowed bolt run by a subprocess: each window is sent as one tuple, so a component in
//! any language sees whole windows.
//!
//! The window goes out as a tuple on stream `__window` from component `__window`, with
//! three values: the window's tuples (a list of value lists, oldest first), its start and
//! its end (ms since the Unix epoch; null for count windows). Emits anchored to that tuple
//! are anchored to every tuple of the window. The subprocess acks the window tuple when it
//! is done with it, or fails it, which fails the trees of all the window's tuples.
//!
//! Unlike [`ShellBolt`](crate::ShellBolt), the executor waits while the subprocess handles
//! a window: a window's inputs are acked as they leave it, so its emits must be made first.
//! Windows come once per slide, so the wait is per window, not per tuple.

use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_core::component::ComponentError;
use squall_core::context::TopologyContext;
use squall_core::ids::DEFAULT_STREAM;
use squall_core::topology::OutputDeclarer;
use squall_core::tuple::FieldEncoder;
use squall_core::window::{Window, WindowOutput, WindowedBolt};

use super::protocol::{SYSTEM_TASK, ShellCommand, TupleSource, encode_bolt_tuple_raw};
use super::runner::{Role, Runner, ShellTask, pump, send_task_ids};
use super::spec::ShellSpec;
use super::values::{ValueError, write_value_json};

/// The component and stream names a window tuple carries.
pub const WINDOW_STREAM: &str = "__window";

/// The fields of a window tuple, announced in the handshake so libraries that name fields
/// (pystorm's namedtuples) name them.
pub(crate) const WINDOW_FIELDS: [&str; 3] = ["tuples", "start", "end"];

/// How long the executor sleeps between looks at a subprocess that has not answered yet.
const ANSWER_POLL: Duration = Duration::from_micros(50);

/// A [`WindowedBolt`] whose windows are handled by a subprocess speaking Storm's
/// multi-lang protocol. Each window goes to the subprocess as one tuple from component and
/// stream [`WINDOW_STREAM`], with the values `[tuples, start, end]`; emits anchored to it
/// are anchored to every tuple of the window, and failing it fails them all. The executor
/// waits for the subprocess to ack or fail each window (see `docs/windows.md`). Run it with
/// [`TopologyBuilder::set_windowed_bolt`](squall_core::TopologyBuilder::set_windowed_bolt).
#[derive(Debug)]
pub struct ShellWindowBolt {
    spec: Arc<ShellSpec>,
    state: Option<WindowState>,
}

impl ShellWindowBolt {
    /// A windowed bolt running `spec`, shared with the other tasks of the component.
    pub fn shared(spec: Arc<ShellSpec>) -> Self {
        Self { spec, state: None }
    }
}

/// How the subprocess settled the window it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Acked,
    Failed,
}

#[derive(Debug)]
struct WindowState {
    runner: Runner,
    next_id: u64,
    /// The id of the window the subprocess holds, and its answer once given.
    current: Option<(u64, Option<Answer>)>,
    encoder: FieldEncoder,
}

impl WindowedBolt for ShellWindowBolt {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        self.spec.declare_outputs(declarer);
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.state = Some(WindowState {
            runner: Runner::start(&self.spec, context, Role::WindowedBolt)?,
            next_id: super::protocol::HEARTBEAT_ID + 1,
            current: None,
            encoder: FieldEncoder::default(),
        });
        Ok(())
    }

    fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>) {
        match &mut self.state {
            Some(state) => state.execute(window, output),
            None => output.fail(),
        }
    }

    fn cleanup(&mut self) {
        self.state = None;
    }
}

impl WindowState {
    fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>) {
        // Whatever the subprocess said since the last window (heartbeat replies, logs).
        pump(self, output);
        self.revive(output);
        let id = self.next_id;
        self.next_id += 1;
        let message = match self.encode(id, window) {
            Ok(message) => message,
            Err(error) => {
                output.report_error(format!(
                    "a window cannot be sent to the subprocess, so its tuples fail: {error}"
                ));
                output.fail();
                return;
            }
        };
        // While no subprocess runs (it is restarting, or gave up), windows fail and
        // their tuples are replayed later.
        let Some(process) = self.runner.process() else {
            output.fail();
            return;
        };
        process.send(message);
        self.current = Some((id, None));
        loop {
            pump(self, output);
            match self.current {
                Some((_, Some(Answer::Acked))) => break,
                Some((_, Some(Answer::Failed))) | None => {
                    output.fail();
                    break;
                }
                Some((_, None)) => {}
            }
            if let Some(what) = self.runner.hung(true) {
                self.failure(output, &what);
                continue;
            }
            std::thread::sleep(ANSWER_POLL);
        }
        self.current = None;
    }

    /// Starts the next subprocess if it is time.
    fn revive(&mut self, output: &mut WindowOutput<'_, '_>) {
        if let Err(problem) = self.runner.revive(Instant::now()) {
            output.report_error(problem);
        }
    }

    /// The window as one multi-lang tuple: `[[values…]…, start, end]`.
    fn encode(&mut self, id: u64, window: &Window<'_>) -> Result<Vec<u8>, ValueError> {
        let mut tuple = Vec::with_capacity(64 * window.len() + 32);
        tuple.extend_from_slice(b"[[");
        for (index, windowed) in window.iter().enumerate() {
            if index > 0 {
                tuple.push(b',');
            }
            self.encoder.encode(windowed.values());
            tuple.push(b'[');
            for field in 0..self.encoder.field_count() {
                if field > 0 {
                    tuple.push(b',');
                }
                write_value_json(&mut tuple, self.encoder.value(field))?;
            }
            tuple.push(b']');
        }
        tuple.push(b']');
        for bound in [window.start_ms(), window.end_ms()] {
            match bound {
                Some(ms) => tuple.extend_from_slice(format!(",{ms}").as_bytes()),
                None => tuple.extend_from_slice(b",null"),
            }
        }
        tuple.push(b']');
        let tuple = String::from_utf8(tuple).expect("JSON written from text is text");
        let mut message = Vec::with_capacity(tuple.len() + 96);
        let source = TupleSource {
            component: WINDOW_STREAM,
            stream: WINDOW_STREAM,
            task: SYSTEM_TASK,
        };
        encode_bolt_tuple_raw(&mut message, id, source, &tuple);
        Ok(message)
    }

    /// Checks that a command names the window the subprocess holds.
    fn current_window(&self, id: &str, what: &str) -> Result<(), String> {
        match self.current {
            Some((current, None)) if id.parse() == Ok(current) => Ok(()),
            _ => Err(format!(
                "{what} tuple id {id:?}, which is not the window it was given"
            )),
        }
    }

    fn answer(&mut self, answer: Answer) {
        if let Some((_, given)) = &mut self.current {
            *given = Some(answer);
        }
    }
}

impl<'o, 'b> ShellTask<WindowOutput<'o, 'b>> for WindowState {
    fn runner(&mut self) -> &mut Runner {
        &mut self.runner
    }

    fn command(
        &mut self,
        command: ShellCommand,
        output: &mut WindowOutput<'o, 'b>,
    ) -> Result<(), String> {
        match command {
            ShellCommand::Emit(emit) => {
                for id in &emit.anchors {
                    self.current_window(id, "emitted a tuple anchored to")?;
                }
                if emit.task.is_some() {
                    return Err(
                        "sent a direct emit; a windowed shell bolt emits to its streams' \
                         groupings only"
                            .to_owned(),
                    );
                }
                if self.current.is_none() {
                    return Err("emitted a tuple while it held no window".to_owned());
                }
                let stream = emit.stream.as_deref().unwrap_or(DEFAULT_STREAM);
                output
                    .try_emit_on(stream, &emit.tuple)
                    .map_err(|error| format!("emitted a tuple the engine refused: {error}"))?;
                if emit.need_task_ids {
                    send_task_ids(&mut self.runner, output.last_targets());
                }
                Ok(())
            }
            ShellCommand::Ack(id) => {
                self.current_window(&id, "acked")?;
                self.answer(Answer::Acked);
                Ok(())
            }
            ShellCommand::Fail(id) => {
                self.current_window(&id, "failed")?;
                self.answer(Answer::Failed);
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

    /// The subprocess failed: the window it held fails, the error is reported, and the
    /// next subprocess starts as the policy says.
    fn failure(&mut self, output: &mut WindowOutput<'o, 'b>, what: &str) {
        let now = Instant::now();
        let held = self.current.take().is_some();
        let (description, consequence) = self.runner.fail(what, now);
        let failed = if held {
            "; failed the window it held"
        } else {
            ""
        };
        output.report_error(format!("{description}{failed}{consequence}"));
    }
}
