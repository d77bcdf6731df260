//! The DRPC protocol between a DRPC server and its clients, spouts and return bolts, with
//! no I/O: messages, frames and their proofs.
//!
//! ```text
//! server → peer   HELLO frame:    length (4 bytes LE) || JSON Hello (protocol, nonce, server id)
//! peer → server   IDENTITY frame: length (4 bytes LE) || JSON Identity (topology, if any)
//! either way      frame:          length (4 bytes LE) || JSON message || proof (32 bytes)
//!                 proof = HMAC(key, "drpc", nonce, direction, sequence, JSON)
//! ```
//!
//! The key is the cluster secret, or, for a connection whose IDENTITY names a topology, that
//! topology's worker key, which the server derives from the cluster secret (see
//! [`DrpcKey`](crate::DrpcKey)). The identity is a claim that the first proved frame either
//! confirms or refutes; a worker key admits fetching requests, returning results and
//! publishing on its own topology's streams, never calling a function.
//!
//! The nonce is 32 fresh random bytes per connection, the direction is `to-server` or
//! `to-peer`, and the sequence counts the frames sent that way on the connection from 0, as
//! 8 little-endian bytes. A frame therefore cannot be replayed on another connection, moved
//! to another position or reflected back; a peer that does not know the cluster secret can
//! neither send a request nor forge an answer. The proof is the control plane's
//! ([`ClusterSecret::prove`]). Nothing is encrypted.

use serde::{Deserialize, Serialize};
use squall_net::ClusterSecret;
use squall_net::auth::PROOF_LEN;

/// Version of this protocol.
pub const PROTOCOL: u32 = 2;

/// Bytes of a connection's nonce.
pub const NONCE_LEN: usize = 32;

/// Largest JSON body of a frame, in bytes.
pub const MAX_FRAME: usize = 16 << 20;

/// The default port of the DRPC protocol (Storm's `drpc.port`).
pub const DEFAULT_PORT: u16 = 3772;

/// The default port of the DRPC HTTP endpoint (Storm's `drpc.http.port`).
pub const DEFAULT_HTTP_PORT: u16 = 3774;

/// The first frame a server sends on each connection (not authenticated: it carries the
/// nonce the proofs are bound to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The connection's nonce, hex.
    pub nonce: String,
    /// The server's id, for logs.
    pub server: String,
}

/// The first frame a peer sends, right after the server's HELLO: whose key proves the
/// frames that follow. Not itself proved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The topology whose worker key proves this connection's frames; `None` for the
    /// cluster secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<String>,
}

/// Largest IDENTITY body, in bytes: it is read before anything is proved.
pub const MAX_IDENTITY: usize = 1024;

/// What clients, spouts and return bolts send to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToServer {
    /// A client asks for `function(argument)`; `call` numbers it on this connection.
    Call {
        /// The client's number for the call, echoed in the answer.
        call: u64,
        /// The function's name.
        function: String,
        /// Its argument.
        argument: String,
        /// How long the client waits at most, in ms (the server's default when absent or
        /// longer).
        timeout_ms: Option<u64>,
    },
    /// A DRPC spout asks for up to `max` waiting requests of `function`; the server answers
    /// at once when some wait, else when one arrives or after a short while with none.
    Fetch {
        /// The function the spout serves.
        function: String,
        /// Most requests wanted.
        max: u32,
    },
    /// A topology's answer to request `request`.
    Result {
        /// The server's request id.
        request: u64,
        /// The answer.
        result: String,
    },
    /// A topology could not answer request `request`.
    Failure {
        /// The server's request id.
        request: u64,
        /// Why.
        reason: String,
    },
    /// Tuples for the subscribers of `stream` (`<topology name>/<stream>`), oldest first,
    /// each a JSON array of the tuple's values. The server does not answer.
    Publish {
        /// The published stream's full name.
        stream: String,
        /// The tuples.
        tuples: Vec<serde_json::Value>,
        /// Tuples the publisher dropped for this server since its previous frame on the
        /// connection (its queue was full, or a connection was lost with them), so the
        /// server's figures show what its subscribers never saw.
        #[serde(default, skip_serializing_if = "is_zero")]
        dropped: u64,
    },
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One request handed to a spout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedRequest {
    /// The server's id for it.
    pub request: u64,
    /// Its argument.
    pub argument: String,
}

