//! The completion-based driver: io_uring (Linux 5.11 and later).
//!
//! Each connection keeps at most one receive and one vectored send (`SENDMSG` with
//! `MSG_NOSIGNAL`) in flight; accepts, connects and the wake-up read on an eventfd are
//! operations too. One `io_uring_enter` submits what the event loop queued and waits for
//! completions with a timeout.
//!
//! # Memory handed to the kernel
//!
//! An operation in flight reads or writes memory the kernel was given at submission. The
//! driver keeps that memory alive and untouched until the operation's completion is reaped:
//!
//! - receive buffers and send queues mark the regions in flight ([`ConnBufs`]) and never
//!   slice, move or free them before the completion;
//! - a connection's iovec array, message header and connect address live in boxes owned
//!   by the connection, rewritten only when nothing is in flight;
//! - a connection (its socket and buffers) is removed only when none of its operations is
//!   in flight; closing one first cancels its operations and waits for their completions;
//! - dropping the driver cancels every operation and waits for all completions; should
//!   the kernel not deliver them, the memory is leaked rather than freed under it.
//!
//! Every `unsafe` block that submits an operation names the memory it hands over.
#![allow(unsafe_code)]

mod probe;
mod waker;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, opcode, squeue};
use socket2::{SockAddr, SockRef, Socket};

use super::{CLOSE_LINGER, ConnBufs, ConnId, Driver, IoEvent, Waker};
use crate::transport::buf::MAX_CHUNKS;
use crate::transport::config::{DriverKind, TransportConfig};
use crate::transport::socket;
use waker::EventFd;

/// User data of the wake-up read.
const WAKE: u64 = u64::MAX;
/// User data of the accept.
const ACCEPT: u64 = u64::MAX - 1;
/// User data of the poll on watched descriptor number `n` (`Driver::watch`): `WATCH - n`.
const WATCH: u64 = u64::MAX - 2;
/// Below this, user data is a connection's.
const WATCH_FLOOR: u64 = WATCH - (1 << 32);
/// Low bits of a connection operation's user data that name the operation.
const OP_BITS: u32 = 3;
const OP_MASK: u64 = (1 << OP_BITS) - 1;
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CONNECT: u64 = 3;
const OP_CANCEL: u64 = 4;

fn user_data(id: ConnId, op: u64) -> u64 {
    (id.0 << OP_BITS) | op
}

/// How long accepting pauses after an accept failed.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How long dropping the driver waits for the kernel to finish cancelled operations.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The scatter list and message header of a connection's send, at stable addresses.
struct SendMsg {
    iovecs: [libc::iovec; MAX_CHUNKS],
    header: libc::msghdr,
}

/// [`SendMsg`] in a box whose address the kernel may hold.
struct SendMsgBox(Box<SendMsg>);

// SAFETY: the raw pointers inside point into the send queue of the same connection, which
// moves with it; nothing else shares them.
unsafe impl Send for SendMsgBox {}

impl SendMsgBox {
    fn new() -> Self {
        // SAFETY: `iovec` and `msghdr` are plain C structs for which all-zero bytes (null
        // pointers, zero lengths) are valid.
        Self(Box::new(unsafe { std::mem::zeroed() }))
    }
}

struct UringConn {
    socket: Socket,
    bufs: ConnBufs,
    send_msg: SendMsgBox,
    /// The address of the connect in flight; the kernel reads it until the completion.
    connect_addr: Option<Box<SockAddr>>,
    open: bool,
    recv_armed: bool,
    send_armed: bool,
    paused: bool,
    closing: Option<Instant>,
    /// Operations (`1 << OP_*`) whose cancellation was requested.
    cancelled: u8,
    eof: bool,
    failed: Option<io::Error>,
}

impl UringConn {
    fn new(socket: Socket, config: &TransportConfig, open: bool) -> Self {
        Self {
            socket,
            bufs: ConnBufs::new(config),
            send_msg: SendMsgBox::new(),
            connect_addr: None,
            open,
            recv_armed: false,
            send_armed: false,
            paused: false,
            closing: None,
            cancelled: 0,
            eof: false,
            failed: None,
        }
    }

    fn in_flight(&self) -> bool {
        self.recv_armed || self.send_armed || self.connect_addr.is_some()
    }

