//! Stream groupings: which tasks of a subscribing component receive each tuple.
//!
//! A [`Grouping`] is declared when a bolt subscribes to a stream; at run time every emitting
//! task holds one router per subscription that picks the target tasks with no
//! allocation, lock or shared state.
//!
//! | grouping | targets of each tuple |
//! |----------|-----------------------|
//! | shuffle | one task, round-robin over a per-emitter random order: every task gets an equal share ±1 over any window of tuples |
//! | fields | one task, chosen by the [fields hash](hash) of the key fields: same key, same task, in every process |
//! | all | every task |
//! | global | the task with the lowest id |
//! | none | as shuffle |
//! | direct | the task the emitter names with `emit_direct` (only on streams declared direct) |
//! | local-or-shuffle | shuffle over the subscriber's tasks in the emitter's worker, or over all when none is local |
//! | partial-key | the less loaded (as seen by this emitter) of two candidate tasks given by two hashes of the key |
//! | custom | whatever a [`CustomGrouping`] chooses |

pub mod hash;
pub(crate) mod router;

use std::fmt;
use std::sync::Arc;

use crate::ids::TaskId;
use crate::tuple::FieldEncoder;
use crate::value::ValueRef;

/// How a subscriber's tasks share a stream.
#[derive(Clone)]
pub enum Grouping {
    /// Round-robin over the tasks in a random order per emitter.
    Shuffle,
    /// By the hash of the named fields.
    Fields(Vec<String>),
    /// Every task gets every tuple.
    All,
    /// The lowest-numbered task gets every tuple.
    Global,
    /// No preference: behaves as shuffle.
    None,
    /// The emitter picks the task; the stream must be declared direct.
    Direct,
    /// Shuffle, preferring tasks in the emitter's own worker.
    LocalOrShuffle,
    /// Key splitting over two candidate tasks of the named fields, load-aware.
    PartialKey(Vec<String>),
    /// A user-defined choice; the factory makes one instance per emitting task.
    Custom(Arc<dyn Fn() -> Box<dyn CustomGrouping> + Send + Sync>),
}

impl Grouping {
    /// The name used in errors, logs and topology files.
    pub fn name(&self) -> &'static str {
        match self {
            Grouping::Shuffle => "shuffle",
            Grouping::Fields(_) => "fields",
            Grouping::All => "all",
            Grouping::Global => "global",
            Grouping::None => "none",
            Grouping::Direct => "direct",
            Grouping::LocalOrShuffle => "local-or-shuffle",
            Grouping::PartialKey(_) => "partial-key",
            Grouping::Custom(_) => "custom",
        }
    }

    /// A custom grouping made by `factory` for each emitting task.
    pub fn custom<G, F>(factory: F) -> Self
    where
        G: CustomGrouping + 'static,
        F: Fn() -> G + Send + Sync + 'static,
    {
        Grouping::Custom(Arc::new(move || Box::new(factory())))
    }

    /// The key fields of a fields or partial-key grouping.
    pub fn key_fields(&self) -> Option<&[String]> {
        match self {
            Grouping::Fields(fields) | Grouping::PartialKey(fields) => Some(fields),
            _ => None,
        }
    }
}

impl fmt::Debug for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key_fields() {
            Some(fields) => write!(f, "{}({})", self.name(), fields.join(", ")),
            None => f.write_str(self.name()),
        }
    }
}

/// The fields of a tuple being emitted, as a custom grouping sees them.
#[derive(Debug, Clone, Copy)]
pub struct EmittedFields<'a> {
    encoder: &'a FieldEncoder,
}

impl<'a> EmittedFields<'a> {
    pub(crate) fn new(encoder: &'a FieldEncoder) -> Self {
        Self { encoder }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.encoder.field_count()
    }

    /// Whether the tuple has no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Field `index`, or `None` past the last one.
    pub fn get(&self, index: usize) -> Option<ValueRef<'a>> {
        (index < self.len()).then(|| self.encoder.value(index))
    }

    /// The encoded bytes of field `index` (what the fields grouping hashes).
    pub fn encoded(&self, index: usize) -> Option<&'a [u8]> {
        (index < self.len()).then(|| self.encoder.field(index))
    }
}

/// A user-defined grouping. One instance serves one emitting task.
pub trait CustomGrouping: Send {
    /// Called once before the first tuple with the subscriber's tasks, in ascending order.
    fn prepare(&mut self, emitter: TaskId, targets: &[TaskId]);

    /// Appends the tasks (from those given to `prepare`) that receive this tuple.
    fn choose_tasks(&mut self, fields: EmittedFields<'_>, targets: &mut Vec<TaskId>);
}
