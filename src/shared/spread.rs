//! A figure measured several times, as hyperfine shows it: the median,
//! the smallest and the largest. `load --repeat` and `report --compare`
//! both say their spreads with it.

use serde::Serialize;

/// One figure over several measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range {
    /// The median (of an even count, the mean of the middle two).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Range {
    /// The range of the finite `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Range> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Range {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_has_its_median_min_and_max() {
        let r = Range::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((r.median, r.min, r.max), (2.0, 1.0, 3.0));
        let even = Range::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (3.0, 1.0, 10.0));
        assert_eq!(Range::of(&[]), None);
        assert_eq!(Range::of(&[f64::NAN, 5.0]).unwrap().median, 5.0);
    }
}
