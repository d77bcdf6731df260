//! The connection state machine on virtual time, without sockets: handshake, mutual
//! authentication, credits, heartbeats, timeouts and closing.

mod common;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use squall_net::codec::{
    BatchEncoder, CloseCode, Decoded, Frame, FrameType, Hello, MAX_FRAME_LEN, decode_frame,
};
use squall_net::conn::MAX_CONTROL_BYTES;
use squall_net::{
    ClusterId, ClusterSecret, Connection, ConnectionConfig, ConnectionError, Event, Nonce,
    PlanVersion, Received, Side, State, TopologyId, WorkerId,
};

const CLUSTER: ClusterId = ClusterId(0xC1);

fn secret() -> ClusterSecret {
    ClusterSecret::new(*b"the cluster secret, 32 bytes long").unwrap()
}

fn config(worker: u64) -> ConnectionConfig {
    ConnectionConfig::new(CLUSTER, WorkerId(worker), secret())
        .with_max_frame_len(64 << 10)
        .with_receive_window(128 << 10)
}

/// What a connection reported, owned so tests can keep it.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Authenticated(WorkerId),
    Batch(Vec<(u32, Vec<u8>)>, usize),
    Credit(u64),
    PeerClosed(CloseCode, String),
    Error(ConnectionError),
}

/// Feeds `input` to `conn`, delivering batches at once unless `hold_batches`.
fn feed(conn: &mut Connection, mut input: &[u8], now: Instant, deliver: bool) -> Vec<Seen> {
    let mut seen = Vec::new();
    loop {
        match conn.receive(input, now) {
            Ok(Received::Frame { len, event }) => {
                match event {
                    Some(Event::Authenticated(peer)) => {
                        seen.push(Seen::Authenticated(peer.worker_id))
                    }
                    Some(Event::Batch(view)) => {
                        let records = view
                            .iter()
                            .map(|r| (r.dest_task, r.bytes.to_vec()))
                            .collect();
                        seen.push(Seen::Batch(records, view.frame_len()));
                        if deliver {
                            conn.batch_delivered(view.frame_len());
                        }
                    }
                    Some(Event::CreditGranted { available }) => seen.push(Seen::Credit(available)),
                    Some(Event::PeerClosed { code, reason }) => {
                        seen.push(Seen::PeerClosed(code, reason.to_owned()));
                        return seen;
                    }
                    None => {}
                }
                input = &input[len..];
            }
            Ok(Received::Incomplete(_)) => return seen,
            Err(error) => {
                seen.push(Seen::Error(error));
                return seen;
            }
        }
    }
}

/// A connection of worker `worker` created now, with a nonce of 32 bytes `nonce`.
fn connection(worker: u64, side: Side, expected: Option<u64>, nonce: u8) -> Connection {
    Connection::new(
        config(worker),
        side,
        expected.map(WorkerId),
        Nonce::from_bytes([nonce; 32]),
        Instant::now(),
    )
}

/// What a side reports when `peer` fails to prove the secret.
fn auth_failed(peer: u64) -> [Seen; 1] {
    [Seen::Error(ConnectionError::AuthenticationFailed {
        peer: WorkerId(peer),
    })]
}

fn transmit(conn: &mut Connection) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_CONTROL_BYTES];
    let len = conn.poll_transmit(&mut buf);
    buf.truncate(len);
    buf
}

fn frame_types(mut bytes: &[u8]) -> Vec<FrameType> {
    let mut types = Vec::new();
    while let Ok(Decoded::Frame { frame, len }) = decode_frame(bytes, MAX_FRAME_LEN) {
        types.push(frame.frame_type());
        bytes = &bytes[len..];
    }
    assert!(bytes.is_empty(), "transmit output is whole frames");
    types
}

struct Pair {
    a: Connection,
    b: Connection,
    now: Instant,
    a_seen: Vec<Seen>,
    b_seen: Vec<Seen>,
}

impl Pair {
    fn new(a: ConnectionConfig, b: ConnectionConfig) -> Self {
        let now = Instant::now();
        let b_worker = b.worker_id();
        Self {
            a: Connection::new(
                a,
                Side::Initiator,
                Some(b_worker),
                Nonce::from_bytes([0xA; 32]),
                now,
            ),
            b: Connection::new(b, Side::Acceptor, None, Nonce::from_bytes([0xB; 32]), now),
            now,
            a_seen: Vec::new(),
            b_seen: Vec::new(),
        }
    }

