//! Tuple-tree bookkeeping, as plain data: the spout's pending trees and the acker's xor
//! ledger, both expired in bulk — a periodic sweep of the live entries every expiry tick —
//! rather than by a timer per tuple. Once the tables have grown to their working size
//! nothing allocates.
//!
//! The algorithm is Storm's. A spout's tracked emit starts a tree with a 64-bit root id
//! (random, or naming the spout and its slot: see `tree_root`); every record of the tree
//! carries a random edge id (but for a named tree's first records, whose edges xor to the
//! root). The acker in charge of the root keeps the xor of every edge id it has heard of: the
//! spout reports the edges of the records it sent (an init report), and a bolt acking an
//! input reports the input's edge xor the edges of the records it anchored to that input (an
//! ack report; `acker_traffic` carries both; a named root stands for its init report).
//! Every edge is reported exactly twice — once when its record is created, once when it is
//! acked — so the xor returns to zero exactly when the whole tree is processed (up to a
//! 2⁻⁶⁴ chance of an early zero). An explicit fail anywhere fails the tree.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;

use super::slot_ledgers::{SlotEntry, SlotLedgers, SlotLookup};
use super::tree_root::RootLayout;
use super::tree_workers::routed_through;
use crate::ids::{MessageId, TaskId};

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// When entries expire: `timeout` after they start, checked by a sweep every `tick`, so an
/// entry expires within one tick after its timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expiry {
    timeout_nanos: u64,
    tick_nanos: u64,
    next_sweep_nanos: u64,
}

impl Expiry {
    pub(crate) fn new(timeout_nanos: u64, tick_nanos: u64, now_nanos: u64) -> Self {
        let tick_nanos = tick_nanos.max(1);
        Self {
            timeout_nanos,
            tick_nanos,
            next_sweep_nanos: now_nanos + tick_nanos,
        }
    }

    /// The deadline of an entry started at `now_nanos`.
    #[inline]
    pub(crate) fn deadline(&self, now_nanos: u64) -> u64 {
        now_nanos.saturating_add(self.timeout_nanos)
    }

    /// When the next sweep is due.
    pub(crate) fn next_due_nanos(&self) -> u64 {
        self.next_sweep_nanos
    }

    /// Whether a sweep is due at `now_nanos`; if so, schedules the following one.
    fn sweep_due(&mut self, now_nanos: u64) -> bool {
        if now_nanos < self.next_sweep_nanos {
            return false;
        }
        self.next_sweep_nanos = now_nanos + self.tick_nanos;
        true
    }
}

/// A spout task's tracked trees in flight, in a table of slots: a tree's slot number
/// travels with its init to the acker and back with the verdict, so settling a tree is an
/// index and a compare of its root, not a hash lookup. Freed slots are reused, so the table
/// grows only to the most trees ever in flight at once (`max_spout_pending`, sized up front).
#[derive(Debug)]
pub(crate) struct PendingTrees {
    slots: Vec<Slot>,
    /// Free slots and the generation each is at, the latest freed on top (its memory is
    /// likely still cached).
    free: Vec<(u32, u64)>,
    /// The generation the next slot added to the table starts at: random, so that a new
    /// table (a restarted spout's) does not repeat its predecessor's named roots.
    fresh_generation: u64,
    live: usize,
    expiry: Expiry,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The tree's root; 0 (never a root) for a free slot.
    root: u64,
    /// Counts the trees the slot held, from a random start (wrapping): what keeps a named
    /// root (see `tree_root`) of a reused slot new.
    generation: u64,
    tree: PendingTree,
}

/// One tree a spout waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingTree {
    pub(crate) message: MessageId,
    pub(crate) emitted_nanos: u64,
    /// The spout's output stream (index into its streams) the root tuple went out on.
    pub(crate) stream: u16,
    deadline: u64,
}

impl PendingTrees {
    #[cfg(test)]
    pub(crate) fn new(timeout_nanos: u64, now_nanos: u64) -> Self {
        Self::with_capacity(timeout_nanos, now_nanos, 0)
    }

