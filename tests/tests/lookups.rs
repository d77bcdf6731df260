//! The lookup bolts against real servers: PostgreSQL and Redis, started by the project's
//! scripts. Each input is emitted joined with what the database holds under its key, is
//! acked once it was, and fails with the reason when the database cannot answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall::connectors::{
    LookupFields, LookupSettings, PostgresQuery, RedisKeys, RetryPolicy, WhenMissing,
    postgres_lookup_bolt, redis_lookup_bolt,
};
use squall::{Bolt, BoltOutput, OwnedValue, TopologyBuilder, TopologyConfig, Tuple};
use squall_tests::databases::{Postgres, Redis};
use squall_tests::tracked::{Numbered, Settled, WORDS};

/// Records every joined tuple it receives, keyed by the input's id.
struct Collect {
    joined: Arc<Mutex<BTreeMap<u64, Vec<Vec<OwnedValue>>>>>,
}

impl Bolt for Collect {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let values: Vec<OwnedValue> = input
            .fields()
            .map(|field| field.unwrap().to_owned_value())
            .collect();
        let OwnedValue::U64(id) = values[0] else {
            panic!("the id comes first: {values:?}");
        };
        self.joined
            .lock()
            .unwrap()
            .entry(id)
            .or_default()
            .push(values[1..].to_vec());
        output.ack(input);
    }
}

/// What a run settled, emitted and reported.
struct Outcome {
    settled: Settled,
    joined: BTreeMap<u64, Vec<Vec<OwnedValue>>>,
    errors: Vec<String>,
}

/// Runs `numbered → lookup → collect` until every id is settled, calling `during` once
/// the topology runs.
fn run_lookup<B: Bolt + 'static>(
    count: u64,
    every: Duration,
    lookup: impl Fn() -> B + Send + Sync + 'static,
    during: impl FnOnce(),
) -> Outcome {
    let settled = Arc::new(Mutex::new(Settled::default()));
    let joined = Arc::new(Mutex::new(BTreeMap::new()));
    let (spout_settled, collected) = (settled.clone(), joined.clone());
    let mut builder = TopologyBuilder::new();
    builder.set_spout(
        "numbers",
        move || Numbered::new(count, every, spout_settled.clone()),
        1,
    );
    builder
        .set_bolt("lookup", lookup, 1)
        .shuffle_grouping("numbers");
    builder
        .set_bolt(
            "collect",
            move || Collect {
                joined: collected.clone(),
            },
            1,
        )
        .shuffle_grouping("lookup");
    let config = TopologyConfig {
        message_timeout: Duration::from_secs(60),
        ..TopologyConfig::default()
    };
    let running = squall::run(builder.build("lookups", config).unwrap()).unwrap();
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
    Outcome {
        settled: std::mem::take(&mut *settled.lock().unwrap()),
        joined: std::mem::take(&mut *joined.lock().unwrap()),
        errors: report.errors.iter().map(ToString::to_string).collect(),
    }
}

fn quick(retries: u32) -> RetryPolicy {
    RetryPolicy {
        retries,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }
}

/// The language of `word-n` in the reference data: even words have two rows, words past
/// 60 none.
fn languages(n: u64) -> Vec<(String, i64)> {
    match n {
        61.. => Vec::new(),
        _ if n.is_multiple_of(2) => vec![("en".to_owned(), n as i64), ("fr".to_owned(), n as i64)],
        _ => vec![("de".to_owned(), n as i64)],
    }
}

fn word_table(postgres: &Postgres) -> postgres::Client {
    let mut client = postgres::Client::connect(&postgres.connection(), postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS words;
             CREATE TABLE words (word text NOT NULL, language text NOT NULL, rank int NOT NULL);
             CREATE INDEX ON words (word);",
        )
        .unwrap();
    for n in 0..WORDS {
        for (language, rank) in languages(n) {
            client
                .execute(
                    "INSERT INTO words VALUES ($1, $2, $3)",
                    &[&format!("word-{n}"), &language, &(rank as i32)],
                )
                .unwrap();
        }
    }
    client
}

