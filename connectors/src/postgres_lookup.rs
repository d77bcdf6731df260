//! The PostgreSQL lookup bolt: enriches each input with the rows of a table whose key
//! column equals one of the input's fields, many keys per query.

use std::collections::HashMap;
use std::str::FromStr;

use postgres::Row;
use postgres::types::{ToSql, Type};
use squall_core::OwnedValue;

use crate::lookup::{CacheKey, Found, LookupBolt, LookupFields, LookupSettings, LookupStore};
use crate::postgres::{
    Param, PostgresSettingsError, check_identifier, check_table, classify, quoted, to_param,
};
use crate::postgres_session::Session;
use crate::store::{Reconnect, StoreError};

/// Keys per statement are rounded up to a power of two (padded with the last key), so a
/// connection prepares a handful of statements, not one per batch size.
const MAX_STATEMENT_KEYS: usize = 1024;

/// What a PostgreSQL lookup bolt reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresQuery {
    /// Connection settings, as `host=… port=… user=… password=… dbname=…` or a
    /// `postgresql://` URL.
    pub connection: String,
    /// The table, `name` or `schema.name`.
    pub table: String,
    /// The column compared with the input's key.
    pub key_column: String,
    /// The columns emitted for each matching row, in order; they are also the names of
    /// the fields they fill.
    pub columns: Vec<String>,
}

impl PostgresQuery {
    /// Checks the names and the connection settings.
    ///
    /// # Errors
    /// Naming the bad setting.
    pub fn check(&self) -> Result<postgres::Config, PostgresSettingsError> {
        check_table(&self.table)?;
        check_identifier("column", &self.key_column)?;
        if self.columns.is_empty() {
            return Err(PostgresSettingsError::NoColumns);
        }
        for column in &self.columns {
            check_identifier("column", column)?;
        }
        postgres::Config::from_str(&self.connection)
            .map_err(|error| PostgresSettingsError::Connection(error.to_string()))
    }

    fn statement_text(&self, keys: usize) -> String {
        let columns: Vec<String> = std::iter::once(&self.key_column)
            .chain(&self.columns)
            .map(|column| quoted(column))
            .collect();
        let params: Vec<String> = (1..=keys).map(|at| format!("${at}")).collect();
        format!(
            "SELECT {} FROM {} WHERE {} IN ({})",
            columns.join(","),
            quoted(&self.table),
            quoted(&self.key_column),
            params.join(",")
        )
    }
}

/// A [`LookupBolt`] reading PostgreSQL.
pub type PostgresLookupBolt = LookupBolt<PostgresLookup>;

/// A bolt emitting `fields.carried` then `query.columns` for each row of `query.table`
/// whose key column equals the input's `fields.key`.
///
/// # Errors
/// When a name or the connection settings are unusable.
pub fn postgres_lookup_bolt(
    query: PostgresQuery,
    fields: LookupFields,
    settings: LookupSettings,
) -> Result<PostgresLookupBolt, PostgresSettingsError> {
    Ok(LookupBolt::new(
        PostgresLookup::new(query)?,
        fields,
        settings,
    ))
}

/// The connection of one PostgreSQL lookup bolt's lookup thread.
#[derive(Debug)]
pub struct PostgresLookup {
    query: PostgresQuery,
    session: Session,
}

impl PostgresLookup {
    /// A lookup of `query`; it connects at its first lookup.
    ///
    /// # Errors
    /// When a name or the connection settings are unusable.
    pub fn new(query: PostgresQuery) -> Result<Self, PostgresSettingsError> {
        let session = Session::new(query.check()?, &query.table);
        Ok(Self { query, session })
    }
}

impl Reconnect for PostgresLookup {
    fn describe(&self) -> String {
        self.session.description().to_owned()
    }

    fn disconnect(&mut self) {
        self.session.disconnect();
    }
}

impl LookupStore for PostgresLookup {
    fn found_fields(&self) -> Vec<String> {
        self.query.columns.clone()
    }

