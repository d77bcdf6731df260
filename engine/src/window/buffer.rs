//! The windowing itself, apart from tuples and acking: which items each window holds, when it
//! is evaluated, and when an item can no longer be in any window (it then expires).

use std::collections::VecDeque;

use super::spec::{Extent, WindowSpec};

/// Length and slide in the units the buffer counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Count { length: usize, slide: usize },
    Time { length_ms: u64, slide_ms: u64 },
}

/// Consecutive items of the buffer, in the (at most two) pieces its ring holds them in:
/// handing out a window never moves the items to make them one slice.
#[derive(Debug)]
pub(crate) struct Items<'a, T> {
    first: &'a [(u64, T)],
    second: &'a [(u64, T)],
}

impl<T> Clone for Items<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Items<'_, T> {}

impl<'a, T> Items<'a, T> {
    /// Items `from..to` of `entries`.
    fn of(entries: &'a VecDeque<(u64, T)>, from: usize, to: usize) -> Self {
        let (front, back) = entries.as_slices();
        let split = front.len();
        if to <= split {
            Self {
                first: &front[from..to],
                second: &[],
            }
        } else if from >= split {
            Self {
                first: &back[from - split..to - split],
                second: &[],
            }
        } else {
            Self {
                first: &front[from..],
                second: &back[..to - split],
            }
        }
    }

    /// The items, oldest first.
    pub(crate) fn iter(self) -> ItemIter<'a, T> {
        ItemIter {
            first: self.first.iter(),
            second: self.second.iter(),
        }
    }

    pub(crate) fn len(self) -> usize {
        self.first.len() + self.second.len()
    }

    pub(crate) fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The items of an [`Items`], oldest first.
#[derive(Debug)]
pub(crate) struct ItemIter<'a, T> {
    first: std::slice::Iter<'a, (u64, T)>,
    second: std::slice::Iter<'a, (u64, T)>,
}

impl<'a, T> Iterator for ItemIter<'a, T> {
    type Item = &'a (u64, T);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.first.next().or_else(|| self.second.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.first.len() + self.second.len();
        (len, Some(len))
    }
}

impl<T> ExactSizeIterator for ItemIter<'_, T> {}

/// One evaluated window: its items, oldest first, and for time windows its bounds.
#[derive(Debug)]
pub(crate) struct Evaluated<'a, T> {
    pub(crate) items: Items<'a, T>,
    /// `[start, end)` in milliseconds, for time windows.
    pub(crate) bounds: Option<(u64, u64)>,
}

/// Items in windows.
///
/// Count windows keep items in arrival order and are evaluated as items arrive. Time windows
/// keep items ordered by time and are evaluated as the watermark passes their ends
/// ([`WindowBuffer::advance`]).
#[derive(Debug)]
pub(crate) struct WindowBuffer<T> {
    shape: Shape,
    /// `(time in ms, item)`; time order for time windows, arrival order for count windows.
    entries: VecDeque<(u64, T)>,
    /// Count windows: items since the last evaluation.
    since_evaluated: usize,
    /// Time windows: the end of the next window to evaluate.
    next_end: Option<u64>,
    watermark: u64,
}

impl<T> WindowBuffer<T> {
    pub(crate) fn new(spec: &WindowSpec) -> Self {
        let shape = match (spec.length(), spec.slide()) {
            (Extent::Count(length), Extent::Count(slide)) => Shape::Count { length, slide },
            (Extent::Time(length), Extent::Time(slide)) => Shape::Time {
                length_ms: u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
                slide_ms: u64::try_from(slide.as_millis()).unwrap_or(u64::MAX),
            },
            _ => unreachable!("WindowSpec refuses mixed shapes"),
        };
        Self {
            shape,
            entries: VecDeque::new(),
            since_evaluated: 0,
            next_end: None,
            watermark: 0,
        }
    }

