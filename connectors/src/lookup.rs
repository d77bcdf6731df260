//! The lookup bolt every enrichment connector shares: each input is joined with what a
//! database holds under one of its fields, and emitted with those values added.
//!
//! The executor never waits on a round trip per tuple. Inputs whose key is in the cache
//! are emitted at once; the others wait while a lookup thread asks the database for all
//! their keys in one query, and are emitted, each anchored to its input, when the answer
//! comes back. Inputs of one key are emitted in the order they arrived; inputs of
//! different keys may pass each other (a cached key does not wait for a lookup).
//!
//! The cache holds at most [`LookupSettings::cache_entries`] keys, evicting the least
//! recently used, and forgets each answer after [`LookupSettings::cache_ttl`]. Keys the
//! database does not hold are cached too, so a flood of unknown keys does not become a
//! flood of queries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use squall_core::component::{Bolt, ComponentError};
use squall_core::context::TopologyContext;
use squall_core::runtime::{Anchor, BoltOutput, Tuple};
use squall_core::{DEFAULT_STREAM, OutputDeclarer, OwnedValue};

use crate::store::{Reconnect, RetryPolicy, StoreError, StoreThread, with_retries};

/// What a database holds under each key: the found rows, each with the store's columns in
/// order (none when the key is unknown).
pub type Found = Vec<Vec<OwnedValue>>;

/// A database that answers many keys in one query, driven from the lookup thread.
pub trait LookupStore: Reconnect {
    /// The names of the values each found row holds, in order.
    fn found_fields(&self) -> Vec<String>;

    /// Looks up `keys` (distinct), connecting first if needed; the answer has one entry per
    /// key, in the same order.
    ///
    /// # Errors
    /// [`StoreError::Connection`] when the connection failed, and
    /// [`StoreError::Rejected`] when the database refused the query.
    fn lookup(&mut self, keys: &[OwnedValue]) -> Result<Vec<Found>, StoreError>;
}

/// What an input whose key the database does not hold becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenMissing {
    /// Nothing is emitted and the input is acked, as an inner join.
    #[default]
    Skip,
    /// The input is emitted with nulls for the found values, as a left join.
    EmitNulls,
}

/// How a lookup bolt batches, caches and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupSettings {
    /// The most distinct keys asked in one query.
    pub max_keys: usize,
    /// Queries handed to the lookup thread and not yet answered before the executor waits.
    pub max_batches_in_flight: usize,
    /// Keys the cache holds at most; 0 turns the cache off.
    pub cache_entries: usize,
    /// How long a cached answer is used; `None` keeps it until it is evicted.
    pub cache_ttl: Option<Duration>,
    /// What inputs with unknown keys become.
    pub when_missing: WhenMissing,
    /// Retries after a lost connection.
    pub retry: RetryPolicy,
}

impl Default for LookupSettings {
    fn default() -> Self {
        Self {
            max_keys: 500,
            max_batches_in_flight: 2,
            cache_entries: 10_000,
            cache_ttl: Some(Duration::from_secs(60)),
            when_missing: WhenMissing::Skip,
            retry: RetryPolicy::default(),
        }
    }
}

/// The input fields a lookup bolt reads and carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupFields {
    /// The input field holding the key.
    pub key: String,
    /// The input fields emitted ahead of the found values, in order.
    pub carried: Vec<String>,
}

/// An input waiting for its key's answer.
struct Waiting {
    key: CacheKey,
    carried: Vec<OwnedValue>,
    anchor: Anchor,
}

/// A query with the lookup thread, and the inputs waiting for it.
struct InFlight {
    id: u64,
    keys: Vec<CacheKey>,
    waiting: Vec<Waiting>,
}

/// A key as the cache compares it: integers compare by value whatever their signedness,
/// since a database answers a key in its column's type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    Integer(i128),
    Text(String),
    Bytes(Vec<u8>),
    Other(String),
}

impl CacheKey {
    pub(crate) fn of(value: &OwnedValue) -> Self {
        match value {
            OwnedValue::I64(n) => CacheKey::Integer(i128::from(*n)),
            OwnedValue::U64(n) => CacheKey::Integer(i128::from(*n)),
            OwnedValue::Str(text) => CacheKey::Text(text.clone()),
            OwnedValue::Bytes(bytes) => CacheKey::Bytes(bytes.clone()),
            other => CacheKey::Other(format!("{other:?}")),
        }
    }
}