    /// Whether the connection is on its way out: the peer ended it, it failed, or the loop
    /// closes it.
    fn ending(&self) -> bool {
        self.eof || self.failed.is_some() || self.closing.is_some()
    }

    /// Whether a closing connection is done writing: nothing queued, or no use trying.
    fn done_writing(&self, now: Instant) -> bool {
        self.bufs.send.queued() == 0
            || self.failed.is_some()
            || self.eof
            || !self.open
            || self.closing.is_some_and(|deadline| now >= deadline)
    }
}

/// The io_uring driver; see the [contract](super) and the [module docs](self).
pub(crate) struct UringDriver {
    ring: IoUring,
    config: TransportConfig,
    waker: Arc<EventFd>,
    /// Where the wake-up read lands.
    wake_buf: Box<u64>,
    wake_armed: bool,
    /// Descriptors another process writes to wake this thread, each with its poll's user
    /// data and whether that poll is posted.
    watched: Vec<Watched>,
    next_watch: u64,
    listener: Option<std::net::TcpListener>,
    accept_armed: bool,
    /// After a failed accept (out of descriptors, say), accepting resumes at this time.
    accept_paused_until: Option<Instant>,
    conns: HashMap<ConnId, UringConn>,
    /// Connections reported closed by the last poll (nothing in flight), kept until the
    /// next one so that the loop can read their last bytes.
    closed: Vec<(ConnId, UringConn)>,
    next_id: u64,
    completions: Vec<(u64, i32)>,
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver")
            .field("connections", &self.conns.len())
            .field("listening", &self.listener.is_some())
            .finish()
    }
}

/// Queues `entry`, submitting queued entries first if the queue is full.
///
/// # Safety
/// Every buffer, address or descriptor `entry` refers to must stay valid, and must not be
/// accessed in a way that conflicts with the operation, until its completion is reaped.
unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    // SAFETY: the caller guarantees the entry's memory outlives the operation.
    if unsafe { ring.submission().push(entry) }.is_ok() {
        return Ok(());
    }
    ring.submit()?;
    // SAFETY: as above.
    unsafe { ring.submission().push(entry) }
        .map_err(|_| io::Error::other("io_uring submission queue stays full"))
}

/// Whether a negative completion result only means "try again" or "cancelled".
fn is_benign(result: i32) -> bool {
    matches!(-result, libc::ECANCELED | libc::EINTR | libc::EAGAIN)
}

/// A descriptor watched for readability (`Driver::watch`).
#[derive(Debug)]
struct Watched {
    fd: std::os::fd::RawFd,
    /// The user data of its poll.
    data: u64,
    armed: bool,
}

impl UringDriver {
    /// The driver, if this kernel can run it; otherwise why not.
    pub(crate) fn boxed(config: &TransportConfig) -> Result<Box<dyn Driver>, String> {
        let ring = probe::ring()?;
        let waker = EventFd::new().map_err(|error| format!("eventfd: {error}"))?;
        Ok(Box::new(Self {
            ring,
            config: config.clone(),
            waker: Arc::new(waker),
            wake_buf: Box::new(0),
            wake_armed: false,
            watched: Vec::new(),
            next_watch: 0,
            listener: None,
            accept_armed: false,
            accept_paused_until: None,
            conns: HashMap::new(),
            closed: Vec::new(),
            next_id: 1,
            completions: Vec::with_capacity(256),
        }))
    }

