//! Barrier alignment at a task with several input channels (one per upstream task): which
//! input to process now, which to hold, which to discard; when a checkpoint is aligned and
//! when a rollback is.
//!
//! - A checkpoint barrier `n` blocks its channel: what follows it on that channel belongs
//!   after the checkpoint and is held. Once every channel delivered `n`, the checkpoint is
//!   aligned: the task snapshots, forwards the barrier and the held inputs are processed.
//! - A rollback barrier of generation `g` moves its channel to `g`. Inputs that follow it
//!   are held until every channel reached `g`; then the task rolls back (restores the
//!   checkpoint the generation started from) and processes them. Inputs still arriving from
//!   an older generation are discarded: the sources replay them in the new one.

use std::collections::VecDeque;

use crate::ids::TaskId;

/// What an input is, for alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An ordinary tuple.
    Data,
    /// A checkpoint barrier.
    Checkpoint { generation: u64, checkpoint: u64 },
    /// A rollback barrier: the generation starts from checkpoint `restored`.
    Rollback { generation: u64, restored: u64 },
}

/// What to do with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Process it now.
    Process,
    /// It was held; it comes back from [`Alignment::take_held`].
    Held,
    /// It belongs to a discarded generation (or breaks the protocol): settle it unprocessed.
    Discard,
    /// A checkpoint barrier, counted; the checkpoint is not aligned yet.
    Joined,
    /// A checkpoint barrier, the last one: checkpoint `checkpoint` is aligned. Snapshot,
    /// forward it, then call [`Alignment::finish_checkpoint`].
    Aligned { checkpoint: u64 },
    /// A rollback barrier, the last one: restore checkpoint `restored` and forward a rollback
    /// barrier of `generation`. Any checkpoint being aligned was abandoned.
    RolledBack { generation: u64, restored: u64 },
    /// A rollback barrier, noted; other channels are not there yet.
    Noted,
}

/// An input held for later, with the generation its channel was in when it arrived.
#[derive(Debug)]
pub(crate) struct Held<T> {
    channel: usize,
    generation: u64,
    kind: Kind,
    pub(crate) item: T,
}

#[derive(Debug, Default, Clone)]
struct Channel {
    generation: u64,
    /// The checkpoint barrier being aligned came on this channel.
    blocked: bool,
    /// Inputs of this channel waiting in `held`: later ones wait behind them.
    held: usize,
    /// The checkpoint its latest rollback barrier restored.
    restored: u64,
}

/// The alignment state of one task.
#[derive(Debug)]
pub(crate) struct Alignment<T> {
    /// Task id → channel, `usize::MAX` for a task that is not upstream.
    channel_of_task: Vec<usize>,
    channels: Vec<Channel>,
    generation: u64,
    /// The checkpoint being aligned and how many channels delivered it.
    aligning: Option<(u64, usize)>,
    held: VecDeque<Held<T>>,
}

impl<T> Alignment<T> {
    /// Alignment over the channels from `upstream` tasks, for a task in generation
    /// `generation`. Channels start in generation 0: nothing from a channel counts before
    /// its rollback barrier brings it to the task's generation.
    pub(crate) fn new(upstream: impl IntoIterator<Item = TaskId>, generation: u64) -> Self {
        let mut channel_of_task = Vec::new();
        let mut channels = Vec::new();
        for task in upstream {
            if channel_of_task.len() <= task.index() {
                channel_of_task.resize(task.index() + 1, usize::MAX);
            }
            if channel_of_task[task.index()] == usize::MAX {
                channel_of_task[task.index()] = channels.len();
                channels.push(Channel::default());
            }
        }
        Self {
            channel_of_task,
            channels,
            generation,
            aligning: None,
            held: VecDeque::new(),
        }
    }

    /// The generation the task is in.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether inputs are waiting.
    #[cfg(test)]
    pub(crate) fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Decides about an input from `source`; `hold` makes the owned copy kept when it has to
    /// wait.
    #[inline]
    pub(crate) fn offer(&mut self, source: TaskId, kind: Kind, hold: impl FnOnce() -> T) -> Offer {
        let Some(&channel) = self
            .channel_of_task
            .get(source.index())
            .filter(|channel| **channel != usize::MAX)
        else {
            // Not from an upstream task (a tick): it belongs to no channel.
            return match kind {
                Kind::Data => Offer::Process,
                _ => Offer::Discard,
            };
        };
        if let Kind::Rollback {
            generation,
            restored,
        } = kind
        {
            return self.rollback_arrived(channel, generation, restored);
        }
        let generation = self.channels[channel].generation;
        let offer = self.admit(channel, generation, kind);
        if offer == Offer::Held {
            self.hold(channel, generation, kind, hold());
        }
        offer
    }

