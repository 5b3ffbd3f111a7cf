//! Errors at the sandbox boundary.
//!
//! Two levels: a guest's *expected* failure comes back as a typed WIT
//! `collector-error` ([`RunError::Collector`]); a *trap* (host bug, guest
//! crash) or a limit the guest ran into is a [`RunError::Trap`] or
//! [`RunError::Limit`]. Every error has exactly one [`ErrorCode`], which maps
//! to one gRPC status code and one CloudForet `ERROR_*` code.
//!
//! The codes are chosen for CloudForet's client (spaceone-core's
//! `SpaceConnector`), which retries a unary call three times, and drops its
//! channel as broken, when the details' code is `ERROR_GRPC_CONNECTION` (or,
//! 2.x, on any `DEADLINE_EXCEEDED`): an endpoint that is down or slow is
//! `UNAVAILABLE` with `ERROR_UNAVAILABLE` / `ERROR_TIMEOUT` (one guest run
//! per call), `ERROR_GRPC_CONNECTION` is kept for the host itself going
//! away (shutdown), and a message the client should show travels with an
//! `ERROR_*` code that is not `ERROR_PERMISSION_DENIED` (which the client
//! replaces by "Permission denied.").

use crate::bindings::current::exports::cloudforet::collector::collector::CollectorError;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    /// A required option or secret field is missing.
    MissingParameter,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Unavailable,
    /// The collector's endpoint did not answer in time.
    Timeout,
    /// The host's egress policy refused a request of the guest.
    EgressDenied,
    ResourceExhausted,
    Internal,
}

impl ErrorCode {
    /// The gRPC status code's name (`UNAUTHENTICATED`, ...).
    pub fn grpc_name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument | ErrorCode::MissingParameter => "INVALID_ARGUMENT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Unavailable | ErrorCode::Timeout => "UNAVAILABLE",
            ErrorCode::EgressDenied => "FAILED_PRECONDITION",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// CloudForet's error code prefix for status details (`"ERROR_CODE: message"`).
    pub fn cloudforet_code(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "ERROR_INVALID_ARGUMENT",
            ErrorCode::MissingParameter => "ERROR_REQUIRED_PARAMETER",
            ErrorCode::Unauthenticated => "ERROR_AUTHENTICATE_FAILURE",
            ErrorCode::PermissionDenied => "ERROR_PERMISSION_DENIED",
            ErrorCode::NotFound => "ERROR_NOT_FOUND",
            ErrorCode::Unavailable => "ERROR_UNAVAILABLE",
            ErrorCode::Timeout => "ERROR_TIMEOUT",
            ErrorCode::EgressDenied => "ERROR_EGRESS_DENIED",
            ErrorCode::ResourceExhausted => "ERROR_QUOTA_EXCEEDED",
            ErrorCode::Internal => "ERROR_INTERNAL_API",
        }
    }
}

/// Which host limit a run hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    Memory,
    Cpu,
    WallClock,
    Output,
    HttpRequests,
    Handles,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Memory => "memory",
            LimitKind::Cpu => "CPU time",
            LimitKind::WallClock => "wall-clock time",
            LimitKind::Output => "output",
            LimitKind::HttpRequests => "HTTP requests",
            LimitKind::Handles => "resource handles",
        })
    }
}

/// A limit exceeded inside the sandbox; raised as a trap payload and
/// recognised again when the call returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitExceeded {
    pub kind: LimitKind,
    pub detail: String,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} limit exceeded: {}", self.kind, self.detail)
    }
}

impl std::error::Error for LimitExceeded {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// The guest's own typed failure.
    Collector(ErrorCode, String),
    /// A host limit ended the run.
    Limit(LimitExceeded),
    /// The guest crashed (panic, wasm trap).
    Trap(String),
    /// The caller's input (options, secret, endpoint) is not usable; no
    /// guest ran.
    Input(String),
    /// The host's egress policy refused a request the guest needed.
    Egress(String),
    /// The plugin could not be loaded or instantiated.
    Load(String),
    /// A bug or failure in the host.
    Host(String),
    /// Fleet mode: the database the replicas share did not answer; no
    /// guest ran.
    Shared(String),
}

impl RunError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RunError::Collector(code, _) => *code,
            RunError::Input(_) => ErrorCode::InvalidArgument,
            RunError::Egress(_) => ErrorCode::EgressDenied,
            RunError::Limit(_) => ErrorCode::ResourceExhausted,
            RunError::Trap(_) | RunError::Load(_) | RunError::Host(_) => ErrorCode::Internal,
            RunError::Shared(_) => ErrorCode::Unavailable,
        }
    }

    pub fn message(&self) -> String {
        match self {
            RunError::Collector(_, m) => m.clone(),
            RunError::Limit(l) => l.to_string(),
            RunError::Trap(m) => format!("guest trapped: {m}"),
            RunError::Input(m) | RunError::Load(m) | RunError::Egress(m) => m.clone(),
            RunError::Host(m) => format!("host error: {m}"),
            RunError::Shared(m) => m.clone(),
        }
    }

    pub(crate) fn from_collector(e: CollectorError) -> RunError {
        let (code, m) = match e {
            CollectorError::InvalidArgument(m) => (ErrorCode::InvalidArgument, m),
            CollectorError::MissingParameter(m) => (ErrorCode::MissingParameter, m),
            CollectorError::Unauthenticated(m) => (ErrorCode::Unauthenticated, m),
            CollectorError::PermissionDenied(m) => (ErrorCode::PermissionDenied, m),
            CollectorError::NotFound(m) => (ErrorCode::NotFound, m),
            CollectorError::Unavailable(m) => (ErrorCode::Unavailable, m),
            CollectorError::Timeout(m) => (ErrorCode::Timeout, m),
            CollectorError::ResourceExhausted(m) => (ErrorCode::ResourceExhausted, m),
            CollectorError::Internal(m) => (ErrorCode::Internal, m),
        };
        RunError::Collector(code, m)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match self.code() {
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::MissingParameter => "missing parameter",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission denied",
            ErrorCode::NotFound => "not found",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::EgressDenied => "egress denied",
            ErrorCode::ResourceExhausted => "resource exhausted",
            ErrorCode::Internal => "internal",
        };
        write!(f, "{code}: {}", self.message())
    }
}

impl std::error::Error for RunError {}

/// A wasmtime error and its causes as one line (repeated causes once).
pub fn one_line(e: &wasmtime::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