/// What a server sends to its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToPeer {
    /// The answer to a client's call.
    Answer {
        /// The client's number for the call.
        call: u64,
        /// The topology's answer.
        result: String,
    },
    /// A call that gets no answer.
    Refused {
        /// The client's number for the call (0 when the refusal ends the connection).
        call: u64,
        /// Why.
        error: CallError,
    },
    /// Requests for a spout that fetched.
    Requests {
        /// The function.
        function: String,
        /// The requests, possibly none.
        requests: Vec<FetchedRequest>,
    },
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum CallError {
    /// No answer came in time.
    #[error("DRPC request for {function:?} timed out after {after_ms} ms")]
    Timeout {
        /// The function.
        function: String,
        /// How long the server waited.
        after_ms: u64,
    },
    /// The topology serving the function failed the request.
    #[error("DRPC request for {function:?} failed: {reason}")]
    Failed {
        /// The function.
        function: String,
        /// Why.
        reason: String,
    },
    /// The server could not verify the frame: the peer does not hold the cluster secret.
    #[error(
        "DRPC request refused: not authenticated (is the cluster secret the same as the server's?)"
    )]
    Unauthenticated,
    /// The message makes no sense.
    #[error("invalid DRPC request: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// The server is stopping.
    #[error("the DRPC server is shutting down")]
    ShuttingDown,
}

/// Which way a frame travels; part of its proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a client, spout or return bolt to the server.
    ToServer,
    /// From the server to one of those.
    ToPeer,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::ToServer => b"to-server",
            Direction::ToPeer => b"to-peer",
        }
    }
}

/// The proof of frame `sequence` travelling `direction` on the connection of `nonce`.
pub fn frame_proof(
    secret: &ClusterSecret,
    nonce: &[u8],
    direction: Direction,
    sequence: u64,
    body: &[u8],
) -> [u8; PROOF_LEN] {
    secret.prove(
        "drpc",
        &[nonce, direction.label(), &sequence.to_le_bytes(), body],
    )
}

/// Longest function name accepted, in bytes.
pub const MAX_FUNCTION_LEN: usize = 256;

/// Checks a function name.
///
/// # Errors
/// A description naming the problem.
pub fn check_function(function: &str) -> Result<(), String> {
    if function.is_empty() {
        return Err("the function name is empty".to_owned());
    }
    if function.len() > MAX_FUNCTION_LEN {
        return Err(format!(
            "the function name is {} bytes long, more than the limit of {MAX_FUNCTION_LEN}",
            function.len()
        ));
    }
    if function.chars().any(char::is_control) {
        return Err(format!(
            "the function name {function:?} holds control characters"
        ));
    }
    Ok(())
}

/// Longest part (topology name or stream) of a published stream's name, in bytes.
pub const MAX_STREAM_PART_LEN: usize = 128;

/// Checks one part of a published stream's name (`<topology name>/<stream>`): letters,
/// digits, `_`, `-` and `.`, so the name goes into a URL path as it is.
///
/// # Errors
/// A description naming the problem.
pub fn check_stream_part(what: &str, part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if part.len() > MAX_STREAM_PART_LEN {
        return Err(format!(
            "the {what} is {} bytes long, more than the limit of {MAX_STREAM_PART_LEN}",
            part.len()
        ));
    }
    if !part
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "the {what} {part:?} holds characters other than letters, digits, '_', '-' and '.'"
        ));
    }
    Ok(())
}

/// Splits a published stream's full name into its topology name and stream.
///
/// # Errors
/// A description naming the problem.
pub fn split_stream(full: &str) -> Result<(&str, &str), String> {
    let (topology, stream) = full
        .split_once('/')
        .ok_or_else(|| format!("the published stream {full:?} is not <topology>/<stream>"))?;
    check_stream_part("topology name", topology)?;
    check_stream_part("stream name", stream)?;
    Ok((topology, stream))
}

