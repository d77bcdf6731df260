//! Waking a thread that waits on the ring: an eventfd the ring keeps a read posted on.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::transport::driver::Waker;

/// An eventfd; writing to it completes the read the driver keeps posted.
#[derive(Debug)]
pub(super) struct EventFd(File);

impl EventFd {
    pub(super) fn new() -> io::Result<Self> {
        // SAFETY: `eventfd` takes no pointers; it returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Waker for EventFd {
    fn wake(&self) {
        match (&self.0).write(&1u64.to_ne_bytes()) {
            // A full counter already guarantees a wake-up.
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => tracing::error!("cannot wake the transport thread: {error}"),
        }
    }
}
