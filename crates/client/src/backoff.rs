//! [`Backoff`]: the wait between retries, doubling from a first delay up to a cap, with jitter
//! so that clients retrying after the same failure do not arrive together.

use std::time::Duration;

/// Exponential backoff with "equal jitter": each delay is uniform in `[d/2, d]`, where `d`
/// doubles from `initial` up to `max` after each call.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling, never above `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            next: initial,
            max: max.max(initial),
        }
    }

    /// The next delay to wait.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = d / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        let bounds = [(5, 10), (10, 20), (17, 35), (17, 35)];
        for (low, high) in bounds {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_micros(low * 1000 - 1) && d <= Duration::from_millis(high),
                "{d:?} not in {low}..={high} ms"
            );
        }
    }
}
