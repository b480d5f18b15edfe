//! Quiescence (`wait = "MIN[:MAX]"`): after a change a resource renders once its keys have been
//! quiet for MIN, and never later than MAX after the first change of the burst. Each change
//! re-arms MIN; MAX, counted from the first change, caps the total delay. The runner keeps one
//! per resource and renders it when [`Quiescence::take_if_due`] says so.

use tokio::time::Instant;

use crate::config::WaitSpec;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quiescence {
    /// (first change of the burst, render deadline), while armed.
    armed: Option<(Instant, Instant)>,
}

impl Quiescence {
    /// A change arrived now.
    pub fn change(&mut self, wait: WaitSpec) {
        let now = Instant::now();
        let first = self.armed.map_or(now, |(first, _)| first);
        self.armed = Some((first, (now + wait.min).min(first + wait.max)));
    }

    /// When the pending render is due, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.armed.map(|(_, deadline)| deadline)
    }

    /// Whether the render is due now; disarms when it is.
    pub fn take_if_due(&mut self) -> bool {
        match self.armed {
            Some((_, deadline)) if deadline <= Instant::now() => {
                self.armed = None;
                true
            }
            _ => false,
        }
    }

    /// Forgets a pending render (the resource is rendered now anyway).
    pub fn clear(&mut self) {
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WAIT: WaitSpec = WaitSpec {
        min: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };

    /// Steps paused time in 10 ms ticks for `total`, sending a change whenever `changes` says
    /// so; returns the times (since the start) at which renders were due.
    async fn simulate(total: Duration, changes: impl Fn(Duration) -> bool) -> Vec<Duration> {
        let start = Instant::now();
        let mut quiescence = Quiescence::default();
        let mut renders = Vec::new();
        let tick = Duration::from_millis(10);
        while start.elapsed() <= total {
            if changes(start.elapsed()) {
                quiescence.change(WAIT);
            }
            if quiescence.take_if_due() {
                renders.push(start.elapsed());
            }
            tokio::time::advance(tick).await;
        }
        renders
    }

    #[tokio::test(start_paused = true)]
    async fn one_change_renders_after_min() {
        let renders = simulate(Duration::from_secs(2), |t| t == Duration::ZERO).await;
        assert_eq!(renders, [Duration::from_millis(100)]);
    }

    #[tokio::test(start_paused = true)]
    async fn each_change_rearms_min() {
        // Changes at 0, 50, 100 and 150 ms: quiet from 150 ms, due at 250 ms.
        let renders = simulate(Duration::from_secs(2), |t| {
            t.as_millis() % 50 == 0 && t <= Duration::from_millis(150)
        })
        .await;
        assert_eq!(renders, [Duration::from_millis(250)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_continuous_stream_renders_every_max() {
        // A change every 50 ms for 3.5 s: never quiet for 100 ms, so MAX decides. A render
        // ends a burst; the next burst starts with the next change (50 ms later): renders at
        // 1 s, 2.05 s, 3.1 s, then 100 ms after the last change (3.45 s).
        let renders = simulate(Duration::from_secs(5), |t| {
            t.as_millis() % 50 == 0 && t < Duration::from_millis(3500)
        })
        .await;
        let ms: Vec<u128> = renders.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [1000, 2050, 3100, 3550]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_200_changes_in_one_second_renders_at_most_twice() {
        // 200 updates spread over 1 s (one every 5 ms, seen on 10 ms ticks).
        let renders = simulate(Duration::from_secs(3), |t| t < Duration::from_secs(1)).await;
        assert!(renders.len() <= 2, "{renders:?}");
        assert_eq!(renders.last(), Some(&Duration::from_millis(1000)));
    }

    #[tokio::test(start_paused = true)]
    async fn clear_forgets_the_pending_render() {
        let mut quiescence = Quiescence::default();
        quiescence.change(WAIT);
        assert!(quiescence.deadline().is_some());
        quiescence.clear();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!quiescence.take_if_due());
        assert_eq!(quiescence.deadline(), None);
    }
}
