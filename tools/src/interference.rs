//! What took the cores from the measured executors during a timed window.
//!
//! A latency tail of milliseconds on a machine whose executors need microseconds is rarely
//! the engine's: the hypervisor runs another guest on the virtual CPU (steal time), or a
//! kernel thread or another process holds the core while an executor waits to run. Both are
//! counted by Linux, so the bench tool reads them at the start and the end of the window and
//! reports them next to the latencies, for a reader to tell a slow engine from a busy host:
//!
//! - **steal**: the `steal` column of `/proc/stat`'s `cpu` line, every CPU together;
//! - **executor run delay**: the second field of each executor thread's
//!   `/proc/self/task/<tid>/schedstat`, the time it was runnable but not running;
//! - **executor preemptions**: `nonvoluntary_ctxt_switches` of each executor thread's
//!   `status`, the times another thread took its core while it could still run.
//!
//! Elsewhere than on Linux, or with `/proc` unreadable, nothing is reported.

use std::fs;
use std::path::Path;

use serde::Serialize;
use squall::runtime::EXECUTOR_THREAD_NAME_PREFIX;

/// What took the cores from the executors during a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interference {
    /// Milliseconds the hypervisor ran something else on this machine's virtual CPUs, every
    /// CPU together.
    pub steal_ms: f64,
    /// Milliseconds the executor threads were ready to run but waited for a core, every
    /// executor together.
    pub executor_run_delay_ms: f64,
    /// Times another thread took an executor's core while the executor could still run.
    pub executor_preemptions: u64,
}

/// Counters read at one instant; the difference of two is an [`Interference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterferenceReading {
    steal_ticks: u64,
    run_delay_nanos: u64,
    preemptions: u64,
}

impl InterferenceReading {
    /// Reads this machine's steal time and this process's executor threads now; `None` when
    /// `/proc` does not tell.
    pub fn now() -> Option<Self> {
        let steal_ticks = steal_ticks(&fs::read_to_string("/proc/stat").ok()?)?;
        let mut reading = Self {
            steal_ticks,
            ..Self::default()
        };
        for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
            let dir = task.path();
            // A thread may end between the listing and the reads: it is skipped.
            if !is_executor(&dir) {
                continue;
            }
            let (Some(delay), Some(preemptions)) = (
                fs::read_to_string(dir.join("schedstat"))
                    .ok()
                    .and_then(|text| run_delay_nanos(&text)),
                fs::read_to_string(dir.join("status"))
                    .ok()
                    .and_then(|text| involuntary_switches(&text)),
            ) else {
                continue;
            };
            reading.run_delay_nanos += delay;
            reading.preemptions += preemptions;
        }
        Some(reading)
    }

    /// What happened between `self` (the start) and `end`. Executor threads that started
    /// after `self` count from zero, so `self` is best read once they run.
    pub fn until(&self, end: &Self) -> Interference {
        let tick_ms = 1e3 / clock_ticks_per_second() as f64;
        Interference {
            steal_ms: end.steal_ticks.saturating_sub(self.steal_ticks) as f64 * tick_ms,
            executor_run_delay_ms: end.run_delay_nanos.saturating_sub(self.run_delay_nanos) as f64
                / 1e6,
            executor_preemptions: end.preemptions.saturating_sub(self.preemptions),
        }
    }
}

fn is_executor(task_dir: &Path) -> bool {
    fs::read_to_string(task_dir.join("comm"))
        .is_ok_and(|name| name.trim_end().starts_with(EXECUTOR_THREAD_NAME_PREFIX))
}

/// The `steal` column (the eighth number) of the `cpu` line of `/proc/stat`.
fn steal_ticks(proc_stat: &str) -> Option<u64> {
    let line = proc_stat
        .lines()
        .find(|line| line.split_ascii_whitespace().next() == Some("cpu"))?;
    line.split_ascii_whitespace().nth(8)?.parse().ok()
}

/// The run delay (the second number) of a thread's `schedstat`.
fn run_delay_nanos(schedstat: &str) -> Option<u64> {
    schedstat.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// `nonvoluntary_ctxt_switches` of a thread's `status`.
fn involuntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("nonvoluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

/// The kernel's clock ticks per second, the unit of `/proc/stat`.
fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_number_of_the_cpu_line() {
        let stat = "cpu  1606457 200336 181987 568683 11536 0 4783 4780 0 0\n\
                    cpu0 788612 97686 90996 302094 4488 0 1570 2358 0 0\n";
        assert_eq!(steal_ticks(stat), Some(4780));
        assert_eq!(
            steal_ticks("cpu0 1 2 3 4 5 6 7 8 9 10\n"),
            None,
            "no total line"
        );
        assert_eq!(
            steal_ticks("cpu 1 2 3\n"),
            None,
            "an old kernel without steal"
        );
    }

    #[test]
    fn run_delay_is_the_second_number_of_schedstat() {
        assert_eq!(run_delay_nanos("2887525000 374000 44\n"), Some(374_000));
        assert_eq!(run_delay_nanos("2887525000\n"), None);
    }

    #[test]
    fn preemptions_are_the_involuntary_switches() {
        let status = "Name:\tsquall-exec-0\nvoluntary_ctxt_switches:\t203\n\
                      nonvoluntary_ctxt_switches:\t17\n";
        assert_eq!(involuntary_switches(status), Some(17));
        assert_eq!(involuntary_switches("Name:\tx\n"), None);
    }

    #[test]
    fn the_difference_of_two_readings_is_in_milliseconds() {
        let start = InterferenceReading {
            steal_ticks: 10,
            run_delay_nanos: 1_000_000,
            preemptions: 3,
        };
        let end = InterferenceReading {
            steal_ticks: 10 + clock_ticks_per_second(),
            run_delay_nanos: 3_500_000,
            preemptions: 5,
        };
        let interference = start.until(&end);
        assert!((interference.steal_ms - 1_000.0).abs() < 1e-6);
        assert!((interference.executor_run_delay_ms - 2.5).abs() < 1e-9);
        assert_eq!(interference.executor_preemptions, 2);
        // Counters never run backwards, but a thread gone since the start must not underflow.
        assert_eq!(end.until(&start).executor_preemptions, 0);
    }

    #[test]
    fn this_process_can_be_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(InterferenceReading::now().is_some(), "/proc is readable");
        }
    }
}
