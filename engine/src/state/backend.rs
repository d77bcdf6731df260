//! Where checkpoints are kept: the backend interface, and the rules of the checkpoint
//! ledger that every backend follows.

use std::fmt;

use super::kv::{Delta, Entries};

/// A backend failed: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state backend {backend}: {reason}")]
pub struct StateError {
    /// The backend, as [`StateBackend::describe`] puts it.
    pub backend: String,
    /// What went wrong.
    pub reason: String,
}

impl StateError {
    /// An error of `backend`.
    pub fn new(backend: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            backend: backend.into(),
            reason: reason.to_string(),
        }
    }
}

/// Keeps the checkpoints of a topology's stateful tasks and its checkpoint ledger.
///
/// One instance serves every task of a process: it is shared behind an `Arc`, and each task
/// opens its own [`TaskStore`] and [`CheckpointLedger`] from it on its executor thread.
pub trait StateBackend: Send + Sync + fmt::Debug {
    /// The store of task `task_index` of `component`. The same names give the same store
    /// after a restart (and, for a backend shared between hosts, on another host).
    ///
    /// # Errors
    /// When the store cannot be opened.
    fn task_store(
        &self,
        topology: &str,
        component: &str,
        task_index: usize,
    ) -> Result<Box<dyn TaskStore>, StateError>;

    /// The checkpoint ledger of `topology`, whose checkpoints are complete once all
    /// `sources` source tasks report them.
    ///
    /// # Errors
    /// When the ledger cannot be opened.
    fn ledger(
        &self,
        topology: &str,
        sources: usize,
    ) -> Result<Box<dyn CheckpointLedger>, StateError>;

    /// Names the backend and where it keeps its data, for errors and logs.
    fn describe(&self) -> String;
}

/// One task's checkpoints: a base (the state as of some committed checkpoint) and the
/// deltas written since, one per checkpoint.
pub trait TaskStore: Send {
    /// Writes checkpoint `delta.checkpoint`'s changes durably. An empty delta may be
    /// skipped.
    ///
    /// # Errors
    /// When the write did not become durable.
    fn save(&mut self, delta: &Delta) -> Result<(), StateError>;

    /// The state as of `checkpoint` (0: the empty state): the base and every delta up to
    /// it, in order. Changes nothing.
    ///
    /// # Errors
    /// When the store cannot be read, or `checkpoint` was folded into the base already.
    fn read(&mut self, checkpoint: u64) -> Result<Entries, StateError>;

    /// The state as of `checkpoint`, as [`read`](Self::read) gives it; and deltas after it,
    /// which belong to checkpoints that will never commit, are removed.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn restore(&mut self, checkpoint: u64) -> Result<Entries, StateError>;

    /// Folds every delta up to the committed checkpoint `committed` into the base.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn compact(&mut self, committed: u64) -> Result<(), StateError>;
}

/// The ledger's view of a topology's checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerView {
    /// Bumped by every rollback; barriers and tuples of older generations are discarded.
    pub generation: u64,
    /// The checkpoint this generation started from: every task restored it, every source
    /// replays from its position in it.
    pub restored: u64,
    /// The newest checkpoint every source task reported complete (at least `restored`).
    pub committed: u64,
    /// Asked for one incarnation of a source task: a newer incarnation of the task claimed
    /// it. The older one must stop, since it runs in a worker that is going away (or cut
    /// off) and what it reads or reports would be counted twice or lost.
    pub superseded: bool,
}

/// A topology's checkpoint ledger, kept by the backend so that every worker sees it.
///
/// Its rules, in [`LedgerRecord`], are what makes the commit atomic: a checkpoint is
/// committed at the moment its last source task reports it in the current generation,
/// and a rollback starts a new generation from the newest committed checkpoint, in one
/// step that no report can interleave with.
pub trait CheckpointLedger: Send {
    /// The current view.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    fn view(&mut self) -> Result<LedgerView, StateError>;

