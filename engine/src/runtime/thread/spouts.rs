//! Asking spouts for tuples, delivering their acks and fails, polling bolts, and the timers
//! (ticks, tree timeouts).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::ExecutorThread;
use super::task_cell::{TaskBody, TaskCell, panic_message};
use crate::ids::StreamId;
use crate::runtime::collector::{BoltOutput, SpoutOutput, TaskOutput};

/// `next_tuple` calls that may emit nothing before the spout is backed off.
const IDLE_CALLS_BEFORE_BACKOFF: u32 = 16;

/// First back-off of an idle spout; it doubles up to the configured limit.
const FIRST_BACKOFF_NANOS: u64 = 1_000;

/// A call into a spout.
#[derive(Debug, Clone, Copy)]
pub(super) enum SpoutCall {
    /// Up to `calls` calls of `next_tuple`, stopping at the first that emits nothing or when
    /// the spout is throttled (backlogged outputs, `max_pending` trees in flight).
    Next {
        calls: usize,
        max_pending: Option<usize>,
    },
    /// Calls `ack` or `fail` for every tree queued in the spout's `settled`, in order.
    Settle,
}

/// What one [`ExecutorThread::call_spout`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SpoutCallOutcome {
    /// The spout emitted at least one tuple.
    pub(super) emitted_any: bool,
    /// A `next_tuple` call emitted nothing: the spout is idle.
    pub(super) idle: bool,
    /// The spout asked not to be called before this time ([`SpoutOutput::idle_for`]).
    pub(super) idle_until: Option<u64>,
}

impl ExecutorThread {
    /// Calls a spout, catching a panic; then delivers the acks of trees that ended on emit.
    pub(super) fn call_spout(
        &mut self,
        index: usize,
        call: SpoutCall,
        now: u64,
    ) -> SpoutCallOutcome {
        let mut call = Some(call);
        let mut emitted_any = false;
        let mut idle = false;
        let mut idle_until = None;
        loop {
            let Self {
                tasks,
                emitter,
                run_state,
                ..
            } = self;
            let TaskCell { out, body, .. } = &mut tasks[index];
            let TaskBody::Spout(state) = body else {
                return SpoutCallOutcome {
                    emitted_any,
                    idle,
                    idle_until,
                };
            };
            let call = match call.take() {
                Some(call) => call,
                None if !state.settled.is_empty() => SpoutCall::Settle,
                None => {
                    return SpoutCallOutcome {
                        emitted_any,
                        idle,
                        idle_until,
                    };
                }
            };
            let before = out.meter.counters.emitted;
            let spout = &mut state.spout;
            let mut output = SpoutOutput {
                out: TaskOutput {
                    emitter,
                    run_state,
                    task: out,
                },
                pending: &mut state.pending,
                settled: &mut state.settled,
                now_nanos: now,
                idle_until_nanos: None,
            };
            // Which of `ack` and `fail` ran last, for the report of a panic.
            let mut delivering_ack = true;
            let result = catch_unwind(AssertUnwindSafe(|| match call {
                SpoutCall::Next { calls, max_pending } => {
                    // A spout that emits many tuples per call is called until the pass has
                    // as many tuples as one emitting one per call would give it.
                    let pass_start = output.emitted();
                    for _ in 0..calls {
                        if output.is_throttled(max_pending)
                            || output.emitted() - pass_start >= calls as u64
                        {
                            break;
                        }
                        let before = output.emitted();
                        spout.next_tuple(&mut output);
                        if output.idle_until_nanos.is_some() {
                            break;
                        }
                        if output.emitted() == before {
                            idle = true;
                            break;
                        }
                    }
                }
                SpoutCall::Settle => {
                    while let Some((message, acked, stream)) = output.settled.pop_front() {
                        let meter = &mut output.out.task.meter;
                        meter.tree_settled(stream, acked);
                        meter.counters.executed += 1;
                        delivering_ack = acked;
                        if acked {
                            spout.ack(message, &mut output);
                        } else {
                            spout.fail(message, &mut output);
                        }
                    }
                }
            }));
            if let Some(until) = output.idle_until_nanos {
                idle_until = Some(until);
            }
            emitted_any |= out.meter.counters.emitted != before;
            if let Err(payload) = result {
                let what = match call {
                    SpoutCall::Next { .. } => "next_tuple",
                    SpoutCall::Settle if delivering_ack => "ack",
                    SpoutCall::Settle => "fail",
                };
                let message = format!("{what} panicked: {}", panic_message(payload.as_ref()));
                self.task_panicked(index, message, None);
                return SpoutCallOutcome {
                    emitted_any,
                    idle,
                    idle_until,
                };
            }
        }
    }