/// Every input is emitted once per matching row (none for unknown words with `Skip`, one
/// with nulls with `EmitNulls`), carrying its id and word, and every input is acked. A
/// connection dropped under the bolt is made again and nothing fails.
#[test]
fn postgres_lookups_join_each_input_with_its_rows() {
    let postgres = Postgres::start();
    let mut admin = word_table(&postgres);
    let query = PostgresQuery {
        connection: postgres.connection(),
        table: "words".into(),
        key_column: "word".into(),
        columns: vec!["language".into(), "rank".into()],
    };
    let fields = LookupFields {
        key: "word".into(),
        carried: vec!["id".into(), "word".into()],
    };
    let expected = |id: u64, missing: WhenMissing| -> Option<Vec<Vec<OwnedValue>>> {
        let word = OwnedValue::Str(format!("word-{}", id % WORDS));
        let rows = languages(id % WORDS);
        if rows.is_empty() {
            return (missing == WhenMissing::EmitNulls)
                .then(|| vec![vec![word, OwnedValue::Null, OwnedValue::Null]]);
        }
        Some(
            rows.into_iter()
                .map(|(language, rank)| {
                    vec![
                        word.clone(),
                        OwnedValue::Str(language),
                        OwnedValue::I64(rank),
                    ]
                })
                .collect(),
        )
    };

    for missing in [WhenMissing::Skip, WhenMissing::EmitNulls] {
        let settings = LookupSettings {
            when_missing: missing,
            cache_entries: 50,
            retry: quick(20),
            ..LookupSettings::default()
        };
        let (query, fields) = (query.clone(), fields.clone());
        let mut ended = 0;
        let outcome = run_lookup(
            3000,
            Duration::from_micros(100),
            move || postgres_lookup_bolt(query.clone(), fields.clone(), settings).unwrap(),
            || {
                // Sessions end under the lookups; each is made again.
                for _ in 0..4 {
                    std::thread::sleep(Duration::from_millis(40));
                    let count: i64 = admin
                        .query_one(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                             WHERE application_name = 'squall'",
                            &[],
                        )
                        .unwrap()
                        .get(0);
                    ended += count;
                }
            },
        );
        assert!(ended >= 2, "{ended} sessions ended");
        assert!(outcome.settled.failed.is_empty(), "{:?}", outcome.errors);
        assert_eq!(outcome.settled.acked.len(), 3000);
        let mut want = BTreeMap::new();
        for id in 0..3000 {
            if let Some(rows) = expected(id, missing) {
                want.insert(id, rows);
            }
        }
        let mut got = outcome.joined;
        for rows in got.values_mut() {
            rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        }
        assert_eq!(got, want, "{missing:?}");
    }
}

/// A bad query, a wrong password and an absent server fail the inputs with the reason, and
/// emit nothing.
#[test]
fn postgres_lookups_that_cannot_be_answered_fail_with_the_reason() {
    let postgres = Postgres::start();
    word_table(&postgres);
    let fields = LookupFields {
        key: "word".into(),
        carried: vec!["id".into()],
    };
    let settings = LookupSettings {
        retry: quick(2),
        ..LookupSettings::default()
    };
    let cases = [
        (
            postgres.connection(),
            "no_such_table",
            "relation \"no_such_table\" does not exist",
        ),
        (
            format!(
                "host=127.0.0.1 port={} user=nobody dbname=nothing connect_timeout=2",
                postgres.port()
            ),
            "words",
            "connecting",
        ),
        (
            format!(
                "host=127.0.0.1 port={} connect_timeout=2",
                squall_tests::workers::free_port("127.0.0.1")
            ),
            "words",
            "gave up after 3 attempts",
        ),
    ];
    for (connection, table, reason) in cases {
        let query = PostgresQuery {
            connection,
            table: table.into(),
            key_column: "word".into(),
            columns: vec!["language".into()],
        };
        let fields = fields.clone();
        let outcome = run_lookup(
            20,
            Duration::ZERO,
            move || postgres_lookup_bolt(query.clone(), fields.clone(), settings).unwrap(),
            || {},
        );
        assert!(outcome.settled.acked.is_empty(), "{table}");
        assert!(outcome.joined.is_empty(), "{table}");
        assert!(
            outcome.errors.iter().any(|error| error.contains(reason)),
            "{reason}: {:?}",
            outcome.errors
        );
    }
}

