//! The Redis state backend, as Storm's `RedisKeyValueState`: checkpoints that survive the
//! loss of a host, since every worker reaches the same server.
//!
//! A task's checkpoints live under `<prefix>:<topology>:<component>:<task>`: the base in
//! the hash `…:base` (the checkpoint it holds in `…:base-checkpoint`), each checkpoint's
//! changes in the hash `…:delta:<n>` (values prefixed with 1, deletions written as a lone
//! 0), and the checkpoint numbers in the sorted set `…:deltas`. Each write is one
//! `MULTI`/`EXEC` transaction. The ledger is one key updated under `WATCH`, by the same
//! rules as every backend's ([`LedgerRecord`]).
//!
//! Durability is the server's: run it with `appendonly yes` (`appendfsync everysec` or
//! `always`) for checkpoints that survive the server's own restart.

use std::time::Duration;

use redis::{Client, Commands, Connection};
use squall_core::state::{
    CheckpointLedger, Delta, LedgerRecord, LedgerView, StateBackend, StateError, TaskStore,
};

use crate::redis::{RedisSettingsError, redacted};

/// How long connecting and each command may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most fields set by one `HSET`.
const FIELDS_PER_COMMAND: usize = 10_000;

/// Checkpoints and the ledger in a Redis server.
#[derive(Clone)]
pub struct RedisBackend {
    client: Client,
    prefix: String,
    description: String,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.description)
    }
}

impl RedisBackend {
    /// A backend in the server at `url` (`redis://[user:password@]host:port[/db]`), its keys
    /// under `prefix`.
    ///
    /// # Errors
    /// When the address does not parse.
    pub fn new(url: &str, prefix: &str) -> Result<Self, RedisSettingsError> {
        let client = Client::open(url).map_err(|error| RedisSettingsError {
            url: redacted(url),
            reason: error.to_string(),
        })?;
        Ok(Self {
            description: format!("Redis at {} (keys under {prefix}:)", redacted(url)),
            client,
            prefix: prefix.to_owned(),
        })
    }

    fn connect(&self) -> Result<Connection, StateError> {
        let connection = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|error| StateError::new(&self.description, format!("connecting: {error}")))?;
        connection
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)))
            .map_err(|error| StateError::new(&self.description, format!("connecting: {error}")))?;
        Ok(connection)
    }
}

impl StateBackend for RedisBackend {
    fn task_store(
        &self,
        topology: &str,
        component: &str,
        task_index: usize,
    ) -> Result<Box<dyn TaskStore>, StateError> {
        let connection = self.connect()?;
        let key = format!("{}:{topology}:{component}:{task_index}", self.prefix);
        Ok(Box::new(RedisTaskStore {
            backend: self.clone(),
            description: format!("{} task store {key}", self.description),
            connection: Some(connection),
            key,
            token: None,
        }))
    }

    fn ledger(
        &self,
        topology: &str,
        sources: usize,
    ) -> Result<Box<dyn CheckpointLedger>, StateError> {
        let connection = self.connect()?;
        Ok(Box::new(RedisLedger {
            backend: self.clone(),
            connection: Some(connection),
            key: format!("{}:{topology}:ledger", self.prefix),
            sources,
        }))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// One task's checkpoints.
struct RedisTaskStore {
    backend: RedisBackend,
    description: String,
    connection: Option<Connection>,
    key: String,
    /// This incarnation's writer token (`<key>:writer`), taken on its first write. A later
    /// incarnation of the task (it moved to another worker) takes a newer one, and the
    /// writes of this one are refused from then: a worker going away cannot write over the
    /// checkpoints of its successor.
    token: Option<u64>,
}

/// A delta field's value: 1 then the value, or a lone 0 for a deletion.
fn encode_change(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(value) => {
            let mut encoded = Vec::with_capacity(value.len() + 1);
            encoded.push(1);
            encoded.extend_from_slice(value);
            encoded
        }
        None => vec![0],
    }
}

fn decode_change(encoded: &[u8]) -> Option<&[u8]> {
    match encoded.split_first() {
        Some((1, value)) => Some(value),
        _ => None,
    }
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

impl RedisTaskStore {
    /// Runs `operation` on the connection, reconnecting first if the last one was lost;
    /// a failure drops the connection.
    fn with<T>(
        &mut self,
        what: &str,
        operation: impl FnOnce(&mut Connection, &str) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        if self.connection.is_none() {
            self.connection = Some(self.backend.connect()?);
        }
        let connection = self.connection.as_mut().expect("connected above");
        operation(connection, &self.key).map_err(|error| {
            self.connection = None;
            StateError::new(&self.description, format!("{what}: {error}"))
        })
    }

    /// Runs the commands `build` adds as one transaction, if this incarnation still holds
    /// the writer token.
    fn write(
        &mut self,
        what: &str,
        build: impl Fn(&mut redis::Pipeline, &str),
    ) -> Result<(), StateError> {
        if self.token.is_none() {
            let token = self.with("taking the writer token", |connection, key| {
                connection.incr::<_, _, u64>(format!("{key}:writer"), 1)
            })?;
            self.token = Some(token);
        }
        let token = self.token.expect("taken above");
        self.with(what, |connection, key| {
            let writer = format!("{key}:writer");
            redis::transaction(connection, &[&writer], |connection, pipe| {
                let holder: Option<u64> = connection.get(&writer)?;
                if holder != Some(token) {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::ClientError,
                        "superseded",
                        "a newer incarnation of this task writes its state".to_owned(),
                    )));
                }
                build(pipe, key);
                pipe.query::<Option<()>>(connection)
            })
        })
    }

    fn base_checkpoint(&mut self) -> Result<u64, StateError> {
        self.with("reading the base checkpoint", |connection, key| {
            connection
                .get::<_, Option<u64>>(format!("{key}:base-checkpoint"))
                .map(Option::unwrap_or_default)
        })
    }

    /// The checkpoints with deltas in `(after, upto]`.
    fn deltas_between(&mut self, after: u64, upto: Option<u64>) -> Result<Vec<u64>, StateError> {
        self.with("listing checkpoints", |connection, key| {
            let upto = upto.map_or_else(|| "+inf".to_owned(), |upto| upto.to_string());
            redis::cmd("ZRANGEBYSCORE")
                .arg(format!("{key}:deltas"))
                .arg(format!("({after}"))
                .arg(upto)
                .query(connection)
        })
    }
}

