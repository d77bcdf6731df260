//! The Redis Streams spout: a replayable source. It reads a stream as one consumer of a
//! consumer group, emits each entry as a tracked tuple, acknowledges the entry (`XACK`)
//! only when the tuple's tree completes, and emits it again when the tree fails.
//!
//! Entries read and not yet acknowledged stay in the group's pending list in Redis. A
//! consumer that restarts under the same name first reads its own pending entries again
//! (`XREADGROUP … 0`), so nothing it was given is lost with the process.
//!
//! In a checkpointed topology it is a [`ReplayableSpout`]: its position is the id of the
//! last entry it emitted, and it acknowledges entries when the checkpoint that holds them
//! commits rather than when their trees complete. Going back to a position reads the
//! consumer's pending entries again, acknowledging those up to the position (they are
//! committed) and emitting the rest in order: the exactly-once source of `docs/state.md`.

use std::collections::{HashMap, VecDeque};

use squall_core::state::{ReplayOutput, ReplayableSpout};
use std::time::{Duration, Instant};

use redis::streams::StreamReadReply;
use redis::{Client, Connection};
use squall_core::component::{ComponentError, Spout};
use squall_core::context::TopologyContext;
use squall_core::runtime::SpoutOutput;
use squall_core::{MessageId, OutputDeclarer, Value};

use crate::redis::RedisSettingsError;

/// How long connecting and each command may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Acknowledged entries are sent in one `XACK` at most this many at a time.
const ACK_BATCH: usize = 256;

/// Reads for the reader holding the consumer's token (`KEYS[1]`), refusing others: a
/// reader that started later under the same consumer name (the task moved to another
/// worker) fences off the earlier one, which may still run in a worker going away. Without
/// it, what the earlier reader takes from the group after the later one re-read the
/// pending entries would never be emitted where it counts.
const FENCED_READ: &str = "\
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('SUPERSEDED a newer reader took this consumer over')
end
return redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], ARGV[5])";

/// `XACK`s for the reader holding the consumer's token, as [`FENCED_READ`] reads.
const FENCED_ACK: &str = "\
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('SUPERSEDED a newer reader took this consumer over')
end
return redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 3))";

/// Where a stream spout reads, and what it emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStreamSource {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// The stream's key.
    pub stream: String,
    /// The consumer group; created at the stream's start if missing (and the stream with it).
    pub group: String,
    /// The consumer's name; the same name after a restart replays what was pending.
    /// Empty: `<component>-<task index>`, stable across restarts of the same topology.
    pub consumer: String,
    /// The entry fields emitted, in order; a field an entry lacks is emitted as null.
    pub fields: Vec<String>,
    /// The most entries read at a time.
    pub batch: usize,
}

/// A pending entry: its stream id and the values it was emitted with.
#[derive(Debug)]
struct Entry {
    id: String,
    values: Vec<Option<Vec<u8>>>,
}

/// Emits the entries of a Redis stream, acknowledging each once its tree completes.
pub struct RedisStreamSpout {
    source: RedisStreamSource,
    client: Client,
    description: String,
    connection: Option<Connection>,
    /// Entries emitted and not yet acknowledged, by message id.
    pending: HashMap<u64, Entry>,
    /// Failed entries to emit again, oldest first.
    replay: VecDeque<u64>,
    /// Acknowledged entries not yet sent to Redis with `XACK`.
    acked: Vec<String>,
    next_message: u64,
    /// Whether this consumer's own pending entries have been read again after a start.
    recovered: bool,
    /// Until then, the last of them read: the next read starts after it.
    recovery_cursor: String,
    /// No connection attempt before this.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// As a replayable source: the last entry emitted.
    position: String,
    /// Pending entries up to this one are committed: when read again after a seek they
    /// are acknowledged, not emitted.
    committed_floor: Option<(u64, u64)>,
    /// Entries emitted and not committed, oldest first.
    uncommitted: VecDeque<String>,
    /// This reader's token for its consumer, taken on its first connection.
    token: Option<String>,
    /// The key of the token (`squall:stream-reader:<stream>:<group>:<consumer>`), named
    /// when the consumer is, at open.
    fence: String,
    /// A later reader took the consumer over: this one reads and acknowledges nothing more.
    superseded: bool,
    read_script: redis::Script,
    ack_script: redis::Script,
}

