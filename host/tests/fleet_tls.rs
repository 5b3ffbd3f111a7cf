//! TLS to the fleet's database (`--database …?sslmode=…&sslrootcert=…`)
//! against real PostgreSQL servers on loopback (tests/src/postgres.rs): one
//! with `ssl=on` and a certificate for `localhost` issued at test time by a
//! throwaway CA, one without TLS. Each mode connects, or refuses, as
//! libpq's `sslmode` says; whether a connection really is encrypted is
//! asked of the server (`pg_stat_ssl`), for pooled connections and for the
//! dedicated one the registry follower listens on.

#[path = "../../tests/src/postgres.rs"]
#[expect(dead_code, reason = "this test starts servers and leaves them be")]
mod postgres;

use cf_host::fleet::tls::TlsError;
use cf_host::fleet::{Fleet, FleetError};
use postgres::Postgres;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::CertificateError;
use std::path::{Path, PathBuf};

/// A throwaway CA and a server certificate it issued for `localhost` only
/// (not for `127.0.0.1`: the name check has something to refuse).
struct Pki {
    ca_pem: String,
    chain_pem: String,
    key_pem: String,
}

fn pki(ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &ca).unwrap();
    Pki { ca_pem: ca.pem(), chain_pem: cert.pem(), key_pem: key.serialize_pem() }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const PASSWORD: &str = "s3cret-pw";

fn url(host: &str, port: u16, query: &str) -> String {
    format!("postgres://cf:{PASSWORD}@{host}:{port}/cf?{query}")
}

/// Whether the server sees this connection encrypted.
fn encrypted(c: &mut ::postgres::Client) -> bool {
    c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0)
}

fn pooled_encrypted(fleet: &Fleet) -> bool {
    let pool = fleet.pool();
    let mut c = pool.get().expect("a pooled connection");
    encrypted(&mut c)
}

/// Connects and reports whether both the pool's and a dedicated
/// connection are encrypted (they must agree).
fn connect(url: &str) -> Result<bool, FleetError> {
    let fleet = Fleet::connect(url)?;
    let pooled = pooled_encrypted(&fleet);
    let dedicated = encrypted(&mut fleet.pool().connect_dedicated()?);
    assert_eq!(pooled, dedicated, "{url}: the pool and the LISTEN connection connect alike");
    Ok(pooled)
}

/// A refusal that names the database (host, port) without its password.
fn refused(url: &str, port: u16) -> FleetError {
    let e = match connect(url) {
        Ok(tls) => panic!("{url}: connected (encrypted: {tls}), expected a refusal"),
        Err(e) => e,
    };
    let text = e.to_string();
    eprintln!("{url}: {text}");
    assert!(!text.contains(PASSWORD) && !format!("{e:?}").contains(PASSWORD), "the password leaked: {text}");
    assert!(text.contains(&format!("port {port}")), "the database is named: {text}");
    e
}

fn is_name_error(c: &CertificateError) -> bool {
    matches!(c, CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })
}

#[test]
fn sslmode_is_honoured_against_real_servers() {
    let good = pki("cf-test CA");
    let other = pki("another CA");
    let dir = std::env::temp_dir().join(format!("cf-fleet-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = write(&dir, "ca.pem", &good.ca_pem);
    let wrong_ca = write(&dir, "other-ca.pem", &other.ca_pem);
    let (ca, wrong_ca) = (ca.display(), wrong_ca.display());

    let tls = Postgres::start_tcp(Some((&good.chain_pem, &good.key_pem)));
    let plain = Postgres::start_tcp(None);
    let (tp, pp) = (tls.port, plain.port);

    // verify-full: the right CA and the certificate's name.
    assert!(connect(&url("localhost", tp, &format!("sslmode=verify-full&sslrootcert={ca}"))).expect("verify-full with the right CA"));
    // The connection-string form says the same.
    assert!(connect(&format!("host=localhost port={tp} user=cf password={PASSWORD} dbname=cf sslmode=verify-full sslrootcert='{ca}'")).expect("key=value form"));

    // A CA that did not issue the server's certificate: fails closed.
    match refused(&url("localhost", tp, &format!("sslmode=verify-full&sslrootcert={wrong_ca}")), tp) {
        FleetError::Tls { database, source: TlsError::Certificate(c) } => {
            assert!(database.contains("localhost"), "{database}");
            assert!(matches!(c, CertificateError::UnknownIssuer), "{c:?}");
        }
        e => panic!("expected a certificate refusal, got {e:?}"),
    }
    // The right CA but another name (the certificate is for localhost).
    match refused(&url("127.0.0.1", tp, &format!("sslmode=verify-full&sslrootcert={ca}")), tp) {
        FleetError::Tls { source: TlsError::Certificate(c), .. } => assert!(is_name_error(&c), "{c:?}"),
        e => panic!("expected a name refusal, got {e:?}"),
    }

    // verify-ca checks the chain, not the name.
    assert!(connect(&url("127.0.0.1", tp, &format!("sslmode=verify-ca&sslrootcert={ca}"))).expect("verify-ca, any name"));
    match refused(&url("127.0.0.1", tp, &format!("sslmode=verify-ca&sslrootcert={wrong_ca}")), tp) {
        FleetError::Tls { source: TlsError::Certificate(CertificateError::UnknownIssuer), .. } => {}
        e => panic!("expected a certificate refusal, got {e:?}"),
    }
    // require with a root certificate checks the chain too (libpq).
    assert!(matches!(
        refused(&url("127.0.0.1", tp, &format!("sslmode=require&sslrootcert={wrong_ca}")), tp),
        FleetError::Tls { source: TlsError::Certificate(CertificateError::UnknownIssuer), .. }
    ));

    // require and prefer: encrypted, unchecked; disable: plaintext.
    assert!(connect(&url("127.0.0.1", tp, "sslmode=require")).unwrap());
    assert!(connect(&url("127.0.0.1", tp, "sslmode=prefer")).unwrap());
    assert!(connect(&format!("postgres://cf@127.0.0.1:{tp}/cf")).unwrap(), "prefer is the default");
    assert!(!connect(&url("127.0.0.1", tp, "sslmode=disable")).unwrap());

    // A server without TLS: modes that require it refuse, never falling
    // back to plaintext; prefer and disable connect without.
    for mode in ["require", "verify-ca", "verify-full"] {
        match refused(&url("localhost", pp, &format!("sslmode={mode}&sslrootcert={ca}")), pp) {
            FleetError::TlsRefused { database, mode: m } => {
                assert_eq!(m, mode);
                assert!(database.contains("localhost"), "{database}");
            }
            e => panic!("sslmode={mode}: expected a refusal for want of TLS, got {e:?}"),
        }
    }
    assert!(matches!(refused(&url("127.0.0.1", pp, "sslmode=require"), pp), FleetError::TlsRefused { mode: "require", .. }));
    assert!(!connect(&url("127.0.0.1", pp, "sslmode=prefer")).unwrap());
    assert!(!connect(&url("127.0.0.1", pp, "sslmode=disable")).unwrap());

    // A server that is not there is not mistaken for one without TLS.
    drop(plain);
    match refused(&url("127.0.0.1", pp, "sslmode=require"), pp) {
        FleetError::Connect { .. } | FleetError::Db(_) => {}
        e => panic!("a server that is down: expected a connection error, got {e:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}
