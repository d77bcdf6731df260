//! The write bolt every database connector shares: inputs become rows, rows are committed
//! in batches by a writer thread, and each input is acked only once the batch holding it
//! committed, or failed when it did not.
//!
//! Batching adapts to the database: the first row goes out at once, and rows arriving while
//! a batch is being written wait and go together in the next, up to
//! [`BatchSettings::max_rows`]. The executor never waits on the database unless
//! [`BatchSettings::max_batches_in_flight`] batches are already queued, which is how a slow
//! database pushes back on the topology.

use std::collections::VecDeque;

use squall_core::component::{Bolt, ComponentError};
use squall_core::context::TopologyContext;
use squall_core::runtime::{Anchor, BoltOutput, Tuple};

use crate::store::{Reconnect, RetryPolicy, StoreError, StoreThread, with_retries};

/// A database that commits batches of rows atomically, driven from the writer thread.
pub trait BatchStore: Reconnect {
    /// What one input becomes.
    type Row: Send + 'static;

    /// Commits `rows`, all or none, connecting first if needed.
    ///
    /// # Errors
    /// [`StoreError::Connection`] when the connection failed (nothing was committed), and
    /// [`StoreError::Rejected`] when the database refused the rows.
    fn write(&mut self, rows: &[Self::Row]) -> Result<(), StoreError>;
}

/// How inputs are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// The most rows in one batch.
    pub max_rows: usize,
    /// Batches handed to the writer and not yet settled before the executor waits.
    pub max_batches_in_flight: usize,
    /// Retries after a lost connection.
    pub retry: RetryPolicy,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_rows: 1000,
            max_batches_in_flight: 2,
            retry: RetryPolicy::default(),
        }
    }
}

impl BatchSettings {
    /// One row per batch: each input is its own transaction.
    pub fn row_at_a_time() -> Self {
        Self {
            max_rows: 1,
            max_batches_in_flight: 1,
            ..Self::default()
        }
    }
}

