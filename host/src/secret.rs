//! Secrets: a run's [`Secret`] (CloudForet's `secret_data`), the CLI's
//! [`SecretSource`], and keeping secrets out of logs and errors.
//!
//! # Layout
//!
//! - [`Secret`]: the one place that knows the secret's field names: the
//!   endpoint it names (and so the run's egress grant), the credentials the
//!   host injects, what the guest is shown in their place, and the
//!   [`Redactor`] built from its sensitive values.
//! - [`SecretSource`], [`parse_secret`]: loading one for the CLI.
//! - [`Redactor`]: scrubs every sensitive value, whatever its length, and
//!   its common encodings, from text.

use crate::egress::{EgressPolicy, Grant};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;
use url::Url;

/// Why a secret is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("environment variable {0} (secret) is not set or not UTF-8")]
    Env(String),
    #[error("cannot read secret from stdin: {0}")]
    Stdin(String),
    /// Where it came from, and what is wrong with it (never its content).
    #[error("{what} {why}")]
    Invalid { what: String, why: String },
}

/// Secret field names the host reads.
pub mod field {
    /// The endpoint: a host name, an IP, or `scheme://host[:port]`.
    pub const HOST: &str = "host";
    /// The endpoint's port when `host` names none (number or numeric string).
    pub const PORT: &str = "port";
    pub const USERNAME: &str = "username";
    pub const PASSWORD: &str = "password";
    pub const TOKEN: &str = "token";
    pub const API_KEY: &str = "api_key";
}

/// Fields the host keeps to itself when the guest uses
/// `send-authenticated`: the guest sees [`INJECTED_MARKER`] instead.
pub const INJECTED_FIELDS: &[&str] = &[field::PASSWORD, field::TOKEN, field::API_KEY];

/// What a guest sees in place of an injected credential.
pub const INJECTED_MARKER: &str = "[host-injected]";

/// A run's secret: a JSON object. Its `Debug` shows no value.
#[derive(Clone, Default)]
pub struct Secret {
    fields: Map<String, Value>,
    redactor: Arc<Redactor>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} fields, values hidden)", self.fields.len())
    }
}

impl Secret {
    /// A secret from a JSON value; it must be an object (`null` is empty).
    pub fn new(value: Value) -> Result<Secret, SecretError> {
        match value {
            Value::Object(m) => Ok(Secret::from_map(m)),
            Value::Null => Ok(Secret::default()),
            _ => Err(SecretError::Invalid { what: "the secret".into(), why: "must be a JSON object".into() }),
        }
    }

    pub fn from_map(fields: Map<String, Value>) -> Secret {
        let redactor = Arc::new(Redactor::from_fields(&fields));
        Secret { fields, redactor }
    }