    /// Decides again about an input [`take_held`](Self::take_held) returned; when it has
    /// to wait again it is kept and `None` comes back.
    pub(crate) fn readmit(&mut self, held: Held<T>) -> (Offer, Option<T>) {
        let offer = self.admit(held.channel, held.generation, held.kind);
        if offer == Offer::Held {
            self.hold(held.channel, held.generation, held.kind, held.item);
            (offer, None)
        } else {
            (offer, Some(held.item))
        }
    }

    /// Every held input, in arrival order, to be [`readmit`](Self::readmit)ted after a
    /// checkpoint was aligned or a rollback done.
    pub(crate) fn take_held(&mut self) -> VecDeque<Held<T>> {
        for channel in &mut self.channels {
            channel.held = 0;
        }
        std::mem::take(&mut self.held)
    }

    /// The aligned checkpoint was taken: its channels are unblocked.
    pub(crate) fn finish_checkpoint(&mut self) {
        self.aligning = None;
        for channel in &mut self.channels {
            channel.blocked = false;
        }
    }

    fn hold(&mut self, channel: usize, generation: u64, kind: Kind, item: T) {
        self.channels[channel].held += 1;
        self.held.push_back(Held {
            channel,
            generation,
            kind,
            item,
        });
    }

    fn admit(&mut self, channel: usize, generation: u64, kind: Kind) -> Offer {
        if generation < self.generation {
            return Offer::Discard;
        }
        let state = &self.channels[channel];
        if generation > self.generation || state.blocked || state.held > 0 {
            return Offer::Held;
        }
        match kind {
            Kind::Data => Offer::Process,
            Kind::Rollback { .. } => Offer::Discard,
            Kind::Checkpoint {
                generation: barrier_generation,
                checkpoint,
            } => {
                if barrier_generation != self.generation {
                    return Offer::Discard;
                }
                let (aligning, arrived) = self.aligning.get_or_insert((checkpoint, 0));
                if *aligning != checkpoint {
                    // Every channel carries every checkpoint in order: one that skips is
                    // out of protocol, and its barrier is not counted.
                    return Offer::Discard;
                }
                *arrived += 1;
                self.channels[channel].blocked = true;
                if *arrived == self.channels.len() {
                    Offer::Aligned { checkpoint }
                } else {
                    Offer::Joined
                }
            }
        }
    }

