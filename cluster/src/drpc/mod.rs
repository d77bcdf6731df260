//! The DRPC server (`squall drpc`): holds each client's request until a topology serving
//! the function has answered it, failed it, or the request's time is up.
//!
//! Two ports: the DRPC protocol ([`squall_drpc::protocol`]; clients, DRPC spouts and
//! return bolts, publish bolts, every frame authenticated with the cluster secret) and HTTP
//! (`POST /drpc/FUNCTION`, and `GET /subscribe/TOPOLOGY/STREAM` for the subscribers of a
//! published stream, see [`http`] and [`streams`]). Several servers may run; each topology's spouts
//! pull from all of them, and each answer goes back to the server that holds its request.
//!
//! [`DrpcServer::start`] runs a server on a thread of its own, for local mode and for
//! embedders; [`run`] is the daemon.
//!
//! ```
//! use std::time::Duration;
//! use squall_cluster::drpc::{DrpcServer, DrpcServerConfig};
//! use squall_cluster::Secret;
//!
//! let secret = Secret::new("0123456789abcdef0123", "example").unwrap();
//! let config = DrpcServerConfig {
//!     request_timeout: Duration::from_millis(200),
//!     ..DrpcServerConfig::local()
//! };
//! let server = DrpcServer::start(config, secret.clone()).unwrap();
//! let mut client = squall_drpc::DrpcClient::connect(&server.address().to_string(), &secret.cluster_secret()).unwrap();
//! // No topology serves "nothing": the call ends with a timeout error.
//! let error = client.call("nothing", "x").unwrap_err();
//! assert_eq!(error.to_string(), "DRPC request for \"nothing\" timed out after 200 ms");
//! server.stop();
//! ```

pub mod figures;
pub mod http;
pub mod requests;
mod server;
pub mod streams;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::config::ClusterConfig;
use crate::secret::{Secret, SecretError};
use requests::Requests;
use server::Shared;

/// Why a DRPC server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DrpcServerError {
    /// No usable cluster secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A port could not be bound.
    #[error("cannot listen for DRPC {what} on {address}: {source}")]
    Bind {
        /// Which port.
        what: &'static str,
        /// The address.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The runtime or its thread could not start.
    #[error("cannot start the DRPC server's runtime: {0}")]
    Runtime(std::io::Error),
}

/// Where a DRPC server listens and how long requests may wait.
#[derive(Debug, Clone)]
pub struct DrpcServerConfig {
    /// The DRPC protocol's address.
    pub listen: SocketAddr,
    /// The HTTP port's address, if it is on.
    pub http_listen: Option<SocketAddr>,
    /// The longest a request waits for its answer.
    pub request_timeout: Duration,
}

impl DrpcServerConfig {
    /// Loopback, ports chosen by the system, no HTTP, 60 s per request: for local mode and
    /// tests.
    pub fn local() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_listen: None,
            request_timeout: Duration::from_secs(60),
        }
    }

    /// The `[drpc]` section of a cluster configuration.
    ///
    /// # Errors
    /// When the bind address is not an IP address.
    pub fn from_cluster(config: &ClusterConfig) -> Result<Self, DrpcServerError> {
        let settings = &config.drpc;
        let ip: std::net::IpAddr =
            settings
                .bind
                .parse()
                .map_err(|error: std::net::AddrParseError| DrpcServerError::Bind {
                    what: "requests",
                    address: settings.bind.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, error),
                })?;
        Ok(Self {
            listen: SocketAddr::new(ip, settings.port),
            http_listen: (settings.http_port != 0).then(|| SocketAddr::new(ip, settings.http_port)),
            request_timeout: Duration::from_secs(settings.request_timeout_secs),
        })
    }
}

/// Bound ports, ready to serve.
struct Bound {
    shared: Arc<Shared>,
    listener: TcpListener,
    http: Option<TcpListener>,
}