    fn default() -> Self {
        Self::new(config(1), config(2))
    }

    /// Moves control frames both ways until neither side has any.
    fn pump(&mut self) {
        for _ in 0..10 {
            let to_b = transmit(&mut self.a);
            let to_a = transmit(&mut self.b);
            if to_a.is_empty() && to_b.is_empty() {
                return;
            }
            if !self.b.is_closed() {
                self.b_seen.extend(feed(&mut self.b, &to_b, self.now, true));
            }
            if !self.a.is_closed() {
                self.a_seen.extend(feed(&mut self.a, &to_a, self.now, true));
            }
        }
        panic!("control frames kept flowing");
    }

    fn established() -> Self {
        let mut pair = Self::default();
        pair.pump();
        assert!(pair.a.is_established() && pair.b.is_established());
        pair
    }

    fn advance(
        &mut self,
        by: Duration,
    ) -> (Result<(), ConnectionError>, Result<(), ConnectionError>) {
        self.now += by;
        (
            self.a.handle_timeout(self.now),
            self.b.handle_timeout(self.now),
        )
    }
}

/// A batch from `from` within its credit; empty when there is none.
fn batch(from: &mut Connection, records: &[(u32, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME_LEN as usize];
    let Some(mut encoder) = from.start_batch(&mut buf) else {
        return Vec::new();
    };
    for (dest, bytes) in records {
        if encoder.push(*dest, bytes).is_err() {
            break;
        }
    }
    let len = from.finish_batch(encoder);
    buf.truncate(len);
    buf
}

#[test]
fn handshake_authenticates_both_sides_then_opens_credit() {
    let mut pair = Pair::default();
    assert_eq!(pair.a.state(), State::Handshake);
    assert_eq!(frame_types(&transmit(&mut pair.a)), [FrameType::Hello]);
    let mut pair = Pair::default();
    pair.pump();
    assert_eq!(
        pair.a_seen,
        [Seen::Authenticated(WorkerId(2)), Seen::Credit(128 << 10)]
    );
    assert_eq!(
        pair.b_seen,
        [Seen::Authenticated(WorkerId(1)), Seen::Credit(128 << 10)]
    );
    let peer = pair.a.peer().unwrap();
    assert_eq!((peer.version, peer.max_frame_len), (1, 64 << 10));
    // A's largest batch is capped by B's frame limit, not by the larger credit.
    assert_eq!(pair.a.batch_room(), 64 << 10);
}

#[test]
fn batches_flow_only_after_authentication() {
    let mut pair = Pair::default();
    assert!(pair.a.start_batch(&mut [0u8; 1024]).is_none());
    // A peer that skips the handshake and sends a BATCH is refused before any record is
    // looked at.
    let mut buf = [0u8; 64];
    let mut encoder = BatchEncoder::new(&mut buf).unwrap();
    encoder.push(1, b"sneaky").unwrap();
    let len = encoder.finish();
    let seen = feed(&mut pair.b, &buf[..len], pair.now, true);
    assert_eq!(
        seen,
        [Seen::Error(ConnectionError::UnexpectedFrame {
            frame: FrameType::Batch,
            state: "before the peer's HELLO"
        })]
    );
    assert!(pair.b.is_closed());
    let close = transmit(&mut pair.b);
    assert_eq!(frame_types(&close), [FrameType::Close]);
    let Ok(Decoded::Frame {
        frame: Frame::Close(close),
        ..
    }) = decode_frame(&close, MAX_FRAME_LEN)
    else {
        panic!("a CLOSE")
    };
    assert_eq!(close.code, CloseCode::PROTOCOL_ERROR);
    assert_eq!(
        close.reason,
        "BATCH frame is not allowed before the peer's HELLO"
    );
}

#[test]
fn wrong_secret_fails_on_both_sides_before_any_batch() {
    let other = ClusterSecret::new(*b"not the cluster secret at all!!").unwrap();
    let mut pair = Pair::new(
        config(1),
        ConnectionConfig::new(CLUSTER, WorkerId(2), other)
            .with_max_frame_len(64 << 10)
            .with_receive_window(128 << 10),
    );
    pair.pump();
    assert_eq!(pair.a_seen, auth_failed(2));
    assert_eq!(pair.b_seen, auth_failed(1));
    assert!(pair.a.is_drained() && pair.b.is_drained());
    assert!(pair.a.peer().is_none());
    assert!(
        ConnectionError::AuthenticationFailed { peer: WorkerId(2) }.is_authentication_failure()
    );
}

/// A configuration of `worker` in topology `topology`, at the shared plan version `version`.
fn scoped(worker: u64, topology: &str, version: &PlanVersion) -> ConnectionConfig {
    config(worker).with_topology(TopologyId::from_name(topology), version.clone())
}

#[test]
fn handshake_refuses_workers_of_other_topologies_on_both_sides() {
    let version = PlanVersion::new(3);
    let mut pair = Pair::new(
        scoped(1, "words-1", &version),
        scoped(2, "words-2", &version),
    );
    pair.pump();
    let words_1 = TopologyId::from_name("words-1");
    let words_2 = TopologyId::from_name("words-2");
    assert_eq!(
        pair.a_seen,
        [Seen::Error(ConnectionError::TopologyMismatch {
            ours: words_1,
            theirs: words_2
        })]
    );
    assert_eq!(
        pair.b_seen,
        [Seen::Error(ConnectionError::TopologyMismatch {
            ours: words_2,
            theirs: words_1
        })]
    );
    let reason = ConnectionError::TopologyMismatch {
        ours: words_1,
        theirs: words_2,
    };
    assert_eq!(reason.close_code(), CloseCode::TOPOLOGY_MISMATCH);
    assert!(reason.is_authentication_failure());
    assert!(
        reason.to_string().starts_with("peer runs topology 0x"),
        "{reason}"
    );
}

#[test]
fn handshake_refuses_a_peer_of_an_older_plan_and_follows_raised_versions() {
    let current = PlanVersion::new(5);
    let stale = PlanVersion::new(4);
    let mut pair = Pair::new(scoped(1, "words-1", &current), scoped(2, "words-1", &stale));
    pair.pump();
    assert_eq!(
        pair.a_seen,
        [Seen::Error(ConnectionError::StalePlan {
            ours: 5,
            theirs: 4
        })]
    );
    // The stale side accepted the newer HELLO, then learns why it was refused.
    assert_eq!(
        pair.b_seen,
        [Seen::PeerClosed(
            CloseCode::STALE_PLAN,
            "peer runs plan version 4, older than this worker's 5: stale workers are refused"
                .into()
        )]
    );
    assert!(pair.a.peer().is_none() && pair.b.peer().is_none());

    // Once the stale worker follows the new plan, new connections succeed; a version never
    // goes down.
    stale.raise_to(5);
    stale.raise_to(2);
    assert_eq!(stale.get(), 5);
    let mut pair = Pair::new(scoped(1, "words-1", &current), scoped(2, "words-1", &stale));
    pair.pump();
    assert!(pair.a.is_established() && pair.b.is_established());

    // A newer peer is accepted by the older side's own check; the newer side refuses.
    current.raise_to(6);
    let mut pair = Pair::new(scoped(1, "words-1", &stale), scoped(2, "words-1", &current));
    pair.pump();
    assert_eq!(
        pair.b_seen,
        [Seen::Error(ConnectionError::StalePlan {
            ours: 6,
            theirs: 5
        })]
    );
}

#[test]
fn handshake_refuses_other_clusters_and_unexpected_workers() {
    let mut pair = Pair::new(
        config(1),
        ConnectionConfig::new(ClusterId(0xC2), WorkerId(2), secret()),
    );
    pair.pump();
    assert_eq!(
        pair.a_seen,
        [Seen::Error(ConnectionError::ClusterMismatch {
            ours: CLUSTER,
            theirs: ClusterId(0xC2)
        })]
    );

    let now = Instant::now();
    let mut a = connection(1, Side::Initiator, Some(3), 1);
    let mut b = connection(2, Side::Acceptor, None, 2);
    let seen = feed(&mut a, &transmit(&mut b), now, true);
    assert_eq!(
        seen,
        [Seen::Error(ConnectionError::UnexpectedPeer {
            expected: WorkerId(3),
            found: WorkerId(2)
        })]
    );
}

#[test]
fn reflected_hello_and_auth_do_not_authenticate() {
    // An attacker without the secret connects to B and echoes everything B sends.
    let now = Instant::now();
    let mut b = connection(2, Side::Acceptor, None, 2);
    let hello = transmit(&mut b);
    let seen = feed(&mut b, &hello, now, true);
    assert_eq!(
        seen,
        [Seen::Error(ConnectionError::SameWorker {
            worker: WorkerId(2)
        })]
    );

    // Echo with the worker id changed: the nonce still gives it away.
    let mut b = connection(2, Side::Acceptor, None, 2);
    let mut hello = transmit(&mut b);
    hello[24..32].copy_from_slice(&9u64.to_le_bytes());
    let seen = feed(&mut b, &hello, now, true);
    assert_eq!(seen, [Seen::Error(ConnectionError::ReflectedNonce)]);

    // A fresh nonce, then B's own AUTH reflected: it is labelled with B's role, so it fails.
    let mut b = connection(2, Side::Acceptor, None, 2);
    let mut hello = transmit(&mut b);
    hello[24..32].copy_from_slice(&9u64.to_le_bytes());
    hello[48..80].fill(0x77);
    assert!(feed(&mut b, &hello, now, true).is_empty());
    let auth = transmit(&mut b);
    assert_eq!(frame_types(&auth), [FrameType::Auth]);
    let seen = feed(&mut b, &auth, now, true);
    assert_eq!(seen, auth_failed(9));
}

#[test]
fn a_recorded_auth_does_not_replay_on_another_connection() {
    let mut first = Pair::default();
    // Record A's frames on the first connection.
    let hello_and_nothing = transmit(&mut first.a);
    first
        .b_seen
        .extend(feed(&mut first.b, &hello_and_nothing, first.now, true));
    let b_frames = transmit(&mut first.b);
    feed(&mut first.a, &b_frames, first.now, true);
    let mut a_auth = transmit(&mut first.a);
    assert_eq!(frame_types(&a_auth), [FrameType::Auth, FrameType::Credit]);
    a_auth.truncate(squall_net::codec::Auth::FRAME_LEN);

    // Replay A's HELLO and AUTH to a new B with another nonce.
    let now = Instant::now();
    let mut b = connection(2, Side::Acceptor, None, 3);
    let mut replay = hello_and_nothing.clone();
    replay.extend_from_slice(&a_auth);
    let seen = feed(&mut b, &replay, now, true);
    assert_eq!(seen, auth_failed(1));
}

#[test]
fn sender_stays_within_credit_and_receiver_grants_as_it_delivers() {
    let mut pair = Pair::established();
    let record = vec![7u8; 1000];
    let mut in_flight = Vec::new();
    // Send until the 128 KiB window is used up; B does not deliver yet.
    loop {
        let frame = batch(&mut pair.a, &[(1, record.as_slice()); 64]);
        if frame.is_empty() {
            break;
        }
        in_flight.push(frame);
    }
    let (sent, limit) = pair.a.send_credit();
    assert!(
        sent <= limit && limit - sent < 1016 + 24,
        "sent {sent} of {limit}"
    );
    let mut lens = Vec::new();
    for frame in &in_flight {
        for seen in feed(&mut pair.b, frame, pair.now, false) {
            let Seen::Batch(records, len) = seen else {
                panic!("{seen:?}")
            };
            assert!(records.iter().all(|(dest, r)| *dest == 1 && *r == record));
            lens.push(len);
        }
    }
    assert!(
        transmit(&mut pair.b).is_empty(),
        "no credit before delivery"
    );
    // Delivering frees credit; B grants it back in one CREDIT.
    for len in lens {
        pair.b.batch_delivered(len);
    }
    pair.pump();
    assert!(matches!(pair.a_seen.last(), Some(Seen::Credit(n)) if *n == 128 << 10));
}

#[test]
fn a_peer_that_overruns_its_credit_is_closed() {
    let mut pair = Pair::established();
    // Forge a frame as big as the whole window on top of what was already sent.
    let record = vec![0u8; 60 << 10];
    let mut frames = Vec::new();
    for _ in 0..3 {
        let mut buf = vec![0u8; 64 << 10];
        let mut encoder = BatchEncoder::new(&mut buf).unwrap();
        encoder.push(1, &record).unwrap();
        let len = encoder.finish();
        buf.truncate(len);
        frames.extend_from_slice(&buf);
    }
    let seen = feed(&mut pair.b, &frames, pair.now, false);
    let frame_len = 16 + 8 + (60 << 10) as u64;
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[2],
        Seen::Error(ConnectionError::CreditExceeded {
            received: 3 * frame_len,
            limit: 128 << 10
        })
    );
}

