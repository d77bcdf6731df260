//! Exactly-once state against a real Redis, started by the project's script: a word count
//! reading a Redis stream, its counts checkpointed in Redis, counts every entry once through
//! a failed tuple, a crashed bolt and entries added while it runs; a bad backend is named
//! and nothing is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use squall::connectors::{RedisBackend, RedisStreamSource, RedisStreamSpout};
use squall::state::{Checkpointing, StateBackend};
use squall::{
    Bolt, BoltOutput, MessageId, OutputDeclarer, Spout, SpoutOutput, TopologyBuilder,
    TopologyConfig, Tuple, Value,
};
use squall_test_support::wait_for_or_explain;
use squall_tests::databases::Redis;
use squall_tests::stream_count::Tally;

/// The word of entry `index`: 61 distinct, unevenly spread.
fn word(index: u64) -> String {
    format!("word-{}", (index * 7 + index / 13) % 61)
}

/// Appends entries `range` to the stream `events`.
fn append(connection: &mut redis::Connection, range: std::ops::Range<u64>) {
    let indexes: Vec<u64> = range.collect();
    for chunk in indexes.chunks(1_000) {
        let mut pipe = redis::pipe();
        for index in chunk {
            pipe.cmd("XADD")
                .arg("events")
                .arg("*")
                .arg("word")
                .arg(word(*index))
                .ignore();
        }
        pipe.query::<()>(connection).unwrap();
    }
}

/// Fails one input once, and panics on another once: a replay and a restarted task.
struct Chaos {
    seen: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    crashed: Arc<AtomicBool>,
}

impl Bolt for Chaos {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word"]);
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let seen = self.seen.fetch_add(1, Ordering::SeqCst);
        if seen >= 4_000 && !self.failed.swap(true, Ordering::SeqCst) {
            output.fail(input);
            return;
        }
        if seen >= 9_000 && !self.crashed.swap(true, Ordering::SeqCst) {
            panic!("a crash the test asked for");
        }
        output.emit_anchored(input, &[Value::Str(input.get_str(0).unwrap())]);
        output.ack(input);
    }
}

/// The committed counts, summed over the `tasks` counting tasks of a topology with two
/// spout tasks.
fn committed_counts(backend: &RedisBackend, topology: &str, tasks: usize) -> HashMap<String, u64> {
    squall_tests::stream_count::committed_counts(backend, topology, 2, tasks).unwrap()
}

fn pending(connection: &mut redis::Connection) -> u64 {
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("events")
        .arg("tally")
        .query(connection)
        .unwrap();
    redis::from_redis_value(&summary[0]).unwrap()
}