    /// Room for `capacity` trees from the start (the spout's `max_spout_pending`), so the
    /// table never grows while running.
    pub(crate) fn with_capacity(timeout_nanos: u64, now_nanos: u64, capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            fresh_generation: fastrand::u64(..),
            live: 0,
            expiry: Expiry::new(timeout_nanos, expiry_tick(timeout_nanos), now_nanos),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The slot the next [`insert`](Self::insert) fills, and the generation it gets there:
    /// what a named root is made of.
    #[inline]
    pub(crate) fn upcoming(&self) -> (u32, u64) {
        match self.free.last() {
            Some(&free) => free,
            None => (
                u32::try_from(self.slots.len()).expect("fewer than 2^32 trees"),
                self.fresh_generation,
            ),
        }
    }

    /// Adds the tree of `root` (never 0) and returns its slot, the one
    /// [`upcoming`](Self::upcoming) named.
    #[inline]
    pub(crate) fn insert(
        &mut self,
        root: u64,
        message: MessageId,
        stream: u16,
        now_nanos: u64,
    ) -> u32 {
        debug_assert_ne!(root, 0, "0 marks a free slot");
        let (index, generation) = self.upcoming();
        let slot = Slot {
            root,
            generation,
            tree: PendingTree {
                message,
                emitted_nanos: now_nanos,
                stream,
                deadline: self.expiry.deadline(now_nanos),
            },
        };
        self.live += 1;
        if self.free.pop().is_some() {
            self.slots[index as usize] = slot;
        } else {
            self.slots.push(slot);
            self.fresh_generation = fastrand::u64(..);
        }
        index
    }

    /// Takes the tree of `root` out of `slot`, if it is still pending there. A verdict on a
    /// tree that timed out, or naming a slot that does not hold its root, finds nothing.
    #[inline]
    pub(crate) fn take(&mut self, root: u64, slot: u32) -> Option<PendingTree> {
        let entry = self.slots.get_mut(slot as usize)?;
        if entry.root != root || root == 0 {
            return None;
        }
        entry.root = 0;
        self.live -= 1;
        self.free.push((slot, entry.generation.wrapping_add(1)));
        Some(entry.tree)
    }

    pub(crate) fn next_due_nanos(&self) -> u64 {
        self.expiry.next_due_nanos()
    }

    /// Takes out every tree whose root `chosen` picks and hands it to `each`.
    pub(crate) fn take_where(
        &mut self,
        mut chosen: impl FnMut(u64) -> bool,
        each: impl FnMut(PendingTree),
    ) {
        self.take_matching(|root, _| chosen(root), each);
    }

    fn take_matching(
        &mut self,
        mut chosen: impl FnMut(u64, &PendingTree) -> bool,
        mut each: impl FnMut(PendingTree),
    ) {
        for (index, entry) in self.slots.iter_mut().enumerate() {
            if entry.root != 0 && chosen(entry.root, &entry.tree) {
                entry.root = 0;
                self.live -= 1;
                self.free
                    .push((index as u32, entry.generation.wrapping_add(1)));
                each(entry.tree);
            }
        }
    }

    /// When a sweep is due, takes out every tree past its timeout and hands it to
    /// `timed_out`.
    pub(crate) fn expire(&mut self, now_nanos: u64, timed_out: impl FnMut(PendingTree)) {
        if !self.expiry.sweep_due(now_nanos) {
            return;
        }
        self.take_matching(|_, tree| tree.deadline <= now_nanos, timed_out);
    }
}

/// What the acker concluded about a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeOutcome {
    /// Every record of the tree was acked: tell `spout_task`, naming the tree's `slot`.
    Completed { spout_task: TaskId, slot: u32 },
    /// The tree failed: tell `spout_task`, naming the tree's `slot`.
    Failed { spout_task: TaskId, slot: u32 },
}