    /// The secret pointed at `endpoint`: `host` becomes its origin, `port`
    /// its port.
    pub fn with_endpoint(mut self, endpoint: &Url) -> Secret {
        self.fields.insert(field::HOST.into(), Value::String(endpoint.origin().ascii_serialization()));
        self.fields.insert(field::PORT.into(), serde_json::json!(endpoint.port_or_known_default()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str).filter(|v| !v.is_empty())
    }

    /// The whole secret as JSON (the guest of the frozen world 0.1.0 gets
    /// it; nothing else should need it).
    pub fn to_json(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// The secret as a guest receives it: with credential injection, the
    /// values the host injects itself are replaced by [`INJECTED_MARKER`]
    /// (the guest learns which credentials exist, never their values).
    pub fn for_guest(&self, injected: bool) -> String {
        if !injected {
            return Value::Object(self.fields.clone()).to_string();
        }
        let mut m = self.fields.clone();
        for f in INJECTED_FIELDS {
            // An empty or null value is shown as it is: the guest tells the
            // caller the credential is missing, as it would without
            // injection (the host has nothing to inject).
            if let Some(v) = m.get_mut(*f).filter(|v| !v.is_null() && v.as_str() != Some("")) {
                *v = Value::String(INJECTED_MARKER.into());
            }
        }
        Value::Object(m).to_string()
    }

    /// The credentials the host injects.
    pub fn credentials(&self) -> Credentials {
        let field = |k: &str| self.text(k).map(str::to_string);
        Credentials {
            username: field(field::USERNAME),
            password: field(field::PASSWORD),
            token: field(field::TOKEN),
            api_key: field(field::API_KEY),
        }
    }

    /// Scrubs this secret's sensitive values from text.
    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    /// The endpoint the secret names CloudForet style: `host` (a name, an
    /// IP, or `scheme://host[:port]`) and an optional `port` (number or
    /// numeric string); https and `default_port` when not given. `None`
    /// without a usable `host` (the collector then reports the missing
    /// field itself).
    pub fn endpoint(&self, default_port: u16) -> Option<Url> {
        let host = self.fields.get(field::HOST).and_then(Value::as_str).map(str::trim).filter(|h| !h.is_empty())?;
        let port = match self.fields.get(field::PORT) {
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
            _ => None,
        };
        let mut url = if let Some((_, rest)) = host.split_once("://") {
            let mut u = Url::parse(host).ok()?;
            // As collectors read it: no port written means the default
            // port, not the scheme's.
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let explicit = authority
                .rsplit_once(':')
                .is_some_and(|(h, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (h.ends_with(']') || !h.contains(':')));
            if !explicit {
                let _ = u.set_port(Some(default_port));
            }
            u
        } else {
            let bracketed = if host.contains(':') && !host.starts_with('[') && host.parse::<std::net::Ipv6Addr>().is_ok() {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let mut u = Url::parse(&format!("https://{bracketed}")).ok()?;
            if u.port().is_none() {
                let _ = u.set_port(Some(default_port));
            }
            u
        };
        if let Some(p) = port.filter(|p| *p != 0) {
            let _ = url.set_port(Some(p));
        }
        Grant::from_url(&url).ok().map(|_| url)
    }

    /// The run's egress grant: exactly the endpoint the secret names, or
    /// nothing.
    pub fn egress(&self, default_port: u16) -> EgressPolicy {
        match self.endpoint(default_port).map(|u| Grant::from_url(&u)) {
            Some(Ok(g)) => EgressPolicy::new(vec![g]),
            _ => EgressPolicy::deny_all(),
        }
    }

    /// Who the secret authenticates as, for telling callers apart: the
    /// username, or a digest of the token or API key (never the value).
    pub fn principal(&self) -> Option<String> {
        if let Some(u) = self.text(field::USERNAME) {
            return Some(format!("user:{u}"));
        }
        let digest = |v: &str| {
            use sha2::{Digest, Sha256};
            format!("{:x}", Sha256::digest(v.as_bytes()))[..16].to_string()
        };
        self.text(field::API_KEY).map(|k| format!("api-key:{}", digest(k))).or_else(|| self.text(field::TOKEN).map(|t| format!("token:{}", digest(t))))
    }
}

/// Credential values from a run's secret, for host-side injection. Never
/// printed.
#[derive(Clone, Default)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    api_key: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }
}

/// Where the CLI reads a secret from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A JSON file.
    File(std::path::PathBuf),
    /// An environment variable holding the JSON.
    Env(String),
    /// Standard input.
    Stdin,
}

impl SecretSource {
    /// `env:NAME`, `-` (stdin), or a file path.
    pub fn parse(spec: &str) -> SecretSource {
        if let Some(name) = spec.strip_prefix("env:") {
            SecretSource::Env(name.to_string())
        } else if spec == "-" {
            SecretSource::Stdin
        } else {
            SecretSource::File(spec.into())
        }
    }

    /// Reads and parses the secret. Errors never include the content.
    pub fn load(&self) -> Result<Value, SecretError> {
        let (text, what) = match self {
            SecretSource::File(p) => (
                std::fs::read_to_string(p).map_err(|e| SecretError::File { path: p.display().to_string(), reason: e.to_string() })?,
                format!("secret file {}", p.display()),
            ),
            SecretSource::Env(name) => (std::env::var(name).map_err(|_| SecretError::Env(name.clone()))?, format!("secret in ${name}")),
            SecretSource::Stdin => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| SecretError::Stdin(e.to_string()))?;
                (s, "secret on stdin".to_string())
            }
        };
        parse_secret(&text).map_err(|why| SecretError::Invalid { what, why })
    }
}

/// Parses secret JSON text into an object, with a content-free error.
pub fn parse_secret(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("must be a JSON object".to_string()),
        // serde_json's message holds only the position, not the input.
        Err(e) => Err(format!("is not valid JSON ({e})")),
    }
}

/// Keys whose values are sensitive.
fn is_sensitive_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["pass", "secret", "token", "key", "credential", "auth", "private"].iter().any(|s| k.contains(s))
}

/// Scrubs sensitive secret values out of text.
///
/// Every value is redacted whatever its length. A short one (under
/// [`SHORT`] characters) is redacted where it stands as a word of its own
/// (not inside a longer run of letters and digits): a password `p` is
/// scrubbed from `password=p`, while `http` stays readable; a longer one
/// is redacted wherever it appears.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

/// Values shorter than this are redacted as whole words.
pub const SHORT: usize = 6;

