//! TLS mode: like a fresh Prism Central, the simulator presents a
//! certificate no public root trusts. It is issued at start by a throwaway
//! CA whose PEM tests can hand to the client as a CA bundle.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A server certificate for `localhost` and `127.0.0.1`, and its CA.
pub struct SelfSigned {
    /// PEM of the issuing CA (what a `ca_bundle` would hold).
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

impl SelfSigned {
    pub fn generate() -> Result<SelfSigned, String> {
        let err = |e: rcgen::Error| format!("certificate generation failed: {e}");
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "prism-sim throwaway CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err)?;

        let leaf_key = KeyPair::generate().map_err(err)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(err)?;
        leaf.distinguished_name.push(DnType::CommonName, "prism-central.sim");
        let leaf_cert = leaf.signed_by(&leaf_key, &ca).map_err(err)?;

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone(), ca.der().clone()], key)
            .map_err(|e| e.to_string())?;
        Ok(SelfSigned { ca_pem: ca.pem(), config: Arc::new(config) })
    }
}

/// A TCP listener that completes TLS handshakes before handing connections
/// to axum. Failed or stalled handshakes are dropped.
pub struct TlsListener {
    pub tcp: TcpListener,
    pub acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
