//! What the host learns about an origin across runs, per (tenant, origin):
//! a circuit breaker and a pace.
//!
//! - The breaker counts consecutive connection errors, timeouts and 5xx
//!   answers; while open, requests to the origin fail at once with a
//!   `connection` error, no I/O.
//! - The [`Pace`] slows the whole origin when it says it is overloaded: a
//!   429 (or a 503 with `Retry-After`) holds every request until the time it
//!   names and then admits requests at a rate (halved once per overload,
//!   raised again while answers are good), so a guest's concurrent pages and
//!   its tenant's other runs back off together instead of hammering it.
//!
//! Keyed by tenant so one tenant's guest cannot open another tenant's
//! breaker or slow its Prism. The table is bounded ([`MAX_ORIGINS`]). All
//! decisions are pure functions of the state and an `Instant`; the lock is
//! never held across I/O or a wait.

use super::transport::{InboundResponse, TransportFailure};
use crate::limits::HttpLimits;
use crate::resilience::{Breaker, BreakerState};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
// Tokio's clock, so paced waits follow tokio's (pausable) time.
use tokio::time::Instant;

/// (tenant, origin) entries kept at most.
pub const MAX_ORIGINS: usize = 4096;

/// The longest a `Retry-After` holds an origin, whatever it says.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long a 429 without `Retry-After` holds the origin.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The slowest pace: one request every two seconds.
const MIN_RATE: f64 = 0.5;

/// Past this rate the pace is lifted.
const MAX_RATE: f64 = 1000.0;

/// What an exchange says about its origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Health {
    Up,
    Down,
    /// Says nothing about the endpoint (TLS setup, size limit, policy).
    Unknown,
    /// The origin asked to be left alone for a while (429, or 503 with
    /// `Retry-After`).
    Overloaded(Duration),
}

/// What one exchange says about its origin. A 429 or a 503 with
/// `Retry-After` is an overload; other 5xx but 501 (an answer about the
/// method) are failures.
pub(super) fn health(r: &Result<InboundResponse, TransportFailure>, now: SystemTime) -> Health {
    match r {
        Ok(resp) => {
            let retry_after = resp
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| retry_after(v, now));
            match (resp.status, retry_after) {
                (429, ra) => Health::Overloaded(ra.unwrap_or(DEFAULT_RETRY_AFTER)),
                (503, Some(ra)) => Health::Overloaded(ra),
                (s, _) if (500..600).contains(&s) && s != 501 => Health::Down,
                _ => Health::Up,
            }
        }
        Err(TransportFailure::Timeout | TransportFailure::Connection(_)) => Health::Down,
        Err(TransportFailure::Tls(_) | TransportFailure::TooLarge(_) | TransportFailure::Denied(_)) => Health::Unknown,
    }
}

/// A `Retry-After` value (delay-seconds or an HTTP-date) as a wait from
/// `now`, capped at [`MAX_RETRY_AFTER`]; `None` when unreadable.
pub(super) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let wait = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The pace of one origin: when the next request may start.
#[derive(Debug)]
pub(super) struct Pace {
    /// Nothing starts before this (a `Retry-After`).
    hold_until: Option<Instant>,
    /// Requests per second while the origin is paced; `None`: no pace.
    rate: Option<f64>,
    /// The start the next request is given when paced.
    next_slot: Option<Instant>,
    /// Starts in the last second, to know the rate that overloaded it.
    recent: VecDeque<Instant>,
    /// Until then further overload answers are the same overload (the
    /// requests that were in flight with the first one): the rate was cut
    /// for it already.
    cut_until: Option<Instant>,
}

/// Starts remembered for the rate estimate.
const RECENT: usize = 1024;

impl Pace {
    fn new() -> Pace {
        Pace { hold_until: None, rate: None, next_slot: None, recent: VecDeque::new(), cut_until: None }
    }

    /// Whether the pace holds nothing back (safe to forget).
    fn idle(&self, now: Instant) -> bool {
        self.rate.is_none() && self.hold_until.is_none_or(|h| h <= now)
    }

