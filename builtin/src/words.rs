//! Deterministic word streams for the word-count topologies, and the tally that checks them.
//!
//! Words are identified by an id in `0..vocabulary_size`; [`Vocabulary`] spells each id as a
//! distinct lowercase word for the string variants. [`WordIdGenerator`] draws ids uniformly
//! with a seeded `fastrand` generator (a few instructions per draw), and every emitter keeps a
//! [`WordTally`] of what it drew, so the counts at the end can be checked exactly.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The vocabulary size of the word-count benchmarks: ten thousand distinct words.
pub const DEFAULT_VOCABULARY_SIZE: u32 = 10_000;

/// Consonants and vowels that make the syllables of [`Vocabulary`] words.
const CONSONANTS: &[u8; 20] = b"bcdfghjklmnprstvwxyz";
const VOWELS: &[u8; 5] = b"aeiou";
const SYLLABLES: u64 = (CONSONANTS.len() * VOWELS.len()) as u64;

/// Draws word ids uniformly from `0..vocabulary_size`, deterministically from a seed.
#[derive(Debug, Clone)]
pub struct WordIdGenerator {
    rng: fastrand::Rng,
    vocabulary_size: u32,
}

impl WordIdGenerator {
    /// A generator over `0..vocabulary_size` (at least 1) whose sequence is fixed by `seed`.
    pub fn new(seed: u64, vocabulary_size: u32) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            vocabulary_size: vocabulary_size.max(1),
        }
    }

    /// The number of distinct ids this generator draws from.
    pub fn vocabulary_size(&self) -> u32 {
        self.vocabulary_size
    }

    /// The next word id.
    #[inline]
    pub fn next_id(&mut self) -> u64 {
        u64::from(self.rng.u32(..self.vocabulary_size))
    }
}

/// How many times each word id was emitted: the expected result of a word count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordTally {
    counts: Vec<u64>,
}

impl WordTally {
    /// An empty tally over ids `0..vocabulary_size`.
    pub fn new(vocabulary_size: u32) -> Self {
        Self {
            counts: vec![0; vocabulary_size as usize],
        }
    }

    /// Counts one emission of `id`.
    ///
    /// # Panics
    /// If `id` is outside the vocabulary the tally was made for.
    #[inline]
    pub fn add(&mut self, id: u64) {
        self.counts[id as usize] += 1;
    }

    /// Adds every count of `other` (which must cover the same or a smaller vocabulary).
    pub fn merge(&mut self, other: &WordTally) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }

    /// How often `id` was emitted.
    pub fn count(&self, id: u64) -> u64 {
        self.counts.get(id as usize).copied().unwrap_or(0)
    }

    /// Number of ids the tally covers.
    pub fn vocabulary_size(&self) -> usize {
        self.counts.len()
    }

    /// Total number of emissions.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Number of distinct ids emitted at least once.
    pub fn distinct(&self) -> usize {
        self.counts.iter().filter(|count| **count > 0).count()
    }

    /// How often each id was emitted, indexed by id.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// `(id, count)` for every id emitted at least once, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0u64..)
            .zip(self.counts.iter().copied())
            .filter(|(_, count)| *count > 0)
    }
}

impl From<Vec<u64>> for WordTally {
    /// The tally whose count of id `i` is `counts[i]`, e.g. one read back from another
    /// process.
    fn from(counts: Vec<u64>) -> Self {
        Self { counts }
    }
}

/// The spelling of every word id as a distinct lowercase word ("ba", "ce", ..., "bacu", ...).
///
/// Cloning shares the words. Id `i` is written in bijective base 100 with one consonant-vowel
/// syllable per digit, so different ids always spell different words.
#[derive(Clone)]
pub struct Vocabulary {
    words: Arc<[Box<str>]>,
}

impl fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vocabulary")
            .field("size", &self.words.len())
            .field("first", &self.words.first())
            .finish()
    }
}

