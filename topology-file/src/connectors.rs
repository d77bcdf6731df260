//! The database components a topology file can name: the `redis_stream` spout, the
//! `postgres_write` and `redis_write` bolts, and the `postgres_lookup` and `redis_lookup`
//! bolts (see `docs/connectors.md`).

use std::collections::BTreeMap;

use serde::Deserialize;
use squall_connectors::{
    BatchSettings, LookupFields, LookupSettings, PostgresQuery, PostgresTable, RedisKeys,
    RedisStreamSource, RedisStreamSpout, RedisTarget, RetryPolicy, WhenMissing,
    postgres_lookup_bolt, postgres_write_bolt, redis_lookup_bolt, redis_write_bolt,
};

use crate::registry::{
    BoltFactory, BuiltinArgs, ComponentRegistry, ReplayableSpoutFactory, SpoutFactory,
};

/// Where `postgres_write` finds its connection settings when its params give none.
pub const POSTGRES_ENV: &str = "SQUALL_POSTGRES";

/// Where `redis_write` finds its address when its params give none.
pub const REDIS_ENV: &str = "SQUALL_REDIS";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batching {
    #[serde(default = "max_rows")]
    max_rows: usize,
    #[serde(default = "retries")]
    retries: u32,
}

fn max_rows() -> usize {
    BatchSettings::default().max_rows
}

fn retries() -> u32 {
    RetryPolicy::default().retries
}

