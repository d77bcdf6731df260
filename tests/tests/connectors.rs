//! The database connectors against real servers: PostgreSQL and Redis, started by the
//! project's scripts. A write bolt acks an input only once the transaction holding it
//! committed; the tests compare what the spout saw acked with what the database holds.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall::connectors::{
    BatchSettings, PostgresTable, RedisTarget, RetryPolicy, postgres_write_bolt, redis_write_bolt,
};
use squall::{TopologyBuilder, TopologyConfig};
use squall_tests::databases::{Postgres, Redis};
use squall_tests::tracked::{Numbered, Settled};

/// Runs `numbered → bolt` until every id is settled; returns what was settled and the
/// errors the topology reported.
fn run_until_settled<B: squall::Bolt + 'static>(
    count: u64,
    every: Duration,
    bolt: impl Fn() -> B + Send + Sync + 'static,
    during: impl FnOnce(),
) -> (Settled, Vec<String>) {
    let settled = Arc::new(Mutex::new(Settled::default()));
    let spout_settled = settled.clone();
    let mut builder = TopologyBuilder::new();
    builder.set_spout(
        "numbers",
        move || Numbered::new(count, every, spout_settled.clone()),
        1,
    );
    builder
        .set_bolt("write", bolt, 1)
        .shuffle_grouping("numbers");
    let config = TopologyConfig {
        message_timeout: Duration::from_secs(60),
        ..TopologyConfig::default()
    };
    let running = squall::run(builder.build("connectors", config).unwrap()).unwrap();
    during();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = {
            let settled = settled.lock().unwrap();
            (settled.acked.len() + settled.failed.len()) as u64 == count
        };
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "not every input was settled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = running.kill(Duration::from_secs(5));
    let errors = report
        .errors
        .iter()
        .map(|error| error.to_string())
        .collect();
    let settled = std::mem::take(&mut *settled.lock().unwrap());
    (settled, errors)
}

/// Default batching with `retries` retries 10 ms apart, so giving up is quick.
fn quick_retries(retries: u32) -> BatchSettings {
    BatchSettings {
        retry: RetryPolicy {
            retries,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
        ..BatchSettings::default()
    }
}

fn events_table(postgres: &Postgres) -> postgres::Client {
    let mut client = postgres::Client::connect(&postgres.connection(), postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS events;
             CREATE TABLE events (id bigint PRIMARY KEY, word text NOT NULL)",
        )
        .unwrap();
    client
}

fn stored_ids(client: &mut postgres::Client) -> BTreeSet<u64> {
    client
        .query("SELECT id FROM events", &[])
        .unwrap()
        .iter()
        .map(|row| row.get::<_, i64>(0) as u64)
        .collect()
}

fn events(postgres: &Postgres) -> PostgresTable {
    PostgresTable {
        connection: postgres.connection(),
        table: "events".into(),
        columns: vec![("id".into(), "id".into()), ("word".into(), "word".into())],
        key: vec!["id".into()],
    }
}

/// Ends every session of the write bolts (application name `squall`), as an
/// administrator or a failover would; returns how many were ended.
fn drop_connections(admin: &mut postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'squall'",
            &[],
        )
        .unwrap()
        .get(0)
}

/// Connections are dropped under the bolt while it writes. With no retries the batches
/// caught by a drop fail; with retries they commit on a new connection. Either way the
/// table holds exactly the acknowledged rows.
#[test]
fn postgres_holds_exactly_the_acknowledged_rows_when_connections_drop() {
    let postgres = Postgres::start();
    let mut admin = events_table(&postgres);
    for retries in [0, 5] {
        admin.batch_execute("TRUNCATE events").unwrap();
        let table = events(&postgres);
        let settings = BatchSettings {
            retry: RetryPolicy {
                retries,
                first_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
            },
            ..BatchSettings::default()
        };
        let mut dropper =
            postgres::Client::connect(&postgres.connection(), postgres::NoTls).unwrap();
        let mut dropped = 0;
        let (settled, errors) = run_until_settled(
            3000,
            Duration::from_micros(500),
            move || postgres_write_bolt(table.clone(), settings).unwrap(),
            || {
                for _ in 0..15 {
                    std::thread::sleep(Duration::from_millis(60));
                    dropped += drop_connections(&mut dropper);
                }
            },
        );
        assert!(dropped > 0, "no connection was dropped");
        let stored = stored_ids(&mut admin);
        let unacked_but_stored: Vec<_> = stored.difference(&settled.acked).collect();
        let acked_but_missing: Vec<_> = settled.acked.difference(&stored).collect();
        assert!(
            unacked_but_stored.is_empty() && acked_but_missing.is_empty(),
            "retries {retries}: stored but not acked {unacked_but_stored:?}; acked but not \
             stored {acked_but_missing:?}; errors {errors:?}"
        );
        if retries == 0 {
            assert!(!settled.failed.is_empty(), "no batch was caught by a drop");
            assert!(
                errors.iter().any(|error| error
                    .contains("rows not written to PostgreSQL table events")
                    && error.contains("gave up after 1 attempts")),
                "{errors:?}"
            );
        } else {
            assert!(
                settled.failed.is_empty(),
                "{} failed: {errors:?}",
                settled.failed.len()
            );
            assert_eq!(stored.len(), 3000);
        }
    }
}

