//! Handles through which a running built-in topology is observed, stopped and checked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::counts::{CountCheck, CountMismatch, WordMap, verify_id_counts, verify_word_counts};
use super::words::{Vocabulary, WordTally};
use squall_core::TaskId;

/// Tells the built-in spouts whether to keep emitting; cloning shares the switch.
///
/// Spouts read it once per `next_tuple` call (one relaxed load), so turning it off stops new
/// tuples within microseconds while the tuples in flight drain.
#[derive(Debug, Clone)]
pub struct EmitSwitch {
    on: Arc<AtomicBool>,
}

impl Default for EmitSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl EmitSwitch {
    /// A switch that is on.
    pub fn new() -> Self {
        Self {
            on: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether spouts should emit.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Stops every spout holding this switch.
    pub fn turn_off(&self) {
        self.on.store(false, Ordering::Relaxed);
    }
}

/// Where the word spouts report what they emitted and the count bolts what they counted.
///
/// Spouts report their [`WordTally`] when they close, count bolts their maps when they clean
/// up, so the check at the end compares complete figures. Cloning shares the probe.
#[derive(Debug, Clone)]
pub struct WordCountProbe {
    vocabulary: Vocabulary,
    state: Arc<Mutex<ProbeState>>,
}

#[derive(Debug)]
struct ProbeState {
    tally: WordTally,
    emitters: usize,
    id_counters: Vec<(TaskId, WordMap<u64, u64>)>,
    word_counters: Vec<(TaskId, WordMap<Box<str>, u64>)>,
}

/// What the emitters and counters of one probe reported: see [`WordCountProbe::reported`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReports {
    /// The emitters' tallies, merged.
    pub tally: WordTally,
    /// Number of emitters that reported.
    pub emitters: usize,
    /// The counts of each count task that counted word ids.
    pub id_counters: Vec<(TaskId, WordMap<u64, u64>)>,
    /// The counts of each count task that counted spelled words.
    pub word_counters: Vec<(TaskId, WordMap<Box<str>, u64>)>,
}

impl WordCountProbe {
    /// A probe for word counts over `vocabulary`.
    pub fn new(vocabulary: Vocabulary) -> Self {
        let size = u32::try_from(vocabulary.len()).unwrap_or(u32::MAX);
        Self {
            vocabulary,
            state: Arc::new(Mutex::new(ProbeState {
                tally: WordTally::new(size),
                emitters: 0,
                id_counters: Vec::new(),
                word_counters: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProbeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The vocabulary the words come from.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// Adds one emitter's final tally.
    pub fn report_tally(&self, tally: &WordTally) {
        let mut state = self.lock();
        state.tally.merge(tally);
        state.emitters += 1;
    }

    /// Adds the final counts of the count task `task`, keyed by word id.
    pub fn report_id_counts(&self, task: TaskId, counts: WordMap<u64, u64>) {
        self.lock().id_counters.push((task, counts));
    }

    /// Adds the final counts of the count task `task`, keyed by word.
    pub fn report_word_counts(&self, task: TaskId, counts: WordMap<Box<str>, u64>) {
        self.lock().word_counters.push((task, counts));
    }

    /// Number of emitters and of counters that have reported.
    pub fn reports(&self) -> (usize, usize) {
        let state = self.lock();
        (
            state.emitters,
            state.id_counters.len() + state.word_counters.len(),
        )
    }

    /// Total words the emitters reported.
    pub fn emitted_total(&self) -> u64 {
        self.lock().tally.total()
    }

    /// Everything reported so far, e.g. to check it in another process together with the
    /// reports of other workers ([`absorb`](Self::absorb)).
    pub fn reported(&self) -> ProbeReports {
        let state = self.lock();
        ProbeReports {
            tally: state.tally.clone(),
            emitters: state.emitters,
            id_counters: state.id_counters.clone(),
            word_counters: state.word_counters.clone(),
        }
    }

    /// Adds the reports another probe received (the tallies and counts of another worker's
    /// spouts and count bolts), as if its emitters and counters had reported here.
    pub fn absorb(&self, reports: ProbeReports) {
        let mut state = self.lock();
        state.tally.merge(&reports.tally);
        state.emitters += reports.emitters;
        state.id_counters.extend(reports.id_counters);
        state.word_counters.extend(reports.word_counters);
    }

    /// Checks every reported count against the reported tallies, exactly.
    pub fn verify(&self) -> Result<CountCheck, CountMismatch> {
        let mut state = self.lock();
        state.id_counters.sort_by_key(|(task, _)| *task);
        state.word_counters.sort_by_key(|(task, _)| *task);
        if state.word_counters.is_empty() {
            let counters: Vec<_> = state.id_counters.iter().map(|(_, c)| c.clone()).collect();
            verify_id_counts(&state.tally, &counters, &self.vocabulary)
        } else {
            let counters: Vec<_> = state.word_counters.iter().map(|(_, c)| c.clone()).collect();
            verify_word_counts(&state.tally, &counters, &self.vocabulary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_is_shared() {
        let switch = EmitSwitch::new();
        let spout_side = switch.clone();
        assert!(spout_side.is_on());
        switch.turn_off();
        assert!(!spout_side.is_on());
    }

    #[test]
    fn reports_from_both_sides_are_checked_together() {
        let probe = WordCountProbe::new(Vocabulary::new(10));
        let mut tally = WordTally::new(10);
        tally.add(2);
        tally.add(2);
        tally.add(5);
        probe.report_tally(&tally);
        probe.report_id_counts(TaskId(1), [(5, 1)].into_iter().collect());
        probe.report_id_counts(TaskId(0), [(2, 2)].into_iter().collect());
        assert_eq!(probe.reports(), (1, 2));
        assert_eq!(probe.emitted_total(), 3);
        let check = probe.verify().expect("exact");
        assert_eq!(check.total, 3);
        assert_eq!(check.busy_counters, 2);
    }

    #[test]
    fn reports_of_several_probes_are_checked_together() {
        let vocabulary = Vocabulary::new(10);
        let tally = |ids: &[u64]| {
            let mut tally = WordTally::new(10);
            ids.iter().for_each(|&id| tally.add(id));
            tally
        };
        // Each probe is one worker's: word 7 of the first worker's spout is counted by the
        // second worker's count task.
        let first = WordCountProbe::new(vocabulary.clone());
        first.report_tally(&tally(&[2, 2, 7]));
        first.report_id_counts(TaskId(0), [(2, 2)].into_iter().collect());
        let second = WordCountProbe::new(vocabulary.clone());
        second.report_tally(&tally(&[7]));
        second.report_id_counts(TaskId(1), [(7, 2)].into_iter().collect());

        let checker = WordCountProbe::new(vocabulary);
        checker.absorb(first.reported());
        assert!(
            checker.verify().is_err(),
            "word 7 is short until the second worker's figures are in"
        );
        checker.absorb(second.reported());
        assert_eq!(checker.reports(), (2, 2));
        let check = checker.verify().expect("exact once both workers reported");
        assert_eq!((check.total, check.distinct_words), (4, 2));
    }

    #[test]
    fn a_missing_counter_report_fails_the_check() {
        let probe = WordCountProbe::new(Vocabulary::new(10));
        let mut tally = WordTally::new(10);
        tally.add(4);
        probe.report_tally(&tally);
        assert!(probe.verify().is_err());
    }

    #[test]
    fn string_counts_are_checked_by_word() {
        let vocabulary = Vocabulary::new(10);
        let probe = WordCountProbe::new(vocabulary.clone());
        let mut tally = WordTally::new(10);
        tally.add(3);
        probe.report_tally(&tally);
        probe.report_word_counts(
            TaskId(0),
            [(Box::from(vocabulary.word(3)), 1)].into_iter().collect(),
        );
        assert!(probe.verify().is_ok());
    }
}
