//! Counting words in a hash map, and checking the counts exactly against what was emitted.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::words::{Vocabulary, WordTally};

/// A hash map with a fast, non-cryptographic hasher (FxHash from `rustc-hash`).
///
/// Word counts are keyed by trusted, generated words, so SipHash's resistance to chosen keys
/// buys nothing here and costs several times more per lookup. The same map counts in the
/// Squall and the timely word counts, so the comparison measures the engines, not the maps.
pub type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<rustc_hash::FxHasher>>;

/// What an exact count check confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountCheck {
    /// Number of words counted, over all counting tasks.
    pub total: u64,
    /// Number of distinct words counted.
    pub distinct_words: usize,
    /// Number of counting tasks that counted at least one word.
    pub busy_counters: usize,
}

/// Why the counts of a word count differ from what its emitters tallied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountMismatch {
    /// A word was counted a different number of times than it was emitted.
    #[error(
        "word {word:?} was counted {counted} times but emitted {expected} times \
         ({other_differences} other words differ too; {counted_total} words counted of {expected_total} emitted)"
    )]
    WrongCount {
        /// The first word, in id order, whose count is wrong.
        word: String,
        /// How often the emitters tallied it.
        expected: u64,
        /// How often the counters counted it.
        counted: u64,
        /// How many more words have a wrong count.
        other_differences: usize,
        /// Total counted over all words.
        counted_total: u64,
        /// Total emitted over all words.
        expected_total: u64,
    },
    /// Two counting tasks both counted the same word, so fields grouping split a key.
    #[error(
        "word {word:?} was counted by counter {first} and counter {second}; \
         fields grouping must send every occurrence of a word to one task"
    )]
    SplitAcrossCounters {
        /// The word.
        word: String,
        /// Index of the first counting task that had it.
        first: usize,
        /// Index of another counting task that had it.
        second: usize,
    },
    /// A counter holds a word that no emitter could have produced.
    #[error("counter {counter} counted {word:?}, which is not in the vocabulary")]
    UnknownWord {
        /// The word as counted.
        word: String,
        /// Index of the counting task that had it.
        counter: usize,
    },
}

/// Checks counts keyed by word id, one map per counting task, against the emitters' tally.
pub fn verify_id_counts(
    expected: &WordTally,
    counters: &[WordMap<u64, u64>],
    vocabulary: &Vocabulary,
) -> Result<CountCheck, CountMismatch> {
    let size = expected.vocabulary_size();
    let mut counted = vec![0u64; size];
    let mut owner: Vec<Option<usize>> = vec![None; size];
    for (counter, counts) in counters.iter().enumerate() {
        for (&id, &count) in counts {
            let spelled = || {
                if (id as usize) < vocabulary.len() {
                    vocabulary.word(id).to_owned()
                } else {
                    format!("#{id}")
                }
            };
            let Some(slot) = counted.get_mut(id as usize) else {
                return Err(CountMismatch::UnknownWord {
                    word: spelled(),
                    counter,
                });
            };
            *slot += count;
            match owner[id as usize] {
                Some(first) if first != counter => {
                    return Err(CountMismatch::SplitAcrossCounters {
                        word: spelled(),
                        first,
                        second: counter,
                    });
                }
                _ => owner[id as usize] = Some(counter),
            }
        }
    }
    let mut differences = (0u64..)
        .zip(counted.iter().copied())
        .filter(|&(id, count)| count != expected.count(id));
    if let Some((id, count)) = differences.next() {
        return Err(CountMismatch::WrongCount {
            word: vocabulary.word(id).to_owned(),
            expected: expected.count(id),
            counted: count,
            other_differences: differences.count(),
            counted_total: counted.iter().sum(),
            expected_total: expected.total(),
        });
    }
    Ok(CountCheck {
        total: counted.iter().sum(),
        distinct_words: counted.iter().filter(|c| **c > 0).count(),
        busy_counters: counters.iter().filter(|c| !c.is_empty()).count(),
    })
}

/// Checks counts keyed by the word itself, one map per counting task, against the tally.
pub fn verify_word_counts<K: AsRef<str>>(
    expected: &WordTally,
    counters: &[WordMap<K, u64>],
    vocabulary: &Vocabulary,
) -> Result<CountCheck, CountMismatch> {
    let index = vocabulary.index();
    let mut by_id = Vec::with_capacity(counters.len());
    for (counter, counts) in counters.iter().enumerate() {
        let mut ids = WordMap::default();
        for (word, &count) in counts {
            let word = word.as_ref();
            let Some(&id) = index.get(word) else {
                return Err(CountMismatch::UnknownWord {
                    word: word.to_owned(),
                    counter,
                });
            };
            ids.insert(id, count);
        }
        by_id.push(ids);
    }
    verify_id_counts(expected, &by_id, vocabulary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(ids: &[u64]) -> WordTally {
        let mut tally = WordTally::new(10);
        for &id in ids {
            tally.add(id);
        }
        tally
    }

    fn counts(pairs: &[(u64, u64)]) -> WordMap<u64, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn exact_counts_pass() {
        let vocabulary = Vocabulary::new(10);
        let expected = tally(&[1, 1, 2, 7]);
        let check = verify_id_counts(
            &expected,
            &[counts(&[(1, 2)]), counts(&[(2, 1), (7, 1)])],
            &vocabulary,
        )
        .expect("counts match");
        assert_eq!(
            check,
            CountCheck {
                total: 4,
                distinct_words: 3,
                busy_counters: 2
            }
        );
    }

    #[test]
    fn a_lost_word_is_named() {
        let vocabulary = Vocabulary::new(10);
        let expected = tally(&[1, 1, 2]);
        let error = verify_id_counts(&expected, &[counts(&[(1, 1), (2, 1)])], &vocabulary)
            .expect_err("one occurrence of word 1 is missing");
        assert!(matches!(
            &error,
            CountMismatch::WrongCount {
                expected: 2,
                counted: 1,
                other_differences: 0,
                ..
            }
        ));
        let message = error.to_string();
        assert!(message.contains("\"be\""), "{message}");
        assert!(
            message.contains("2 words counted of 3 emitted"),
            "{message}"
        );
    }

    #[test]
    fn a_word_split_between_counters_is_caught() {
        let vocabulary = Vocabulary::new(10);
        let expected = tally(&[3, 3]);
        let error = verify_id_counts(
            &expected,
            &[counts(&[(3, 1)]), counts(&[(3, 1)])],
            &vocabulary,
        )
        .expect_err("fields grouping was violated");
        assert!(matches!(
            error,
            CountMismatch::SplitAcrossCounters {
                first: 0,
                second: 1,
                ..
            }
        ));
    }

    #[test]
    fn string_counts_are_checked_through_the_vocabulary() {
        let vocabulary = Vocabulary::new(10);
        let expected = tally(&[0, 0, 9]);
        let mut good: WordMap<String, u64> = WordMap::default();
        good.insert("ba".into(), 2);
        good.insert(vocabulary.word(9).into(), 1);
        assert!(verify_word_counts(&expected, &[good], &vocabulary).is_ok());
        let mut bad: WordMap<&str, u64> = WordMap::default();
        bad.insert("zzz", 1);
        let error = verify_word_counts(&expected, &[bad], &vocabulary).expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "counter 0 counted \"zzz\", which is not in the vocabulary"
        );
    }
}
