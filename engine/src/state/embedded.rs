//! The default backend: redb, an embedded transactional store, in files on the local disk.
//!
//! Each task has a file of its own, so tasks of several workers on one host never contend
//! for a lock; the ledger has one more, opened for each operation. Every write is one redb
//! transaction, durable when it returns: a worker restarted on the same host finds its
//! checkpoints. Another host does not: state that must outlive a host belongs in a shared
//! backend such as Redis.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};

use super::backend::{
    CheckpointLedger, LedgerRecord, LedgerView, StateBackend, StateError, TaskStore,
};
use super::kv::{Delta, Entries};

/// The state as of the base checkpoint.
const BASE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("base");
/// Each checkpoint's changes since the one before: `None` deletes the key.
const DELTAS: TableDefinition<(u64, &[u8]), Option<&[u8]>> = TableDefinition::new("deltas");
/// `base`: the checkpoint the base holds.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The ledger's record, under `LEDGER_KEY`.
const LEDGER: TableDefinition<&str, &[u8]> = TableDefinition::new("ledger");
const LEDGER_KEY: &str = "record";

/// How long opening a file another process holds is retried: long enough for a worker
/// that is being replaced to exit.
const LOCK_PATIENCE: Duration = Duration::from_secs(20);

/// State in redb files under a directory.
#[derive(Debug, Clone)]
pub struct EmbeddedBackend {
    root: PathBuf,
}

impl EmbeddedBackend {
    /// A backend keeping its files under `root` (made when first needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Under `SQUALL_STATE_DIR` when set, else `squall-state` in the system's temporary
    /// directory.
    pub fn from_env() -> Self {
        Self::new(
            std::env::var_os("SQUALL_STATE_DIR")
                .map_or_else(|| std::env::temp_dir().join("squall-state"), PathBuf::from),
        )
    }

    /// Where the files are.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn topology_dir(&self, topology: &str) -> PathBuf {
        self.root.join(file_name(topology))
    }
}

/// `name` with every character a file name cannot hold replaced.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Opens (or creates) `path`, waiting while another process holds it.
fn open(path: &Path) -> Result<Database, String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("making {}: {error}", parent.display()))?;
    }
    let deadline = Instant::now() + LOCK_PATIENCE;
    let mut wait = Duration::from_millis(1);
    loop {
        match Database::create(path) {
            Ok(database) => return Ok(database),
            Err(DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(50));
            }
            Err(error) => return Err(format!("opening {}: {error}", path.display())),
        }
    }
}

impl StateBackend for EmbeddedBackend {
    fn task_store(
        &self,
        topology: &str,
        component: &str,
        task_index: usize,
    ) -> Result<Box<dyn TaskStore>, StateError> {
        let path = self
            .topology_dir(topology)
            .join(file_name(component))
            .join(format!("{task_index}.redb"));
        let database = open(&path).map_err(|reason| StateError::new(self.describe(), reason))?;
        Ok(Box::new(EmbeddedTaskStore {
            description: format!("embedded store {}", path.display()),
            database,
        }))
    }

    fn ledger(
        &self,
        topology: &str,
        sources: usize,
    ) -> Result<Box<dyn CheckpointLedger>, StateError> {
        let path = self.topology_dir(topology).join("ledger.redb");
        Ok(Box::new(EmbeddedLedger {
            description: format!("embedded ledger {}", path.display()),
            path,
            sources,
        }))
    }

    fn describe(&self) -> String {
        format!("embedded (redb) under {}", self.root.display())
    }
}

/// One task's checkpoints in its own file.
struct EmbeddedTaskStore {
    description: String,
    database: Database,
}

impl EmbeddedTaskStore {
    fn error(&self, error: impl std::fmt::Display) -> StateError {
        StateError::new(&self.description, error)
    }

