//! The word counts of one worker process, carried to the coordinator so that the counts of
//! all workers are checked together against what all their spouts emitted.
//!
//! A worker's spouts report their tallies and its count bolts their counts when the worker
//! shuts down, so the figures exist only after the worker stopped: the worker writes them to
//! [`FILE_NAME`] in its working directory as its last act, and the coordinator reads them
//! once the process has exited.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use squall::TaskId;
use squall::builtin::counts::WordMap;
use squall::builtin::probe::{ProbeReports, WordCountProbe};
use squall::builtin::words::WordTally;

/// The file a worker leaves its word counts in, in its working directory.
pub const FILE_NAME: &str = "word-counts.json";

/// What the word spouts and count bolts of one worker reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerWordCounts {
    /// Times each word id was emitted by this worker's spouts, indexed by id.
    pub emitted: Vec<u64>,
    /// Number of this worker's spouts that reported.
    pub emitters: usize,
    /// The counts of each of this worker's count tasks.
    pub counters: Vec<CounterCounts>,
}

/// The counts one count task held when it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterCounts {
    /// The task.
    pub task: u32,
    /// `(word id, count)`, when the task counted word ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<(u64, u64)>,
    /// `(word, count)`, when the task counted spelled words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<(String, u64)>,
}

impl WorkerWordCounts {
    /// Everything `probe` was told.
    pub fn of(probe: &WordCountProbe) -> Self {
        let reports = probe.reported();
        let mut counters: Vec<CounterCounts> = reports
            .id_counters
            .into_iter()
            .map(|(task, counts)| CounterCounts {
                task: task.0,
                ids: counts.into_iter().collect(),
                words: Vec::new(),
            })
            .collect();
        counters.extend(reports.word_counters.into_iter().map(|(task, counts)| {
            CounterCounts {
                task: task.0,
                ids: Vec::new(),
                words: counts
                    .into_iter()
                    .map(|(word, count)| (word.into(), count))
                    .collect(),
            }
        }));
        Self {
            emitted: reports.tally.counts().to_vec(),
            emitters: reports.emitters,
            counters,
        }
    }

    /// Adds these counts to `probe`, as if this worker's spouts and count bolts had
    /// reported there.
    pub fn add_to(self, probe: &WordCountProbe) {
        let mut reports = ProbeReports {
            tally: WordTally::from(self.emitted),
            emitters: self.emitters,
            id_counters: Vec::new(),
            word_counters: Vec::new(),
        };
        for counter in self.counters {
            let task = TaskId(counter.task);
            if counter.words.is_empty() {
                reports
                    .id_counters
                    .push((task, counter.ids.into_iter().collect::<WordMap<_, _>>()));
            } else {
                let words = counter.words.into_iter().map(|(word, count)| {
                    let word: Box<str> = word.into();
                    (word, count)
                });
                reports.word_counters.push((task, words.collect()));
            }
        }
        probe.absorb(reports);
    }

    /// Writes the counts to [`FILE_NAME`] in `dir`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_into(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(FILE_NAME);
        let json = serde_json::to_vec(self).context("encoding the word counts")?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads the counts a worker wrote into `dir`.
    ///
    /// # Errors
    /// When the file is missing (the worker did not stop cleanly) or not what
    /// [`write_into`](Self::write_into) writes.
    pub fn read_from(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE_NAME);
        let json = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&json).with_context(|| format!("decoding {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall::builtin::words::Vocabulary;

    fn worker(vocabulary: &Vocabulary, emitted: &[u64], task: u32, counted: &[u64]) -> Vec<u8> {
        let probe = WordCountProbe::new(vocabulary.clone());
        let mut tally = WordTally::new(vocabulary.len() as u32);
        emitted.iter().for_each(|&id| tally.add(id));
        probe.report_tally(&tally);
        let mut counts = WordMap::default();
        for &id in counted {
            *counts.entry(id).or_insert(0) += 1;
        }
        probe.report_id_counts(TaskId(task), counts);
        serde_json::to_vec(&WorkerWordCounts::of(&probe)).expect("encodes")
    }

    fn check(vocabulary: &Vocabulary, workers: &[Vec<u8>]) -> anyhow::Result<u64> {
        let probe = WordCountProbe::new(vocabulary.clone());
        for json in workers {
            let counts: WorkerWordCounts = serde_json::from_slice(json)?;
            counts.add_to(&probe);
        }
        Ok(probe.verify()?.total)
    }

    #[test]
    fn counts_spread_over_workers_are_checked_together() {
        let vocabulary = Vocabulary::new(20);
        // Words 3 and 11 cross from the first worker's spout to the second worker's counter.
        let first = worker(&vocabulary, &[1, 3, 1, 11], 0, &[1, 1, 4]);
        let second = worker(&vocabulary, &[4], 1, &[3, 11]);
        assert_eq!(check(&vocabulary, &[first.clone(), second]).ok(), Some(5));

        let lost = worker(&vocabulary, &[4], 1, &[3]);
        let error = check(&vocabulary, &[first.clone(), lost]).expect_err("word 11 was lost");
        assert!(
            error
                .to_string()
                .contains("counted 0 times but emitted 1 times"),
            "{error}"
        );
        let error = check(&vocabulary, &[first]).expect_err("a worker is missing");
        assert!(
            error.to_string().contains("3 words counted of 4 emitted"),
            "{error}"
        );
    }

    #[test]
    fn spelled_counts_cross_as_words() {
        let vocabulary = Vocabulary::new(20);
        let probe = WordCountProbe::new(vocabulary.clone());
        let mut tally = WordTally::new(20);
        tally.add(9);
        probe.report_tally(&tally);
        probe.report_word_counts(
            TaskId(2),
            [(Box::from(vocabulary.word(9)), 1)].into_iter().collect(),
        );
        let counts = WorkerWordCounts::of(&probe);
        assert_eq!(
            counts.counters[0].words,
            [(vocabulary.word(9).to_owned(), 1)]
        );

        let dir = std::env::temp_dir().join(format!("word-counts-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creates");
        counts.write_into(&dir).expect("writes");
        let again = WorkerWordCounts::read_from(&dir).expect("reads");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(again, counts);
        let checker = WordCountProbe::new(vocabulary);
        again.add_to(&checker);
        assert_eq!(checker.verify().map(|check| check.total), Ok(1));
    }
}
