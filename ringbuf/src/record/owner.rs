//! Attaching to and detaching from one end of a ring, and the takeover rule for an end whose
//! process died without detaching.
//!
//! Each end has an [`OwnerWord`] in the header. An end may be taken when its word is
//! "never attached", "detached", or names a process that no longer exists. The new owner
//! installs its own word with one compare-exchange, so of two processes racing for a dead
//! end exactly one wins.

use super::layout::{Header, OwnerWord, Role};
use crate::sync::Ordering;

/// Takes the `role` end of the ring for this process, or returns the process id of the live
/// process that holds it (which may be this very process).
///
/// The acquire half of the exchange pairs with the release in [`detach`], so a successor
/// sees every sequence its predecessor stored before detaching.
#[cfg_attr(
    loom,
    allow(dead_code, reason = "only mapped rings attach, and loom maps none")
)]
pub(crate) fn attach(header: &Header, role: Role) -> Result<OwnerWord, u32> {
    let owner = header.owner(role);
    let pid = std::process::id();
    let mut current = OwnerWord(owner.load(Ordering::Acquire));
    loop {
        if current.is_attached() && process_alive(current.pid()) {
            return Err(current.pid());
        }
        let next = current.successor(pid);
        match owner.compare_exchange(current.0, next.0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(next),
            Err(actual) => current = OwnerWord(actual),
        }
    }
}

/// Gives up the `role` end held under `word`.
///
/// Only this attachment's own word is replaced: if a successor has taken over (which the
/// takeover rule only allows once this process is gone) its word stays.
pub(crate) fn detach(header: &Header, role: Role, word: OwnerWord) {
    // A failed exchange means a successor owns the end; there is nothing to undo then.
    let _ = header.owner(role).compare_exchange(
        word.0,
        word.detached().0,
        Ordering::Release,
        Ordering::Relaxed,
    );
}

/// Whether the `role` end was held and is no longer: its holder detached, or the process
/// recorded for it is gone. Asking about a holder in another process costs a system call.
pub(crate) fn is_gone(header: &Header, role: Role) -> bool {
    let word = OwnerWord(header.owner(role).load(Ordering::Acquire));
    if word.is_detached() {
        return true;
    }
    word.is_attached() && word.pid() != std::process::id() && !process_alive(word.pid())
}

/// Whether a process with this id exists. A process that died but was not yet reaped by its
/// parent (a zombie) still exists.
#[cfg(target_os = "linux")]
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        // 0 and negative ids address process groups, never one owner.
        return false;
    }
    // SAFETY: `kill` takes no pointers; signal 0 delivers nothing and only checks that the
    // process exists and may be signalled.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Without a liveness check on this platform every recorded holder counts as alive, so a crashed
/// end is never taken over behind a live process's back.
#[cfg(not(target_os = "linux"))]
pub(crate) fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(all(test, target_os = "linux", not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn `true`");
        let pid = child.id();
        child.wait().expect("wait for `true`");
        assert!(!process_alive(pid));
        assert!(!process_alive(0));
    }
}
