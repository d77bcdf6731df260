//! Acker traffic in bulk: what a thread's tasks report to ackers, and what ackers tell
//! spouts, gathered per destination task while the thread works and sent once per pass as
//! one record per destination, or applied in place when the destination runs on the same
//! thread.
//!
//! A tracked tuple used to cost three records besides itself: the spout's init to the
//! acker, the bolt's ack to the acker and the acker's verdict to the spout, each with a
//! record header and a dispatch of its own. Gathered, a pass of a thousand tuples sends one
//! record per acker and one per spout, each carrying packed entries of a fixed size.
//!
//! Order is kept where it matters: entries for one destination leave in the order they
//! were made, and everything gathered is sent before the thread sends anything else to an
//! acker out of band (the news of a lost link, see `peers_lost`).

use std::collections::VecDeque;
use std::ops::Range;

use super::tree_root::RootLayout;
use crate::ids::TaskId;

/// What a report to an acker says about a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ReportKind {
    /// A spout started the tree: `value` is the xor of its first records' edges.
    Init = 1,
    /// A bolt acked a record of the tree: `value` is the record's edge xor the edges of the
    /// records anchored to it.
    Ack = 2,
    /// A record of the tree failed.
    Fail = 3,
}

/// One report to an acker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckerReport {
    pub(crate) kind: ReportKind,
    /// The reporting task: for [`ReportKind::Init`], the tree's spout.
    pub(crate) reporter: TaskId,
    /// For [`ReportKind::Init`], the tree's slot in its spout's pending table, which the
    /// verdict names.
    pub(crate) slot: u32,
    pub(crate) root: u64,
    pub(crate) value: u64,
    /// The workers the reported records touched (see `tree_workers`).
    pub(crate) workers: u64,
}

/// An acker's verdict on a tree, for its spout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) root: u64,
    /// The tree's slot in the spout's pending table.
    pub(crate) slot: u32,
    pub(crate) completed: bool,
}

/// A packed entry in a record of acker traffic is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MalformedEntry {
    /// The entries' bytes are not a whole number of entries.
    #[error("{len} bytes of {what} are not a whole number of {size}-byte entries")]
    Length {
        what: &'static str,
        len: usize,
        size: usize,
    },
    /// An entry names a kind that does not exist.
    #[error("{what} entry of unknown kind {kind}")]
    Kind { what: &'static str, kind: u8 },
}

/// An entry of fixed size, packed little-endian into a record's one bytes field.
pub(crate) trait Packed: Copy {
    /// Bytes of one entry.
    const BYTES: usize;
    /// What entries of this type are called in errors.
    const WHAT: &'static str;
    /// Writes the entry into `out`, exactly [`BYTES`](Self::BYTES) long.
    fn write(&self, out: &mut [u8]);
    /// Reads an entry from `bytes`, exactly [`BYTES`](Self::BYTES) long.
    fn read(bytes: &[u8]) -> Result<Self, MalformedEntry>;
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl Packed for AckerReport {
    const BYTES: usize = 33;
    const WHAT: &'static str = "acker report";

    #[inline]
    fn write(&self, out: &mut [u8]) {
        out[0] = self.kind as u8;
        out[1..5].copy_from_slice(&self.reporter.0.to_le_bytes());
        out[5..13].copy_from_slice(&self.root.to_le_bytes());
        out[13..21].copy_from_slice(&self.value.to_le_bytes());
        out[21..29].copy_from_slice(&self.workers.to_le_bytes());
        out[29..33].copy_from_slice(&self.slot.to_le_bytes());
    }

    #[inline]
    fn read(bytes: &[u8]) -> Result<Self, MalformedEntry> {
        let kind = match bytes[0] {
            1 => ReportKind::Init,
            2 => ReportKind::Ack,
            3 => ReportKind::Fail,
            kind => {
                return Err(MalformedEntry::Kind {
                    what: Self::WHAT,
                    kind,
                });
            }
        };
        Ok(Self {
            kind,
            reporter: TaskId(u32_at(bytes, 1)),
            root: u64_at(bytes, 5),
            value: u64_at(bytes, 13),
            workers: u64_at(bytes, 21),
            slot: u32_at(bytes, 29),
        })
    }
}

impl Packed for Verdict {
    const BYTES: usize = 13;
    const WHAT: &'static str = "tree verdict";

    #[inline]
    fn write(&self, out: &mut [u8]) {
        out[0] = u8::from(self.completed);
        out[1..9].copy_from_slice(&self.root.to_le_bytes());
        out[9..13].copy_from_slice(&self.slot.to_le_bytes());
    }