#[test]
fn credit_that_goes_down_is_a_protocol_error() {
    let mut pair = Pair::established();
    let mut buf = [0u8; 16];
    squall_net::codec::Credit { limit: 10 }
        .encode(&mut buf)
        .unwrap();
    let seen = feed(&mut pair.a, &buf, pair.now, true);
    assert_eq!(
        seen,
        [Seen::Error(ConnectionError::CreditDecreased {
            previous: 128 << 10,
            limit: 10
        })]
    );
}

#[test]
fn heartbeats_go_out_every_interval_and_silence_kills() {
    let mut pair = Pair::established();
    let interval = Duration::from_secs(1);
    assert_eq!(pair.a.poll_timeout(), Some(pair.now + interval));
    // Exchanging heartbeats keeps both alive well past the idle timeout.
    for _ in 0..20 {
        let (a, b) = pair.advance(interval);
        assert!(a.is_ok() && b.is_ok());
        let to_b = transmit(&mut pair.a);
        assert_eq!(frame_types(&to_b), [FrameType::Heartbeat]);
        assert!(feed(&mut pair.b, &to_b, pair.now, true).is_empty());
        let to_a = transmit(&mut pair.b);
        assert!(feed(&mut pair.a, &to_a, pair.now, true).is_empty());
    }
    // B goes silent: A declares it dead after the idle timeout (5 s), not before.
    for _ in 0..4 {
        assert!(pair.advance(interval).0.is_ok());
        transmit(&mut pair.a);
    }
    let (a, _) = pair.advance(interval);
    assert_eq!(
        a,
        Err(ConnectionError::PeerTimedOut {
            silent_for: Duration::from_secs(5)
        })
    );
    assert!(pair.a.is_closed());
    assert_eq!(frame_types(&transmit(&mut pair.a)), [FrameType::Close]);
    assert_eq!(pair.a.poll_timeout(), None);
}