impl Batching {
    fn settings(&self) -> BatchSettings {
        BatchSettings {
            max_rows: self.max_rows,
            retry: RetryPolicy {
                retries: self.retries,
                ..RetryPolicy::default()
            },
            ..BatchSettings::default()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresParams {
    #[serde(default)]
    connection: Option<String>,
    table: String,
    /// Input field → column; a list of names writes each field to the column of its name.
    columns: Columns,
    #[serde(default)]
    key: Vec<String>,
    #[serde(flatten)]
    batching: Batching,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Columns {
    Same(Vec<String>),
    Mapped(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisParams {
    #[serde(default)]
    url: Option<String>,
    /// `SET <key_prefix><key> <value>` when absent; `HSET <hash> <key> <value>` when set.
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    key_prefix: String,
    key: String,
    value: String,
    #[serde(flatten)]
    batching: Batching,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisStreamParams {
    #[serde(default)]
    url: Option<String>,
    stream: String,
    group: String,
    #[serde(default)]
    consumer: String,
    fields: Vec<String>,
    #[serde(default = "stream_batch")]
    batch: usize,
}

fn stream_batch() -> usize {
    256
}

/// How a lookup bolt caches and joins, as a topology file says it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lookup {
    /// The input field holding the key.
    key: String,
    /// Input fields emitted ahead of the found values.
    #[serde(default)]
    carry: Vec<String>,
    #[serde(default = "cache_entries")]
    cache_entries: usize,
    /// Seconds; 0 keeps answers until evicted.
    #[serde(default = "cache_ttl_secs")]
    cache_ttl_secs: u64,
    /// `skip` (inner join) or `nulls` (left join).
    #[serde(default)]
    when_missing: Missing,
    #[serde(default = "max_keys")]
    max_keys: usize,
    #[serde(default = "retries")]
    retries: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Missing {
    #[default]
    Skip,
    Nulls,
}

fn cache_entries() -> usize {
    LookupSettings::default().cache_entries
}

fn cache_ttl_secs() -> u64 {
    LookupSettings::default()
        .cache_ttl
        .map_or(0, |ttl| ttl.as_secs())
}

fn max_keys() -> usize {
    LookupSettings::default().max_keys
}

impl Lookup {
    fn fields(&self) -> LookupFields {
        LookupFields {
            key: self.key.clone(),
            carried: self.carry.clone(),
        }
    }

    fn settings(&self) -> LookupSettings {
        LookupSettings {
            max_keys: self.max_keys,
            cache_entries: self.cache_entries,
            cache_ttl: (self.cache_ttl_secs > 0)
                .then(|| std::time::Duration::from_secs(self.cache_ttl_secs)),
            when_missing: match self.when_missing {
                Missing::Skip => WhenMissing::Skip,
                Missing::Nulls => WhenMissing::EmitNulls,
            },
            retry: RetryPolicy {
                retries: self.retries,
                ..RetryPolicy::default()
            },
            ..LookupSettings::default()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresLookupParams {
    #[serde(default)]
    connection: Option<String>,
    table: String,
    key_column: String,
    columns: Vec<String>,
    #[serde(flatten)]
    lookup: Lookup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisLookupParams {
    #[serde(default)]
    url: Option<String>,
    /// `GET <key_prefix><key>` when absent; `HGET <hash> <key>` when set.
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    key_prefix: String,
    /// The name of the emitted field holding what Redis holds.
    value: String,
    #[serde(flatten)]
    lookup: Lookup,
}

/// `given`, or else the environment variable `variable`, or an error naming both.
fn setting(
    args: &BuiltinArgs<'_>,
    given: Option<String>,
    what: &str,
    variable: &str,
) -> Result<String, String> {
    given
        .or_else(|| std::env::var(variable).ok().filter(|value| !value.is_empty()))
        .ok_or_else(|| {
            format!(
                "component {:?} has no {what}: set params.{what} or the environment variable {variable}",
                args.component
            )
        })
}

/// The stream source a `redis_stream` spout's params describe, checked.
fn redis_stream_source(args: &BuiltinArgs<'_>) -> Result<RedisStreamSource, String> {
    let params: RedisStreamParams = args.params()?;
    let url = setting(args, params.url, "url", REDIS_ENV)?;
    let source = RedisStreamSource {
        url,
        stream: params.stream,
        group: params.group,
        consumer: params.consumer,
        fields: params.fields,
        batch: params.batch,
    };
    RedisStreamSpout::new(source.clone())
        .map_err(|error| format!("component {:?}: {error}", args.component))?;
    Ok(source)
}

/// Adds the database components to `registry`.
pub fn register_connectors(registry: &mut ComponentRegistry) {
    registry.add_spout(
        "redis_stream",
        "the entries of a Redis stream, read as a member of a consumer group ([fields..., \
         entry_id]); each is acknowledged with XACK when its tuple tree completes and emitted \
         again when it fails",
        |args| {
            let source = redis_stream_source(args)?;
            let factory: SpoutFactory = std::sync::Arc::new(move || {
                Box::new(RedisStreamSpout::new(source.clone()).expect("the address was checked"))
            });
            Ok(factory)
        },
    );
    registry.add_replayable_spout(
        "redis_stream",
        "the entries of a Redis stream, as a replayable source of a checkpointed topology:          entries are acknowledged with XACK once a checkpoint after them commits, and read          again from the last committed position after a failure",
        |args| {
            let source = redis_stream_source(args)?;
            let factory: ReplayableSpoutFactory = std::sync::Arc::new(move || {
                Box::new(RedisStreamSpout::new(source.clone()).expect("the address was checked"))
            });
            Ok(factory)
        },
    );
    registry.add_bolt(
        "postgres_write",
        "inserts (or, with `key`, upserts) each tuple's fields as a row of a PostgreSQL table, \
         in batched transactions; acks each tuple once its transaction committed",
        |args| {
            let params: PostgresParams = args.params()?;
            let connection = setting(args, params.connection, "connection", POSTGRES_ENV)?;
            let columns = match params.columns {
                Columns::Same(names) => {
                    names.into_iter().map(|name| (name.clone(), name)).collect()
                }
                Columns::Mapped(map) => map.into_iter().collect(),
            };
            let table = PostgresTable {
                connection,
                table: params.table,
                columns,
                key: params.key,
            };
            table
                .check()
                .map_err(|error| format!("component {:?}: {error}", args.component))?;
            let settings = params.batching.settings();
            let factory: BoltFactory = std::sync::Arc::new(move || {
                Box::new(
                    postgres_write_bolt(table.clone(), settings).expect("the table was checked"),
                )
            });
            Ok(factory)
        },
    );
    registry.add_bolt(
        "redis_write",
        "stores each tuple in Redis as `SET <key_prefix><key> <value>`, or with `hash` as \
         `HSET <hash> <key> <value>`, in MULTI/EXEC batches; acks each tuple once stored",
        |args| {
            let params: RedisParams = args.params()?;
            let url = setting(args, params.url, "url", REDIS_ENV)?;
            let target = match params.hash {
                Some(hash) => RedisTarget::Hash {
                    hash,
                    field_field: params.key,
                    value_field: params.value,
                },
                None => RedisTarget::Strings {
                    key_prefix: params.key_prefix,
                    key_field: params.key,
                    value_field: params.value,
                },
            };
            let settings = params.batching.settings();
            // Checks the address now, so a bad one is named before the topology starts.
            redis_write_bolt(&url, target.clone(), settings)
                .map_err(|error| format!("component {:?}: {error}", args.component))?;
            let factory: BoltFactory = std::sync::Arc::new(move || {
                Box::new(
                    redis_write_bolt(&url, target.clone(), settings)
                        .expect("the address was checked"),
                )
            });
            Ok(factory)
        },
    );
    register_lookups(registry);
}

/// Adds the lookup bolts to `registry`.
fn register_lookups(registry: &mut ComponentRegistry) {
    registry.add_bolt(
        "postgres_lookup",
        "emits each tuple's `carry` fields with the `columns` of every row of a PostgreSQL \
         table whose `key_column` equals its `key` field, through a bounded cache, many keys \
         per query",
        |args| {
            let params: PostgresLookupParams = args.params()?;
            let connection = setting(args, params.connection, "connection", POSTGRES_ENV)?;
            let query = PostgresQuery {
                connection,
                table: params.table,
                key_column: params.key_column,
                columns: params.columns,
            };
            query
                .check()
                .map_err(|error| format!("component {:?}: {error}", args.component))?;
            let (fields, settings) = (params.lookup.fields(), params.lookup.settings());
            let factory: BoltFactory = std::sync::Arc::new(move || {
                Box::new(
                    postgres_lookup_bolt(query.clone(), fields.clone(), settings)
                        .expect("the query was checked"),
                )
            });
            Ok(factory)
        },
    );
    registry.add_bolt(
        "redis_lookup",
        "emits each tuple's `carry` fields with what Redis holds under its `key` field \
         (`GET <key_prefix><key>`, or with `hash` `HGET <hash> <key>`) as the field `value`, \
         through a bounded cache, many keys per command",
        |args| {
            let params: RedisLookupParams = args.params()?;
            let url = setting(args, params.url, "url", REDIS_ENV)?;
            let keys = match params.hash {
                Some(hash) => RedisKeys::Hash { hash },
                None => RedisKeys::Strings {
                    key_prefix: params.key_prefix,
                },
            };
            let (fields, settings) = (params.lookup.fields(), params.lookup.settings());
            let value = params.value;
            redis_lookup_bolt(&url, keys.clone(), &value, fields.clone(), settings)
                .map_err(|error| format!("component {:?}: {error}", args.component))?;
            let factory: BoltFactory = std::sync::Arc::new(move || {
                Box::new(
                    redis_lookup_bolt(&url, keys.clone(), &value, fields.clone(), settings)
                        .expect("the address was checked"),
                )
            });
            Ok(factory)
        },
    );
}

#[cfg(test)]
mod tests {
    use crate::registry::ComponentRegistry;
    use crate::{Overrides, TopologyFile};

    fn build(bolt: &str) -> Result<(), String> {
        let text = format!(
            "name: db\n\
             spouts:\n  - {{id: words, builtin: lines, params: {{file: words.txt, field: word}}}}\n\
             bolts:\n  - {{id: counts, builtin: field_count, params: {{field: word}}}}\n  - {bolt}\n\
             streams:\n  - {{from: words, to: counts, grouping: {{type: fields, args: [word]}}}}\n  \
             - {{from: counts, to: store, grouping: shuffle}}\n"
        );
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        std::fs::write(dir.path().join("words.txt"), "a\nb\n")
            .map_err(|error| error.to_string())?;
        let file =
            TopologyFile::parse(&text, "db.yaml", dir.path()).map_err(|error| error.to_string())?;
        file.build_with(&Overrides::default(), &ComponentRegistry::with_builtins())
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_redis_stream_spout_builds_from_a_file() {
        let text = "name: s\n\
             spouts:\n  - {id: events, builtin: redis_stream, params: {url: 'redis://127.0.0.1:6379', \
             stream: events, group: squall, fields: [word]}}\n\
             bolts:\n  - {id: sink, builtin: 'null'}\n\
             streams:\n  - {from: events, to: sink, grouping: shuffle}\n";
        let file = TopologyFile::parse(text, "s.yaml", std::path::Path::new(".")).unwrap();
        file.build_with(&Overrides::default(), &ComponentRegistry::with_builtins())
            .unwrap();
        let bad = text.replace("redis://", "nope://");
        let file = TopologyFile::parse(&bad, "s.yaml", std::path::Path::new(".")).unwrap();
        let error = file
            .build_with(&Overrides::default(), &ComponentRegistry::with_builtins())
            .unwrap_err()
            .to_string();
        assert!(error.contains("the Redis address"), "{error}");
    }

    #[test]
    fn database_bolts_build_from_a_file_and_bad_params_are_named() {
        build(
            "{id: store, builtin: postgres_write, params: {connection: 'host=127.0.0.1 user=squall', \
             table: word_counts, columns: {key: word, count: count}, key: [word], max_rows: 500}}",
        )
        .unwrap();
        build(
            "{id: store, builtin: redis_write, params: {url: 'redis://127.0.0.1:6379', hash: counts, \
             key: key, value: count}}",
        )
        .unwrap();
        let error = build(
            "{id: store, builtin: postgres_write, params: {connection: 'host=127.0.0.1', \
             table: 'word counts', columns: [key]}}",
        )
        .unwrap_err();
        assert!(
            error.contains("table \"word counts\" is not a plain identifier"),
            "{error}"
        );
        let error = build(
            "{id: store, builtin: redis_write, params: {url: 'http://x', key: key, value: count}}",
        )
        .unwrap_err();
        assert!(
            error.contains("the Redis address \"http://x\" is invalid"),
            "{error}"
        );
    }

    #[test]
    fn lookup_bolts_build_from_a_file_and_bad_params_are_named() {
        build(
            "{id: store, builtin: postgres_lookup, params: {connection: 'host=127.0.0.1', \
             table: words, key_column: word, columns: [language], key: key, carry: [key, count], \
             cache_entries: 100, cache_ttl_secs: 0, when_missing: nulls}}",
        )
        .unwrap();
        build(
            "{id: store, builtin: redis_lookup, params: {url: 'redis://127.0.0.1:6379', \
             key_prefix: 'lang:', key: key, value: language, carry: [key]}}",
        )
        .unwrap();
        let error = build(
            "{id: store, builtin: postgres_lookup, params: {connection: 'host=127.0.0.1', \
             table: words, key_column: 'word;', columns: [language], key: key}}",
        )
        .unwrap_err();
        assert!(
            error.contains("column \"word;\" is not a plain identifier"),
            "{error}"
        );
        let error = build(
            "{id: store, builtin: redis_lookup, params: {url: 'redis://127.0.0.1:6379', \
             key: key, value: language, cache_entires: 5}}",
        )
        .unwrap_err();
        assert!(error.contains("cache_entires"), "{error}");
        let error = build(
            "{id: store, builtin: redis_lookup, params: {url: 'redis://127.0.0.1:6379', \
             key: key, value: language, when_missing: maybe}}",
        )
        .unwrap_err();
        assert!(error.contains("maybe"), "{error}");
    }
}
