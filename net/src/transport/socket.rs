//! Socket set-up shared by the drivers: the options that make a dead peer visible within
//! seconds.
//!
//! A side that reads its connection notices a dead peer by the silence of its heartbeats,
//! data in flight or not. A side that stopped reading because its consumers are full cannot
//! hear heartbeats; while it is paused, `TCP_USER_TIMEOUT` makes the kernel drop the
//! connection when what it sent (its own heartbeats, at least) stays unacknowledged. The
//! option is armed only while paused: Linux applies it to zero-window probing too, so on a
//! sender facing a paused receiver it would kill a connection that is slow, not dead.
//! Keepalive probes cover idle connections.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use super::config::TransportConfig;

/// Keepalive probes sent after the idle time before the connection is declared dead.
const KEEPALIVE_PROBES: u32 = 3;

/// Applies `TCP_NODELAY` and keepalive to a connected or connecting socket.
pub(crate) fn tune(socket: SockRef<'_>, config: &TransportConfig) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(config.keepalive_idle())
        .with_interval(Duration::from_secs(1))
        .with_retries(KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&keepalive)
}

/// Arms `TCP_USER_TIMEOUT` while reading is `paused`, and disarms it after (Linux only).
pub(crate) fn reading_paused(socket: SockRef<'_>, paused: bool, config: &TransportConfig) {
    #[cfg(target_os = "linux")]
    {
        let timeout = paused.then(|| config.tcp_user_timeout());
        if let Err(error) = socket.set_tcp_user_timeout(timeout) {
            tracing::warn!("cannot set TCP_USER_TIMEOUT: {error}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, paused, config);
}

/// A non-blocking TCP socket for `addr`, tuned, not yet connected.
pub(crate) fn stream_for(addr: SocketAddr, config: &TransportConfig) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    tune(SockRef::from(&socket), config)?;
    Ok(socket)
}

/// Starts a non-blocking connect; `Ok` also while it is in progress.
pub(crate) fn start_connect(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    match socket.connect(&addr.into()) {
        Ok(()) => Ok(()),
        Err(error)
            if error.raw_os_error() == Some(libc_einprogress())
                || error.kind() == io::ErrorKind::WouldBlock =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

#[cfg(unix)]
fn libc_einprogress() -> i32 {
    libc::EINPROGRESS
}

#[cfg(not(unix))]
fn libc_einprogress() -> i32 {
    -1
}

/// A non-blocking listening socket bound to `addr`, with `SO_REUSEADDR`.
pub(crate) fn listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