/// Whether `topology_id` (`<name>-<digits>`, or `<name>-<digits>-<digits>` when two were
/// submitted in the same second) is an id of a topology called `name`.
pub fn is_id_of(topology_id: &str, name: &str) -> bool {
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let Some(rest) = topology_id
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('-'))
    else {
        return false;
    };
    match rest.split_once('-') {
        None => digits(rest),
        Some((seconds, suffix)) => digits(seconds) && digits(suffix),
    }
}

/// The label of the HTTP port's proofs.
pub const HTTP_PROOF_LABEL: &str = "drpc http";

/// The proof an HTTP request to `POST /drpc/FUNCTION` carries in `X-Squall-Proof` (hex),
/// over the function, the `X-Squall-Time` header's text and the body.
pub fn http_proof(
    secret: &ClusterSecret,
    function: &str,
    time_ms: &str,
    body: &[u8],
) -> [u8; PROOF_LEN] {
    secret.prove(
        HTTP_PROOF_LABEL,
        &[function.as_bytes(), time_ms.as_bytes(), body],
    )
}

/// The path a subscription to `topology`'s `stream` is requested at.
pub fn subscribe_path(topology: &str, stream: &str) -> String {
    format!("/subscribe/{topology}/{stream}")
}

/// The proof an HTTP request to `GET /subscribe/TOPOLOGY/STREAM` carries in
/// `X-Squall-Proof` (hex), over `subscribe`, the path and the `X-Squall-Time` header's text.
pub fn subscribe_proof(secret: &ClusterSecret, path: &str, time_ms: &str) -> [u8; PROOF_LEN] {
    secret.prove(
        HTTP_PROOF_LABEL,
        &[b"subscribe".as_slice(), path.as_bytes(), time_ms.as_bytes()],
    )
}

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is beyond [`MAX_FRAME`].
    #[error("frame length {len} exceeds the maximum of {max}")]
    TooLong {
        /// The length read.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The proof is wrong.
    #[error("the frame's proof is wrong (is the cluster secret the same on both sides?)")]
    BadProof,
    /// The JSON is not a message of this protocol.
    #[error("not a DRPC message: {reason}")]
    NotAMessage {
        /// What the parser said.
        reason: String,
    },
}

/// One side of a connection's framing: the nonce, the secret and the sequence numbers of
/// both directions. No I/O: callers feed it bytes and send what it returns.
#[derive(Debug, Clone)]
pub struct Framing {
    secret: ClusterSecret,
    nonce: [u8; NONCE_LEN],
    outgoing: Direction,
    sent: u64,
    received: u64,
}

impl Framing {
    /// The framing of a connection with `nonce`, on the side that sends `outgoing`.
    pub fn new(secret: ClusterSecret, nonce: [u8; NONCE_LEN], outgoing: Direction) -> Self {
        Self {
            secret,
            nonce,
            outgoing,
            sent: 0,
            received: 0,
        }
    }

    fn incoming(&self) -> Direction {
        match self.outgoing {
            Direction::ToServer => Direction::ToPeer,
            Direction::ToPeer => Direction::ToServer,
        }
    }

