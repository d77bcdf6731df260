//! The acker's entries for named roots (see `tree_root`), indexed by the spout task and
//! pending slot the root carries rather than hashed.
//!
//! A spout hands out its pending slots densely from 0 and reuses the latest freed first, so
//! the trees in flight occupy the low slots of each spout's table: an acker reaching an
//! entry this way touches memory a spout's recent trees touched, where a hash of the root
//! would scatter them over the whole table. A slot holds one root at a time. A report about
//! a root whose slot holds another (a late report about a tree the spout gave up on, or a
//! tree that took the slot before an old entry expired) does not fit, and the caller keeps
//! it elsewhere.

use super::acking::Ledger;
use crate::ids::TaskId;

/// Entries a spout's table starts with, and the fewest it grows by.
const FIRST_SLOTS: usize = 1024;

/// One slot's entry: the root it holds (0: free) and its ledger.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotEntry {
    pub(crate) root: u64,
    pub(crate) ledger: Ledger,
}

const FREE: SlotEntry = SlotEntry {
    root: 0,
    ledger: Ledger::EMPTY,
};

/// Ledgers of named roots, per spout task and slot.
#[derive(Debug, Default)]
pub(crate) struct SlotLedgers {
    /// Indexed by spout task id, then by slot; grown as higher slots appear.
    spouts: Vec<Vec<SlotEntry>>,
    live: usize,
}

/// Where a root's entry is, or would go.
pub(crate) enum SlotLookup<'a> {
    /// The slot holds this root.
    Held(&'a mut SlotEntry),
    /// The slot is free.
    Free(&'a mut SlotEntry),
    /// The slot holds another root, or lies beyond what the table grows to at once.
    Taken,
}

impl SlotLedgers {
    /// Trees held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The entry of `root`, named with `spout` and `slot`: held, free to take, or taken.
    ///
    /// A spout's table doubles to reach `slot` (an allocation while the trees in flight
    /// grow), but only so far: a slot more than twice past the table's end, which no spout
    /// handing out slots densely names, does not fit, so that a malformed report cannot
    /// make the table huge.
    #[inline]
    pub(crate) fn lookup(&mut self, root: u64, spout: TaskId, slot: u32) -> SlotLookup<'_> {
        let (task, slot) = (spout.index(), slot as usize);
        if task >= self.spouts.len() {
            self.spouts.resize_with(task + 1, Vec::new);
        }
        let table = &mut self.spouts[task];
        if slot >= table.len() {
            let grown = (table.len() * 2).max(FIRST_SLOTS);
            if slot >= grown {
                return SlotLookup::Taken;
            }
            table.resize(grown, FREE);
        }
        let entry = &mut table[slot];
        match entry.root {
            held if held == root => SlotLookup::Held(entry),
            0 => SlotLookup::Free(entry),
            _ => SlotLookup::Taken,
        }
    }

    /// Counts a tree stored in a free slot.
    #[inline]
    pub(crate) fn stored(&mut self) {
        self.live += 1;
    }

    /// Counts a tree removed from its slot (its root already set to 0).
    #[inline]
    pub(crate) fn removed(&mut self) {
        self.live -= 1;
    }

    /// Keeps the entries `keep` says to keep, freeing the others.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64, &mut Ledger) -> bool) {
        for table in &mut self.spouts {
            for entry in table.iter_mut().filter(|entry| entry.root != 0) {
                if !keep(entry.root, &mut entry.ledger) {
                    entry.root = 0;
                    self.live -= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores `root` in its slot, which must be free.
    fn store(ledgers: &mut SlotLedgers, root: u64, spout: u32, slot: u32) {
        let SlotLookup::Free(entry) = ledgers.lookup(root, TaskId(spout), slot) else {
            panic!("slot {slot} of task {spout} not free");
        };
        entry.root = root;
        entry.ledger.value = root;
        ledgers.stored();
    }

    #[test]
    fn a_root_is_found_in_its_slot_and_another_root_there_does_not_fit() {
        let mut ledgers = SlotLedgers::default();
        store(&mut ledgers, 0xA1, 3, 5);
        store(&mut ledgers, 0xB2, 4, 5);
        assert_eq!(ledgers.len(), 2);
        let SlotLookup::Held(entry) = ledgers.lookup(0xA1, TaskId(3), 5) else {
            panic!("held");
        };
        assert_eq!(entry.ledger.value, 0xA1);
        assert!(matches!(
            ledgers.lookup(0xC3, TaskId(3), 5),
            SlotLookup::Taken
        ));
        let SlotLookup::Held(entry) = ledgers.lookup(0xA1, TaskId(3), 5) else {
            panic!("held");
        };
        entry.root = 0;
        ledgers.removed();
        assert!(matches!(
            ledgers.lookup(0xC3, TaskId(3), 5),
            SlotLookup::Free(..)
        ));
        assert_eq!(ledgers.len(), 1);
    }

    #[test]
    fn tables_grow_by_doubling_and_refuse_slots_far_past_their_end() {
        let mut ledgers = SlotLedgers::default();
        let far = (4 * FIRST_SLOTS) as u32;
        assert!(matches!(
            ledgers.lookup(1, TaskId(1), far),
            SlotLookup::Taken
        ));
        store(&mut ledgers, 1, 1, FIRST_SLOTS as u32 - 1);
        store(&mut ledgers, 2, 1, FIRST_SLOTS as u32);
        store(&mut ledgers, 3, 1, 2 * FIRST_SLOTS as u32 + 1);
        assert_eq!(ledgers.spouts[1].len(), 4 * FIRST_SLOTS);
        assert!(matches!(
            ledgers.lookup(4, TaskId(1), 8 * far),
            SlotLookup::Taken
        ));
    }

    #[test]
    fn retain_frees_what_it_drops_and_keeps_the_count() {
        let mut ledgers = SlotLedgers::default();
        for slot in 0..10 {
            store(&mut ledgers, 100 + u64::from(slot), 2, slot);
        }
        ledgers.retain(|root, _| root % 2 == 0);
        assert_eq!(ledgers.len(), 5);
        assert!(matches!(
            ledgers.lookup(999, TaskId(2), 1),
            SlotLookup::Free(..)
        ));
        assert!(matches!(
            ledgers.lookup(102, TaskId(2), 2),
            SlotLookup::Held(..)
        ));
    }
}