    /// Starts a new generation from the committed checkpoint, unless the generation is no
    /// longer `seen` (someone else rolled back already); returns the view after.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    fn roll_back(&mut self, seen: u64) -> Result<LedgerView, StateError>;

    /// A starting incarnation of source task `source` (0-based, over every source task of
    /// the topology) claims it: a new generation starts from the committed checkpoint, and
    /// its number is the incarnation's claim. Older incarnations are superseded from then.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    fn claim(&mut self, source: usize) -> Result<LedgerView, StateError>;

    /// The view for the incarnation of source task `source` that holds `claim`.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    fn source_view(&mut self, source: usize, claim: u64) -> Result<LedgerView, StateError>;

    /// Records that the incarnation holding `claim` of source task `source` completed
    /// `checkpoint` in `generation`; returns the view after. A superseded incarnation's
    /// report does not count.
    ///
    /// # Errors
    /// When the backend cannot be reached.
    fn complete(
        &mut self,
        generation: u64,
        source: usize,
        claim: u64,
        checkpoint: u64,
    ) -> Result<LedgerView, StateError>;
}

/// The ledger's whole content, and its rules. Backends that keep the ledger elsewhere
/// (Redis, in a script) follow the same rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerRecord {
    /// The current generation.
    pub generation: u64,
    /// The checkpoint it started from.
    pub restored: u64,
    /// The newest checkpoint each source task completed in this generation (0: none).
    pub completed: Vec<u64>,
    /// The claim of each source task's current incarnation (0: none claimed yet).
    pub owners: Vec<u64>,
}

impl LedgerRecord {
    /// A fresh ledger for `sources` source tasks.
    pub fn new(sources: usize) -> Self {
        Self {
            generation: 0,
            restored: 0,
            completed: vec![0; sources],
            owners: vec![0; sources],
        }
    }

    /// The newest checkpoint every source completed, or the restored one.
    pub fn committed(&self) -> u64 {
        self.completed
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
            .max(self.restored)
    }

    /// The view of this record.
    pub fn view(&self) -> LedgerView {
        LedgerView {
            generation: self.generation,
            restored: self.restored,
            committed: self.committed(),
            superseded: false,
        }
    }

    /// The view for the incarnation of `source` holding `claim`.
    pub fn source_view(&self, source: usize, claim: u64) -> LedgerView {
        LedgerView {
            superseded: self.owners.get(source) != Some(&claim),
            ..self.view()
        }
    }

    /// See [`CheckpointLedger::claim`].
    pub fn claim(&mut self, source: usize) -> LedgerView {
        self.roll_back(self.generation);
        if let Some(owner) = self.owners.get_mut(source) {
            *owner = self.generation;
        }
        self.source_view(source, self.generation)
    }

    /// See [`CheckpointLedger::roll_back`].
    pub fn roll_back(&mut self, seen: u64) -> LedgerView {
        if self.generation == seen {
            self.restored = self.committed();
            self.generation += 1;
            self.completed.iter_mut().for_each(|done| *done = 0);
        }
        self.view()
    }

    /// See [`CheckpointLedger::complete`]. A report of another generation, or of a source
    /// the ledger does not count, changes nothing.
    pub fn complete(
        &mut self,
        generation: u64,
        source: usize,
        claim: u64,
        checkpoint: u64,
    ) -> LedgerView {
        if generation == self.generation
            && self.owners.get(source) == Some(&claim)
            && let Some(done) = self.completed.get_mut(source)
        {
            *done = (*done).max(checkpoint);
        }
        self.source_view(source, claim)
    }

    /// The record in 8-byte little-endian words: generation, restored, then one word per
    /// source for its completed checkpoint, then one per source for its owner's claim.
    pub fn encode(&self) -> Vec<u8> {
        std::iter::once(self.generation)
            .chain(std::iter::once(self.restored))
            .chain(self.completed.iter().copied())
            .chain(self.owners.iter().copied())
            .flat_map(u64::to_le_bytes)
            .collect()
    }