#[test]
fn paused_receiving_suspends_the_idle_timeout() {
    let mut pair = Pair::established();
    pair.a.set_receive_paused(true, pair.now);
    for _ in 0..30 {
        assert!(pair.advance(Duration::from_secs(1)).0.is_ok());
    }
    pair.a.set_receive_paused(false, pair.now);
    assert!(pair.advance(Duration::from_secs(4)).0.is_ok());
    assert!(matches!(
        pair.advance(Duration::from_secs(1)).0,
        Err(ConnectionError::PeerTimedOut { .. })
    ));
}

#[test]
fn a_handshake_that_stalls_times_out() {
    let mut pair = Pair::default();
    let deadline = pair.a.poll_timeout().unwrap();
    assert_eq!(deadline, pair.now + Duration::from_secs(5));
    assert!(pair.advance(Duration::from_millis(4999)).0.is_ok());
    assert_eq!(
        pair.advance(Duration::from_millis(1)).0,
        Err(ConnectionError::HandshakeTimedOut {
            after: Duration::from_secs(5)
        })
    );
}

#[test]
fn close_reaches_the_peer_with_its_reason() {
    let mut pair = Pair::established();
    pair.a.close(CloseCode::NORMAL, "worker shutting down");
    assert!(pair.a.is_closed() && !pair.a.is_drained());
    pair.pump();
    assert!(pair.a.is_drained());
    assert_eq!(
        pair.b_seen.last(),
        Some(&Seen::PeerClosed(
            CloseCode::NORMAL,
            "worker shutting down".into()
        ))
    );
    assert!(pair.b.is_closed());
    assert_eq!(
        pair.b.receive(&[0u8; 8], pair.now),
        Err(ConnectionError::Closed)
    );
}

