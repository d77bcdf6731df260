//! Feeds arbitrary bytes, in arbitrary pieces, to a connection in each phase of its life,
//! with timers in between. Nothing may panic, and a failed connection must be closed with
//! a CLOSE as the last frame it hands out.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use squall_net::codec::{Decoded, Frame, MAX_FRAME_LEN, decode_frame};
use squall_net::conn::MAX_CONTROL_BYTES;
use squall_net::{
    ClusterId, ClusterSecret, Connection, ConnectionConfig, Nonce, Received, Side, WorkerId,
};

fn config(worker: u64) -> ConnectionConfig {
    static SECRET: OnceLock<ClusterSecret> = OnceLock::new();
    let secret =
        SECRET.get_or_init(|| ClusterSecret::new(*b"fuzzing cluster secret, 32 bytes").unwrap());
    ConnectionConfig::new(ClusterId(1), WorkerId(worker), secret.clone())
        .with_max_frame_len(64 << 10)
}

fn shuttle(from: &mut Connection, to: &mut Connection, now: Instant) {
    let mut buf = vec![0u8; MAX_CONTROL_BYTES];
    let len = from.poll_transmit(&mut buf);
    let mut input = &buf[..len];
    while let Ok(Received::Frame { len, .. }) = to.receive(input, now) {
        input = &input[len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut conn = Connection::new(
        config(1),
        if control & 1 == 0 {
            Side::Initiator
        } else {
            Side::Acceptor
        },
        None,
        Nonce::from_bytes([1; 32]),
        now,
    );
    // Bring the connection to the phase the control byte asks for with a real peer.
    let mut peer = Connection::new(
        config(2),
        if control & 1 == 0 {
            Side::Acceptor
        } else {
            Side::Initiator
        },
        None,
        Nonce::from_bytes([2; 32]),
        now,
    );
    for _ in 0..(control >> 1) % 4 {
        shuttle(&mut conn, &mut peer, now);
        shuttle(&mut peer, &mut conn, now);
    }
    // Feed the input in pieces whose sizes come from the control byte.
    let piece = 1 + usize::from(control >> 3);
    let mut buffer = Vec::new();
    let mut clock = now;
    let mut failed = false;
    for chunk in data.chunks(piece) {
        buffer.extend_from_slice(chunk);
        let mut consumed = 0;
        loop {
            match conn.receive(&buffer[consumed..], clock) {
                Ok(Received::Frame { len, event }) => {
                    if let Some(squall_net::Event::Batch(view)) = event {
                        conn.batch_delivered(view.frame_len());
                    }
                    consumed += len;
                    // A CLOSE from the peer ends the connection without one in reply.
                    if conn.is_closed() {
                        break;
                    }
                }
                Ok(Received::Incomplete(_)) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        buffer.drain(..consumed);
        clock += Duration::from_millis(u64::from(chunk[0]) * 10);
        let _ = conn.handle_timeout(clock);
        if failed || conn.is_closed() {
            break;
        }
    }
    if failed {
        assert!(conn.is_closed());
        let mut out = vec![0u8; MAX_CONTROL_BYTES];
        let len = conn.poll_transmit(&mut out);
        let mut rest = &out[..len];
        let mut last = None;
        while let Ok(Decoded::Frame { frame, len }) = decode_frame(rest, MAX_FRAME_LEN) {
            last = Some(matches!(frame, Frame::Close(_)));
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        assert_eq!(last, Some(true));
    }
});
