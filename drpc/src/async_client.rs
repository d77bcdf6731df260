//! The asynchronous DRPC client: many calls in flight on one connection, each a future.
//!
//! The crate keeps no async runtime. Each connection has two threads: a writer that sends
//! sealed frames in the order they were sealed (frames queued together go out in one
//! write), and a reader that matches each answer to its call by number and wakes the task
//! awaiting it. The futures therefore run on any executor — tokio, async-std, smol or a
//! plain `block_on` — and never block it: [`AsyncDrpcClient::call`] only seals a frame and
//! queues it.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use squall_net::ClusterSecret;

use crate::client::{ANSWER_GRACE, DEFAULT_CALL_TIMEOUT, DrpcError};
use crate::key::DrpcKey;
use crate::link::{Incoming, Link, LinkError};
use crate::oneshot;
use crate::protocol::{CallError, Framing, ToPeer, ToServer};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the reader looks for calls past their deadline while no frame arrives.
const EXPIRY_TICK: Duration = Duration::from_millis(250);

/// Frames queued together are written at once up to this many bytes.
const MAX_WRITE: usize = 256 * 1024;

/// A connection to one DRPC server carrying any number of calls at once.
///
/// Share it between tasks behind an [`Arc`]: [`call`](Self::call) takes `&self`, and each
/// call's future owns what it needs, so it can be spawned.
///
/// ```no_run
/// use squall_drpc::AsyncDrpcClient;
/// # async fn reach() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = squall_net::ClusterSecret::new(std::fs::read("/etc/squall/secret")?)?;
/// let client = AsyncDrpcClient::connect("drpc1.example:3772", &secret).await?;
/// let (a, b) = (client.call("reach", "http://a.example/"), client.call("reach", "http://b.example/"));
/// println!("reach: {} and {}", a.await?, b.await?);
/// # Ok(()) }
/// ```
///
/// Dropping the client closes its connection: calls still in flight end with an error.
#[derive(Debug)]
pub struct AsyncDrpcClient {
    calls: Arc<Calls>,
    sealer: Mutex<Sealer>,
    next_call: AtomicU64,
    timeout: Duration,
    /// Shut down on drop, which ends both threads.
    socket: TcpStream,
}

/// Seals frames in call order and queues them for the writer, under one lock so the
/// sequence numbers reach the socket in order.
#[derive(Debug)]
struct Sealer {
    framing: Framing,
    frames: mpsc::Sender<Vec<u8>>,
}

/// The calls waiting for their answers.
#[derive(Debug)]
struct Calls {
    server: String,
    state: Mutex<CallsState>,
}

#[derive(Debug, Default)]
struct CallsState {
    waiting: HashMap<u64, Waiting>,
    /// Why the connection ended, once it has.
    ended: Option<Ended>,
}

#[derive(Debug)]
struct Waiting {
    /// When the call ends with an error if the server has not answered: the call's own
    /// timeout plus a grace for the server's refusal.
    deadline: Instant,
    timeout: Duration,
    answer: oneshot::Sender<Result<String, DrpcError>>,
}

/// Why a connection ended; each waiting call gets its own error made from it.
#[derive(Debug, Clone)]
enum Ended {
    Closed,
    Unauthenticated,
    Refused(CallError),
    Io {
        kind: std::io::ErrorKind,
        reason: String,
    },
    Garbled {
        reason: String,
    },
}

impl Ended {
    fn of(error: &LinkError) -> Self {
        match error {
            _ if error.is_unauthenticated() => Ended::Unauthenticated,
            LinkError::Io { source, .. } => Ended::Io {
                kind: source.kind(),
                reason: source.to_string(),
            },
            other => Ended::Garbled {
                reason: other.to_string(),
            },
        }
    }