    fn lookup(&mut self, keys: &[OwnedValue]) -> Result<Vec<Found>, StoreError> {
        let mut at: HashMap<CacheKey, usize> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| (CacheKey::of(key), index))
            .collect();
        let mut found: Vec<Found> = vec![Vec::new(); keys.len()];
        for chunk in keys.chunks(MAX_STATEMENT_KEYS) {
            let size = chunk.len().next_power_of_two();
            let query = &self.query;
            let statement = self.session.statement(
                size,
                |keys| query.statement_text(keys),
                "preparing the lookup",
            )?;
            let ty = &statement.params()[0];
            let mut params: Vec<Param> = Vec::with_capacity(size);
            for key in chunk.iter().chain(std::iter::repeat_n(
                chunk.last().expect("chunks are not empty"),
                size - chunk.len(),
            )) {
                params.push(to_param(key, ty).map_err(|reason| {
                    StoreError::Rejected(format!(
                        "a key cannot be compared with column {:?}: {reason}",
                        self.query.key_column
                    ))
                })?);
            }
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|param| &**param as &(dyn ToSql + Sync))
                .collect();
            let rows = self
                .session
                .client()?
                .query(&statement, &refs)
                .map_err(|error| classify(&error, "looking up"))?;
            for row in &rows {
                let key = CacheKey::of(&column_value(row, 0)?);
                let values = (1..row.len())
                    .map(|column| column_value(row, column))
                    .collect::<Result<Vec<_>, _>>()?;
                // Text keys come back as the column holds them; a key the query did not
                // ask (a padded char column) cannot be placed and is left out.
                if let Some(&index) = at.get(&key) {
                    found[index].push(values);
                }
            }
        }
        at.clear();
        Ok(found)
    }
}

/// Column `column` of `row` as a value.
fn column_value(row: &Row, column: usize) -> Result<OwnedValue, StoreError> {
    let read = |error: postgres::Error| {
        StoreError::Rejected(format!(
            "column {:?} cannot be read: {error}",
            row.columns()[column].name()
        ))
    };
    let ty = row.columns()[column].type_().clone();
    let value = match ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(column)
            .map_err(read)?
            .map(OwnedValue::Bool),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(column)
            .map_err(read)?
            .map(|n| OwnedValue::I64(n.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(column)
            .map_err(read)?
            .map(|n| OwnedValue::I64(n.into())),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(column)
            .map_err(read)?
            .map(OwnedValue::I64),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(column)
            .map_err(read)?
            .map(|x| OwnedValue::F64(x.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(column)
            .map_err(read)?
            .map(OwnedValue::F64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(column)
            .map_err(read)?
            .map(OwnedValue::Str),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(column)
            .map_err(read)?
            .map(OwnedValue::Bytes),
        other => {
            return Err(StoreError::Rejected(format!(
                "column {:?} is of type {other}; lookups read bool, integers, floats, text and \
                 bytea columns",
                row.columns()[column].name()
            )));
        }
    };
    Ok(value.unwrap_or(OwnedValue::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> PostgresQuery {
        PostgresQuery {
            connection: "host=127.0.0.1 port=5432 user=squall dbname=squall".into(),
            table: "app.users".into(),
            key_column: "id".into(),
            columns: vec!["name".into(), "country".into()],
        }
    }

    #[test]
    fn the_query_selects_the_key_and_the_columns() {
        assert_eq!(
            query().statement_text(2),
            "SELECT \"id\",\"name\",\"country\" FROM \"app\".\"users\" WHERE \"id\" IN ($1,$2)"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        let mut bad = query();
        bad.key_column = "id; --".into();
        assert!(matches!(
            bad.check().unwrap_err(),
            PostgresSettingsError::Identifier { what: "column", .. }
        ));
        let mut bad = query();
        bad.columns.clear();
        assert_eq!(bad.check().unwrap_err(), PostgresSettingsError::NoColumns);
        let store = PostgresLookup::new(query()).unwrap();
        assert_eq!(
            store.describe(),
            "PostgreSQL table app.users at 127.0.0.1:5432"
        );
    }
}
