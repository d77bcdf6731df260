//! The blocking subscriber of a published stream: `GET /subscribe/TOPOLOGY/STREAM` on a
//! DRPC server's HTTP port, read as Server-Sent Events.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use squall_drpc::subscribe::{Event, Subscription};
//!
//! let secret = squall_drpc::ClusterSecret::new(std::env::var("SQUALL_CLUSTER_SECRET")?)?;
//! let mut subscription =
//!     Subscription::open("127.0.0.1:3774", &secret, "trending", "trending", Duration::from_secs(5))?;
//! while let Some(event) = subscription.next_event()? {
//!     match event {
//!         Event::Tuple { values, .. } => println!("{values}"),
//!         Event::Dropped(reason) => return Err(reason.into()),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use squall_net::ClusterSecret;

use crate::protocol;

/// Longest line of a response's head or of an event, in bytes.
const MAX_LINE: usize = 1 << 20;

/// Why a subscription failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The address names no host.
    #[error("cannot resolve the DRPC HTTP address {server:?}: {reason}")]
    Resolve {
        /// The address.
        server: String,
        /// Why.
        reason: String,
    },
    /// The connection failed, timed out or was cut.
    #[error("connection to the DRPC HTTP port {server} failed: {source}")]
    Io {
        /// The server.
        server: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server answered with an error status.
    #[error("the DRPC server {server} refused the subscription ({status}): {message}")]
    Refused {
        /// The server.
        server: String,
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The topology or stream name cannot be a published stream's.
    #[error("cannot subscribe: {0}")]
    BadName(String),
    /// The server sent something that is not HTTP or not an event stream.
    #[error("the DRPC server {server} sent a bad response: {reason}")]
    Garbled {
        /// The server.
        server: String,
        /// What was wrong.
        reason: String,
    },
}

/// One event of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A published tuple.
    Tuple {
        /// Its place in the stream, counted by the server from 1 (a gap means tuples this
        /// subscriber did not get).
        id: Option<u64>,
        /// Its values, a JSON array.
        values: serde_json::Value,
    },
    /// The server dropped this subscriber, and says why; the stream ends.
    Dropped(String),
}

/// An open subscription.
#[derive(Debug)]
pub struct Subscription {
    server: String,
    body: BufReader<Body>,
    line: String,
}

impl Subscription {
    /// Subscribes to `topology`'s `stream` at `server` (`host:port` of a DRPC HTTP port),
    /// proving the request with `secret`; returns once the server accepts. Reads wait at
    /// most `timeout`; [`set_read_timeout`](Self::set_read_timeout) changes it.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub fn open(
        server: &str,
        secret: &ClusterSecret,
        topology: &str,
        stream: &str,
        timeout: Duration,
    ) -> Result<Self, SubscribeError> {
        protocol::check_stream_part("topology name", topology).map_err(SubscribeError::BadName)?;
        protocol::check_stream_part("stream name", stream).map_err(SubscribeError::BadName)?;
        let io = |source| SubscribeError::Io {
            server: server.to_owned(),
            source,
        };
        let garbled = |reason: String| SubscribeError::Garbled {
            server: server.to_owned(),
            reason,
        };
        let address = server
            .to_socket_addrs()
            .map_err(|error| SubscribeError::Resolve {
                server: server.to_owned(),
                reason: error.to_string(),
            })?
            .next()
            .ok_or_else(|| SubscribeError::Resolve {
                server: server.to_owned(),
                reason: "it resolves to no address".to_owned(),
            })?;
        let mut stream_socket = TcpStream::connect_timeout(&address, timeout).map_err(io)?;
        stream_socket.set_read_timeout(Some(timeout)).map_err(io)?;
        stream_socket.set_write_timeout(Some(timeout)).map_err(io)?;
        let path = protocol::subscribe_path(topology, stream);
        let time = now_ms().to_string();
        let proof = protocol::hex(&protocol::subscribe_proof(secret, &path, &time));
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\
             X-Squall-Time: {time}\r\nX-Squall-Proof: {proof}\r\n\r\n"
        );
        stream_socket.write_all(request.as_bytes()).map_err(io)?;
        let mut reader = BufReader::new(stream_socket);
        let mut line = String::new();
        read_line(&mut reader, &mut line).map_err(io)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|status| status.parse::<u16>().ok())
            .ok_or_else(|| garbled(format!("not an HTTP status line: {:?}", line.trim_end())))?;
        let mut chunked = false;
        let mut length = None;
        loop {
            read_line(&mut reader, &mut line).map_err(io)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if name == "content-length" {
                    length = value.parse::<u64>().ok();
                }
            }
        }
        let mut body = Body {
            reader,
            chunked,
            chunk_left: 0,
            after_chunk: false,
            done: false,
        };
        if status != 200 {
            let mut message = Vec::new();
            let _ = (&mut body)
                .take(length.unwrap_or(64 * 1024).min(64 * 1024))
                .read_to_end(&mut message);
            return Err(SubscribeError::Refused {
                server: server.to_owned(),
                status,
                message: String::from_utf8_lossy(&message).trim_end().to_owned(),
            });
        }
        Ok(Self {
            server: server.to_owned(),
            body: BufReader::new(body),
            line: String::new(),
        })
    }

    /// How long a read waits at most (`None`: for ever).
    ///
    /// # Errors
    /// When the socket refuses the setting.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), SubscribeError> {
        self.body
            .get_ref()
            .reader
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(|source| SubscribeError::Io {
                server: self.server.clone(),
                source,
            })
    }

    /// The next event; `None` when the server ended the stream.
    ///
    /// # Errors
    /// When the connection fails or times out, or an event is not a JSON array.
    pub fn next_event(&mut self) -> Result<Option<Event>, SubscribeError> {
        let mut id = None;
        let mut kind = String::new();
        let mut data = String::new();
        loop {
            let read =
                read_line(&mut self.body, &mut self.line).map_err(|source| SubscribeError::Io {
                    server: self.server.clone(),
                    source,
                })?;
            if read == 0 {
                return Ok(None);
            }
            let line = self.line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() && kind.is_empty() {
                    continue;
                }
                break;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = value.parse().ok(),
                "event" => kind = value.to_owned(),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                _ => {}
            }
        }
        if kind == "dropped" {
            return Ok(Some(Event::Dropped(data)));
        }
        let values: serde_json::Value =
            serde_json::from_str(&data).map_err(|error| SubscribeError::Garbled {
                server: self.server.clone(),
                reason: format!("an event is not JSON ({error}): {data:?}"),
            })?;
        if !values.is_array() {
            return Err(SubscribeError::Garbled {
                server: self.server.clone(),
                reason: format!("an event is not a JSON array: {data}"),
            });
        }
        Ok(Some(Event::Tuple { id, values }))
    }
}

