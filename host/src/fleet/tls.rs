//! TLS to the fleet's database, as libpq's `sslmode` and `sslrootcert` say.
//!
//! The `postgres` client knows only `disable`, `prefer` and `require` (and
//! verifies nothing itself), and refuses `sslrootcert`: [`DbUrl::parse`]
//! takes both keys out of the URL (either form: `postgres://…?sslmode=…` or
//! `host=… sslmode=…`) before the client parses the rest, and
//! [`Connector`] carries them out with rustls. Every connection the fleet
//! opens (the pool's, the registry follower's `LISTEN` connection, and so
//! push leases and the outbox, which use the pool) goes through
//! [`Connector::connect`].
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | – |
//! | `prefer` (the default, as in libpq) | when the server offers it, else plaintext | no |
//! | `require` | always (refused when the server does not offer it) | no; with `sslrootcert`, as `verify-ca` (as libpq) |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert` and the host name |
//!
//! `sslrootcert` is a PEM file of CA certificates (read when the pool is
//! made), or `system` (the Mozilla roots built in; only with `verify-full`,
//! which it makes the default, as libpq). `verify-ca` and `verify-full`
//! need it. Unlike libpq, `prefer` does not retry in plaintext after a
//! TLS handshake that failed (only a server that declines TLS gets a
//! plaintext connection). A mode that requires TLS is refused for a
//! Unix-socket host: PostgreSQL never offers TLS there. Channel binding is
//! not offered (SCRAM authenticates without it).