    #[inline]
    fn read(bytes: &[u8]) -> Result<Self, MalformedEntry> {
        let completed = match bytes[0] {
            0 => false,
            1 => true,
            kind => {
                return Err(MalformedEntry::Kind {
                    what: Self::WHAT,
                    kind,
                });
            }
        };
        Ok(Self {
            root: u64_at(bytes, 1),
            slot: u32_at(bytes, 9),
            completed,
        })
    }
}

/// The entries packed in `bytes`, checked to be a whole number of them first.
///
/// # Errors
/// When `bytes` is not a whole number of entries; an entry of an unknown kind is an error
/// of that entry alone.
pub(crate) fn unpack<'a, T: Packed + 'a>(
    bytes: &'a [u8],
) -> Result<impl Iterator<Item = Result<T, MalformedEntry>> + 'a, MalformedEntry> {
    if !bytes.len().is_multiple_of(T::BYTES) {
        return Err(MalformedEntry::Length {
            what: T::WHAT,
            len: bytes.len(),
            size: T::BYTES,
        });
    }
    Ok(bytes.chunks_exact(T::BYTES).map(T::read))
}

/// Entries waiting to be sent, gathered per destination task.
#[derive(Debug)]
pub(crate) struct Mailboxes<T> {
    /// Indexed by task id; a box keeps its capacity once sent, so steady traffic does not
    /// allocate.
    by_task: Box<[Vec<T>]>,
    /// Tasks whose box holds entries, in the order they got their first.
    waiting: VecDeque<TaskId>,
}