async fn bind(config: &DrpcServerConfig, secret: Secret) -> Result<Bound, DrpcServerError> {
    let bind = |what, address: SocketAddr| async move {
        TcpListener::bind(address)
            .await
            .map_err(|source| DrpcServerError::Bind {
                what,
                address: address.to_string(),
                source,
            })
    };
    let listener = bind("requests", config.listen).await?;
    let http = match config.http_listen {
        Some(address) => Some(bind("HTTP", address).await?),
        None => None,
    };
    let mut first_id = [0u8; 8];
    getrandom::fill(&mut first_id)
        .map_err(|error| DrpcServerError::Runtime(std::io::Error::other(error.to_string())))?;
    // Ids from the lower half of the range, so a run of the server never wraps.
    let first_id = u64::from_le_bytes(first_id) >> 1;
    let address = listener.local_addr().map_err(DrpcServerError::Runtime)?;
    let shared = Arc::new(Shared {
        id: format!("drpc-{address}"),
        secret,
        requests: Mutex::new(Requests::new(first_id)),
        arrived: Notify::new(),
        request_timeout: config.request_timeout,
        streams: Mutex::new(streams::Streams::new()),
        figures: Mutex::new(figures::ServerFigures::new()),
    });
    Ok(Bound {
        shared,
        listener,
        http,
    })
}

async fn serve(bound: Bound, shutdown: watch::Receiver<bool>) {
    let Bound {
        shared,
        listener,
        http,
    } = bound;
    let http =
        http.map(|listener| tokio::spawn(http::listen(shared.clone(), listener, shutdown.clone())));
    server::listen(shared, listener, shutdown).await;
    if let Some(http) = http {
        let _ = http.await;
    }
}

/// A DRPC server running on a thread of its own, stopped by [`stop`](Self::stop) or when
/// dropped.
#[derive(Debug)]
pub struct DrpcServer {
    address: SocketAddr,
    http_address: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl DrpcServer {
    /// Binds the ports and starts serving.
    ///
    /// # Errors
    /// When a port cannot be bound or the runtime cannot start.
    pub fn start(config: DrpcServerConfig, secret: Secret) -> Result<Self, DrpcServerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DrpcServerError::Runtime)?;
        let bound = runtime.block_on(bind(&config, secret))?;
        let address = bound
            .listener
            .local_addr()
            .map_err(DrpcServerError::Runtime)?;
        let http_address = match &bound.http {
            Some(listener) => Some(listener.local_addr().map_err(DrpcServerError::Runtime)?),
            None => None,
        };
        let shared = bound.shared.clone();
        let (shutdown, stop) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("drpc-server".to_owned())
            .spawn(move || runtime.block_on(serve(bound, stop)))
            .map_err(DrpcServerError::Runtime)?;
        tracing::info!(%address, ?http_address, "DRPC server listening");
        Ok(Self {
            address,
            http_address,
            shutdown,
            thread: Some(thread),
            shared,
        })
    }

    /// The server's figures as a Prometheus page, as its HTTP port serves them at
    /// `/metrics`.
    pub fn metrics(&self) -> String {
        self.shared.metrics()
    }

    /// The DRPC protocol's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The HTTP port's address, if it is on.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http_address
    }

    /// Stops serving and joins the thread; clients still waiting see their connection
    /// close.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DrpcServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The `squall drpc` daemon: serves until SIGTERM or SIGINT.
///
/// # Errors
/// When the secret is unusable, a port cannot be bound or the runtime cannot start.
pub fn run(config: &ClusterConfig) -> Result<(), DrpcServerError> {
    let secret = Secret::load(&config.cluster)?;
    let server_config = DrpcServerConfig::from_cluster(config)?;
    crate::shutdown::run_daemon(|shutdown| async move {
        let bound = bind(&server_config, secret).await?;
        tracing::info!(
            address = %server_config.listen,
            http = ?server_config.http_listen,
            timeout_secs = server_config.request_timeout.as_secs(),
            "DRPC server listening"
        );
        serve(bound, shutdown).await;
        tracing::info!("DRPC server stopped");
        Ok(())
    })
    .map_err(DrpcServerError::Runtime)?
}
