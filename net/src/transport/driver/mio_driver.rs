//! The readiness-based driver: mio (epoll on Linux, kqueue on BSDs), available everywhere.
//!
//! mio registers sockets edge-triggered, so the driver remembers readiness ("latched")
//! and keeps reading or writing until the kernel says it would block. A connection whose
//! receive buffer is full, or whose reading is paused, keeps its latched readiness and is
//! read again as soon as it may be.
//!
//! With TLS (feature `tls`), each connection runs a rustls session between its socket and
//! its buffers; connections without one take the plain path.

use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::SockRef;

#[cfg(target_os = "linux")]
use super::timer::ShortTimer;
use super::{CLOSE_LINGER, ConnBufs, ConnId, Driver, IoEvent, Waker};
use crate::transport::buf::MAX_CHUNKS;
use crate::transport::config::{DriverKind, TransportConfig};
use crate::transport::socket;
#[cfg(feature = "tls")]
use crate::transport::tls::{ReadStop, TlsSession, WriteStop};

const WAKE: Token = Token(usize::MAX);
const LISTEN: Token = Token(usize::MAX - 1);
/// Every watched descriptor (`Driver::watch`): any of them readable means "woken".
const WATCH: Token = Token(usize::MAX - 3);
#[cfg(target_os = "linux")]
const TIMER: Token = Token(usize::MAX - 2);

/// A [`Waker`] over mio's.
#[derive(Debug)]
struct MioWaker(mio::Waker);

impl Waker for MioWaker {
    fn wake(&self) {
        if let Err(error) = self.0.wake() {
            tracing::error!("cannot wake the transport thread: {error}");
        }
    }
}

#[derive(Debug)]
struct MioConn {
    stream: TcpStream,
    bufs: ConnBufs,
    connecting: bool,
    /// Latched readiness: the socket may have bytes (or EOF) to read.
    readable: bool,
    /// Latched readiness: the socket may take more bytes.
    writable: bool,
    paused: bool,
    /// Set by `close`: the time after which queued bytes are abandoned.
    closing: Option<Instant>,
    eof: bool,
    failed: Option<io::Error>,
    #[cfg(feature = "tls")]
    tls: Option<Box<TlsSession>>,
}

impl MioConn {
    /// Whether writing has something to do: queued bytes, or TLS records to send.
    fn has_output(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.has_output(self.bufs.send.queued());
        }
        self.bufs.send.queued() > 0
    }
}

/// The mio driver; see the [contract](super).
#[derive(Debug)]
pub(crate) struct MioDriver {
    poll: Poll,
    events: Events,
    waker: Arc<MioWaker>,
    #[cfg(target_os = "linux")]
    timer: ShortTimer,
    listener: Option<TcpListener>,
    conns: HashMap<ConnId, MioConn>,
    next_id: u64,
    config: TransportConfig,
    /// Ids whose readiness or state changed since they were last driven.
    dirty: Vec<ConnId>,
    /// Ids to drive in this poll (kept to reuse its allocation).
    touched: Vec<ConnId>,
    /// Connections reported closed by the last poll, kept until the next one so that the
    /// loop can read their last bytes.
    closed: Vec<(ConnId, MioConn)>,
}

impl MioDriver {
    pub(crate) fn new(config: &TransportConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(MioWaker(mio::Waker::new(poll.registry(), WAKE)?));
        Ok(Self {
            #[cfg(target_os = "linux")]
            timer: ShortTimer::new(poll.registry(), TIMER)?,
            poll,
            events: Events::with_capacity(256),
            waker,
            listener: None,
            conns: HashMap::new(),
            next_id: 1,
            config: config.clone(),
            dirty: Vec::new(),
            touched: Vec::new(),
            closed: Vec::new(),
        })
    }

