//! Per-run limits, enforced by the host and fail-closed. Every limit ends the
//! run with a typed [`crate::error::RunError::Limit`], never the process.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory of the guest, all memories together (bytes).
    pub memory_bytes: usize,
    /// Guest CPU time (wasm execution), measured in epoch ticks.
    pub cpu: Duration,
    /// Whole-run wall clock, host calls included.
    pub wall_clock: Duration,
    /// Records a run may emit.
    pub max_records: u64,
    /// Approximate bytes of records a run may emit.
    pub max_output_bytes: u64,
    pub http: HttpLimits,
    /// Guest log lines per run; further lines are counted, not logged.
    pub max_log_lines: u32,
    pub state: StateLimits,
    /// Component resources (WASI handles) a run may hold at once.
    pub max_handles: usize,
}

#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub max_response_bytes: u64,
    pub max_request_bytes: u64,
    pub max_requests: u32,
    /// Upper bound of a request's timeout, whatever the guest asks.
    pub max_timeout: Duration,
    pub default_timeout: Duration,
    pub max_redirects: u32,
    /// Consecutive failures (connection errors, timeouts, 5xx answers) of
    /// one origin that open its circuit breaker for the tenant; 0 turns the
    /// breaker off.
    pub breaker_failures: u32,
    /// How long an open breaker fails requests to the origin without I/O
    /// before one probe request goes out.
    pub breaker_open: Duration,
    /// Requests of one run in flight at once (`send-many`).
    pub max_in_flight: u32,
    /// Requests of one run in flight to one origin at once.
    pub max_in_flight_per_origin: u32,
    /// Requests in one `send-many` (or `start-many`) batch.
    pub max_batch: u32,
    /// Batches a run may have pending at once (`start-many` not yet
    /// finished or dropped); one more ends the run with a handle limit.
    pub max_pending: u32,
}

#[derive(Clone, Debug)]
pub struct StateLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            cpu: Duration::from_secs(120),
            wall_clock: Duration::from_secs(3600),
            max_records: 2_000_000,
            max_output_bytes: 4 << 30,
            http: HttpLimits::default(),
            max_log_lines: 10_000,
            state: StateLimits::default(),
            max_handles: 10_000,
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_response_bytes: 64 << 20,
            max_request_bytes: 1 << 20,
            max_requests: 100_000,
            max_timeout: Duration::from_secs(300),
            default_timeout: Duration::from_secs(30),
            max_redirects: 5,
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
            max_in_flight: 16,
            max_in_flight_per_origin: 8,
            max_batch: 128,
            max_pending: 4,
        }
    }
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits { max_key_bytes: 256, max_value_bytes: 256 << 10, max_keys: 1_000 }
    }
}
