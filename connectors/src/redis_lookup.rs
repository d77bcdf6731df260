//! The Redis lookup bolt: enriches each input with the value Redis holds under one of its
//! fields, as a string key (`MGET`) or a hash field (`HMGET`), many keys per command.

use redis::{Client, Connection};
use squall_core::OwnedValue;

use crate::lookup::{Found, LookupBolt, LookupFields, LookupSettings, LookupStore};
use crate::redis::{RedisSettingsError, classify, connected, redacted, stored_bytes};
use crate::store::{Reconnect, StoreError};

/// Where a Redis lookup bolt reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisKeys {
    /// `GET <prefix><key>`.
    Strings {
        /// Put before each key, e.g. `user:`.
        key_prefix: String,
    },
    /// `HGET <hash> <key>`.
    Hash {
        /// The hash's key.
        hash: String,
    },
}

/// A [`LookupBolt`] reading Redis.
pub type RedisLookupBolt = LookupBolt<RedisLookup>;

/// A bolt emitting `fields.carried` then the value Redis at `url` holds for the input's
/// `fields.key` (in keys as `keys` says), as the field `value_field`.
///
/// # Errors
/// When the address does not parse.
pub fn redis_lookup_bolt(
    url: &str,
    keys: RedisKeys,
    value_field: &str,
    fields: LookupFields,
    settings: LookupSettings,
) -> Result<RedisLookupBolt, RedisSettingsError> {
    let store = RedisLookup::new(url, keys, value_field)?;
    Ok(LookupBolt::new(store, fields, settings))
}

/// The connection of one Redis lookup bolt's lookup thread.
pub struct RedisLookup {
    client: Client,
    keys: RedisKeys,
    value_field: String,
    description: String,
    connection: Option<Connection>,
}

impl std::fmt::Debug for RedisLookup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisLookup")
            .field("store", &self.description)
            .field("keys", &self.keys)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisLookup {
    /// A lookup in Redis at `url`; it connects at its first lookup.
    ///
    /// # Errors
    /// When the address does not parse.
    pub fn new(url: &str, keys: RedisKeys, value_field: &str) -> Result<Self, RedisSettingsError> {
        let client = Client::open(url).map_err(|error| RedisSettingsError {
            url: redacted(url),
            reason: error.to_string(),
        })?;
        let description = format!("Redis at {}", client.get_connection_info().addr);
        Ok(Self {
            client,
            keys,
            value_field: value_field.to_owned(),
            description,
            connection: None,
        })
    }
}

impl Reconnect for RedisLookup {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn disconnect(&mut self) {
        self.connection = None;
    }
}

impl LookupStore for RedisLookup {
    fn found_fields(&self) -> Vec<String> {
        vec![self.value_field.clone()]
    }

    fn lookup(&mut self, keys: &[OwnedValue]) -> Result<Vec<Found>, StoreError> {
        let mut names = Vec::with_capacity(keys.len());
        for key in keys {
            let bytes = stored_bytes(key.clone())
                .map_err(|reason| StoreError::Rejected(format!("a key {reason}")))?;
            names.push(match &self.keys {
                RedisKeys::Strings { key_prefix } => {
                    let mut name = key_prefix.as_bytes().to_vec();
                    name.extend_from_slice(&bytes);
                    name
                }
                RedisKeys::Hash { .. } => bytes,
            });
        }
        let connection = connected(&self.client, &mut self.connection)?;
        let mut command = match &self.keys {
            RedisKeys::Strings { .. } => redis::cmd("MGET"),
            RedisKeys::Hash { hash } => {
                let mut command = redis::cmd("HMGET");
                command.arg(hash);
                command
            }
        };
        command.arg(&names);
        let values: Vec<Option<Vec<u8>>> = command
            .query(connection)
            .map_err(|error| classify(&error, "looking up"))?;
        Ok(values
            .into_iter()
            .map(|value| match value {
                None => Vec::new(),
                Some(bytes) => vec![vec![match String::from_utf8(bytes) {
                    Ok(text) => OwnedValue::Str(text),
                    Err(error) => OwnedValue::Bytes(error.into_bytes()),
                }]],
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_names_its_server_and_its_field() {
        let store = RedisLookup::new(
            "redis://127.0.0.1:6390/1",
            RedisKeys::Hash {
                hash: "names".into(),
            },
            "name",
        )
        .unwrap();
        assert_eq!(store.describe(), "Redis at 127.0.0.1:6390");
        assert_eq!(store.found_fields(), vec!["name".to_owned()]);
        assert!(RedisLookup::new("nope://x", RedisKeys::Hash { hash: "h".into() }, "v").is_err());
    }
}