    /// Items held (not yet expired).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an item with its time. A count window evaluates itself when due; a time window
    /// waits for [`advance`](Self::advance). Returns the item back when it is late: the
    /// watermark already reached the end of every time window it belongs to.
    pub(crate) fn push(
        &mut self,
        time_ms: u64,
        item: T,
        on_window: &mut dyn FnMut(Evaluated<'_, T>),
        on_expired: &mut dyn FnMut(T),
    ) -> Result<(), T> {
        match self.shape {
            Shape::Count { length, slide } => {
                self.entries.push_back((time_ms, item));
                self.since_evaluated += 1;
                if self.since_evaluated == slide {
                    self.since_evaluated = 0;
                    let to = self.entries.len();
                    on_window(Evaluated {
                        items: Items::of(&self.entries, to.saturating_sub(length), to),
                        bounds: None,
                    });
                }
                // The next evaluation, `slide - since` items away, holds the newest
                // `length` items then: of those held now, only the newest few.
                let until_next = slide - self.since_evaluated;
                let keep = length.saturating_sub(until_next);
                while self.entries.len() > keep {
                    let (_, expired) = self.entries.pop_front().expect("longer than keep");
                    on_expired(expired);
                }
                Ok(())
            }
            Shape::Time {
                length_ms,
                slide_ms,
            } => {
                // A window is closed once the watermark reaches its end, evaluated or not
                // (an empty one is skipped): an item whose last window is closed is late.
                let last_end = time_ms.saturating_add(length_ms) / slide_ms * slide_ms;
                if last_end <= self.watermark {
                    return Err(item);
                }
                let first_end = (time_ms / slide_ms).saturating_add(1) * slide_ms;
                let first_open = first_end.max(next_multiple_above(self.watermark, slide_ms));
                self.next_end = Some(self.next_end.map_or(first_open, |end| end.min(first_open)));
                // Items mostly come in time order (always, in processing time): they go
                // at the back without a search.
                if self
                    .entries
                    .back()
                    .is_none_or(|(newest, _)| *newest <= time_ms)
                {
                    self.entries.push_back((time_ms, item));
                } else {
                    let at = self.entries.partition_point(|(time, _)| *time <= time_ms);
                    self.entries.insert(at, (time_ms, item));
                }
                Ok(())
            }
        }
    }

    /// Moves the watermark to `watermark_ms` (it never moves back), evaluating every time
    /// window that ends at or before it and expiring the items no later window holds.
    /// Windows with no items are skipped. Count windows ignore it.
    pub(crate) fn advance(
        &mut self,
        watermark_ms: u64,
        on_window: &mut dyn FnMut(Evaluated<'_, T>),
        on_expired: &mut dyn FnMut(T),
    ) {
        let Shape::Time {
            length_ms,
            slide_ms,
        } = self.shape
        else {
            return;
        };
        self.watermark = self.watermark.max(watermark_ms);
        while let Some(end) = self.next_end.filter(|end| *end <= self.watermark) {
            let start = end.saturating_sub(length_ms);
            let from = self.entries.partition_point(|(time, _)| *time < start);
            let to = self.entries.partition_point(|(time, _)| *time < end);
            if from < to {
                on_window(Evaluated {
                    items: Items::of(&self.entries, from, to),
                    bounds: Some((start, end)),
                });
            }
            let following = end.saturating_add(slide_ms);
            // Nothing older than the next window's start is in any window still to come.
            let next_start = following.saturating_sub(length_ms);
            while self
                .entries
                .front()
                .is_some_and(|(time, _)| *time < next_start)
            {
                let (_, expired) = self.entries.pop_front().expect("front exists");
                on_expired(expired);
            }
            // Skip the empty windows up to the one that holds the oldest item left.
            self.next_end = self
                .entries
                .front()
                .map(|(time, _)| next_multiple_above(*time, slide_ms).max(following));
        }
    }
}

/// Where a buffer stands apart from its items: enough, with the items, to rebuild it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Progress {
    pub(crate) since_evaluated: u64,
    /// `u64::MAX` when no time window is due.
    pub(crate) next_end: u64,
    pub(crate) watermark: u64,
}

impl<T> WindowBuffer<T> {
    /// Where the buffer stands.
    pub(crate) fn progress(&self) -> Progress {
        Progress {
            since_evaluated: self.since_evaluated as u64,
            next_end: self.next_end.unwrap_or(u64::MAX),
            watermark: self.watermark,
        }
    }