    fn base_checkpoint(&self) -> Result<u64, StateError> {
        let read = self.database.begin_read().map_err(|e| self.error(e))?;
        match read.open_table(META) {
            Ok(meta) => Ok(meta
                .get("base")
                .map_err(|e| self.error(e))?
                .map_or(0, |value| value.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(error) => Err(self.error(error)),
        }
    }
}

impl TaskStore for EmbeddedTaskStore {
    fn save(&mut self, delta: &Delta) -> Result<(), StateError> {
        if delta.is_empty() {
            return Ok(());
        }
        let write = self.database.begin_write().map_err(|e| self.error(e))?;
        {
            let mut deltas = write.open_table(DELTAS).map_err(|e| self.error(e))?;
            // A delta of the same number left by an abandoned generation is replaced, not
            // merged into.
            let empty: &[u8] = &[];
            deltas
                .retain_in(
                    (delta.checkpoint, empty)..(delta.checkpoint.saturating_add(1), empty),
                    |_, _| false,
                )
                .map_err(|e| self.error(e))?;
            for (key, value) in delta.iter() {
                deltas
                    .insert((delta.checkpoint, key), value)
                    .map_err(|e| self.error(e))?;
            }
        }
        write.commit().map_err(|e| self.error(e))
    }

    fn read(&mut self, checkpoint: u64) -> Result<Entries, StateError> {
        let base = self.base_checkpoint()?;
        if base > checkpoint {
            return Err(self.error(format!(
                "checkpoint {checkpoint} is older than the base, which holds {base}"
            )));
        }
        let read = self.database.begin_read().map_err(|e| self.error(e))?;
        let mut state = rustc_hash::FxHashMap::default();
        match read.open_table(BASE) {
            Ok(table) => {
                for entry in table.iter().map_err(|e| self.error(e))? {
                    let (key, value) = entry.map_err(|e| self.error(e))?;
                    state.insert(key.value().to_vec(), value.value().to_vec());
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(error) => return Err(self.error(error)),
        }
        match read.open_table(DELTAS) {
            Ok(deltas) => {
                let empty: &[u8] = &[];
                for entry in deltas
                    .range((0, empty)..(checkpoint.saturating_add(1), empty))
                    .map_err(|e| self.error(e))?
                {
                    let (key, value) = entry.map_err(|e| self.error(e))?;
                    let (_, key) = key.value();
                    match value.value() {
                        Some(value) => state.insert(key.to_vec(), value.to_vec()),
                        None => state.remove(key),
                    };
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(error) => return Err(self.error(error)),
        }
        Ok(state.into_iter().collect())
    }

    fn restore(&mut self, checkpoint: u64) -> Result<Entries, StateError> {
        let state = self.read(checkpoint)?;
        let write = self.database.begin_write().map_err(|e| self.error(e))?;
        {
            let mut deltas = write.open_table(DELTAS).map_err(|e| self.error(e))?;
            let empty: &[u8] = &[];
            deltas
                .retain_in((checkpoint.saturating_add(1), empty).., |_, _| false)
                .map_err(|e| self.error(e))?;
        }
        write.commit().map_err(|e| self.error(e))?;
        Ok(state)
    }

    fn compact(&mut self, committed: u64) -> Result<(), StateError> {
        if self.base_checkpoint()? >= committed {
            return Ok(());
        }
        let write = self.database.begin_write().map_err(|e| self.error(e))?;
        {
            let mut deltas = write.open_table(DELTAS).map_err(|e| self.error(e))?;
            let mut base = write.open_table(BASE).map_err(|e| self.error(e))?;
            let empty: &[u8] = &[];
            let upto = (committed.saturating_add(1), empty);
            let mut folded = Vec::new();
            for entry in deltas.range((0, empty)..upto).map_err(|e| self.error(e))? {
                let (key, value) = entry.map_err(|e| self.error(e))?;
                let (checkpoint, key) = key.value();
                folded.push((key.to_vec(), checkpoint, value.value().map(<[u8]>::to_vec)));
            }
            // In key order (a stable sort keeps each key's changes in checkpoint order),
            // the inserts walk the base's tree from one end to the other.
            folded.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, _, value) in &folded {
                match value {
                    Some(value) => base.insert(key.as_slice(), value.as_slice()),
                    None => base.remove(key.as_slice()),
                }
                .map_err(|e| self.error(e))?;
            }
            let later = deltas
                .range(upto..)
                .map_err(|e| self.error(e))?
                .next()
                .is_some();
            if later {
                for (key, checkpoint, _) in &folded {
                    deltas
                        .remove((*checkpoint, key.as_slice()))
                        .map_err(|e| self.error(e))?;
                }
            } else {
                // Nothing after the committed checkpoint: the whole table goes at once, far
                // faster than removing its entries one by one.
                drop(deltas);
                write.delete_table(DELTAS).map_err(|e| self.error(e))?;
            }
            let mut meta = write.open_table(META).map_err(|e| self.error(e))?;
            meta.insert("base", committed).map_err(|e| self.error(e))?;
        }
        write.commit().map_err(|e| self.error(e))
    }
}

/// The ledger in a file shared by every worker of the host, opened for each operation.
struct EmbeddedLedger {
    description: String,
    path: PathBuf,
    sources: usize,
}

impl EmbeddedLedger {
    /// Applies `change` to the record in one transaction.
    fn update(
        &mut self,
        change: impl FnOnce(&mut LedgerRecord) -> LedgerView,
    ) -> Result<LedgerView, StateError> {
        let error = |e: &dyn std::fmt::Display| StateError::new(&self.description, e);
        let database = open(&self.path).map_err(|e| error(&e))?;
        let write = database.begin_write().map_err(|e| error(&e))?;
        let view = {
            let mut table = write.open_table(LEDGER).map_err(|e| error(&e))?;
            let mut record = table
                .get(LEDGER_KEY)
                .map_err(|e| error(&e))?
                .and_then(|bytes| LedgerRecord::decode(bytes.value(), self.sources))
                .unwrap_or_else(|| LedgerRecord::new(self.sources));
            let view = change(&mut record);
            table
                .insert(LEDGER_KEY, record.encode().as_slice())
                .map_err(|e| error(&e))?;
            view
        };
        write.commit().map_err(|e| error(&e))?;
        Ok(view)
    }
}

impl EmbeddedLedger {
    /// The record, in a read transaction: no write, no sync to disk.
    fn record(&mut self) -> Result<LedgerRecord, StateError> {
        let error = |e: &dyn std::fmt::Display| StateError::new(&self.description, e);
        let database = open(&self.path).map_err(|e| error(&e))?;
        let read = database.begin_read().map_err(|e| error(&e))?;
        let record = match read.open_table(LEDGER) {
            Ok(table) => table
                .get(LEDGER_KEY)
                .map_err(|e| error(&e))?
                .and_then(|bytes| LedgerRecord::decode(bytes.value(), self.sources)),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(error(&e)),
        };
        Ok(record.unwrap_or_else(|| LedgerRecord::new(self.sources)))
    }
}

impl CheckpointLedger for EmbeddedLedger {
    fn view(&mut self) -> Result<LedgerView, StateError> {
        Ok(self.record()?.view())
    }

    fn roll_back(&mut self, seen: u64) -> Result<LedgerView, StateError> {
        self.update(|record| record.roll_back(seen))
    }

    fn claim(&mut self, source: usize) -> Result<LedgerView, StateError> {
        self.update(|record| record.claim(source))
    }

    fn source_view(&mut self, source: usize, claim: u64) -> Result<LedgerView, StateError> {
        Ok(self.record()?.source_view(source, claim))
    }

    fn complete(
        &mut self,
        generation: u64,
        source: usize,
        claim: u64,
        checkpoint: u64,
    ) -> Result<LedgerView, StateError> {
        self.update(|record| record.complete(generation, source, claim, checkpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(checkpoint: u64, changes: &[(&str, Option<&str>)]) -> Delta {
        let mut delta = Delta::new(checkpoint);
        for (key, value) in changes {
            delta.push(key.as_bytes(), value.map(str::as_bytes));
        }
        delta
    }

    fn sorted(mut state: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(String, String)> {
        state.sort();
        state
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn a_restore_applies_the_deltas_up_to_the_checkpoint_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let backend = EmbeddedBackend::new(dir.path());
        let mut store = backend.task_store("t", "counter", 0).unwrap();
        store
            .save(&delta(1, &[("a", Some("1")), ("b", Some("1"))]))
            .unwrap();
        store
            .save(&delta(2, &[("a", Some("2")), ("b", None)]))
            .unwrap();
        store.save(&delta(3, &[("c", Some("3"))])).unwrap();
        assert_eq!(
            sorted(store.restore(2).unwrap()),
            vec![("a".into(), "2".into())]
        );
        // Checkpoint 3 is gone for good, even when asked for later.
        assert_eq!(
            sorted(store.restore(3).unwrap()),
            vec![("a".into(), "2".into())]
        );
        assert!(store.restore(0).unwrap().is_empty());
        assert!(store.read(2).unwrap().is_empty());
    }

    #[test]
    fn compaction_keeps_the_state_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let backend = EmbeddedBackend::new(dir.path());
        {
            let mut store = backend.task_store("t", "counter", 1).unwrap();
            store
                .save(&delta(1, &[("a", Some("1")), ("b", Some("1"))]))
                .unwrap();
            store
                .save(&delta(2, &[("b", None), ("c", Some("2"))]))
                .unwrap();
            store.save(&delta(3, &[("a", Some("3"))])).unwrap();
            store.compact(2).unwrap();
        }
        let mut store = backend.task_store("t", "counter", 1).unwrap();
        assert_eq!(
            sorted(store.restore(3).unwrap()),
            vec![("a".into(), "3".into()), ("c".into(), "2".into())]
        );
        let error = store.restore(1).unwrap_err();
        assert!(error.reason.contains("older than the base"), "{error}");
    }

    #[test]
    fn the_ledger_is_shared_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let backend = EmbeddedBackend::new(dir.path());
        let mut first = backend.ledger("t", 2).unwrap();
        let mut second = backend.ledger("t", 2).unwrap();
        assert_eq!(first.claim(0).unwrap().generation, 1);
        assert_eq!(second.claim(1).unwrap().generation, 2);
        assert!(!first.source_view(0, 1).unwrap().superseded);
        first.complete(2, 0, 1, 1).unwrap();
        assert_eq!(second.complete(2, 1, 2, 1).unwrap().committed, 1);
        assert_eq!(first.view().unwrap().committed, 1);
        // A newer incarnation of source 0 claims it: the first is told.
        assert_eq!(second.claim(0).unwrap().generation, 3);
        assert!(first.source_view(0, 1).unwrap().superseded);
    }
}
