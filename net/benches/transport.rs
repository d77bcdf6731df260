//! Transport throughput and latency over loopback TCP (mio and io_uring drivers) and shared
//! memory, in one run, with latency as HDR percentiles.
//!
//! ```text
//! cargo bench -p squall-net --bench transport            # the default sizes
//! SQUALL_NET_BENCH_RECORDS=50000000 cargo bench -p squall-net --bench transport  # a soak
//! ```
//!
//! - throughput: four executors of worker 1 stream records of 64 bytes to worker 2;
//! - latency: one record goes from worker 1 to worker 2, whose sink answers with one record
//!   back; the time is measured on the round trip, one record in flight at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use squall_net::transport::{
    DriverKind, InboundSink, Outbound, OutboundError, PeerSpec, SinkFull, Transport,
    TransportConfig,
};
use squall_net::{ClusterId, ClusterSecret, ConnectionConfig, WorkerId};

const RECORD: usize = 64;

#[derive(Clone, Copy, Debug)]
enum Path {
    Tcp(DriverKind),
    SharedMemory,
}

fn config(worker: u64, path: Path, shm_dir: &std::path::Path) -> TransportConfig {
    let secret = ClusterSecret::new(*b"transport benchmark secret, 32 b").unwrap();
    let connection = ConnectionConfig::new(ClusterId(7), WorkerId(worker), secret);
    let config = TransportConfig::new(connection, "127.0.0.1:0".parse().unwrap());
    match path {
        Path::Tcp(driver) => config.with_driver(driver),
        Path::SharedMemory => config
            .with_driver(DriverKind::Mio)
            .with_shm(shm_dir, 8 << 20),
    }
}

fn peer(path: Path, worker: u64, transport: &Transport) -> PeerSpec {
    match path {
        Path::Tcp(_) => PeerSpec::tcp(WorkerId(worker), transport.local_addr()),
        Path::SharedMemory => PeerSpec::shared_memory(WorkerId(worker)),
    }
}

/// Counts records.
struct Count(Arc<AtomicU64>);

impl InboundSink for Count {
    fn deliver(&mut self, _: u32, _: &[u8]) -> Result<(), SinkFull> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Answers every record with the same bytes.
struct Echo(Option<Outbound>);

impl InboundSink for Echo {
    fn deliver(&mut self, task: u32, record: &[u8]) -> Result<(), SinkFull> {
        let outbound = self.0.as_mut().expect("the echo ring is installed");
        outbound.write(task, record).map_err(|_| SinkFull)
    }

