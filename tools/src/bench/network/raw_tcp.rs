//! `tcp-raw`: what loopback TCP carries with nothing of Squall in the way, the reference for
//! the scenarios between workers.
//!
//! One thread writes a [`WRITE_BYTES`] buffer to a loopback TCP connection over and over;
//! another reads into a buffer of the same size and counts the bytes. Nothing is encoded,
//! framed or copied beyond what the kernel does, so its bytes/s are the most a transport
//! over the same sockets could move. The report's tuples/s are those bytes/s over
//! [`RECORD_BYTES`](super::RECORD_BYTES): the rate of records of that size the bare socket
//! would carry.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context;

use super::{PROGRESS_EVERY, RECORD_BYTES};
use crate::cli::BenchCli;
use crate::format;
use crate::progress::ProgressLine;
use crate::report::{NetworkFigures, ScenarioReport};
use crate::scenario::Scenario;

/// Bytes of each write (and of the reader's buffer).
pub const WRITE_BYTES: usize = 1 << 20;

/// A sender and a receiver on one loopback connection; stopped when dropped.
struct Pair {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    sender: Option<JoinHandle<std::io::Result<()>>>,
    receiver: Option<JoinHandle<std::io::Result<()>>>,
}

impl Pair {
    fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).context("listening on loopback")?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&received);
        let receiver = std::thread::Builder::new()
            .name("tcp-raw-receiver".to_owned())
            .spawn(move || {
                let (mut stream, _) = listener.accept()?;
                let mut buffer = vec![0; WRITE_BYTES];
                loop {
                    match stream.read(&mut buffer)? {
                        0 => return Ok(()),
                        read => counted.fetch_add(read as u64, Ordering::Relaxed),
                    };
                }
            })?;
        let stopping = Arc::clone(&stop);
        let sender = std::thread::Builder::new()
            .name("tcp-raw-sender".to_owned())
            .spawn(move || {
                let mut stream = TcpStream::connect(address)?;
                let buffer = vec![0x5a; WRITE_BYTES];
                while !stopping.load(Ordering::Relaxed) {
                    stream.write_all(&buffer)?;
                }
                stream.shutdown(Shutdown::Write)
            })?;
        Ok(Self {
            stop,
            received,
            sender: Some(sender),
            receiver: Some(receiver),
        })
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        for (name, thread) in [
            ("sender", &mut self.sender),
            ("receiver", &mut self.receiver),
        ] {
            if let Some(thread) = thread.take() {
                thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("the tcp-raw {name} panicked"))?
                    .with_context(|| format!("the tcp-raw {name}"))?;
            }
        }
        Ok(())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Runs the reference for the warm-up and window of the command line.
///
/// # Errors
/// When loopback TCP fails.
pub fn run(
    cli: &BenchCli,
    scenario: Scenario,
    progress: &mut ProgressLine,
) -> anyhow::Result<ScenarioReport> {
    let window = cli.duration.get();
    let mut pair = Pair::start()?;
    std::thread::sleep(cli.warmup.get());
    let start = (Instant::now(), pair.received());
    let mut last = start;
    while start.0.elapsed() < window {
        std::thread::sleep(PROGRESS_EVERY.min(window.saturating_sub(start.0.elapsed())));
        let now = (Instant::now(), pair.received());
        let recent = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64();
        progress.update(&format!(
            "{scenario}: {:>5.1}s  {:>12}",
            start.0.elapsed().as_secs_f64(),
            format::bytes_rate(recent),
        ));
        last = now;
    }
    let end = (Instant::now(), pair.received());
    progress.finish();
    pair.finish()?;
    let seconds = end.0.duration_since(start.0).as_secs_f64();
    let bytes_per_sec = (end.1 - start.1) as f64 / seconds.max(1e-9);
    let figures = NetworkFigures {
        link: "raw-tcp".to_owned(),
        record_bytes: RECORD_BYTES as u64,
        wire_bytes_per_tuple: RECORD_BYTES as u64,
        bytes_per_sec,
        raw_tcp_bytes_per_sec: Some(bytes_per_sec),
        raw_tcp_ratio: Some(1.0),
        emitted: None,
        stage_timeline: None,
    };
    let tuples = (end.1 - start.1) / RECORD_BYTES as u64;
    Ok(super::report(
        scenario,
        figures,
        tuples,
        seconds,
        cli.warmup.get(),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bytes_flow_and_the_pair_stops() {
        let mut pair = Pair::start().expect("loopback works");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pair.received() < 4 * WRITE_BYTES as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(pair.received() >= 4 * WRITE_BYTES as u64);
        pair.finish().expect("both ends stop cleanly");
    }
}
