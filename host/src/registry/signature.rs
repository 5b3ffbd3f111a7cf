//! Plugin signatures: ed25519 over what a version *is*: its name, version
//! and sha256 digest (so a signature cannot be moved to another build or
//! another version of the same build).
//!
//! - The signer runs `cf-host plugins sign FILE --key KEY`, which adds
//!   `{"key_id", "signature"}` to the manifest beside the file (the manifest
//!   travels with the component: plugins directory, upload, OCI annotation).
//! - The host trusts the public keys in `--trusted-keys FILE` (lines
//!   `<key-id> <base64 public key>`, `#` comments). With keys, a signature
//!   that is present must verify with a trusted key; with
//!   `--require-signatures` an unsigned component is refused too.
//!
//! Key files: `cf-host plugins keygen` writes `<id>.key` (the private seed,
//! mode 0600) and prints the public line for the trusted-keys file.
//!
//! Failures are typed: a key or trusted-keys file that cannot be used is a
//! [`SignatureError`]; a version the policy refuses, a [`CheckError`]
//! listing each signature's [`SignatureProblem`].

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// First word of a private key file.
const PRIVATE_KEY_TAG: &str = "cf-host-ed25519-private-key";

/// A key id that is not 1-64 letters, digits, '-', '_', '.', '@'.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key id {0:?}: use 1-64 letters, digits, '-', '_', '.', '@'")]
pub struct BadKeyId(pub String);

/// Why a private key or the trusted keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error(transparent)]
    KeyId(#[from] BadKeyId),
    #[error("no randomness for a key: {0}")]
    NoRandomness(#[source] getrandom::Error),
    #[error("cannot read key {}: {source}", path.display())]
    ReadKey { path: PathBuf, source: std::io::Error },
    #[error("{} is not a cf-host private key file", path.display())]
    NotAKeyFile { path: PathBuf },
    #[error("cannot read trusted keys {}: {source}", path.display())]
    ReadTrustedKeys { path: PathBuf, source: std::io::Error },
    /// A line (counted from 1) of the trusted keys is not usable.
    #[error("trusted keys, line {line}: {problem}")]
    TrustedKeyLine { line: usize, problem: TrustedKeyProblem },
    #[error("signatures are required but no trusted key is configured")]
    NoTrustedKey,
}

/// What is wrong with a line of the trusted keys.
#[derive(Debug, thiserror::Error)]
pub enum TrustedKeyProblem {
    #[error("expected `<key-id> <base64 public key>`")]
    Shape,
    #[error(transparent)]
    KeyId(#[from] BadKeyId),
    #[error("the key is not 32 bytes of base64")]
    NotBase64,
    #[error("not an ed25519 public key: {0}")]
    NotEd25519(#[source] ed25519_dalek::SignatureError),
    #[error("key id {0} appears twice")]
    Twice(String),
}

/// Why [`TrustPolicy::check`] refused a version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("{name}@{version} is not signed, and this host requires a signature by a trusted key")]
    Unsigned { name: String, version: semver::Version },
    /// Signed, but by no trusted key that verifies: each signature's problem.
    #[error("{name}@{version}: no valid signature by a trusted key: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoValidSignature { name: String, version: semver::Version, problems: Vec<SignatureProblem> },
}

/// Why one signature does not count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("key {0:?} is not trusted")]
    Untrusted(String),
    #[error("the signature by {key_id:?} does not match {name}@{version} ({digest})")]
    Mismatch { key_id: String, name: String, version: semver::Version, digest: String },
    #[error("the signature by {0:?} is not a base64 ed25519 signature")]
    Malformed(String),
}

/// The text, for callers that only report it.
impl From<SignatureError> for String {
    fn from(e: SignatureError) -> String {
        e.to_string()
    }
}

/// One signature in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    pub key_id: String,
    /// Base64 of the 64-byte ed25519 signature of [`message`].
    pub signature: String,
}

/// The signed bytes.
pub fn message(name: &str, version: &semver::Version, digest: &str) -> Vec<u8> {
    format!("cloudforet-plugin-signature-v1\n{name}\n{version}\n{digest}\n").into_bytes()
}

/// A private key with its id.
pub struct PrivateKey {
    pub key_id: String,
    key: SigningKey,
}