    /// Replaces the buffer's items and progress with what [`progress`](Self::progress) and
    /// its items were at some point. `items` are in arrival order; ties in time keep it.
    pub(crate) fn restore(&mut self, progress: Progress, items: Vec<(u64, T)>) {
        let mut items = items;
        if matches!(self.shape, Shape::Time { .. }) {
            items.sort_by_key(|(time, _)| *time);
        }
        self.entries = items.into();
        self.since_evaluated = usize::try_from(progress.since_evaluated).unwrap_or(usize::MAX);
        self.next_end = (progress.next_end != u64::MAX).then_some(progress.next_end);
        self.watermark = progress.watermark;
    }
}

/// The smallest multiple of `step` above `value`.
fn next_multiple_above(value: u64, step: u64) -> u64 {
    (value / step).saturating_add(1).saturating_mul(step)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    type Seen = Vec<(Option<(u64, u64)>, Vec<u32>)>;

    /// An item to push (time, item), then a watermark to advance to.
    type Step = (Option<(u64, u32)>, Option<u64>);

    fn run(spec: &WindowSpec, steps: &[Step]) -> (Seen, Vec<u32>, Vec<u32>) {
        let mut buffer = WindowBuffer::new(spec);
        let (mut windows, mut expired, mut late) = (Vec::new(), Vec::new(), Vec::new());
        for (item, watermark) in steps {
            let mut on_window = |window: Evaluated<'_, u32>| {
                windows.push((
                    window.bounds,
                    window.items.iter().map(|(_, item)| *item).collect(),
                ));
            };
            let mut on_expired = |item| expired.push(item);
            if let Some((time, item)) = item
                && let Err(item) = buffer.push(*time, *item, &mut on_window, &mut on_expired)
            {
                late.push(item);
            }
            if let Some(watermark) = watermark {
                buffer.advance(*watermark, &mut on_window, &mut on_expired);
            }
        }
        (windows, expired, late)
    }

    fn items(values: impl IntoIterator<Item = u32>) -> Vec<Step> {
        values.into_iter().map(|v| (Some((0, v)), None)).collect()
    }