    fn error(&self, server: &str) -> DrpcError {
        let io = |kind, reason: &str| {
            DrpcError::Link(LinkError::Io {
                server: server.to_owned(),
                source: std::io::Error::new(kind, reason.to_owned()),
            })
        };
        match self {
            Ended::Closed => io(
                std::io::ErrorKind::NotConnected,
                "the client was closed before the answer came",
            ),
            Ended::Unauthenticated => DrpcError::Unauthenticated {
                server: server.to_owned(),
            },
            Ended::Refused(error) => DrpcError::Refused(error.clone()),
            Ended::Io { kind, reason } => io(*kind, reason),
            Ended::Garbled { reason } => DrpcError::Link(LinkError::Garbled {
                server: server.to_owned(),
                reason: reason.clone(),
            }),
        }
    }
}

impl Calls {
    fn state(&self) -> std::sync::MutexGuard<'_, CallsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `call`, or answers it at once when the connection has ended.
    fn expect(
        &self,
        call: u64,
        timeout: Duration,
        answer: oneshot::Sender<Result<String, DrpcError>>,
    ) {
        let mut state = self.state();
        if let Some(ended) = &state.ended {
            let error = ended.error(&self.server);
            drop(state);
            answer.send(Err(error));
            return;
        }
        let deadline = Instant::now() + timeout.saturating_add(ANSWER_GRACE);
        state.waiting.insert(
            call,
            Waiting {
                deadline,
                timeout,
                answer,
            },
        );
    }

    /// Hands `call` its answer, if it still waits.
    fn settle(&self, call: u64, answer: Result<String, DrpcError>) {
        let waiting = self.state().waiting.remove(&call);
        if let Some(waiting) = waiting {
            waiting.answer.send(answer);
        }
    }

    /// Ends the calls whose server stayed silent past their deadline.
    fn expire(&self, now: Instant) {
        let expired: Vec<Waiting> = self
            .state()
            .waiting
            .extract_if(|_, waiting| waiting.deadline <= now)
            .map(|(_, waiting)| waiting)
            .collect();
        for waiting in expired {
            let error = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer and no refusal within {} ms of the call's {} ms timeout",
                    ANSWER_GRACE.as_millis(),
                    waiting.timeout.as_millis()
                ),
            );
            waiting.answer.send(Err(DrpcError::Link(LinkError::Io {
                server: self.server.clone(),
                source: error,
            })));
        }
    }

    /// Ends the connection: every waiting call, and every later one, gets `why`.
    fn end(&self, why: Ended) {
        let (ended, waiting): (Ended, Vec<Waiting>) = {
            let mut state = self.state();
            let ended = state.ended.get_or_insert(why).clone();
            (
                ended,
                state.waiting.drain().map(|(_, waiting)| waiting).collect(),
            )
        };
        for waiting in waiting {
            waiting.answer.send(Err(ended.error(&self.server)));
        }
    }

    fn in_flight(&self) -> usize {
        self.state().waiting.len()
    }
}

