//! The DRPC HTTP port (Storm's `drpc.http.port`): `POST /drpc/FUNCTION` with the argument
//! as the body answers with the result as the body.
//!
//! A request is authenticated with two headers: `X-Squall-Time`, the client's clock in
//! milliseconds since the Unix epoch, and `X-Squall-Proof`, the hex of
//! `HMAC(cluster secret, "drpc http", FUNCTION, time, body)` (the control plane's proof,
//! [`squall_drpc::protocol::http_proof`]). The server accepts a time within
//! [`HTTP_CLOCK_SKEW`] of its own.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use squall_drpc::protocol::{self, CallError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::server::Shared;

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
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "DRPC HTTP connection ended with an error");
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

async fn respond(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(function) = request.uri().path().strip_prefix("/drpc/") else {
        return text(
            StatusCode::NOT_FOUND,
            "not found: DRPC requests are POST /drpc/FUNCTION\n",
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
    let Ok(client_ms) = time.parse::<u64>() else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("{TIME_HEADER} {time:?} is not milliseconds since the epoch\n"),
        );
    };
    if now_ms().abs_diff(client_ms) > u64::try_from(HTTP_CLOCK_SKEW.as_millis()).unwrap_or(0) {
        return text(
            StatusCode::UNAUTHORIZED,
            format!(
                "unauthenticated: {TIME_HEADER} is more than {} s from the server's clock\n",
                HTTP_CLOCK_SKEW.as_secs()
            ),
        );
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
