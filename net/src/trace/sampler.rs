//! Both ends of an outbound ring: the executor chooses and stamps the traced records, the
//! transport stamps their pick-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use super::collector::{self, Raw};
use super::{LinkKey, MARK, Stage, is_marked, now_ns, sample_every};

/// A process-wide id for a new outbound ring, shared by its two ends.
pub(crate) fn next_ring_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The executor's end: which records are traced and when they were written and published.
#[derive(Debug)]
pub(crate) struct RingSampler {
    ring: u64,
    every: u64,
    /// Records to offer to [`sample`](Self::sample) until the next traced one (a countdown
    /// spares the hot path a division).
    until_traced: u64,
    /// Write stamps of traced records not yet in the ring (waiting in the executor's
    /// overflow), oldest first.
    waiting: VecDeque<u64>,
    /// Traced records that entered the ring so far.
    entered: u64,
    /// Traced records in the ring not yet published: (n, write stamp).
    unpublished: Vec<(u64, u64)>,
}

impl RingSampler {
    pub(crate) fn new(ring: u64) -> Self {
        Self::every(ring, sample_every())
    }

    fn every(ring: u64, every: u64) -> Self {
        Self {
            ring,
            every,
            until_traced: every,
            waiting: VecDeque::new(),
            entered: 0,
            unpublished: Vec::new(),
        }
    }

    pub(crate) fn ring(&self) -> u64 {
        self.ring
    }

    /// The destination task to write a record with: `task`, marked for one record in
    /// `every`, whose write is stamped now.
    #[inline]
    pub(crate) fn sample(&mut self, task: u32) -> u32 {
        self.until_traced -= 1;
        if self.until_traced != 0 {
            return task;
        }
        self.until_traced = self.every;
        self.waiting.push_back(now_ns());
        task | MARK
    }

    /// A record for `task` entered the ring (written then, or later from the overflow).
    #[inline]
    pub(crate) fn entered(&mut self, task: u32) {
        if is_marked(task) {
            let written = self.waiting.pop_front().unwrap_or_else(now_ns);
            self.unpublished.push((self.entered, written));
            self.entered += 1;
        }
    }

    /// The records in the ring are about to be published.
    #[inline]
    pub(crate) fn publishing(&mut self) {
        if self.unpublished.is_empty() {
            return;
        }
        let published = now_ns();
        let ring = self.ring;
        collector::record(self.unpublished.drain(..).flat_map(|(n, written)| {
            [(Stage::Write, written), (Stage::Publish, published)].map(|(stage, ns)| Raw::Ring {
                ring,
                n,
                stage,
                ns,
            })
        }));
    }
}

/// The transport's end: the traced records it took out of the ring, for the link to number.
#[derive(Debug)]
pub(crate) struct RingPickups {
    ring: u64,
    /// Traced records taken out of the ring so far (dropped ones included).
    taken: u64,
    /// Traced records taken into the batch being built: (n, pick-up stamp).
    picked: Vec<(u64, u64)>,
}

impl RingPickups {
    pub(crate) fn new(ring: u64) -> Self {
        Self {
            ring,
            taken: 0,
            picked: Vec::new(),
        }
    }

    /// A record for `task` left the ring; `sent` tells whether it went into the batch (or
    /// was dropped).
    #[inline]
    pub(crate) fn taken(&mut self, task: u32, sent: bool) {
        if is_marked(task) {
            if sent {
                self.picked.push((self.taken, now_ns()));
            }
            self.taken += 1;
        }
    }

    /// Numbers the records picked up since the last call with the link's next ordinals
    /// (`next_ordinal` advances), stamps their pick-up and appends their keys to `keys`.
    pub(crate) fn number(
        &mut self,
        from: u64,
        to: u64,
        next_ordinal: &mut u64,
        keys: &mut Vec<LinkKey>,
    ) {
        if self.picked.is_empty() {
            return;
        }
        let ring = self.ring;
        let numbered = self.picked.drain(..).map(|(n, ns)| {
            let key = LinkKey {
                from,
                to,
                ordinal: *next_ordinal,
            };
            *next_ordinal += 1;
            keys.push(key);
            Raw::PickUp { ring, n, key, ns }
        });
        let numbered: Vec<Raw> = numbered.collect();
        collector::record(numbered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_in_every_is_marked() {
        let mut sampler = RingSampler::every(0, 4);
        let marked: Vec<bool> = (0..9).map(|_| is_marked(sampler.sample(5))).collect();
        assert_eq!(
            marked,
            [false, false, false, true, false, false, false, true, false]
        );
        assert_eq!(sampler.sample(5) & !MARK, 5, "the task survives the mark");
    }

    #[test]
    fn traced_records_are_numbered_in_ring_order_as_they_enter() {
        let mut sampler = RingSampler::every(3, 1);
        let first = sampler.sample(1);
        let second = sampler.sample(1);
        sampler.entered(2);
        sampler.entered(first);
        sampler.entered(second);
        let numbered: Vec<u64> = sampler.unpublished.iter().map(|&(n, _)| n).collect();
        assert_eq!(numbered, [0, 1]);
        assert!(sampler.waiting.is_empty());
    }

    #[test]
    fn pick_ups_get_consecutive_link_ordinals_and_dropped_records_none() {
        let mut pickups = RingPickups::new(9);
        pickups.taken(MARK | 1, true);
        pickups.taken(1, true);
        pickups.taken(MARK | 1, false);
        pickups.taken(MARK | 1, true);
        assert_eq!(
            pickups.picked.iter().map(|&(n, _)| n).collect::<Vec<_>>(),
            [0, 2]
        );
        let (mut next, mut keys) = (5, Vec::new());
        pickups.number(1, 2, &mut next, &mut keys);
        assert_eq!(next, 7);
        assert_eq!(
            keys.iter().map(|key| key.ordinal).collect::<Vec<_>>(),
            [5, 6]
        );
        assert!(pickups.picked.is_empty());
    }
}