pub const REDACTED: &str = "[REDACTED]";

impl Redactor {
    pub fn none() -> Redactor {
        Redactor::default()
    }

    pub fn from_secret(secret: &Value) -> Redactor {
        match secret {
            Value::Object(m) => Redactor::from_fields(m),
            _ => Redactor::default(),
        }
    }

    /// Every string under a sensitive key, whatever its length, in the
    /// forms it may take in text: as is, JSON-escaped, percent-encoded,
    /// base64 (standard and URL-safe, padded or not), and the Basic
    /// authorization value of username and password.
    pub fn from_fields(fields: &Map<String, Value>) -> Redactor {
        let mut values = Vec::new();
        fn walk(v: &Value, sensitive: bool, out: &mut Vec<String>) {
            match v {
                Value::String(s) if sensitive && !s.is_empty() => out.push(s.clone()),
                Value::Number(n) if sensitive => out.push(n.to_string()),
                Value::Object(m) => {
                    for (k, v) in m {
                        walk(v, sensitive || is_sensitive_key(k), out);
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, sensitive, out)),
                _ => {}
            }
        }
        for (k, v) in fields {
            walk(v, is_sensitive_key(k), &mut values);
        }
        let mut needles = Vec::new();
        for v in &values {
            needles.extend(encodings(v));
        }
        if let (Some(u), Some(p)) = (fields.get(field::USERNAME).and_then(Value::as_str), fields.get(field::PASSWORD).and_then(Value::as_str)) {
            // The Basic authorization value (the pair itself is no secret
            // beyond the password, redacted already).
            needles.extend(base64_forms(&format!("{u}:{p}")));
        }
        // Longest first, so a needle containing another is replaced whole.
        needles.retain(|n| !n.is_empty());
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Redactor { needles }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for n in &self.needles {
            if !out.contains(n.as_str()) {
                continue;
            }
            if n.chars().count() >= SHORT {
                out = Cow::Owned(out.replace(n.as_str(), REDACTED));
            } else if let Some(r) = replace_words(&out, n) {
                out = Cow::Owned(r);
            }
        }
        out
    }

    pub fn redact_owned(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => s,
        }
    }
}

/// `text` with every occurrence of `needle` that is not inside a longer
/// run of letters and digits replaced; `None` when there is none.
fn replace_words(text: &str, needle: &str) -> Option<String> {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut changed = false;
    for (i, _) in text.match_indices(needle) {
        if i < last {
            continue;
        }
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        // A needle that starts (ends) with a non-word character needs no
        // boundary on that side.
        let starts_word = needle.chars().next().is_some_and(char::is_alphanumeric);
        let ends_word = needle.chars().next_back().is_some_and(char::is_alphanumeric);
        if (starts_word && word(before)) || (ends_word && word(after)) {
            continue;
        }
        out.push_str(&text[last..i]);
        out.push_str(REDACTED);
        last = i + needle.len();
        changed = true;
    }
    changed.then(|| {
        out.push_str(&text[last..]);
        out
    })
}

/// A value and the forms it takes when encoded into text.
fn encodings(v: &str) -> Vec<String> {
    let json = serde_json::to_string(v).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_string();
    let percent: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
    let percent20 = percent.replace('+', "%20");
    let mut out = vec![v.to_string(), json, percent, percent20];
    out.extend(base64_forms(v));
    out
}