    fn add(&mut self, mut stream: TcpStream, connecting: bool) -> io::Result<ConnId> {
        #[cfg(feature = "tls")]
        let tls = match self.config.tls() {
            Some(tls) if connecting => Some(Box::new(TlsSession::client(tls)?)),
            Some(tls) => Some(Box::new(TlsSession::server(tls)?)),
            None => None,
        };
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.poll.registry().register(
            &mut stream,
            Token(id.0 as usize),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns.insert(
            id,
            MioConn {
                stream,
                bufs: ConnBufs::new(&self.config),
                connecting,
                readable: false,
                writable: false,
                paused: false,
                closing: None,
                eof: false,
                failed: None,
                #[cfg(feature = "tls")]
                tls,
            },
        );
        Ok(id)
    }

    fn accept(&mut self, events: &mut Vec<IoEvent>) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => {
                    if let Err(error) = socket::tune(SockRef::from(&stream), &self.config) {
                        tracing::warn!("cannot set socket options for {addr}: {error}");
                    }
                    match self.add(stream, false) {
                        Ok(conn) => events.push(IoEvent::Accepted { conn, addr }),
                        Err(error) => tracing::warn!("cannot register {addr}: {error}"),
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    return;
                }
            }
        }
    }

    /// Waits for readiness, at most `timeout`. epoll counts its timeout in whole
    /// milliseconds, so a shorter wait arms the timer descriptor instead and waits without
    /// a limit: the timer, I/O or the waker ends it, whichever comes first (elsewhere mio
    /// rounds it up to a millisecond). No wait is ever a sleep the waker cannot cut short.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        let timeout = match timeout {
            Some(short) if !short.is_zero() && short < Duration::from_millis(1) => {
                self.timer.arm(short)?;
                None
            }
            other => other,
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                self.events.clear();
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Whether some connection can make progress without waiting for the kernel.
    fn has_ready_work(&self) -> bool {
        self.conns.values().any(|conn| {
            (conn.readable && !conn.paused && conn.closing.is_none())
                || (conn.writable && conn.has_output())
                || conn.closing.is_some() && !conn.has_output()
        })
    }

    /// Reads, writes and finishes the connection as far as possible.
    fn drive(&mut self, id: ConnId, events: &mut Vec<IoEvent>, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.connecting {
            return;
        }
        if conn.readable && !conn.paused && conn.closing.is_none() && read(conn) {
            events.push(IoEvent::Received(id));
        }
        if conn.writable && conn.has_output() && write(conn) && conn.closing.is_none() {
            events.push(IoEvent::Sent(id));
        }
        let done = conn.eof
            || conn.failed.is_some()
            || conn
                .closing
                .is_some_and(|deadline| !conn.has_output() || now >= deadline);
        if done {
            let mut conn = self.conns.remove(&id).expect("the connection exists");
            let _ = self.poll.registry().deregister(&mut conn.stream);
            events.push(IoEvent::Closed(id, conn.failed.take()));
            self.closed.push((id, conn));
        }
    }

    fn finish_connect(&mut self, id: ConnId, events: &mut Vec<IoEvent>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let outcome = match conn.stream.take_error() {
            Ok(Some(error)) | Err(error) => Err(error),
            Ok(None) => match conn.stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::NotConnected => return,
                Err(error) => Err(error),
            },
        };
        match outcome {
            Ok(()) => {
                conn.connecting = false;
                events.push(IoEvent::Connected(id));
            }
            Err(error) => {
                let mut conn = self.conns.remove(&id).expect("the connection exists");
                let _ = self.poll.registry().deregister(&mut conn.stream);
                events.push(IoEvent::ConnectFailed(id, error));
            }
        }
    }
}

/// Reads until the socket would block, the buffer is full, or the stream ends; returns
/// whether bytes arrived.
fn read(conn: &mut MioConn) -> bool {
    #[cfg(feature = "tls")]
    if let Some(tls) = conn.tls.as_mut() {
        let (got, stop) = tls.read(&mut conn.stream, &mut conn.bufs.recv);
        match stop {
            // Keep the readiness latched: read again once the loop consumed some bytes.
            ReadStop::Full => {}
            ReadStop::WouldBlock => conn.readable = false,
            ReadStop::Eof => {
                conn.eof = true;
                conn.readable = false;
            }
            ReadStop::Failed(error) => conn.failed = Some(error),
        }
        return got;
    }
    let mut got = false;
    loop {
        let spare = conn.bufs.recv.spare_mut();
        if spare.is_empty() {
            // Keep the readiness latched: read again once the loop consumed some bytes.
            return got;
        }
        match conn.stream.read(spare) {
            Ok(0) => {
                conn.eof = true;
                conn.readable = false;
                return got;
            }
            Ok(n) => {
                conn.bufs.recv.filled(n);
                got = true;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                conn.readable = false;
                return got;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                conn.failed = Some(error);
                return got;
            }
        }
    }
}

/// Writes queued bytes, several chunks per system call, until the queue is empty or the
/// socket would block; returns whether bytes left the queue.
fn write(conn: &mut MioConn) -> bool {
    #[cfg(feature = "tls")]
    if let Some(tls) = conn.tls.as_mut() {
        let (moved, stop) = tls.write(&mut conn.stream, &mut conn.bufs.send);
        match stop {
            WriteStop::Drained => {}
            WriteStop::WouldBlock => conn.writable = false,
            // A failure that ended the session already is the one to report.
            WriteStop::Failed(error) => {
                conn.failed.get_or_insert(error);
            }
        }
        return moved;
    }
    let mut wrote = false;
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
        let mut count = 0;
        for (slot, segment) in slices.iter_mut().zip(conn.bufs.send.segments()) {
            *slot = IoSlice::new(segment);
            count += 1;
        }
        if count == 0 {
            return wrote;
        }
        match conn.stream.write_vectored(&slices[..count]) {
            Ok(0) => {
                conn.failed = Some(io::ErrorKind::WriteZero.into());
                return wrote;
            }
            Ok(n) => {
                conn.bufs.send.advance(n);
                wrote = true;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                conn.writable = false;
                return wrote;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                conn.failed = Some(error);
                return wrote;
            }
        }
    }
}