    /// Reserves a start for one request: the instant it may go out
    /// (`now` when at once).
    pub(super) fn reserve(&mut self, now: Instant) -> Instant {
        let mut at = self.hold_until.map_or(now, |h| h.max(now));
        if let Some(rate) = self.rate {
            at = self.next_slot.map_or(at, |s| s.max(at));
            self.next_slot = Some(at + Duration::from_secs_f64(1.0 / rate));
        }
        while self.recent.front().is_some_and(|t| at.saturating_duration_since(*t) > Duration::from_secs(1)) {
            self.recent.pop_front();
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(at);
        at
    }

    /// The origin said it is overloaded: hold it for `wait` and halve the
    /// rate (the rate of the last second when it had no pace), once per
    /// overload: the other requests that were in flight with the first
    /// answer (a window of pages) come back overloaded too, within the
    /// hold or [`DEFAULT_RETRY_AFTER`], and only extend the hold. Halving
    /// for each of them took a burst of 6 answers to 1/64 of the rate.
    pub(super) fn overloaded(&mut self, now: Instant, wait: Duration) {
        let until = now + wait;
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        if self.cut_until.is_some_and(|c| now < c) {
            return;
        }
        self.cut_until = Some(now + wait.max(DEFAULT_RETRY_AFTER));
        let observed = self.recent.iter().filter(|t| now.saturating_duration_since(**t) <= Duration::from_secs(1)).count();
        let current = self.rate.unwrap_or(observed.max(1) as f64);
        self.rate = Some((current / 2.0).max(MIN_RATE));
        self.next_slot = None;
    }

    /// A good answer: raise the rate by about one request per second per
    /// second; lift the pace past [`MAX_RATE`].
    pub(super) fn good(&mut self) {
        if let Some(rate) = self.rate {
            let raised = rate + 1.0 / rate;
            if raised >= MAX_RATE {
                self.rate = None;
                self.next_slot = None;
            } else {
                self.rate = Some(raised);
            }
        }
    }

    /// Requests per second while paced (tests, logs).
    pub(super) fn rate(&self) -> Option<f64> {
        self.rate
    }
}

struct Entry {
    breaker: Breaker,
    pace: Pace,
    used: Instant,
}

/// Breakers and paces of guests' outbound HTTP, per (tenant, origin),
/// shared by a runtime's runs. Past [`MAX_ORIGINS`] entries, those that
/// know nothing (closed breaker without failures, no pace) are dropped,
/// then the least recently used.
#[derive(Clone, Default)]
pub struct Origins {
    map: Arc<Mutex<HashMap<(String, String), Entry>>>,
}

impl Origins {
    fn with<T>(&self, tenant: &str, origin: &str, limits: &HttpLimits, f: impl FnOnce(&mut Entry, Instant) -> T) -> T {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let key = (tenant.to_string(), origin.to_string());
        if map.len() >= MAX_ORIGINS && !map.contains_key(&key) {
            map.retain(|_, e| {
                e.breaker.failures() > 0 || !matches!(e.breaker.state(), BreakerState::Closed) || !e.pace.idle(now)
            });
            if map.len() >= MAX_ORIGINS {
                let mut by_age: Vec<_> = map.iter().map(|(k, e)| (e.used, k.clone())).collect();
                by_age.sort();
                for (_, k) in by_age.into_iter().take(MAX_ORIGINS / 4) {
                    map.remove(&k);
                }
            }
        }
        let e = map.entry(key).or_insert_with(|| Entry {
            breaker: Breaker::new(limits.breaker_failures, limits.breaker_open),
            pace: Pace::new(),
            used: now,
        });
        e.used = now;
        f(e, now)
    }