/// Base64 of a value: standard and URL-safe, padded or not.
fn base64_forms(v: &str) -> [String; 4] {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD.encode(v), STANDARD_NO_PAD.encode(v), URL_SAFE.encode(v), URL_SAFE_NO_PAD.encode(v)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_sensitive_values_and_basic_auth() {
        let r = Redactor::from_secret(&json!({
            "host": "pc.example", "username": "admin", "password": "hunter2",
            "extra": {"api_key": "k-123456"}
        }));
        let basic = base64::engine::general_purpose::STANDARD.encode("admin:hunter2");
        let text = format!("auth admin:hunter2 header Basic {basic} key k-123456 at pc.example");
        assert_eq!(r.redact(&text), "auth admin:[REDACTED] header Basic [REDACTED] key [REDACTED] at pc.example");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    /// Short secrets are secrets too, and so are their encodings.
    #[test]
    fn redacts_short_values_and_encodings() {
        let r = Redactor::from_secret(&json!({"username": "u", "password": "p!", "api_key": "k"}));
        assert_eq!(r.redact("pw=p! key=k"), "pw=[REDACTED] key=[REDACTED]");
        assert_eq!(r.redact("k http-ok k"), "[REDACTED] http-ok [REDACTED]", "a short value as a word, not inside words");
        let r = Redactor::from_secret(&json!({"password": "hunter2"}));
        assert_eq!(r.redact("xhunter2x"), "x[REDACTED]x", "a longer value anywhere");
        let r = Redactor::from_secret(&json!({"password": "s3cr\"t/+&"}));
        for encoded in [
            "s3cr\\\"t/+&".to_string(),
            "s3cr%22t%2F%2B%26".to_string(),
            base64::engine::general_purpose::STANDARD.encode("s3cr\"t/+&"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s3cr\"t/+&"),
        ] {
            assert_eq!(r.redact(&format!("<{encoded}>")), "<[REDACTED]>", "{encoded}");
        }
        let r = Redactor::from_secret(&json!({"pin": 1234, "token": "t"}));
        assert_eq!(r.redact("pin 1234"), "pin 1234", "numbers under a non-sensitive key stay");
        let r = Redactor::from_secret(&json!({"secret_pin": 1234}));
        assert_eq!(r.redact("pin 1234"), "pin [REDACTED]");
    }

    #[test]
    fn secret_parse_errors_do_not_echo_content() {
        let e = parse_secret(r#"{"password": "hunter2""#).unwrap_err();
        assert!(e.starts_with("is not valid JSON") && !e.contains("hunter2"), "{e}");
        assert_eq!(parse_secret("[1]").unwrap_err(), "must be a JSON object");
    }

    #[test]
    fn sources() {
        assert_eq!(SecretSource::parse("env:NTNX"), SecretSource::Env("NTNX".into()));
        assert_eq!(SecretSource::parse("-"), SecretSource::Stdin);
        assert_eq!(SecretSource::parse("a/b.json"), SecretSource::File("a/b.json".into()));
        let e = SecretSource::parse("/nonexistent/secret.json").load().unwrap_err().to_string();
        assert!(e.starts_with("cannot read secret file /nonexistent/secret.json"), "{e}");
        let e = SecretSource::Env("CF_HOST_TEST_UNSET_VAR".into()).load().unwrap_err().to_string();
        assert!(e.contains("CF_HOST_TEST_UNSET_VAR"));
    }

    #[test]
    fn grant_from_secret_fields() {
        let g = |v: Value| Secret::new(v).unwrap().egress(9440).grants().iter().map(Grant::to_string).collect::<Vec<_>>();
        assert_eq!(g(json!({"host": "pc.example"})), vec!["https://pc.example:9440"]);
        assert_eq!(g(json!({"host": "pc.example", "port": 443})), vec!["https://pc.example:443"]);
        assert_eq!(g(json!({"host": "10.0.0.5", "port": "9441"})), vec!["https://10.0.0.5:9441"]);
        assert_eq!(g(json!({"host": "http://127.0.0.1:8080"})), vec!["http://127.0.0.1:8080"]);
        assert_eq!(g(json!({"host": "https://pc.example"})), vec!["https://pc.example:9440"], "as the collector reads it");
        assert_eq!(g(json!({"host": "https://pc.example:443/"})), vec!["https://pc.example:443"]);
        assert_eq!(g(json!({"host": "https://[fd00::1]:9441"})), vec!["https://[fd00::1]:9441"]);
        assert_eq!(g(json!({"host": "fd00::1"})), vec!["https://[fd00::1]:9440"]);
        assert!(g(json!({})).is_empty());
        assert!(g(json!({"host": ""})).is_empty());
        assert!(g(json!({"host": 5})).is_empty());
        assert!(g(json!({"host": "ftp://x"})).is_empty());
        assert!(g(json!({"host": "a b"})).is_empty());
    }

    #[test]
    fn the_guest_sees_markers_for_injected_fields() {
        let s = Secret::new(json!({"host": "h", "username": "u", "password": "p", "api_key": null, "token": ""})).unwrap();
        let seen: Value = serde_json::from_str(&s.for_guest(true)).unwrap();
        assert_eq!(seen, json!({"host": "h", "username": "u", "password": INJECTED_MARKER, "api_key": null, "token": ""}));
        let raw: Value = serde_json::from_str(&s.for_guest(false)).unwrap();
        assert_eq!(raw["password"], "p");
        assert_eq!(format!("{s:?}"), "Secret(5 fields, values hidden)");
        assert!(Secret::new(json!([1])).is_err());
        assert_eq!(s.credentials().password(), Some("p"));
        assert_eq!(s.principal().as_deref(), Some("user:u"));
        let k = Secret::new(json!({"api_key": "abc"})).unwrap().principal().unwrap();
        assert!(k.starts_with("api-key:") && !k.contains("abc"), "{k}");
    }
}
