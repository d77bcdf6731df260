//! The golden vectors of `docs/wire-protocol.md`, checked byte for byte against the codec
//! and the connection state machine.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{OwnedFrame, golden_vectors, hex_lines};
use squall_net::codec::{Decoded, Hello, MAX_FRAME_LEN, decode_frame};
use squall_net::conn::MAX_CONTROL_BYTES;
use squall_net::{
    ClusterId, ClusterSecret, Connection, ConnectionConfig, Nonce, PlanVersion, Proof, Received,
    Side, TopologyId, WorkerId,
};

const CLUSTER: ClusterId = ClusterId(0x0123_4567_89ab_cdef);
const TOPOLOGY: TopologyId = TopologyId(0xfedc_ba98_7654_3210);
const PLAN_VERSION: u64 = 3;
const SECRET: &[u8; 32] = b"squall example cluster secret!!!";

fn example_hello(worker: u64, nonce: u8) -> Hello {
    Hello {
        max_version: 1,
        max_frame_len: 1 << 20,
        cluster_id: CLUSTER,
        worker_id: WorkerId(worker),
        topology_id: TOPOLOGY,
        plan_version: PLAN_VERSION,
        nonce: Nonce::from_bytes([nonce; 32]),
    }
}

/// Every vector the document must hold, computed by the codec.
fn expected() -> BTreeMap<&'static str, Vec<u8>> {
    let secret = ClusterSecret::new(*SECRET).unwrap();
    let mut counting = [0u8; 32];
    for (i, b) in counting.iter_mut().enumerate() {
        *b = i as u8;
    }
    let hello = Hello {
        nonce: Nonce::from_bytes(counting),
        ..example_hello(7, 0)
    };
    let initiator = example_hello(1, 0x11).to_frame_bytes();
    let acceptor = example_hello(2, 0x22).to_frame_bytes();
    let auth = |side| {
        OwnedFrame::Auth(*Proof::compute(&secret, side, &initiator, &acceptor).as_bytes()).encode()
    };
    BTreeMap::from([
        ("hello", OwnedFrame::Hello(hello).encode()),
        ("handshake-initiator-hello", initiator.to_vec()),
        ("handshake-acceptor-hello", acceptor.to_vec()),
        ("handshake-initiator-auth", auth(Side::Initiator)),
        ("handshake-acceptor-auth", auth(Side::Acceptor)),
        (
            "batch",
            OwnedFrame::Batch(vec![
                (3, b"hello".to_vec()),
                (7, Vec::new()),
                (0x0102_0304, b"12345678".to_vec()),
            ])
            .encode(),
        ),
        ("credit", OwnedFrame::Credit(1 << 20).encode()),
        ("heartbeat", OwnedFrame::Heartbeat.encode()),
        (
            "close",
            OwnedFrame::Close(2, "authentication failed".into()).encode(),
        ),
    ])
}

#[test]
fn document_vectors_match_the_codec_byte_for_byte() {
    let documented: BTreeMap<String, Vec<u8>> = golden_vectors().into_iter().collect();
    let expected = expected();
    let mut report = String::new();
    for (name, bytes) in &expected {
        match documented.get(*name) {
            Some(doc) if doc == bytes => {}
            Some(_) => report += &format!("vector {name} differs; the codec gives:\n"),
            None => report += &format!("vector {name} is missing; the codec gives:\n"),
        }
        if documented.get(*name) != Some(bytes) {
            report += &format!("{}\n\n", hex_lines(bytes));
        }
    }
    for name in documented.keys() {
        if !expected.contains_key(name.as_str()) {
            report += &format!("vector {name} in the document is not checked\n");
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn document_vectors_decode_to_one_whole_frame_each() {
    for (name, bytes) in golden_vectors() {
        match decode_frame(&bytes, MAX_FRAME_LEN) {
            Ok(Decoded::Frame { len, .. }) => assert_eq!(len, bytes.len(), "{name}"),
            other => panic!("golden vector {name} does not decode: {other:?}"),
        }
    }
}

#[test]
fn connections_send_the_documented_handshake() {
    let documented: BTreeMap<String, Vec<u8>> = golden_vectors().into_iter().collect();
    let secret = ClusterSecret::new(*SECRET).unwrap();
    let now = Instant::now();
    let config = |worker| {
        ConnectionConfig::new(CLUSTER, WorkerId(worker), secret.clone())
            .with_topology(TOPOLOGY, PlanVersion::new(PLAN_VERSION))
    };
    let mut initiator = Connection::new(
        config(1),
        Side::Initiator,
        Some(WorkerId(2)),
        Nonce::from_bytes([0x11; 32]),
        now,
    );
    let mut acceptor = Connection::new(
        config(2),
        Side::Acceptor,
        None,
        Nonce::from_bytes([0x22; 32]),
        now,
    );
    let mut buf = vec![0u8; MAX_CONTROL_BYTES];
    let mut out = |conn: &mut Connection| {
        let len = conn.poll_transmit(&mut buf);
        buf[..len].to_vec()
    };
    let feed = |conn: &mut Connection, mut input: &[u8]| {
        while let Ok(Received::Frame { len, .. }) = conn.receive(input, now) {
            input = &input[len..];
        }
        assert!(input.is_empty());
    };
    let i_hello = out(&mut initiator);
    let a_hello = out(&mut acceptor);
    assert_eq!(i_hello, documented["handshake-initiator-hello"]);
    assert_eq!(a_hello, documented["handshake-acceptor-hello"]);
    feed(&mut acceptor, &i_hello);
    feed(&mut initiator, &a_hello);
    let i_auth = out(&mut initiator);
    let a_auth = out(&mut acceptor);
    assert_eq!(i_auth, documented["handshake-initiator-auth"]);
    assert_eq!(a_auth, documented["handshake-acceptor-auth"]);
    feed(&mut acceptor, &i_auth);
    feed(&mut initiator, &a_auth);
    // Both open their default 1 MiB initial window with the documented CREDIT.
    assert_eq!(out(&mut initiator), documented["credit"]);
    assert_eq!(out(&mut acceptor), documented["credit"]);
}