    /// Entries kept (tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits one request to `origin`: `Err` with the message a request
    /// refused by the open breaker gets, else the instant it may start.
    pub(super) fn admit(&self, tenant: &str, origin: &str, limits: &HttpLimits) -> Result<Instant, String> {
        self.with(tenant, origin, limits, |e, now| {
            if limits.breaker_failures > 0 {
                e.breaker.admit(now.into_std()).map_err(|wait| {
                    format!(
                        "circuit open for {origin}: {} consecutive failures; the host sends nothing there for {} ms",
                        e.breaker.failures(),
                        wait.as_millis()
                    )
                })?;
            }
            Ok(e.pace.reserve(now))
        })
    }

    /// What an exchange with `origin` said.
    pub(super) fn report(&self, tenant: &str, origin: &str, limits: &HttpLimits, health: Health) {
        self.with(tenant, origin, limits, |e, now| {
            let breaker = limits.breaker_failures > 0;
            match health {
                Health::Up => {
                    e.pace.good();
                    if breaker {
                        e.breaker.success();
                    }
                }
                Health::Down if breaker => {
                    e.breaker.failure(now.into_std());
                    if matches!(e.breaker.state(), BreakerState::Open(_)) {
                        tracing::warn!(tenant, origin, failures = e.breaker.failures(), "HTTP circuit breaker open");
                    }
                }
                Health::Overloaded(wait) => {
                    e.pace.overloaded(now, wait);
                    tracing::warn!(tenant, origin, wait_ms = wait.as_millis() as u64, rate = e.pace.rate(), "origin overloaded; pacing its requests");
                }
                Health::Down | Health::Unknown => {}
            }
        });
    }