#[test]
fn a_word_count_from_a_redis_stream_counts_every_entry_once() {
    let redis = Redis::start(None);
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    append(&mut connection, 0..20_000);

    let backend = RedisBackend::new(&redis.url(), "squall-state").unwrap();
    let mut builder = TopologyBuilder::new();
    builder.checkpointing(Checkpointing {
        interval: Duration::from_millis(100),
        backend: Arc::new(backend.clone()),
    });
    let source = RedisStreamSource {
        url: redis.url(),
        stream: "events".into(),
        group: "tally".into(),
        consumer: String::new(),
        fields: vec!["word".into()],
        batch: 200,
    };
    builder.set_replayable_spout(
        "events",
        move || RedisStreamSpout::new(source.clone()).unwrap(),
        2,
    );
    let (seen, failed, crashed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let chaos_seen = seen.clone();
    builder
        .set_bolt(
            "chaos",
            move || Chaos {
                seen: chaos_seen.clone(),
                failed: failed.clone(),
                crashed: crashed.clone(),
            },
            2,
        )
        .shuffle_grouping("events");
    builder
        .set_stateful_bolt("tally", || Tally, 2)
        .fields_grouping("chaos", &["word"]);
    let config = TopologyConfig {
        max_spout_pending: Some(1_000),
        // Trees lost with the crashed task time out soon.
        message_timeout: Duration::from_secs(3),
        ..TopologyConfig::default()
    };
    let running = squall::run(builder.build("stream-count", config).unwrap()).unwrap();

    // More entries arrive after both faults.
    wait_for_or_explain(
        "the faults to happen",
        Duration::from_secs(60),
        || seen.load(Ordering::SeqCst) > 10_000,
        || format!("; errors: {:?}", running.errors()),
    );
    append(&mut connection, 20_000..25_000);

    let mut want: HashMap<String, u64> = HashMap::new();
    for index in 0..25_000 {
        *want.entry(word(index)).or_default() += 1;
    }
    wait_for_or_explain(
        "the committed counts to be exact",
        Duration::from_secs(90),
        || committed_counts(&backend, "stream-count", 2) == want,
        || {
            let have = committed_counts(&backend, "stream-count", 2);
            format!(
                "; {} committed of {}; errors: {:?}",
                have.values().sum::<u64>(),
                want.values().sum::<u64>(),
                running.errors()
            )
        },
    );
    // Committed entries are acknowledged in the group.
    wait_for_or_explain(
        "every entry to be acknowledged",
        Duration::from_secs(10),
        || pending(&mut connection) == 0,
        String::new,
    );
    assert!(
        seen.load(Ordering::SeqCst) > 25_000,
        "the rollbacks replayed entries"
    );
    let report = running.kill(Duration::from_secs(10));
    assert!(
        report
            .errors
            .iter()
            .any(|error| error.message.contains("a crash the test asked for")),
        "{:?}",
        report.errors
    );
    // Nothing moved after the kill.
    assert_eq!(committed_counts(&backend, "stream-count", 2), want);
}

/// Counts what is acknowledged.
struct Numbers {
    next: u64,
    acked: Arc<AtomicU64>,
}

impl Spout for Numbers {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["word"]);
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        self.next += 1;
        output.emit_with_id(&[Value::Str(&word(self.next))], MessageId(self.next));
    }

    fn ack(&mut self, _message: MessageId, _output: &mut SpoutOutput<'_>) {
        self.acked.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs a stateful topology against `backend` for a while; returns its errors and how many
/// inputs were acknowledged.
fn run_against(backend: RedisBackend) -> (Vec<String>, u64) {
    let acked = Arc::new(AtomicU64::new(0));
    let spout_acked = acked.clone();
    let mut builder = TopologyBuilder::new();
    builder.checkpointing(Checkpointing {
        interval: Duration::from_millis(100),
        backend: Arc::new(backend),
    });
    builder.set_spout(
        "numbers",
        move || Numbers {
            next: 0,
            acked: spout_acked.clone(),
        },
        1,
    );
    builder
        .set_stateful_bolt("tally", || Tally, 1)
        .shuffle_grouping("numbers");
    let running = squall::run(
        builder
            .build("unreachable", TopologyConfig::default())
            .unwrap(),
    )
    .unwrap();
    wait_for_or_explain(
        "the tasks to report",
        Duration::from_secs(30),
        || running.errors().len() >= 2,
        String::new,
    );
    let report = running.kill(Duration::from_secs(5));
    let errors = report
        .errors
        .into_iter()
        .map(|error| error.message)
        .collect();
    (errors, acked.load(Ordering::SeqCst))
}

#[test]
fn a_redis_backend_with_bad_credentials_or_no_server_is_named_and_nothing_is_acked() {
    let redis = Redis::start(Some("the-right-password"));
    let wrong = format!("redis://:the-wrong-password@127.0.0.1:{}", redis.port());
    let (errors, acked) = run_against(RedisBackend::new(&wrong, "s").unwrap());
    assert_eq!(acked, 0);
    assert!(
        errors
            .iter()
            .all(|e| e.contains("Redis at redis://") && !e.contains("the-wrong-password")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.to_lowercase().contains("authentication failed")),
        "{errors:?}"
    );

    let closed = squall_tests::workers::free_port("127.0.0.1");
    let (errors, acked) =
        run_against(RedisBackend::new(&format!("redis://127.0.0.1:{closed}"), "s").unwrap());
    assert_eq!(acked, 0);
    assert!(
        errors.iter().any(|e| e.contains("connecting")),
        "{errors:?}"
    );
}

#[test]
fn a_topology_file_counts_a_redis_stream_exactly_once_in_redis_state() {
    let redis = Redis::start(None);
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    append(&mut connection, 0..8_000);
    let text = format!(
        "name: file-count
checkpoint: {{interval_secs: 0.1, backend: redis, url: '{url}', prefix: file-state}}
config: {{topology.message.timeout.secs: 3}}
spouts:
  - id: events
    builtin: redis_stream
    parallelism: 2
    params: {{url: '{url}', stream: events, group: tally, fields: [word]}}
bolts:
  - id: tally
    builtin: stateful_count
    parallelism: 2
    params: {{field: word}}
streams:
  - {{from: events, to: tally, grouping: {{type: fields, args: [word]}}}}
",
        url = redis.url()
    );
    let file =
        squall::topology_file::TopologyFile::parse(&text, "count.yaml", std::path::Path::new("."))
            .unwrap();
    let topology = file
        .build(&squall::topology_file::Overrides::default())
        .unwrap();
    let running = squall::run(topology).unwrap();
    append(&mut connection, 8_000..10_000);
    let mut want: HashMap<String, u64> = HashMap::new();
    for index in 0..10_000 {
        *want.entry(word(index)).or_default() += 1;
    }
    let backend = RedisBackend::new(&redis.url(), "file-state").unwrap();
    wait_for_or_explain(
        "the committed counts to be exact",
        Duration::from_secs(60),
        || committed_counts(&backend, "file-count", 2) == want,
        || format!("; errors: {:?}", running.errors()),
    );
    running.kill(Duration::from_secs(10));
}

#[test]
fn a_task_store_taken_over_by_a_newer_incarnation_refuses_the_older_ones_writes() {
    let redis = Redis::start(None);
    let backend = RedisBackend::new(&redis.url(), "fenced").unwrap();
    let mut older = backend.task_store("t", "tally", 0).unwrap();
    let mut delta = squall::state::Delta::new(1);
    delta.push(b"word", Some(&1u64.to_le_bytes()));
    older.save(&delta).unwrap();
    // The task starts again elsewhere: its restore takes the store over.
    let mut newer = backend.task_store("t", "tally", 0).unwrap();
    assert_eq!(newer.restore(0).unwrap(), Vec::new());
    let error = older.save(&delta).unwrap_err().to_string();
    assert!(error.contains("newer incarnation"), "{error}");
    newer.save(&delta).unwrap();
    // Reading takes nothing over.
    let mut reader = backend.task_store("t", "tally", 0).unwrap();
    assert_eq!(reader.read(1).unwrap().len(), 1);
    newer.save(&delta).unwrap();
}
