//! The registry's changes as values ([`Op`]): what an admin call asks for,
//! applied here by [`Registry::apply`]. In fleet mode the same values are
//! the shared log every replica applies in order (`fleet::registry_log`);
//! a load carries the component's digest, its bytes travel beside it.

use super::identity::Manifest;
use super::{LoadReport, Registry, RegistryError};
use semver::Version;
use serde::{Deserialize, Serialize};

/// One change of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Load the component whose bytes have `digest` (`sha256:<hex>`).
    Load { source: String, digest: String, manifest: Option<Manifest>, activate: bool },
    Activate { name: String, version: String },
    Rollback { name: String },
    /// `tenant` `None`: everyone (activate).
    Pin { name: String, version: String, tenant: Option<String> },
    Unpin { name: String, tenant: String },
    /// `percent` 0 ends the canary.
    Canary { name: String, version: String, percent: u8 },
    Unload { name: String, version: String },
}

/// What applying an [`Op`] answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Loaded(LoadReport),
    /// The live version after an activation or a rollback.
    Live(Version),
    Done,
}

fn version(v: &str) -> Result<Version, RegistryError> {
    Version::parse(v).map_err(|e| RegistryError::Rejected(format!("version {v:?} is not semver: {e}")))
}

impl Registry {
    /// Applies `op`; a load needs the component's `bytes`, checked against
    /// the op's digest. Blocking (a load compiles).
    pub fn apply(&self, op: &Op, bytes: Option<&[u8]>) -> Result<Outcome, RegistryError> {
        match op {
            Op::Load { source, digest, manifest, activate } => {
                let bytes = bytes.ok_or_else(|| RegistryError::Rejected(format!("the component {digest} is not available")))?;
                self.load_bytes(source, bytes, manifest.clone(), Some(digest), *activate).map(Outcome::Loaded)
            }
            Op::Activate { name, version: v } => {
                let v = version(v)?;
                self.activate(name, &v).map(|()| Outcome::Live(v))
            }
            Op::Rollback { name } => self.rollback(name).map(Outcome::Live),
            Op::Pin { name, version: v, tenant } => self.pin(name, &version(v)?, tenant.as_deref()).map(|()| Outcome::Done),
            Op::Unpin { name, tenant } => self.unpin(name, tenant).map(|()| Outcome::Done),
            Op::Canary { name, version: v, percent } => self.canary(name, &version(v)?, *percent).map(|()| Outcome::Done),
            Op::Unload { name, version: v } => self.unload(name, &version(v)?).map(|()| Outcome::Done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_as_json() {
        let ops = [
            Op::Load { source: "upload".into(), digest: format!("sha256:{}", "ab".repeat(32)), manifest: None, activate: true },
            Op::Activate { name: "n".into(), version: "1.2.3".into() },
            Op::Rollback { name: "n".into() },
            Op::Pin { name: "n".into(), version: "1.0.0".into(), tenant: Some("acme".into()) },
            Op::Unpin { name: "n".into(), tenant: "acme".into() },
            Op::Canary { name: "n".into(), version: "1.0.0".into(), percent: 30 },
            Op::Unload { name: "n".into(), version: "1.0.0".into() },
        ];
        for op in ops {
            let text = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&text).unwrap(), op, "{text}");
        }
        assert!(serde_json::from_str::<Op>(r#"{"op": "format_disk"}"#).is_err());
    }
}
