//! What CloudForet's console makes of the records, as rules the
//! normalization follows (read from CloudForet's console and inventory
//! code; see README "CloudForet console"):
//!
//! - a type's `labels` come from the console's fixed vocabulary
//!   ([`Label`]); `Server` puts a type on the Server page and, with
//!   `is_primary`, into the home page's Server Count (managed metric
//!   `metric-managed-server-count`);
//! - only `is_primary` types are listed by default; Storage Size
//!   (`metric-managed-storage-size`) sums `instance_size` of the
//!   `Storage`-labelled primary types, in bytes;
//! - a type's icon is its `spaceone:icon` tag, a URL: `<icon_base_url>/<file>`
//!   with option `icon_base_url`, else the icon itself as a `data:` URL
//!   (nothing to serve, so air-gapped consoles show it too);
//! - a region is placed on the map by its `continent`, `latitude` and
//!   `longitude` tags (option `region_locations`: Prism knows no location).
//!
//! [`type_rules`] is the one table of labels, primary and major per kind.

use crate::error::Error;
use crate::v3::Kind;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The console's vocabulary (labels, continents, the icon tag), from the
/// SDK.
pub use cloudforet_collector::console::{Icon, Label, CONTINENTS, ICON_TAG};

/// How the console shows a kind's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeRules {
    pub labels: &'static [Label],
    /// Listed by default, counted by the managed metrics.
    pub is_primary: bool,
    pub is_major: bool,
}

/// Labels, primary and major of each kind's type.
///
/// VMs and hosts are servers (Server page, Server Count). Storage Size
/// sums what the primary storage types hold, each byte once: images, VM
/// disks and volume groups are each their own data; a storage container's
/// capacity holds those (and more), so it is not primary (it would count
/// them twice) and is listed with "all types". Categories and projects are
/// Prism's own management objects, not assets: not primary. Protection
/// policies and recovery plans are primary: their flags (RPO violated,
/// missing VMs) are what a user filters on; recovery points, many per VM
/// and each a moment, are listed with "all types" (no size: they do not
/// count into Storage Size either way). Alerts are primary (open ones by
/// severity are what an operator looks for); VM templates (a blueprint, not
/// a running server), LCM entities (a version, many per host) and GPUs (a
/// device of a host, which counts) are not.
pub fn type_rules(kind: Kind) -> TypeRules {
    use Label::{Compute, Management, Networking, Server, Storage};
    let r = |labels, is_primary, is_major| TypeRules { labels, is_primary, is_major };
    match kind {
        Kind::Vm => r(&[Compute, Server], true, true),
        Kind::Host => r(&[Compute, Server], true, true),
        Kind::Cluster => r(&[Compute], true, true),
        Kind::Subnet => r(&[Networking], true, false),
        Kind::Image => r(&[Storage], true, false),
        Kind::VmDisk => r(&[Storage], true, false),
        Kind::VolumeGroup => r(&[Storage], true, false),
        Kind::StorageContainer => r(&[Storage], false, false),
        Kind::Project => r(&[Management], false, false),
        Kind::Category => r(&[Management], false, false),
        Kind::ProtectionPolicy => r(&[Management], true, false),
        Kind::RecoveryPlan => r(&[Management], true, false),
        Kind::RecoveryPoint => r(&[Storage], false, false),
        Kind::Network(n) => {
            let (labels, is_primary) = n.type_rules();
            r(labels, is_primary, false)
        }
        Kind::VmTemplate => r(&[Compute], false, false),
        Kind::Alert => r(&[Management], true, false),
        Kind::LcmEntity => r(&[Management], false, false),
        Kind::GuestTools => r(&[Compute], false, false),
        Kind::Gpu => r(&[Compute], false, false),
    }
}

/// The icon of a kind: its file in `guest-nutanix/icons/` and the SVG.
pub fn icon(kind: Kind) -> Icon {
    match kind {
        Kind::Vm => Icon { file: "virtual-machine.svg", svg: include_str!("../icons/virtual-machine.svg") },
        Kind::Host => Icon { file: "host.svg", svg: include_str!("../icons/host.svg") },
        Kind::Cluster => Icon { file: "cluster.svg", svg: include_str!("../icons/cluster.svg") },
        Kind::Subnet => Icon { file: "subnet.svg", svg: include_str!("../icons/subnet.svg") },
        Kind::Image => Icon { file: "image.svg", svg: include_str!("../icons/image.svg") },
        Kind::VolumeGroup => Icon { file: "volume-group.svg", svg: include_str!("../icons/volume-group.svg") },
        Kind::Project => Icon { file: "project.svg", svg: include_str!("../icons/project.svg") },
        Kind::Category => Icon { file: "category.svg", svg: include_str!("../icons/category.svg") },
        Kind::StorageContainer => Icon { file: "storage-container.svg", svg: include_str!("../icons/storage-container.svg") },
        Kind::VmDisk => Icon { file: "disk.svg", svg: include_str!("../icons/disk.svg") },
        Kind::ProtectionPolicy => Icon { file: "protection-policy.svg", svg: include_str!("../icons/protection-policy.svg") },
        Kind::RecoveryPoint => Icon { file: "recovery-point.svg", svg: include_str!("../icons/recovery-point.svg") },
        Kind::RecoveryPlan => Icon { file: "recovery-plan.svg", svg: include_str!("../icons/recovery-plan.svg") },
        Kind::Network(n) => n.icon(),
        Kind::VmTemplate => Icon { file: "vm-template.svg", svg: include_str!("../icons/vm-template.svg") },
        Kind::Alert => Icon { file: "alert.svg", svg: include_str!("../icons/alert.svg") },
        Kind::LcmEntity => Icon { file: "lcm-entity.svg", svg: include_str!("../icons/lcm-entity.svg") },
        Kind::GuestTools => Icon { file: "guest-tools.svg", svg: include_str!("../icons/guest-tools.svg") },
        Kind::Gpu => Icon { file: "gpu.svg", svg: include_str!("../icons/gpu.svg") },
    }
}

