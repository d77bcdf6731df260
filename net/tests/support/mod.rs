//! Helpers for the transport tests: configurations, sinks that check what arrives,
//! senders, a TCP proxy that can cut or freeze connections, and waiting with a deadline.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use squall_net::transport::{
    DriverKind, InboundSink, Outbound, OutboundError, PeerEvent, SinkFull, Transport,
    TransportConfig,
};
use squall_net::{ClusterId, ClusterSecret, ConnectionConfig, WorkerId};

pub const CLUSTER: ClusterId = ClusterId(0x5157_4a11);

pub fn secret() -> ClusterSecret {
    ClusterSecret::new(*b"transport test secret, 32 bytes!").unwrap()
}

/// The drivers to test: mio always, io_uring where the kernel runs it.
pub fn drivers() -> Vec<DriverKind> {
    let mut drivers = vec![DriverKind::Mio];
    let probe = Transport::start(config(99, DriverKind::IoUring), NullSink, |_| {});
    match probe {
        Ok(transport) => {
            drop(transport);
            drivers.push(DriverKind::IoUring);
        }
        Err(error) => eprintln!("skipping io_uring: {error}"),
    }
    drivers
}

/// Connection settings for tests: short timers so failures show within seconds.
pub fn connection(worker: u64) -> ConnectionConfig {
    ConnectionConfig::new(CLUSTER, WorkerId(worker), secret())
        .with_heartbeat_interval(Duration::from_millis(200))
        .with_idle_timeout(Duration::from_secs(2))
        .with_handshake_timeout(Duration::from_secs(2))
}

pub fn config(worker: u64, driver: DriverKind) -> TransportConfig {
    TransportConfig::new(connection(worker), "127.0.0.1:0".parse().unwrap())
        .with_driver(driver)
        .with_reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// Peer events, received on the test thread.
pub struct Events(Receiver<PeerEvent>);

impl Events {
    /// The callback to give the transport, and the receiving end.
    pub fn channel() -> (impl FnMut(PeerEvent) + Send + 'static, Self) {
        let (sender, receiver) = mpsc::channel();
        (
            move |event| {
                let _ = sender.send(event);
            },
            Self(receiver),
        )
    }

    /// Waits for an event matching `wanted`, skipping others; panics after `timeout`.
    pub fn expect(
        &self,
        timeout: Duration,
        what: &str,
        wanted: impl Fn(&PeerEvent) -> bool,
    ) -> PeerEvent {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(event) if wanted(&event) => return event,
                Ok(_) => {}
                Err(_) => panic!("no {what} within {timeout:?}"),
            }
        }
    }

    /// Every event received so far.
    pub fn drain(&self) -> Vec<PeerEvent> {
        self.0.try_iter().collect()
    }
}

pub fn is_up(peer: u64) -> impl Fn(&PeerEvent) -> bool {
    move |event| matches!(event, PeerEvent::Up { peer: p, .. } if *p == WorkerId(peer))
}

pub fn is_down(peer: u64) -> impl Fn(&PeerEvent) -> bool {
    move |event| matches!(event, PeerEvent::Down { peer: p, .. } if *p == WorkerId(peer))
}

pub fn is_rejected(event: &PeerEvent) -> bool {
    matches!(event, PeerEvent::Rejected { .. })
}

/// Polls `condition` until it holds or `timeout` passes; returns its last answer.
pub use squall_test_support::wait_until;

/// A sink that drops everything.
pub struct NullSink;

impl InboundSink for NullSink {
    fn deliver(&mut self, _: u32, _: &[u8]) -> Result<(), SinkFull> {
        Ok(())
    }
}

/// The test record for sequence number `seq` of `source`: source (u32), seq (u64), then
/// `seq % 41` bytes of `seq as u8`. Its destination task is `seq % 5`.
pub fn record(source: u32, seq: u64, out: &mut Vec<u8>) -> u32 {
    out.clear();
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.resize(12 + (seq % 41) as usize, seq as u8);
    (seq % 5) as u32
}

/// What a [`CheckingSink`] saw, shared with the test thread.
#[derive(Default)]
pub struct Seen {
    pub records: AtomicU64,
    pub errors: Mutex<Vec<String>>,
    /// Next expected sequence number per source.
    pub next: Mutex<HashMap<u32, u64>>,
    /// While set, the sink refuses every record.
    pub stalled: AtomicBool,
    /// Records carrying this source are counted here (records from intruders).
    pub foreign: AtomicU64,
}

