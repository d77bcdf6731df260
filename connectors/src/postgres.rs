//! The PostgreSQL write bolt: inserts, or upserts, its inputs' fields as rows of a table,
//! each batch in one transaction, with multi-row statements.

use std::collections::HashMap;
use std::str::FromStr;

use postgres::Statement;
use postgres::types::{ToSql, Type};
use squall_core::OwnedValue;
use squall_core::runtime::Tuple;

use crate::postgres_session::Session;
use crate::store::{Reconnect, StoreError};
use crate::write::{BatchSettings, BatchStore, BatchWriteBolt};

/// Rows in one statement at most: more statements of one size are prepared once and reused.
const STATEMENT_ROWS: usize = 256;

/// A parameter as the client library takes it.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Where a bolt's rows go: a table, which input fields fill which columns, and how a row
/// whose key is already there is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTable {
    /// libpq connection settings, as a `key=value` string or a `postgresql://` URL.
    pub connection: String,
    /// The table, optionally with its schema (`schema.table`).
    pub table: String,
    /// `(input field, column)` pairs, in column order.
    pub columns: Vec<(String, String)>,
    /// The columns of a unique key: a row whose key exists updates the other columns
    /// (an upsert, so a replayed input writes the same row again). Empty: plain inserts.
    pub key: Vec<String>,
}

/// Why a table's settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostgresSettingsError {
    /// The connection settings do not parse.
    #[error("the PostgreSQL connection settings are invalid: {0}")]
    Connection(String),
    /// A table or column name is not a plain identifier.
    #[error(
        "{what} {name:?} is not a plain identifier (letters, digits and _, not starting with a digit)"
    )]
    Identifier {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// No columns are written.
    #[error("no columns are written: name at least one field and its column")]
    NoColumns,
    /// A key column is not written.
    #[error("key column {0:?} is not among the written columns")]
    KeyNotWritten(String),
}

pub(crate) fn check_identifier(
    what: &'static str,
    name: &str,
) -> Result<(), PostgresSettingsError> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if plain {
        Ok(())
    } else {
        Err(PostgresSettingsError::Identifier {
            what,
            name: name.to_owned(),
        })
    }
}

/// `name` quoted for SQL; `schema.table` quoted part by part.
/// Checks a table name, `table` or `schema.table`.
pub(crate) fn check_table(table: &str) -> Result<(), PostgresSettingsError> {
    let refused = || PostgresSettingsError::Identifier {
        what: "table",
        name: table.to_owned(),
    };
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 {
        return Err(refused());
    }
    for part in parts {
        check_identifier("table", part).map_err(|_| refused())?;
    }
    Ok(())
}

pub(crate) fn quoted(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

impl PostgresTable {
    /// Checks the names and the connection settings.
    ///
    /// # Errors
    /// As [`PostgresSettingsError`].
    pub fn check(&self) -> Result<postgres::Config, PostgresSettingsError> {
        check_table(&self.table)?;
        if self.columns.is_empty() {
            return Err(PostgresSettingsError::NoColumns);
        }
        for (_, column) in &self.columns {
            check_identifier("column", column)?;
        }
        for key in &self.key {
            if !self.columns.iter().any(|(_, column)| column == key) {
                return Err(PostgresSettingsError::KeyNotWritten(key.clone()));
            }
        }
        postgres::Config::from_str(&self.connection)
            .map_err(|error| PostgresSettingsError::Connection(error.to_string()))
    }

    /// The statement writing `rows` rows.
    fn statement_text(&self, rows: usize) -> String {
        let width = self.columns.len();
        let columns: Vec<String> = self.columns.iter().map(|(_, c)| quoted(c)).collect();
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let params: Vec<String> = (1..=width)
                    .map(|column| format!("${}", row * width + column))
                    .collect();
                format!("({})", params.join(","))
            })
            .collect();
        let mut text = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quoted(&self.table),
            columns.join(","),
            values.join(",")
        );
        if !self.key.is_empty() {
            let keys: Vec<String> = self.key.iter().map(|key| quoted(key)).collect();
            let updates: Vec<String> = self
                .columns
                .iter()
                .filter(|(_, column)| !self.key.contains(column))
                .map(|(_, column)| format!("{0} = EXCLUDED.{0}", quoted(column)))
                .collect();
            if updates.is_empty() {
                text.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(",")));
            } else {
                text.push_str(&format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    keys.join(","),
                    updates.join(", ")
                ));
            }
        }
        text
    }

    /// Positions of the key columns in a row.
    fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|key| self.columns.iter().position(|(_, column)| column == key))
            .collect()
    }
}

