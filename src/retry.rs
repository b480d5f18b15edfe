//! The one backoff every retry in terad uses: backend listings and watches, coordination slots,
//! registrations, lease keep-alives and the `--exec` service's restarts.
//!
//! Exponential with jitter, so a fleet of sidecars that lost its store at the same moment does
//! not come back in lockstep (a thundering herd on a store that is just recovering).

use std::time::Duration;

/// Exponential backoff with jitter on the upper half of each step.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Backend retries: 100 ms doubling to 10 s.
    pub const BACKEND: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));
    /// Store calls of the fleet features (slots, registrations): 200 ms doubling to 5 s.
    pub const FLEET: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

    pub fn new((start, max): (Duration, Duration)) -> Backoff {
        Backoff {
            start,
            max,
            next: start,
        }
    }

    /// Back to the first step: call it once the thing retried has worked again, so a second
    /// outage is retried as promptly as the first.
    pub fn reset(&mut self) {
        self.next = self.start;
    }

    /// The delay before the next attempt: between half of the current step and the step.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = base / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// The current step without jitter or advancing, for messages.
    pub fn peek(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_a_cap_with_jitter_and_resets() {
        let (start, max) = Backoff::BACKEND;
        let mut backoff = Backoff::new(Backoff::BACKEND);
        let first = backoff.next_delay();
        assert!(first >= start / 2 && first <= start, "{first:?}");
        let mut last = first;
        for _ in 0..20 {
            last = backoff.next_delay();
        }
        assert!(last >= max / 2 && last <= max, "{last:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= start);
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut delays: Vec<Duration> = (0..32)
            .map(|_| Backoff::new(Backoff::FLEET).next_delay())
            .collect();
        delays.sort();
        delays.dedup();
        assert!(delays.len() > 16, "32 first delays gave only {delays:?}");
    }
}