/// A row the table refuses fails its batch's inputs with the server's reason, and is not
/// retried; an unreachable server fails the inputs once the retries run out.
#[test]
fn postgres_refusals_and_an_absent_server_fail_the_inputs_with_reasons() {
    let postgres = Postgres::start();
    let mut admin = events_table(&postgres);
    admin
        .batch_execute("ALTER TABLE events ADD CONSTRAINT small CHECK (id < 100)")
        .unwrap();
    let table = events(&postgres);
    let (settled, errors) = run_until_settled(
        200,
        Duration::from_micros(200),
        move || postgres_write_bolt(table.clone(), BatchSettings::default()).unwrap(),
        || {},
    );
    assert_eq!(stored_ids(&mut admin), settled.acked);
    assert!(settled.acked.iter().all(|id| *id < 100));
    assert!(settled.failed.iter().any(|id| *id >= 100));
    assert!(
        errors
            .iter()
            .any(|error| error.contains("violates check constraint \"small\"")),
        "{errors:?}"
    );

    let mut absent = events(&postgres);
    absent.connection = format!(
        "host=127.0.0.1 port={} user=squall password=x dbname=squall",
        squall_tests::workers::free_port("127.0.0.1")
    );
    let settings = quick_retries(1);
    let (settled, errors) = run_until_settled(
        20,
        Duration::ZERO,
        move || postgres_write_bolt(absent.clone(), settings).unwrap(),
        || {},
    );
    assert!(settled.acked.is_empty());
    assert!(
        errors.iter().any(|error| error.contains("connecting")
            && error.contains("gave up after 2 attempts")),
        "{errors:?}"
    );
}

