//! Root ids of tuple trees, in two kinds.
//!
//! An *announced* root is random (top bit clear). Its spout tells the acker about the tree
//! with an init report carrying the spout task, the tree's pending slot and the xor of the
//! first records' edges.
//!
//! A *named* root (top bit set) carries the spout task and the slot themselves, and its
//! spout chooses the first records' edges so that they xor to the root. The acker can then
//! start the tree's ledger entry from the root alone, whichever report about the tree comes
//! first, and the spout sends no init report: a tree of one hop costs one report (the bolt's
//! ack), whose value cancels the root, so the acker settles it without ever storing it.
//!
//! A spout names a root only when the tree's first records and its acker all stay in the
//! spout's worker: an init report also carries the workers the first records went to, and
//! the acker needs that to fail the trees a lost link carried (see `tree_workers`). Inside
//! one worker no link is involved until a bolt's ack, which reports its own.
//!
//! Below the top bit, a named root holds the spout task, the slot and a nonce, each as wide
//! as the topology needs ([`RootLayout`]): the task as wide as the largest task id, the slot
//! as wide as twice `max_spout_pending`, the nonce the rest — 40 bits or more for topologies
//! of a few thousand tasks and trees in flight. The nonce is the slot's generation, which
//! starts at a random value for every slot of every spout incarnation and counts the slot's
//! reuses: a late report about a tree that timed out, or that a restarted spout forgot,
//! names another root than the tree that took its slot after it. The nonce also names the
//! acker the spout chose: a named root's acker is its nonce modulo the number of ackers
//! (an announced root's, the root modulo it), so naming a root takes no division.

use crate::ids::TaskId;
use crate::topology::Topology;

/// The top bit: set on named roots, clear on announced ones.
const NAMED: u64 = 1 << 63;

/// Fewest nonce bits a layout keeps for generations, after the acker's share: below this,
/// roots are not named.
const MIN_GENERATION_BITS: u32 = 32;

/// Slot bits when `max_spout_pending` is unbounded.
const UNBOUNDED_SLOT_BITS: u32 = 20;

/// A random announced root: never 0 (a free slot) and never named.
#[inline]
pub(crate) fn announced(rng: &mut fastrand::Rng) -> u64 {
    rng.u64(1..NAMED)
}

/// Bits that hold every value below `count`.
fn bits_for(count: u64) -> u32 {
    u64::BITS - count.saturating_sub(1).leading_zeros()
}

/// How the named roots of one topology are laid out, the same in every worker: it depends
/// only on the topology's task count, `max_spout_pending` and acker count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootLayout {
    acker_count: u32,
    slot_bits: u32,
    task_bits: u32,
    /// Below the nonce: `nonce_bits` wide.
    nonce_bits: u32,
    /// Generations kept in a nonce, minus one: a power of two, so that a nonce of
    /// `(generation & mask) * acker_count + acker` fits its bits.
    generation_mask: u64,
}

impl RootLayout {
    /// The layout for a topology; `None` when it tracks no trees or its tasks and slots
    /// leave too few bits for the nonce.
    pub(crate) fn of(topology: &Topology) -> Option<Self> {
        let acker_count = topology.acker().map_or(0, |acker| acker.task_count());
        let max_pending = topology.config().max_spout_pending;
        Self::new(
            topology.task_count(),
            max_pending,
            u32::try_from(acker_count).ok()?,
        )
    }

    /// The layout for `task_count` tasks (ids up to it), `max_pending` trees in flight per
    /// spout task and `acker_count` ackers.
    pub(crate) fn new(
        task_count: usize,
        max_pending: Option<u32>,
        acker_count: u32,
    ) -> Option<Self> {
        if acker_count == 0 {
            return None;
        }
        let task_bits = bits_for(task_count as u64 + 1);
        // Twice the limit: a spout may emit a few trees past it in one call.
        let slot_bits = max_pending.map_or(UNBOUNDED_SLOT_BITS, |pending| {
            bits_for(2 * u64::from(pending))
        });
        let nonce_bits = 63u32.checked_sub(task_bits + slot_bits)?;
        let generation_bits = nonce_bits.checked_sub(bits_for(u64::from(acker_count)))?;
        if generation_bits < MIN_GENERATION_BITS {
            return None;
        }
        Some(Self {
            acker_count,
            slot_bits,
            task_bits,
            nonce_bits,
            generation_mask: (1 << generation_bits) - 1,
        })
    }

