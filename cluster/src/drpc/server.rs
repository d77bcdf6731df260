//! The DRPC protocol port: clients' calls, spouts' fetches, return bolts' results and
//! publish bolts' tuples.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use squall_drpc::protocol::{
    self, CallError, Direction, FrameError, Framing, Hello, Identity, NONCE_LEN, ToPeer, ToServer,
};
use squall_net::auth::PROOF_LEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::figures::{self, CallOutcome, ServerFigures};
use super::requests::Requests;
use super::streams::{Offer, Sink, Streams};
use crate::secret::Secret;

/// How a call's client is answered.
pub(super) type Reply = oneshot::Sender<Result<String, CallError>>;

/// How long a new connection may take to name whose key proves its frames.
const IDENTITY_DEADLINE: Duration = Duration::from_secs(10);

/// How long a fetch with nothing to hand out is held before it is answered empty.
const FETCH_HOLD: Duration = Duration::from_millis(200);

/// What the server's tasks share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) id: String,
    pub(super) secret: Secret,
    pub(super) requests: Mutex<Requests<Reply>>,
    /// Woken at every new request, so held fetches look again.
    pub(super) arrived: Notify,
    /// The longest a call may wait.
    pub(super) request_timeout: Duration,
    /// The published streams and their subscribers.
    pub(super) streams: Mutex<Streams<Subscriber>>,
    /// Calls and publications counted for `/metrics`.
    pub(super) figures: Mutex<ServerFigures>,
}

/// A subscriber's bounded queue, and how to tell its connection it was dropped.
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) queue: mpsc::Sender<Arc<str>>,
    pub(super) dropped: Arc<DropSignal>,
}

/// Set when a subscriber is dropped for being too slow: its event stream ends with an
/// `event: dropped`, and its connection is closed soon after even if it never reads.
#[derive(Debug, Default)]
pub(super) struct DropSignal {
    pub(super) dropped: std::sync::atomic::AtomicBool,
    pub(super) connection: Notify,
}

impl Sink for Subscriber {
    fn offer(&mut self, event: &Arc<str>) -> Offer {
        match self.queue.try_send(event.clone()) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
        }
    }
}

impl Shared {
    fn requests(&self) -> std::sync::MutexGuard<'_, Requests<Reply>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn streams(&self) -> std::sync::MutexGuard<'_, Streams<Subscriber>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn figures(&self) -> std::sync::MutexGuard<'_, ServerFigures> {
        self.figures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The server's Prometheus page.
    pub(super) fn metrics(&self) -> String {
        let (open, waiting) = {
            let requests = self.requests();
            (requests.open_count(), requests.waiting_count())
        };
        let streams = self.streams().gauges();
        figures::exposition(&self.figures(), open, waiting, &streams)
    }

    /// Hands `tuples` to the subscribers of `stream`, dropping those too slow to take them;
    /// `publisher_dropped` tuples never reached this server.
    fn publish(&self, stream: &str, tuples: &[serde_json::Value], publisher_dropped: u64) {
        let slow = self.streams().publish(stream, tuples);
        {
            let mut figures = self.figures();
            figures.record_publisher_dropped(stream, publisher_dropped);
            figures.record_subscribers_dropped(stream, slow.len() as u64);
        }
        for subscriber in slow {
            tracing::info!(%stream, "dropped a subscriber too slow to keep up with its stream");
            subscriber
                .dropped
                .dropped
                .store(true, std::sync::atomic::Ordering::Release);
            subscriber.dropped.connection.notify_one();
        }
    }

    /// Runs `function(argument)`: queues it, waits for its answer up to `timeout` (capped at
    /// the server's limit) and forgets it on timeout.
    pub(super) async fn call(
        &self,
        function: &str,
        argument: String,
        timeout: Option<Duration>,
    ) -> Result<String, CallError> {
        let arrived = std::time::Instant::now();
        if let Err(reason) = protocol::check_function(function) {
            // Not counted under the name: it may be anything a client sent.
            self.figures()
                .record_call("(invalid)", CallOutcome::Refused, arrived.elapsed());
            return Err(CallError::Invalid { reason });
        }
        let answer = self.wait_for_answer(function, argument, timeout).await;
        self.figures()
            .record_call(function, CallOutcome::of(&answer), arrived.elapsed());
        answer
    }