pub use super::error::TlsError;
use super::error::FleetError;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::Socket;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode` values this host honours (`allow` is not one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, FleetError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(FleetError::Url(format!("sslmode={other:?}: use disable, prefer, require, verify-ca or verify-full"))),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a server without TLS is refused.
    pub fn requires_tls(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl TlsError {
    fn from_io(e: std::io::Error) -> TlsError {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(c)) => TlsError::Certificate(c.clone()),
            _ => TlsError::Handshake(e),
        }
    }
}

/// A database URL with its TLS keys taken out and read.
pub struct DbUrl {
    /// Everything else, as the `postgres` client reads it.
    pub config: postgres::Config,
    pub connector: Connector,
}

/// The TLS keys of a URL, before they are read.
struct TlsKeys {
    mode: Option<String>,
    root: Option<String>,
}

impl DbUrl {
    /// Parses `url` (either form) and reads `sslrootcert`. Nothing of the
    /// URL but its key names reaches the errors.
    pub fn parse(url: &str) -> Result<DbUrl, FleetError> {
        let (rest, keys) = split(url)?;
        let mut config = parse_rest(&rest)?;
        let root = keys.root.as_deref().map(|r| if r == "system" { RootCert::System } else { RootCert::File(PathBuf::from(r)) });
        let mode = match (&keys.mode, &root) {
            (Some(m), _) => SslMode::parse(m)?,
            (None, Some(RootCert::System)) => SslMode::VerifyFull,
            (None, _) => SslMode::Prefer,
        };
        if matches!(root, Some(RootCert::System)) && mode != SslMode::VerifyFull {
            return Err(FleetError::Url(format!("sslrootcert=system needs sslmode=verify-full (not {})", mode.name())));
        }
        if mode.requires_tls() && config.get_hosts().iter().any(|h| matches!(h, postgres::config::Host::Unix(_))) {
            return Err(FleetError::Url(format!(
                "sslmode={}: the host is a Unix socket, where PostgreSQL never offers TLS (use sslmode=disable, or a TCP host)",
                mode.name()
            )));
        }
        let verify = match (mode, &root) {
            (SslMode::Disable, _) => None,
            (SslMode::Prefer, _) | (SslMode::Require, None) => Some(Verify::Nothing),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(FleetError::Url(format!("sslmode={} needs sslrootcert=<PEM file of CA certificates> (or sslrootcert=system)", mode.name())));
            }
            // libpq: `require` with a root certificate checks the chain.
            (SslMode::Require | SslMode::VerifyCa, Some(r)) => Some(Verify::Chain(r.roots()?)),
            (SslMode::VerifyFull, Some(r)) => Some(Verify::ChainAndName(r.roots()?)),
        };
        config.ssl_mode(if mode == SslMode::Disable {
            postgres::config::SslMode::Disable
        } else if mode.requires_tls() {
            postgres::config::SslMode::Require
        } else {
            postgres::config::SslMode::Prefer
        });
        let tls = verify.map(client_config).transpose()?;
        Ok(DbUrl { config, connector: Connector { mode, tls } })
    }
}

/// `url` without its TLS keys (parsed by the `postgres` client only), for
/// [`describe`].
pub fn without_tls_keys(url: &str) -> Result<postgres::Config, FleetError> {
    parse_rest(&split(url)?.0)
}

fn parse_rest(rest: &str) -> Result<postgres::Config, FleetError> {
    rest.parse().map_err(|e: postgres::Error| FleetError::Url(format!("not a PostgreSQL URL: {e}")))
}

enum RootCert {
    File(PathBuf),
    System,
}

impl RootCert {
    fn roots(&self) -> Result<RootCertStore, FleetError> {
        let mut store = RootCertStore::empty();
        match self {
            RootCert::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            RootCert::File(path) => {
                let bad = |why: String| FleetError::Url(format!("sslrootcert {}: {why}", path.display()));
                let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| bad(format!("not PEM certificates: {e}")))?;
                    store.add(cert).map_err(|e| bad(format!("not a CA certificate: {e}")))?;
                }
                if store.is_empty() {
                    return Err(bad("holds no certificate".into()));
                }
            }
        }
        Ok(store)
    }
}

enum Verify {
    /// `prefer`, `require`: encrypted, whoever answers.
    Nothing,
    /// `verify-ca`: a chain to these roots, for any name.
    Chain(RootCertStore),
    /// `verify-full`: a chain to these roots, for the host.
    ChainAndName(RootCertStore),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(verify: Verify) -> Result<Arc<ClientConfig>, FleetError> {
    let provider = provider();
    let webpki = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| FleetError::Url(format!("sslrootcert: {e}")))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(AnyCertificate(provider.clone())),
        Verify::Chain(roots) => Arc::new(AnyName(webpki(roots)?)),
        Verify::ChainAndName(roots) => webpki(roots)?,
    };
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| FleetError::Url(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // What PostgreSQL 17 expects of a client that negotiates TLS directly;
    // harmless to older servers.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Arc::new(config))
}

/// Takes `sslmode` and `sslrootcert` out of `url`.
fn split(url: &str) -> Result<(String, TlsKeys), FleetError> {
    let mut keys = TlsKeys { mode: None, root: None };
    let mut take = |key: &str, value: String| -> bool {
        match key {
            "sslmode" => keys.mode = Some(value),
            "sslrootcert" => keys.root = Some(value),
            _ => return false,
        }
        true
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), keys)) };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(&decode(k)?, decode(v)?) {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = String::new();
        for (k, v) in key_values(url)? {
            if !take(&k, v.clone()) {
                kept.push_str(&format!("{k}='{}' ", v.replace('\\', "\\\\").replace('\'', "\\'")));
            }
        }
        kept
    };
    Ok((rest, keys))
}

fn decode(s: &str) -> Result<String, FleetError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| FleetError::Url("a URL parameter is not UTF-8 once decoded".into()))
}

/// The `key = value` pairs of a libpq connection string: values bare (a
/// backslash escapes the next character) or in single quotes (with `\'`
/// and `\\`).
fn key_values(s: &str) -> Result<Vec<(String, String)>, FleetError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        skip_space(&mut chars);
        if chars.next() != Some('=') {
            return Err(FleetError::Url(format!("not a PostgreSQL URL: {key:?} has no '=' and value")));
        }
        skip_space(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(FleetError::Url(format!("not a PostgreSQL URL: the value of {key:?} has no closing quote"))),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// Opens connections as the URL's `sslmode` says (see the module's table).
#[derive(Clone)]
pub struct Connector {
    mode: SslMode,
    /// `None` with `disable`.
    tls: Option<Arc<ClientConfig>>,
}

/// How far one connection attempt went (see [`Connector::connect`]).
const SOCKET_OPEN: u8 = 1;
const HANDSHAKE: u8 = 2;

impl Connector {
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The one way the fleet connects. `database` names it in errors
    /// (never with its password).
    pub fn connect(&self, config: &postgres::Config, database: &str) -> Result<postgres::Client, FleetError> {
        let Some(tls) = &self.tls else {
            return Ok(config.connect(postgres::NoTls)?);
        };
        let reached = Arc::new(AtomicU8::new(0));
        let e = match config.connect(MakeRustls { config: tls.clone(), reached: reached.clone() }) {
            Ok(client) => return Ok(client),
            Err(e) => e,
        };
        let source = std::error::Error::source(&e);
        if source.is_some_and(|s| s.is::<TlsError>()) {
            if let Some(Ok(tls)) = e.into_source().map(|s| s.downcast::<TlsError>()) {
                return Err(FleetError::Tls { database: database.to_string(), source: *tls });
            }
            unreachable!("checked just above");
        }
        // The socket opened and the server answered the TLS request, yet
        // no handshake began: the server said it has no TLS (an I/O error
        // would be the source instead).
        if self.mode.requires_tls() && reached.load(Ordering::Acquire) == SOCKET_OPEN && !source.is_some_and(|s| s.is::<std::io::Error>()) {
            return Err(FleetError::TlsRefused { database: database.to_string(), mode: self.mode.name() });
        }
        Err(FleetError::Db(e))
    }
}

struct MakeRustls {
    config: Arc<ClientConfig>,
    reached: Arc<AtomicU8>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    /// Called once the socket is open, before the TLS request.
    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, TlsError> {
        self.reached.store(SOCKET_OPEN, Ordering::Release);
        let name = ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()));
        Ok(RustlsConnect { config: self.config.clone(), name, reached: self.reached.clone() })
    }
}

