//! A blocking, authenticated connection to a DRPC server: what the client, the spout and the
//! return bolt share.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use squall_net::auth::PROOF_LEN;

use crate::key::DrpcKey;
use crate::protocol::{self, Direction, Framing, Hello, Identity, ToPeer, ToServer};

/// Why talking to a DRPC server failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The address names no host.
    #[error("cannot resolve the DRPC server address {server:?}: {reason}")]
    Resolve {
        /// The address.
        server: String,
        /// Why.
        reason: String,
    },
    /// The connection failed or was closed.
    #[error("connection to the DRPC server {server} failed: {source}")]
    Io {
        /// The server.
        server: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// This side has no key to prove its frames with.
    #[error("no key to reach the DRPC server {server}: {reason}")]
    NoKey {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server sent something that is not this protocol, or could not be verified.
    #[error("the DRPC server {server} sent a bad frame: {reason}")]
    Garbled {
        /// The server.
        server: String,
        /// What was wrong.
        reason: String,
    },
}

impl LinkError {
    /// Whether the server could not verify this side or this side the server: the two do
    /// not share the cluster secret.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, LinkError::Garbled { reason, .. } if reason.contains("proof is wrong"))
    }
}

/// Keeps a connection to `server` open until `stop` is set, handing each new one to
/// `serve`, which returns `Ok` when it is done for good and an error when the connection
/// failed; reconnects with a backoff from 50 ms to 1 s. `what` names the connection in logs.
pub fn keep_connected(
    server: &str,
    key: &DrpcKey,
    stop: &AtomicBool,
    what: &str,
    mut serve: impl FnMut(Link) -> Result<(), LinkError>,
) {
    let mut backoff = Duration::from_millis(50);
    while !stop.load(Ordering::Relaxed) {
        match Link::connect(server, key, Duration::from_secs(2)) {
            Ok(link) => {
                backoff = Duration::from_millis(50);
                tracing::debug!(%server, what, "connected to the DRPC server");
                match serve(link) {
                    Ok(()) => return,
                    // Closing loses the connection on purpose.
                    Err(_) if stop.load(Ordering::Relaxed) => return,
                    Err(error) => tracing::warn!(%server, what, %error, "lost the DRPC server"),
                }
            }
            Err(error) => tracing::debug!(%server, what, %error, "cannot reach the DRPC server"),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// An open connection to one DRPC server.
#[derive(Debug)]
pub struct Link {
    stream: TcpStream,
    server: String,
    framing: Framing,
    buffer: Vec<u8>,
}

impl Link {
    /// Connects to `server` (`host:port`) within `timeout`, reads its HELLO and names
    /// `key`'s owner in the IDENTITY.
    ///
    /// # Errors
    /// When the address does not resolve, the connection fails or the HELLO is not this
    /// protocol's.
    pub fn connect(server: &str, key: &DrpcKey, timeout: Duration) -> Result<Self, LinkError> {
        let address = server
            .to_socket_addrs()
            .map_err(|error| LinkError::Resolve {
                server: server.to_owned(),
                reason: error.to_string(),
            })?
            .next()
            .ok_or_else(|| LinkError::Resolve {
                server: server.to_owned(),
                reason: "it resolves to no address".to_owned(),
            })?;
        let io = |source| LinkError::Io {
            server: server.to_owned(),
            source,
        };
        let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).map_err(io)?;
        let garbled = |reason: String| LinkError::Garbled {
            server: server.to_owned(),
            reason,
        };
        let len = protocol::body_len(prefix).map_err(|error| garbled(error.to_string()))?;
        let mut body = Vec::new();
        (&mut stream)
            .take(len as u64)
            .read_to_end(&mut body)
            .map_err(io)?;
        let hello: Hello =
            serde_json::from_slice(&body).map_err(|error| garbled(error.to_string()))?;
        let nonce = protocol::hello_nonce(&hello).map_err(garbled)?;
        let (secret, topology) = key.parts().map_err(|reason| LinkError::NoKey {
            server: server.to_owned(),
            reason,
        })?;
        let identity = Identity { topology };
        stream
            .write_all(&protocol::identity_frame(&identity))
            .map_err(io)?;
        Ok(Self {
            stream,
            server: server.to_owned(),
            framing: Framing::new(secret, nonce, Direction::ToServer),
            buffer: Vec::new(),
        })
    }

    /// The server's address, as given to [`connect`](Self::connect).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// How long [`receive`](Self::receive) waits at most.
    ///
    /// # Errors
    /// When the socket refuses the setting.
    pub fn set_receive_timeout(&self, timeout: Duration) -> Result<(), LinkError> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|source| LinkError::Io {
                server: self.server.clone(),
                source,
            })
    }

    /// Sends `message`.
    ///
    /// # Errors
    /// When the connection fails.
    pub fn send(&mut self, message: &ToServer) -> Result<(), LinkError> {
        let frame = self.framing.seal(message);
        self.stream
            .write_all(&frame)
            .map_err(|source| LinkError::Io {
                server: self.server.clone(),
                source,
            })
    }

    /// Splits the link so one thread sends while another receives: the sending side's
    /// framing seals frames for the socket handle beside it, and the [`Incoming`] side only
    /// receives, so the two directions' sequence numbers stay each with their own side.
    ///
    /// # Errors
    /// When the socket cannot be duplicated.
    pub fn split(self) -> Result<(Outgoing, Incoming), LinkError> {
        let stream = self.stream.try_clone().map_err(|source| LinkError::Io {
            server: self.server.clone(),
            source,
        })?;
        let outgoing = Outgoing {
            framing: self.framing.clone(),
            stream,
        };
        Ok((outgoing, Incoming(self)))
    }

    /// Waits for the server's next message.
    ///
    /// # Errors
    /// When the connection fails, closes or times out, or the frame is refused.
    pub fn receive(&mut self) -> Result<ToPeer, LinkError> {
        loop {
            let decoded = self
                .framing
                .decode::<ToPeer>(&self.buffer)
                .map_err(|error| LinkError::Garbled {
                    server: self.server.clone(),
                    reason: error.to_string(),
                })?;
            if let Some((message, used)) = decoded {
                self.buffer.drain(..used);
                return Ok(message);
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = self
                .stream
                .read(&mut chunk)
                .map_err(|source| LinkError::Io {
                    server: self.server.clone(),
                    source,
                })?;
            if read == 0 {
                return Err(LinkError::Io {
                    server: self.server.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ),
                });
            }
            self.buffer.extend_from_slice(&chunk[..read]);
            if self.buffer.len() > protocol::MAX_FRAME + 4 + PROOF_LEN {
                return Err(LinkError::Garbled {
                    server: self.server.clone(),
                    reason: "a frame longer than the maximum".to_owned(),
                });
            }
        }
    }
}

/// The sending side of a [`Link::split`]: seal each message with `framing`, in order, and
/// write the frames to `stream`.
#[derive(Debug)]
pub struct Outgoing {
    /// Seals frames; frames must reach the socket in the order they were sealed.
    pub framing: Framing,
    /// The connection's socket.
    pub stream: TcpStream,
}

/// The receiving side of a [`Link::split`].
#[derive(Debug)]
pub struct Incoming(Link);

impl Incoming {
    /// The server's address.
    pub fn server(&self) -> &str {
        self.0.server()
    }

    /// How long [`receive`](Self::receive) waits at most.
    ///
    /// # Errors
    /// When the socket refuses the setting.
    pub fn set_receive_timeout(&self, timeout: Duration) -> Result<(), LinkError> {
        self.0.set_receive_timeout(timeout)
    }

    /// Waits for the server's next message; a timeout leaves a partly read frame in place,
    /// so the next call carries on with it.
    ///
    /// # Errors
    /// As [`Link::receive`].
    pub fn receive(&mut self) -> Result<ToPeer, LinkError> {
        self.0.receive()
    }
}