    async fn wait_for_answer(
        &self,
        function: &str,
        argument: String,
        timeout: Option<Duration>,
    ) -> Result<String, CallError> {
        let timeout = timeout.map_or(self.request_timeout, |asked| {
            asked.min(self.request_timeout)
        });
        let (sender, receiver) = oneshot::channel();
        let id = self.requests().submit(function, argument, sender);
        self.arrived.notify_waiters();
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallError::ShuttingDown),
            Err(_) => {
                self.requests().finish(id);
                Err(CallError::Timeout {
                    function: function.to_owned(),
                    after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// Answers request `id` with `answer`, if its client still waits.
    fn settle(&self, id: u64, answer: Result<String, CallError>) {
        if let Some(open) = self.requests().finish(id) {
            let answer = answer.map_err(|error| match error {
                CallError::Failed { reason, .. } => CallError::Failed {
                    function: open.function.clone(),
                    reason,
                },
                other => other,
            });
            let _ = open.reply.send(answer);
        }
    }

    /// Up to `max` requests of `function`, waiting up to [`FETCH_HOLD`] for one.
    async fn fetch(&self, function: &str, max: usize) -> Vec<protocol::FetchedRequest> {
        let deadline = tokio::time::Instant::now() + FETCH_HOLD;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let taken = self.requests().take(function, max);
            if !taken.is_empty() {
                return taken;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }
}

/// Accepts connections until shutdown.
pub(super) async fn listen(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = crate::shutdown::requested(&mut shutdown) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let peer = peer.to_string();
                    if let Err(error) = handle(shared, stream, &peer, shutdown).await {
                        tracing::debug!(%peer, %error, "DRPC connection ended with an error");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept a DRPC connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one frame's body and proof.
async fn read_frame(reader: &mut OwnedReadHalf) -> std::io::Result<(Vec<u8>, [u8; PROOF_LEN])> {
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).await?;
    let len = protocol::body_len(prefix).map_err(std::io::Error::other)?;
    // Grown as the bytes arrive, so a length alone reserves no memory before the proof
    // is checked.
    let mut body = Vec::new();
    (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if body.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the frame ended after {} of its {len} bytes", body.len()),
        ));
    }
    let mut proof = [0u8; PROOF_LEN];
    reader.read_exact(&mut proof).await?;
    Ok((body, proof))
}

/// Reads the IDENTITY frame that follows the HELLO.
async fn read_identity(reader: &mut OwnedReadHalf) -> std::io::Result<Identity> {
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).await?;
    let len = protocol::identity_len(prefix).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    protocol::decode_identity(&body).map_err(std::io::Error::other)
}

async fn handle(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: &str,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|error| std::io::Error::other(error.to_string()))?;
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(&protocol::hello_frame(&Hello {
            protocol: protocol::PROTOCOL,
            nonce: protocol::hex(&nonce),
            server: shared.id.clone(),
        }))
        .await?;
    let identity = match tokio::time::timeout(IDENTITY_DEADLINE, read_identity(&mut reader)).await {
        Ok(Ok(identity)) => identity,
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "refused a DRPC connection without a valid identity");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!(%peer, "refused a DRPC connection that named no identity in time");
            return Ok(());
        }
    };
    let key = match &identity.topology {
        None => shared.secret.cluster_secret(),
        Some(topology) => match crate::validate::topology_id("identity.topology", topology) {
            Ok(()) => shared.secret.worker_key(topology).transport_secret(),
            Err(error) => {
                tracing::warn!(%peer, %error, "refused a DRPC connection");
                return Ok(());
            }
        },
    };
    let framing = Framing::new(key, nonce, Direction::ToPeer);
    let mut incoming = framing.clone();
    let (outbox, mut queued) = mpsc::unbounded_channel::<ToPeer>();
    let write = tokio::spawn(async move {
        let mut framing = framing;
        while let Some(message) = queued.recv().await {
            writer.write_all(&framing.seal(&message)).await?;
        }
        writer.shutdown().await
    });
    let result = loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader) => frame,
            () = crate::shutdown::requested(&mut shutdown) => break Ok(()),
        };
        let (body, proof) = match frame {
            Ok(frame) => frame,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(error) => break Err(error),
        };
        let message = match incoming.open::<ToServer>(&body, &proof) {
            Ok(message) => message,
            Err(FrameError::BadProof) => {
                tracing::warn!(%peer, "refused an unauthenticated DRPC frame");
                let _ = outbox.send(ToPeer::Refused {
                    call: 0,
                    error: CallError::Unauthenticated,
                });
                break Ok(());
            }
            Err(error) => {
                let _ = outbox.send(ToPeer::Refused {
                    call: 0,
                    error: CallError::Invalid {
                        reason: error.to_string(),
                    },
                });
                break Ok(());
            }
        };
        match message {
            ToServer::Call { call, .. } if identity.topology.is_some() => {
                tracing::warn!(
                    %peer,
                    topology = identity.topology.as_deref().unwrap_or_default(),
                    "refused a call made with a topology's worker key"
                );
                let _ = outbox.send(ToPeer::Refused {
                    call,
                    error: CallError::Invalid {
                        reason: "a topology's worker key fetches requests and returns \
                                 results; calling a function needs the cluster secret"
                            .to_owned(),
                    },
                });
            }
            ToServer::Call {
                call,
                function,
                argument,
                timeout_ms,
            } => {
                let shared = shared.clone();
                let outbox = outbox.clone();
                tokio::spawn(async move {
                    let timeout = timeout_ms.map(Duration::from_millis);
                    let answer = match shared.call(&function, argument, timeout).await {
                        Ok(result) => ToPeer::Answer { call, result },
                        Err(error) => ToPeer::Refused { call, error },
                    };
                    let _ = outbox.send(answer);
                });
            }
            ToServer::Fetch { function, max } => {
                let requests = shared.fetch(&function, max as usize).await;
                let _ = outbox.send(ToPeer::Requests { function, requests });
            }
            ToServer::Publish {
                stream,
                tuples,
                dropped,
            } => {
                if let Err(reason) = may_publish(identity.topology.as_deref(), &stream, &tuples) {
                    tracing::warn!(%peer, %reason, "refused a publication");
                    let _ = outbox.send(ToPeer::Refused {
                        call: 0,
                        error: CallError::Invalid { reason },
                    });
                    break Ok(());
                }
                shared.publish(&stream, &tuples, dropped);
            }
            ToServer::Result { request, result } => shared.settle(request, Ok(result)),
            ToServer::Failure { request, reason } => shared.settle(
                request,
                Err(CallError::Failed {
                    function: String::new(),
                    reason,
                }),
            ),
        }
    };
    drop(outbox);
    // Calls still running keep their clones of the outbox; the writer ends with the last.
    let _ = write.await;
    result
}