struct RustlsConnect {
    config: Arc<ClientConfig>,
    /// Checked once the server agreed to TLS (a bad name must not fail a
    /// `prefer` connection to a server without TLS).
    name: Result<ServerName<'static>, TlsError>,
    reached: Arc<AtomicU8>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, TlsError>> + Send>>;

    /// Called once the server agreed to TLS.
    fn connect(self, socket: Socket) -> Self::Future {
        self.reached.store(HANDSHAKE, Ordering::Release);
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config).connect(self.name?, socket).await.map_err(TlsError::from_io)?;
            Ok(RustlsStream(stream))
        })
    }
}

pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for RustlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// `prefer` and `require` (libpq's meaning): any certificate; the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: WebPKI's check, except the name. WebPKI checks the chain
/// (issuer, validity, usage) before the name, so a name error means the
/// chain passed.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], name: &ServerName<'_>, ocsp: &[u8], now: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The database `url` names, for errors: hosts, port, database and user,
/// never the password (nor anything else the URL holds).
pub fn describe(url: &str) -> String {
    let Ok(c) = without_tls_keys(url) else {
        return "(not a PostgreSQL URL)".into();
    };
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{} port {} database {} user {}",
        if hosts.is_empty() { "localhost".into() } else { hosts.join(",") },
        if ports.is_empty() { "5432".into() } else { ports.join(",") },
        c.get_dbname().unwrap_or("(default)"),
        c.get_user().unwrap_or("(default)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(url: &str) -> (String, Option<String>, Option<String>) {
        let (rest, k) = split(url).expect("splits");
        (rest, k.mode, k.root)
    }

    #[test]
    fn takes_the_tls_keys_out_of_a_url() {
        let (rest, mode, root) = keys("postgres://cf:pw@db:5432/cf?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%201.pem");
        assert_eq!(rest, "postgres://cf:pw@db:5432/cf?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca 1.pem"));
        assert_eq!(keys("postgresql://db/cf?sslmode=disable").0, "postgresql://db/cf");
        assert_eq!(keys("postgres://db/cf").1, None);
    }

    #[test]
    fn takes_the_tls_keys_out_of_a_connection_string() {
        let (rest, mode, root) = keys(r"host=db  user = 'c f' sslmode=require sslrootcert='/a b\'c.pem' password=p\ w");
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(root.as_deref(), Some("/a b'c.pem"));
        let config: postgres::Config = rest.parse().expect("the rest parses");
        assert_eq!(config.get_user(), Some("c f"));
        assert_eq!(config.get_password(), Some(&b"p w"[..]));
        assert!(matches!(split("host=db sslmode"), Err(FleetError::Url(_))));
        assert!(matches!(split("host='db"), Err(FleetError::Url(_))));
    }

    #[test]
    fn modes_and_their_refusals() {
        let mode = |url: &str| DbUrl::parse(url).map(|d| (d.connector.mode(), d.config.get_ssl_mode()));
        use postgres::config::SslMode as Client;
        assert_eq!(mode("postgres://db/cf").unwrap(), (SslMode::Prefer, Client::Prefer), "libpq's default");
        assert_eq!(mode("postgres://db/cf?sslmode=disable").unwrap(), (SslMode::Disable, Client::Disable));
        assert_eq!(mode("postgres://db/cf?sslmode=require").unwrap(), (SslMode::Require, Client::Require));
        assert_eq!(mode("postgres://db/cf?sslmode=verify-full&sslrootcert=system").unwrap(), (SslMode::VerifyFull, Client::Require));
        assert_eq!(mode("postgres://db/cf?sslrootcert=system").unwrap().0, SslMode::VerifyFull, "system makes verify-full the default");
        assert_eq!(mode("host=/run/postgresql dbname=cf").unwrap().0, SslMode::Prefer);
        for refused in [
            "postgres://db/cf?sslmode=allow",
            "postgres://db/cf?sslmode=verify-full",
            "postgres://db/cf?sslmode=verify-ca",
            "postgres://db/cf?sslmode=require&sslrootcert=system",
            "postgres://db/cf?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "host=/run/postgresql dbname=cf sslmode=require",
        ] {
            assert!(matches!(mode(refused), Err(FleetError::Url(_))), "{refused}");
        }
    }

    #[test]
    fn a_root_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("cf-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!("host=db sslmode=verify-ca sslrootcert={}", empty.display());
        assert!(matches!(DbUrl::parse(&url), Err(FleetError::Url(_))));
        std::fs::remove_dir_all(&dir).ok();
    }
}