#[test]
fn a_large_record_gets_its_room_once_the_receiver_catches_up() {
    // A window exactly one frame large: after partial deliveries the sender must still get
    // room for a frame of the maximum size.
    let config = |w| {
        ConnectionConfig::new(CLUSTER, WorkerId(w), secret())
            .with_max_frame_len(64 << 10)
            .with_receive_window(64 << 10)
    };
    let mut pair = Pair::new(config(1), config(2));
    pair.pump();
    let small = batch(&mut pair.a, &[(1, &[1u8; 100])]);
    let seen = feed(&mut pair.b, &small, pair.now, true);
    assert_eq!(seen.len(), 1);
    pair.pump();
    let big = vec![2u8; (64 << 10) - 24];
    let frame = batch(&mut pair.a, &[(1, &big)]);
    assert_eq!(frame.len(), 64 << 10);
}

fn hello_bytes(worker: u64, nonce: u8) -> Vec<u8> {
    Hello {
        max_version: 1,
        max_frame_len: 64 << 10,
        cluster_id: CLUSTER,
        worker_id: WorkerId(worker),
        topology_id: TopologyId::UNSCOPED,
        plan_version: 0,
        nonce: Nonce::from_bytes([nonce; 32]),
    }
    .to_frame_bytes()
    .to_vec()
}

