//! Retry and circuit-breaking policy: pure functions of attempts, time and
//! outcomes (no I/O, unit-tested). Used by the CloudForet connectors (a
//! breaker per CloudForet endpoint) and by the guests' outbound HTTP (a
//! breaker per tenant and origin, `host::http::Origins`).
//!
//! - [`Backoff`]: exponential back-off with full jitter, capped.
//! - [`Breaker`]: a circuit breaker for one endpoint. After
//!   `failure_threshold` consecutive failures it opens and calls fail fast
//!   for `open_for`; then one probe call is let through (half-open): success
//!   closes it, failure opens it again.

use std::time::{Duration, Instant};

/// Exponential back-off: attempt `n` (0-based) waits a uniformly random
/// time in `[0, min(max, base * 2^n)]` ("full jitter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Attempts in all (the first call included).
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { base: Duration::from_millis(200), max: Duration::from_secs(10), attempts: 5 }
    }
}

impl Backoff {
    /// The ceiling of the wait before attempt `n + 1`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before attempt `n + 1`; `unit` is a random number in [0, 1).
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        self.ceiling(n).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A random number in [0, 1) for jitter (OS randomness; 0.5 if unavailable).
pub fn jitter() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Failing fast until the instant.
    Open(Instant),
    /// One probe call went out at the instant. Should it never report (its
    /// caller was cancelled), another probe goes out after `open_for`.
    HalfOpen(Instant),
}

#[derive(Debug)]
pub struct Breaker {
    pub failure_threshold: u32,
    pub open_for: Duration,
    failures: u32,
    state: BreakerState,
}

impl Breaker {
    pub fn new(failure_threshold: u32, open_for: Duration) -> Breaker {
        Breaker { failure_threshold: failure_threshold.max(1), open_for, failures: 0, state: BreakerState::Closed }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether a call may go out at `now`; `Err` holds how long to wait.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open(until) if now >= until => {
                self.state = BreakerState::HalfOpen(now);
                Ok(())
            }
            BreakerState::Open(until) => Err(until - now),
            BreakerState::HalfOpen(since) if now >= since + self.open_for => {
                self.state = BreakerState::HalfOpen(now);
                Ok(())
            }
            // The probe decides; others wait a little.
            BreakerState::HalfOpen(_) => Err(self.open_for.min(Duration::from_millis(100))),
        }
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.state = BreakerState::Closed;
    }

    /// Records a failure of the kind the breaker counts (the endpoint is
    /// unavailable), at `now`.
    pub fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if matches!(self.state, BreakerState::HalfOpen(_)) || self.failures >= self.failure_threshold {
            self.state = BreakerState::Open(now + self.open_for);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1), attempts: 9 };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(4), Duration::from_secs(1));
        assert_eq!(b.ceiling(200), Duration::from_secs(1));
        assert_eq!(b.delay(2, 0.5), Duration::from_millis(200));
        assert_eq!(b.delay(2, 7.0), Duration::from_millis(400));
        assert_eq!(b.delay(2, 0.0), Duration::ZERO);
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(5));
        for _ in 0..2 {
            assert!(b.admit(t0).is_ok());
            b.failure(t0);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Open(t0 + Duration::from_secs(5)));
        assert_eq!(b.admit(t0 + Duration::from_secs(1)), Err(Duration::from_secs(4)));
        // After the open period one probe goes out; the others wait.
        assert!(b.admit(t0 + Duration::from_secs(5)).is_ok());
        assert_eq!(b.state(), BreakerState::HalfOpen(t0 + Duration::from_secs(5)));
        assert!(b.admit(t0 + Duration::from_secs(5)).is_err());
        // A failed probe opens it again at once.
        b.failure(t0 + Duration::from_secs(6));
        assert_eq!(b.state(), BreakerState::Open(t0 + Duration::from_secs(11)));
        assert!(b.admit(t0 + Duration::from_secs(11)).is_ok());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit(t0 + Duration::from_secs(11)).is_ok());
    }

    /// A probe whose caller vanished does not keep the breaker half-open
    /// for ever: after another open period a new probe goes out.
    #[test]
    fn a_lost_probe_is_replaced() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(2));
        b.failure(t0);
        assert!(b.admit(t0 + Duration::from_secs(2)).is_ok());
        assert!(b.admit(t0 + Duration::from_secs(3)).is_err());
        assert!(b.admit(t0 + Duration::from_secs(4)).is_ok());
        assert_eq!(b.state(), BreakerState::HalfOpen(t0 + Duration::from_secs(4)));
    }

    #[test]
    fn success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(1));
        b.failure(t0);
        b.success();
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
