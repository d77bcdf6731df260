//! What every connector shares about its database: why an operation failed, and how an
//! operation that lost its connection is tried again on a new one.

use std::sync::mpsc;
use std::time::Duration;

use squall_core::context::ExecutorWaker;

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

/// A thread of a bolt's own that takes requests to a store in order and answers each,
/// waking the bolt's executor when an answer is ready; requests queue up to a bound, which
/// is how a slow store pushes back on the executor.
pub(crate) struct StoreThread<Q, A> {
    requests: Option<mpsc::SyncSender<(u64, Q)>>,
    answers: mpsc::Receiver<(u64, A)>,
    next_id: u64,
}

impl<Q: Send + 'static, A: Send + 'static> StoreThread<Q, A> {
    /// Starts thread `name`, which hands each request with `store` to `handle`; at most
    /// `depth` requests wait for it.
    pub(crate) fn spawn<S: Reconnect>(
        name: String,
        mut store: S,
        depth: usize,
        waker: Option<ExecutorWaker>,
        mut handle: impl FnMut(&mut S, Q) -> A + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, queued) = mpsc::sync_channel::<(u64, Q)>(depth);
        let (answered, answers) = mpsc::channel();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok((id, request)) = queued.recv() {
                if answered.send((id, handle(&mut store, request))).is_err() {
                    return;
                }
                if let Some(waker) = &waker {
                    waker.wake();
                }
            }
        })?;
        Ok(Self {
            requests: Some(requests),
            answers,
            next_id: 0,
        })
    }

    /// Queues `request`, waiting while the queue is full; gives it back when the thread is
    /// gone (it panicked) or was stopped.
    pub(crate) fn send(&mut self, request: Q) -> Result<u64, Q> {
        let id = self.next_id;
        let Some(requests) = &self.requests else {
            return Err(request);
        };
        match requests.send((id, request)) {
            Ok(()) => {
                self.next_id += 1;
                Ok(id)
            }
            Err(mpsc::SendError((_, request))) => Err(request),
        }
    }

    /// The next answer, in request order, waiting for it when `wait`.
    pub(crate) fn answer(&self, wait: bool) -> Option<(u64, A)> {
        if wait {
            self.answers.recv().ok()
        } else {
            self.answers.try_recv().ok()
        }
    }

    /// Lets the thread finish what it holds and end.
    pub(crate) fn stop(&mut self) {
        self.requests = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Doubler {
        disconnects: usize,
    }

    impl Reconnect for Doubler {
        fn describe(&self) -> String {
            "doubler".to_owned()
        }
        fn disconnect(&mut self) {
            self.disconnects += 1;
        }
    }

    #[test]
    fn the_store_thread_answers_in_order_and_refuses_once_stopped() {
        let mut thread = StoreThread::spawn(
            "doubler".to_owned(),
            Doubler { disconnects: 0 },
            2,
            None,
            |_: &mut Doubler, n: u32| n * 2,
        )
        .unwrap();
        let ids: Vec<u64> = (1..=5).map(|n| thread.send(n).ok().unwrap()).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
        let answers: Vec<(u64, u32)> = (0..5).map(|_| thread.answer(true).unwrap()).collect();
        assert_eq!(answers, vec![(0, 2), (1, 4), (2, 6), (3, 8), (4, 10)]);
        assert_eq!(thread.answer(false), None);
        thread.stop();
        assert_eq!(thread.send(6), Err(6));
    }

    #[test]
    fn retries_reconnect_until_the_store_answers() {
        let mut store = Doubler { disconnects: 0 };
        let mut attempts = 0;
        let quick = RetryPolicy {
            retries: 3,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let answer = with_retries(&mut store, quick, "a test", |_| {
            attempts += 1;
            if attempts < 3 {
                Err(StoreError::Connection("reset".into()))
            } else {
                Ok(attempts)
            }
        });
        assert_eq!(answer, Ok(3));
        assert_eq!(store.disconnects, 2);
    }
}
