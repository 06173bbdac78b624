//! When to look at a PasswordSafeSecret again: one pure function of what Password Safe told us.
//!
//! The next sync is the earliest of
//! - the refresh interval (an upper bound), a little early by a jitter so many resources spread out;
//! - shortly after a source's `NextChangeDate` (a rotation Password Safe announced);
//! - a short retry while a source is changing (`IsChanging`, `ChangeState` 1 or 2) or overdue;
//! - shortly after a held release expires (the credential may rotate then);
//!
//! After a failure, an exponential backoff per resource instead.

use std::time::Duration;

use jiff::Timestamp;

/// How soon after an announced change we look: the change itself takes a moment to complete.
pub const AFTER_CHANGE: Duration = Duration::from_secs(2);
/// Retry while a change is running or queued.
pub const WHILE_CHANGING: Duration = Duration::from_secs(3);
/// Retry while a NextChangeDate has passed but the change has not shown up yet.
pub const OVERDUE_CHANGE: Duration = Duration::from_secs(30);
/// Never sooner than this.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// Error backoff: first delay and cap.
pub const ERROR_BASE: Duration = Duration::from_secs(5);
pub const ERROR_MAX: Duration = Duration::from_secs(300);
/// Rotation-loop backoff: first delay and cap (see `sync::rotation_loop`).
pub const LOOP_BASE: Duration = Duration::from_secs(60);
pub const LOOP_MAX: Duration = Duration::from_secs(3600);
/// The share of the refresh interval by which a sync may come early (jitter).
pub const JITTER_SHARE: f64 = 0.1;

/// What one source said about its rotation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceTiming {
    pub next_change: Option<Timestamp>,
    /// IsChanging, or ChangeState 1 (changing) / 2 (queued).
    pub in_flux: bool,
    /// Expiry of a release we hold open (ISA releases, held requests, failed check-ins).
    pub held_until: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleInput {
    pub now: Timestamp,
    pub refresh_interval: Duration,
    pub sources: Vec<SourceTiming>,
    /// Consecutive failed syncs of this resource (0 after a success).
    pub consecutive_errors: u32,
    /// Consecutive rotation-loop detections (0 when none).
    pub rotation_loops: u32,
    /// A value in [0, 1) chosen by the caller (random in production, fixed in tests).
    pub jitter: f64,
}

/// Why the next sync is when it is (for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Refresh,
    AnnouncedChange,
    Changing,
    OverdueChange,
    ReleaseExpiry,
    ErrorBackoff,
    RotationLoopBackoff,
}

/// The delay until the next sync, and why.
pub fn next_sync(input: &ScheduleInput) -> (Duration, Reason) {
    let jitter = input.jitter.clamp(0.0, 0.999);
    if input.consecutive_errors > 0 {
        return (
            with_jitter(exponential(ERROR_BASE, ERROR_MAX, input.consecutive_errors), jitter),
            Reason::ErrorBackoff,
        );
    }
    let early = input.refresh_interval.mul_f64(1.0 - JITTER_SHARE * jitter);
    let mut best = (early, Reason::Refresh);
    let mut consider = |delay: Duration, reason: Reason| {
        if delay < best.0 {
            best = (delay, reason);
        }
    };
    for source in &input.sources {
        if source.in_flux {
            consider(WHILE_CHANGING, Reason::Changing);
        }
        if let Some(next) = source.next_change {
            match until(input.now, next) {
                Some(wait) => consider(wait + AFTER_CHANGE, Reason::AnnouncedChange),
                None if !source.in_flux => consider(OVERDUE_CHANGE, Reason::OverdueChange),
                None => {}
            }
        }
        if let Some(expiry) = source.held_until {
            consider(until(input.now, expiry).unwrap_or_default() + AFTER_CHANGE, Reason::ReleaseExpiry);
        }
    }
    if input.rotation_loops > 0 {
        // A loop means each retrieval causes a rotation: never come back sooner than the loop backoff.
        let floor = loop_backoff(input.rotation_loops);
        if best.0 < floor {
            best = (floor, Reason::RotationLoopBackoff);
        }
    }
    (best.0.max(MIN_DELAY), best.1)
}

/// How long a resource in its `n`th consecutive rotation loop (n ≥ 1) waits before fetching again.
pub fn loop_backoff(n: u32) -> Duration {
    exponential(LOOP_BASE, LOOP_MAX, n)
}

/// `base * 2^(n-1)`, capped.
fn exponential(base: Duration, cap: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << (n.saturating_sub(1)).min(20)).min(cap)
}

/// Up to 20% shorter, so resources that failed together do not retry together.
fn with_jitter(delay: Duration, jitter: f64) -> Duration {
    delay.mul_f64(1.0 - 0.2 * jitter).max(MIN_DELAY)
}

