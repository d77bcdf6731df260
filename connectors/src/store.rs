//! What every connector shares about its database: why an operation failed, and how an
//! operation that lost its connection is tried again on a new one.

use std::time::Duration;

/// Why a store's operation (a batch written, a batch of keys looked up) did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The connection failed or could not be made: the same operation may succeed on a
    /// new one.
    #[error("{0}")]
    Connection(String),
    /// The database refused the operation (a constraint, a type, a permission,
    /// credentials): doing it again would be refused again.
    #[error("{0}")]
    Rejected(String),
}

/// A store's connection, which is dropped after a connection error and made again by the
/// next operation.
pub trait Reconnect: Send + 'static {
    /// The store in errors and logs, e.g. `PostgreSQL table counts at 127.0.0.1:5432`.
    fn describe(&self) -> String;

    /// Forgets the connection after a connection error, so the next operation opens a new
    /// one.
    fn disconnect(&mut self);
}

/// How operations that lost their connection are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first; when they run out the operation's inputs fail.
    pub retries: u32,
    /// The wait before the first retry; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 5,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Runs `operation` (named `what` in logs), reconnecting with backoff after connection
/// errors, until it succeeds, the database refuses it, or the retries run out; the error
/// is the reason to report.
pub(crate) fn with_retries<S: Reconnect, T>(
    store: &mut S,
    retry: RetryPolicy,
    what: &str,
    mut operation: impl FnMut(&mut S) -> Result<T, StoreError>,
) -> Result<T, String> {
    let mut backoff = retry.first_backoff;
    let mut attempt = 0;
    loop {
        match operation(store) {
            Ok(done) => return Ok(done),
            Err(StoreError::Rejected(reason)) => return Err(reason),
            Err(StoreError::Connection(reason)) => {
                store.disconnect();
                if attempt == retry.retries {
                    return Err(format!("{reason} (gave up after {} attempts)", attempt + 1));
                }
                tracing::warn!(
                    store = %store.describe(),
                    %reason,
                    retry_in_ms = backoff.as_millis() as u64,
                    "{what} lost its connection; trying again"
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(retry.max_backoff);
                attempt += 1;
            }
        }
    }
}
