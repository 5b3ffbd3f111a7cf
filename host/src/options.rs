//! A call's options, split at the edge: what the host reads itself
//! ([`HostOptions`]: TLS, the plugin version a call asks for) and what only
//! the guest reads (everything else, passed on as a JSON object).
//!
//! CloudForet sends both in one `options` object; the host takes its keys
//! out, validates them (a bad value is the caller's mistake, answered as an
//! invalid argument before any guest runs) and never passes them on.

use crate::host::http::TlsConfig;
use semver::{Version, VersionReq};
use serde_json::{Map, Value};

/// Option keys the host reads.
pub mod key {
    /// `false` accepts any TLS certificate (explicit opt-out).
    pub const VERIFY_SSL: &str = "verify_ssl";
    /// Extra trusted roots (PEM text).
    pub const CA_BUNDLE: &str = "ca_bundle";
    /// The plugin version a call asks for (CloudForet's `plugin_info.version`).
    pub const PLUGIN_VERSION: &str = "plugin_version";
    /// `MANUAL` (exactly that version) or `AUTO` (the latest compatible).
    pub const UPGRADE_MODE: &str = "upgrade_mode";
    pub const ALL: &[&str] = &[VERIFY_SSL, CA_BUNDLE, PLUGIN_VERSION, UPGRADE_MODE];
}

/// A host option with a bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("option {key} {problem}")]
pub struct OptionError {
    pub key: &'static str,
    pub problem: String,
}

fn bad(key: &'static str, problem: impl Into<String>) -> OptionError {
    OptionError { key, problem: problem.into() }
}

/// Which version a call asks for (CloudForet's `plugin_info.version` and
/// `upgrade_mode`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Want {
    /// The tenant's pin, else the live version.
    #[default]
    Live,
    /// MANUAL: exactly this version.
    Exact(Version),
    /// AUTO: the highest loaded version compatible with this one.
    Compatible(VersionReq),
}

/// The options the host reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostOptions {
    pub tls: TlsConfig,
    pub want: Want,
}

impl HostOptions {
    /// Takes the host's keys out of `options` (a JSON object, or null for
    /// none) and validates them; answers them and the guest's options.
    pub fn split(options: Value) -> Result<(HostOptions, Value), OptionError> {
        let mut map = match options {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return Err(bad("options", "must be a JSON object")),
        };
        let host = HostOptions::read(&map)?;
        for k in key::ALL {
            map.remove(*k);
        }
        Ok((host, Value::Object(map)))
    }

    /// Reads and validates the host's keys of `options`.
    pub fn read(options: &Map<String, Value>) -> Result<HostOptions, OptionError> {
        Ok(HostOptions { tls: tls(options)?, want: want(options)? })
    }
}

fn tls(options: &Map<String, Value>) -> Result<TlsConfig, OptionError> {
    let skip_verify = match options.get(key::VERIFY_SSL) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => false,
        Some(_) => return Err(bad(key::VERIFY_SSL, "must be true or false")),
    };
    let ca_pem = match options.get(key::CA_BUNDLE) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            let certs = reqwest::Certificate::from_pem_bundle(s.as_bytes()).map_err(|e| bad(key::CA_BUNDLE, format!("is not a PEM CA bundle: {e}")))?;
            if certs.is_empty() {
                return Err(bad(key::CA_BUNDLE, "holds no certificate: not a PEM CA bundle"));
            }
            Some(s.as_bytes().to_vec())
        }
        Some(_) => return Err(bad(key::CA_BUNDLE, "must be a PEM string")),
    };
    Ok(TlsConfig { skip_verify, ca_pem })
}

fn want(options: &Map<String, Value>) -> Result<Want, OptionError> {
    let v = match options.get(key::PLUGIN_VERSION) {
        None | Some(Value::Null) => return Ok(Want::Live),
        Some(Value::String(s)) if s.is_empty() => return Ok(Want::Live),
        Some(Value::String(s)) => s,
        Some(other) => return Err(bad(key::PLUGIN_VERSION, format!("must be a semver string such as \"1.2.0\", got {other}"))),
    };
    let version = Version::parse(v).map_err(|e| bad(key::PLUGIN_VERSION, format!("{v:?} is not semver: {e}")))?;
    match options.get(key::UPGRADE_MODE) {
        None | Some(Value::Null) => Ok(Want::Exact(version)),
        Some(Value::String(m)) if m == "MANUAL" => Ok(Want::Exact(version)),
        Some(Value::String(m)) if m == "AUTO" => {
            let req = VersionReq::parse(&format!("^{version}")).map_err(|e| bad(key::PLUGIN_VERSION, e.to_string()))?;
            Ok(Want::Compatible(req))
        }
        Some(other) => Err(bad(key::UPGRADE_MODE, format!("must be MANUAL or AUTO, got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<HostOptions, OptionError> {
        HostOptions::read(v.as_object().unwrap())
    }

    #[test]
    fn want_from_options() {
        assert_eq!(read(json!({})).unwrap().want, Want::Live);
        assert_eq!(read(json!({"plugin_version": "1.2.0"})).unwrap().want, Want::Exact(Version::new(1, 2, 0)));
        let Want::Compatible(req) = read(json!({"plugin_version": "1.2.0", "upgrade_mode": "AUTO"})).unwrap().want else { panic!() };
        assert!(req.matches(&Version::new(1, 9, 0)) && !req.matches(&Version::new(2, 0, 0)));
        assert!(read(json!({"plugin_version": "x"})).is_err());
        assert!(read(json!({"plugin_version": "1.0.0", "upgrade_mode": "SOMETIMES"})).is_err());
        // Not silently ignored: a number is a mistake.
        let e = read(json!({"plugin_version": 1.2})).unwrap_err();
        assert_eq!(e.key, "plugin_version");
        assert!(e.to_string().contains("semver string"), "{e}");
        assert!(read(json!({"plugin_version": "1.0.0", "upgrade_mode": 1})).is_err());
    }

    #[test]
    fn tls_from_options() {
        assert!(read(json!({"verify_ssl": false})).unwrap().tls.skip_verify);
        assert!(read(json!({"verify_ssl": "FALSE"})).unwrap().tls.skip_verify);
        assert!(!read(json!({"verify_ssl": true})).unwrap().tls.skip_verify);
        assert_eq!(read(json!({"verify_ssl": 0})).unwrap_err().key, "verify_ssl");
        let e = read(json!({"ca_bundle": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"})).unwrap_err();
        assert_eq!(e.key, "ca_bundle");
        assert_eq!(read(json!({"ca_bundle": "no pem at all"})).unwrap_err().key, "ca_bundle");
        assert_eq!(read(json!({"ca_bundle": 5})).unwrap_err().key, "ca_bundle");
        assert_eq!(read(json!({"ca_bundle": "  "})).unwrap().tls.ca_pem, None);
    }

    #[test]
    fn split_leaves_the_guest_its_options() {
        let (host, guest) = HostOptions::split(json!({"verify_ssl": false, "page_size": 5, "plugin_version": "1.0.0"})).unwrap();
        assert!(host.tls.skip_verify);
        assert_eq!(guest, json!({"page_size": 5}));
        assert_eq!(HostOptions::split(Value::Null).unwrap().1, json!({}));
        assert!(HostOptions::split(json!([1])).is_err());
    }
}