    /// The named root of the tree in `slot` of `spout`'s pending table at `generation`,
    /// whose acker is acker `acker_index` (below the count); `None` when the task or slot
    /// does not fit.
    #[inline]
    pub(crate) fn name(
        &self,
        spout: TaskId,
        slot: u32,
        generation: u64,
        acker_index: u32,
    ) -> Option<u64> {
        if u64::from(spout.0) >> self.task_bits != 0 || u64::from(slot) >> self.slot_bits != 0 {
            return None;
        }
        debug_assert!(acker_index < self.acker_count);
        let nonce = (generation & self.generation_mask) * u64::from(self.acker_count)
            + u64::from(acker_index);
        let slot_shift = self.nonce_bits;
        let task_shift = slot_shift + self.slot_bits;
        Some(NAMED | (u64::from(spout.0) << task_shift) | (u64::from(slot) << slot_shift) | nonce)
    }

    /// The spout task and slot a named root carries; `None` for an announced root.
    #[inline]
    pub(crate) fn spout_of(&self, root: u64) -> Option<(TaskId, u32)> {
        if root & NAMED == 0 {
            return None;
        }
        let slot_shift = self.nonce_bits;
        let task_shift = slot_shift + self.slot_bits;
        let task = (root >> task_shift) & ((1 << self.task_bits) - 1);
        let slot = (root >> slot_shift) & ((1 << self.slot_bits) - 1);
        Some((TaskId(task as u32), slot as u32))
    }

    /// What picks the acker of `root`: the root itself, or a named root's nonce.
    #[inline]
    pub(crate) fn acker_key(&self, root: u64) -> u64 {
        if root & NAMED == 0 {
            root
        } else {
            root & ((1 << self.nonce_bits) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn announced_roots_are_never_named_or_zero() {
        let layout = RootLayout::new(10, Some(4096), 1).unwrap();
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..10_000 {
            let root = announced(&mut rng);
            assert_ne!(root, 0);
            assert_eq!(layout.spout_of(root), None);
            assert_eq!(layout.acker_key(root), root);
        }
    }

    #[test]
    fn fields_are_as_wide_as_the_topology_needs() {
        let layout = RootLayout::new(100, Some(4096), 2).unwrap();
        assert_eq!((layout.task_bits, layout.slot_bits), (7, 13));
        assert_eq!(
            layout.nonce_bits, 43,
            "generations of 42 bits, and the acker"
        );
        let unbounded = RootLayout::new(100, None, 1).unwrap();
        assert_eq!(unbounded.slot_bits, UNBOUNDED_SLOT_BITS);
    }

    #[test]
    fn what_does_not_fit_is_not_named() {
        let layout = RootLayout::new(100, Some(4096), 1).unwrap();
        assert_eq!(layout.name(TaskId(128), 0, 0, 0), None, "task too large");
        assert_eq!(
            layout.name(TaskId(1), 1 << 13, 0, 0),
            None,
            "slot too large"
        );
        assert!(layout.name(TaskId(127), (1 << 13) - 1, 0, 0).is_some());
        assert!(RootLayout::new(100, Some(4096), 0).is_none(), "no acker");
        assert!(
            RootLayout::new(1 << 20, Some(1 << 20), 1).is_none(),
            "too few bits left for generations"
        );
    }

    #[test]
    fn a_reused_slot_gets_a_new_root() {
        let layout = RootLayout::new(10, Some(100), 3).unwrap();
        let first = layout.name(TaskId(3), 9, 0, 1).unwrap();
        let second = layout.name(TaskId(3), 9, 1, 1).unwrap();
        assert_ne!(first, second);
        assert_eq!(layout.spout_of(first), layout.spout_of(second));
        assert_eq!(layout.acker_key(first) % 3, 1);
        assert_eq!(layout.acker_key(second) % 3, 1);
    }

    proptest! {
        /// A named root gives back its spout and slot, picks the chosen acker, and is
        /// never 0.
        #[test]
        fn named_roots_carry_spout_slot_and_acker(
            task_count in 1usize..70_000,
            max_pending in proptest::option::of(1u32..200_000),
            acker_count in 1u32..1_000,
            spout in any::<u32>(),
            slot in any::<u32>(),
            generation in any::<u64>(),
            pick in any::<u32>(),
        ) {
            let Some(layout) = RootLayout::new(task_count, max_pending, acker_count) else {
                return Ok(());
            };
            let spout = TaskId(spout % (task_count as u32 + 1));
            let slot = slot % (1 << layout.slot_bits);
            let acker_index = pick % acker_count;
            let root = layout.name(spout, slot, generation, acker_index).unwrap();
            prop_assert_ne!(root, 0);
            prop_assert_eq!(layout.spout_of(root), Some((spout, slot)));
            prop_assert_eq!(layout.acker_key(root) % u64::from(acker_count), u64::from(acker_index));
        }
    }
}