/// A [`BatchWriteBolt`] writing to PostgreSQL.
pub type PostgresWriteBolt = BatchWriteBolt<PostgresStore>;

/// A bolt writing each input's fields to `table`, in batches as `settings` says.
///
/// # Errors
/// When the table's settings are unusable.
pub fn postgres_write_bolt(
    table: PostgresTable,
    settings: BatchSettings,
) -> Result<PostgresWriteBolt, PostgresSettingsError> {
    let store = PostgresStore::new(table.clone())?;
    let fields: Vec<String> = table
        .columns
        .iter()
        .map(|(field, _)| field.clone())
        .collect();
    let map_row = Box::new(move |input: &Tuple<'_>| row_of(input, &fields));
    Ok(BatchWriteBolt::new(store, map_row, settings))
}

/// The values of `fields` of `input`.
fn row_of(input: &Tuple<'_>, fields: &[String]) -> Result<Vec<OwnedValue>, String> {
    fields
        .iter()
        .map(|field| {
            input
                .get_by_name(field)
                .map(|value| value.to_owned_value())
                .map_err(|error| format!("field {field:?}: {error}"))
        })
        .collect()
}

/// The connection and prepared statements of one write bolt's writer.
#[derive(Debug)]
pub struct PostgresStore {
    table: PostgresTable,
    session: Session,
}

impl PostgresStore {
    /// A store for `table`; it connects at its first write.
    ///
    /// # Errors
    /// When the table's settings are unusable.
    pub fn new(table: PostgresTable) -> Result<Self, PostgresSettingsError> {
        let session = Session::new(table.check()?, &table.table);
        Ok(Self { table, session })
    }

    /// The statement for `rows` rows, prepared on this connection once.
    fn statement(&mut self, rows: usize) -> Result<Statement, StoreError> {
        let table = &self.table;
        self.session.statement(
            rows,
            |rows| table.statement_text(rows),
            "preparing the insert",
        )
    }

    /// Whether transaction `xid`, whose commit reply was lost with the connection, did
    /// commit: asked on a new connection, so an input is neither acked for a transaction
    /// that rolled back nor failed for one that committed.
    fn commit_outcome(&mut self, xid: i64, reason: String) -> Result<(), StoreError> {
        let client = self.session.reconnect().map_err(|error| {
            StoreError::Connection(format!(
                "{reason}; whether it committed is unknown: {}",
                classify(&error, "reconnecting")
            ))
        })?;
        let status: Option<String> = client
            .query_one("SELECT txid_status($1)", &[&xid])
            .map_err(|error| classify(&error, "asking whether the commit happened"))?
            .get(0);
        match status.as_deref() {
            Some("committed") => Ok(()),
            _ => Err(StoreError::Connection(reason)),
        }
    }

    /// For upserts, the last row of each key: one statement may not update a row twice,
    /// and a later input of a key supersedes an earlier one.
    fn last_of_each_key<'r>(&self, rows: &'r [Vec<OwnedValue>]) -> Vec<&'r Vec<OwnedValue>> {
        if self.table.key.is_empty() {
            return rows.iter().collect();
        }
        let positions = self.table.key_positions();
        let mut last: HashMap<String, usize> = HashMap::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let key: Vec<&OwnedValue> = positions.iter().map(|&at| &row[at]).collect();
            last.insert(format!("{key:?}"), index);
        }
        let mut kept: Vec<usize> = last.into_values().collect();
        kept.sort_unstable();
        kept.into_iter().map(|index| &rows[index]).collect()
    }
}

impl Reconnect for PostgresStore {
    fn describe(&self) -> String {
        self.session.description().to_owned()
    }

    fn disconnect(&mut self) {
        self.session.disconnect();
    }
}

impl BatchStore for PostgresStore {
    type Row = Vec<OwnedValue>;

