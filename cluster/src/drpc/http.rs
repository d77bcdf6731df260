//! The DRPC HTTP port (Storm's `drpc.http.port`): `POST /drpc/FUNCTION` with the argument
//! as the body answers with the result as the body; `GET /subscribe/TOPOLOGY/STREAM` streams
//! the tuples a topology publishes on `STREAM` as Server-Sent Events; `GET /metrics` serves
//! the server's figures in the Prometheus text format, unauthenticated as Prometheus
//! scrapes them (function and stream names, counts and call latencies; no arguments or
//! results).
//!
//! A request is authenticated with two headers: `X-Squall-Time`, the client's clock in
//! milliseconds since the Unix epoch, and `X-Squall-Proof`, the hex of
//! `HMAC(cluster secret, "drpc http", FUNCTION, time, body)` (the control plane's proof,
//! [`squall_drpc::protocol::http_proof`]), or for a subscription
//! `HMAC(cluster secret, "drpc http", "subscribe", path, time)`
//! ([`squall_drpc::protocol::subscribe_proof`]). The server accepts a time within
//! [`HTTP_CLOCK_SKEW`] of its own.
//!
//! Each event of a subscription is `id: N` (the tuple's place in the stream, from 1) and
//! `data: [values...]`. A subscriber has a queue of [`SUBSCRIBER_QUEUE`] events; one whose
//! queue is full is dropped: its stream ends with `event: dropped`, and its connection is
//! closed [`DROPPED_GRACE`] later whether or not it read that far.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use squall_drpc::protocol::{self, CallError};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::server::{DropSignal, Shared, Subscriber};
use super::streams::SubscriberId;

/// Events a subscriber's queue holds; a subscriber whose queue is full is dropped.
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// How long a dropped subscriber's connection stays open to deliver `event: dropped`.
pub const DROPPED_GRACE: Duration = Duration::from_secs(10);

/// How often an idle subscription gets a comment line, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A response's body: a whole text, or a subscription's events.
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The furthest a client's `X-Squall-Time` may be from the server's clock.
pub const HTTP_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The header carrying the client's clock.
pub const TIME_HEADER: &str = "x-squall-time";

/// The header carrying the proof.
pub const PROOF_HEADER: &str = "x-squall-proof";

/// Accepts HTTP connections until shutdown.
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
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a DRPC HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            // Shared by the subscriptions made on this connection: a dropped one ends it.
            let drop_signal = Arc::new(DropSignal::default());
            let signal = drop_signal.clone();
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                let signal = signal.clone();
                async move { Ok::<_, Infallible>(respond(&shared, &signal, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "DRPC HTTP connection ended with an error");
                    }
                }
                () = async {
                    drop_signal.connection.notified().await;
                    tokio::time::sleep(DROPPED_GRACE).await;
                } => {
                    tracing::debug!(%peer, "closed the connection of a dropped subscriber");
                }
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Why a request's `X-Squall-Time` is refused: not a number, or not near the server's clock.
fn check_time(time: &str) -> Result<(), (StatusCode, String)> {
    let Ok(client_ms) = time.parse::<u64>() else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("{TIME_HEADER} {time:?} is not milliseconds since the epoch\n"),
        ));
    };
    if now_ms().abs_diff(client_ms) > u64::try_from(HTTP_CLOCK_SKEW.as_millis()).unwrap_or(0) {
        return Err((
            StatusCode::UNAUTHORIZED,
            format!(
                "unauthenticated: {TIME_HEADER} is more than {} s from the server's clock\n",
                HTTP_CLOCK_SKEW.as_secs()
            ),
        ));
    }
    Ok(())
}

/// `GET /subscribe/TOPOLOGY/STREAM`: checks the proof, then streams the events.
fn subscribe(
    shared: &Arc<Shared>,
    drop_signal: &Arc<DropSignal>,
    request: &Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path();
    let full_name = path.strip_prefix("/subscribe/").unwrap_or_default();
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "subscriptions are GET /subscribe/TOPOLOGY/STREAM\n",
        );
    }
    if let Err(reason) = protocol::split_stream(full_name) {
        return text(
            StatusCode::NOT_FOUND,
            format!("not found: subscriptions are GET /subscribe/TOPOLOGY/STREAM: {reason}\n"),
        );
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let (Some(time), Some(proof)) = (header(TIME_HEADER), header(PROOF_HEADER)) else {
        return text(
            StatusCode::UNAUTHORIZED,
            format!("unauthenticated: the {TIME_HEADER} and {PROOF_HEADER} headers are required\n"),
        );
    };
    if let Err((status, refusal)) = check_time(time) {
        return text(status, refusal);
    }
    let proof = crate::protocol::unhex(proof).unwrap_or_default();
    if !shared.secret.verify(
        protocol::HTTP_PROOF_LABEL,
        &[b"subscribe".as_slice(), path.as_bytes(), time.as_bytes()],
        &proof,
    ) {
        tracing::warn!(stream = %full_name, "refused an unauthenticated subscription");
        return text(
            StatusCode::UNAUTHORIZED,
            "unauthenticated: the proof is wrong (is the cluster secret the same as the server's?)\n",
        );
    }
    let (queue, events) = mpsc::channel(SUBSCRIBER_QUEUE);
    let subscriber = Subscriber {
        queue,
        dropped: drop_signal.clone(),
    };
    let (id, known) = shared.streams().subscribe(full_name, subscriber);
    tracing::debug!(stream = %full_name, known, "new subscriber");
    let first = if known {
        format!(": subscribed to {full_name}\n\n")
    } else {
        format!(": subscribed to {full_name}, not published yet\n\n")
    };
    let body = Events {
        shared: shared.clone(),
        stream: full_name.to_owned(),
        id,
        events,
        drop_signal: drop_signal.clone(),
        pending: Some(Bytes::from(first)),
        keep_alive: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
        ended: false,
    };
    let mut response = Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    response
}

