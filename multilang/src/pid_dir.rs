//! The directories multi-lang subprocesses write their pid files into (Storm's `pidDir`):
//! one per subprocess, under the temporary directory, named after the process that made it
//! (`squall-pids-<pid>-<task>-<random>`), so that one left behind by a process that was
//! killed can be told from one in use.

use std::path::{Path, PathBuf};

use squall_core::ids::TaskId;

/// How every pid directory's name starts.
pub const PID_DIR_PREFIX: &str = "squall-pids-";

/// A fresh pid directory path for a subprocess of `task`, owned by this process.
pub(crate) fn new_path(task: TaskId) -> PathBuf {
    std::env::temp_dir().join(format!(
        "{PID_DIR_PREFIX}{}-{}-{}",
        std::process::id(),
        task,
        fastrand::u64(..)
    ))
}

/// The process that made the pid directory named `name`; `None` when `name` is not one.
pub fn owner_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PID_DIR_PREFIX)?;
    let mut parts = rest.split('-');
    let pid = parts.next()?.parse().ok()?;
    let task_and_random = [parts.next()?, parts.next()?];
    let well_formed = parts.next().is_none()
        && task_and_random
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()));
    well_formed.then_some(pid)
}

/// Whether process `pid` exists. Without `/proc` nothing can be told, and every process
/// counts as running, so nothing in use is ever removed.
fn is_running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Removes the pid directories in `dir` (normally [`std::env::temp_dir`]) whose owning
/// process no longer runs: those of workers that were killed before they could remove
/// them. Returns the directories removed.
pub fn sweep_orphaned(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(owner_of) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if is_dir && !is_running(owner) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that no process has: above the largest pid Linux hands out.
    const NO_SUCH_PID: u32 = 4_194_304 + 17;

    #[test]
    fn names_tell_their_owner() {
        let path = new_path(TaskId(3));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(owner_of(name), Some(std::process::id()));
        assert_eq!(owner_of("squall-pids-4242-3-9150"), Some(4242));
        for other in [
            "squall-pids-",
            "squall-pids-x-3-9",
            "squall-pids-42-3",
            "squall-pids-42-3-9-1",
            "squall-pids-42--9",
            "squall-cluster-42-3-9",
        ] {
            assert_eq!(owner_of(other), None, "{other}");
        }
    }

    #[test]
    fn only_directories_of_dead_owners_are_swept() {
        let temp = tempfile::tempdir().unwrap();
        let ours = temp
            .path()
            .join(format!("{PID_DIR_PREFIX}{}-1-5", std::process::id()));
        let orphaned = temp
            .path()
            .join(format!("{PID_DIR_PREFIX}{NO_SUCH_PID}-1-5"));
        let unrelated = temp.path().join(format!("unrelated-{NO_SUCH_PID}-1-5"));
        for dir in [&ours, &orphaned, &unrelated] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("1234"), "").unwrap();
        }
        assert_eq!(sweep_orphaned(temp.path()), std::slice::from_ref(&orphaned));
        assert!(ours.is_dir() && unrelated.is_dir() && !orphaned.exists());
    }
}
