//! The Redis write bolt: stores its inputs as string keys or hash fields, each batch in
//! one `MULTI`/`EXEC` transaction, as Storm's `RedisStoreBolt` does with its store mapper.

use redis::{Client, Connection, ErrorKind, RedisError};
use squall_core::OwnedValue;
use squall_core::runtime::Tuple;

use crate::store::{Reconnect, StoreError};
use crate::write::{BatchSettings, BatchStore, BatchWriteBolt};

/// How long connecting and each command may take.
pub(crate) const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where each input goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `SET <prefix><key field> <value field>`.
    Strings {
        /// Put before each key, e.g. `count:`.
        key_prefix: String,
        /// The input field naming the key.
        key_field: String,
        /// The input field holding the value.
        value_field: String,
    },
    /// `HSET <hash> <field field> <value field>`.
    Hash {
        /// The hash's key.
        hash: String,
        /// The input field naming the hash field.
        field_field: String,
        /// The input field holding the value.
        value_field: String,
    },
}

impl RedisTarget {
    fn fields(&self) -> [&str; 2] {
        match self {
            RedisTarget::Strings {
                key_field,
                value_field,
                ..
            } => [key_field, value_field],
            RedisTarget::Hash {
                field_field,
                value_field,
                ..
            } => [field_field, value_field],
        }
    }
}

/// Why a Redis bolt's settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Redis address {url:?} is invalid: {reason}")]
pub struct RedisSettingsError {
    /// The address.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// A [`BatchWriteBolt`] writing to Redis.
pub type RedisWriteBolt = BatchWriteBolt<RedisStore>;

/// A bolt storing each input in Redis at `url` (`redis://[user:password@]host:port[/db]`)
/// as `target` says, in batches as `settings` says.
///
/// # Errors
/// When the address does not parse.
pub fn redis_write_bolt(
    url: &str,
    target: RedisTarget,
    settings: BatchSettings,
) -> Result<RedisWriteBolt, RedisSettingsError> {
    let store = RedisStore::new(url, target.clone())?;
    let [key_field, value_field] = target.fields().map(str::to_owned);
    let map_row = Box::new(
        move |input: &Tuple<'_>| -> Result<(Vec<u8>, Vec<u8>), String> {
            Ok((bytes_of(input, &key_field)?, bytes_of(input, &value_field)?))
        },
    );
    Ok(BatchWriteBolt::new(store, map_row, settings))
}

/// Field `field` of `input` as Redis stores it: strings and bytes as they are, numbers and
/// booleans in decimal text.
fn bytes_of(input: &Tuple<'_>, field: &str) -> Result<Vec<u8>, String> {
    let value = input
        .get_by_name(field)
        .map_err(|error| format!("field {field:?}: {error}"))?
        .to_owned_value();
    stored_bytes(value).map_err(|reason| format!("field {field:?} {reason}"))
}

/// `value` as Redis stores it, or why it cannot be stored.
pub(crate) fn stored_bytes(value: OwnedValue) -> Result<Vec<u8>, String> {
    match value {
        OwnedValue::Str(text) => Ok(text.into_bytes()),
        OwnedValue::Bytes(bytes) => Ok(bytes),
        OwnedValue::I64(n) => Ok(n.to_string().into_bytes()),
        OwnedValue::U64(n) => Ok(n.to_string().into_bytes()),
        OwnedValue::F64(x) => Ok(x.to_string().into_bytes()),
        OwnedValue::Bool(b) => Ok(if b { b"1".to_vec() } else { b"0".to_vec() }),
        other => Err(format!(
            "is a {}; Redis stores strings, bytes, numbers and booleans",
            other.value_type()
        )),
    }
}

/// The connection of one Redis write bolt's writer.
pub struct RedisStore {
    client: Client,
    target: RedisTarget,
    description: String,
    connection: Option<Connection>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisStore")
            .field("store", &self.description)
            .field("target", &self.target)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store writing to `url`; it connects at its first write.
    ///
    /// # Errors
    /// When the address does not parse.
    pub fn new(url: &str, target: RedisTarget) -> Result<Self, RedisSettingsError> {
        let client = Client::open(url).map_err(|error| RedisSettingsError {
            url: redacted(url),
            reason: error.to_string(),
        })?;
        let info = client.get_connection_info();
        let description = format!("Redis at {}", info.addr);
        Ok(Self {
            client,
            target,
            description,
            connection: None,
        })
    }
}

/// `url` without its password, for errors.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl Reconnect for RedisStore {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn disconnect(&mut self) {
        self.connection = None;
    }
}

impl BatchStore for RedisStore {
    type Row = (Vec<u8>, Vec<u8>);

    fn write(&mut self, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let connection = connected(&self.client, &mut self.connection)?;
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for (key, value) in rows {
            match &self.target {
                RedisTarget::Strings { key_prefix, .. } => {
                    let mut full_key = key_prefix.as_bytes().to_vec();
                    full_key.extend_from_slice(key);
                    pipeline.set(full_key, value).ignore();
                }
                RedisTarget::Hash { hash, .. } => {
                    pipeline.hset(hash, key, value).ignore();
                }
            }
        }
        pipeline
            .query::<()>(connection)
            .map_err(|error| classify(&error, "writing"))
    }
}

/// The open connection in `slot`, made first when there is none, with timeouts on every
/// command.
pub(crate) fn connected<'c>(
    client: &Client,
    slot: &'c mut Option<Connection>,
) -> Result<&'c mut Connection, StoreError> {
    if slot.is_none() {
        let connection = client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|error| classify(&error, "connecting"))?;
        connection
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)))
            .map_err(|error| classify(&error, "connecting"))?;
        *slot = Some(connection);
    }
    Ok(slot.as_mut().expect("connected above"))
}

/// Refused credentials, wrong types and other answers of the server are refusals; lost or
/// refused connections and timeouts may write on a new connection.
pub(crate) fn classify(error: &RedisError, doing: &str) -> StoreError {
    if error.kind() == ErrorKind::AuthenticationFailed
        || error
            .code()
            .is_some_and(|code| matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM" | "WRONGTYPE"))
    {
        return StoreError::Rejected(format!(
            "{doing}: Redis refused it: the credentials are wrong or lack a permission ({error})"
        ));
    }
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.code() == Some("READONLY")
        || error.code() == Some("LOADING")
    {
        return StoreError::Connection(format!("{doing}: {error}"));
    }
    StoreError::Rejected(format!("{doing}: Redis refused it: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_is_named_without_its_password() {
        let error = RedisStore::new(
            "http://user:secret@127.0.0.1:1",
            RedisTarget::Hash {
                hash: "h".into(),
                field_field: "word".into(),
                value_field: "count".into(),
            },
        )
        .err()
        .unwrap();
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(
            error.to_string().contains("http://…@127.0.0.1:1"),
            "{error}"
        );
    }

    #[test]
    fn the_store_names_its_server() {
        let store = RedisStore::new(
            "redis://127.0.0.1:6390/2",
            RedisTarget::Strings {
                key_prefix: "count:".into(),
                key_field: "word".into(),
                value_field: "count".into(),
            },
        )
        .unwrap();
        assert_eq!(store.describe(), "Redis at 127.0.0.1:6390");
    }
}
