//! Waking the transport of a co-located worker: a named pipe per direction of a
//! shared-memory link, next to its ring file.
//!
//! A transport about to sleep announces it in the header of each incoming ring
//! (`RecordConsumer::prepare_sleep`) and watches the read end of its pipe in its driver. A
//! transport that publishes frames into a ring whose consumer announced sleep writes one byte
//! into that consumer's pipe, which ends its driver's wait. While the consumer is awake,
//! publishing costs a fence and a load, and no system call.
//!
//! Both ends open a pipe read-write and non-blocking: opening never waits for the other
//! side, a write never blocks (a full pipe already holds a pending wake-up), and the reader
//! drains whatever accumulated before it announces sleep again.
#![allow(unsafe_code)] // mkfifo, which the standard library does not offer

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The pipe that wakes the consumer of the ring at `ring`.
pub(crate) fn pipe_path(ring: &Path) -> PathBuf {
    ring.with_extension("bell")
}

/// Makes the pipe at `path`, owner-only, replacing a stale one.
pub(crate) fn create(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other(format!("{} holds a NUL byte", path.display())))?;
    // SAFETY: `name` is a NUL-terminated path that lives across the call; mkfifo reads it
    // and keeps no pointer.
    if unsafe { libc::mkfifo(name.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One end's handle on a pipe: read-write, non-blocking.
#[derive(Debug)]
pub(crate) struct Pipe {
    file: File,
}

impl Pipe {
    /// Opens the pipe at `path`, which must exist.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Self { file })
    }

    /// The descriptor a driver watches for the reader's wake-ups.
    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Wakes the reader. A full pipe already holds a wake-up, so that refusal is fine.
    pub(crate) fn ring(&self) {
        if let Err(error) = (&self.file).write(&[1])
            && error.kind() != io::ErrorKind::WouldBlock
        {
            tracing::warn!("cannot ring a shared-memory peer's doorbell: {error}");
        }
    }

    /// Reads and discards every wake-up written so far.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        while let Ok(read) = (&self.file).read(&mut buf) {
            if read < buf.len() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_is_read_once_and_drained() {
        let dir = tempfile::tempdir().unwrap();
        let path = pipe_path(&dir.path().join("a-to-b.ring"));
        assert!(path.ends_with("a-to-b.bell"));
        create(&path).unwrap();
        let writer = Pipe::open(&path).unwrap();
        let reader = Pipe::open(&path).unwrap();
        for _ in 0..100_000 {
            writer.ring(); // a full pipe refuses quietly
        }
        reader.drain();
        let error = (&reader.file).read(&mut [0]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "drained");
        create(&path).unwrap();
        assert!(Pipe::open(&path).is_ok(), "a stale pipe is replaced");
    }
}