impl TaskStore for RedisTaskStore {
    fn save(&mut self, delta: &Delta) -> Result<(), StateError> {
        if delta.is_empty() {
            return Ok(());
        }
        let changes: Vec<_> = delta.iter().collect();
        self.write("saving a checkpoint", |pipe, key| {
            let hash = format!("{key}:delta:{}", delta.checkpoint);
            // A delta of the same number left by an abandoned generation is replaced, not
            // merged into.
            pipe.del(&hash).ignore();
            for chunk in changes.chunks(FIELDS_PER_COMMAND) {
                let command = pipe.cmd("HSET").arg(&hash);
                for (field, value) in chunk {
                    command.arg(*field).arg(encode_change(*value));
                }
                command.ignore();
            }
            pipe.cmd("ZADD")
                .arg(format!("{key}:deltas"))
                .arg(delta.checkpoint)
                .arg(delta.checkpoint)
                .ignore();
        })
    }

    fn read(&mut self, checkpoint: u64) -> Result<Pairs, StateError> {
        let base = self.base_checkpoint()?;
        if base > checkpoint {
            return Err(StateError::new(
                &self.description,
                format!("checkpoint {checkpoint} is older than the base, which holds {base}"),
            ));
        }
        let mut state: std::collections::HashMap<Vec<u8>, Vec<u8>> = self
            .with("reading the base", |connection, key| {
                connection.hgetall(format!("{key}:base"))
            })?;
        for delta in self.deltas_between(base, Some(checkpoint))? {
            let changes: Vec<(Vec<u8>, Vec<u8>)> = self
                .with("reading a checkpoint", |connection, key| {
                    connection.hgetall(format!("{key}:delta:{delta}"))
                })?;
            for (field, change) in changes {
                match decode_change(&change) {
                    Some(value) => state.insert(field, value.to_vec()),
                    None => state.remove(&field),
                };
            }
        }
        Ok(state.into_iter().collect())
    }

    fn restore(&mut self, checkpoint: u64) -> Result<Pairs, StateError> {
        let state = self.read(checkpoint)?;
        let abandoned = self.deltas_between(checkpoint, None)?;
        // Written even with nothing to drop: the restore takes the writer token, fencing
        // off an earlier incarnation before this one reads what it will build on.
        self.write("dropping abandoned checkpoints", |pipe, key| {
            for delta in &abandoned {
                pipe.del(format!("{key}:delta:{delta}")).ignore();
            }
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(format!("{key}:deltas"))
                .arg(format!("({checkpoint}"))
                .arg("+inf")
                .ignore();
        })?;
        Ok(state)
    }

