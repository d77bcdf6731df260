//! Turning samples into figures: percentiles of throughput intervals, and ratios between two
//! cases paired round by round.

use serde::Serialize;

/// The value at `quantile` (0 to 1) of `sorted`, nearest rank; 0 when empty.
pub fn quantile(sorted: &[f64], quantile: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * quantile).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// The median of `values`, in any order.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

/// The median over rounds of `ours[round] / reference[round]`, leaving out rounds in which
/// either figure is missing or zero.
///
/// Both cases ran once in every round, close together in time, so each round's ratio
/// compares them under the same conditions even when the machine's speed drifts from round
/// to round; the median of those ratios is far steadier than the ratio of two medians.
pub fn paired_ratio(ours: &[f64], reference: &[f64]) -> f64 {
    let ratios: Vec<f64> = ours
        .iter()
        .zip(reference)
        .filter(|&(&ours, &reference)| ours > 0.0 && reference > 0.0)
        .map(|(ours, reference)| ours / reference)
        .collect();
    median(&ratios)
}

/// Throughput samples: the rate of every counted interval, from one slice of a case or
/// merged from several.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Items per second of each counted interval.
    pub rates: Vec<f64>,
    /// Median interval rate of each slice, in the order the slices ran (0 for a slice
    /// without a counted interval).
    pub per_round: Vec<f64>,
    /// Intervals left out because a thread lost its core during them.
    pub dropped: usize,
    /// Items received in the counted intervals.
    pub items: u64,
    /// Length of the counted intervals, in seconds.
    pub seconds: f64,
}

impl Samples {
    /// The samples of one slice.
    pub fn slice(rates: Vec<f64>, dropped: usize, items: u64, seconds: f64) -> Self {
        Self {
            per_round: vec![median(&rates)],
            rates,
            dropped,
            items,
            seconds,
        }
    }

    /// Adds the samples of a later slice of the same case.
    pub fn merge(&mut self, other: Samples) {
        self.rates.extend(other.rates);
        self.per_round.extend(other.per_round);
        self.dropped += other.dropped;
        self.items += other.items;
        self.seconds += other.seconds;
    }

    /// Percentiles of the interval rates.
    pub fn summary(&self) -> Throughput {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        Throughput {
            overall: if self.seconds > 0.0 {
                self.items as f64 / self.seconds
            } else {
                0.0
            },
            p50: quantile(&rates, 0.5),
            p10: quantile(&rates, 0.1),
            p90: quantile(&rates, 0.9),
            intervals: rates.len(),
            dropped: self.dropped,
            per_round: self.per_round.clone(),
            items: self.items,
            seconds: self.seconds,
        }
    }
}

/// A throughput measurement: items per second over the counted intervals.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Items received while counted.
    pub items: u64,
    /// Counted time, in seconds.
    pub seconds: f64,
    /// Items per second over the whole counted time.
    pub overall: f64,
    /// Median of the per-interval rates, items per second.
    pub p50: f64,
    /// 10th percentile of the per-interval rates.
    pub p10: f64,
    /// 90th percentile of the per-interval rates.
    pub p90: f64,
    /// Number of intervals counted.
    pub intervals: usize,
    /// Number of intervals left out because a thread lost its core during them.
    pub dropped: usize,
    /// Median interval rate of each round.
    pub per_round: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        assert_eq!(quantile(&sorted, 0.1), 1.0);
        assert_eq!(quantile(&sorted, 0.9), 5.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn paired_ratios_cancel_a_drifting_machine() {
        // The machine halves its speed every round; ours is always 10% ahead.
        let reference = [100.0, 50.0, 25.0, 12.5, 0.0];
        let ours = [110.0, 55.0, 27.5, 13.75, 7.0];
        assert!((paired_ratio(&ours, &reference) - 1.1).abs() < 1e-9);
    }

    #[test]
    fn slices_merge_in_order() {
        let mut samples = Samples::slice(vec![1.0, 3.0, 2.0], 1, 6, 3.0);
        samples.merge(Samples::slice(vec![10.0], 2, 10, 1.0));
        let summary = samples.summary();
        assert_eq!(summary.per_round, [2.0, 10.0]);
        assert_eq!(
            (summary.items, summary.seconds, summary.overall),
            (16, 4.0, 4.0)
        );
        assert_eq!((summary.intervals, summary.dropped), (4, 3));
    }
}