impl std::fmt::Debug for RedisStreamSpout {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisStreamSpout")
            .field("source", &self.description)
            .field("pending", &self.pending.len())
            .field("replay", &self.replay.len())
            .finish_non_exhaustive()
    }
}

impl RedisStreamSpout {
    /// A spout reading `source`.
    ///
    /// # Errors
    /// When the address does not parse.
    pub fn new(source: RedisStreamSource) -> Result<Self, RedisSettingsError> {
        let client = Client::open(source.url.as_str()).map_err(|error| RedisSettingsError {
            url: crate::redis::redacted(&source.url),
            reason: error.to_string(),
        })?;
        let description = format!(
            "Redis stream {} (group {}) at {}",
            source.stream,
            source.group,
            client.get_connection_info().addr
        );
        let fence = fence_key(&source);
        Ok(Self {
            source,
            client,
            description,
            connection: None,
            pending: HashMap::new(),
            replay: VecDeque::new(),
            acked: Vec::new(),
            next_message: 0,
            recovered: false,
            recovery_cursor: "0".to_owned(),
            retry_at: None,
            backoff: Duration::from_millis(50),
            position: "0-0".to_owned(),
            committed_floor: None,
            uncommitted: VecDeque::new(),
            token: None,
            fence,
            superseded: false,
            read_script: redis::Script::new(FENCED_READ),
            ack_script: redis::Script::new(FENCED_ACK),
        })
    }

    /// Entries emitted and not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether a later reader took this one's consumer over.
    pub fn is_superseded(&self) -> bool {
        self.superseded
    }

    /// Notes a refusal for being superseded; returns whether `error` was one.
    fn superseded_by(&mut self, error: &redis::RedisError) -> bool {
        if error.to_string().contains("SUPERSEDED") {
            self.superseded = true;
        }
        self.superseded
    }

    fn connect(&mut self) -> Result<&mut Connection, String> {
        if self.connection.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(TIMEOUT)
                .map_err(|error| format!("connecting: {error}"))?;
            connection
                .set_read_timeout(Some(TIMEOUT))
                .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)))
                .map_err(|error| format!("connecting: {error}"))?;
            let mut connection = connection;
            // The group starts at the stream's beginning; an existing one is kept.
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.source.stream)
                .arg(&self.source.group)
                .arg("0")
                .arg("MKSTREAM")
                .query(&mut connection);
            if let Err(error) = created
                && error.code() != Some("BUSYGROUP")
            {
                return Err(format!("creating the consumer group: {error}"));
            }
            // Taken once: a reader that reconnects keeps its token, and stays fenced off
            // when a later one took the consumer over meanwhile.
            if self.token.is_none() {
                let token: u64 = redis::cmd("INCR")
                    .arg(&self.fence)
                    .query(&mut connection)
                    .map_err(|error| format!("taking the consumer over: {error}"))?;
                self.token = Some(token.to_string());
            }
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Forgets the connection after `reason`, waiting longer before each new attempt;
    /// returns the error to report, the first time.
    fn lost(&mut self, reason: &str) -> Option<String> {
        let report = (self.connection.is_some() || self.retry_at.is_none())
            .then(|| format!("{}: {reason}", self.description));
        self.connection = None;
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
        report
    }

    /// Sends the acknowledgements gathered so far.
    fn flush_acks(&mut self, output: &mut SpoutOutput<'_>) {
        if let Err(reason) = self.send_acks()
            && let Some(report) = self.lost(&reason)
        {
            output.report_error(report);
        }
    }

    /// `XACK`s the entries gathered so far. On failure they are kept to be sent again:
    /// the entries stay pending in Redis until then.
    fn send_acks(&mut self) -> Result<(), String> {
        if self.acked.is_empty() {
            return Ok(());
        }
        if self.superseded {
            self.acked.clear();
            return Ok(());
        }
        self.connect()?;
        // In batches: a script unpacks its arguments onto Lua's stack, which is bounded.
        while !self.acked.is_empty() {
            let batch = self.acked.len().min(ACK_BATCH);
            let mut invocation = self.ack_script.key(&self.fence);
            invocation
                .key(&self.source.stream)
                .arg(self.token.as_deref().unwrap_or_default())
                .arg(&self.source.group)
                .arg(&self.acked[..batch]);
            let acked =
                invocation.invoke::<u64>(self.connection.as_mut().expect("connected above"));
            if let Err(error) = acked {
                if self.superseded_by(&error) {
                    self.acked.clear();
                    return Err(format!("{error}: this reader stops"));
                }
                return Err(format!("acknowledging: {error}"));
            }
            self.acked.drain(..batch);
        }
        Ok(())
    }

    /// Reads up to a batch of entries: this consumer's own pending ones first after a
    /// start, then new ones.
    fn read(&mut self) -> Result<Vec<Entry>, String> {
        let start = if self.recovered {
            ">"
        } else {
            &self.recovery_cursor
        };
        if self.superseded {
            return Ok(Vec::new());
        }
        let start = start.to_owned();
        self.connect()?;
        let mut invocation = self.read_script.key(&self.fence);
        invocation
            .key(&self.source.stream)
            .arg(self.token.as_deref().unwrap_or_default())
            .arg(&self.source.group)
            .arg(&self.source.consumer)
            .arg(self.source.batch.max(1))
            .arg(&start);
        let reply: Option<StreamReadReply> =
            match invocation.invoke(self.connection.as_mut().expect("connected above")) {
                Ok(reply) => reply,
                Err(error) if self.superseded_by(&error) => {
                    return Err(format!("{error}: this reader stops"));
                }
                Err(error) => return Err(format!("reading: {error}")),
            };
        let source = &self.source;
        let entries: Vec<_> = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| {
                let values = source
                    .fields
                    .iter()
                    .map(|field| {
                        entry
                            .map
                            .get(field)
                            .and_then(|value| redis::from_redis_value::<Vec<u8>>(value).ok())
                    })
                    .collect();
                Entry {
                    id: entry.id,
                    values,
                }
            })
            .collect();
        if !self.recovered {
            match entries.last() {
                Some(entry) => self.recovery_cursor = entry.id.clone(),
                None => self.recovered = true,
            }
        }
        Ok(entries)
    }

    fn emit(&mut self, message: u64, output: &mut SpoutOutput<'_>) {
        let Some(entry) = self.pending.get(&message) else {
            return;
        };
        let values: Vec<Value<'_>> = entry
            .values
            .iter()
            .map(|value| field_value(value))
            .collect();
        output.emit_with_id(&values, MessageId(message));
    }
}

