//! Latency percentiles.

use std::time::Duration;

/// Latencies of completed requests, sorted once for percentile queries.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    sorted_ms: Vec<f64>,
}

impl Latencies {
    /// Collects durations.
    pub fn new(durations: impl IntoIterator<Item = Duration>) -> Self {
        let mut sorted_ms: Vec<f64> = durations
            .into_iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        sorted_ms.sort_by(f64::total_cmp);
        Latencies { sorted_ms }
    }

    /// How many samples there are.
    pub fn count(&self) -> usize {
        self.sorted_ms.len()
    }

    /// The `p`-th percentile in milliseconds (nearest-rank), or `None` without samples.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.sorted_ms.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.sorted_ms.len() as f64).ceil() as usize;
        Some(self.sorted_ms[rank.clamp(1, self.sorted_ms.len()) - 1])
    }

    /// The median in milliseconds.
    pub fn p50_ms(&self) -> Option<f64> {
        self.percentile_ms(50.0)
    }

    /// The 95th percentile in milliseconds.
    pub fn p95_ms(&self) -> Option<f64> {
        self.percentile_ms(95.0)
    }

    /// The 99th percentile in milliseconds.
    pub fn p99_ms(&self) -> Option<f64> {
        self.percentile_ms(99.0)
    }

    /// The slowest sample in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        self.sorted_ms.last().copied()
    }
}

/// The median of `values` (mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Latencies {
        Latencies::new(values.iter().map(|&v| Duration::from_millis(v)))
    }

    #[test]
    fn nearest_rank_percentiles() {
        let l = ms(&[5, 1, 4, 2, 3, 6, 7, 8, 9, 10]);
        assert_eq!(l.p50_ms(), Some(5.0));
        assert_eq!(l.p95_ms(), Some(10.0));
        assert_eq!(l.percentile_ms(10.0), Some(1.0));
        assert_eq!(l.max_ms(), Some(10.0));
        assert_eq!(ms(&[]).p50_ms(), None);
        assert_eq!(ms(&[7]).p99_ms(), Some(7.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}

/// The least-squares slope of `points` (x, y): how much y grows per unit of x.
///
/// `None` with fewer than two distinct x values.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let spread: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if spread == 0.0 {
        return None;
    }
    Some(
        points
            .iter()
            .map(|p| (p.0 - mean_x) * (p.1 - mean_y))
            .sum::<f64>()
            / spread,
    )
}

#[cfg(test)]
mod slope_tests {
    use super::slope;

    #[test]
    fn slope_of_a_line_and_of_flat_noise() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(0.0, 4.0), (1.0, 4.0), (2.0, 4.0)]), Some(0.0));
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