/// Answers by key, each forgotten after the time to live.
struct AnswerCache {
    entries: Option<LruCache<CacheKey, (Instant, Found)>>,
    ttl: Option<Duration>,
}

impl AnswerCache {
    fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
            ttl,
        }
    }

    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<&Found> {
        let entries = self.entries.as_mut()?;
        let fresh = match (entries.peek(key), self.ttl) {
            (None, _) => return None,
            (Some((stored, _)), Some(ttl)) => now.duration_since(*stored) < ttl,
            (Some(_), None) => true,
        };
        if !fresh {
            entries.pop(key);
            return None;
        }
        entries.get(key).map(|(_, found)| found)
    }

    fn put(&mut self, key: CacheKey, found: Found, now: Instant) {
        if let Some(entries) = self.entries.as_mut() {
            entries.put(key, (now, found));
        }
    }

    fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, LruCache::len)
    }
}

/// The lookup thread: keys in, each key's rows (or why there are none) out.
type LookupThread = StoreThread<Vec<OwnedValue>, Result<Vec<Found>, String>>;

/// Emits an input joined with its key's found rows.
struct Joiner {
    description: String,
    found_width: usize,
    when_missing: WhenMissing,
}

impl Joiner {
    /// Emits `carried` with each of `found`, anchored to the input, and acks the input.
    fn emit(
        &self,
        carried: &[OwnedValue],
        anchor: &Anchor,
        found: &[Vec<OwnedValue>],
        output: &mut BoltOutput<'_>,
    ) {
        let nulls;
        let rows = match (found.is_empty(), self.when_missing) {
            (false, _) => found,
            (true, WhenMissing::Skip) => &[],
            (true, WhenMissing::EmitNulls) => {
                nulls = [vec![OwnedValue::Null; self.found_width]];
                &nulls[..]
            }
        };
        let mut values = Vec::with_capacity(carried.len() + self.found_width);
        for row in rows {
            values.clear();
            values.extend_from_slice(carried);
            values.extend_from_slice(row);
            if let Err(error) = output.try_emit(DEFAULT_STREAM, &[anchor], None, &values) {
                output.report_error(format!(
                    "a row looked up in {} cannot be emitted: {error}",
                    self.description
                ));
            }
        }
        output.ack(anchor);
    }
}

/// Emits each input with what a [`LookupStore`] holds under its key; see the
/// [module docs](self).
pub struct LookupBolt<S: LookupStore> {
    store: Option<S>,
    join: Joiner,
    fields: LookupFields,
    found_fields: Vec<String>,
    settings: LookupSettings,
    cache: AnswerCache,
    waiting: Vec<Waiting>,
    in_flight: VecDeque<InFlight>,
    lookups: Option<LookupThread>,
    /// Lookups answered from the cache, and asked of the database.
    hits: u64,
    misses: u64,
}