impl Spout for RedisStreamSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        let mut fields: Vec<&str> = self.source.fields.iter().map(String::as_str).collect();
        fields.push("entry_id");
        declarer.declare(&fields);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        if self.source.consumer.is_empty() {
            self.source.consumer = format!("{}-{}", context.component_id(), context.task_index());
        }
        self.description = format!("{} as {}", self.description, self.source.consumer);
        self.fence = fence_key(&self.source);
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        if self.acked.len() >= ACK_BATCH {
            self.flush_acks(output);
        }
        if let Some(message) = self.replay.pop_front() {
            self.emit(message, output);
            return;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            output.idle_for(Duration::from_millis(10));
            return;
        }
        // Acknowledgements go out before reading, so a quiet stream does not hold them.
        self.flush_acks(output);
        match self.read() {
            Ok(entries) if entries.is_empty() => {
                output.idle_for(Duration::from_millis(5));
            }
            Ok(entries) => {
                self.retry_at = None;
                self.backoff = Duration::from_millis(50);
                for mut entry in entries {
                    let message = self.next_message;
                    self.next_message += 1;
                    entry.values.push(Some(entry.id.clone().into_bytes()));
                    self.pending.insert(message, entry);
                    self.emit(message, output);
                }
            }
            Err(reason) => {
                if let Some(report) = self.lost(&reason) {
                    output.report_error(report);
                }
            }
        }
    }

    fn ack(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if let Some(entry) = self.pending.remove(&message.0) {
            self.acked.push(entry.id);
        }
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if self.pending.contains_key(&message.0) {
            self.replay.push_back(message.0);
        }
    }

    fn close(&mut self) {
        // Unsent acknowledgements are not lost: their entries stay pending and come again.
        let _ = self.send_acks();
    }
}

/// The key of a consumer's reader token.
fn fence_key(source: &RedisStreamSource) -> String {
    format!(
        "squall:stream-reader:{}:{}:{}",
        source.stream, source.group, source.consumer
    )
}