    /// The pace of an origin in requests per second, if paced (tests).
    pub fn rate(&self, tenant: &str, origin: &str) -> Option<f64> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(tenant.to_string(), origin.to_string())).and_then(|e| e.pace.rate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> Result<InboundResponse, TransportFailure> {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(InboundResponse { status, headers, body: vec![] })
    }

    /// What a breaker counts (5xx but 501, timeouts, connection errors),
    /// what it ignores (TLS, size, policy), and what is an overload.
    #[test]
    fn health_of_answers() {
        let now = SystemTime::now();
        assert_eq!(health(&resp(503, &[]), now), Health::Down);
        assert_eq!(health(&resp(501, &[]), now), Health::Up);
        assert_eq!(health(&resp(404, &[]), now), Health::Up);
        assert_eq!(health(&resp(429, &[]), now), Health::Overloaded(DEFAULT_RETRY_AFTER));
        assert_eq!(health(&resp(429, &[("Retry-After", "3")]), now), Health::Overloaded(Duration::from_secs(3)));
        assert_eq!(health(&resp(503, &[("retry-after", "2")]), now), Health::Overloaded(Duration::from_secs(2)));
        assert_eq!(health(&Err(TransportFailure::Timeout), now), Health::Down);
        assert_eq!(health(&Err(TransportFailure::Tls("x".into())), now), Health::Unknown);
        assert_eq!(health(&Err(TransportFailure::Denied("x".into())), now), Health::Unknown);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(" 5 ", now), Some(Duration::from_secs(5)));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    /// Unpaced, requests go at once; an overload holds every request until
    /// its time, then spaces them at half the rate that overloaded it, and
    /// good answers raise the rate until the pace is lifted.
    #[test]
    fn a_pace_holds_then_spaces_then_recovers() {
        let t0 = Instant::now();
        let mut p = Pace::new();
        for i in 0..20 {
            let at = t0 + Duration::from_millis(i * 50);
            assert_eq!(p.reserve(at), at, "no pace: at once");
        }
        // 20 starts within the last second; the 21st answer is a 429.
        let t1 = t0 + Duration::from_millis(1000);
        p.overloaded(t1, Duration::from_secs(2));
        assert_eq!(p.rate(), Some(10.0));
        let first = p.reserve(t1);
        assert_eq!(first, t1 + Duration::from_secs(2), "held until Retry-After");
        let second = p.reserve(t1);
        assert_eq!(second - first, Duration::from_millis(100), "then 10 per second");
        // The other answers of that burst: the hold is extended, the rate
        // not cut again.
        for _ in 0..5 {
            p.overloaded(t1 + Duration::from_millis(10), Duration::from_secs(2));
        }
        assert_eq!(p.rate(), Some(10.0), "one overload, one cut");
        // Overloaded again after the hold: halved again.
        p.overloaded(t1 + Duration::from_secs(3), Duration::ZERO);
        assert_eq!(p.rate(), Some(5.0), "halved again");
        let mut n = 0;
        while p.rate().is_some() {
            p.good();
            n += 1;
            assert!(n < 1_000_000, "the pace is lifted eventually");
        }
        assert!(p.idle(t1 + Duration::from_secs(3)));
        let later = t1 + Duration::from_secs(10);
        assert_eq!(p.reserve(later), later);
        let mut slow = Pace::new();
        for i in 0..3 {
            slow.overloaded(t0 + Duration::from_secs(2 * i), Duration::ZERO);
        }
        assert_eq!(slow.rate(), Some(MIN_RATE), "never slower than the floor");
    }

    /// Breakers count failures per tenant and origin and can be off.
    #[test]
    fn breakers_are_per_tenant_and_origin_and_can_be_off() {
        let limits = HttpLimits { breaker_failures: 2, breaker_open: Duration::from_secs(60), ..HttpLimits::default() };
        let b = Origins::default();
        let o = "https://pc:9440";
        b.report("t1", o, &limits, Health::Down);
        b.report("t1", o, &limits, Health::Unknown);
        assert!(b.admit("t1", o, &limits).is_ok(), "one failure, and an unknown that does not count");
        b.report("t1", o, &limits, Health::Down);
        let refused = b.admit("t1", o, &limits).unwrap_err();
        assert!(refused.starts_with("circuit open for https://pc:9440: 2 consecutive failures"), "{refused}");
        assert!(b.admit("t2", o, &limits).is_ok(), "another tenant's breaker");
        assert!(b.admit("t1", "https://other:9440", &limits).is_ok(), "another origin's breaker");
        let off = HttpLimits { breaker_failures: 0, ..limits };
        for _ in 0..5 {
            b.report("t3", o, &off, Health::Down);
        }
        assert!(b.admit("t3", o, &off).is_ok());
    }

    /// An overload paces the tenant's origin, not another tenant's.
    #[test]
    fn an_overload_paces_one_tenants_origin() {
        let limits = HttpLimits::default();
        let o = "https://pc:9440";
        let b = Origins::default();
        b.admit("t1", o, &limits).unwrap();
        b.report("t1", o, &limits, Health::Overloaded(Duration::from_secs(30)));
        let held = b.admit("t1", o, &limits).unwrap();
        assert!(held > Instant::now() + Duration::from_secs(29));
        assert!(b.admit("t2", o, &limits).unwrap() <= Instant::now(), "another tenant goes at once");
        assert!(b.rate("t1", o).is_some() && b.rate("t2", o).is_none());
    }

    /// A caller with a new tenant per call cannot grow the table: entries
    /// that know nothing go first, an open breaker and a pace stay.
    #[test]
    fn the_table_is_bounded() {
        let limits = HttpLimits { breaker_failures: 1, breaker_open: Duration::from_secs(600), ..HttpLimits::default() };
        let b = Origins::default();
        b.report("bad", "https://down:9440", &limits, Health::Down);
        b.report("busy", "https://busy:9440", &limits, Health::Overloaded(Duration::from_secs(1)));
        for i in 0..3 * MAX_ORIGINS {
            let t = format!("tenant-{i}");
            let _ = b.admit(&t, "https://pc:9440", &limits);
            b.report(&t, "https://pc:9440", &limits, Health::Up);
        }
        assert!(b.len() <= MAX_ORIGINS, "{}", b.len());
        assert!(b.admit("bad", "https://down:9440", &limits).is_err(), "the open breaker was kept");
        assert!(b.rate("busy", "https://busy:9440").is_some(), "the pace was kept");
    }
}
