//! The blocking DRPC client: `function(argument)` on a DRPC server, answered by whichever
//! topology serves the function.

use std::time::Duration;

use squall_net::ClusterSecret;

use crate::link::{Link, LinkError};
use crate::protocol::{CallError, ToPeer, ToServer};

/// How long a call waits by default (Storm's `drpc.request.timeout.secs` default is 600 s;
/// interactive queries want less).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the client waits beyond the call's own timeout for the server's refusal, so a
/// dead server ends the call with an error instead of a hang.
pub(crate) const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum DrpcError {
    /// The server answered with a refusal: timeout, failure, bad request.
    #[error(transparent)]
    Refused(#[from] CallError),
    /// The server and this client do not share the cluster secret.
    #[error(
        "the DRPC server {server} and this client do not share the cluster secret \
         (the request was not authenticated)"
    )]
    Unauthenticated {
        /// The server.
        server: String,
    },
    /// The connection failed or the server sent something unexpected.
    #[error(transparent)]
    Link(LinkError),
    /// The server answered another call than the one asked.
    #[error("the DRPC server {server} answered call {got} while call {asked} was waiting")]
    OutOfStep {
        /// The server.
        server: String,
        /// The call asked.
        asked: u64,
        /// The call answered.
        got: u64,
    },
}

impl From<LinkError> for DrpcError {
    fn from(error: LinkError) -> Self {
        match &error {
            LinkError::Garbled { server, .. } if error.is_unauthenticated() => {
                DrpcError::Unauthenticated {
                    server: server.clone(),
                }
            }
            _ => DrpcError::Link(error),
        }
    }
}

/// A connection to one DRPC server, making one call at a time.
///
/// ```no_run
/// use squall_drpc::DrpcClient;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = squall_net::ClusterSecret::new(std::fs::read("/etc/squall/secret")?)?;
/// let mut client = DrpcClient::connect("drpc1.example:3772", &secret)?;
/// let reach = client.call("reach", "http://example.com/a")?;
/// println!("reach: {reach}");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DrpcClient {
    link: Link,
    next_call: u64,
    timeout: Duration,
}

impl DrpcClient {
    /// Connects to the server at `server` (`host:port`); calls wait up to
    /// [`DEFAULT_CALL_TIMEOUT`].
    ///
    /// # Errors
    /// When the connection fails.
    pub fn connect(server: &str, secret: &ClusterSecret) -> Result<Self, DrpcError> {
        let link = Link::connect(
            server,
            &crate::DrpcKey::cluster(secret.clone()),
            Duration::from_secs(10),
        )?;
        Ok(Self {
            link,
            next_call: 1,
            timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// Calls wait up to `timeout` (the server may cut it shorter to its own limit).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's address.
    pub fn server(&self) -> &str {
        self.link.server()
    }

    /// `function(argument)`: the topology's answer.
    ///
    /// # Errors
    /// [`DrpcError::Refused`] when the topology failed the request, no answer came in
    /// time or the server refused it; [`DrpcError::Link`] when the connection failed.
    pub fn call(&mut self, function: &str, argument: &str) -> Result<String, DrpcError> {
        let call = self.next_call;
        self.next_call += 1;
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        self.link.send(&ToServer::Call {
            call,
            function: function.to_owned(),
            argument: argument.to_owned(),
            timeout_ms: Some(timeout_ms),
        })?;
        self.link
            .set_receive_timeout(self.timeout.saturating_add(ANSWER_GRACE))?;
        match self.link.receive()? {
            ToPeer::Answer { call: got, result } if got == call => Ok(result),
            ToPeer::Refused {
                error: CallError::Unauthenticated,
                ..
            } => Err(DrpcError::Unauthenticated {
                server: self.link.server().to_owned(),
            }),
            ToPeer::Refused { call: got, error } if got == call || got == 0 => {
                Err(DrpcError::Refused(error))
            }
            ToPeer::Answer { call: got, .. } | ToPeer::Refused { call: got, .. } => {
                Err(DrpcError::OutOfStep {
                    server: self.link.server().to_owned(),
                    asked: call,
                    got,
                })
            }
            ToPeer::Requests { .. } => Err(DrpcError::Link(LinkError::Garbled {
                server: self.link.server().to_owned(),
                reason: "requests sent to a client".to_owned(),
            })),
        }
    }
}
