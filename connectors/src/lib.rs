//! Database connectors: bolts that write their inputs to PostgreSQL and Redis, and ack
//! each input only once the write that holds it committed.
//!
//! Every write bolt is a [`BatchWriteBolt`]: inputs become rows on the executor thread, a
//! writer thread commits them in batches (one transaction each), and the executor settles
//! each batch's inputs when its outcome comes back — acked when it committed, failed when
//! the database refused it or its connection could not be restored in the retries allowed.
//! A lost connection therefore never acks an input whose write did not commit.
//!
//! - [`postgres`]: inserts or upserts into a table, with multi-row statements;
//! - [`redis`]: string keys or hash fields, in `MULTI`/`EXEC` transactions;
//! - [`lookup`]: enrichment, joining each input with what PostgreSQL
//!   ([`postgres_lookup`]) or Redis ([`redis_lookup`]) holds under one of its fields,
//!   through a bounded cache and many keys per query;
//! - [`redis_stream`]: a replayable source reading a stream as a consumer group's member,
//!   acknowledging each entry (`XACK`) once its tuple tree completes, or, in a
//!   checkpointed topology, once the checkpoint that holds it commits;
//! - [`redis_state`]: checkpoints of stateful bolts in Redis, for state that outlives a
//!   host.
//!
//! See `docs/connectors.md`.
#![forbid(unsafe_code)]

pub mod lookup;
pub mod postgres;
pub mod postgres_lookup;
mod postgres_session;
pub mod redis;
pub mod redis_lookup;
pub mod redis_state;
pub mod redis_stream;
pub mod store;
pub mod write;

pub use lookup::{LookupBolt, LookupFields, LookupSettings, LookupStore, WhenMissing};
pub use postgres::{PostgresTable, postgres_write_bolt};
pub use postgres_lookup::{PostgresQuery, postgres_lookup_bolt};
pub use redis::{RedisTarget, redis_write_bolt};
pub use redis_lookup::{RedisKeys, redis_lookup_bolt};
pub use redis_state::RedisBackend;
pub use redis_stream::{RedisStreamSource, RedisStreamSpout};
pub use store::{Reconnect, RetryPolicy, StoreError};
pub use write::{BatchSettings, BatchStore, BatchWriteBolt};