    fn write(&mut self, rows: &[Vec<OwnedValue>]) -> Result<(), StoreError> {
        self.session.client()?;
        let rows = self.last_of_each_key(rows);
        let width = self.table.columns.len();
        let chunk_rows = STATEMENT_ROWS.min(u16::MAX as usize / width).max(1);
        let mut chunks = Vec::new();
        for chunk in rows.chunks(chunk_rows) {
            let statement = self.statement(chunk.len())?;
            let mut params: Vec<Param> = Vec::with_capacity(chunk.len() * width);
            for (row, types) in chunk.iter().zip(statement.params().chunks(width)) {
                for ((value, ty), (field, column)) in row.iter().zip(types).zip(&self.table.columns)
                {
                    params.push(to_param(value, ty).map_err(|reason| {
                        StoreError::Rejected(format!(
                            "field {field:?} cannot fill column {column:?}: {reason}"
                        ))
                    })?);
                }
            }
            chunks.push((statement, params));
        }
        let client = self.session.client()?;
        let mut transaction = client
            .transaction()
            .map_err(|error| classify(&error, "beginning a transaction"))?;
        // The transaction's id, to learn after a lost commit reply whether it committed.
        let xid: i64 = transaction
            .query_one("SELECT txid_current()", &[])
            .map_err(|error| classify(&error, "beginning a transaction"))?
            .get(0);
        for (statement, params) in &chunks {
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|param| &**param as &(dyn ToSql + Sync))
                .collect();
            transaction
                .execute(statement, &refs)
                .map_err(|error| classify(&error, "writing rows"))?;
        }
        match transaction.commit() {
            Ok(()) => Ok(()),
            Err(error) => match classify(&error, "committing") {
                StoreError::Connection(reason) => self.commit_outcome(xid, reason),
                refused => Err(refused),
            },
        }
    }
}

/// `config` with squall's defaults (application name, a connect timeout), and the
/// servers it names, for errors and logs.
pub(crate) fn prepared_config(mut config: postgres::Config) -> (postgres::Config, String) {
    if config.get_application_name().is_none() {
        config.application_name("squall");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "the default host".to_owned()
    } else {
        hosts.join(",")
    };
    (config, hosts)
}

/// A connection failure, or a server that stopped or ended the session, may write on a
/// new connection; serialization failures and deadlocks may succeed when tried again.
/// Everything else the server said is a refusal.
pub(crate) fn classify(error: &postgres::Error, doing: &str) -> StoreError {
    match error.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let message = format!("{doing}: {} (SQLSTATE {code})", db.message());
            let retryable = code.starts_with("08")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01";
            if retryable {
                StoreError::Connection(message)
            } else {
                StoreError::Rejected(message)
            }
        }
        None => {
            let mut message = format!("{doing}: {error}");
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            StoreError::Connection(message)
        }
    }
}