/// Shows the key id only: the key itself never reaches a log.
impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// A new random key.
    pub fn generate(key_id: &str) -> Result<PrivateKey, SignatureError> {
        check_key_id(key_id)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(SignatureError::NoRandomness)?;
        Ok(PrivateKey { key_id: key_id.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// The key file's text: `cf-host-ed25519-private-key <id> <base64 seed>`.
    pub fn to_file_text(&self) -> String {
        format!("{PRIVATE_KEY_TAG} {} {}\n", self.key_id, B64.encode(self.key.to_bytes()))
    }

    pub fn load(path: &Path) -> Result<PrivateKey, SignatureError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignatureError::ReadKey { path: path.to_path_buf(), source })?;
        let bad = || SignatureError::NotAKeyFile { path: path.to_path_buf() };
        let mut words = text.split_whitespace();
        if words.next() != Some(PRIVATE_KEY_TAG) {
            return Err(bad());
        }
        let key_id = words.next().ok_or_else(bad)?.to_string();
        let seed: [u8; 32] = words.next().and_then(|s| B64.decode(s).ok()).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
        Ok(PrivateKey { key_id, key: SigningKey::from_bytes(&seed) })
    }

    /// The line for a trusted-keys file.
    pub fn public_line(&self) -> String {
        format!("{} {}\n", self.key_id, B64.encode(self.key.verifying_key().to_bytes()))
    }

    pub fn sign(&self, name: &str, version: &semver::Version, digest: &str) -> ManifestSignature {
        let sig = self.key.sign(&message(name, version, digest));
        ManifestSignature { key_id: self.key_id.clone(), signature: B64.encode(sig.to_bytes()) }
    }
}

fn check_key_id(id: &str) -> Result<(), BadKeyId> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
        return Err(BadKeyId(id.to_string()));
    }
    Ok(())
}

/// The keys the host trusts, and whether a signature is required.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    keys: BTreeMap<String, VerifyingKey>,
    required: bool,
}

