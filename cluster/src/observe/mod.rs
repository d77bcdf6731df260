//! Watching a cluster: `/metrics` in the Prometheus text format on every daemon and worker,
//! the read-only REST API on nimbus, and the Prometheus HTTP service-discovery list of every
//! endpoint.
//!
//! - [`exposition`]: the text format.
//! - [`http`]: the server every endpoint runs on.
//! - [`worker_series`]: a worker's figures as series.
//! - [`view`], [`windows`], [`rest`]: the cluster as the REST API shows it.
//! - [`discovery`]: the service-discovery list.
//! - [`page`]: the web UI, one self-contained page over the REST API (no build step).

pub mod discovery;
pub mod exposition;
pub mod http;
pub mod local;
pub mod rest;
pub mod view;
pub mod windows;
pub mod worker_series;

use sha2::{Digest, Sha256};

use crate::secret::Secret;
use http::{HttpReply, HttpRequest};

/// The web UI: one page that draws everything from the REST API.
const PAGE: &str = include_str!("page.html");

/// The web UI's page, as nimbus and `squall local --http` serve it at `/`.
pub fn page() -> HttpReply {
    HttpReply::ok("text/html; charset=utf-8", PAGE)
}

/// Who may read a daemon's HTTP service.
#[derive(Debug, Clone)]
pub enum HttpAccess {
    /// Anyone who reaches it (it listens on loopback only).
    Open,
    /// Only clients sending `Authorization: Bearer <key>`.
    Key(Secret),
}

impl HttpAccess {
    /// `None` when `request` may be answered, else the refusal.
    pub fn refuse(&self, request: &HttpRequest) -> Option<HttpReply> {
        let Self::Key(key) = self else {
            return None;
        };
        let offered = request
            .authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        // Comparing digests keeps the comparison's time independent of the key.
        let matches = Sha256::digest(offered.as_bytes()) == Sha256::digest(key.as_bytes());
        (!matches).then(|| {
            HttpReply::error(
                401,
                "a valid \"Authorization: Bearer <key>\" header is required",
            )
        })
    }
}

/// The address to advertise for a server bound to `bound`: the bound IP, or `host` when it
/// listens on every address.
pub fn advertised(bound: std::net::SocketAddr, host: &str) -> String {
    if bound.ip().is_unspecified() {
        format!("{host}:{}", bound.port())
    } else {
        bound.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> HttpRequest {
        HttpRequest {
            path: "/api/v1/cluster/summary".into(),
            query: String::new(),
            authorization: authorization.map(str::to_owned),
        }
    }

    #[test]
    fn a_keyed_service_refuses_requests_without_the_key() {
        let key = Secret::new(b"0123456789abcdef-key".to_vec(), "test").unwrap();
        let access = HttpAccess::Key(key);
        assert!(
            access
                .refuse(&request(Some("Bearer 0123456789abcdef-key")))
                .is_none()
        );
        for wrong in [None, Some("Bearer nope"), Some("0123456789abcdef-key")] {
            let refusal = access.refuse(&request(wrong)).expect("refused");
            assert_eq!(refusal.status, 401);
        }
        assert!(HttpAccess::Open.refuse(&request(None)).is_none());
    }

    #[test]
    fn servers_on_every_address_advertise_the_host() {
        assert_eq!(advertised("0.0.0.0:9100".parse().unwrap(), "h1"), "h1:9100");
        assert_eq!(
            advertised("10.0.0.2:9100".parse().unwrap(), "h1"),
            "10.0.0.2:9100"
        );
    }
}
