//! Strategies and helpers shared by the codec and connection tests.
#![allow(dead_code)]

use proptest::prelude::*;
use squall_net::codec::{
    BatchEncoder, Close, CloseCode, Credit, Frame, Hello, MAX_CLOSE_REASON, MAX_FRAME_LEN,
    MIN_FRAME_LIMIT,
};
use squall_net::{ClusterId, Nonce, Proof, TopologyId, WorkerId};

/// A proptest configuration running `n` cases, without failure files (the seeds of
/// failures are printed instead).
pub fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A frame owning its variable parts, so strategies can produce it.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedFrame {
    Hello(Hello),
    Auth([u8; 32]),
    Batch(Vec<(u32, Vec<u8>)>),
    Credit(u64),
    Heartbeat,
    Close(u32, String),
}

impl OwnedFrame {
    /// Appends the encoded frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Self::Batch(records) => {
                let size: usize = 16
                    + records
                        .iter()
                        .map(|(_, r)| squall_net::codec::record_size(r.len()))
                        .sum::<usize>();
                out.resize(start + size, 0xAA);
                let mut batch = BatchEncoder::new(&mut out[start..]).unwrap();
                for (dest, record) in records {
                    batch.push(*dest, record).unwrap();
                }
                assert_eq!(batch.finish(), size);
            }
            other => {
                let frame = other.as_frame();
                out.resize(start + frame.encoded_len(), 0xAA);
                let len = frame.encode(&mut out[start..]).unwrap();
                assert_eq!(len, frame.encoded_len());
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// The borrowed frame (not for batches, which are built with the encoder).
    pub fn as_frame(&self) -> Frame<'_> {
        match self {
            Self::Hello(hello) => Frame::Hello(*hello),
            Self::Auth(proof) => Frame::Auth(squall_net::codec::Auth {
                proof: Proof::from_bytes(*proof),
            }),
            Self::Batch(_) => panic!("batches are built with BatchEncoder"),
            Self::Credit(limit) => Frame::Credit(Credit { limit: *limit }),
            Self::Heartbeat => Frame::Heartbeat,
            Self::Close(code, reason) => Frame::Close(Close {
                code: CloseCode(*code),
                reason,
            }),
        }
    }

    /// Whether `frame` carries the same content.
    pub fn matches(&self, frame: &Frame<'_>) -> bool {
        match (self, frame) {
            (Self::Batch(records), Frame::Batch(view)) => {
                view.len() as usize == records.len()
                    && view
                        .iter()
                        .zip(records)
                        .all(|(got, (dest, bytes))| got.dest_task == *dest && got.bytes == bytes)
            }
            (Self::Batch(_), _) => false,
            (other, frame) => other.as_frame() == *frame,
        }
    }
}

pub fn hello() -> impl Strategy<Value = Hello> {
    (
        1u16..,
        (MIN_FRAME_LIMIT / 8..=MAX_FRAME_LEN / 8).prop_map(|n| n * 8),
        any::<u64>(),
        any::<u64>(),
        (any::<u64>(), any::<u64>()),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(max_version, max_frame_len, cluster, worker, (topology, plan_version), nonce)| {
                Hello {
                    max_version,
                    max_frame_len,
                    cluster_id: ClusterId(cluster),
                    worker_id: WorkerId(worker),
                    topology_id: TopologyId(topology),
                    plan_version,
                    nonce: Nonce::from_bytes(nonce),
                }
            },
        )
}

pub fn records() -> impl Strategy<Value = Vec<(u32, Vec<u8>)>> {
    prop::collection::vec(
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..70)),
        0..12,
    )
}

pub fn frame() -> impl Strategy<Value = OwnedFrame> {
    prop_oneof![
        hello().prop_map(OwnedFrame::Hello),
        any::<[u8; 32]>().prop_map(OwnedFrame::Auth),
        records().prop_map(OwnedFrame::Batch),
        any::<u64>().prop_map(OwnedFrame::Credit),
        Just(OwnedFrame::Heartbeat),
        (
            any::<u32>(),
            prop::string::string_regex(&format!(".{{0,{}}}", MAX_CLOSE_REASON / 4)).unwrap()
        )
            .prop_map(|(code, reason)| OwnedFrame::Close(code, reason)),
    ]
}

/// Parses the golden vectors of `docs/wire-protocol.md`: fenced blocks opened with
/// "```hex golden=NAME", one or more lines of hex byte pairs, `#` starting a comment.
pub fn golden_vectors() -> Vec<(String, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/wire-protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/wire-protocol.md is readable");
    let mut vectors = Vec::new();
    let mut current: Option<(String, Vec<u8>)> = None;
    for line in doc.lines() {
        if let Some(name) = line.trim().strip_prefix("```hex golden=") {
            current = Some((name.trim().to_owned(), Vec::new()));
        } else if line.trim() == "```" {
            if let Some(vector) = current.take() {
                vectors.push(vector);
            }
        } else if let Some((_, bytes)) = current.as_mut() {
            let data = line.split('#').next().unwrap_or("");
            for pair in data.split_whitespace() {
                bytes.push(
                    u8::from_str_radix(pair, 16)
                        .unwrap_or_else(|_| panic!("bad hex byte {pair:?} in line {line:?}")),
                );
            }
        }
    }
    vectors
}

/// `bytes` as lines of 8 hex pairs, the layout of the golden vectors.
pub fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(8)
        .map(|chunk| {
            chunk
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