    /// Runs `steps` on one buffer, and on another that is rebuilt from the first's progress
    /// and items after every step: both see the same windows.
    fn run_restoring(spec: &WindowSpec, steps: &[Step]) -> (Seen, Seen) {
        let whole = run(spec, steps).0;
        let mut buffer: WindowBuffer<u32> = WindowBuffer::new(spec);
        let mut windows = Vec::new();
        for (item, watermark) in steps {
            let mut on_window = |window: Evaluated<'_, u32>| {
                windows.push((
                    window.bounds,
                    window.items.iter().map(|(_, item)| *item).collect(),
                ));
            };
            if let Some((time, item)) = item {
                let _ = buffer.push(*time, *item, &mut on_window, &mut |_| {});
            }
            if let Some(watermark) = watermark {
                buffer.advance(*watermark, &mut on_window, &mut |_| {});
            }
            let progress = buffer.progress();
            // A checkpoint gives the items back in arrival order (by sequence number); an
            // item's number is its place in arrival here.
            let mut items: Vec<(u64, u32)> = buffer.entries.iter().copied().collect();
            items.sort_by_key(|(_, item)| *item);
            let mut rebuilt = WindowBuffer::new(spec);
            rebuilt.restore(progress, items);
            buffer = rebuilt;
        }
        (whole, windows)
    }

    #[test]
    fn a_buffer_rebuilt_from_its_progress_and_items_sees_the_same_windows() {
        let count = WindowSpec::sliding(Extent::Count(5), Extent::Count(2)).unwrap();
        let (whole, restored) = run_restoring(&count, &items(0..50));
        assert_eq!(whole, restored);
        let time = WindowSpec::sliding(
            Extent::Time(Duration::from_millis(30)),
            Extent::Time(Duration::from_millis(10)),
        )
        .unwrap();
        // Out of order in time, with watermarks behind the newest item.
        let steps: Vec<Step> = (0..60u32)
            .map(|n| {
                let time = u64::from(n) * 3 + u64::from(n % 4) * 5;
                (Some((time, n)), Some((u64::from(n) * 3).saturating_sub(8)))
            })
            .collect();
        let (whole, restored) = run_restoring(&time, &steps);
        assert!(!whole.is_empty());
        assert_eq!(whole, restored);
    }

    #[test]
    fn windows_that_wrap_around_the_ring_hold_the_right_items() {
        // Items enter at the back and leave at the front, so the ring wraps many times.
        let spec = WindowSpec::sliding(Extent::Count(7), Extent::Count(3)).unwrap();
        let (windows, _, _) = run(&spec, &items(0..1000));
        assert_eq!(windows.len(), 333);
        for (index, (_, window)) in windows.iter().enumerate() {
            let end = 3 * (index as u32 + 1);
            assert_eq!(*window, (end.saturating_sub(7)..end).collect::<Vec<_>>());
        }
        let spec = WindowSpec::sliding(
            Extent::Time(Duration::from_millis(50)),
            Extent::Time(Duration::from_millis(10)),
        )
        .unwrap();
        let steps: Vec<Step> = (0..1000u64)
            .map(|at| (Some((at, at as u32)), Some(at)))
            .collect();
        let (windows, _, _) = run(&spec, &steps);
        for (bounds, window) in &windows {
            let (start, end) = bounds.unwrap();
            assert_eq!(
                *window,
                (start as u32..end as u32).collect::<Vec<_>>(),
                "{start}..{end}"
            );
        }
        assert_eq!(windows.len(), 99);
    }

    #[test]
    fn a_tumbling_count_window_evaluates_every_n_items_and_expires_them_after() {
        let spec = WindowSpec::tumbling(Extent::Count(3)).unwrap();
        let (windows, expired, _) = run(&spec, &items(1..=7));
        assert_eq!(windows, vec![(None, vec![1, 2, 3]), (None, vec![4, 5, 6])]);
        assert_eq!(expired, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_sliding_count_window_holds_the_last_n_and_expires_what_no_later_window_holds() {
        let spec = WindowSpec::sliding(Extent::Count(4), Extent::Count(2)).unwrap();
        let (windows, expired, _) = run(&spec, &items(1..=8));
        assert_eq!(
            windows,
            vec![
                (None, vec![1, 2]),
                (None, vec![1, 2, 3, 4]),
                (None, vec![3, 4, 5, 6]),
                (None, vec![5, 6, 7, 8])
            ]
        );
        assert_eq!(expired, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn time_windows_evaluate_when_the_watermark_passes_their_end() {
        let spec = WindowSpec::sliding(
            Extent::Time(Duration::from_millis(1000)),
            Extent::Time(Duration::from_millis(500)),
        )
        .unwrap();
        let steps = [
            (Some((100, 1)), None),
            (Some((600, 2)), None),
            (Some((1200, 3)), Some(999)),
            (None, Some(1000)),
            (None, Some(1600)),
            (Some((5000, 4)), Some(6000)),
        ];
        let (windows, expired, late) = run(&spec, &steps);
        assert_eq!(
            windows,
            vec![
                (Some((0, 500)), vec![1]),
                (Some((0, 1000)), vec![1, 2]),
                (Some((500, 1500)), vec![2, 3]),
                (Some((1000, 2000)), vec![3]),
                (Some((4500, 5500)), vec![4]),
                (Some((5000, 6000)), vec![4]),
            ]
        );
        assert_eq!(expired, vec![1, 2, 3, 4]);
        assert!(late.is_empty());
    }

    #[test]
    fn an_item_whose_windows_were_all_evaluated_is_late_and_an_earlier_one_is_not() {
        let spec = WindowSpec::tumbling(Extent::Time(Duration::from_millis(1000))).unwrap();
        let steps = [
            (Some((1500, 1)), None),
            // Out of order, but its window [0, 1000) is still open.
            (Some((900, 2)), Some(1000)),
            // [0, 1000) was evaluated: 3 belongs to nothing open.
            (Some((999, 3)), None),
            (Some((1000, 4)), Some(2000)),
        ];
        let (windows, _, late) = run(&spec, &steps);
        assert_eq!(
            windows,
            vec![(Some((0, 1000)), vec![2]), (Some((1000, 2000)), vec![4, 1])]
        );
        assert_eq!(late, vec![3]);
    }

    #[test]
    fn a_watermark_far_ahead_does_not_walk_every_empty_window() {
        let spec = WindowSpec::tumbling(Extent::Time(Duration::from_millis(1))).unwrap();
        let steps = [(Some((0, 1)), Some(u64::MAX / 2))];
        let (windows, expired, _) = run(&spec, &steps);
        assert_eq!(windows, vec![(Some((0, 1)), vec![1])]);
        assert_eq!(expired, vec![1]);
    }
}
