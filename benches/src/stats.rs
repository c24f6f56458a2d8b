//! Latency percentiles from an hdrhistogram of nanoseconds.

use hdrhistogram::Histogram;
use std::time::Duration;

/// A histogram of latencies in nanoseconds, from 1 ns to 100 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .expect("the bounds are constants that hdrhistogram accepts")
}

/// Records `d` in `h` (saturating at the histogram's top: a 100 s latency is off the chart).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

/// The percentiles the report prints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Percentiles {
    /// The percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: h.len(),
            p50: Duration::from_nanos(h.value_at_quantile(0.50)),
            p99: Duration::from_nanos(h.value_at_quantile(0.99)),
            p999: Duration::from_nanos(h.value_at_quantile(0.999)),
            max: Duration::from_nanos(h.max()),
        }
    }
}

/// Microseconds of `d`, as a float.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds of `d`, as a float.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_samples() {
        let mut h = latency_histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((micros(p.p50) - 500.0).abs() < 1.0, "{:?}", p.p50);
        assert!((micros(p.p99) - 990.0).abs() < 1.0, "{:?}", p.p99);
        assert!((micros(p.max) - 1000.0).abs() < 1.0, "{:?}", p.max);
    }
}