impl Seen {
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// Waits up to ten seconds for `count` records in all.
    pub fn wait_for(&self, count: u64) -> bool {
        wait_until(Duration::from_secs(10), || {
            self.records.load(Ordering::Relaxed) == count
        })
    }

    pub fn next_of(&self, source: u32) -> u64 {
        self.next.lock().unwrap().get(&source).copied().unwrap_or(0)
    }
}

/// Checks that records of each source arrive in order, intact, each exactly once (a
/// source may start over at 0 after a reconnection when `allow_restart`).
pub struct CheckingSink {
    pub seen: Arc<Seen>,
    next: HashMap<u32, u64>,
    pub allow_gaps: bool,
}

impl CheckingSink {
    pub fn new() -> (Self, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        (
            Self {
                seen: Arc::clone(&seen),
                next: HashMap::new(),
                allow_gaps: false,
            },
            seen,
        )
    }
}

impl InboundSink for CheckingSink {
    fn deliver(&mut self, dest_task: u32, bytes: &[u8]) -> Result<(), SinkFull> {
        if self.seen.stalled.load(Ordering::Relaxed) {
            return Err(SinkFull);
        }
        let fail = |message: String| {
            let mut errors = self.seen.errors.lock().unwrap();
            if errors.len() < 10 {
                errors.push(message);
            }
        };
        if bytes.len() < 12 {
            self.seen.foreign.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let source = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let seq = u64::from_le_bytes(bytes[4..12].try_into().unwrap());
        let mut expected = Vec::new();
        let task = record(source, seq, &mut expected);
        if bytes != expected || dest_task != task {
            fail(format!("record {seq} of source {source} is corrupt"));
        }
        let next = self.next.entry(source).or_insert(0);
        if seq != *next && !(self.allow_gaps && seq > *next) {
            fail(format!("source {source}: got {seq}, expected {next}"));
        }
        *next = seq + 1;
        self.seen.records.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self) {
        let mut shared = self.seen.next.lock().unwrap();
        shared.clone_from(&self.next);
    }
}

/// Writes and publishes record `seq` of `source`.
pub fn send_one(outbound: &mut Outbound, source: u32, seq: u64) {
    let mut buf = Vec::new();
    let task = record(source, seq, &mut buf);
    outbound.write(task, &buf).unwrap();
    outbound.publish();
}

/// Writes `count` records of `source` to `outbound` from a new thread, retrying while the
/// ring is full; returns how many it wrote.
pub fn send_records(mut outbound: Outbound, source: u32, count: u64) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        for seq in 0..count {
            let task = record(source, seq, &mut buf);
            loop {
                // Odd sources encode in place, as executors do; even ones copy.
                let written = if source % 2 == 1 {
                    outbound
                        .append(task, buf.len())
                        .map(|bytes| bytes.copy_from_slice(&buf))
                } else {
                    outbound.write(task, &buf)
                };
                match written {
                    Ok(()) => break,
                    Err(OutboundError::Full { .. }) => {
                        outbound.publish();
                        assert!(Instant::now() < deadline, "source {source} stuck at {seq}");
                        std::thread::yield_now();
                    }
                    Err(error) => panic!("source {source}: {error}"),
                }
            }
            if seq % 64 == 63 {
                outbound.publish();
            }
        }
        outbound.publish();
        count
    })
}

/// A TCP proxy between a worker and its peer, which can cut or freeze the connections it
/// carries.
pub struct Proxy {
    pub addr: SocketAddr,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let streams = Arc::new(Mutex::new(Vec::new()));
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (streams, frozen, stop) = (streams.clone(), frozen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            client.set_nonblocking(false).unwrap();
                            let Ok(server) = TcpStream::connect(upstream) else {
                                continue;
                            };
                            let mut all = streams.lock().unwrap();
                            all.push(client.try_clone().unwrap());
                            all.push(server.try_clone().unwrap());
                            pipe(
                                client.try_clone().unwrap(),
                                server.try_clone().unwrap(),
                                frozen.clone(),
                            );
                            pipe(server, client, frozen.clone());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            addr,
            streams,
            frozen,
            stop,
            thread: Some(thread),
        }
    }

    /// Cuts every connection carried so far (both sides see it end).
    pub fn cut(&self) {
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Stops forwarding bytes, without closing anything: the peers see silence.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        self.frozen.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while frozen.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