impl TrustPolicy {
    /// Parses a trusted-keys file's text.
    pub fn parse(text: &str, required: bool) -> Result<TrustPolicy, SignatureError> {
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |problem: TrustedKeyProblem| SignatureError::TrustedKeyLine { line: n + 1, problem };
            let mut words = line.split_whitespace();
            let (Some(id), Some(key), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad(TrustedKeyProblem::Shape));
            };
            check_key_id(id).map_err(|e| bad(e.into()))?;
            let bytes: [u8; 32] = B64
                .decode(key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad(TrustedKeyProblem::NotBase64))?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|e| bad(TrustedKeyProblem::NotEd25519(e)))?;
            if keys.insert(id.to_string(), key).is_some() {
                return Err(bad(TrustedKeyProblem::Twice(id.to_string())));
            }
        }
        if required && keys.is_empty() {
            return Err(SignatureError::NoTrustedKey);
        }
        Ok(TrustPolicy { keys, required })
    }

    pub fn load(path: &Path, required: bool) -> Result<TrustPolicy, SignatureError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignatureError::ReadTrustedKeys { path: path.to_path_buf(), source })?;
        TrustPolicy::parse(&text, required)
    }

    /// Checks a version's signatures. `Ok(Some(key_id))` names the trusted
    /// key that signed it; `Ok(None)` means unsigned and allowed (or no
    /// policy at all).
    pub fn check(
        &self,
        name: &str,
        version: &semver::Version,
        digest: &str,
        signatures: &[ManifestSignature],
    ) -> Result<Option<String>, CheckError> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        if signatures.is_empty() {
            return if self.required {
                Err(CheckError::Unsigned { name: name.to_string(), version: version.clone() })
            } else {
                Ok(None)
            };
        }
        let msg = message(name, version, digest);
        let mut problems = Vec::new();
        for s in signatures {
            let Some(key) = self.keys.get(&s.key_id) else {
                problems.push(SignatureProblem::Untrusted(s.key_id.clone()));
                continue;
            };
            let sig = B64.decode(&s.signature).ok().and_then(|b| Signature::from_slice(&b).ok());
            match sig {
                Some(sig) if key.verify(&msg, &sig).is_ok() => return Ok(Some(s.key_id.clone())),
                Some(_) => problems.push(SignatureProblem::Mismatch {
                    key_id: s.key_id.clone(),
                    name: name.to_string(),
                    version: version.clone(),
                    digest: digest.to_string(),
                }),
                None => problems.push(SignatureProblem::Malformed(s.key_id.clone())),
            }
        }
        Err(CheckError::NoValidSignature { name: name.to_string(), version: version.clone(), problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn signatures_bind_name_version_and_digest() {
        let key = PrivateKey::generate("release-2026").unwrap();
        let other = PrivateKey::generate("someone-else").unwrap();
        let trust = TrustPolicy::parse(&format!("# ours\n{}", key.public_line()), true).unwrap();
        let sig = key.sign("nutanix", &v("1.2.0"), "sha256:aa");
        assert_eq!(trust.check("nutanix", &v("1.2.0"), "sha256:aa", std::slice::from_ref(&sig)), Ok(Some("release-2026".into())));
        // Moved to another build, version or name: refused.
        for (n, ver, d) in [("nutanix", "1.2.0", "sha256:bb"), ("nutanix", "1.2.1", "sha256:aa"), ("other", "1.2.0", "sha256:aa")] {
            let e = trust.check(n, &v(ver), d, std::slice::from_ref(&sig)).unwrap_err();
            assert!(matches!(&e, CheckError::NoValidSignature { problems, .. } if matches!(problems[..], [SignatureProblem::Mismatch { .. }])));
            assert!(e.to_string().contains("does not match"), "{e}");
        }
        // Unsigned, untrusted key, garbage.
        let e = trust.check("nutanix", &v("1.2.0"), "sha256:aa", &[]).unwrap_err();
        assert!(matches!(e, CheckError::Unsigned { .. }));
        assert!(e.to_string().contains("is not signed"));
        let e = trust.check("nutanix", &v("1.2.0"), "sha256:aa", &[other.sign("nutanix", &v("1.2.0"), "sha256:aa")]).unwrap_err();
        assert!(matches!(&e, CheckError::NoValidSignature { problems, .. } if problems == &[SignatureProblem::Untrusted("someone-else".into())]));
        assert!(e.to_string().contains("\"someone-else\" is not trusted"), "{e}");
        let junk = ManifestSignature { key_id: "release-2026".into(), signature: "bm90IGEgc2ln".into() };
        let e = trust.check("nutanix", &v("1.2.0"), "sha256:aa", &[junk]).unwrap_err();
        assert!(matches!(&e, CheckError::NoValidSignature { problems, .. } if problems == &[SignatureProblem::Malformed("release-2026".into())]));
        assert!(e.to_string().contains("not a base64 ed25519"));
        // One good signature among bad ones is enough.
        let both = [other.sign("nutanix", &v("1.2.0"), "sha256:aa"), sig];
        assert!(trust.check("nutanix", &v("1.2.0"), "sha256:aa", &both).is_ok());
    }

    #[test]
    fn optional_and_absent_policies() {
        let key = PrivateKey::generate("k").unwrap();
        let optional = TrustPolicy::parse(&key.public_line(), false).unwrap();
        assert_eq!(optional.check("n", &v("1.0.0"), "sha256:aa", &[]), Ok(None), "unsigned allowed");
        let forged = PrivateKey::generate("k").unwrap().sign("n", &v("1.0.0"), "sha256:aa");
        assert!(optional.check("n", &v("1.0.0"), "sha256:aa", std::slice::from_ref(&forged)).is_err(), "a bad signature never passes");
        assert_eq!(TrustPolicy::default().check("n", &v("1.0.0"), "sha256:aa", &[forged]), Ok(None));
    }

    #[test]
    fn key_files_round_trip_and_bad_files_are_explained() {
        let key = PrivateKey::generate("ci@example").unwrap();
        let dir = std::env::temp_dir().join(format!("cf-sig-{}", crate::runtime::new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("k.key"), key.to_file_text()).unwrap();
        let loaded = PrivateKey::load(&dir.join("k.key")).unwrap();
        assert_eq!(loaded.public_line(), key.public_line());
        std::fs::write(dir.join("bad.key"), "hello").unwrap();
        let e = PrivateKey::load(&dir.join("bad.key")).unwrap_err();
        assert!(matches!(e, SignatureError::NotAKeyFile { .. }));
        assert!(e.to_string().contains("not a cf-host private key file"));
        assert!(matches!(PrivateKey::generate("no spaces"), Err(SignatureError::KeyId(_))));
        let e = TrustPolicy::parse("k notbase64!", false).unwrap_err();
        assert!(matches!(e, SignatureError::TrustedKeyLine { line: 1, problem: TrustedKeyProblem::NotBase64 }));
        assert!(e.to_string().contains("line 1"));
        let e = TrustPolicy::parse("", true).unwrap_err();
        assert!(matches!(e, SignatureError::NoTrustedKey));
        assert!(e.to_string().contains("no trusted key"));
        let line = key.public_line();
        let e = TrustPolicy::parse(&format!("{line}{line}"), false).unwrap_err();
        assert!(matches!(&e, SignatureError::TrustedKeyLine { line: 2, problem: TrustedKeyProblem::Twice(id) } if id == "ci@example"));
        assert!(e.to_string().contains("appears twice"));
    }
}