/// Redis stores what it acked; wrong credentials and an unreachable server give clear
/// errors and ack nothing.
#[test]
fn redis_acks_only_what_it_stored_and_names_what_went_wrong() {
    let redis = Redis::start(Some("the-password"));
    let target = RedisTarget::Hash {
        hash: "words".into(),
        field_field: "id".into(),
        value_field: "word".into(),
    };
    let (url, stored_target) = (redis.url(), target.clone());
    let (settled, errors) = run_until_settled(
        500,
        Duration::ZERO,
        move || redis_write_bolt(&url, stored_target.clone(), BatchSettings::default()).unwrap(),
        || {},
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(settled.acked.len(), 500);
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: std::collections::HashMap<u64, String> = redis::cmd("HGETALL")
        .arg("words")
        .query(&mut connection)
        .unwrap();
    assert_eq!(
        stored.keys().copied().collect::<BTreeSet<_>>(),
        settled.acked
    );
    assert_eq!(stored[&98], "word-1");

    let wrong = format!("redis://:wrong@127.0.0.1:{}", redis.port());
    let wrong_target = target.clone();
    let (settled, errors) = run_until_settled(
        10,
        Duration::ZERO,
        move || redis_write_bolt(&wrong, wrong_target.clone(), BatchSettings::default()).unwrap(),
        || {},
    );
    assert!(settled.acked.is_empty());
    assert!(
        errors
            .iter()
            .any(|error| error.contains("Redis refused it") && error.contains("credentials")),
        "{errors:?}"
    );

    let unreachable = format!(
        "redis://127.0.0.1:{}",
        squall_tests::workers::free_port("127.0.0.1")
    );
    let settings = quick_retries(2);
    let (settled, errors) = run_until_settled(
        10,
        Duration::ZERO,
        move || redis_write_bolt(&unreachable, target.clone(), settings).unwrap(),
        || {},
    );
    assert!(settled.acked.is_empty());
    assert!(
        errors.iter().any(|error| error.contains("connecting")
            && error.contains("gave up after 3 attempts")),
        "{errors:?}"
    );
}

/// The word-count example updates PostgreSQL: after a run, the table holds each word of
/// the example's text with its exact count.
#[test]
fn the_word_count_example_keeps_exact_counts_in_postgres() {
    let postgres = Postgres::start();
    let mut admin = postgres::Client::connect(&postgres.connection(), postgres::NoTls).unwrap();
    admin
        .batch_execute("CREATE TABLE word_counts (word text PRIMARY KEY, count bigint NOT NULL)")
        .unwrap();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/word-counts-postgres");
    let text = std::fs::read_to_string(example.join("sentences.txt")).unwrap();
    let mut expected = std::collections::BTreeMap::<String, i64>::new();
    for word in text
        .lines()
        .flat_map(|line| line.split(' '))
        .filter(|word| !word.is_empty())
    {
        *expected.entry(word.to_owned()).or_default() += 1;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_squall-cli"))
        .arg("local")
        .arg(example.join("topology.yaml"))
        .args(["--duration", "4s"])
        .env("SQUALL_POSTGRES", postgres.connection())
        .env_remove("SQUALL_CONF")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stored: std::collections::BTreeMap<String, i64> = admin
        .query("SELECT word, count FROM word_counts", &[])
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(stored, expected);
}

/// Fails a tuple of every seventh entry the first time it comes, acks the rest (recording
/// their words), or holds everything without settling it.
struct FailSomeOnce {
    seen: Arc<Mutex<BTreeSet<String>>>,
    acked: Arc<Mutex<Vec<String>>>,
    hold: bool,
}

impl squall::Bolt for FailSomeOnce {
    fn execute(&mut self, input: &squall::Tuple<'_>, output: &mut squall::BoltOutput<'_>) {
        if self.hold {
            return;
        }
        let word = input.get_str(0).unwrap().to_owned();
        let index: u64 = word[1..].parse().unwrap();
        if index.is_multiple_of(7) && self.seen.lock().unwrap().insert(word.clone()) {
            output.fail(input);
        } else {
            self.acked.lock().unwrap().push(word);
            output.ack(input);
        }
    }
}

/// Runs `stream spout → FailSomeOnce` as consumer `reader` until `until` holds.
fn read_stream(redis: &Redis, hold: bool, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    use squall::connectors::{RedisStreamSource, RedisStreamSpout};
    let source = RedisStreamSource {
        url: redis.url(),
        stream: "events".into(),
        group: "squall".into(),
        consumer: "reader".into(),
        fields: vec!["word".into()],
        batch: 64,
    };
    let (seen, acked) = (
        Arc::new(Mutex::new(BTreeSet::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let mut builder = TopologyBuilder::new();
    builder.set_spout(
        "events",
        move || RedisStreamSpout::new(source.clone()).unwrap(),
        1,
    );
    let bolt_acked = acked.clone();
    builder
        .set_bolt(
            "check",
            move || FailSomeOnce {
                seen: seen.clone(),
                acked: bolt_acked.clone(),
                hold,
            },
            1,
        )
        .shuffle_grouping("events");
    let running = squall::run(builder.build("stream", TopologyConfig::default()).unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !until(&acked.lock().unwrap()) {
        assert!(Instant::now() < deadline, "the stream was not read in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Long enough for the spout to send its last acknowledgements on an empty read.
    std::thread::sleep(Duration::from_millis(200));
    let report = running.kill(Duration::from_secs(5));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    std::mem::take(&mut *acked.lock().unwrap())
}

/// The Redis Streams spout is a replayable source: a failed tuple's entry comes again,
/// every entry is acknowledged in Redis once its tree completes, and entries a consumer was
/// given but never finished are read again when it restarts under the same name.
#[test]
fn a_redis_stream_is_replayed_on_failure_and_after_a_restart() {
    let redis = Redis::start(None);
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let add = |connection: &mut redis::Connection, range: std::ops::Range<u64>| {
        for index in range {
            let _: String = redis::cmd("XADD")
                .arg("events")
                .arg("*")
                .arg("word")
                .arg(format!("w{index}"))
                .query(connection)
                .unwrap();
        }
    };
    let pending = |connection: &mut redis::Connection| -> u64 {
        let summary: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg("events")
            .arg("squall")
            .query(connection)
            .unwrap();
        redis::from_redis_value(&summary[0]).unwrap()
    };
    add(&mut connection, 0..500);
    let acked = read_stream(&redis, false, |acked| acked.len() >= 500);
    let mut words = acked.clone();
    words.sort();
    words.dedup();
    assert_eq!(words.len(), 500, "every entry once");
    assert_eq!(acked.len(), 500, "no entry twice");
    assert_eq!(pending(&mut connection), 0);

    // A consumer is given 100 new entries and stops before settling any.
    add(&mut connection, 500..600);
    let held = read_stream(&redis, true, |_| {
        let mut connection = redis::Client::open(redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        pending(&mut connection) == 100
    });
    assert!(held.is_empty());
    // Restarted under the same name, it reads them again and finishes them.
    let acked = read_stream(&redis, false, |acked| acked.len() >= 100);
    let mut words = acked.clone();
    words.sort();
    let expected: Vec<String> = {
        let mut expected: Vec<String> = (500..600).map(|index| format!("w{index}")).collect();
        expected.sort();
        expected
    };
    assert_eq!(words, expected);
    assert_eq!(pending(&mut connection), 0);
}