    fn next_id(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Posts the reads, accepts, receives, sends and cancellations that are due.
    fn arm(&mut self, now: Instant) -> io::Result<()> {
        if !self.wake_armed {
            let buf: *mut u64 = &mut *self.wake_buf;
            let entry = opcode::Read::new(Fd(self.waker.raw_fd()), buf.cast(), 8)
                .build()
                .user_data(WAKE);
            // SAFETY: the read lands in `wake_buf`, boxed and owned by the driver, which
            // drains every operation before it is dropped; nothing reads the box meanwhile.
            unsafe { push(&mut self.ring, &entry)? };
            self.wake_armed = true;
        }
        for watched in &mut self.watched {
            if !watched.armed {
                let entry = opcode::PollAdd::new(Fd(watched.fd), libc::POLLIN as u32)
                    .build()
                    .user_data(watched.data);
                // SAFETY: no memory is handed over; a poll on a descriptor closed meanwhile
                // only never completes.
                unsafe { push(&mut self.ring, &entry)? };
                watched.armed = true;
            }
        }
        if let Some(listener) = &self.listener
            && !self.accept_armed
            && self.accept_paused_until.is_none_or(|until| now >= until)
        {
            let entry = opcode::Accept::new(
                Fd(listener.as_raw_fd()),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ACCEPT);
            // SAFETY: no memory is handed over; the listener lives as long as the driver,
            // which drains every operation before it is dropped.
            unsafe { push(&mut self.ring, &entry)? };
            self.accept_armed = true;
        }
        for (&id, conn) in &mut self.conns {
            arm_conn(&mut self.ring, id, conn, now)?;
        }
        Ok(())
    }

    /// Waits for completions, at most `timeout`.
    fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let result = match timeout {
            Some(Duration::ZERO) => self.ring.submit(),
            None => self.ring.submit_and_wait(1),
            Some(timeout) => {
                let timespec = Timespec::from(timeout);
                let args = SubmitArgs::new().timespec(&timespec);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Handles every completion in the queue.
    fn reap(&mut self, events: &mut Vec<IoEvent>) {
        self.completions.clear();
        self.completions.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        for i in 0..self.completions.len() {
            let (data, result) = self.completions[i];
            match data {
                WAKE => {
                    self.wake_armed = false;
                    events.push(IoEvent::Woken);
                }
                data if (WATCH_FLOOR..=WATCH).contains(&data) => {
                    if let Some(watched) = self.watched.iter_mut().find(|w| w.data == data) {
                        watched.armed = false;
                        events.push(IoEvent::Woken);
                    }
                }
                ACCEPT => {
                    self.accept_armed = false;
                    if result >= 0 {
                        // SAFETY: a non-negative accept result is a new descriptor that
                        // this driver now owns.
                        let fd = unsafe { OwnedFd::from_raw_fd(result) };
                        self.accepted(Socket::from(fd), events);
                    } else if !is_benign(result) {
                        let error = io::Error::from_raw_os_error(-result);
                        tracing::warn!("accept failed: {error}; retrying in {ACCEPT_PAUSE:?}");
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    }
                }
                data => self.conn_completion(data, result, events),
            }
        }
    }

    fn accepted(&mut self, socket: Socket, events: &mut Vec<IoEvent>) {
        let addr = match socket.peer_addr().map(|addr| addr.as_socket()) {
            Ok(Some(addr)) => addr,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!("accepted connection vanished: {error}");
                return;
            }
        };
        if let Err(error) = socket::tune(SockRef::from(&socket), &self.config) {
            tracing::warn!("cannot set socket options for {addr}: {error}");
        }
        let id = self.next_id();
        self.conns
            .insert(id, UringConn::new(socket, &self.config, true));
        events.push(IoEvent::Accepted { conn: id, addr });
    }

    fn conn_completion(&mut self, data: u64, result: i32, events: &mut Vec<IoEvent>) {
        let id = ConnId(data >> OP_BITS);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let error = || io::Error::from_raw_os_error(-result);
        match data & OP_MASK {
            OP_RECV => {
                conn.recv_armed = false;
                let received = usize::try_from(result).unwrap_or(0);
                conn.bufs.recv.finish_recv(received);
                if received > 0 {
                    events.push(IoEvent::Received(id));
                } else if result == 0 {
                    conn.eof = true;
                } else if !is_benign(result) {
                    conn.failed.get_or_insert_with(error);
                }
            }
            OP_SEND => {
                conn.send_armed = false;
                let sent = usize::try_from(result).unwrap_or(0);
                conn.bufs.send.advance(sent);
                if sent > 0 && conn.closing.is_none() {
                    events.push(IoEvent::Sent(id));
                } else if result < 0 && !is_benign(result) {
                    conn.failed.get_or_insert_with(error);
                }
            }
            OP_CONNECT => {
                conn.connect_addr = None;
                if result == 0 {
                    conn.open = true;
                    if conn.closing.is_none() {
                        events.push(IoEvent::Connected(id));
                    }
                } else {
                    conn.failed.get_or_insert_with(error);
                }
            }
            _ => {}
        }
    }

    /// Reports and removes connections that are done and have nothing in flight.
    fn finish(&mut self, events: &mut Vec<IoEvent>, now: Instant) {
        let done: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.ending() && !conn.in_flight() && conn.done_writing(now))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let mut conn = self.conns.remove(&id).expect("listed above");
            if !conn.open && conn.closing.is_none() {
                let error = conn
                    .failed
                    .take()
                    .unwrap_or_else(|| io::ErrorKind::NotConnected.into());
                events.push(IoEvent::ConnectFailed(id, error));
            } else {
                events.push(IoEvent::Closed(id, conn.failed.take()));
            }
            self.closed.push((id, conn));
        }
    }

