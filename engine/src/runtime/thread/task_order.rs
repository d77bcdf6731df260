//! Input for the batch bolts of a thread that runs several, held back from an input batch
//! and put in task order before it runs.
//!
//! A fields grouping spreads a spout's records over all the counters of a thread, so in the
//! ring they alternate between tasks and a run of consecutive records for one task is about
//! one record long: a batch bolt then pays its call per tuple and gains nothing. Held back
//! and sorted by task — stably, so each task still sees its own input in the order it
//! arrived — sixteen tasks sharing a batch of 256 records get runs of about sixteen. Tasks
//! are independent of each other, so nothing orders one task's input against another's.

use smallvec::SmallVec;

use crate::runtime::input_batch::RUN_RECORDS;
use crate::tuple::TupleRef;

/// Most records held back before they are sorted and run, and so the longest input batch a
/// thread that orders its input reads: with 64 batch bolts on a thread, runs of about 16.
pub(super) const HELD_RECORDS: usize = 1024;

/// Records a thread that orders its input reads at a time per batch bolt, for runs about this
/// long (never fewer than the configured input batch, never more than [`HELD_RECORDS`]).
const RECORDS_PER_BOLT: usize = 16;

/// The input batch of a thread with `batch_bolts` bolts whose input it puts in task order,
/// where `configured` is the topology's.
pub(super) fn ordered_input_batch(configured: usize, batch_bolts: usize) -> usize {
    configured.max((batch_bolts * RECORDS_PER_BOLT).min(HELD_RECORDS))
}

/// Records held back for batch bolts, each with the index of its task's cell, and the
/// buffer they are sorted into.
pub(super) struct HeldInput<'r> {
    views: SmallVec<[TupleRef<'r>; HELD_RECORDS]>,
    cells: SmallVec<[u16; HELD_RECORDS]>,
    sorted: SmallVec<[TupleRef<'r>; HELD_RECORDS]>,
    /// Whether `cells` never decreased: what is held is in task order already (one ring's
    /// batch for one task, or for tasks in cell order), and is run where it lies.
    in_order: bool,
    /// Whether what is held was taken out, and is dropped at the next hold.
    taken: bool,
}

impl<'r> HeldInput<'r> {
    pub(super) fn new() -> Self {
        Self {
            views: SmallVec::new(),
            cells: SmallVec::new(),
            sorted: SmallVec::new(),
            in_order: true,
            taken: false,
        }
    }

    /// Holds `view` for the task of cell `cell`; returns whether the buffer is now full (the
    /// caller then runs what it holds).
    #[inline]
    pub(super) fn hold(&mut self, cell: u16, view: TupleRef<'r>) -> bool {
        self.drop_taken();
        if let Some(&last) = self.cells.last() {
            self.in_order &= last <= cell;
        }
        self.views.push(view);
        self.cells.push(cell);
        self.views.len() == HELD_RECORDS
    }

    pub(super) fn is_empty(&self) -> bool {
        self.taken || self.views.is_empty()
    }

    /// Drops what was taken out: its runs were handed out from the buffers themselves.
    #[inline]
    fn drop_taken(&mut self) {
        if self.taken {
            self.views.clear();
            self.cells.clear();
            self.in_order = true;
            self.taken = false;
        }
    }

    /// Takes out what is held, in task order and each task's records in the order they
    /// were held. `counts` has one entry per cell of the thread; it is left holding where
    /// each cell's records end.
    pub(super) fn take_sorted<'h>(&'h mut self, counts: &'h mut [u16]) -> SortedRuns<'h, 'r> {
        self.drop_taken();
        self.taken = true;
        counts.fill(0);
        if self.in_order {
            // Each cell's records end after its last one; a cell with none ends where the
            // one before it does.
            for (index, &cell) in self.cells.iter().enumerate() {
                counts[usize::from(cell)] = index as u16 + 1;
            }
            let mut end = 0;
            for count in counts.iter_mut() {
                end = end.max(*count);
                *count = end;
            }
            return SortedRuns {
                views: &self.views,
                ends: counts,
                cell: 0,
                next: 0,
            };
        }
        for &cell in &self.cells {
            counts[usize::from(cell)] += 1;
        }
        let mut start = 0;
        for count in counts.iter_mut() {
            let next = start + *count;
            *count = start;
            start = next;
        }
        // A copy first (one `memcpy`), so every slot holds a view before its own lands.
        self.sorted.clear();
        self.sorted.extend_from_slice(&self.views);
        for (view, &cell) in self.views.iter().zip(&self.cells) {
            let slot = &mut counts[usize::from(cell)];
            self.sorted[usize::from(*slot)] = *view;
            *slot += 1;
        }
        SortedRuns {
            views: &self.sorted,
            ends: counts,
            cell: 0,
            next: 0,
        }
    }
}

/// Held records in task order, handed out in runs.
pub(super) struct SortedRuns<'h, 'r> {
    views: &'h [TupleRef<'r>],
    /// Per cell, where its records end in `views`.
    ends: &'h [u16],
    /// The cell whose records are being handed out.
    cell: usize,
    next: usize,
}