impl AsyncDrpcClient {
    /// Connects to the server at `server` (`host:port`) on a thread of its own, so the
    /// awaiting task is not blocked; calls wait up to [`DEFAULT_CALL_TIMEOUT`].
    ///
    /// # Errors
    /// When the connection fails.
    pub fn connect(
        server: &str,
        secret: &ClusterSecret,
    ) -> impl Future<Output = Result<Self, DrpcError>> + Send + 'static {
        let (sender, receiver) = oneshot::channel();
        let (address, key) = (server.to_owned(), DrpcKey::cluster(secret.clone()));
        let spawned = std::thread::Builder::new()
            .name("drpc-connect".to_owned())
            .spawn(move || sender.send(Self::connect_blocking(&address, &key)));
        let server = server.to_owned();
        async move {
            if let Err(source) = spawned {
                return Err(DrpcError::Link(LinkError::Io { server, source }));
            }
            receiver
                .await
                .unwrap_or_else(|| Err(Ended::Closed.error(&server)))
        }
    }

    /// Connects from a thread that may block, as [`connect`](Self::connect) does on its own
    /// thread.
    ///
    /// # Errors
    /// When the connection fails.
    pub fn connect_blocking(server: &str, key: &DrpcKey) -> Result<Self, DrpcError> {
        let link = Link::connect(server, key, CONNECT_TIMEOUT)?;
        let (outgoing, incoming) = link.split()?;
        incoming.set_receive_timeout(EXPIRY_TICK)?;
        let io = |source| LinkError::Io {
            server: server.to_owned(),
            source,
        };
        let socket = outgoing.stream.try_clone().map_err(io)?;
        let calls = Arc::new(Calls {
            server: server.to_owned(),
            state: Mutex::new(CallsState::default()),
        });
        let (frames, queued) = mpsc::channel();
        let writer_calls = calls.clone();
        let stream = outgoing.stream;
        std::thread::Builder::new()
            .name("drpc-client-write".to_owned())
            .spawn(move || write_frames(stream, &queued, &writer_calls))
            .map_err(io)?;
        let reader_calls = calls.clone();
        std::thread::Builder::new()
            .name("drpc-client-read".to_owned())
            .spawn(move || read_answers(incoming, &reader_calls))
            .map_err(io)?;
        Ok(Self {
            calls,
            sealer: Mutex::new(Sealer {
                framing: outgoing.framing,
                frames,
            }),
            next_call: AtomicU64::new(1),
            timeout: DEFAULT_CALL_TIMEOUT,
            socket,
        })
    }

    /// Calls wait up to `timeout` (the server may cut it shorter to its own limit).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's address.
    pub fn server(&self) -> &str {
        &self.calls.server
    }

    /// Calls sent and not yet answered.
    pub fn calls_in_flight(&self) -> usize {
        self.calls.in_flight()
    }

    /// `function(argument)`: sends the call at once and returns the future of its answer.
    /// Dropping the future abandons the call; its answer is then thrown away.
    ///
    /// The future resolves to [`DrpcError::Refused`] when the topology failed the request,
    /// no answer came in time or the server refused it, and to [`DrpcError::Link`] when the
    /// connection failed or the server fell silent past the call's timeout.
    pub fn call(&self, function: &str, argument: &str) -> CallFuture {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (answer, receiver) = oneshot::channel();
        self.calls.expect(call, self.timeout, answer);
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let queued = {
            let mut sealer = self.sealer.lock().unwrap_or_else(PoisonError::into_inner);
            let frame = sealer.framing.seal(&ToServer::Call {
                call,
                function: function.to_owned(),
                argument: argument.to_owned(),
                timeout_ms: Some(timeout_ms),
            });
            sealer.frames.send(frame).is_ok()
        };
        if !queued {
            // The writer ended, and ended the calls with why; this one too.
            self.calls.end(Ended::Closed);
        }
        CallFuture {
            answer: receiver,
            server: self.calls.server.clone(),
        }
    }
}