    /// Whether a connection can be reported finished without waiting for the kernel.
    fn has_finished(&self, now: Instant) -> bool {
        self.conns
            .values()
            .any(|conn| conn.ending() && !conn.in_flight() && conn.done_writing(now))
    }

    /// Cancels every operation in flight and waits for their completions, so that no
    /// memory is freed under the kernel.
    fn drain(&mut self) {
        let mut targets: Vec<u64> = Vec::new();
        if self.wake_armed {
            targets.push(WAKE);
        }
        if self.accept_armed {
            targets.push(ACCEPT);
        }
        for (&id, conn) in &self.conns {
            if conn.recv_armed {
                targets.push(user_data(id, OP_RECV));
            }
            if conn.send_armed {
                targets.push(user_data(id, OP_SEND));
            }
            if conn.connect_addr.is_some() {
                targets.push(user_data(id, OP_CONNECT));
            }
        }
        for target in targets {
            let entry = opcode::AsyncCancel::new(target)
                .build()
                .user_data(user_data(ConnId(0), OP_CANCEL));
            // SAFETY: a cancellation hands over no memory.
            let _ = unsafe { push(&mut self.ring, &entry) };
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut events = Vec::new();
        while self.wake_armed || self.accept_armed || self.conns.values().any(UringConn::in_flight)
        {
            if Instant::now() >= deadline {
                tracing::error!("io_uring operations did not finish; leaking their buffers");
                std::mem::forget(std::mem::take(&mut self.conns));
                std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
                return;
            }
            let _ = self.enter(Some(Duration::from_millis(50)));
            self.reap(&mut events);
            events.clear();
        }
    }
}

/// Posts what the connection needs: a receive, a send, or the cancellations that end it.
fn arm_conn(ring: &mut IoUring, id: ConnId, conn: &mut UringConn, now: Instant) -> io::Result<()> {
    let fd = Fd(conn.socket.as_raw_fd());
    if conn.ending() {
        let stop_sending = conn.done_writing(now);
        for (armed, op) in [
            (conn.recv_armed, OP_RECV),
            (conn.connect_addr.is_some(), OP_CONNECT),
            (conn.send_armed && stop_sending, OP_SEND),
        ] {
            if armed && conn.cancelled & (1 << op) == 0 {
                let entry = opcode::AsyncCancel::new(user_data(id, op))
                    .build()
                    .user_data(user_data(id, OP_CANCEL));
                // SAFETY: a cancellation hands over no memory.
                unsafe { push(ring, &entry)? };
                conn.cancelled |= 1 << op;
            }
        }
        if stop_sending || !conn.open {
            return Ok(());
        }
    }
    if conn.open
        && !conn.recv_armed
        && !conn.paused
        && !conn.ending()
        && conn.bufs.recv.spare_len() > 0
    {
        let (ptr, len) = conn.bufs.recv.start_recv();
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let entry = opcode::Recv::new(fd, ptr, len)
            .build()
            .user_data(user_data(id, OP_RECV));
        // SAFETY: `start_recv` handed the buffer's spare room to the kernel: `RecvBuf`
        // neither slices, moves nor frees it until `finish_recv`, which runs when this
        // receive's completion is reaped; the connection (buffer and socket) is removed
        // only when none of its operations is in flight.
        if let Err(error) = unsafe { push(ring, &entry) } {
            conn.bufs.recv.finish_recv(0);
            return Err(error);
        }
        conn.recv_armed = true;
    }
    if conn.open && !conn.send_armed && conn.failed.is_none() && conn.bufs.send.queued() > 0 {
        let mut segments = [(std::ptr::null(), 0); MAX_CHUNKS];
        let count = conn.bufs.send.start_write(&mut segments);
        let msg = &mut *conn.send_msg.0;
        for (iovec, (base, len)) in msg.iovecs.iter_mut().zip(&segments[..count]) {
            iovec.iov_base = base.cast_mut().cast();
            iovec.iov_len = *len;
        }
        msg.header.msg_iov = msg.iovecs.as_mut_ptr();
        msg.header.msg_iovlen = count as _;
        let entry = opcode::SendMsg::new(fd, &msg.header)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data(id, OP_SEND));
        // SAFETY: the message header and iovecs live in the connection's box and are
        // rewritten only when no send is in flight; the bytes they point to were handed
        // over by `start_write` and stay untouched until `advance`, called when this
        // send's completion is reaped; the connection is removed only when none of its
        // operations is in flight.
        if let Err(error) = unsafe { push(ring, &entry) } {
            conn.bufs.send.advance(0);
            return Err(error);
        }
        conn.send_armed = true;
    }
    Ok(())
}

