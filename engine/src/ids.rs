//! Identifiers shared by every part of a topology.

use std::fmt;

/// A task: one instance of a component. Ids are dense, start at 1 and are assigned in
/// component-id order, so every process that builds the same topology agrees on them.
///
/// The id is carried as a plain `u32` in a record's header (see [`crate::tuple`]);
/// `repr(transparent)` makes a `TaskId`, and a slice or vector of them, laid out exactly as
/// that `u32`, so task ids on the data path cost nothing over the bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct TaskId(pub u32);

impl TaskId {
    /// The id as an index into per-task tables.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stream's topology-wide number, carried in every tuple's header.
///
/// Numbers below [`StreamId::FIRST_USER`] are the system streams below; user streams are
/// numbered from it in (component id, stream name) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u16);

impl StreamId {
    /// Tick tuples, delivered to a component at its configured frequency.
    pub const TICK: StreamId = StreamId(0);
    /// To an acker: reports on its trees, packed — a spout started a tree (root id, xor of
    /// its first edge ids, the workers they went to), a bolt acked a record of one (root
    /// id, xor value, the workers its children went to) or failed one.
    pub const ACKER_REPORTS: StreamId = StreamId(1);
    /// Acker to spout: verdicts on trees, packed — completed or failed, by root id.
    pub const TREE_VERDICTS: StreamId = StreamId(2);
    /// Worker to acker: the link between two workers was lost (their two bits); the acker
    /// fails the trees that touched both.
    pub const LINK_LOST: StreamId = StreamId(4);
    /// The first number given to a user stream.
    pub const FIRST_USER: u16 = 16;

    /// Whether this is one of the reserved system streams.
    #[inline]
    pub fn is_system(self) -> bool {
        self.0 < Self::FIRST_USER
    }
}

/// Name of the stream a component emits on when it names none.
pub const DEFAULT_STREAM: &str = "default";

/// Name of the tick stream, as tuples report it.
pub const TICK_STREAM: &str = "__tick";

/// Component id of the acker tasks.
pub const ACKER_COMPONENT: &str = "__acker";

/// Component id reported as the source of system tuples (ticks).
pub const SYSTEM_COMPONENT: &str = "__system";

/// A spout's own id for one message, given when it emits a tracked tuple and handed back to
/// its `ack` or `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