impl Drop for AsyncDrpcClient {
    fn drop(&mut self) {
        self.calls.end(Ended::Closed);
        // Wakes the reader out of its read; the writer ends when the frame queue drops.
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// The answer to one call of an [`AsyncDrpcClient`].
#[derive(Debug)]
#[must_use = "a call's answer is only seen by awaiting its future"]
pub struct CallFuture {
    answer: oneshot::Receiver<Result<String, DrpcError>>,
    server: String,
}

impl Future for CallFuture {
    type Output = Result<String, DrpcError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.answer).poll(context) {
            Poll::Ready(Some(answer)) => Poll::Ready(answer),
            Poll::Ready(None) => Poll::Ready(Err(Ended::Closed.error(&self.server))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The writer thread: sends queued frames in order until the client drops its queue or a
/// write fails.
fn write_frames(mut stream: TcpStream, queued: &mpsc::Receiver<Vec<u8>>, calls: &Calls) {
    let mut batch = Vec::new();
    while let Ok(frame) = queued.recv() {
        batch.clear();
        batch.extend_from_slice(&frame);
        while batch.len() < MAX_WRITE
            && let Ok(more) = queued.try_recv()
        {
            batch.extend_from_slice(&more);
        }
        if let Err(source) = stream.write_all(&batch) {
            calls.end(Ended::Io {
                kind: source.kind(),
                reason: format!("cannot send a call: {source}"),
            });
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// The reader thread: settles calls as their answers arrive, and expires those past their
/// deadline, until the connection ends.
fn read_answers(mut incoming: Incoming, calls: &Calls) {
    let mut last_expiry = Instant::now();
    loop {
        let received = incoming.receive();
        let now = Instant::now();
        if now.duration_since(last_expiry) >= EXPIRY_TICK {
            calls.expire(now);
            last_expiry = now;
        }
        match received {
            Ok(ToPeer::Answer { call, result }) => calls.settle(call, Ok(result)),
            Ok(ToPeer::Refused {
                error: CallError::Unauthenticated,
                ..
            }) => return calls.end(Ended::Unauthenticated),
            // Call 0 is the connection's: the server refused a frame and closes.
            Ok(ToPeer::Refused { call: 0, error }) => return calls.end(Ended::Refused(error)),
            Ok(ToPeer::Refused { call, error }) => {
                calls.settle(call, Err(DrpcError::Refused(error)));
            }
            Ok(ToPeer::Requests { .. }) => {
                return calls.end(Ended::Garbled {
                    reason: "the server sent requests to a client".to_owned(),
                });
            }
            Err(LinkError::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => return calls.end(Ended::of(&error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oneshot::tests::block_on;

    fn calls() -> Calls {
        Calls {
            server: "drpc.test:3772".to_owned(),
            state: Mutex::new(CallsState::default()),
        }
    }

    #[test]
    fn answers_reach_their_own_calls_in_any_order() {
        let calls = calls();
        let (first, first_answer) = oneshot::channel();
        let (second, second_answer) = oneshot::channel();
        calls.expect(1, Duration::from_secs(1), first);
        calls.expect(2, Duration::from_secs(1), second);
        calls.settle(2, Ok("two".to_owned()));
        calls.settle(1, Err(DrpcError::Refused(CallError::ShuttingDown)));
        assert_eq!(block_on(second_answer).unwrap().unwrap(), "two");
        assert!(matches!(
            block_on(first_answer).unwrap(),
            Err(DrpcError::Refused(CallError::ShuttingDown))
        ));
        assert_eq!(calls.in_flight(), 0);
    }

    #[test]
    fn a_silent_server_ends_calls_past_their_deadline_only() {
        let calls = calls();
        let (short, short_answer) = oneshot::channel();
        let (long, _long_answer) = oneshot::channel();
        calls.expect(1, Duration::ZERO, short);
        calls.expect(2, Duration::from_secs(3600), long);
        calls.expire(Instant::now() + ANSWER_GRACE);
        let error = block_on(short_answer).unwrap().unwrap_err();
        assert!(
            error.to_string().contains("no answer and no refusal"),
            "{error}"
        );
        assert_eq!(calls.in_flight(), 1);
    }

    #[test]
    fn an_ended_connection_fails_waiting_and_later_calls_with_its_reason() {
        let calls = calls();
        let (waiting, waiting_answer) = oneshot::channel();
        calls.expect(1, Duration::from_secs(1), waiting);
        calls.end(Ended::Unauthenticated);
        calls.end(Ended::Closed);
        let (later, later_answer) = oneshot::channel();
        calls.expect(2, Duration::from_secs(1), later);
        for answer in [waiting_answer, later_answer] {
            assert!(matches!(
                block_on(answer).unwrap(),
                Err(DrpcError::Unauthenticated { .. })
            ));
        }
    }

    #[test]
    fn an_answer_for_an_abandoned_call_is_dropped_quietly() {
        let calls = calls();
        let (sender, receiver) = oneshot::channel();
        calls.expect(9, Duration::from_secs(1), sender);
        drop(receiver);
        calls.settle(9, Ok("late".to_owned()));
        calls.settle(10, Ok("unknown".to_owned()));
        assert_eq!(calls.in_flight(), 0);
    }
}