impl<'h, 'r> SortedRuns<'h, 'r> {
    /// The next run and its task's cell: records of one task on one stream, at most
    /// [`RUN_RECORDS`] of them.
    pub(super) fn next_run(&mut self) -> Option<(usize, &'h [TupleRef<'r>])> {
        let start = self.next;
        let first = self.views.get(start)?;
        while usize::from(self.ends[self.cell]) <= start {
            self.cell += 1;
        }
        let stream = first.stream_id();
        let limit = usize::from(self.ends[self.cell]).min(start + RUN_RECORDS);
        let mut end = start + 1;
        while end < limit && self.views[end].stream_id() == stream {
            end += 1;
        }
        self.next = end;
        Some((self.cell, &self.views[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskId;
    use crate::tuple::encode_record;
    use crate::value::Value;

    /// A record for `task` on `stream` carrying `n`.
    fn record(task: u32, stream: u16, n: u64) -> Vec<u8> {
        let mut record = Vec::new();
        encode_record(
            &mut record,
            TaskId(task),
            TaskId(0),
            stream,
            &[],
            &[Value::U64(n)],
        );
        record
    }

    /// Holds each of `records` for the cell numbered as its task.
    fn hold_by_task<'r>(held: &mut HeldInput<'r>, records: impl IntoIterator<Item = &'r Vec<u8>>) {
        for record in records {
            let view = TupleRef::parse(record).unwrap();
            held.hold(view.dest_task().0 as u16, view);
        }
    }

    /// Every run of `held` as (cell, stream, values).
    fn runs(held: &mut HeldInput<'_>, cells: usize) -> Vec<(usize, u16, Vec<u64>)> {
        let mut counts = vec![0; cells];
        let mut sorted = held.take_sorted(&mut counts);
        let mut runs = Vec::new();
        while let Some((cell, views)) = sorted.next_run() {
            let values = views.iter().map(|view| view.get_u64(0).unwrap()).collect();
            runs.push((cell, views[0].stream_id(), values));
        }
        runs
    }

    #[test]
    fn interleaved_tasks_come_out_in_task_order_each_in_arrival_order() {
        let records: Vec<Vec<u8>> = (0..12).map(|n| record(n % 3, 9, n as u64)).collect();
        let mut held = HeldInput::new();
        for record in &records {
            let view = TupleRef::parse(record).unwrap();
            // Cells numbered backwards from tasks, so the order is the cells', not arrival's.
            let cell = 2 - view.dest_task().0 as u16;
            assert!(!held.hold(cell, view));
        }
        assert_eq!(
            runs(&mut held, 3),
            [
                (0, 9, vec![2, 5, 8, 11]),
                (1, 9, vec![1, 4, 7, 10]),
                (2, 9, vec![0, 3, 6, 9]),
            ]
        );
        assert!(held.is_empty(), "taken out");
        assert!(runs(&mut held, 3).is_empty());
    }

    #[test]
    fn input_already_in_task_order_runs_as_held_and_cells_without_input_are_skipped() {
        let tasks = [0, 0, 2, 2, 2, 5];
        let records: Vec<Vec<u8>> = tasks
            .iter()
            .enumerate()
            .map(|(n, &task)| record(task, 9, n as u64))
            .collect();
        let mut held = HeldInput::new();
        hold_by_task(&mut held, &records);
        assert_eq!(
            runs(&mut held, 6),
            [(0, 9, vec![0, 1]), (2, 9, vec![2, 3, 4]), (5, 9, vec![5]),]
        );
        assert!(held.is_empty());
        // Held again after a run in place: the buffers start over, and order is looked at
        // afresh.
        hold_by_task(&mut held, records.iter().rev());
        assert_eq!(
            runs(&mut held, 6),
            [(0, 9, vec![1, 0]), (2, 9, vec![4, 3, 2]), (5, 9, vec![5]),]
        );
    }

    #[test]
    fn a_task_s_runs_break_where_its_stream_changes_and_keep_their_order() {
        let records = [
            record(0, 9, 1),
            record(1, 9, 2),
            record(0, 9, 3),
            record(0, 4, 4),
            record(1, 9, 5),
            record(0, 9, 6),
        ];
        let mut held = HeldInput::new();
        hold_by_task(&mut held, &records);
        assert_eq!(
            runs(&mut held, 2),
            [
                (0, 9, vec![1, 3]),
                (0, 4, vec![4]),
                (0, 9, vec![6]),
                (1, 9, vec![2, 5]),
            ]
        );
    }

    #[test]
    fn threads_with_many_batch_bolts_read_longer_batches_within_the_buffer() {
        assert_eq!(
            ordered_input_batch(256, 2),
            256,
            "never below the configured batch"
        );
        assert_eq!(ordered_input_batch(256, 32), 512);
        assert_eq!(ordered_input_batch(256, 500), HELD_RECORDS);
        assert_eq!(
            ordered_input_batch(4096, 2),
            4096,
            "a larger configured batch stays"
        );
    }

    #[test]
    fn runs_are_no_longer_than_the_run_limit_and_the_buffer_reports_full() {
        let records: Vec<Vec<u8>> = (0..HELD_RECORDS).map(|n| record(0, 9, n as u64)).collect();
        let mut held = HeldInput::new();
        let full: Vec<bool> = records
            .iter()
            .map(|record| held.hold(0, TupleRef::parse(record).unwrap()))
            .collect();
        assert_eq!(full.iter().filter(|full| **full).count(), 1);
        assert!(full[HELD_RECORDS - 1], "full at the last one");
        let runs = runs(&mut held, 1);
        assert_eq!(runs.len(), HELD_RECORDS.div_ceil(RUN_RECORDS));
        assert!(runs.iter().all(|(_, _, run)| run.len() <= RUN_RECORDS));
        let all: Vec<u64> = runs.into_iter().flat_map(|(_, _, run)| run).collect();
        assert_eq!(all, (0..HELD_RECORDS as u64).collect::<Vec<_>>());
    }
}
