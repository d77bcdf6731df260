//! How much CPU time a thread or process has had, so that throughput intervals in which one
//! side of a ring lost its core can be told apart from intervals that measure the ring.
//!
//! On a machine shared with other work, a spinning thread is regularly descheduled; while it
//! is off its core the other side of the ring waits, and the interval's rate says more about
//! the scheduler than about the ring. Comparing each side's CPU time with the wall time of
//! the interval shows whether both ran throughout.

/// A clock that counts the CPU time of one thread or process, readable from any thread of
/// this process. Elsewhere than on Linux it reads nothing, and every interval counts.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    #[cfg(target_os = "linux")]
    id: libc::clockid_t,
}

#[cfg(target_os = "linux")]
impl CpuClock {
    /// The calling thread's clock, readable by other threads while this one lives.
    pub fn current_thread() -> Option<Self> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `pthread_self` is always a valid thread of this process, and `id` is a
        // valid place for the clock id.
        let status = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (status == 0).then_some(Self { id })
    }

    /// The clock of process `pid` (all its threads together).
    pub fn process(pid: u32) -> Option<Self> {
        let pid = libc::pid_t::try_from(pid).ok()?;
        let mut id: libc::clockid_t = 0;
        // SAFETY: `clock_getcpuclockid` only writes the clock id to `id`, a valid place.
        let status = unsafe { libc::clock_getcpuclockid(pid, &mut id) };
        (status == 0).then_some(Self { id })
    }

    /// CPU time so far, in nanoseconds; `None` once the thread or process is gone.
    pub fn nanos(self) -> Option<u64> {
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `time` is a valid, writable `timespec`; a stale clock id makes the call
        // fail, which is reported as `None`.
        let status = unsafe { libc::clock_gettime(self.id, &mut time) };
        (status == 0).then(|| time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64)
    }
}

#[cfg(not(target_os = "linux"))]
impl CpuClock {
    /// Not available here.
    pub fn current_thread() -> Option<Self> {
        None
    }

    /// Not available here.
    pub fn process(_pid: u32) -> Option<Self> {
        None
    }

    /// Not available here.
    pub fn nanos(self) -> Option<u64> {
        None
    }
}

/// Whether a thread whose CPU clock went from `before` to `after` ran for at least
/// `share` of `wall_nanos`; `true` when either reading is missing (nothing to go by).
pub fn ran_throughout(
    before: Option<u64>,
    after: Option<u64>,
    wall_nanos: u64,
    share: f64,
) -> bool {
    match (before, after) {
        (Some(before), Some(after)) => {
            after.saturating_sub(before) as f64 >= share * wall_nanos as f64
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_counts_when_the_clock_kept_up_with_the_wall() {
        assert!(ran_throughout(Some(1_000), Some(1_950), 1_000, 0.9));
        assert!(!ran_throughout(Some(1_000), Some(1_850), 1_000, 0.9));
        assert!(
            ran_throughout(None, Some(0), 1_000, 0.9),
            "nothing to go by"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sleeping_thread_does_not_run_throughout() {
        let clock = CpuClock::current_thread().unwrap();
        let (before, start) = (clock.nanos(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let wall = start.elapsed().as_nanos() as u64;
        assert!(!ran_throughout(before, clock.nanos(), wall, 0.5));
        assert!(
            CpuClock::process(std::process::id())
                .unwrap()
                .nanos()
                .is_some()
        );
    }
}