impl Driver for MioDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Mio
    }

    fn waker(&self) -> Arc<dyn Waker> {
        self.waker.clone()
    }

    fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let mut listener = TcpListener::from_std(socket::listener(addr)?);
        self.poll
            .registry()
            .register(&mut listener, LISTEN, Interest::READABLE)?;
        let local = listener.local_addr()?;
        self.listener = Some(listener);
        Ok(local)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        let socket = socket::stream_for(addr, &self.config)?;
        socket::start_connect(&socket, addr)?;
        let stream = TcpStream::from_std(std::net::TcpStream::from(socket));
        self.add(stream, true)
    }

    fn poll(&mut self, timeout: Option<Duration>, events: &mut Vec<IoEvent>) -> io::Result<()> {
        self.closed.clear();
        let now = Instant::now();
        let linger = self
            .conns
            .values()
            .filter_map(|conn| conn.closing)
            .min()
            .map(|deadline| deadline.saturating_duration_since(now));
        let timeout = if self.has_ready_work() || !self.dirty.is_empty() {
            Some(Duration::ZERO)
        } else {
            match (timeout, linger) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        self.wait(timeout)?;
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        touched.append(&mut self.dirty);
        let mut connected = Vec::new();
        let mut accept = false;
        for event in &self.events {
            match event.token() {
                WAKE | WATCH => events.push(IoEvent::Woken),
                #[cfg(target_os = "linux")]
                TIMER => self.timer.reset(),
                LISTEN => accept = true,
                Token(raw) => {
                    let id = ConnId(raw as u64);
                    let Some(conn) = self.conns.get_mut(&id) else {
                        continue;
                    };
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        conn.readable = true;
                    }
                    if event.is_writable() || event.is_write_closed() || event.is_error() {
                        conn.writable = true;
                    }
                    if event.is_error()
                        && !conn.connecting
                        && let Ok(Some(error)) | Err(error) = conn.stream.take_error()
                    {
                        conn.failed = Some(error);
                    }
                    if conn.connecting {
                        connected.push(id);
                    } else {
                        touched.push(id);
                    }
                }
            }
        }
        if accept {
            self.accept(events);
        }
        for id in connected {
            self.finish_connect(id, events);
            touched.push(id);
        }
        // Connections with latched readiness or pending closes are driven too.
        touched.extend(self.conns.iter().filter_map(|(id, conn)| {
            let ready = (conn.readable && !conn.paused && conn.closing.is_none())
                || (conn.writable && conn.has_output())
                || conn.closing.is_some();
            ready.then_some(*id)
        }));
        touched.sort_unstable();
        touched.dedup();
        let now = Instant::now();
        for &id in &touched {
            self.drive(id, events, now);
        }
        self.touched = touched;
        Ok(())
    }

    fn bufs(&mut self, id: ConnId) -> Option<&mut ConnBufs> {
        if let Some(conn) = self.conns.get_mut(&id) {
            return Some(&mut conn.bufs);
        }
        self.closed
            .iter_mut()
            .find(|(closed, _)| *closed == id)
            .map(|(_, conn)| &mut conn.bufs)
    }

    fn pause_reading(&mut self, id: ConnId, paused: bool) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if conn.paused != paused && conn.closing.is_none() {
                socket::reading_paused(SockRef::from(&conn.stream), paused, &self.config);
            }
            conn.paused = paused;
            if !paused {
                self.dirty.push(id);
            }
        }
    }

    fn flush(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.connecting
            && conn.writable
        {
            write(conn);
            if conn.failed.is_some() {
                self.dirty.push(id);
            }
        }
    }

    fn close(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && conn.closing.is_none()
        {
            conn.closing = Some(Instant::now() + CLOSE_LINGER);
            conn.paused = true;
            if conn.connecting {
                // Nothing was sent on a connection that never opened.
                conn.connecting = false;
                conn.bufs.send.advance(conn.bufs.send.queued());
            }
            self.dirty.push(id);
        }
    }

    fn watch(&mut self, fd: std::os::fd::RawFd) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut mio::unix::SourceFd(&fd), WATCH, Interest::READABLE)
    }

    fn unwatch(&mut self, fd: std::os::fd::RawFd) {
        if let Err(error) = self
            .poll
            .registry()
            .deregister(&mut mio::unix::SourceFd(&fd))
        {
            tracing::warn!("cannot stop watching descriptor {fd}: {error}");
        }
    }
}