    fn rollback_arrived(&mut self, channel: usize, generation: u64, restored: u64) -> Offer {
        let state = &mut self.channels[channel];
        if generation <= state.generation {
            return Offer::Discard;
        }
        state.generation = generation;
        state.restored = restored;
        let lowest = self
            .channels
            .iter()
            .min_by_key(|channel| channel.generation)
            .expect("a rollback barrier came on a channel");
        if lowest.generation <= self.generation {
            return Offer::Noted;
        }
        let (generation, restored) = (lowest.generation, lowest.restored);
        self.generation = generation;
        self.aligning = None;
        for channel in &mut self.channels {
            channel.blocked = false;
        }
        Offer::RolledBack {
            generation,
            restored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: TaskId = TaskId(3);
    const B: TaskId = TaskId(5);

    fn checkpoint(generation: u64, checkpoint: u64) -> Kind {
        Kind::Checkpoint {
            generation,
            checkpoint,
        }
    }

    fn rollback(generation: u64, restored: u64) -> Kind {
        Kind::Rollback {
            generation,
            restored,
        }
    }

    /// A task in generation 1 whose channels both announced it.
    fn joined_at_generation_one() -> Alignment<u32> {
        let mut alignment = Alignment::new([A, B], 1);
        assert_eq!(alignment.offer(A, rollback(1, 0), || 0), Offer::Noted);
        assert_eq!(alignment.offer(B, rollback(1, 0), || 0), Offer::Noted);
        alignment
    }

    /// Readmits everything held; returns the items processed, in order.
    fn release(alignment: &mut Alignment<u32>) -> Vec<(Offer, u32)> {
        let mut out = Vec::new();
        for held in alignment.take_held() {
            if let (offer, Some(item)) = alignment.readmit(held) {
                out.push((offer, item));
            }
        }
        out
    }

    #[test]
    fn inputs_after_a_barrier_wait_until_every_channel_has_it() {
        let mut alignment = joined_at_generation_one();
        assert_eq!(alignment.offer(A, Kind::Data, || 1), Offer::Process);
        assert_eq!(alignment.offer(A, checkpoint(1, 7), || 2), Offer::Joined);
        assert_eq!(alignment.offer(A, Kind::Data, || 3), Offer::Held);
        assert_eq!(alignment.offer(A, checkpoint(1, 8), || 4), Offer::Held);
        assert_eq!(alignment.offer(B, Kind::Data, || 5), Offer::Process);
        assert_eq!(
            alignment.offer(B, checkpoint(1, 7), || 6),
            Offer::Aligned { checkpoint: 7 }
        );
        assert_eq!(alignment.offer(B, Kind::Data, || 7), Offer::Held);
        alignment.finish_checkpoint();
        assert_eq!(
            release(&mut alignment),
            vec![(Offer::Process, 3), (Offer::Joined, 4), (Offer::Process, 7)]
        );
        assert!(!alignment.has_held());
        // A's barrier 8 blocks A again; B's completes it.
        assert_eq!(alignment.offer(A, Kind::Data, || 8), Offer::Held);
        assert_eq!(
            alignment.offer(B, checkpoint(1, 8), || 9),
            Offer::Aligned { checkpoint: 8 }
        );
        alignment.finish_checkpoint();
        assert_eq!(release(&mut alignment), vec![(Offer::Process, 8)]);
    }

    #[test]
    fn a_rollback_waits_for_every_channel_and_discards_the_old_generation() {
        let mut alignment = joined_at_generation_one();
        assert_eq!(alignment.offer(A, checkpoint(1, 4), || 1), Offer::Joined);
        assert_eq!(alignment.offer(A, rollback(2, 3), || 2), Offer::Noted);
        assert_eq!(alignment.offer(A, Kind::Data, || 3), Offer::Held);
        // B is still in generation 1: its inputs count until its own rollback barrier.
        assert_eq!(alignment.offer(B, Kind::Data, || 4), Offer::Process);
        assert_eq!(
            alignment.offer(B, rollback(2, 3), || 5),
            Offer::RolledBack {
                generation: 2,
                restored: 3
            }
        );
        assert_eq!(alignment.generation(), 2);
        assert_eq!(release(&mut alignment), vec![(Offer::Process, 3)]);
        // A late checkpoint barrier of generation 1 is discarded.
        assert_eq!(alignment.offer(B, checkpoint(1, 4), || 6), Offer::Discard);
        assert_eq!(alignment.offer(B, checkpoint(2, 4), || 7), Offer::Joined);
    }

    #[test]
    fn a_task_that_starts_ahead_discards_until_its_channels_catch_up() {
        // Restored at generation 5 before any input came.
        let mut alignment = Alignment::new([A, B], 5);
        assert_eq!(alignment.offer(A, Kind::Data, || 1), Offer::Discard);
        assert_eq!(alignment.offer(A, rollback(5, 2), || 2), Offer::Noted);
        assert_eq!(alignment.offer(A, Kind::Data, || 3), Offer::Process);
        assert_eq!(alignment.offer(B, Kind::Data, || 4), Offer::Discard);
        // A jumps to 6 while B is still behind: A waits.
        assert_eq!(alignment.offer(A, rollback(6, 2), || 5), Offer::Noted);
        assert_eq!(alignment.offer(A, Kind::Data, || 6), Offer::Held);
        assert_eq!(alignment.offer(B, rollback(5, 2), || 7), Offer::Noted);
        assert_eq!(
            alignment.offer(B, rollback(6, 2), || 8),
            Offer::RolledBack {
                generation: 6,
                restored: 2
            }
        );
        assert_eq!(release(&mut alignment), vec![(Offer::Process, 6)]);
    }

    #[test]
    fn a_tick_is_processed_and_a_stray_barrier_discarded() {
        let mut alignment: Alignment<u32> = Alignment::new([A], 1);
        assert_eq!(alignment.offer(TaskId(0), Kind::Data, || 1), Offer::Process);
        assert_eq!(
            alignment.offer(TaskId(9), checkpoint(1, 1), || 2),
            Offer::Discard
        );
    }
}