/// Whether a connection proved by `topology_id`'s worker key (`None`: the cluster secret)
/// may publish `tuples` on `stream`: a topology publishes only on its own streams.
fn may_publish(
    topology_id: Option<&str>,
    stream: &str,
    tuples: &[serde_json::Value],
) -> Result<(), String> {
    let (topology, _) = protocol::split_stream(stream)?;
    if let Some(id) = topology_id
        && !protocol::is_id_of(id, topology)
    {
        return Err(format!(
            "topology {id} may only publish on its own streams, not on {stream}"
        ));
    }
    if let Some(tuple) = tuples.iter().find(|tuple| !tuple.is_array()) {
        return Err(format!(
            "a tuple published on {stream} is not a JSON array: {tuple}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topology_publishes_only_on_its_own_streams() {
        let tuples = [serde_json::json!(["a", 1])];
        assert!(may_publish(None, "anything/s", &tuples).is_ok());
        assert!(may_publish(Some("trending-1764950000"), "trending/top", &tuples).is_ok());
        assert_eq!(
            may_publish(Some("other-1764950000"), "trending/top", &tuples).unwrap_err(),
            "topology other-1764950000 may only publish on its own streams, not on trending/top"
        );
        assert!(may_publish(None, "no-slash", &tuples).is_err());
        assert!(
            may_publish(None, "t/s", &[serde_json::json!({"a": 1})])
                .unwrap_err()
                .contains("not a JSON array")
        );
    }
}