    fn flush(&mut self) {
        if let Some(outbound) = &mut self.0 {
            outbound.publish();
        }
    }
}

/// Records round-trip times.
struct Pong {
    start: Instant,
    histogram: Arc<Mutex<Histogram<u64>>>,
    received: Arc<AtomicU64>,
}

impl InboundSink for Pong {
    fn deliver(&mut self, _: u32, record: &[u8]) -> Result<(), SinkFull> {
        let sent = u64::from_le_bytes(record[..8].try_into().unwrap());
        let now = self.start.elapsed().as_nanos() as u64;
        self.histogram.lock().unwrap().record(now - sent).unwrap();
        self.received.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

fn write(outbound: &mut Outbound, record: &[u8]) {
    loop {
        match outbound.write(1, record) {
            Ok(()) => return,
            Err(OutboundError::Full { .. }) => {
                outbound.publish();
                std::thread::yield_now();
            }
            Err(error) => panic!("{error}"),
        }
    }
}

fn throughput(path: Path, records: u64, dir: &std::path::Path) {
    let received = Arc::new(AtomicU64::new(0));
    let b = Transport::start(config(2, path, dir), Count(received.clone()), |_| {}).unwrap();
    let a = Transport::start(config(1, path, dir), Count(Arc::default()), |_| {}).unwrap();
    a.set_peers([peer(path, 2, &b)]).unwrap();
    b.set_peers([peer(path, 1, &a)]).unwrap();
    let started = Instant::now();
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let mut outbound = a.outbound(WorkerId(2)).unwrap();
            std::thread::spawn(move || {
                let record = [7u8; RECORD];
                for i in 0..records / 4 {
                    write(&mut outbound, &record);
                    if i % 64 == 63 {
                        outbound.publish();
                    }
                }
                outbound.publish();
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let expected = records / 4 * 4;
    while received.load(Ordering::Relaxed) < expected {
        std::thread::sleep(Duration::from_micros(100));
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{:<16} throughput: {:>6.2} M records/s, {:>7.1} MB/s of {RECORD}-byte records ({expected} records)",
        format!("{path:?}"),
        expected as f64 / elapsed / 1e6,
        (expected as f64 * RECORD as f64) / elapsed / 1e6,
    );
}

fn latency(path: Path, samples: u64, dir: &std::path::Path) {
    let start = Instant::now();
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let received = Arc::new(AtomicU64::new(0));
    let pong = Pong {
        start,
        histogram: histogram.clone(),
        received: received.clone(),
    };
    let a = Transport::start(config(1, path, dir), pong, |_| {}).unwrap();
    // B's sink answers through B's own outbound ring, which exists only once B runs: the
    // sink receives it through a channel before the first record arrives.
    let (echo_ring_tx, echo_ring_rx) = std::sync::mpsc::channel::<Outbound>();
    struct LateEcho(Echo, std::sync::mpsc::Receiver<Outbound>);
    impl InboundSink for LateEcho {
        fn deliver(&mut self, task: u32, record: &[u8]) -> Result<(), SinkFull> {
            if self.0.0.is_none() {
                self.0.0 = Some(self.1.recv().unwrap());
            }
            self.0.deliver(task, record)
        }
        fn flush(&mut self) {
            self.0.flush();
        }
    }
    let b = Transport::start(
        config(2, path, dir),
        LateEcho(Echo(None), echo_ring_rx),
        |_| {},
    )
    .unwrap();
    echo_ring_tx.send(b.outbound(WorkerId(1)).unwrap()).unwrap();
    a.set_peers([peer(path, 2, &b)]).unwrap();
    b.set_peers([peer(path, 1, &a)]).unwrap();
    let mut outbound = a.outbound(WorkerId(2)).unwrap();
    let mut record = [0u8; RECORD];
    let warm_up = samples / 10;
    for i in 0..samples + warm_up {
        if i == warm_up {
            histogram.lock().unwrap().reset();
        }
        let now = start.elapsed().as_nanos() as u64;
        record[..8].copy_from_slice(&now.to_le_bytes());
        write(&mut outbound, &record);
        outbound.publish();
        while received.load(Ordering::Acquire) <= i {
            std::hint::spin_loop();
        }
    }
    let histogram = histogram.lock().unwrap();
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{:<16} round trip:  p50 {:>6.1} µs  p99 {:>6.1} µs  p99.9 {:>7.1} µs  max {:>7.1} µs ({} samples)",
        format!("{path:?}"),
        us(0.5),
        us(0.99),
        us(0.999),
        histogram.max() as f64 / 1000.0,
        histogram.len(),
    );
}

fn main() {
    let records: u64 = std::env::var("SQUALL_NET_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4_000_000);
    let samples = records / 200;
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let mut paths = vec![Path::Tcp(DriverKind::Mio)];
    if Transport::start(
        config(9, Path::Tcp(DriverKind::IoUring), dir.path()),
        Count(Arc::default()),
        |_| {},
    )
    .is_ok()
    {
        paths.push(Path::Tcp(DriverKind::IoUring));
    }
    paths.push(Path::SharedMemory);
    for &path in &paths {
        throughput(path, records, dir.path());
    }
    for &path in &paths {
        latency(path, samples, dir.path());
    }
}
