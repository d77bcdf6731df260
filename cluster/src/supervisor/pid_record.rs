//! Which process a worker is, as its supervisor records it: the process id and the process's
//! start time (field 22 of `/proc/PID/stat`, in clock ticks since boot).
//!
//! A process id alone is reused once its process ends; the pair is not (a reused id gets a
//! later start time). A supervisor restarted on the same machine adopts — and may later
//! signal — only a process whose current start time is the recorded one.

use std::fmt;

/// A process id with the start time of the process that had it when recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    /// The process id.
    pub pid: u32,
    /// When the process started, in clock ticks since boot.
    pub start_ticks: u64,
}

/// Why a pid record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidRecordError {
    /// The text is not `<pid> <start ticks>`.
    #[error("pid record {text:?} is not \"<pid> <start ticks>\": {reason}")]
    Malformed {
        /// The text, cut to 80 characters.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl PidRecord {
    /// The record of the running process `pid`, or `None` when it is not running (or
    /// `/proc` does not describe it).
    pub fn of_running(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            start_ticks: start_ticks(pid)?,
        })
    }

    /// Parses `<pid> <start ticks>` (surrounding whitespace ignored).
    ///
    /// # Errors
    /// When the text is anything else; a record of a pid alone (written before start
    /// times were recorded) included, as it cannot tell a reused pid by itself.
    pub fn parse(text: &str) -> Result<Self, PidRecordError> {
        let malformed = |reason| PidRecordError::Malformed {
            text: text.chars().take(80).collect(),
            reason,
        };
        let mut fields = text.split_ascii_whitespace();
        let pid = fields.next().ok_or_else(|| malformed("it is empty"))?;
        let start = fields
            .next()
            .ok_or_else(|| malformed("it has no start time"))?;
        if fields.next().is_some() {
            return Err(malformed("it has more than two fields"));
        }
        let pid: u32 = pid
            .parse()
            .map_err(|_| malformed("the pid is not a number"))?;
        if pid == 0 || i32::try_from(pid).is_err() {
            return Err(malformed("the pid is out of range"));
        }
        let start_ticks = start
            .parse()
            .map_err(|_| malformed("the start time is not a number"))?;
        Ok(Self { pid, start_ticks })
    }

    /// Whether the process with this id now is the one recorded: running, and started at
    /// the recorded time.
    pub fn is_running(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }
}

impl fmt::Display for PidRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pid, self.start_ticks)
    }
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    start_ticks_of_stat(&stat)
}

/// Field 22 of a `/proc/PID/stat` line. Field 2, the command name in parentheses, may hold
/// spaces and parentheses itself, so fields are counted from the last `)`: field 3 is the
/// first after it.
fn start_ticks_of_stat(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name
        .split_ascii_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_start_time_is_field_22_even_when_the_name_has_spaces() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1 2 0 0 20 0 1 0 987654 10000 200 18446744073709551615";
        assert_eq!(start_ticks_of_stat(stat), Some(987_654));
        assert_eq!(start_ticks_of_stat("4242 (short) S 1"), None);
        assert_eq!(start_ticks_of_stat("no name at all"), None);
    }

    #[test]
    fn this_process_is_running_and_a_different_start_is_not_it() {
        let me = PidRecord::of_running(std::process::id()).unwrap();
        assert!(me.is_running());
        let reused = PidRecord {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!reused.is_running());
        assert_eq!(PidRecord::parse(&me.to_string()), Ok(me));
    }

    #[test]
    fn malformed_records_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "it is empty"),
            ("1234", "it has no start time"),
            ("1234 5 6", "it has more than two fields"),
            ("abc 5", "the pid is not a number"),
            ("0 5", "the pid is out of range"),
            ("4294967295 5", "the pid is out of range"),
            ("1234 -5", "the start time is not a number"),
        ] {
            assert_eq!(
                PidRecord::parse(text).unwrap_err().to_string(),
                format!("pid record {text:?} is not \"<pid> <start ticks>\": {reason}")
            );
        }
        assert_eq!(
            PidRecord::parse(" 17 99\n"),
            Ok(PidRecord {
                pid: 17,
                start_ticks: 99
            })
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_and_records_round_trip(
            text in ".{0,40}",
            pid in 1u32..=i32::MAX as u32,
            start_ticks: u64,
        ) {
            let _ = PidRecord::parse(&text);
            let _ = start_ticks_of_stat(&text);
            let record = PidRecord { pid, start_ticks };
            prop_assert_eq!(PidRecord::parse(&record.to_string()), Ok(record));
        }
    }
}