/// The `spaceone:icon` URL of a kind: under `base` (option
/// `icon_base_url`), else the SVG as a `data:` URL.
pub fn icon_url(kind: Kind, base: Option<&str>) -> String {
    icon(kind).url(base)
}

/// Where a region lies on the console's map.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub continent: String,
    pub latitude: f64,
    pub longitude: f64,
}

impl Location {
    /// The Region tags the console's map reads.
    pub fn tags(&self) -> Vec<(String, String)> {
        vec![
            ("continent".to_string(), self.continent.clone()),
            ("latitude".to_string(), self.latitude.to_string()),
            ("longitude".to_string(), self.longitude.to_string()),
        ]
    }
}

/// Option `region_locations`: a location per cluster (by name or uuid),
/// and `"*"` for every other cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Locations(BTreeMap<String, Location>);

impl Locations {
    /// The location of the cluster `name` / `uuid`, if the option gives one.
    pub fn of(&self, name: &str, uuid: Option<&str>) -> Option<&Location> {
        uuid.and_then(|u| self.0.get(u)).or_else(|| self.0.get(name)).or_else(|| self.0.get("*"))
    }

    pub fn parse(v: Option<&Value>) -> Result<Locations, Error> {
        let bad = |m: String| Error::InvalidArgument(format!("options field 'region_locations' {m}"));
        let map = match v {
            None | Some(Value::Null) => return Ok(Locations::default()),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad("must be an object of cluster name (or uuid, or \"*\") → {\"continent\", \"latitude\", \"longitude\"}".into())),
        };
        let mut out = BTreeMap::new();
        for (cluster, loc) in map {
            let Value::Object(loc) = loc else { return Err(bad(format!("'{cluster}' must be an object"))) };
            out.insert(cluster.clone(), location(cluster, loc).map_err(bad)?);
        }
        Ok(Locations(out))
    }
}

fn location(cluster: &str, loc: &Map<String, Value>) -> Result<Location, String> {
    for key in loc.keys() {
        if !["continent", "latitude", "longitude"].contains(&key.as_str()) {
            return Err(format!("'{cluster}' has an unknown key '{key}' (expected continent, latitude, longitude)"));
        }
    }
    let continent = loc.get("continent").and_then(Value::as_str).filter(|c| CONTINENTS.contains(c)).ok_or_else(|| {
        format!("'{cluster}' needs a continent, one of {}", CONTINENTS.join(", "))
    })?;
    // Structs carry numbers as doubles; strings are accepted too, as the
    // console reads the tags with parseFloat.
    let coordinate = |key: &str, max: f64| -> Result<f64, String> {
        let v = loc.get(key).and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())));
        v.filter(|x: &f64| x.is_finite() && x.abs() <= max).ok_or_else(|| format!("'{cluster}' needs a {key} between -{max} and {max}"))
    };
    Ok(Location { continent: continent.to_string(), latitude: coordinate("latitude", 90.0)?, longitude: coordinate("longitude", 180.0)? })
}

/// The Server page's `data.compute.instance_state` of a VM's power state
/// (CloudForet's server states: RUNNING, STOPPED, SUSPENDED, ...).
pub fn instance_state(power_state: Option<&str>) -> Option<String> {
    let p = power_state?.trim();
    Some(match p.to_ascii_uppercase().as_str() {
        "ON" => "RUNNING".to_string(),
        "OFF" => "STOPPED".to_string(),
        "PAUSED" | "SUSPENDED" => "SUSPENDED".to_string(),
        "" => return None,
        other => other.to_string(),
    })
}