proptest! {
    #![proptest_config(common::cases(500))]

    /// Whatever arrives, in any phase, the connection never panics; once it fails, it is
    /// closed and its transmit output is whole frames ending in a CLOSE.
    #[test]
    fn arbitrary_input_never_panics(
        phase in 0u8..3,
        garbage in prop::collection::vec(any::<u8>(), 0..400),
        prefix_valid_hello in any::<bool>(),
    ) {
        let mut pair = Pair::default();
        if phase >= 1 {
            pair.pump();
        }
        if phase == 2 {
            pair.a.close(CloseCode::NORMAL, "bye");
        }
        let mut input = Vec::new();
        if prefix_valid_hello && phase == 0 {
            input.extend(hello_bytes(2, 5));
        }
        input.extend_from_slice(&garbage);
        let seen = feed(&mut pair.a, &input, pair.now, true);
        if let Some(Seen::Error(_)) = seen.last() {
            prop_assert!(pair.a.is_closed());
            let out = transmit(&mut pair.a);
            let types = frame_types(&out);
            prop_assert!(types.is_empty() || types.last() == Some(&FrameType::Close));
        }
        // Timers never panic either.
        let _ = pair.advance(Duration::from_secs(10));
    }

    /// Handshake and batches survive any cutting of the byte streams.
    #[test]
    fn handshake_and_batches_survive_any_chunking(
        chunk in 1usize..80,
        records in common::records(),
    ) {
        let mut pair = Pair::default();
        // Bytes sent but not yet arrived, and bytes arrived but not yet consumed.
        let mut to_a = (Vec::new(), Vec::new());
        let mut to_b = (Vec::new(), Vec::new());
        let mut b_records = Vec::new();
        let mut sent_batch = false;
        for _ in 0..5000 {
            to_b.0.extend(transmit(&mut pair.a));
            to_a.0.extend(transmit(&mut pair.b));
            if pair.a.batch_room() > 0 && !sent_batch {
                let refs: Vec<(u32, &[u8])> =
                    records.iter().map(|(d, r)| (*d, r.as_slice())).collect();
                to_b.0.extend(batch(&mut pair.a, &refs));
                sent_batch = true;
            }
            if sent_batch && to_a.0.is_empty() && to_b.0.is_empty() {
                break;
            }
            // At most `chunk` bytes arrive on each side per round.
            for (conn, (wire, arrived), mut out) in [
                (&mut pair.a, &mut to_a, None),
                (&mut pair.b, &mut to_b, Some(&mut b_records)),
            ] {
                let n = wire.len().min(chunk);
                arrived.extend(wire.drain(..n));
                let mut consumed = 0;
                while let Ok(Received::Frame { len, event }) =
                    conn.receive(&arrived[consumed..], pair.now)
                {
                    if let (Some(Event::Batch(view)), Some(out)) = (event, out.as_deref_mut()) {
                        out.extend(view.iter().map(|r| (r.dest_task, r.bytes.to_vec())));
                    }
                    consumed += len;
                }
                arrived.drain(..consumed);
            }
        }
        prop_assert!(pair.a.is_established() && pair.b.is_established());
        prop_assert_eq!(b_records, records);
    }
}

#[test]
fn a_large_frame_before_authentication_is_refused_from_its_header() {
    let mut pair = Pair::default();
    // The first 8 bytes of a 1 MiB frame: refused before the rest is buffered.
    let header = [0, 0, 0x10, 0, 1, 3, 0, 0];
    let seen = feed(&mut pair.b, &header, pair.now, true);
    assert_eq!(
        seen,
        [Seen::Error(ConnectionError::Decode(
            squall_net::codec::DecodeError::FrameTooLong {
                len: 1 << 20,
                max: squall_net::conn::MAX_HANDSHAKE_FRAME_LEN
            }
        ))]
    );
}