/// A subscription's event stream; unsubscribes when the connection drops it.
struct Events {
    shared: Arc<Shared>,
    stream: String,
    id: SubscriberId,
    events: mpsc::Receiver<Arc<str>>,
    drop_signal: Arc<DropSignal>,
    pending: Option<Bytes>,
    keep_alive: tokio::time::Interval,
    ended: bool,
}

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = this.pending.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        // Checked before the queue: what is queued for a dropped subscriber is not sent.
        if this.drop_signal.dropped.load(Ordering::Acquire) {
            this.ended = true;
            let dropped = format!(
                "event: dropped\ndata: this subscriber was too slow: {SUBSCRIBER_QUEUE} events \
                 of {} waited for it\n\n",
                this.stream
            );
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(dropped)))));
        }
        match this.events.poll_recv(context) {
            Poll::Ready(Some(event)) => {
                this.keep_alive.reset();
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(
                    event.as_bytes().to_vec(),
                )))))
            }
            Poll::Ready(None) => {
                // Closed without a drop: the server is stopping. A drop closes it too, and
                // sets the flag first; look again.
                if this.drop_signal.dropped.load(Ordering::Acquire) {
                    context.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.keep_alive.poll_tick(context) {
                Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                    b": keep-alive\n\n",
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.shared.streams().unsubscribe(&self.stream, self.id);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

async fn respond(
    shared: &Arc<Shared>,
    drop_signal: &Arc<DropSignal>,
    request: Request<Incoming>,
) -> Response<Body> {
    if request.uri().path().starts_with("/subscribe/") {
        return subscribe(shared, drop_signal, &request);
    }
    if request.uri().path() == "/metrics" {
        if request.method() != Method::GET {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "/metrics is read with GET\n",
            );
        }
        let mut response = text(StatusCode::OK, shared.metrics());
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(crate::observe::exposition::CONTENT_TYPE),
        );
        return response;
    }
    let Some(function) = request.uri().path().strip_prefix("/drpc/") else {
        return text(
            StatusCode::NOT_FOUND,
            "not found: DRPC requests are POST /drpc/FUNCTION, subscriptions \
             GET /subscribe/TOPOLOGY/STREAM, figures GET /metrics\n",
        );
    };
    let function = function.to_owned();
    if request.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "DRPC requests are POST /drpc/FUNCTION with the argument as the body\n",
        );
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(time), Some(proof)) = (header(TIME_HEADER), header(PROOF_HEADER)) else {
        return text(
            StatusCode::UNAUTHORIZED,
            format!("unauthenticated: the {TIME_HEADER} and {PROOF_HEADER} headers are required\n"),
        );
    };
    let body = match Limited::new(request.into_body(), protocol::MAX_FRAME)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the argument cannot be read (at most {} bytes): {error}\n",
                    protocol::MAX_FRAME
                ),
            );
        }
    };
    if let Err((status, refusal)) = check_time(&time) {
        return text(status, refusal);
    }
    let proof_bytes = crate::protocol::unhex(&proof).unwrap_or_default();
    if !shared.secret.verify(
        protocol::HTTP_PROOF_LABEL,
        &[function.as_bytes(), time.as_bytes(), &body],
        &proof_bytes,
    ) {
        tracing::warn!(%function, "refused an unauthenticated DRPC HTTP request");
        return text(
            StatusCode::UNAUTHORIZED,
            "unauthenticated: the proof is wrong (is the cluster secret the same as the server's?)\n",
        );
    }
    let Ok(argument) = String::from_utf8(body.to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "the argument is not UTF-8\n");
    };
    match shared.call(&function, argument, None).await {
        Ok(result) => text(StatusCode::OK, result),
        Err(error) => {
            let status = match &error {
                CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                CallError::Invalid { .. } => StatusCode::BAD_REQUEST,
                CallError::Unauthenticated => StatusCode::UNAUTHORIZED,
                CallError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                CallError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
            text(status, format!("{error}\n"))
        }
    }
}