    /// Reads [`encode`](Self::encode)'s bytes, for a ledger of `sources` sources. A
    /// ledger written for another number of sources keeps its generation and restored
    /// checkpoint, and starts counting completions afresh.
    pub fn decode(bytes: &[u8], sources: usize) -> Option<Self> {
        if bytes.len() < 16 || !bytes.len().is_multiple_of(8) {
            return None;
        }
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
            .collect();
        let per_source = &words[2..];
        let (completed, owners) = if per_source.len() == 2 * sources {
            let (completed, owners) = per_source.split_at(sources);
            (completed.to_vec(), owners.to_vec())
        } else {
            (vec![0; sources], vec![0; sources])
        };
        Some(Self {
            generation: words[0],
            restored: words[1],
            completed,
            owners,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger of two sources, both claimed (generation 2, claims 1 and 2).
    fn claimed() -> LedgerRecord {
        let mut ledger = LedgerRecord::new(2);
        assert_eq!(ledger.claim(0).generation, 1);
        assert_eq!(ledger.claim(1).generation, 2);
        ledger
    }

    #[test]
    fn a_checkpoint_commits_when_its_last_source_completes_it() {
        let mut ledger = claimed();
        assert_eq!(ledger.complete(2, 0, 1, 1).committed, 0);
        assert_eq!(ledger.complete(2, 0, 1, 2).committed, 0);
        assert_eq!(ledger.complete(2, 1, 2, 1).committed, 1);
        assert_eq!(ledger.complete(2, 1, 2, 2).committed, 2);
        // A late report of an older checkpoint does not move anything back.
        assert_eq!(ledger.complete(2, 0, 1, 1).committed, 2);
    }

    #[test]
    fn a_rollback_starts_from_the_committed_checkpoint_once() {
        let mut ledger = claimed();
        ledger.complete(2, 0, 1, 3);
        ledger.complete(2, 1, 2, 2);
        let view = ledger.roll_back(2);
        assert_eq!(
            view,
            LedgerView {
                generation: 3,
                restored: 2,
                committed: 2,
                superseded: false
            }
        );
        // Someone who saw generation 2 asks again: nothing more happens.
        assert_eq!(ledger.roll_back(2), view);
        // Reports of the old generation no longer count.
        assert_eq!(ledger.complete(2, 0, 1, 9).committed, 2);
        ledger.complete(3, 0, 1, 3);
        assert_eq!(ledger.complete(3, 1, 2, 3).committed, 3);
    }

    #[test]
    fn a_superseded_incarnation_is_told_and_its_reports_do_not_count() {
        let mut ledger = claimed();
        // Source 0 starts again elsewhere while its old incarnation still runs.
        let newer = ledger.claim(0);
        assert_eq!((newer.generation, newer.superseded), (3, false));
        assert!(ledger.source_view(0, 1).superseded);
        assert!(!ledger.source_view(0, 3).superseded);
        let old = ledger.complete(3, 0, 1, 1);
        assert!(old.superseded);
        ledger.complete(3, 1, 2, 1);
        assert_eq!(
            ledger.view().committed,
            0,
            "the old incarnation's report counted"
        );
        assert_eq!(ledger.complete(3, 0, 3, 1).committed, 1);
    }

    #[test]
    fn the_record_survives_its_encoding() {
        let mut ledger = LedgerRecord::new(3);
        ledger.claim(2);
        ledger.complete(1, 2, 1, 5);
        let bytes = ledger.encode();
        assert_eq!(LedgerRecord::decode(&bytes, 3), Some(ledger.clone()));
        let resized = LedgerRecord::decode(&bytes, 2).unwrap();
        assert_eq!((resized.generation, resized.completed), (1, vec![0, 0]));
        assert_eq!(LedgerRecord::decode(&bytes[..12], 3), None);
    }
}