impl Vocabulary {
    /// The first `size` words.
    pub fn new(size: u32) -> Self {
        Self {
            words: (0..u64::from(size)).map(spell).collect(),
        }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the vocabulary has no word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The word with id `id`.
    ///
    /// # Panics
    /// If `id` is not below [`len`](Self::len).
    #[inline]
    pub fn word(&self, id: u64) -> &str {
        &self.words[id as usize]
    }

    /// A reverse index from word to id, for checking counts keyed by word.
    pub fn index(&self) -> HashMap<&str, u64> {
        self.words.iter().map(|w| &**w).zip(0u64..).collect()
    }
}

fn spell(id: u64) -> Box<str> {
    let mut word = String::with_capacity(8);
    let mut rest = id + 1;
    while rest > 0 {
        rest -= 1;
        let syllable = (rest % SYLLABLES) as usize;
        rest /= SYLLABLES;
        word.push(char::from(CONSONANTS[syllable / VOWELS.len()]));
        word.push(char::from(VOWELS[syllable % VOWELS.len()]));
    }
    word.into_boxed_str()
}

/// Writes sentences of words drawn by a [`WordIdGenerator`], tallying every word.
#[derive(Debug, Clone)]
pub struct SentenceGenerator {
    ids: WordIdGenerator,
    vocabulary: Vocabulary,
    words_per_sentence: usize,
}

impl SentenceGenerator {
    /// Sentences of `words_per_sentence` (at least 1) words from `vocabulary`, drawn from `seed`.
    pub fn new(seed: u64, vocabulary: Vocabulary, words_per_sentence: usize) -> Self {
        let size = u32::try_from(vocabulary.len()).unwrap_or(u32::MAX);
        Self {
            ids: WordIdGenerator::new(seed, size),
            vocabulary,
            words_per_sentence: words_per_sentence.max(1),
        }
    }

    /// Number of words in each sentence.
    pub fn words_per_sentence(&self) -> usize {
        self.words_per_sentence
    }

    /// Replaces `line` with the next sentence (words separated by single spaces) and counts its
    /// words in `tally`.
    pub fn next_sentence(&mut self, line: &mut String, tally: &mut WordTally) {
        line.clear();
        for position in 0..self.words_per_sentence {
            let id = self.ids.next_id();
            tally.add(id);
            if position > 0 {
                line.push(' ');
            }
            line.push_str(self.vocabulary.word(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_in_the_vocabulary_and_cover_it_evenly() {
        let mut ids = WordIdGenerator::new(7, 100);
        let mut tally = WordTally::new(100);
        for _ in 0..100_000 {
            tally.add(ids.next_id());
        }
        assert_eq!(tally.total(), 100_000);
        assert_eq!(tally.distinct(), 100);
        for (id, count) in tally.iter() {
            assert!((800..1_200).contains(&count), "id {id} drawn {count} times");
        }
    }

    #[test]
    fn a_tally_survives_the_trip_through_its_counts() {
        let mut tally = WordTally::new(5);
        tally.add(4);
        tally.add(4);
        tally.add(1);
        let again = WordTally::from(tally.counts().to_vec());
        assert_eq!(again, tally);
        assert_eq!(again.counts(), [0, 1, 0, 0, 2]);
    }

    #[test]
    fn the_same_seed_draws_the_same_words() {
        let mut a = WordIdGenerator::new(42, 10_000);
        let mut b = WordIdGenerator::new(42, 10_000);
        let mut c = WordIdGenerator::new(43, 10_000);
        let from_a: Vec<u64> = (0..64).map(|_| a.next_id()).collect();
        let from_b: Vec<u64> = (0..64).map(|_| b.next_id()).collect();
        let from_c: Vec<u64> = (0..64).map(|_| c.next_id()).collect();
        assert_eq!(from_a, from_b);
        assert_ne!(from_a, from_c);
    }

    #[test]
    fn every_word_is_spelled_differently() {
        let vocabulary = Vocabulary::new(DEFAULT_VOCABULARY_SIZE);
        assert_eq!(vocabulary.word(0), "ba");
        assert_eq!(vocabulary.word(99), "zu");
        assert_eq!(vocabulary.word(100), "baba");
        assert_eq!(vocabulary.index().len(), DEFAULT_VOCABULARY_SIZE as usize);
        assert!(
            vocabulary
                .index()
                .keys()
                .all(|w| w.bytes().all(|b| b.is_ascii_lowercase()))
        );
    }

    #[test]
    fn tallies_merge_and_sum() {
        let mut a = WordTally::new(4);
        let mut b = WordTally::new(4);
        a.add(1);
        a.add(1);
        b.add(1);
        b.add(3);
        a.merge(&b);
        assert_eq!(a.count(1), 3);
        assert_eq!(a.count(3), 1);
        assert_eq!(a.count(9), 0);
        assert_eq!(a.total(), 4);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![(1, 3), (3, 1)]);
    }

    #[test]
    fn sentences_hold_the_tallied_words() {
        let vocabulary = Vocabulary::new(50);
        let mut sentences = SentenceGenerator::new(1, vocabulary.clone(), 6);
        let mut tally = WordTally::new(50);
        let mut line = String::new();
        let mut recount = WordTally::new(50);
        let index = vocabulary.index();
        for _ in 0..100 {
            sentences.next_sentence(&mut line, &mut tally);
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), 6, "{line:?}");
            for word in words {
                recount.add(index[word]);
            }
        }
        assert_eq!(tally, recount);
    }
}