/// An entry field as a tuple value: text when it is UTF-8, bytes otherwise, null when the
/// entry lacks it.
fn field_value(value: &Option<Vec<u8>>) -> Value<'_> {
    match value {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::Str(text),
            Err(_) => Value::Bytes(bytes),
        },
    }
}

/// A stream entry id's two numbers, for ordering.
fn entry_order(id: &str) -> (u64, u64) {
    let (millis, sequence) = id.split_once('-').unwrap_or((id, "0"));
    (
        millis.parse().unwrap_or(u64::MAX),
        sequence.parse().unwrap_or(u64::MAX),
    )
}

impl ReplayableSpout for RedisStreamSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        Spout::declare_outputs(self, declarer);
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        Spout::open(self, context)
    }

    fn next_tuple(&mut self, output: &mut ReplayOutput<'_, '_>) {
        if self.acked.len() >= ACK_BATCH
            && let Err(reason) = self.send_acks()
            && let Some(report) = self.lost(&reason)
        {
            output.report_error(report);
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            output.idle_for(Duration::from_millis(10));
            return;
        }
        let entries = match self.send_acks().and_then(|()| self.read()) {
            Ok(entries) => entries,
            Err(reason) => {
                if let Some(report) = self.lost(&reason) {
                    output.report_error(report);
                }
                return;
            }
        };
        self.retry_at = None;
        self.backoff = Duration::from_millis(50);
        if entries.is_empty() {
            output.idle_for(Duration::from_millis(5));
        }
        for entry in entries {
            if self
                .committed_floor
                .is_some_and(|floor| entry_order(&entry.id) <= floor)
            {
                self.acked.push(entry.id);
                continue;
            }
            let values: Vec<Value<'_>> = entry
                .values
                .iter()
                .map(|value| field_value(value))
                .chain(std::iter::once(Value::Str(&entry.id)))
                .collect();
            output.emit(&values);
            drop(values);
            self.position.clone_from(&entry.id);
            self.uncommitted.push_back(entry.id);
        }
    }

    fn position(&self) -> Vec<u8> {
        self.position.as_bytes().to_vec()
    }

    fn seek(&mut self, position: Option<&[u8]>) -> Result<(), ComponentError> {
        let position = match position {
            Some(bytes) => std::str::from_utf8(bytes)?.to_owned(),
            None => "0-0".to_owned(),
        };
        // Everything this consumer was given and not acknowledged comes again from the
        // start of its pending list; what is up to the position is acknowledged then.
        self.committed_floor = Some(entry_order(&position));
        self.position = position;
        self.uncommitted.clear();
        self.recovered = false;
        self.recovery_cursor = "0".to_owned();
        Ok(())
    }

    fn committed(&mut self, position: &[u8]) {
        let Ok(position) = std::str::from_utf8(position) else {
            return;
        };
        let floor = entry_order(position);
        while self
            .uncommitted
            .front()
            .is_some_and(|id| entry_order(id) <= floor)
        {
            let id = self.uncommitted.pop_front().expect("checked above");
            self.acked.push(id);
        }
    }

    fn close(&mut self) {
        let _ = self.send_acks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spout_names_its_stream_group_and_server() {
        let spout = RedisStreamSpout::new(RedisStreamSource {
            url: "redis://127.0.0.1:6391".into(),
            stream: "events".into(),
            group: "squall".into(),
            consumer: String::new(),
            fields: vec!["word".into()],
            batch: 100,
        })
        .unwrap();
        assert_eq!(
            spout.description,
            "Redis stream events (group squall) at 127.0.0.1:6391"
        );
        let mut declarer = OutputDeclarer::default();
        Spout::declare_outputs(&spout, &mut declarer);
    }

    #[test]
    fn entry_ids_order_by_time_then_sequence() {
        assert!(entry_order("1-9") < entry_order("2-0"));
        assert!(entry_order("2-1") < entry_order("2-10"));
        assert_eq!(entry_order("0-0"), (0, 0));
        assert_eq!(entry_order("7"), (7, 0));
    }

    #[test]
    fn a_bad_address_is_refused_without_its_password() {
        let error = RedisStreamSpout::new(RedisStreamSource {
            url: "nope://user:hunter2@x".into(),
            stream: "s".into(),
            group: "g".into(),
            consumer: "c".into(),
            fields: vec![],
            batch: 1,
        })
        .err()
        .unwrap();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