/// `data.os` of a VM from its guest tools' OS string (v3
/// `guest_os_version`, v4 `guestOsVersion`, e.g. `Linux:64:CentOS-7.9`
/// or `Windows:64:Windows Server 2019`) and its machine type; what is not
/// known stays null.
pub fn vm_os(guest_os: Option<&str>, machine_type: Option<&str>) -> Value {
    let mut parts = guest_os.unwrap_or_default().splitn(3, ':').map(str::trim);
    let family = parts.next().filter(|s| !s.is_empty());
    let bits = parts.next();
    let distro = parts.next().filter(|s| !s.is_empty());
    let os_type = family.map(|f| match f.to_ascii_lowercase().as_str() {
        "linux" => "LINUX".to_string(),
        "windows" => "WINDOWS".to_string(),
        other => other.to_ascii_uppercase(),
    });
    let arch = match machine_type.map(str::to_ascii_uppercase).as_deref() {
        Some("PSERIES") => Some("ppc64le"),
        Some("PC" | "Q35") => Some(if bits == Some("32") { "i386" } else { "x86_64" }),
        _ => None,
    };
    serde_json::json!({"os_type": os_type, "os_distro": distro.or(family.filter(|_| bits.is_none())), "os_arch": arch})
}

/// `data.os` of a host from its hypervisor's full name.
pub fn host_os(hypervisor: Option<&str>) -> Value {
    let name = hypervisor.map(str::trim).filter(|s| !s.is_empty());
    let os_type = name.and_then(|n| {
        let l = n.to_ascii_lowercase();
        if l.starts_with("nutanix") || l.contains("ahv") {
            Some("AHV")
        } else if l.contains("esxi") {
            Some("ESXI")
        } else if l.contains("hyper-v") {
            Some("HYPERV")
        } else {
            None
        }
    });
    serde_json::json!({"os_type": os_type, "os_distro": name, "os_arch": Value::Null})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_uses_the_vocabulary_and_has_an_icon() {
        for kind in Kind::ALL {
            let r = type_rules(kind);
            assert!(!r.labels.is_empty(), "{kind:?}");
            let Icon { file, svg } = icon(kind);
            assert!(svg.starts_with("<svg") && svg.contains("viewBox"), "{file}");
            assert_eq!(icon_url(kind, Some("https://cdn.example/icons/")), format!("https://cdn.example/icons/{file}"));
            assert!(icon_url(kind, None).starts_with("data:image/svg+xml;base64,PHN2Zy"), "{kind:?}");
        }
        let servers: Vec<Kind> = Kind::ALL.into_iter().filter(|k| type_rules(*k).labels.contains(&Label::Server)).collect();
        assert_eq!(servers, [Kind::Host, Kind::Vm]);
        assert!(servers.iter().all(|k| type_rules(*k).is_primary));
    }

    #[test]
    fn locations_parse_and_apply_by_uuid_name_or_default() {
        let v = json!({"cluster-a": {"continent": "europe", "latitude": 50.11, "longitude": 8.68},
                       "c2-uuid": {"continent": "asia_pacific", "latitude": "35.68", "longitude": 139.69},
                       "*": {"continent": "north_america", "latitude": 0, "longitude": 0}});
        let l = Locations::parse(Some(&v)).unwrap();
        assert_eq!(l.of("cluster-a", Some("c1-uuid")).unwrap().continent, "europe");
        assert_eq!(l.of("cluster-b", Some("c2-uuid")).unwrap().latitude, 35.68);
        assert_eq!(l.of("other", None).unwrap().continent, "north_america");
        assert_eq!(l.of("cluster-a", None).unwrap().tags()[1], ("latitude".to_string(), "50.11".to_string()));
        assert_eq!(Locations::parse(None).unwrap().of("x", None), None);
        for bad in [json!([]), json!({"a": 1}), json!({"a": {"continent": "mars", "latitude": 0, "longitude": 0}}),
                    json!({"a": {"continent": "europe", "latitude": 91, "longitude": 0}}),
                    json!({"a": {"continent": "europe", "latitude": 0}}),
                    json!({"a": {"continent": "europe", "latitude": 0, "longitude": 0, "alt": 1}})] {
            let e = Locations::parse(Some(&bad)).unwrap_err().to_string();
            assert!(e.contains("region_locations"), "{e}");
        }
    }

    #[test]
    fn server_fields_from_prism_values() {
        assert_eq!(instance_state(Some("ON")).as_deref(), Some("RUNNING"));
        assert_eq!(instance_state(Some("off")).as_deref(), Some("STOPPED"));
        assert_eq!(instance_state(Some("PAUSED")).as_deref(), Some("SUSPENDED"));
        assert_eq!(instance_state(None), None);
        assert_eq!(vm_os(Some("Linux:64:CentOS-7.9"), Some("PC")), json!({"os_type": "LINUX", "os_distro": "CentOS-7.9", "os_arch": "x86_64"}));
        assert_eq!(vm_os(Some("Windows:32:Windows 10"), Some("Q35"))["os_arch"], "i386");
        assert_eq!(vm_os(None, Some("PSERIES")), json!({"os_type": null, "os_distro": null, "os_arch": "ppc64le"}));
        assert_eq!(vm_os(None, None), json!({"os_type": null, "os_distro": null, "os_arch": null}));
        assert_eq!(host_os(Some("Nutanix 20230302.100173"))["os_type"], "AHV");
        assert_eq!(host_os(Some("VMware ESXi 7.0.3"))["os_type"], "ESXI");
        assert_eq!(host_os(None), json!({"os_type": null, "os_distro": null, "os_arch": null}));
    }
}
