//! A timer descriptor for the mio driver's waits shorter than epoll's millisecond.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mio::Interest;
use mio::unix::SourceFd;

/// A one-shot timer descriptor (`timerfd`) registered with the poll: waits shorter than
/// epoll's millisecond resolution, which the waker can still end.
#[derive(Debug)]
pub(crate) struct ShortTimer(OwnedFd);

impl ShortTimer {
    pub(crate) fn new(registry: &mio::Registry, token: mio::Token) -> io::Result<Self> {
        // SAFETY: `timerfd_create` takes no pointers; it returns a new descriptor or -1.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Self(fd))
    }

    /// Makes the timer expire once, `after` from now (replacing an earlier setting).
    pub(crate) fn arm(&self, after: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                // At least a nanosecond: a zero value would disarm the timer.
                tv_nsec: (after.subsec_nanos().max(1)) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid `itimerspec` for the duration of the call, and a null
        // old value is allowed.
        let result =
            unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes an expiry, so that the next one is reported again.
    pub(crate) fn reset(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: the buffer is 8 writable bytes, as a timerfd read needs; the descriptor
        // is non-blocking, so an empty timer returns EAGAIN, which is ignored.
        let _ = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                expirations.as_mut_ptr().cast(),
                expirations.len(),
            )
        };
    }
}