    /// Asks every active spout for up to a batch of tuples; returns whether any emitted.
    pub(super) fn run_spouts(&mut self, now: u64) -> bool {
        let max_pending = self
            .topology
            .config()
            .max_spout_pending
            .map(|max| max as usize);
        let mut progress = false;
        // Peers with records waiting: the spouts whose tuples can reach one sit out.
        let congested =
            self.watch.congestion(&self.run_state) | self.emitter.outputs.congested_peers();
        for index in 0..self.tasks.len() {
            let TaskBody::Spout(state) = &self.tasks[index].body else {
                continue;
            };
            if !state.active || now < state.next_poll_nanos {
                continue;
            }
            if self.tasks[index].out.peer_reach & congested != 0 {
                continue;
            }
            let call = SpoutCall::Next {
                calls: self.spout_batch,
                max_pending,
            };
            let SpoutCallOutcome {
                emitted_any: emitted,
                idle,
                idle_until,
            } = self.call_spout(index, call, now);
            progress |= emitted;
            if let TaskBody::Spout(state) = &mut self.tasks[index].body {
                if emitted {
                    state.idle_calls = 0;
                }
                if let Some(until) = idle_until {
                    // The spout said when it has work again: no polling, no back-off.
                    state.idle_calls = 0;
                    state.next_poll_nanos = until;
                } else if idle {
                    state.idle_calls = state.idle_calls.saturating_add(1);
                    // The next poll is always a timer of the thread: without one, an idle
                    // spout (a paced source between two due tuples) would wait for the next
                    // unrelated timer, a hundred milliseconds away.
                    state.next_poll_nanos = if state.idle_calls > IDLE_CALLS_BEFORE_BACKOFF {
                        let doublings = (state.idle_calls - IDLE_CALLS_BEFORE_BACKOFF).min(30);
                        now + (FIRST_BACKOFF_NANOS << doublings).min(self.spout_idle_backoff_nanos)
                    } else {
                        now + 1
                    };
                }
            }
            self.drain_local();
        }
        progress
    }

    /// Calls `activate` or `deactivate` on every spout whose state differs.
    pub(super) fn set_spouts_active(&mut self, active: bool) {
        for index in 0..self.tasks.len() {
            self.set_spout_active(index, active);
        }
    }

    /// Calls `activate` or `deactivate` on the spout of task cell `index`, if it is a spout
    /// whose state differs.
    pub(super) fn set_spout_active(&mut self, index: usize, active: bool) {
        let TaskBody::Spout(state) = &mut self.tasks[index].body else {
            return;
        };
        if state.active == active {
            return;
        }
        state.active = active;
        state.idle_calls = 0;
        state.next_poll_nanos = 0;
        let spout = &mut state.spout;
        let result = catch_unwind(AssertUnwindSafe(|| {
            if active {
                spout.activate();
            } else {
                spout.deactivate();
            }
        }));
        if let Err(payload) = result {
            let what = if active { "activate" } else { "deactivate" };
            let message = format!("{what} panicked: {}", panic_message(payload.as_ref()));
            self.task_panicked(index, message, None);
        }
    }

    /// Gives bolts that asked for it a chance to emit on their own.
    pub(super) fn poll_bolts(&mut self) -> bool {
        let mut progress = false;
        for index in 0..self.tasks.len() {
            let Self {
                tasks,
                emitter,
                run_state,
                ..
            } = self;
            let TaskCell { out, body, .. } = &mut tasks[index];
            let TaskBody::Bolt(state) = body else {
                continue;
            };
            if !state.polls {
                continue;
            }
            let bolt = &mut state.bolt;
            let mut output = BoltOutput {
                out: TaskOutput {
                    emitter,
                    run_state,
                    task: out,
                },
                auto_anchor: None,
            };
            match catch_unwind(AssertUnwindSafe(|| bolt.poll(&mut output))) {
                Ok(did_something) => progress |= did_something,
                Err(payload) => {
                    let message = format!("poll panicked: {}", panic_message(payload.as_ref()));
                    self.task_panicked(index, message, None);
                }
            }
            self.drain_local();
        }
        progress
    }

