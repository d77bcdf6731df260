//! Figures over recent windows: counts now minus counts at the start of the window, from
//! samples of every task's totals kept in memory.

use std::collections::{BTreeMap, VecDeque};

use squall_core::worker::figures::TaskFigures;

use super::view::ClusterView;

/// The windows figures are given for, in seconds; `None` is all time.
pub const WINDOWS: [Option<u64>; 3] = [Some(60), Some(600), None];

/// The name of a window in the API: its seconds, or `:all-time`.
pub fn window_name(window: Option<u64>) -> String {
    window.map_or_else(|| ":all-time".to_owned(), |secs| secs.to_string())
}

/// The window named `name`.
///
/// # Errors
/// When `name` is not one of [`WINDOWS`].
pub fn parse_window(name: &str) -> Result<Option<u64>, String> {
    WINDOWS
        .into_iter()
        .find(|window| window_name(*window) == name)
        .ok_or_else(|| {
            let names: Vec<String> = WINDOWS.into_iter().map(window_name).collect();
            format!(
                "unknown window {name:?}: expected one of {}",
                names.join(", ")
            )
        })
}

/// A task's counts at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tuples emitted.
    pub emitted: u64,
    /// Records sent to target tasks.
    pub transferred: u64,
    /// Tuples executed.
    pub executed: u64,
    /// Tuples (trees) acked.
    pub acked: u64,
    /// Tuples (trees) failed.
    pub failed: u64,
    /// Nanoseconds held back by backpressure.
    pub backpressured_nanos: u64,
}

impl From<&TaskFigures> for Counts {
    fn from(figures: &TaskFigures) -> Self {
        Self {
            emitted: figures.emitted,
            transferred: figures.transferred,
            executed: figures.executed,
            acked: figures.acked,
            failed: figures.failed,
            backpressured_nanos: figures.backpressured_nanos,
        }
    }
}

impl Counts {
    /// `self - earlier`, each count at least zero (a restarted worker counts from zero).
    pub fn since(self, earlier: Self) -> Self {
        Self {
            emitted: self.emitted.saturating_sub(earlier.emitted),
            transferred: self.transferred.saturating_sub(earlier.transferred),
            executed: self.executed.saturating_sub(earlier.executed),
            acked: self.acked.saturating_sub(earlier.acked),
            failed: self.failed.saturating_sub(earlier.failed),
            backpressured_nanos: self
                .backpressured_nanos
                .saturating_sub(earlier.backpressured_nanos),
        }
    }

    /// The sum.
    pub fn plus(self, other: Self) -> Self {
        Self {
            emitted: self.emitted + other.emitted,
            transferred: self.transferred + other.transferred,
            executed: self.executed + other.executed,
            acked: self.acked + other.acked,
            failed: self.failed + other.failed,
            backpressured_nanos: self.backpressured_nanos + other.backpressured_nanos,
        }
    }
}

/// Every task's counts at one time, and what each emitted on each of its output streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// By (topology id, task id).
    pub tasks: BTreeMap<(String, u32), Counts>,
    /// Tuples emitted, by (topology id, task id, stream).
    pub streams: BTreeMap<(String, u32, String), u64>,
}

/// The counts of every task of `view`.
pub fn counts_of(view: &ClusterView) -> TaskCounts {
    let mut counts = TaskCounts::default();
    for topology in &view.topologies {
        for task in topology.tasks() {
            counts.tasks.insert(
                (topology.id.clone(), task.figures.task),
                Counts::from(task.figures),
            );
            for stream in &task.figures.streams {
                counts.streams.insert(
                    (
                        topology.id.clone(),
                        task.figures.task,
                        stream.stream.clone(),
                    ),
                    stream.emitted,
                );
            }
        }
    }
    counts
}

/// Samples of every task's counts over the longest window.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<(u64, TaskCounts)>,
}