/// Time from `now` until `then`, or `None` when `then` is not in the future.
fn until(now: Timestamp, then: Timestamp) -> Option<Duration> {
    let d = then.duration_since(now);
    if d.is_positive() { Duration::try_from(d).ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn input(sources: Vec<SourceTiming>) -> ScheduleInput {
        ScheduleInput {
            now: now(),
            refresh_interval: HOUR,
            sources,
            consecutive_errors: 0,
            rotation_loops: 0,
            jitter: 0.0,
        }
    }

    fn at(secs: i64) -> Option<Timestamp> {
        Some(now() + SignedDuration::from_secs(secs))
    }

    #[test]
    fn without_rotation_news_the_refresh_interval_rules() {
        assert_eq!(next_sync(&input(vec![])), (HOUR, Reason::Refresh));
        assert_eq!(next_sync(&input(vec![SourceTiming::default()])), (HOUR, Reason::Refresh));
    }

    #[test]
    fn jitter_only_ever_makes_the_refresh_earlier_by_at_most_a_tenth() {
        let mut i = input(vec![]);
        i.jitter = 0.999;
        let (d, _) = next_sync(&i);
        assert!(d < HOUR && d >= HOUR.mul_f64(0.9), "{d:?}");
        i.jitter = 7.0; // out of range is clamped
        assert!(next_sync(&i).0 >= HOUR.mul_f64(0.9));
    }

    #[test]
    fn an_announced_change_is_followed_shortly_after_it() {
        let i = input(vec![SourceTiming { next_change: at(600), ..Default::default() }]);
        assert_eq!(next_sync(&i), (Duration::from_secs(600) + AFTER_CHANGE, Reason::AnnouncedChange));
    }

    #[test]
    fn an_announced_change_beyond_the_refresh_interval_does_not_delay_the_refresh() {
        let i = input(vec![SourceTiming { next_change: at(7200), ..Default::default() }]);
        assert_eq!(next_sync(&i), (HOUR, Reason::Refresh));
    }

    #[test]
    fn the_earliest_source_wins() {
        let i = input(vec![
            SourceTiming { next_change: at(900), ..Default::default() },
            SourceTiming { next_change: at(300), ..Default::default() },
            SourceTiming { held_until: at(1200), ..Default::default() },
        ]);
        assert_eq!(next_sync(&i), (Duration::from_secs(300) + AFTER_CHANGE, Reason::AnnouncedChange));
    }

    #[test]
    fn a_changing_source_is_retried_soon() {
        let i = input(vec![SourceTiming { in_flux: true, next_change: at(-5), ..Default::default() }]);
        assert_eq!(next_sync(&i), (WHILE_CHANGING, Reason::Changing));
    }

    #[test]
    fn an_overdue_change_is_polled_but_not_hammered() {
        let i = input(vec![SourceTiming { next_change: at(-60), ..Default::default() }]);
        assert_eq!(next_sync(&i), (OVERDUE_CHANGE, Reason::OverdueChange));
    }

    #[test]
    fn a_held_release_is_followed_right_after_it_expires() {
        let i = input(vec![SourceTiming { held_until: at(600), ..Default::default() }]);
        assert_eq!(next_sync(&i), (Duration::from_secs(600) + AFTER_CHANGE, Reason::ReleaseExpiry));
        let expired = input(vec![SourceTiming { held_until: at(-1), ..Default::default() }]);
        assert_eq!(next_sync(&expired), (AFTER_CHANGE, Reason::ReleaseExpiry));
    }

    #[test]
    fn errors_back_off_exponentially_to_a_cap_with_jitter_below() {
        let mut i = input(vec![SourceTiming { in_flux: true, ..Default::default() }]);
        let delays: Vec<Duration> = (1..=10)
            .map(|n| {
                i.consecutive_errors = n;
                let (d, reason) = next_sync(&i);
                assert_eq!(reason, Reason::ErrorBackoff);
                d
            })
            .collect();
        assert_eq!(delays[0], ERROR_BASE);
        assert_eq!(delays[1], ERROR_BASE * 2);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), ERROR_MAX);
        i.jitter = 0.5;
        assert_eq!(next_sync(&i).0, ERROR_MAX.mul_f64(0.9));
    }

    #[test]
    fn a_rotation_loop_puts_a_floor_under_every_reason() {
        let mut i = input(vec![SourceTiming { in_flux: true, next_change: at(10), held_until: at(5) }]);
        i.rotation_loops = 1;
        assert_eq!(next_sync(&i), (LOOP_BASE, Reason::RotationLoopBackoff));
        i.rotation_loops = 3;
        assert_eq!(next_sync(&i).0, LOOP_BASE * 4);
        i.rotation_loops = 30;
        assert_eq!(next_sync(&i).0, LOOP_MAX.min(HOUR));
    }

    #[test]
    fn never_sooner_than_the_minimum() {
        let mut i = input(vec![]);
        i.refresh_interval = Duration::from_millis(10);
        assert_eq!(next_sync(&i).0, MIN_DELAY);
    }

    #[test]
    fn long_refresh_intervals_and_far_dates_do_not_overflow() {
        let mut i = input(vec![SourceTiming { next_change: at(10 * 365 * 86400), ..Default::default() }]);
        i.refresh_interval = Duration::from_secs(u64::from(u32::MAX));
        i.consecutive_errors = u32::MAX;
        assert_eq!(next_sync(&i).0, ERROR_MAX);
        i.consecutive_errors = 0;
        i.rotation_loops = u32::MAX;
        assert!(next_sync(&i).0 >= LOOP_MAX);
    }
}