impl<T> Mailboxes<T> {
    /// Boxes for task ids up to `task_count`.
    pub(crate) fn new(task_count: usize) -> Self {
        Self {
            by_task: (0..=task_count).map(|_| Vec::new()).collect(),
            waiting: VecDeque::new(),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Adds `entry` for `task`; returns false, adding nothing, for a task id beyond the
    /// topology's.
    #[inline]
    #[must_use]
    pub(crate) fn push(&mut self, task: TaskId, entry: T) -> bool {
        let Some(entries) = self.by_task.get_mut(task.index()) else {
            return false;
        };
        if entries.is_empty() {
            self.waiting.push_back(task);
        }
        entries.push(entry);
        true
    }

    /// Takes out the entries of the task that has waited longest. Hand the vector back with
    /// [`give_back`](Self::give_back) to keep its capacity.
    pub(crate) fn take_next(&mut self) -> Option<(TaskId, Vec<T>)> {
        let task = self.waiting.pop_front()?;
        Some((task, std::mem::take(&mut self.by_task[task.index()])))
    }

    /// Returns a vector taken out for `task`, emptied, unless the task's box got entries of
    /// its own meanwhile.
    pub(crate) fn give_back(&mut self, task: TaskId, mut entries: Vec<T>) {
        let slot = &mut self.by_task[task.index()];
        if slot.capacity() == 0 {
            entries.clear();
            *slot = entries;
        }
    }
}

/// The acker tasks of a topology and the traffic a thread gathers for them and from them.
#[derive(Debug)]
pub(crate) struct AckerTraffic {
    /// Acker task ids (empty when tracking is off).
    ackers: Range<TaskId>,
    /// The ackers running in this worker, as indexes into `ackers`: those a spout here may
    /// name in a root (see `tree_root`).
    local_ackers: Box<[u32]>,
    /// How named roots are laid out; `None` when the topology names none.
    roots: Option<RootLayout>,
    /// The acker count minus one when it is a power of two (one acker included), so picking
    /// the acker of a root masks instead of dividing: a division per report took a sixth
    /// of a bolt's acking.
    acker_mask: Option<u64>,
    pub(crate) reports: Mailboxes<AckerReport>,
    pub(crate) verdicts: Mailboxes<Verdict>,
}

impl AckerTraffic {
    /// Traffic for `ackers`, of which those `is_local` picks run in this worker, in a
    /// topology whose named roots are laid out as `roots`.
    pub(crate) fn new(
        ackers: Range<TaskId>,
        task_count: usize,
        is_local: impl Fn(TaskId) -> bool,
        roots: Option<RootLayout>,
    ) -> Self {
        let boxes = if ackers.is_empty() { 0 } else { task_count };
        let local_ackers = (ackers.start.0..ackers.end.0)
            .filter(|&task| is_local(TaskId(task)))
            .map(|task| task - ackers.start.0)
            .collect();
        let count = u64::from(ackers.end.0.saturating_sub(ackers.start.0));
        Self {
            local_ackers,
            roots,
            acker_mask: count.is_power_of_two().then(|| count - 1),
            ackers,
            reports: Mailboxes::new(boxes),
            verdicts: Mailboxes::new(boxes),
        }
    }

    /// Whether tuple trees are tracked.
    #[inline]
    pub(crate) fn tracking(&self) -> bool {
        !self.ackers.is_empty()
    }

    /// The acker task in charge of tree `root`.
    #[inline]
    pub(crate) fn acker_of(&self, root: u64) -> Option<TaskId> {
        let count = u64::from(self.ackers.end.0 - self.ackers.start.0);
        let key = match self.roots {
            Some(roots) => roots.acker_key(root),
            None => root,
        };
        if count == 0 {
            return None;
        }
        let index = match self.acker_mask {
            Some(mask) => key & mask,
            None => key % count,
        };
        Some(TaskId(self.ackers.start.0 + index as u32))
    }

    /// A named root (see `tree_root`) for the tree `spout` starts in `slot`, for the
    /// `generation`th time, with an acker of this worker; `None` when there is no such acker
    /// or the root cannot name them. Slots spread over the worker's ackers.
    #[inline]
    pub(crate) fn named_root(&self, spout: TaskId, slot: u32, generation: u64) -> Option<u64> {
        let acker_index = match *self.local_ackers {
            [] => return None,
            [only] => only,
            ref several => several[slot as usize % several.len()],
        };
        self.roots?.name(spout, slot, generation, acker_index)
    }

    /// The acker tasks (none when tracking is off).
    pub(crate) fn acker_tasks(&self) -> impl Iterator<Item = TaskId> + use<> {
        (self.ackers.start.0..self.ackers.end.0).map(TaskId)
    }

    /// Gathers a report for the acker of its root.
    #[inline]
    pub(crate) fn report(&mut self, report: AckerReport) {
        if let Some(acker) = self.acker_of(report.root) {
            // Acker ids are the topology's own, so there is always a box.
            let boxed = self.reports.push(acker, report);
            debug_assert!(boxed, "acker {acker} has no box");
        }
    }

    /// Gathers a failure of every tree of `anchor`, reported by `task`.
    pub(crate) fn report_failed(&mut self, task: TaskId, anchor: &super::anchor::Anchor) {
        for &(root, _) in anchor.pairs() {
            self.report(AckerReport {
                kind: ReportKind::Fail,
                reporter: task,
                root,
                value: 0,
                workers: 0,
                slot: 0,
            });
        }
    }

    /// Whether anything waits to be sent or applied.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.verdicts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack<T: Packed>(entries: &[T]) -> Vec<u8> {
        let mut bytes = vec![0; entries.len() * T::BYTES];
        for (entry, out) in entries.iter().zip(bytes.chunks_exact_mut(T::BYTES)) {
            entry.write(out);
        }
        bytes
    }

    fn report(kind: ReportKind, root: u64) -> AckerReport {
        AckerReport {
            kind,
            reporter: TaskId(7),
            root,
            value: root.rotate_left(13),
            workers: 0b101,
            slot: 3,
        }
    }

    #[test]
    fn reports_and_verdicts_round_trip() {
        let reports = [
            report(ReportKind::Init, 1),
            report(ReportKind::Ack, u64::MAX),
            report(ReportKind::Fail, 42),
        ];
        let bytes = pack(&reports);
        let read: Vec<_> = unpack::<AckerReport>(&bytes)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, reports);
        let verdicts = [
            Verdict {
                root: 9,
                slot: 1,
                completed: true,
            },
            Verdict {
                root: 10,
                slot: u32::MAX,
                completed: false,
            },
        ];
        let bytes = pack(&verdicts);
        let read: Vec<_> = unpack::<Verdict>(&bytes)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, verdicts);
    }

    #[test]
    fn a_partial_entry_or_unknown_kind_is_named() {
        let error = unpack::<AckerReport>(&[0; 34]).err().unwrap();
        assert_eq!(
            error.to_string(),
            "34 bytes of acker report are not a whole number of 33-byte entries"
        );
        let mut bytes = pack(&[report(ReportKind::Ack, 3)]);
        bytes[0] = 9;
        let entry = unpack::<AckerReport>(&bytes).unwrap().next().unwrap();
        assert_eq!(
            entry.unwrap_err().to_string(),
            "acker report entry of unknown kind 9"
        );
    }

    #[test]
    fn mailboxes_keep_order_per_task_and_capacity_across_sends() {
        let mut boxes = Mailboxes::new(4);
        assert!(boxes.push(TaskId(3), 'a'));
        assert!(boxes.push(TaskId(1), 'b'));
        assert!(boxes.push(TaskId(3), 'c'));
        assert!(
            !boxes.push(TaskId(5), 'x'),
            "no box beyond the topology's tasks"
        );
        let (task, entries) = boxes.take_next().unwrap();
        assert_eq!((task, entries.as_slice()), (TaskId(3), &['a', 'c'][..]));
        let capacity = entries.capacity();
        boxes.give_back(task, entries);
        let (task, entries) = boxes.take_next().unwrap();
        assert_eq!((task, entries.as_slice()), (TaskId(1), &['b'][..]));
        boxes.give_back(task, entries);
        assert!(boxes.is_empty());
        assert!(boxes.push(TaskId(3), 'd'));
        let (_, entries) = boxes.take_next().unwrap();
        assert_eq!(entries.capacity(), capacity, "the box kept its capacity");
    }

    #[test]
    fn entries_pushed_while_a_box_is_out_are_kept() {
        let mut boxes = Mailboxes::new(2);
        assert!(boxes.push(TaskId(2), 1));
        let (task, entries) = boxes.take_next().unwrap();
        assert!(boxes.push(TaskId(2), 2));
        boxes.give_back(task, entries);
        let (_, entries) = boxes.take_next().unwrap();
        assert_eq!(entries, [2]);
    }

    #[test]
    fn reports_go_to_the_acker_of_their_root() {
        let mut traffic = AckerTraffic::new(TaskId(4)..TaskId(6), 6, |_| true, None);
        traffic.report(report(ReportKind::Ack, 5));
        traffic.report(report(ReportKind::Ack, 6));
        let (first, _) = traffic.reports.take_next().unwrap();
        let (second, _) = traffic.reports.take_next().unwrap();
        assert_eq!((first, second), (TaskId(5), TaskId(4)));
        let untracked = AckerTraffic::new(TaskId(0)..TaskId(0), 6, |_| true, None);
        assert!(!untracked.tracking());
        assert_eq!(untracked.acker_of(5), None);
        assert_eq!(untracked.named_root(TaskId(1), 0, 0), None);
    }

    #[test]
    fn the_acker_of_a_root_is_its_key_modulo_the_count_whether_masked_or_divided() {
        for count in 1..=9u32 {
            let traffic = AckerTraffic::new(TaskId(3)..TaskId(3 + count), 12, |_| true, None);
            for root in [1u64, 2, 7, 8, 255, 1 << 40, u64::MAX - 3, u64::MAX] {
                let expected = TaskId(3 + (root % u64::from(count)) as u32);
                assert_eq!(traffic.acker_of(root), Some(expected), "{count} ackers");
            }
        }
    }

    #[test]
    fn named_roots_pick_an_acker_of_this_worker() {
        // Ackers 4, 5 and 6; only 5 and 6 run here.
        let roots = RootLayout::new(7, Some(64), 3);
        let traffic = AckerTraffic::new(TaskId(4)..TaskId(7), 7, |task| task.0 != 4, roots);
        for slot in 0..8 {
            let root = traffic.named_root(TaskId(2), slot, 0).unwrap();
            let acker = traffic.acker_of(root).unwrap();
            assert_ne!(acker, TaskId(4), "slot {slot} went to a remote acker");
            assert_eq!(roots.unwrap().spout_of(root), Some((TaskId(2), slot)));
        }
        let remote = AckerTraffic::new(TaskId(4)..TaskId(7), 7, |_| false, roots);
        assert_eq!(remote.named_root(TaskId(2), 0, 0), None, "no acker here");
    }

    proptest! {
        /// Whatever bytes arrive, unpacking names a bad length or reads entries, each
        /// valid or named malformed; it never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(entries) = unpack::<AckerReport>(&bytes) {
                for report in entries.flatten() {
                    let mut again = [0; AckerReport::BYTES];
                    report.write(&mut again);
                    prop_assert_eq!(AckerReport::read(&again), Ok(report));
                }
            }
            if let Ok(entries) = unpack::<Verdict>(&bytes) {
                for entry in entries {
                    let _ = entry;
                }
            }
        }
    }
}
