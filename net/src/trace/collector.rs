//! The process-wide list of stamps, and writing it out joined by link ordinal.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Mutex;

use super::{LinkKey, Stage};

/// Stamps kept at most; later ones are dropped, so a long run cannot exhaust memory.
const MAX_EVENTS: usize = 4 << 20;

/// One stamp as it is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Raw {
    /// An executor-side stamp of the `n`-th traced record of outbound ring `ring`.
    Ring {
        ring: u64,
        n: u64,
        stage: Stage,
        ns: u64,
    },
    /// The transport picked that record up and gave it its link ordinal.
    PickUp {
        ring: u64,
        n: u64,
        key: LinkKey,
        ns: u64,
    },
    /// A stamp of a record whose link ordinal is known.
    Link { key: LinkKey, stage: Stage, ns: u64 },
}

static EVENTS: Mutex<Vec<Raw>> = Mutex::new(Vec::new());

/// Appends stamps to the collector.
pub(crate) fn record(events: impl IntoIterator<Item = Raw>) {
    let mut all = EVENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let room = MAX_EVENTS.saturating_sub(all.len());
    all.extend(events.into_iter().take(room));
}

/// Appends one stamp of a record whose link ordinal is known.
pub(crate) fn record_link(key: LinkKey, stage: Stage, ns: u64) {
    record([Raw::Link { key, stage, ns }]);
}

/// Forgets every stamp taken so far (those of records still in flight included: their
/// timelines then lack the first stages and are left out).
pub fn clear() {
    EVENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clear();
}

/// Writes the stamps taken so far, one per line: `from to ordinal stage nanoseconds`
/// ([`Stage::name`]), and forgets them. Executor stamps of records no transport picked up
/// (yet) are left out.
///
/// # Errors
/// When writing fails.
pub fn write_events(out: &mut impl Write) -> io::Result<()> {
    let events = std::mem::take(&mut *EVENTS.lock().unwrap_or_else(|p| p.into_inner()));
    for (key, stage, ns) in joined(&events) {
        writeln!(out, "{} {} {} {stage} {ns}", key.from, key.to, key.ordinal)?;
    }
    Ok(())
}

/// The stamps keyed by link ordinal: executor stamps get theirs from the pick-up of the same
/// ring record.
fn joined(events: &[Raw]) -> Vec<(LinkKey, Stage, u64)> {
    let picked: HashMap<(u64, u64), LinkKey> = events
        .iter()
        .filter_map(|event| match *event {
            Raw::PickUp { ring, n, key, .. } => Some(((ring, n), key)),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter_map(|event| match *event {
            Raw::Ring { ring, n, stage, ns } => picked.get(&(ring, n)).map(|&key| (key, stage, ns)),
            Raw::PickUp { key, ns, .. } => Some((key, Stage::PickUp, ns)),
            Raw::Link { key, stage, ns } => Some((key, stage, ns)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ordinal: u64) -> LinkKey {
        LinkKey {
            from: 1,
            to: 2,
            ordinal,
        }
    }

    #[test]
    fn executor_stamps_take_the_ordinal_of_their_pick_up() {
        let events = [
            Raw::Ring {
                ring: 7,
                n: 0,
                stage: Stage::Write,
                ns: 10,
            },
            Raw::Ring {
                ring: 7,
                n: 1,
                stage: Stage::Write,
                ns: 11,
            },
            Raw::Ring {
                ring: 8,
                n: 0,
                stage: Stage::Write,
                ns: 12,
            },
            Raw::PickUp {
                ring: 8,
                n: 0,
                key: key(0),
                ns: 20,
            },
            Raw::PickUp {
                ring: 7,
                n: 0,
                key: key(1),
                ns: 21,
            },
            Raw::Link {
                key: key(1),
                stage: Stage::FrameWritten,
                ns: 30,
            },
        ];
        assert_eq!(
            joined(&events),
            [
                (key(1), Stage::Write, 10),
                // Ring 7's second record was never picked up: left out.
                (key(0), Stage::Write, 12),
                (key(0), Stage::PickUp, 20),
                (key(1), Stage::PickUp, 21),
                (key(1), Stage::FrameWritten, 30),
            ]
        );
    }
}