/// What an acker knows of one tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ledger {
    /// The xor of every edge reported so far.
    pub(crate) value: u64,
    spout_task: Option<TaskId>,
    /// The tree's slot in its spout's pending table.
    slot: u32,
    failed: bool,
    /// The workers the tree touched, as reported (see `tree_workers`).
    workers: u64,
    deadline: u64,
}

impl Ledger {
    /// The entry of a free slot.
    pub(crate) const EMPTY: Ledger = Ledger {
        value: 0,
        spout_task: None,
        slot: 0,
        failed: false,
        workers: 0,
        deadline: 0,
    };

    /// A new tree's entry, before any report is applied: a named root's (`named` its spout
    /// task and slot) starts from what its spout's init would have said, the root as the xor
    /// of the first edges.
    #[inline]
    fn new(root: u64, named: Option<(TaskId, u32)>, deadline: u64) -> Self {
        Ledger {
            value: if named.is_some() { root } else { 0 },
            spout_task: named.map(|(spout_task, _)| spout_task),
            slot: named.map_or(0, |(_, slot)| slot),
            failed: false,
            workers: 0,
            deadline,
        }
    }

    /// What the tree came to, once its spout is known and it failed or its xor is zero.
    #[inline]
    fn outcome(&self) -> Option<TreeOutcome> {
        let spout_task = self.spout_task?;
        let slot = self.slot;
        if self.failed {
            Some(TreeOutcome::Failed { spout_task, slot })
        } else if self.value == 0 {
            Some(TreeOutcome::Completed { spout_task, slot })
        } else {
            None
        }
    }
}

/// An acker task's xor ledger of the trees it is in charge of.
#[derive(Debug)]
pub(crate) struct AckerLedger {
    /// Named roots, by the spout task and slot they carry.
    slots: SlotLedgers,
    /// Announced roots, and named roots whose slot held another root.
    trees: FastMap<u64, Ledger>,
    expiry: Expiry,
    /// How the topology's named roots are laid out; `None` when it names none.
    roots: Option<RootLayout>,
}

impl AckerLedger {
    #[cfg(test)]
    pub(crate) fn new(timeout_nanos: u64, now_nanos: u64) -> Self {
        Self::with_capacity(timeout_nanos, now_nanos, 0, Some(test_layout()))
    }

