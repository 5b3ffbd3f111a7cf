//! Secrets: loading them for the CLI and keeping them out of logs and errors.
//!
//! The secret is handed to the guest (it builds the Basic auth header), but
//! the host never logs it, and a [`Redactor`] scrubs its sensitive values
//! (and the Basic-auth encoding of username:password) from everything the
//! guest sends back: log lines, error messages, error resources.

use base64::Engine as _;
use serde_json::Value;
use std::borrow::Cow;

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
    pub fn load(&self) -> Result<Value, String> {
        let (text, what) = match self {
            SecretSource::File(p) => (
                std::fs::read_to_string(p).map_err(|e| format!("cannot read secret file {}: {e}", p.display()))?,
                format!("secret file {}", p.display()),
            ),
            SecretSource::Env(name) => (
                std::env::var(name).map_err(|_| format!("environment variable {name} (secret) is not set or not UTF-8"))?,
                format!("secret in ${name}"),
            ),
            SecretSource::Stdin => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| format!("cannot read secret from stdin: {e}"))?;
                (s, "secret on stdin".to_string())
            }
        };
        parse_secret(&text).map_err(|e| format!("{what} {e}"))
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
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

pub const REDACTED: &str = "[REDACTED]";

impl Redactor {
    pub fn none() -> Redactor {
        Redactor::default()
    }

    pub fn from_secret(secret: &Value) -> Redactor {
        let mut needles = Vec::new();
        fn walk(v: &Value, sensitive: bool, out: &mut Vec<String>) {
            match v {
                Value::String(s) if sensitive && s.len() >= 3 => out.push(s.clone()),
                Value::Object(m) => {
                    for (k, v) in m {
                        walk(v, sensitive || is_sensitive_key(k), out);
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, sensitive, out)),
                _ => {}
            }
        }
        walk(secret, false, &mut needles);
        if let (Some(u), Some(p)) = (
            secret.get("username").and_then(Value::as_str),
            secret.get("password").and_then(Value::as_str),
        ) {
            needles.push(base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
        }
        // Longest first, so a needle containing another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = Cow::Owned(out.replace(n.as_str(), REDACTED));
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
        let e = SecretSource::parse("/nonexistent/secret.json").load().unwrap_err();
        assert!(e.starts_with("cannot read secret file /nonexistent/secret.json"), "{e}");
        let e = SecretSource::Env("CF_HOST_TEST_UNSET_VAR".into()).load().unwrap_err();
        assert!(e.contains("CF_HOST_TEST_UNSET_VAR"));
    }
}