    fn compact(&mut self, committed: u64) -> Result<(), StateError> {
        let base = self.base_checkpoint()?;
        if base >= committed {
            return Ok(());
        }
        // Each delta is folded in its own transaction, which also moves the base
        // checkpoint: a fold cut short leaves a consistent store.
        for delta in self.deltas_between(base, Some(committed))? {
            let changes: Vec<(Vec<u8>, Vec<u8>)> = self
                .with("reading a checkpoint", |connection, key| {
                    connection.hgetall(format!("{key}:delta:{delta}"))
                })?;
            let (puts, deletes): (Vec<_>, Vec<_>) = changes
                .iter()
                .partition(|(_, change)| decode_change(change).is_some());
            self.write("folding a checkpoint", |pipe, key| {
                let base = format!("{key}:base");
                for chunk in puts.chunks(FIELDS_PER_COMMAND) {
                    let command = pipe.cmd("HSET").arg(&base);
                    for (field, change) in chunk {
                        command
                            .arg(field)
                            .arg(decode_change(change).unwrap_or_default());
                    }
                    command.ignore();
                }
                for chunk in deletes.chunks(FIELDS_PER_COMMAND) {
                    let command = pipe.cmd("HDEL").arg(&base);
                    for (field, _) in chunk {
                        command.arg(field);
                    }
                    command.ignore();
                }
                pipe.del(format!("{key}:delta:{delta}")).ignore();
                pipe.cmd("ZREM")
                    .arg(format!("{key}:deltas"))
                    .arg(delta)
                    .ignore();
                pipe.set(format!("{key}:base-checkpoint"), delta).ignore();
            })?;
        }
        self.write("moving the base checkpoint", |pipe, key| {
            pipe.set(format!("{key}:base-checkpoint"), committed)
                .ignore();
        })
    }
}

/// The ledger, one key.
struct RedisLedger {
    backend: RedisBackend,
    connection: Option<Connection>,
    key: String,
    sources: usize,
}

impl RedisLedger {
    fn error(&self, what: &str, error: impl std::fmt::Display) -> StateError {
        StateError::new(
            format!("{} ledger {}", self.backend.description, self.key),
            format!("{what}: {error}"),
        )
    }

    /// Applies `change` to the record atomically: the update is retried if another
    /// process changed the record in between.
    fn update(
        &mut self,
        change: impl Fn(&mut LedgerRecord) -> LedgerView,
    ) -> Result<LedgerView, StateError> {
        if self.connection.is_none() {
            self.connection = Some(self.backend.connect()?);
        }
        let connection = self.connection.as_mut().expect("connected above");
        let key = self.key.clone();
        let sources = self.sources;
        let result = redis::transaction(connection, &[&key], |connection, pipe| {
            let bytes: Option<Vec<u8>> = connection.get(&key)?;
            let mut record = bytes
                .and_then(|bytes| LedgerRecord::decode(&bytes, sources))
                .unwrap_or_else(|| LedgerRecord::new(sources));
            let before = record.clone();
            let view = change(&mut record);
            if record == before {
                // Nothing to write; the transaction is still closed.
                return pipe.query::<()>(connection).map(|()| Some(view));
            }
            pipe.set(&key, record.encode())
                .ignore()
                .query::<Option<()>>(connection)
                .map(|done| done.map(|()| view))
        });
        result.map_err(|error| {
            self.connection = None;
            self.error("updating", error)
        })
    }
}

impl CheckpointLedger for RedisLedger {
    fn view(&mut self) -> Result<LedgerView, StateError> {
        if self.connection.is_none() {
            self.connection = Some(self.backend.connect()?);
        }
        let connection = self.connection.as_mut().expect("connected above");
        let bytes: Result<Option<Vec<u8>>, _> = connection.get(&self.key);
        match bytes {
            Ok(bytes) => Ok(bytes
                .and_then(|bytes| LedgerRecord::decode(&bytes, self.sources))
                .unwrap_or_else(|| LedgerRecord::new(self.sources))
                .view()),
            Err(error) => {
                self.connection = None;
                Err(self.error("reading", error))
            }
        }
    }

    fn roll_back(&mut self, seen: u64) -> Result<LedgerView, StateError> {
        self.update(|record| record.roll_back(seen))
    }

    fn claim(&mut self, source: usize) -> Result<LedgerView, StateError> {
        self.update(|record| record.claim(source))
    }

    fn source_view(&mut self, source: usize, claim: u64) -> Result<LedgerView, StateError> {
        self.update(|record| record.source_view(source, claim))
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

    #[test]
    fn a_change_survives_its_encoding() {
        assert_eq!(decode_change(&encode_change(Some(b"v"))), Some(&b"v"[..]));
        assert_eq!(decode_change(&encode_change(Some(b""))), Some(&b""[..]));
        assert_eq!(decode_change(&encode_change(None)), None);
        assert_eq!(decode_change(&[]), None);
    }

    #[test]
    fn a_bad_address_is_refused_without_its_password() {
        let error = RedisBackend::new("nope://user:hunter2@x", "s").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
