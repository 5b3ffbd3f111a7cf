//! Who a component says it is: the `cloudforet-plugin` custom section
//! written at build time (`{"name": "...", "version": "x.y.z"}`), plus an
//! optional manifest beside the file (`<file>.json`) that can add an alias,
//! a description, the capabilities it requests and the sha256 digest the
//! file must have.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Name of the custom section a guest embeds its identity in.
pub const SECTION: &str = "cloudforet-plugin";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedInfo {
    pub name: String,
    pub version: String,
}

/// The manifest beside a component file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Name the plugin is served under (defaults to the embedded name).
    #[serde(default)]
    pub alias: Option<String>,
    /// Must equal the embedded version when both are present.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `sha256:<hex>` the file must have.
    #[serde(default)]
    pub digest: Option<String>,
    /// Egress the plugin expects, e.g. `https://*:9440` (informational; the
    /// grant always comes from the run's endpoint).
    #[serde(default)]
    pub egress: Vec<String>,
    /// Host interfaces it uses (`http`, `emit`, `state`, `log`).
    #[serde(default)]
    pub connectors: Vec<String>,
    /// Signatures over name, version and digest (`cf-host plugins sign`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<super::signature::ManifestSignature>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read manifest {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("manifest {} is not valid: {e}", path.display()))
    }
}

/// Reads the embedded identity from a component's bytes (any nested core
/// module's custom section).
pub fn embedded(bytes: &[u8]) -> Result<Option<EmbeddedInfo>, String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a valid wasm file: {e}"))?;
        if let wasmparser::Payload::CustomSection(c) = payload
            && c.name() == SECTION
        {
            let info: EmbeddedInfo = serde_json::from_slice(c.data())
                .map_err(|e| format!("the {SECTION} section is not valid JSON: {e}"))?;
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// The resolved identity: served name and semver version.
pub fn resolve(embedded: Option<&EmbeddedInfo>, manifest: Option<&Manifest>) -> Result<(String, semver::Version), String> {
    let name = manifest
        .and_then(|m| m.alias.clone())
        .or_else(|| embedded.map(|e| e.name.clone()))
        .ok_or("the component names no plugin (no cloudforet-plugin section and no manifest alias)")?;
    let version = match (embedded.map(|e| e.version.as_str()), manifest.and_then(|m| m.version.as_deref())) {
        (Some(e), Some(m)) if e != m => {
            return Err(format!("the manifest says version {m} but the component says {e}"));
        }
        (Some(v), _) | (None, Some(v)) => v.to_string(),
        (None, None) => return Err("the component has no version (no cloudforet-plugin section, no manifest version)".into()),
    };
    let version = semver::Version::parse(&version).map_err(|e| format!("version {version:?} is not semver: {e}"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("plugin name {name:?} must be letters, digits, '-' or '_'"));
    }
    Ok((name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_from_section_and_manifest() {
        let e = EmbeddedInfo { name: "nutanix".into(), version: "1.2.0".into() };
        assert_eq!(resolve(Some(&e), None).unwrap(), ("nutanix".into(), semver::Version::new(1, 2, 0)));
        let m = Manifest { alias: Some("ntnx".into()), ..Manifest::default() };
        assert_eq!(resolve(Some(&e), Some(&m)).unwrap().0, "ntnx");
        let wrong = Manifest { version: Some("1.3.0".into()), ..Manifest::default() };
        assert!(resolve(Some(&e), Some(&wrong)).unwrap_err().contains("manifest says version 1.3.0"));
        assert!(resolve(None, None).unwrap_err().contains("names no plugin"));
        let bad = EmbeddedInfo { name: "x".into(), version: "one".into() };
        assert!(resolve(Some(&bad), None).unwrap_err().contains("not semver"));
        let evil = EmbeddedInfo { name: "../x".into(), version: "1.0.0".into() };
        assert!(resolve(Some(&evil), None).is_err());
    }

    #[test]
    fn finds_the_section_in_a_module() {
        // A core module with one custom section.
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        let name = SECTION.as_bytes();
        let data = br#"{"name":"n","version":"0.1.0"}"#;
        m.push(0);
        m.push((1 + name.len() + data.len()) as u8);
        m.push(name.len() as u8);
        m.extend_from_slice(name);
        m.extend_from_slice(data);
        assert_eq!(embedded(&m).unwrap(), Some(EmbeddedInfo { name: "n".into(), version: "0.1.0".into() }));
        assert_eq!(embedded(b"\0asm\x01\0\0\0").unwrap(), None);
        assert!(embedded(b"junk").is_err());
    }
}
