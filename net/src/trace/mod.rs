//! Stage timestamps for a sample of the records that travel between two workers (the
//! `stage-trace` feature; without it none of this is compiled).
//!
//! One record in [`sample_every`] written into each outbound ring is *traced*: the top bit of
//! its destination task ([`MARK`]) is set in the ring's prefix and in the BATCH record header
//! on the wire, and the receiving transport clears it before the sink sees the task. Task ids
//! stay far below 2^31, so the bit is free. Each stage the record passes appends a
//! [`Stage`] stamp (`CLOCK_MONOTONIC`, comparable across the processes of one host) to a
//! process-wide collector ([`write_events`]).
//!
//! Stamps are joined by *link ordinals*: the sending transport numbers the traced records of
//! each connection in wire order and the receiving transport numbers them in the order they
//! arrive, which is the same order (a connection is FIFO). The executor's stamps are taken
//! before the transport knows that ordinal, so they are keyed by (ring, n-th traced record of
//! the ring) and joined to the ordinal at pick-up, when the events are written out.
//!
//! Locks and allocations happen only for traced records (and per read, write or drained
//! batch for a clock read or a counter): the untraced records pay a branch on the mark.

#![allow(unsafe_code)]

mod collector;
mod inbound;
mod link;
mod sampler;

use std::fmt;
use std::sync::OnceLock;

pub use collector::{clear, write_events};
pub use inbound::{InboundQueue, InboundRingTrace};
pub(crate) use link::{LinkTrace, WriteMarks};
pub(crate) use sampler::{RingPickups, RingSampler, next_ring_id};

/// The bit of a destination task that marks a traced record.
pub const MARK: u32 = 1 << 31;

/// The environment variable that sets how many records of an outbound ring make one traced
/// record ([`sample_every`]).
pub const EVERY_ENV: &str = "SQUALL_STAGE_TRACE_EVERY";

/// Traced records are one in this many of each outbound ring: [`EVERY_ENV`], 1024 unless set.
pub fn sample_every() -> u64 {
    static EVERY: OnceLock<u64> = OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var(EVERY_ENV)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .filter(|&every| every > 0)
            .unwrap_or(1024)
    })
}

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process of the host.
pub fn now_ns() -> u64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec for the call to fill.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time) };
    debug_assert_eq!(result, 0, "CLOCK_MONOTONIC is always available");
    time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
}

/// Names one traced record: the `ordinal`-th traced record on the connection from worker
/// `from` to worker `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkKey {
    /// The sending worker.
    pub from: u64,
    /// The receiving worker.
    pub to: u64,
    /// Traced records sent on the connection before this one.
    pub ordinal: u64,
}

/// Where a traced record was when it was stamped, in the order it passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The sending executor wrote it (`OutputPort::write`).
    Write,
    /// The executor's publish that made it visible to the transport.
    Publish,
    /// The sending transport copied it from the outbound ring into a BATCH frame.
    PickUp,
    /// The write that completed its BATCH frame: the send system call, the io_uring
    /// completion or the shared-memory ring write.
    FrameWritten,
    /// The receiving transport's read that brought its frame in (the last read before the
    /// frame was decoded), or the frame taken from the shared-memory ring.
    SocketRead,
    /// The receiving worker copied it into the input ring of its executor.
    InboundWrite,
    /// The publish of that input ring that made it visible to the executor.
    InboundPublish,
    /// The receiving executor processed the batch holding it.
    ExecutorRead,
    /// The receiving transport wrote the CREDIT frame whose grant returns its frame's bytes.
    CreditSent,
}

impl Stage {
    /// Every stage, in the order a record passes them.
    pub const ALL: [Stage; 9] = [
        Stage::Write,
        Stage::Publish,
        Stage::PickUp,
        Stage::FrameWritten,
        Stage::SocketRead,
        Stage::InboundWrite,
        Stage::InboundPublish,
        Stage::ExecutorRead,
        Stage::CreditSent,
    ];

    /// The stage's name in the events written out.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Write => "write",
            Stage::Publish => "publish",
            Stage::PickUp => "pick-up",
            Stage::FrameWritten => "frame-written",
            Stage::SocketRead => "socket-read",
            Stage::InboundWrite => "inbound-write",
            Stage::InboundPublish => "inbound-publish",
            Stage::ExecutorRead => "executor-read",
            Stage::CreditSent => "credit-sent",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `task` carries the trace mark.
#[inline(always)]
pub fn is_marked(task: u32) -> bool {
    task & MARK != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward() {
        let before = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(now_ns() >= before + 1_000_000);
    }

    #[test]
    fn stage_names_are_distinct() {
        let mut names: Vec<&str> = Stage::ALL.iter().map(|stage| stage.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Stage::ALL.len());
    }
}