/// The number of commands `command` Redis has run.
fn command_calls(connection: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(connection)
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

/// Redis lookups join each input with its value, ask Redis far fewer times than there are
/// inputs thanks to the cache, and name wrong credentials and an absent server.
#[test]
fn redis_lookups_join_through_the_cache_and_name_what_went_wrong() {
    let redis = Redis::start(Some("the-password"));
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    for n in 0..60 {
        let _: () = redis::cmd("HSET")
            .arg("languages")
            .arg(format!("word-{n}"))
            .arg(format!("language-{n}"))
            .query(&mut connection)
            .unwrap();
    }
    let fields = LookupFields {
        key: "word".into(),
        carried: vec!["id".into()],
    };
    let settings = LookupSettings {
        when_missing: WhenMissing::EmitNulls,
        retry: quick(2),
        ..LookupSettings::default()
    };
    let keys = RedisKeys::Hash {
        hash: "languages".into(),
    };
    let before = command_calls(&mut connection, "hmget");
    let (url, stored_keys, stored_fields) = (redis.url(), keys.clone(), fields.clone());
    let outcome = run_lookup(
        5000,
        Duration::ZERO,
        move || {
            redis_lookup_bolt(
                &url,
                stored_keys.clone(),
                "language",
                stored_fields.clone(),
                settings,
            )
            .unwrap()
        },
        || {},
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.settled.acked.len(), 5000);
    for (id, rows) in &outcome.joined {
        let n = id % WORDS;
        let language = if n < 60 {
            OwnedValue::Str(format!("language-{n}"))
        } else {
            OwnedValue::Null
        };
        assert_eq!(rows, &vec![vec![language]], "{id}");
    }
    assert_eq!(outcome.joined.len(), 5000);
    let asked = command_calls(&mut connection, "hmget") - before;
    assert!(
        (1..=500).contains(&asked),
        "{asked} lookups for 5000 inputs of 97 keys"
    );

    let wrong = format!("redis://:wrong@127.0.0.1:{}", redis.port());
    let (wrong_keys, wrong_fields) = (keys.clone(), fields.clone());
    let outcome = run_lookup(
        10,
        Duration::ZERO,
        move || {
            redis_lookup_bolt(
                &wrong,
                wrong_keys.clone(),
                "language",
                wrong_fields.clone(),
                settings,
            )
            .unwrap()
        },
        || {},
    );
    assert!(outcome.settled.acked.is_empty());
    assert!(
        outcome
            .errors
            .iter()
            .any(|error| error.contains("Redis refused it") && error.contains("credentials")),
        "{:?}",
        outcome.errors
    );

    let unreachable = format!(
        "redis://127.0.0.1:{}",
        squall_tests::workers::free_port("127.0.0.1")
    );
    let outcome = run_lookup(
        10,
        Duration::ZERO,
        move || {
            redis_lookup_bolt(
                &unreachable,
                keys.clone(),
                "language",
                fields.clone(),
                settings,
            )
            .unwrap()
        },
        || {},
    );
    assert!(outcome.settled.acked.is_empty());
    assert!(
        outcome
            .errors
            .iter()
            .any(|error| error.contains("connecting") && error.contains("gave up after 3 attempts")),
        "{:?}",
        outcome.errors
    );
}