    /// The links to the peers of bits `lost` are gone. Every acker hears of it from this
    /// thread — after every acker message this thread sent before, since a ring keeps
    /// order — and fails the trees routed through the link. The spouts of this thread fail
    /// at once the trees whose acker runs on a lost peer: their acker traffic crossed the
    /// lost link, and the acker's verdict may have been lost with it.
    pub(super) fn peers_lost(&mut self, lost: &[u64], now: u64) {
        let reports_to_ackers = self
            .tasks
            .iter()
            .any(|cell| matches!(cell.body, TaskBody::Spout(_) | TaskBody::Bolt(_)));
        if reports_to_ackers {
            // What was gathered for the ackers goes first: the news must follow it.
            self.flush_acker_traffic();
            let source = self.tasks[0].out.task;
            for &peer in lost {
                let link = self.emitter.tree_workers.link_to(peer);
                for acker in self.emitter.acker_traffic.acker_tasks() {
                    self.emitter
                        .send_system(acker, source, StreamId::LINK_LOST, &[link]);
                }
            }
        }
        for index in 0..self.tasks.len() {
            let mut expired = std::mem::take(&mut self.expired);
            let emitter = &self.emitter;
            let acker_lost = |root: u64| {
                emitter.acker_traffic.acker_of(root).is_some_and(|acker| {
                    let bit = emitter.tree_workers.peer_of(acker);
                    bit != 0 && lost.contains(&bit)
                })
            };
            if let TaskBody::Spout(state) = &mut self.tasks[index].body {
                state
                    .pending
                    .take_where(acker_lost, |tree| expired.push(tree));
            }
            if !expired.is_empty() {
                tracing::info!(
                    task = self.tasks[index].out.task.0,
                    trees = expired.len(),
                    "the worker running their acker was lost: failing the spout's trees in flight"
                );
            }
            let cell = &mut self.tasks[index];
            if let TaskBody::Spout(state) = &mut cell.body {
                cell.out.meter.counters.pending = state.pending.len() as u64;
                let failed = expired
                    .drain(..)
                    .map(|tree| (tree.message, false, tree.stream));
                state.settled.extend(failed);
            }
            self.expired = expired;
            self.call_spout(index, SpoutCall::Settle, now);
        }
        self.drain_local();
    }

    /// Runs due ticks and timeouts; returns when the next timer is due.
    pub(super) fn run_timers(&mut self, now: u64) -> u64 {
        let mut next = self.publish_clock.next_due();
        for index in 0..self.tasks.len() {
            if let Some((every, due)) = self.tasks[index].tick {
                if now >= due {
                    let following = if now - due >= every {
                        now + every
                    } else {
                        due + every
                    };
                    self.tasks[index].tick = Some((every, following));
                    self.deliver_tick(index, every);
                    self.drain_local();
                    next = next.min(following);
                } else {
                    next = next.min(due);
                }
            }
            match &mut self.tasks[index].body {
                TaskBody::Spout(state) => {
                    if now >= state.pending.next_due_nanos() {
                        let mut expired = std::mem::take(&mut self.expired);
                        state.pending.expire(now, |tree| expired.push(tree));
                        state.settled.extend(
                            expired
                                .drain(..)
                                .map(|tree| (tree.message, false, tree.stream)),
                        );
                        self.tasks[index].out.meter.counters.pending = state.pending.len() as u64;
                        self.expired = expired;
                        self.call_spout(index, SpoutCall::Settle, now);
                        self.drain_local();
                    }
                    if let TaskBody::Spout(state) = &self.tasks[index].body {
                        next = next.min(state.pending.next_due_nanos());
                        if state.active && state.next_poll_nanos > now {
                            next = next.min(state.next_poll_nanos);
                        }
                    }
                }
                TaskBody::Acker(ledger) => {
                    if now >= ledger.next_due_nanos() {
                        ledger.expire(now);
                        self.tasks[index].out.meter.counters.pending = match &self.tasks[index].body
                        {
                            TaskBody::Acker(ledger) => ledger.len() as u64,
                            _ => 0,
                        };
                    }
                    if let TaskBody::Acker(ledger) = &self.tasks[index].body {
                        next = next.min(ledger.next_due_nanos());
                    }
                }
                TaskBody::Bolt(_) | TaskBody::Dead => {}
            }
        }
        next
    }
}
