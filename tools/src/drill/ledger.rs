//! Reads the logs of the tracked topology ([`crate::drill::tracked`]) and says what they
//! prove: which messages were acked, which processed and how often, and which acked
//! messages were never processed (lost).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::drill::tracked::word_of;

/// What the logs in a state directory say.
#[derive(Debug, Default, Clone)]
pub struct LedgerCheck {
    /// Ids the spouts logged as acked.
    pub acked: BTreeSet<u64>,
    /// Ids the counters logged as processed, with how often.
    pub processed: BTreeMap<u64, u64>,
    /// Ids a counter logged under another word than theirs.
    pub misfiled: BTreeSet<u64>,
}

/// Lines of `text` that are complete: a line still being written (no newline yet) is not
/// read.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n'))
}

impl LedgerCheck {
    /// Reads every log in `dir`: first every ack log, then every processed log.
    ///
    /// The order matters while workers still run. A counter logs a message before acking
    /// it, and a spout logs the ack only after it arrives, so every ack read first was
    /// preceded by a processed line that the later read sees. Read the other way round (or
    /// in directory order), a message processed and acked between the two reads would look
    /// acked but never processed.
    pub fn read(dir: &Path) -> Self {
        let mut check = LedgerCheck::default();
        for text in logs(dir, "acked-") {
            check
                .acked
                .extend(complete_lines(&text).filter_map(|line| line.parse::<u64>().ok()));
        }
        for text in logs(dir, "processed-") {
            check.add_processed(&text);
        }
        check
    }

    /// Counts the `id word` lines of one processed log.
    fn add_processed(&mut self, text: &str) {
        for line in complete_lines(text) {
            let Some((id, word)) = line.split_once(' ') else {
                continue;
            };
            let Ok(id) = id.parse::<u64>() else { continue };
            if word != word_of(id) {
                self.misfiled.insert(id);
            }
            *self.processed.entry(id).or_insert(0) += 1;
        }
    }

    /// Acked messages that no counter processed.
    pub fn lost(&self) -> Vec<u64> {
        self.acked
            .iter()
            .filter(|id| !self.processed.contains_key(id))
            .copied()
            .collect()
    }

    /// How many messages were processed more than once (replays after a failure).
    pub fn duplicated(&self) -> u64 {
        self.processed.values().filter(|times| **times > 1).count() as u64
    }

    /// Messages a spout emitted but that are not acked (yet), given `spout_tasks` spout
    /// tasks.
    ///
    /// Task `i` emits the ids `id % spout_tasks == i` in ascending order (replays aside, and a
    /// restarted task starts again from its lowest unacked id),
    /// so every id below a task's highest acked id was emitted at least once.
    pub fn unacked_below_frontier(&self, spout_tasks: u64) -> BTreeSet<u64> {
        let spout_tasks = spout_tasks.max(1);
        let mut frontier: BTreeMap<u64, u64> = BTreeMap::new();
        for id in &self.acked {
            let highest = frontier.entry(id % spout_tasks).or_insert(*id);
            *highest = (*highest).max(*id);
        }
        frontier
            .iter()
            .flat_map(|(task, highest)| {
                (*task..*highest)
                    .step_by(spout_tasks as usize)
                    .filter(|id| !self.acked.contains(id))
            })
            .collect()
    }

    /// The figures of a drill report.
    pub fn summary(&self) -> LedgerSummary {
        let lost = self.lost();
        LedgerSummary {
            acked: self.acked.len() as u64,
            processed: self.processed.len() as u64,
            lost: lost.len() as u64,
            lost_examples: lost.into_iter().take(10).collect(),
            duplicated: self.duplicated(),
            misfiled: self.misfiled.len() as u64,
        }
    }

    /// Checks that every acked message was processed under its own word and, when
    /// `complete`, that all `messages` were acked; returns how many were processed more
    /// than once.
    ///
    /// # Panics
    /// When a check fails: for tests.
    pub fn assert_consistent(&self, messages: u64, complete: bool) -> u64 {
        let lost = self.lost();
        assert!(
            lost.is_empty(),
            "messages acked but never processed: {:?}",
            &lost[..lost.len().min(10)]
        );
        assert!(
            self.misfiled.is_empty(),
            "messages counted under the wrong word: {:?}",
            self.misfiled.iter().take(10).collect::<Vec<_>>()
        );
        if complete {
            let missing: Vec<u64> = (0..messages)
                .filter(|id| !self.acked.contains(id))
                .take(10)
                .collect();
            assert!(
                missing.is_empty(),
                "messages never acked, for instance {missing:?}"
            );
        }
        self.duplicated()
    }
}

/// The texts of the logs in `dir` whose names start with `prefix`, in name order.
fn logs(dir: &Path, prefix: &str) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap_or_default())
        .collect()
}

/// What the ledger says at the end of a drill.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerSummary {
    /// Distinct messages acked.
    pub acked: u64,
    /// Distinct messages processed.
    pub processed: u64,
    /// Acked messages never processed: must be 0.
    pub lost: u64,
    /// Up to ten of them.
    pub lost_examples: Vec<u64>,
    /// Messages processed more than once (at-least-once replays).
    pub duplicated: u64,
    /// Messages counted under another word: must be 0.
    pub misfiled: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(acked: &[u64], processed: &str) -> LedgerCheck {
        let mut check = LedgerCheck {
            acked: acked.iter().copied().collect(),
            ..LedgerCheck::default()
        };
        check.add_processed(processed);
        check
    }

    fn line(id: u64) -> String {
        format!("{id} {}\n", word_of(id))
    }

    #[test]
    fn acked_but_unprocessed_messages_are_lost() {
        let processed = [0, 1, 1, 3].map(line).concat();
        let check = check(&[0, 1, 2, 3], &processed);
        let summary = check.summary();
        assert_eq!(summary.acked, 4);
        assert_eq!(summary.processed, 3);
        assert_eq!((summary.lost, summary.lost_examples), (1, vec![2]));
        assert_eq!(summary.duplicated, 1);
        assert_eq!(summary.misfiled, 0);
    }

    #[test]
    fn processed_but_unacked_messages_are_not_lost() {
        let processed = [0, 1, 2].map(line).concat();
        assert_eq!(check(&[0], &processed).summary().lost, 0);
    }

    #[test]
    fn torn_and_misfiled_lines_are_told_apart() {
        let processed = format!("{}7 w99\n5 w", line(4));
        let check = check(&[], &processed);
        assert_eq!(check.processed.keys().copied().collect::<Vec<_>>(), [4, 7]);
        assert_eq!(check.misfiled.iter().copied().collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn the_frontier_is_per_spout_task() {
        // Task 0 emits 0, 2, 4, ...; task 1 emits 1, 3, 5, ...
        let check = check(&[0, 4, 8, 1, 3], "");
        let missing: Vec<u64> = check.unacked_below_frontier(2).into_iter().collect();
        assert_eq!(missing, [2, 6]);
        assert!(check.unacked_below_frontier(1).contains(&7));
    }

    #[test]
    fn logs_are_read_acks_first_from_a_directory() {
        let dir = std::env::temp_dir().join(format!("squall-ledger-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("acked-1.log"), "0\n1\n2").unwrap();
        std::fs::write(dir.join("processed-3-99.log"), [0, 1, 2].map(line).concat()).unwrap();
        let check = LedgerCheck::read(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(check.acked.len(), 2, "the torn last line is not read");
        assert_eq!(check.assert_consistent(2, true), 0);
    }
}