    /// Room for `capacity` trees from the start; named roots laid out as `roots`.
    ///
    /// Entries are dropped a little after the spouts time them out (`timeout_nanos` plus two
    /// expiry ticks), so a late ack never completes a tree its spout already failed and
    /// orphaned entries (acks of failed trees) do not accumulate.
    pub(crate) fn with_capacity(
        timeout_nanos: u64,
        now_nanos: u64,
        capacity: usize,
        roots: Option<RootLayout>,
    ) -> Self {
        let tick = expiry_tick(timeout_nanos);
        Self {
            slots: SlotLedgers::default(),
            trees: FastMap::with_capacity_and_hasher(capacity, Default::default()),
            expiry: Expiry::new(timeout_nanos + 2 * tick, tick, now_nanos),
            roots,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len() + self.trees.len()
    }

    /// Applies `change` to the entry of `root` (a new one if there is none) and settles it,
    /// with one lookup: a settled entry is removed through the same slot, and an entry
    /// settled by its first message is never stored.
    ///
    /// A new entry of a named root (see `tree_root`) starts from what the spout's init
    /// would have said: the root as the xor of the first edges, its spout and slot. It goes
    /// to the root's slot unless that holds another root, or the root is already kept with
    /// the announced ones.
    #[inline]
    fn update(
        &mut self,
        root: u64,
        now_nanos: u64,
        change: impl FnOnce(&mut Ledger),
    ) -> Option<TreeOutcome> {
        let named = self.roots.and_then(|roots| roots.spout_of(root));
        if let Some((spout_task, slot)) = named
            && (self.trees.is_empty() || !self.trees.contains_key(&root))
        {
            match self.slots.lookup(root, spout_task, slot) {
                SlotLookup::Held(entry) => {
                    change(&mut entry.ledger);
                    let outcome = entry.ledger.outcome();
                    if outcome.is_some() {
                        entry.root = 0;
                        self.slots.removed();
                    }
                    return outcome;
                }
                SlotLookup::Free(entry) => {
                    let mut ledger = Ledger::new(root, named, self.expiry.deadline(now_nanos));
                    change(&mut ledger);
                    let outcome = ledger.outcome();
                    if outcome.is_none() {
                        *entry = SlotEntry { root, ledger };
                        self.slots.stored();
                    }
                    return outcome;
                }
                SlotLookup::Taken => {}
            }
        }
        match self.trees.entry(root) {
            Entry::Occupied(mut occupied) => {
                let ledger = occupied.get_mut();
                change(ledger);
                let outcome = ledger.outcome();
                if outcome.is_some() {
                    occupied.remove();
                }
                outcome
            }
            Entry::Vacant(vacant) => {
                let mut ledger = Ledger::new(root, named, self.expiry.deadline(now_nanos));
                change(&mut ledger);
                let outcome = ledger.outcome();
                if outcome.is_none() {
                    vacant.insert(ledger);
                }
                outcome
            }
        }
    }

    /// A spout started tree `root` in `slot` of its pending table; its first records'
    /// edges xor to `edges`, and they touched `workers`.
    #[inline]
    pub(crate) fn init(
        &mut self,
        root: u64,
        edges: u64,
        workers: u64,
        (spout_task, slot): (TaskId, u32),
        now_nanos: u64,
    ) -> Option<TreeOutcome> {
        self.update(root, now_nanos, |ledger| {
            ledger.value ^= edges;
            ledger.workers |= workers;
            ledger.spout_task = Some(spout_task);
            ledger.slot = slot;
        })
    }

    /// A bolt acked a record of tree `root`, reporting `value`; it and its children
    /// touched `workers`.
    #[inline]
    pub(crate) fn ack(
        &mut self,
        root: u64,
        value: u64,
        workers: u64,
        now_nanos: u64,
    ) -> Option<TreeOutcome> {
        self.update(root, now_nanos, |ledger| {
            ledger.value ^= value;
            ledger.workers |= workers;
        })
    }

    /// The link between two workers (`link`, their bits) was lost: fails every tree that
    /// touched both, counting this acker's worker (`own`) as touched by every tree, since
    /// their acker traffic comes here. Hands each failed tree whose spout is known to
    /// `failed` (root, spout task); the others fail once their spout reports.
    pub(crate) fn fail_routed_through(
        &mut self,
        link: u64,
        own: u64,
        mut failed: impl FnMut(u64, TaskId, u32),
    ) {
        let mut fail_routed = |root: u64, ledger: &mut Ledger| {
            if ledger.failed || !routed_through(ledger.workers | own, link) {
                return true;
            }
            ledger.failed = true;
            match ledger.spout_task {
                Some(spout_task) => {
                    failed(root, spout_task, ledger.slot);
                    false
                }
                None => true,
            }
        };
        self.slots.retain(&mut fail_routed);
        self.trees.retain(|&root, ledger| fail_routed(root, ledger));
    }

    /// A bolt failed a record of tree `root`.
    #[inline]
    pub(crate) fn fail(&mut self, root: u64, now_nanos: u64) -> Option<TreeOutcome> {
        self.update(root, now_nanos, |ledger| ledger.failed = true)
    }

    pub(crate) fn next_due_nanos(&self) -> u64 {
        self.expiry.next_due_nanos()
    }

    /// When a sweep is due, drops entries past their time; returns how many.
    pub(crate) fn expire(&mut self, now_nanos: u64) -> usize {
        if !self.expiry.sweep_due(now_nanos) {
            return 0;
        }
        let before = self.len();
        self.slots.retain(|_, ledger| ledger.deadline > now_nanos);
        self.trees.retain(|_, ledger| ledger.deadline > now_nanos);
        before - self.len()
    }
}

/// The root layout of the unit tests: 16 tasks, 1024 trees in flight per spout, one acker.
#[cfg(test)]
pub(crate) fn test_layout() -> RootLayout {
    RootLayout::new(16, Some(1024), 1).expect("room for nonces")
}

/// The expiry tick for a timeout: an eighth of it, between 1 ms and 1 s, so a timed-out tree
/// fails at most that long after its timeout.
pub(crate) fn expiry_tick(timeout_nanos: u64) -> u64 {
    (timeout_nanos / 8).clamp(1_000_000, 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn named(spout: u32, slot: u32) -> u64 {
        test_layout().name(TaskId(spout), slot, 0, 0).unwrap()
    }

    #[test]
    fn a_tree_completes_when_every_edge_is_reported_twice() {
        let mut ledger = AckerLedger::new(30 * SECOND, 0);
        let (a, b, c) = (0x1111, 0x2222, 0x4444);
        // Spout sent two records (edges a, b); a bolt acked a and anchored c to it.
        assert_eq!(ledger.init(7, a ^ b, 0, (TaskId(3), 0), 0), None);
        assert_eq!(ledger.ack(7, a ^ c, 0, 0), None);
        assert_eq!(ledger.ack(7, b, 0, 0), None);
        assert_eq!(
            ledger.ack(7, c, 0, 0),
            Some(TreeOutcome::Completed {
                spout_task: TaskId(3),
                slot: 0,
            })
        );
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn acks_before_init_wait_for_the_spout() {
        let mut ledger = AckerLedger::new(30 * SECOND, 0);
        assert_eq!(ledger.ack(9, 0x55, 0, 0), None);
        assert_eq!(
            ledger.init(9, 0x55, 0, (TaskId(4), 0), 0),
            Some(TreeOutcome::Completed {
                spout_task: TaskId(4),
                slot: 0,
            })
        );
    }

    #[test]
    fn a_named_tree_needs_no_init_and_a_one_hop_tree_is_never_stored() {
        let mut ledger = AckerLedger::new(30 * SECOND, 0);
        let root = named(6, 41);
        // One record, whose edge is the root itself: the bolt's ack settles the tree.
        assert_eq!(
            ledger.ack(root, root, 0, 0),
            Some(TreeOutcome::Completed {
                spout_task: TaskId(6),
                slot: 41,
            })
        );
        assert_eq!(ledger.len(), 0, "never stored");

        // Two first records (edges a, root ^ a); a child c of the second is acked first.
        let root = named(6, 42);
        let (a, c) = (0x1357, 0x2468);
        assert_eq!(ledger.ack(root, c, 0, 0), None);
        assert_eq!(ledger.ack(root, a, 0, 0), None);
        assert_eq!(
            ledger.ack(root, root ^ a ^ c, 0, 0),
            Some(TreeOutcome::Completed {
                spout_task: TaskId(6),
                slot: 42,
            })
        );

        let root = named(6, 43);
        assert_eq!(
            ledger.fail(root, 0),
            Some(TreeOutcome::Failed {
                spout_task: TaskId(6),
                slot: 43,
            }),
            "a fail needs no init either"
        );
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn two_named_roots_of_one_slot_are_both_kept_and_settle_apart() {
        let mut ledger = AckerLedger::new(30 * SECOND, 0);
        let layout = test_layout();
        // An old tree left in slot 7 (its spout gave up on it), and the slot's next tree.
        let old = layout.name(TaskId(2), 7, 1, 0).unwrap();
        let new = layout.name(TaskId(2), 7, 2, 0).unwrap();
        let (a, b) = (0x1111, 0x2222);
        assert_eq!(ledger.ack(old, a, 0, 0), None);
        assert_eq!(ledger.ack(new, b, 0, 0), None);
        assert_eq!(ledger.ack(new, 0x33, 0, 0), None);
        assert_eq!(ledger.len(), 2);
        let completed = Some(TreeOutcome::Completed {
            spout_task: TaskId(2),
            slot: 7,
        });
        assert_eq!(ledger.ack(new, new ^ b ^ 0x33, 0, 0), completed);
        assert_eq!(ledger.ack(old, old ^ a, 0, 0), completed);
        assert_eq!(ledger.len(), 0);
        // The slot is free again, and a root kept aside while it was taken stays aside.
        let third = layout.name(TaskId(2), 7, 3, 0).unwrap();
        assert_eq!(ledger.ack(third, 0x44, 0, 0), None);
        assert_eq!(ledger.ack(third, third ^ 0x44, 0, 0), completed);
    }

    #[test]
    fn named_and_announced_trees_expire_and_fail_with_a_lost_link_alike() {
        let mut ledger = AckerLedger::new(SECOND, 0);
        let (link, own) = (0b110, 0b010);
        let named_root = named(3, 9);
        assert_eq!(ledger.ack(named_root, 0x5, 0b100, 0), None);
        assert_eq!(ledger.init(77, 0x6, 0b100, (TaskId(4), 1), 0), None);
        assert_eq!(ledger.ack(named(3, 10), 0x7, 0, 0), None);
        let mut failed = Vec::new();
        ledger.fail_routed_through(link, own, |root, spout, slot| {
            failed.push((root, spout, slot))
        });
        failed.sort();
        assert_eq!(
            failed,
            [(77, TaskId(4), 1), (named_root, TaskId(3), 9)],
            "both kinds, through the link"
        );
        assert_eq!(ledger.len(), 1, "the tree that stayed home is left");
        assert_eq!(ledger.expire(10 * SECOND), 1);
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn upcoming_names_the_slot_and_generation_insert_takes() {
        let mut pending = PendingTrees::new(SECOND, 0);
        let (slot, start) = pending.upcoming();
        assert_eq!(slot, 0);
        assert_eq!(pending.insert(5, MessageId(1), 0, 0), 0);
        let (next, _) = pending.upcoming();
        assert_eq!(next, 1, "a fresh slot");
        pending.take(5, 0);
        assert_eq!(
            pending.upcoming(),
            (0, start.wrapping_add(1)),
            "the freed slot, one generation on"
        );
        assert_eq!(pending.insert(6, MessageId(2), 0, 0), 0);
        pending.take(6, 0);
        assert_eq!(pending.upcoming(), (0, start.wrapping_add(2)));
        let other = PendingTrees::new(SECOND, 0);
        assert_ne!(
            other.upcoming().1,
            start,
            "another table (a restarted spout's) starts elsewhere"
        );
    }

    #[test]
    fn a_fail_anywhere_fails_the_tree_once() {
        let mut ledger = AckerLedger::new(30 * SECOND, 0);
        assert_eq!(ledger.fail(5, 0), None, "spout unknown yet");
        assert_eq!(
            ledger.init(5, 0x10, 0, (TaskId(2), 0), 0),
            Some(TreeOutcome::Failed {
                spout_task: TaskId(2),
                slot: 0,
            })
        );
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn pending_trees_time_out_within_one_tick_after_the_timeout() {
        let timeout = 10 * SECOND;
        let tick = expiry_tick(timeout);
        let mut pending = PendingTrees::new(timeout, 0);
        pending.insert(1, MessageId(100), 0, 0);
        let slot = pending.insert(2, MessageId(200), 0, 3 * SECOND);
        assert!(pending.take(2, slot).is_some());
        let mut failed = Vec::new();
        pending.expire(timeout - 1, |tree| failed.push(tree.message));
        assert!(failed.is_empty(), "nothing fails before its timeout");
        pending.expire(timeout + tick, |tree| failed.push(tree.message));
        assert_eq!(failed, [MessageId(100)], "acked trees never time out");
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_reused_root_is_not_expired_by_its_old_deadline() {
        let mut pending = PendingTrees::new(SECOND, 0);
        let slot = pending.insert(1, MessageId(1), 0, 0);
        pending.take(1, slot);
        pending.insert(1, MessageId(2), 0, SECOND / 2);
        let mut failed = Vec::new();
        pending.expire(SECOND + SECOND / 8, |tree| failed.push(tree.message));
        assert!(failed.is_empty());
        pending.expire(2 * SECOND, |tree| failed.push(tree.message));
        assert_eq!(failed, [MessageId(2)]);
    }

    #[test]
    fn a_verdict_settles_only_the_tree_in_its_slot() {
        let mut pending = PendingTrees::new(SECOND, 0);
        let first = pending.insert(11, MessageId(1), 0, 0);
        let second = pending.insert(12, MessageId(2), 0, 0);
        assert_ne!(first, second);
        assert_eq!(pending.take(11, second), None, "another tree's slot");
        assert_eq!(pending.take(11, 99), None, "a slot that does not exist");
        assert_eq!(
            pending.take(11, first).map(|tree| tree.message),
            Some(MessageId(1))
        );
        assert_eq!(pending.take(11, first), None, "settled once");
        let reused = pending.insert(13, MessageId(3), 0, 0);
        assert_eq!(reused, first, "a freed slot is reused");
        assert_eq!(
            pending.take(11, reused),
            None,
            "a late verdict for its old tree"
        );
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn sweeps_run_once_per_tick() {
        const MILLI: u64 = 1_000_000;
        let mut pending = PendingTrees::new(SECOND, 0);
        assert_eq!(expiry_tick(SECOND), 125 * MILLI);
        pending.insert(1, MessageId(1), 0, 0);
        let mut failed = Vec::new();
        pending.expire(900 * MILLI, |tree| failed.push(tree.message));
        assert_eq!(pending.next_due_nanos(), 1025 * MILLI);
        // Past the deadline, but the next sweep is not due yet.
        pending.expire(1010 * MILLI, |tree| failed.push(tree.message));
        assert!(failed.is_empty());
        pending.expire(1025 * MILLI, |tree| failed.push(tree.message));
        assert_eq!(failed, [MessageId(1)]);
    }

    #[test]
    fn acker_entries_expire_after_the_spouts_timeout() {
        let mut ledger = AckerLedger::new(SECOND, 0);
        ledger.ack(1, 5, 0, 0);
        assert_eq!(ledger.expire(SECOND), 0);
        assert_eq!(ledger.expire(2 * SECOND), 1);
    }

    #[test]
    fn a_lost_link_fails_only_the_trees_that_touched_both_its_ends() {
        let (a, b, c) = (0b001, 0b010, 0b100);
        let mut ledger = AckerLedger::new(30 * SECOND, 0);
        // Acker on worker a. Tree 1 went b -> c, tree 2 stayed between a and b, tree 3's
        // spout has not reported yet but a bolt on c acked a record it got from b.
        assert_eq!(ledger.init(1, 0x10, b | c, (TaskId(5), 0), 0), None);
        assert_eq!(ledger.init(2, 0x20, a | b, (TaskId(6), 0), 0), None);
        assert_eq!(ledger.ack(3, 0x30, b | c, 0), None);
        let mut failed = Vec::new();
        ledger.fail_routed_through(b | c, a, |root, spout, _| failed.push((root, spout)));
        assert_eq!(failed, [(1, TaskId(5))]);
        assert_eq!(
            ledger.init(3, 0x30, b, (TaskId(7), 0), 0),
            Some(TreeOutcome::Failed {
                spout_task: TaskId(7),
                slot: 0,
            }),
            "a tree failed before its spout reported fails when it does"
        );
        assert_eq!(
            ledger.ack(2, 0x20, a, 0),
            Some(TreeOutcome::Completed {
                spout_task: TaskId(6),
                slot: 0,
            })
        );

        // The acker's own worker counts as touched: its traffic crossed links to it.
        ledger.init(4, 0x40, b, (TaskId(5), 0), 0);
        let mut failed = Vec::new();
        ledger.fail_routed_through(a | b, a, |root, _, _| failed.push(root));
        assert_eq!(failed, [4]);
    }
}