/// Turns an input into a row, or says why it cannot be written.
pub type RowMapper<R> = Box<dyn FnMut(&Tuple<'_>) -> Result<R, String> + Send>;

/// The writer thread: batches of rows in, whether each committed out.
type WriterThread<R> = StoreThread<Vec<R>, Result<(), String>>;

/// Commits its inputs to a [`BatchStore`], acking each input once its batch committed and
/// failing it when the batch was refused or its retries ran out.
pub struct BatchWriteBolt<S: BatchStore> {
    store: Option<S>,
    description: String,
    map_row: RowMapper<S::Row>,
    settings: BatchSettings,
    rows: Vec<S::Row>,
    anchors: Vec<Anchor>,
    /// Batches with the writer, oldest first: the writer settles them in order.
    in_flight: VecDeque<(u64, Vec<Anchor>)>,
    writer: Option<WriterThread<S::Row>>,
}

impl<S: BatchStore> std::fmt::Debug for BatchWriteBolt<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BatchWriteBolt")
            .field("store", &self.description)
            .field("settings", &self.settings)
            .field("buffered", &self.rows.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<S: BatchStore> BatchWriteBolt<S> {
    /// Writes the rows `map_row` makes of its inputs to `store`.
    pub fn new(store: S, map_row: RowMapper<S::Row>, settings: BatchSettings) -> Self {
        let settings = BatchSettings {
            max_rows: settings.max_rows.max(1),
            max_batches_in_flight: settings.max_batches_in_flight.max(1),
            ..settings
        };
        Self {
            description: store.describe(),
            store: Some(store),
            map_row,
            settings,
            rows: Vec::new(),
            anchors: Vec::new(),
            in_flight: VecDeque::new(),
            writer: None,
        }
    }

    /// Hands the buffered rows to the writer, first waiting for a settled batch when
    /// enough are in flight.
    fn flush(&mut self, output: &mut BoltOutput<'_>) {
        if self.rows.is_empty() {
            return;
        }
        while self.in_flight.len() >= self.settings.max_batches_in_flight {
            if !self.settle_one(output, true) {
                break;
            }
        }
        let Some(writer) = &mut self.writer else {
            return;
        };
        let rows = std::mem::take(&mut self.rows);
        let anchors = std::mem::take(&mut self.anchors);
        match writer.send(rows) {
            Ok(id) => self.in_flight.push_back((id, anchors)),
            Err(_) => {
                // The writer is gone (it panicked): nothing of these was written.
                output.report_error(format!("the writer of {} stopped", self.description));
                for anchor in &anchors {
                    output.fail(anchor);
                }
            }
        }
    }

    /// Settles the oldest batch whose outcome came, waiting for it when `wait`; returns
    /// whether one was settled.
    fn settle_one(&mut self, output: &mut BoltOutput<'_>, wait: bool) -> bool {
        let Some((settled, result)) = self.writer.as_ref().and_then(|writer| writer.answer(wait))
        else {
            return false;
        };
        let Some((id, anchors)) = self.in_flight.pop_front() else {
            return false;
        };
        debug_assert_eq!(id, settled, "the writer settles batches in order");
        match result {
            Ok(()) => {
                for anchor in &anchors {
                    output.ack(anchor);
                }
            }
            Err(reason) => {
                output.report_error(format!(
                    "{} rows not written to {}: {reason}",
                    anchors.len(),
                    self.description
                ));
                for anchor in &anchors {
                    output.fail(anchor);
                }
            }
        }
        true
    }
}

impl<S: BatchStore> Bolt for BatchWriteBolt<S> {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        let store = self
            .store
            .take()
            .ok_or("the write bolt was prepared twice")?;
        let retry = self.settings.retry;
        self.writer = Some(StoreThread::spawn(
            format!("{}-writer", context.component_id()),
            store,
            self.settings.max_batches_in_flight,
            context.waker(),
            move |store: &mut S, rows: Vec<S::Row>| write_with_retries(store, &rows, retry),
        )?);
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if input.is_tick() {
            output.ack(input);
            return;
        }
        match (self.map_row)(input) {
            Ok(row) => {
                self.rows.push(row);
                self.anchors.push(input.anchor().clone());
                if self.rows.len() >= self.settings.max_rows || self.in_flight.is_empty() {
                    self.flush(output);
                }
            }
            Err(reason) => {
                output.report_error(format!(
                    "cannot write a tuple to {}: {reason}",
                    self.description
                ));
                output.fail(input);
            }
        }
    }

    fn poll(&mut self, output: &mut BoltOutput<'_>) -> bool {
        let mut settled = false;
        while self.settle_one(output, false) {
            settled = true;
        }
        if self.in_flight.is_empty() && !self.rows.is_empty() {
            self.flush(output);
            return true;
        }
        settled
    }

    fn wants_poll(&self) -> bool {
        true
    }

    fn cleanup(&mut self) {
        // The writer finishes what it holds and ends; unsettled inputs are replayed by
        // their spouts when their trees time out.
        if let Some(writer) = &mut self.writer {
            writer.stop();
        }
    }
}

/// Writes `rows`, reconnecting with backoff after connection errors, until they commit,
/// the database refuses them, or the retries run out.
fn write_with_retries<S: BatchStore>(
    store: &mut S,
    rows: &[S::Row],
    retry: RetryPolicy,
) -> Result<(), String> {
    with_retries(store, retry, "a write", |store| store.write(rows))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A store that plays back scripted results.
    struct Scripted {
        results: VecDeque<Result<(), StoreError>>,
        writes: usize,
        disconnects: usize,
    }

    impl Reconnect for Scripted {
        fn describe(&self) -> String {
            "scripted".to_owned()
        }
        fn disconnect(&mut self) {
            self.disconnects += 1;
        }
    }

    impl BatchStore for Scripted {
        type Row = u32;
        fn write(&mut self, _rows: &[u32]) -> Result<(), StoreError> {
            self.writes += 1;
            self.results.pop_front().unwrap_or(Ok(()))
        }
    }

    fn quick(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    fn scripted(results: Vec<Result<(), StoreError>>) -> Scripted {
        Scripted {
            results: results.into(),
            writes: 0,
            disconnects: 0,
        }
    }

    #[test]
    fn a_lost_connection_is_retried_until_the_write_commits() {
        let mut store = scripted(vec![
            Err(StoreError::Connection("reset".into())),
            Err(StoreError::Connection("refused".into())),
            Ok(()),
        ]);
        assert_eq!(write_with_retries(&mut store, &[1, 2], quick(5)), Ok(()));
        assert_eq!((store.writes, store.disconnects), (3, 2));
    }

    #[test]
    fn retries_run_out_with_the_last_reason() {
        let mut store = scripted(vec![Err(StoreError::Connection("refused".into())); 3]);
        assert_eq!(
            write_with_retries(&mut store, &[1], quick(2)),
            Err("refused (gave up after 3 attempts)".to_owned())
        );
        assert_eq!(store.writes, 3);
    }

    #[test]
    fn a_refused_write_is_not_retried() {
        let mut store = scripted(vec![Err(StoreError::Rejected("bad type".into()))]);
        assert_eq!(
            write_with_retries(&mut store, &[1], quick(5)),
            Err("bad type".to_owned())
        );
        assert_eq!((store.writes, store.disconnects), (1, 0));
    }
}