/// Reads one line into `line` (cleared first), refusing one longer than [`MAX_LINE`].
fn read_line(reader: &mut impl BufRead, line: &mut String) -> std::io::Result<usize> {
    line.clear();
    let read = reader.take(MAX_LINE as u64).read_line(line)?;
    if read == MAX_LINE && !line.ends_with('\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(read)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// A response body, with HTTP/1.1's chunked transfer coding undone.
#[derive(Debug)]
struct Body {
    reader: BufReader<TcpStream>,
    chunked: bool,
    chunk_left: usize,
    /// A chunk's data ended and its CRLF is still to read.
    after_chunk: bool,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buffer.is_empty() {
            return Ok(0);
        }
        if !self.chunked {
            return self.reader.read(buffer);
        }
        if self.chunk_left == 0 {
            let mut line = String::new();
            if self.after_chunk {
                read_line(&mut self.reader, &mut line)?;
                self.after_chunk = false;
            }
            if read_line(&mut self.reader, &mut line)? == 0 {
                self.done = true;
                return Ok(0);
            }
            let size = line.trim_end().split(';').next().unwrap_or_default();
            self.chunk_left = usize::from_str_radix(size.trim(), 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad chunk size line {:?}", line.trim_end()),
                )
            })?;
            if self.chunk_left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let wanted = buffer.len().min(self.chunk_left);
        let read = self.reader.read(&mut buffer[..wanted])?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stream ended inside a chunk",
            ));
        }
        self.chunk_left -= read;
        if self.chunk_left == 0 {
            self.after_chunk = true;
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering with `response`.
    fn serve(response: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = [0u8; 4096];
            let _ = socket.read(&mut head);
            socket.write_all(response).unwrap();
        });
        address
    }

    fn secret() -> ClusterSecret {
        ClusterSecret::new(*b"0123456789abcdef0123").unwrap()
    }

    #[test]
    fn chunked_events_and_a_drop_are_read() {
        let server = serve(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
              15\r\nid: 1\ndata: [\"a\",1]\n\n\r\n\
              7\r\n: ping\n\r\n\
              3\r\nid:\r\n\
              12\r\n 2\ndata: [\"b\",2]\n\n\r\n\
              1f\r\nevent: dropped\ndata: too slow\n\n\r\n\
              0\r\n\r\n",
        );
        let mut subscription =
            Subscription::open(&server, &secret(), "t", "s", Duration::from_secs(5)).unwrap();
        assert_eq!(
            subscription.next_event().unwrap(),
            Some(Event::Tuple {
                id: Some(1),
                values: serde_json::json!(["a", 1])
            })
        );
        assert_eq!(
            subscription.next_event().unwrap(),
            Some(Event::Tuple {
                id: Some(2),
                values: serde_json::json!(["b", 2])
            })
        );
        assert_eq!(
            subscription.next_event().unwrap(),
            Some(Event::Dropped("too slow".into()))
        );
        assert_eq!(subscription.next_event().unwrap(), None);
    }

    #[test]
    fn a_bad_name_is_refused_before_connecting() {
        let error =
            Subscription::open("127.0.0.1:1", &secret(), "t", "a b", Duration::from_secs(1))
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot subscribe: the stream name \"a b\" holds characters other than letters, \
             digits, '_', '-' and '.'"
        );
    }

    #[test]
    fn a_refusal_carries_the_servers_reason() {
        let server =
            serve(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 21\r\n\r\nunauthenticated: bad\n");
        let error =
            Subscription::open(&server, &secret(), "t", "s", Duration::from_secs(5)).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("refused the subscription (401): unauthenticated: bad"),
            "{error}"
        );
    }
}
