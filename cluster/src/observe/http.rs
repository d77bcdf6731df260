//! A small read-only HTTP server on a thread of its own (`tiny_http`), for `/metrics`, the
//! REST API and service discovery. Handlers are plain functions of the request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve HTTP on {address}: {reason}")]
pub struct HttpError {
    /// The address asked for.
    pub address: String,
    /// Why.
    pub reason: String,
}

/// What a handler sees of a request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The path, without the query.
    pub path: String,
    /// The query string (after `?`), empty when there is none.
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl HttpRequest {
    /// The value of query parameter `name`, if present.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }
}

/// A handler's answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// A `200` with `body` of type `content_type`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec_pretty(value).unwrap_or_default(),
        }
    }

    /// A JSON error `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, &serde_json::json!({ "error": message }))
    }
}

/// What answers requests.
pub type Handler = Arc<dyn Fn(&HttpRequest) -> HttpReply + Send + Sync>;

/// A running server; dropping it stops it.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    address: SocketAddr,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Listens on `bind` (`host:port`; port 0 picks a free one) and answers GET requests
    /// with `handler` on a thread named `name`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn start(bind: &str, name: &str, handler: Handler) -> Result<Self, HttpError> {
        let error = |reason: String| HttpError {
            address: bind.to_owned(),
            reason,
        };
        let server =
            Arc::new(tiny_http::Server::http(bind).map_err(|source| error(source.to_string()))?);
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| error("not an IP address".to_owned()))?;
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || serve(&serving, &handler))
            .map_err(|source| error(source.to_string()))?;
        Ok(Self {
            server,
            thread: Some(thread),
            address,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(server: &tiny_http::Server, handler: &Handler) {
    for request in server.incoming_requests() {
        let reply = if *request.method() == tiny_http::Method::Get {
            let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
            let authorization = request
                .headers()
                .iter()
                .find(|header| header.field.equiv("Authorization"))
                .map(|header| header.value.as_str().to_owned());
            handler(&HttpRequest {
                path: path.to_owned(),
                query: query.to_owned(),
                authorization,
            })
        } else {
            HttpReply::error(405, "only GET is served")
        };
        let content_type =
            tiny_http::Header::from_bytes(&b"Content-Type"[..], reply.content_type.as_bytes())
                .expect("a valid header");
        let response = tiny_http::Response::from_data(reply.body)
            .with_status_code(reply.status)
            .with_header(content_type);
        if let Err(error) = request.respond(response) {
            tracing::debug!("an HTTP client left before its answer: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(query: &str) -> HttpRequest {
        HttpRequest {
            path: "/api/v1/topology/x".into(),
            query: query.into(),
            authorization: None,
        }
    }

    #[test]
    fn query_parameters_are_found_by_name() {
        let request = request("window=600&flag&x=1=2");
        assert_eq!(request.query_param("window"), Some("600"));
        assert_eq!(request.query_param("flag"), Some(""));
        assert_eq!(request.query_param("x"), Some("1=2"));
        assert_eq!(request.query_param("missing"), None);
    }

    proptest! {
        /// Any query string is read without panicking, and a parameter put first is found.
        #[test]
        fn any_query_is_read(query in ".*", value in "[a-z0-9:-]*") {
            let _ = request(&query).query_param("window");
            let request = request(&format!("window={value}&{query}"));
            prop_assert_eq!(request.query_param("window"), Some(value.as_str()));
        }
    }
}
