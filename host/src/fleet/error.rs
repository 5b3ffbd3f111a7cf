//! Why the fleet's database could not answer (and why TLS to it failed:
//! [`TlsError`], raised by [`super::tls`]).

use rustls::CertificateError;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// `--database` is not a PostgreSQL URL this host can use.
    #[error("--database: {0}")]
    Url(String),
    /// The database is down, refused us, or failed a statement.
    #[error("fleet database unavailable: {0}")]
    Db(#[from] postgres::Error),
    /// The database could not be reached or set up at start; `database`
    /// names it (hosts, port, database, user: never the password).
    #[error("fleet database unavailable ({database}): {source}")]
    Connect { database: String, source: postgres::Error },
    /// TLS to the database failed (a certificate not issued by
    /// `sslrootcert`'s CA, or not for the host with `verify-full`): the
    /// connection is not made. `database` names it without its password.
    #[error("fleet database unavailable ({database}): TLS: {source}")]
    Tls { database: String, source: TlsError },
    /// `sslmode` requires TLS and the server does not offer it: no
    /// plaintext fallback.
    #[error("fleet database unavailable ({database}): the server does not offer TLS, which sslmode={mode} requires")]
    TlsRefused { database: String, mode: &'static str },
    /// Every connection of the pool is in use for longer than the wait.
    #[error("fleet database unavailable: no free connection within {0} ms")]
    Busy(u64),
    /// A blocking database task did not finish (panicked or cancelled).
    #[error("fleet database call failed: {0}")]
    Task(String),
    /// A row the host wrote is not what it wrote.
    #[error("fleet database holds a bad value: {0}")]
    Corrupt(String),
    /// The OS gave no randomness for a new host key.
    #[error("no randomness for a host key: {0}")]
    NoRandomness(String),
    /// A push lease expired before its holder renewed it, and another
    /// replica took it: the holder's work was stopped.
    #[error("push lease of tenant '{0}' lost to another replica")]
    LeaseLost(String),
    /// A push lease's renewal did not answer within a third of its TTL:
    /// the holder's work was stopped before the lease could expire under it.
    #[error("push lease of tenant '{tenant}' not renewed within {ms} ms")]
    SlowRenewal { tenant: String, ms: u64 },
    /// The schema is newer than this host knows.
    #[error("fleet database schema version {found} is newer than this host's {known}: upgrade cf-host")]
    Schema { found: i32, known: i32 },
}

/// Why a TLS handshake with the database failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The server's certificate was refused: not issued by a CA of
    /// `sslrootcert`, not valid for the host (`verify-full`), expired, …
    #[error("the server's certificate is refused: {}", certificate_reason(.0))]
    Certificate(CertificateError),
    /// The host is not a name or address a certificate can be checked
    /// against.
    #[error("{0:?} is not a host name TLS can check")]
    ServerName(String),
    /// The handshake failed otherwise (no common protocol, connection cut).
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
}

fn certificate_reason(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "not issued by a CA of sslrootcert".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!("expired ({c})"),
        other => other.to_string(),
    }
}