impl<S: LookupStore> std::fmt::Debug for LookupBolt<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LookupBolt")
            .field("store", &self.join.description)
            .field("settings", &self.settings)
            .field("cached", &self.cache.len())
            .field("waiting", &self.waiting.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<S: LookupStore> LookupBolt<S> {
    /// Looks up each input's `fields.key` in `store`, emitting `fields.carried` then the
    /// store's found fields.
    pub fn new(store: S, fields: LookupFields, settings: LookupSettings) -> Self {
        let settings = LookupSettings {
            max_keys: settings.max_keys.max(1),
            max_batches_in_flight: settings.max_batches_in_flight.max(1),
            ..settings
        };
        let found_fields = store.found_fields();
        Self {
            join: Joiner {
                description: store.describe(),
                found_width: found_fields.len(),
                when_missing: settings.when_missing,
            },
            found_fields,
            store: Some(store),
            fields,
            cache: AnswerCache::new(settings.cache_entries, settings.cache_ttl),
            settings,
            waiting: Vec::new(),
            in_flight: VecDeque::new(),
            lookups: None,
            hits: 0,
            misses: 0,
        }
    }

    /// Lookups answered from the cache, and those that asked the database.
    pub fn cache_figures(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Hands the waiting inputs' keys to the lookup thread, first waiting for an answer
    /// when enough queries are in flight.
    fn flush(&mut self, output: &mut BoltOutput<'_>) {
        if self.waiting.is_empty() {
            return;
        }
        while self.in_flight.len() >= self.settings.max_batches_in_flight {
            if !self.settle_one(output, true) {
                break;
            }
        }
        // Answers just settled may hold keys that waiting inputs need.
        let now = Instant::now();
        let waiting = std::mem::take(&mut self.waiting);
        for input in waiting {
            match self.cache.get(&input.key, now) {
                Some(found) => self.join.emit(&input.carried, &input.anchor, found, output),
                None => self.waiting.push(input),
            }
        }
        if self.waiting.is_empty() {
            return;
        }
        let Some(lookups) = &mut self.lookups else {
            return;
        };
        let waiting = std::mem::take(&mut self.waiting);
        let mut keys = Vec::new();
        let mut distinct: HashSet<&CacheKey> = HashSet::with_capacity(waiting.len());
        let mut values = Vec::new();
        for input in &waiting {
            if distinct.insert(&input.key) {
                keys.push(input.key.clone());
                values.push(key_value(&input.key));
            }
        }
        drop(distinct);
        match lookups.send(values) {
            Ok(id) => self.in_flight.push_back(InFlight { id, keys, waiting }),
            Err(_) => {
                output.report_error(format!(
                    "the lookup thread of {} stopped",
                    self.join.description
                ));
                for input in &waiting {
                    output.fail(&input.anchor);
                }
            }
        }
    }

    /// Settles the oldest query whose answer came, waiting for it when `wait`; returns
    /// whether one was settled.
    fn settle_one(&mut self, output: &mut BoltOutput<'_>, wait: bool) -> bool {
        let Some((answered, result)) = self
            .lookups
            .as_ref()
            .and_then(|lookups| lookups.answer(wait))
        else {
            return false;
        };
        let Some(query) = self.in_flight.pop_front() else {
            return false;
        };
        debug_assert_eq!(query.id, answered, "the lookup thread answers in order");
        match result {
            Ok(found) => {
                let now = Instant::now();
                let mut by_key: HashMap<CacheKey, Found> =
                    query.keys.into_iter().zip(found).collect();
                for input in &query.waiting {
                    let found = by_key.get(&input.key).map_or(&[][..], Vec::as_slice);
                    self.join.emit(&input.carried, &input.anchor, found, output);
                }
                for (key, found) in by_key.drain() {
                    self.cache.put(key, found, now);
                }
            }
            Err(reason) => {
                output.report_error(format!(
                    "{} inputs not looked up in {}: {reason}",
                    query.waiting.len(),
                    self.join.description
                ));
                for input in &query.waiting {
                    output.fail(&input.anchor);
                }
            }
        }
        true
    }
}

/// The key a [`CacheKey`] was made of, as the store is asked it.
fn key_value(key: &CacheKey) -> OwnedValue {
    match key {
        CacheKey::Integer(n) => match i64::try_from(*n) {
            Ok(n) => OwnedValue::I64(n),
            Err(_) => OwnedValue::U64(u64::try_from(*n).expect("made from a u64")),
        },
        CacheKey::Text(text) => OwnedValue::Str(text.clone()),
        CacheKey::Bytes(bytes) => OwnedValue::Bytes(bytes.clone()),
        CacheKey::Other(text) => OwnedValue::Str(text.clone()),
    }
}

impl<S: LookupStore> Bolt for LookupBolt<S> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        let fields: Vec<&str> = self
            .fields
            .carried
            .iter()
            .chain(&self.found_fields)
            .map(String::as_str)
            .collect();
        declarer.declare(&fields);
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        let store = self
            .store
            .take()
            .ok_or("the lookup bolt was prepared twice")?;
        let retry = self.settings.retry;
        self.lookups = Some(StoreThread::spawn(
            format!("{}-lookup", context.component_id()),
            store,
            self.settings.max_batches_in_flight,
            context.waker(),
            move |store: &mut S, keys: Vec<OwnedValue>| lookup_with_retries(store, &keys, retry),
        )?);
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if input.is_tick() {
            output.ack(input);
            return;
        }
        let read = |field: &str| {
            input
                .get_by_name(field)
                .map(|value| value.to_owned_value())
                .map_err(|error| format!("field {field:?}: {error}"))
        };
        let key = read(&self.fields.key);
        let carried: Result<Vec<OwnedValue>, String> = self
            .fields
            .carried
            .iter()
            .map(|field| read(field))
            .collect();
        let (key, carried) = match (key, carried) {
            (Ok(key), Ok(carried)) => (CacheKey::of(&key), carried),
            (Err(reason), _) | (_, Err(reason)) => {
                output.report_error(format!(
                    "cannot look up a tuple in {}: {reason}",
                    self.join.description
                ));
                output.fail(input);
                return;
            }
        };
        if let Some(found) = self.cache.get(&key, Instant::now()) {
            self.hits += 1;
            self.join.emit(&carried, input.anchor(), found, output);
            return;
        }
        self.misses += 1;
        self.waiting.push(Waiting {
            key,
            carried,
            anchor: input.anchor().clone(),
        });
        if self.waiting.len() >= self.settings.max_keys || self.in_flight.is_empty() {
            self.flush(output);
        }
    }

    fn poll(&mut self, output: &mut BoltOutput<'_>) -> bool {
        let mut settled = false;
        while self.settle_one(output, false) {
            settled = true;
        }
        if self.in_flight.is_empty() && !self.waiting.is_empty() {
            self.flush(output);
            return true;
        }
        settled
    }

    fn wants_poll(&self) -> bool {
        true
    }

    fn cleanup(&mut self) {
        // The lookup thread answers what it holds and ends; inputs still waiting are
        // replayed by their spouts when their trees time out.
        if let Some(lookups) = &mut self.lookups {
            lookups.stop();
        }
    }
}