impl History {
    /// Keeps `counts` taken at `time_ms`, forgetting samples older than the longest window.
    pub fn record(&mut self, time_ms: u64, counts: TaskCounts) {
        let longest = WINDOWS.into_iter().flatten().max().unwrap_or(0) * 1000;
        while self
            .samples
            .get(1)
            .is_some_and(|(time, _)| time_ms.saturating_sub(*time) > longest)
        {
            self.samples.pop_front();
        }
        self.samples.push_back((time_ms, counts));
    }

    /// The sample a window ending at `now_ms` starts from: the oldest one inside it (or
    /// `None` for all time, or when there is none). Also gives the seconds it covers.
    pub fn start_of(&self, window: Option<u64>, now_ms: u64) -> (Option<&TaskCounts>, f64) {
        let Some(secs) = window else {
            return (None, 0.0);
        };
        let start = now_ms.saturating_sub(secs * 1000);
        match self.samples.iter().find(|(time, _)| *time >= start) {
            Some((time, counts)) => (Some(counts), now_ms.saturating_sub(*time) as f64 / 1000.0),
            None => (None, 0.0),
        }
    }

    /// The counts of `task` of `topology` over `window` ending now (`current`).
    pub fn over(
        &self,
        window: Option<u64>,
        now_ms: u64,
        topology: &str,
        task: u32,
        current: Counts,
    ) -> Counts {
        match self.start_of(window, now_ms).0 {
            None if window.is_none() => current,
            None => Counts::default(),
            Some(start) => current.since(
                start
                    .tasks
                    .get(&(topology.to_owned(), task))
                    .copied()
                    .unwrap_or_default(),
            ),
        }
    }

    /// What `task` of `topology` emitted on `stream` over `window` ending now, when it has
    /// emitted `current` on it in all.
    pub fn stream_emitted_over(
        &self,
        window: Option<u64>,
        now_ms: u64,
        (topology, task, stream): (&str, u32, &str),
        current: u64,
    ) -> u64 {
        match self.start_of(window, now_ms).0 {
            None if window.is_none() => current,
            None => 0,
            Some(start) => current.saturating_sub(
                start
                    .streams
                    .get(&(topology.to_owned(), task, stream.to_owned()))
                    .copied()
                    .unwrap_or(0),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(emitted: u64) -> TaskCounts {
        TaskCounts {
            tasks: BTreeMap::from([(
                ("t".to_owned(), 1),
                Counts {
                    emitted,
                    ..Counts::default()
                },
            )]),
            streams: BTreeMap::from([(("t".to_owned(), 1, "s".to_owned()), emitted / 2)]),
        }
    }

    #[test]
    fn windows_subtract_the_oldest_sample_inside_them() {
        let mut history = History::default();
        history.record(0, counts(0));
        history.record(30_000, counts(100));
        history.record(90_000, counts(400));
        let now = Counts {
            emitted: 500,
            ..Counts::default()
        };
        assert_eq!(history.over(Some(60), 100_000, "t", 1, now).emitted, 100);
        assert_eq!(history.over(Some(600), 100_000, "t", 1, now).emitted, 500);
        assert_eq!(history.over(None, 100_000, "t", 1, now).emitted, 500);
        let stream = ("t", 1, "s");
        assert_eq!(
            history.stream_emitted_over(Some(60), 100_000, stream, 250),
            50
        );
        assert_eq!(history.stream_emitted_over(None, 100_000, stream, 250), 250);
        assert_eq!(
            history.stream_emitted_over(Some(60), 100_000, ("t", 1, "other"), 9),
            9,
            "a stream first seen inside the window counts from zero"
        );
        // Samples older than the longest window are forgotten.
        history.record(700_000, counts(600));
        assert_eq!(history.samples.len(), 2);
        assert_eq!(parse_window(":all-time"), Ok(None));
        assert!(
            parse_window("5")
                .unwrap_err()
                .contains("60, 600, :all-time")
        );
    }
}