    /// The bytes of the next frame carrying `message`.
    pub fn seal(&mut self, message: &impl Serialize) -> Vec<u8> {
        let body = serde_json::to_vec(message).expect("DRPC messages serialize");
        let proof = frame_proof(&self.secret, &self.nonce, self.outgoing, self.sent, &body);
        self.sent += 1;
        let mut bytes = Vec::with_capacity(4 + body.len() + PROOF_LEN);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&proof);
        bytes
    }

    /// Checks and decodes the next incoming frame's `body` and `proof` (read after its
    /// length, which [`body_len`] checks).
    ///
    /// # Errors
    /// [`FrameError::BadProof`] or [`FrameError::NotAMessage`].
    pub fn open<T: serde::de::DeserializeOwned>(
        &mut self,
        body: &[u8],
        proof: &[u8],
    ) -> Result<T, FrameError> {
        let parts: [&[u8]; 4] = [
            &self.nonce,
            self.incoming().label(),
            &self.received.to_le_bytes(),
            body,
        ];
        if !self.secret.verify("drpc", &parts, proof) {
            return Err(FrameError::BadProof);
        }
        self.received += 1;
        serde_json::from_slice(body).map_err(|error| FrameError::NotAMessage {
            reason: error.to_string(),
        })
    }

    /// Decodes one whole frame at the start of `bytes`: `Ok(None)` while incomplete, else
    /// the message and the bytes it took.
    ///
    /// # Errors
    /// As [`body_len`] and [`open`](Self::open).
    pub fn decode<T: serde::de::DeserializeOwned>(
        &mut self,
        bytes: &[u8],
    ) -> Result<Option<(T, usize)>, FrameError> {
        let Some(length) = bytes.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = body_len(*length)?;
        let Some(frame) = bytes.get(4..4 + len + PROOF_LEN) else {
            return Ok(None);
        };
        let (body, proof) = frame.split_at(len);
        let message = self.open(body, proof)?;
        Ok(Some((message, 4 + len + PROOF_LEN)))
    }
}

/// The body length a frame's 4-byte prefix announces.
///
/// # Errors
/// [`FrameError::TooLong`] beyond [`MAX_FRAME`].
pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong {
            len,
            max: MAX_FRAME,
        });
    }
    Ok(len)
}

/// The bytes of the HELLO frame.
pub fn hello_frame(hello: &Hello) -> Vec<u8> {
    unproved_frame(hello)
}

/// The bytes of the IDENTITY frame.
pub fn identity_frame(identity: &Identity) -> Vec<u8> {
    unproved_frame(identity)
}

fn unproved_frame(message: &impl Serialize) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("handshake messages serialize");
    let mut bytes = Vec::with_capacity(4 + body.len());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// The length an IDENTITY frame's 4-byte prefix announces.
///
/// # Errors
/// [`FrameError::TooLong`] beyond [`MAX_IDENTITY`].
pub fn identity_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_IDENTITY {
        return Err(FrameError::TooLong {
            len,
            max: MAX_IDENTITY,
        });
    }
    Ok(len)
}

