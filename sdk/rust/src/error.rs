//! A collector's expected failures ([`Error`]): the WIT `collector-error`
//! cases as plain Rust, each mapped 1:1 to a gRPC code by the host.

/// Expected failures of a collector call; mirrors WIT `collector-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    InvalidArgument(String),
    /// A required option or secret field is missing.
    MissingParameter(String),
    Unauthenticated(String),
    PermissionDenied(String),
    NotFound(String),
    Unavailable(String),
    Timeout(String),
    ResourceExhausted(String),
    Internal(String),
}

impl Error {
    /// The same error, its message prefixed with `what` (`"vms list: …"`).
    pub fn context(self, what: &str) -> Error {
        let with = |m: String| format!("{what}: {m}");
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(with(m)),
            Error::MissingParameter(m) => Error::MissingParameter(with(m)),
            Error::Unauthenticated(m) => Error::Unauthenticated(with(m)),
            Error::PermissionDenied(m) => Error::PermissionDenied(with(m)),
            Error::NotFound(m) => Error::NotFound(with(m)),
            Error::Unavailable(m) => Error::Unavailable(with(m)),
            Error::Timeout(m) => Error::Timeout(with(m)),
            Error::ResourceExhausted(m) => Error::ResourceExhausted(with(m)),
            Error::Internal(m) => Error::Internal(with(m)),
        }
    }

    /// The message without its code.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m)
            | Error::MissingParameter(m)
            | Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::NotFound(m)
            | Error::Unavailable(m)
            | Error::Timeout(m)
            | Error::ResourceExhausted(m)
            | Error::Internal(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = match self {
            Error::InvalidArgument(_) => "invalid argument",
            Error::MissingParameter(_) => "missing parameter",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::PermissionDenied(_) => "permission denied",
            Error::NotFound(_) => "not found",
            Error::Unavailable(_) => "unavailable",
            Error::Timeout(_) => "timeout",
            Error::ResourceExhausted(_) => "resource exhausted",
            Error::Internal(_) => "internal",
        };
        write!(f, "{code}: {}", self.message())
    }
}

impl std::error::Error for Error {}