/// `value` as a parameter of type `ty`.
pub(crate) fn to_param(value: &OwnedValue, ty: &Type) -> Result<Param, String> {
    let mismatch = || {
        format!(
            "a {:?} value does not fit a {ty} column",
            value.value_type()
        )
    };
    let integer = |value: &OwnedValue| -> Option<i64> {
        match value {
            OwnedValue::I64(n) => Some(*n),
            OwnedValue::U64(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    };
    if matches!(value, OwnedValue::Null) {
        return Ok(match *ty {
            Type::BOOL => Box::new(None::<bool>),
            Type::INT2 => Box::new(None::<i16>),
            Type::INT4 => Box::new(None::<i32>),
            Type::INT8 => Box::new(None::<i64>),
            Type::FLOAT4 => Box::new(None::<f32>),
            Type::FLOAT8 => Box::new(None::<f64>),
            Type::BYTEA => Box::new(None::<Vec<u8>>),
            _ => Box::new(None::<String>),
        });
    }
    Ok(match *ty {
        Type::BOOL => match value {
            OwnedValue::Bool(b) => Box::new(*b),
            _ => return Err(mismatch()),
        },
        Type::INT2 => Box::new(
            integer(value)
                .and_then(|n| i16::try_from(n).ok())
                .ok_or_else(mismatch)?,
        ),
        Type::INT4 => Box::new(
            integer(value)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(mismatch)?,
        ),
        Type::INT8 => Box::new(integer(value).ok_or_else(mismatch)?),
        Type::FLOAT4 | Type::FLOAT8 => {
            let float = match value {
                OwnedValue::F64(x) => *x,
                OwnedValue::I64(n) => *n as f64,
                OwnedValue::U64(n) => *n as f64,
                _ => return Err(mismatch()),
            };
            if *ty == Type::FLOAT4 {
                Box::new(float as f32)
            } else {
                Box::new(float)
            }
        }
        Type::BYTEA => match value {
            OwnedValue::Bytes(bytes) => Box::new(bytes.clone()),
            OwnedValue::Str(text) => Box::new(text.as_bytes().to_vec()),
            _ => return Err(mismatch()),
        },
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => match value {
            OwnedValue::Str(text) => Box::new(text.clone()),
            OwnedValue::I64(n) => Box::new(n.to_string()),
            OwnedValue::U64(n) => Box::new(n.to_string()),
            OwnedValue::F64(x) => Box::new(x.to_string()),
            OwnedValue::Bool(b) => Box::new(b.to_string()),
            _ => return Err(mismatch()),
        },
        _ => {
            return Err(format!(
                "columns of type {ty} are not written (bool, integers, floats, text and bytea are)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(key: &[&str]) -> PostgresTable {
        PostgresTable {
            connection: "host=127.0.0.1 port=5432 user=squall dbname=squall".into(),
            table: "counts".into(),
            columns: vec![("word".into(), "word".into()), ("count".into(), "n".into())],
            key: key.iter().map(|key| (*key).to_owned()).collect(),
        }
    }

    #[test]
    fn upserts_update_the_columns_outside_the_key() {
        assert_eq!(
            table(&["word"]).statement_text(2),
            "INSERT INTO \"counts\" (\"word\",\"n\") VALUES ($1,$2),($3,$4) \
             ON CONFLICT (\"word\") DO UPDATE SET \"n\" = EXCLUDED.\"n\""
        );
        assert_eq!(
            table(&[]).statement_text(1),
            "INSERT INTO \"counts\" (\"word\",\"n\") VALUES ($1,$2)"
        );
        assert!(
            table(&["word", "n"])
                .statement_text(1)
                .ends_with("ON CONFLICT (\"word\",\"n\") DO NOTHING")
        );
    }

    #[test]
    fn bad_names_and_settings_are_named() {
        let mut bad = table(&["word"]);
        bad.table = "counts; drop table x".into();
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "table \"counts; drop table x\" is not a plain identifier (letters, digits and _, \
             not starting with a digit)"
        );
        let mut bad = table(&["missing"]);
        assert_eq!(
            bad.check().unwrap_err(),
            PostgresSettingsError::KeyNotWritten("missing".into())
        );
        bad.key.clear();
        bad.connection = "host=".into();
        assert!(matches!(
            bad.check().unwrap_err(),
            PostgresSettingsError::Connection(_)
        ));
        let mut schema = table(&[]);
        schema.table = "app.counts".into();
        assert!(schema.check().is_ok());
        assert!(
            schema
                .statement_text(1)
                .starts_with("INSERT INTO \"app\".\"counts\"")
        );
    }

    #[test]
    fn upserts_keep_the_last_row_of_each_key() {
        let store = PostgresStore::new(table(&["word"])).unwrap();
        let row = |word: &str, n: u64| vec![OwnedValue::Str(word.into()), OwnedValue::U64(n)];
        let rows = [row("a", 1), row("b", 1), row("a", 2)];
        let kept = store.last_of_each_key(&rows);
        assert_eq!(kept, vec![&rows[1], &rows[2]]);
        assert!(store.describe().contains("counts at 127.0.0.1:5432"));
    }

    #[test]
    fn values_convert_to_their_column_types_or_say_why_not() {
        assert!(to_param(&OwnedValue::U64(7), &Type::INT8).is_ok());
        assert!(to_param(&OwnedValue::Null, &Type::TEXT).is_ok());
        assert_eq!(
            to_param(&OwnedValue::U64(u64::MAX), &Type::INT8)
                .err()
                .unwrap(),
            "a U64 value does not fit a int8 column"
        );
        assert_eq!(
            to_param(&OwnedValue::Str("x".into()), &Type::INT4)
                .err()
                .unwrap(),
            "a Str value does not fit a int4 column"
        );
        assert!(to_param(&OwnedValue::I64(3), &Type::TEXT).is_ok());
        assert!(
            to_param(&OwnedValue::Bool(true), &Type::JSONB)
                .err()
                .unwrap()
                .contains("not written")
        );
    }
}