/// Looks `keys` up, reconnecting with backoff after connection errors, until the store
/// answers, refuses, or the retries run out.
fn lookup_with_retries<S: LookupStore>(
    store: &mut S,
    keys: &[OwnedValue],
    retry: RetryPolicy,
) -> Result<Vec<Found>, String> {
    with_retries(store, retry, "a lookup", |store| {
        let found = store.lookup(keys)?;
        if found.len() == keys.len() {
            Ok(found)
        } else {
            Err(StoreError::Rejected(format!(
                "the store answered {} of {} keys",
                found.len(),
                keys.len()
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_match_whatever_their_signedness() {
        assert_eq!(
            CacheKey::of(&OwnedValue::U64(7)),
            CacheKey::of(&OwnedValue::I64(7))
        );
        assert_ne!(
            CacheKey::of(&OwnedValue::Str("7".into())),
            CacheKey::of(&OwnedValue::I64(7))
        );
        assert_eq!(
            key_value(&CacheKey::of(&OwnedValue::U64(u64::MAX))),
            OwnedValue::U64(u64::MAX)
        );
        assert_eq!(
            key_value(&CacheKey::of(&OwnedValue::U64(3))),
            OwnedValue::I64(3)
        );
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_after_its_time_to_live() {
        let start = Instant::now();
        let mut cache = AnswerCache::new(2, Some(Duration::from_secs(10)));
        let key = |n| CacheKey::Integer(n);
        let found = |n: i64| vec![vec![OwnedValue::I64(n)]];
        cache.put(key(1), found(1), start);
        cache.put(key(2), found(2), start);
        assert_eq!(cache.get(&key(1), start), Some(&found(1)));
        // 2 is now the least recently used, and goes.
        cache.put(key(3), found(3), start);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key(2), start), None);
        assert_eq!(cache.get(&key(3), start), Some(&found(3)));
        let later = start + Duration::from_secs(10);
        assert_eq!(cache.get(&key(1), later), None);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_cache_of_no_entries_holds_nothing() {
        let mut cache = AnswerCache::new(0, None);
        cache.put(CacheKey::Integer(1), Vec::new(), Instant::now());
        assert_eq!(cache.get(&CacheKey::Integer(1), Instant::now()), None);
        assert_eq!(cache.len(), 0);
    }
}