impl Driver for UringDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::IoUring
    }

    fn waker(&self) -> Arc<dyn Waker> {
        self.waker.clone()
    }

    fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = socket::listener(addr)?;
        // Blocking descriptors: io_uring waits for readiness itself, without `EAGAIN`.
        listener.set_nonblocking(false)?;
        let local = listener.local_addr()?;
        self.listener = Some(listener);
        Ok(local)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        let socket = socket::stream_for(addr, &self.config)?;
        socket.set_nonblocking(false)?;
        let id = self.next_id();
        let mut conn = UringConn::new(socket, &self.config, false);
        let target = Box::new(SockAddr::from(addr));
        let entry = opcode::Connect::new(
            Fd(conn.socket.as_raw_fd()),
            target.as_ptr().cast(),
            target.len(),
        )
        .build()
        .user_data(user_data(id, OP_CONNECT));
        // SAFETY: the address is boxed and kept in `connect_addr` until this connect's
        // completion is reaped; the socket lives in the connection, which is removed only
        // when none of its operations is in flight.
        unsafe { push(&mut self.ring, &entry)? };
        conn.connect_addr = Some(target);
        self.conns.insert(id, conn);
        Ok(id)
    }

    fn poll(&mut self, timeout: Option<Duration>, events: &mut Vec<IoEvent>) -> io::Result<()> {
        self.closed.clear();
        let now = Instant::now();
        self.arm(now)?;
        let linger = self
            .conns
            .values()
            .filter_map(|conn| conn.closing)
            .min()
            .map(|deadline| deadline.saturating_duration_since(now));
        let resume_accept = self
            .accept_paused_until
            .map(|until| until.saturating_duration_since(now));
        let linger = match (linger, resume_accept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = if !events.is_empty() || self.has_finished(now) {
            Some(Duration::ZERO)
        } else {
            match (timeout, linger) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        self.enter(timeout)?;
        self.reap(events);
        self.finish(events, Instant::now());
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

    fn pause_reading(&mut self, conn: ConnId, paused: bool) {
        if let Some(conn) = self.conns.get_mut(&conn) {
            if conn.paused != paused && conn.closing.is_none() {
                socket::reading_paused(SockRef::from(&conn.socket), paused, &self.config);
            }
            conn.paused = paused;
        }
    }

    fn flush(&mut self, _conn: ConnId) {
        // Sends are posted by the next `poll`, which the event loop runs right after.
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(conn) = self.conns.get_mut(&conn)
            && conn.closing.is_none()
        {
            conn.closing = Some(Instant::now() + CLOSE_LINGER);
            conn.paused = true;
        }
    }

    fn watch(&mut self, fd: std::os::fd::RawFd) -> io::Result<()> {
        let data = WATCH - (self.next_watch % (WATCH - WATCH_FLOOR));
        self.next_watch += 1;
        self.watched.push(Watched {
            fd,
            data,
            armed: false,
        });
        Ok(())
    }

    fn unwatch(&mut self, fd: std::os::fd::RawFd) {
        let Some(index) = self.watched.iter().position(|watched| watched.fd == fd) else {
            return;
        };
        let watched = self.watched.swap_remove(index);
        if watched.armed {
            let entry = opcode::AsyncCancel::new(watched.data)
                .build()
                .user_data(user_data(ConnId(0), OP_CANCEL));
            // SAFETY: a cancellation hands over no memory.
            if let Err(error) = unsafe { push(&mut self.ring, &entry) } {
                tracing::warn!("cannot cancel the poll on descriptor {fd}: {error}");
            }
        }
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        self.drain();
    }
}
