//! Round-trip time samples and their summary (min / p50 / p99 / max), as `tmp2p ping`
//! reports them.

use std::time::Duration;

/// Summary of a set of round-trip times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LatencySummary {
    pub(crate) count: usize,
    pub(crate) min: Duration,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl LatencySummary {
    /// Summarises `samples` (nearest-rank percentiles); `None` when there are none.
    pub(crate) fn of(samples: &[Duration]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(LatencySummary {
            count: sorted.len(),
            min: *sorted.first()?,
            p50: nearest_rank(&sorted, 50)?,
            p99: nearest_rank(&sorted, 99)?,
            max: *sorted.last()?,
        })
    }
}

/// The `percent`th percentile of sorted `samples` by the nearest-rank method: the smallest
/// sample with at least `percent` % of the samples at or below it.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Option<Duration> {
    let rank = (sorted.len().checked_mul(percent)?).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Microseconds with two decimals, for tables: `123.45 µs`, or milliseconds above 10 ms.
pub(crate) fn human(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros >= 10_000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.1} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(LatencySummary::of(&[]), None);
    }

    #[test]
    fn single_sample_is_every_statistic() {
        let s = LatencySummary::of(&[us(7)]).unwrap();
        assert_eq!(
            (s.min, s.p50, s.p99, s.max, s.count),
            (us(7), us(7), us(7), us(7), 1)
        );
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        // Unsorted input: 100, 99, ..., 1 µs.
        let samples: Vec<_> = (1..=100).rev().map(us).collect();
        let s = LatencySummary::of(&samples).unwrap();
        assert_eq!(s.min, us(1));
        assert_eq!(s.p50, us(50));
        assert_eq!(s.p99, us(99));
        assert_eq!(s.max, us(100));
    }

    #[test]
    fn p99_of_few_samples_is_the_largest() {
        let s = LatencySummary::of(&[us(1), us(2), us(3)]).unwrap();
        assert_eq!(s.p50, us(2));
        assert_eq!(s.p99, us(3));
    }

    #[test]
    fn human_switches_to_milliseconds() {
        assert_eq!(human(us(1234)), "1234.0 µs");
        assert_eq!(human(Duration::from_millis(25)), "25.00 ms");
    }
}