/// Decodes an IDENTITY body.
///
/// # Errors
/// [`FrameError::NotAMessage`] when it is not an identity.
pub fn decode_identity(body: &[u8]) -> Result<Identity, FrameError> {
    serde_json::from_slice(body).map_err(|error| FrameError::NotAMessage {
        reason: format!("not an identity: {error}"),
    })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The nonce a HELLO carries.
///
/// # Errors
/// A description when it is not [`NONCE_LEN`] bytes of hex or the protocol differs.
pub fn hello_nonce(hello: &Hello) -> Result<[u8; NONCE_LEN], String> {
    if hello.protocol != PROTOCOL {
        return Err(format!(
            "the server speaks DRPC protocol {}, this side {PROTOCOL}",
            hello.protocol
        ));
    }
    let text = hello.nonce.as_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    if text.len() != 2 * NONCE_LEN {
        return Err(format!(
            "the nonce has {} hex digits, not {}",
            text.len(),
            2 * NONCE_LEN
        ));
    }
    for (byte, pair) in nonce.iter_mut().zip(text.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| "the nonce is not hex".to_owned())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| "the nonce is not hex".to_owned())?;
    }
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> ClusterSecret {
        ClusterSecret::new(*b"0123456789abcdef0123").unwrap()
    }

    fn pair() -> (Framing, Framing) {
        let nonce = [9u8; NONCE_LEN];
        (
            Framing::new(secret(), nonce, Direction::ToServer),
            Framing::new(secret(), nonce, Direction::ToPeer),
        )
    }

    #[test]
    fn messages_have_a_readable_json_form() {
        let call = ToServer::Call {
            call: 1,
            function: "reach".into(),
            argument: "a.com".into(),
            timeout_ms: None,
        };
        assert_eq!(
            serde_json::to_string(&call).unwrap(),
            r#"{"type":"call","call":1,"function":"reach","argument":"a.com","timeout_ms":null}"#
        );
        let refused = ToPeer::Refused {
            call: 1,
            error: CallError::Timeout {
                function: "reach".into(),
                after_ms: 500,
            },
        };
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"type":"refused","call":1,"error":{"error":"timeout","function":"reach","after_ms":500}}"#
        );
    }

    #[test]
    fn frames_round_trip_in_order_and_refuse_replays() {
        let (mut client, mut server) = pair();
        let first = client.seal(&ToServer::Fetch {
            function: "f".into(),
            max: 3,
        });
        let second = client.seal(&ToServer::Failure {
            request: 7,
            reason: "x".into(),
        });
        let mut stream = first.clone();
        stream.extend_from_slice(&second);
        let (message, used) = server.decode::<ToServer>(&stream).unwrap().unwrap();
        assert_eq!(
            message,
            ToServer::Fetch {
                function: "f".into(),
                max: 3
            }
        );
        assert_eq!(used, first.len());
        // The first frame again, in the second frame's place, is refused.
        assert_eq!(
            server.decode::<ToServer>(&first).unwrap_err(),
            FrameError::BadProof
        );
        assert!(server.decode::<ToServer>(&second).unwrap().is_some());
    }

    #[test]
    fn a_frame_is_bound_to_its_direction_and_secret() {
        let (mut client, _) = pair();
        let frame = client.seal(&ToServer::Fetch {
            function: "f".into(),
            max: 1,
        });
        // Reflected back to the client as if the server had sent it.
        let mut reflected = Framing::new(secret(), [9u8; NONCE_LEN], Direction::ToServer);
        assert_eq!(
            reflected.decode::<ToPeer>(&frame).unwrap_err(),
            FrameError::BadProof
        );
        let other = ClusterSecret::new(*b"0123456789abcdef0124").unwrap();
        let mut stranger = Framing::new(other, [9u8; NONCE_LEN], Direction::ToPeer);
        assert_eq!(
            stranger.decode::<ToServer>(&frame).unwrap_err(),
            FrameError::BadProof
        );
    }

    #[test]
    fn long_frames_and_bad_hellos_are_named() {
        let (_, mut server) = pair();
        let error = server
            .decode::<ToServer>(&u32::MAX.to_le_bytes())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "frame length 4294967295 exceeds the maximum of 16777216"
        );
        let hello = Hello {
            protocol: PROTOCOL,
            nonce: "zz".into(),
            server: "s".into(),
        };
        assert_eq!(
            hello_nonce(&hello).unwrap_err(),
            "the nonce has 2 hex digits, not 64"
        );
        let nonce = [0xab; NONCE_LEN];
        let hello = Hello {
            nonce: hex(&nonce),
            ..hello
        };
        assert_eq!(hello_nonce(&hello).unwrap(), nonce);
    }

    #[test]
    fn identities_round_trip_and_bad_ones_are_named() {
        for identity in [
            Identity::default(),
            Identity {
                topology: Some("reach-3-1764950000".into()),
            },
        ] {
            let frame = identity_frame(&identity);
            let len = identity_len(*frame.first_chunk::<4>().unwrap()).unwrap();
            assert_eq!(len, frame.len() - 4);
            assert_eq!(decode_identity(&frame[4..]).unwrap(), identity);
        }
        assert_eq!(identity_frame(&Identity::default())[4..], *b"{}");
        assert_eq!(
            identity_len(2000u32.to_le_bytes()).unwrap_err().to_string(),
            "frame length 2000 exceeds the maximum of 1024"
        );
        let error = decode_identity(br#"{"topology":"a","admin":true}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `admin`"),
            "{error}"
        );
    }

    #[test]
    fn published_stream_names_and_topology_ids() {
        assert_eq!(split_stream("trending/top").unwrap(), ("trending", "top"));
        assert_eq!(
            split_stream("trending").unwrap_err(),
            "the published stream \"trending\" is not <topology>/<stream>"
        );
        assert!(
            split_stream("a/b/c")
                .unwrap_err()
                .contains("stream name \"b/c\"")
        );
        assert!(
            split_stream("/b")
                .unwrap_err()
                .contains("topology name is empty")
        );
        assert!(is_id_of("trending-1764950000", "trending"));
        assert!(is_id_of("trending-1764950000-2", "trending"));
        assert!(is_id_of("app-2-17", "app-2"));
        assert!(!is_id_of("trending-1764950000", "trend"));
        assert!(!is_id_of("trending2-17", "trending"));
        assert!(!is_id_of("trending-", "trending"));
        assert!(!is_id_of("trending-1-2-3", "trending"));
        assert_eq!(subscribe_path("t", "s"), "/subscribe/t/s");
        assert_ne!(
            subscribe_proof(&secret(), "/subscribe/t/s", "1"),
            http_proof(&secret(), "/subscribe/t/s", "1", b"")
        );
    }

    #[test]
    fn bad_function_names_are_named() {
        assert_eq!(
            check_function("").unwrap_err(),
            "the function name is empty"
        );
        assert_eq!(
            check_function(&"x".repeat(300)).unwrap_err(),
            "the function name is 300 bytes long, more than the limit of 256"
        );
        assert!(check_function("a\nb").is_err());
        assert!(check_function("reach").is_ok());
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let (_, mut server) = pair();
            let _ = server.decode::<ToServer>(&bytes);
            let (mut client, _) = pair();
            let _ = client.decode::<ToPeer>(&bytes);
        }

        #[test]
        fn decoding_any_bytes_as_a_publish_frame_never_panics(
            tail in proptest::collection::vec(any::<u8>(), 0..256),
            cut in any::<prop::sample::Index>(),
        ) {
            // A well-proved frame whose body is a publish message's start and then anything.
            let mut body = br#"{"type":"publish","stream":"t/s","tuples":[["#.to_vec();
            body.extend_from_slice(&tail);
            let (_, mut server) = pair();
            let proof = frame_proof(&secret(), &[9u8; NONCE_LEN], Direction::ToServer, 0, &body);
            let mut frame = (body.len() as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(&body);
            frame.extend_from_slice(&proof);
            let _ = server.decode::<ToServer>(&frame);
            let (_, mut server) = pair();
            let _ = server.decode::<ToServer>(&frame[..cut.index(frame.len())]);
        }

        #[test]
        fn publish_messages_round_trip(stream in "[a-z]{1,8}/[a-z]{1,8}", words in proptest::collection::vec(".{0,20}", 0..8), count in any::<u64>()) {
            let (mut client, mut server) = pair();
            let tuples = words.iter().map(|word| serde_json::json!([word, count])).collect();
            let message = ToServer::Publish { stream, tuples, dropped: count % 3 };
            let frame = client.seal(&message);
            let (decoded, _) = server.decode::<ToServer>(&frame).unwrap().unwrap();
            prop_assert_eq!(decoded, message);
        }

        #[test]
        fn decoding_any_identity_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_identity(&bytes);
        }

        #[test]
        fn sealed_messages_round_trip(function in ".{0,40}", argument in ".{0,200}", call in any::<u64>()) {
            let (mut client, mut server) = pair();
            let message = ToServer::Call { call, function, argument, timeout_ms: Some(5) };
            let frame = client.seal(&message);
            let (decoded, used) = server.decode::<ToServer>(&frame).unwrap().unwrap();
            prop_assert_eq!(decoded, message);
            prop_assert_eq!(used, frame.len());
            prop_assert!(server.decode::<ToServer>(&frame[..frame.len() - 1]).unwrap().is_none());
        }

        #[test]
        fn a_changed_byte_is_refused(index in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let (mut client, mut server) = pair();
            let mut frame = client.seal(&ToServer::Result { request: 3, result: "42".into() });
            let at = 4 + index.index(frame.len() - 4);
            frame[at] ^= flip;
            prop_assert!(server.decode::<ToServer>(&frame).is_err());
        }
    }
}
