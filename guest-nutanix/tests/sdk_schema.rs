//! Nutanix's own v4 models as the schema: the official Python SDKs from
//! PyPI (`tests/sdk/requirements.txt`, the v4.0 revision pc.2024.3 serves)
//! in a venv this test creates under the target directory, driven by
//! `tests/sdk/v4_sdk.py`. It checks that
//! (a) every key the simulator renders in a v4 list exists in the SDK's
//!     model of that list,
//! (b) every v4 field the guest reads ([`v4::WIRE_READS`]) exists there,
//!     and the adapter reads no field missing from that table,
//! (c) the guest normalizes bodies the SDK itself serialized, covering the
//!     optional fields (CD-ROMs, learned addresses, GPUs, vTPM, NICs
//!     sharing a subnet, VMs without host, categories as references),
//!     without losing any of them, and reads the SDK's error bodies.
//!
//! Needs `python3` with `venv` and PyPI on first run (`NTNX_SDK_PYTHON`
//! names an interpreter that has the SDKs instead). The generated bodies
//! are made afresh each run and never committed.

use guest_nutanix::network;
use guest_nutanix::normalize::{self, ClusterScan, Context};
use guest_nutanix::server_error::{self, Source};
use guest_nutanix::v3::Kind;
use guest_nutanix::v4::{self, Lookups};
use prism_sim::estate::{Estate, EstateConfig};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The interpreter with the SDKs: a venv made once from the requirements
/// and reused while they are unchanged.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NTNX_SDK_PYTHON") {
        return PathBuf::from(p);
    }
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let requirements = sdk_dir().join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("tests/sdk/requirements.txt");
    let venv = target_dir().join("ntnx-sdk-venv");
    let marker = venv.join("ntnx-requirements.txt");
    let py = venv.join("bin/python");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && py.exists() {
        return py;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(out.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    };
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(&py).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"]).arg(&requirements));
    std::fs::write(&marker, wanted).expect("venv marker");
    py
}

fn sdk(args: &[&str]) -> Output {
    Command::new(python()).arg(sdk_dir().join("v4_sdk.py")).args(args).output().expect("v4_sdk.py runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("guest-sdk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write(dir: &Path, name: &str, v: &Value) {
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(v).expect("json")).expect("write");
}

/// (a) What the simulator renders in every v4 list is in the SDK's models;
/// and the check refuses a key the model lacks.
#[test]
fn the_simulators_v4_lists_use_only_the_sdks_fields() {
    // With GPUs: VMs' `gpus` and hosts' `gpuList` rendered too.
    let mut estate = Estate::generate(EstateConfig { vms: 48, gpus: true, ..EstateConfig::default() });
    // With the VPCs' overlay subnets in the subnet list.
    estate.subnets.extend(estate.network.overlay_subnets.clone());
    let dir = temp("sim");
    for &(_, list, object_type) in prism_sim::v4::ENDPOINTS.iter().chain(prism_sim::network::ENDPOINTS) {
        write(&dir, &format!("{list}.json"), &prism_sim::v4::page(&estate, list, object_type, 0, 100, &prism_sim::v4::ListQuery::default()));
    }
    // A volume group's parts, of one with all three (disks, VMs, an iSCSI client).
    let vg = estate.volume_groups.first().expect("a volume group");
    for (part, file) in [("disks", "volume_group_disks"), ("vm-attachments", "vm_attachments"), ("external-iscsi-attachments", "external_iscsi_attachments")] {
        let items = prism_sim::v4::volume_group_part(vg, part).expect("a part");
        assert!(!items.is_empty(), "{part} rendered");
        write(&dir, &format!("{file}.json"), &json!({"data": items, "metadata": {"totalAvailableResults": items.len()}}));
    }
    // The versions of the template that has the most.
    let last = estate.vm_templates.last().expect("a template")["extId"].as_str().unwrap().to_string();
    let versions = prism_sim::operations::template_versions(&estate.vm_templates, &last, estate.now).expect("its versions");
    assert!(versions.len() > 1, "older versions too");
    write(&dir, "vm_template_versions.json", &prism_sim::v4::template_versions_page(versions, 0, 100));
    // The simulator's error answers, in the services' shape.
    write(&dir, "error-vms.json", &prism_sim::v4::error("vmm", "VMM-40401", "ENTITY_NOT_FOUND", "VM not found"));
    write(&dir, "error-hosts.json", &prism_sim::v4::error("clustermgmt", "CLU-40001", "INVALID_REQUEST", "$limit is out of range"));
    let out = sdk(&["check-bodies", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let n = estate.network.vpcs.len();
    for checked in [
        "vms: 48 items checked against vmm.v4.ahv.config.Vm".to_string(),
        "external_iscsi_attachments: 1 items".into(),
        "iscsi_clients: ".into(),
        "error-vms: error body checked".into(),
        "protection_rules: 3 items checked against datapolicies.v4.config.ProtectionPolicy".into(),
        "vm_recovery_points: ".into(),
        format!("vpcs: {n} items checked against networking.v4.config.Vpc"),
        format!("floating_ips: {} items checked against networking.v4.config.FloatingIp", 2 * n),
        format!("route_tables: {n} items checked against networking.v4.config.RouteTable"),
        format!("virtual_switches: {n} items checked against networking.v4.config.VirtualSwitch"),
        format!("network_security_rules: {n} items checked against microseg.v4.config.NetworkSecurityPolicy"),
        format!("address_groups: {n} items checked against microseg.v4.config.AddressGroup"),
        format!("service_groups: {n} items checked against microseg.v4.config.ServiceGroup"),
        "vm_templates: 4 items checked against vmm.v4.content.Template".into(),
        "vm_template_versions: 4 items checked against vmm.v4.content.TemplateVersionSpec".into(),
        "alerts: ".into(),
        "lcm_entities: ".into(),
    ] {
        assert!(text(&out).contains(checked.as_str()), "{checked}: {}", text(&out));
    }
    // The simulator renders the optional fields this is about.
    let vms = std::fs::read_to_string(dir.join("vms.json")).unwrap();
    for field in ["\"cdRoms\"", "\"learnedIpAddresses\"", "\"numThreadsPerCore\"", "\"gpus\"", "\"pciAddress\"", "\"PASSTHROUGH_COMPUTE\"", "\"VIRTUAL\""] {
        assert!(vms.contains(field), "{field} rendered");
    }
    let hosts = std::fs::read_to_string(dir.join("hosts.json")).unwrap();
    assert!(hosts.contains("\"gpuList\"") && hosts.contains("\"gpuDriverVersion\""), "hosts' GPU fields rendered");
    // The overlay subnets carry their VPC; the networking lists their optional parts.
    assert!(std::fs::read_to_string(dir.join("subnets.json")).unwrap().contains("\"vpcReference\""));
    for (list, field) in [("floating_ips", "VmNicAssociation"), ("floating_ips", "PrivateIpAssociation"), ("network_security_rules", "TwoEnvIsolationRuleSpec"),
                          ("network_security_rules", "IntraEntityGroupRuleSpec"), ("service_groups", "isAllAllowed"), ("address_groups", "ipRanges")] {
        assert!(std::fs::read_to_string(dir.join(format!("{list}.json"))).unwrap().contains(field), "{list}: {field} rendered");
    }

    // A key the model does not have is named by its path.
    let mut bad = prism_sim::v4::page(&estate, "hosts", "clustermgmt.v4.config.Host", 0, 100, &prism_sim::v4::ListQuery::default());
    bad["data"][0]["nodeSerial"] = json!("SN-1");
    let bad_dir = temp("sim-bad");
    write(&bad_dir, "hosts.json", &bad);
    let out = sdk(&["check-bodies", bad_dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not in the SDK model: hosts/data/0/nodeSerial"), "{}", text(&out));
}

/// (b) Every v4 field the guest reads exists in the SDK's models, and the
/// adapter's code names no field the table leaves out.
#[test]
fn every_v4_field_the_guest_reads_is_in_the_sdks_models() {
    let dir = temp("paths");
    let table: BTreeMap<&str, &[&str]> = v4::WIRE_READS.iter().chain(network::WIRE_READS).copied().collect();
    write(&dir, "reads.json", &json!(table));
    let out = sdk(&["check-paths", dir.join("reads.json").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let bad = json!({"clustermgmt.v4.config.Host": ["nodeSerial"], "clustermgmt.v4.config.StorageContainer": ["isSoftwareEncryptionEnabled"]});
    write(&dir, "bad.json", &bad);
    let out = sdk(&["check-paths", dir.join("bad.json").to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("Host: nodeSerial") && !text(&out).contains("isSoftwareEncryptionEnabled"), "{}", text(&out));

    // The adapter (and the storage container normalization, which reads the
    // v4 item itself) names no field outside the table.
    let declared: BTreeSet<&str> = v4::WIRE_READS
        .iter()
        .chain(network::WIRE_READS)
        .flat_map(|(_, paths)| paths.iter().flat_map(|p| p.split('/')))
        .chain(v4::LATER_REVISION_READS.iter().copied())
        .collect();
    // Keys the collector merges into a volume group before the adapter.
    let merged: BTreeSet<&str> = v4::VOLUME_GROUP_PARTS.iter().map(|(_, key)| *key).collect();
    let src = |file: &str| std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src").join(file)).unwrap();
    let v4_src = src("v4.rs");
    let adapter = &v4_src[v4_src.find("pub fn to_v3").unwrap()..v4_src.find("#[cfg(test)]").unwrap()];
    let normalize_src = src("normalize.rs");
    let container = &normalize_src[normalize_src.find("pub fn storage_container").unwrap()..normalize_src.find("pub fn project").unwrap()];
    // The networking kinds' normalization reads the v4 item itself (its v3
    // adapter, after it, reads v3 names).
    let network_src = src("network.rs");
    let net = &network_src[network_src.find("pub fn normalize(").unwrap()..network_src.find("pub fn v3_to_v4").unwrap()];
    assert!(wire_names(net).contains("floatingIp") && wire_names(net).contains("mtu"), "the scan sees the networking reads");
    // The compute extras and operations read their v4 items themselves.
    let operations_src = src("operations.rs");
    let operations = &operations_src[operations_src.find("fn object").unwrap()..operations_src.find("pub fn service_of").unwrap()];
    let read = wire_names(adapter).into_iter().chain(wire_names(container)).chain(wire_names(net)).chain(wire_names(operations));
    let undeclared: BTreeSet<String> = read.filter(|n| !declared.contains(n.as_str()) && !merged.contains(n.as_str())).collect();
    assert!(undeclared.is_empty(), "the adapter reads fields v4::WIRE_READS does not declare: {undeclared:?}");
    assert!(wire_names(r#"at(d, "/backingInfo/nodeSerial"); v["hostSerial"]"#).contains("nodeSerial"), "the scan sees reads");
}

/// The names code reads from v4 items: the segments of string literals in
/// `x["…"]`, `get("…")`, `pointer("…")`, `text("…")`, `flag("…")`,
/// `bytes("…")`, `list("…")` and JSON pointers (`"/a/b"`).
fn wire_names(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let accessors = ["[\"", "get(\"", "pointer(\"", "text(\"", "flag(\"", "bytes(\"", "list(\"", ", \"/"];
    for acc in accessors {
        for (i, _) in code.match_indices(acc) {
            let start = i + acc.len() - if acc.ends_with('/') { 1 } else { 0 };
            let Some(len) = code[start..].find('"') else { continue };
            for seg in code[start..start + len].split('/').filter(|s| !s.is_empty() && !s.chars().all(|c| c.is_ascii_digit())) {
                out.insert(seg.to_string());
            }
        }
    }
    out
}

/// Reads one generated list.
fn body(dir: &Path, list: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{list}.json"))).expect("generated list")).expect("JSON")
}

fn items(v: &Value) -> Vec<Value> {
    v["data"].as_array().cloned().unwrap_or_default()
}

/// (c) Bodies the SDK serialized from its own models normalize without
/// loss: each fact the generator states about an entity is in its record.
#[test]
fn the_guest_normalizes_sdk_generated_bodies_without_loss() {
    let dir = temp("gen");
    let out = sdk(&["generate", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let facts: Value = serde_json::from_slice(&std::fs::read(dir.join("facts.json")).unwrap()).unwrap();

    // Clusters: the pseudo-cluster names the account, the other is a cluster.
    let mut scan = ClusterScan::default();
    let clusters: Vec<Value> = items(&body(&dir, "clusters")).iter().map(|c| v4::to_v3(Kind::Cluster, c, &Lookups::default()).unwrap()).collect();
    clusters.iter().for_each(|c| scan.observe(c));
    let ctx = Context { account: scan.prism_central_uuid.clone(), base_url: "https://pc:9440".into(), cluster_names: scan.names.clone(), ..Context::default() };
    // Region codes are cluster uuids.
    let cluster_a = scan.names.iter().find(|(_, n)| *n == "cluster-a").map(|(u, _)| u.clone()).expect("cluster-a");
    assert_eq!(ctx.account.as_deref(), Some("0005f0e1-0000-4000-8000-00000000a0c1"));
    let normalized: Vec<_> = clusters.into_iter().filter_map(|c| normalize::cluster(&ctx, c).unwrap()).collect();
    for f in facts["clusters"].as_array().unwrap() {
        let (cs, region) = normalized.iter().find(|(cs, _)| cs.resource_id == f["uuid"]).expect("cluster");
        assert_eq!((json!(cs.name), cs.data["aos_version"].clone(), cs.data["external_ip"].clone(), cs.data["num_nodes"].clone()), (f["name"].clone(), f["aos_version"].clone(), f["external_ip"].clone(), f["num_nodes"].clone()));
        assert_eq!((json!(region.region_code), json!(region.name)), (f["uuid"].clone(), f["name"].clone()));
    }

    let mut lk = Lookups::default();
    items(&body(&dir, "categories")).iter().for_each(|c| lk.add_category(c));
    items(&body(&dir, "hosts")).iter().for_each(|h| lk.add_host(h));
    items(&body(&dir, "subnets")).iter().for_each(|s| lk.add_subnet(s));
    let service = |kind: Kind, raw: &Value| guest_nutanix::operations::service_of(kind, &ctx, v4::to_v3(kind, raw, &lk).unwrap()).unwrap_or_else(|e| panic!("{e}"));

    for (raw, f) in items(&body(&dir, "vms")).iter().zip(facts["vms"].as_array().unwrap()) {
        let vm = service(Kind::Vm, raw);
        let d = &vm.data;
        let who = f["name"].as_str().unwrap();
        assert_eq!(json!(vm.resource_id), f["uuid"], "{who}");
        assert_eq!(d["vcpus"], f["vcpus"], "{who}: vCPUs are sockets × cores × threads");
        assert_eq!((d["num_sockets"].clone(), d["num_vcpus_per_socket"].clone(), d["num_threads_per_core"].clone()), (f["sockets"].clone(), f["cores_per_socket"].clone(), f["threads_per_core"].clone()), "{who}");
        assert_eq!(d["memory_mib"], f["memory_mib"], "{who}");
        assert_eq!(d["power_state"], f["power_state"], "{who}");
        assert_eq!(d["host"]["uuid"], f["host"], "{who}");
        if f["host"].is_string() {
            assert_eq!(d["host"]["name"], "cluster-a-node-1", "{who}: the host named from the host list");
        }
        assert_eq!(d["cluster"]["uuid"], f["cluster"], "{who}");
        assert_eq!(vm.region_code.as_deref(), Some(cluster_a.as_str()), "{who}");
        let drives: Vec<Value> = d["disks"].as_array().unwrap().iter().map(|x| json!([x["uuid"], x["device_type"], x["adapter_type"], x["device_index"], x["size_bytes"]])).collect();
        assert_eq!(json!(drives), f["disks"], "{who}: disks and CD-ROMs");
        assert_eq!(d["disk_total_bytes"], f["disk_total_bytes"], "{who}");
        assert_eq!(json!(vm.ip_addresses), f["ips"], "{who}: assigned and learned addresses");
        let subnets: Vec<Value> = d["nics"].as_array().unwrap().iter().map(|n| n["subnet"]["uuid"].clone()).collect();
        assert_eq!(json!(subnets), f["nic_subnets"], "{who}");
        if let Some(first) = d["nics"].as_array().unwrap().first() {
            assert_eq!(first["subnet"]["name"], "vlan-10", "{who}: subnet named from the subnet list");
        }
        assert_eq!(d["categories"], f["categories"], "{who}: categories resolved from their references");
        assert_eq!(d.get("gpus").cloned().unwrap_or(json!([])), f["gpus"], "{who}");
        assert_eq!(d.get("vtpm_enabled").cloned().unwrap_or(Value::Null), f["vtpm_enabled"], "{who}");
        assert_eq!(d["boot_type"], f["boot_type"], "{who}");
        assert_eq!(d["guest_tools_installed"], f["guest_tools_installed"], "{who}");
        assert_eq!(normalize::disks_of(&vm).len(), f["disks"].as_array().unwrap().len(), "{who}: each drive a Storage/Disk");
    }
    for (raw, f) in items(&body(&dir, "hosts")).iter().zip(facts["hosts"].as_array().unwrap()) {
        let h = service(Kind::Host, raw);
        assert_eq!((h.data["cpu_frequency_hz"].clone(), h.data["cpu_capacity_hz"].clone()), (f["cpu_frequency_hz"].clone(), f["cpu_capacity_hz"].clone()));
        assert_eq!((h.data["num_cpu_cores"].clone(), h.data["memory_mib"].clone(), json!(h.ip_addresses)), (f["num_cpu_cores"].clone(), f["memory_mib"].clone(), f["ips"].clone()));
        assert_eq!(h.region_code.as_deref(), Some(cluster_a.as_str()));
    }
    for (raw, f) in items(&body(&dir, "storage_containers")).iter().zip(facts["storage_containers"].as_array().unwrap()) {
        let c = service(Kind::StorageContainer, raw);
        assert_eq!((json!(c.resource_id), c.data["encrypted"].clone(), c.data["replication_factor"].clone()), (f["uuid"].clone(), f["encrypted"].clone(), f["replication_factor"].clone()));
    }
    for (raw, f) in items(&body(&dir, "subnets")).iter().zip(facts["subnets"].as_array().unwrap()) {
        let s = service(Kind::Subnet, raw);
        assert_eq!((s.data["vlan_id"].clone(), s.data["network"].clone(), s.data["gateway"].clone(), s.data["ip_pools"].clone()), (f["vlan_id"].clone(), f["network"].clone(), f["gateway"].clone(), f["ip_pools"].clone()));
    }
    for (raw, f) in items(&body(&dir, "images")).iter().zip(facts["images"].as_array().unwrap()) {
        let i = service(Kind::Image, raw);
        assert_eq!((json!(i.name), i.data["size_bytes"].clone(), i.data["image_type"].clone()), (f["name"].clone(), f["size_bytes"].clone(), f["image_type"].clone()));
        assert_eq!(i.region_code.as_deref(), Some(cluster_a.as_str()));
    }
    for (raw, f) in items(&body(&dir, "categories")).iter().zip(facts["categories"].as_array().unwrap()) {
        assert_eq!(json!(service(Kind::Category, raw).resource_id), f["uuid"]);
    }
    // Data protection: a policy's RPO and its categories (named through the
    // category list), a recovery point's VMs and times.
    for (raw, f) in items(&body(&dir, "protection_policies")).iter().zip(facts["protection_policies"].as_array().unwrap()) {
        let p = service(Kind::ProtectionPolicy, raw);
        assert_eq!((json!(p.resource_id), json!(p.name)), (f["uuid"].clone(), f["name"].clone()));
        assert_eq!((p.data["rpo_secs"].clone(), p.data["categories"].clone()), (f["rpo_secs"].clone(), f["categories"].clone()));
    }
    for (raw, f) in items(&body(&dir, "recovery_points")).iter().zip(facts["recovery_points"].as_array().unwrap()) {
        let r = service(Kind::RecoveryPoint, raw);
        assert_eq!((json!(r.resource_id), json!(r.name)), (f["uuid"].clone(), f["name"].clone()));
        let vms: Vec<Value> = r.data["vms"].as_array().unwrap().iter().map(|v| v["uuid"].clone()).collect();
        assert_eq!(json!(vms), f["vms"]);
        let at = |k: &str| r.data[k].as_str().and_then(guest_nutanix::time::parse_time);
        assert_eq!(at("created_at"), f["created_at"].as_str().and_then(guest_nutanix::time::parse_time), "{}", r.data);
        assert_eq!(at("expires_at"), f["expires_at"].as_str().and_then(guest_nutanix::time::parse_time), "{}", r.data);
    }
    // Compute extras and operations: a template's active version and size,
    // an alert's title (parameters filled in), state, severity and entity,
    // an LCM entity's version, host and the update on offer.
    for (raw, f) in items(&body(&dir, "vm_templates")).iter().zip(facts["vm_templates"].as_array().unwrap()) {
        let t = service(Kind::VmTemplate, raw);
        assert_eq!((json!(t.resource_id), json!(t.name), json!(t.data["created_by"])), (f["uuid"].clone(), f["name"].clone(), f["created_by"].clone()));
        assert_eq!((t.data["version"]["name"].clone(), t.data["version"]["uuid"].clone()), (f["version"].clone(), f["version_uuid"].clone()));
        assert_eq!((t.data["vm_spec"]["vcpus"].clone(), t.data["vm_spec"]["memory_size_bytes"].clone()), (f["vcpus"].clone(), f["memory_size_bytes"].clone()));
    }
    for (raw, f) in items(&body(&dir, "alerts")).iter().zip(facts["alerts"].as_array().unwrap()) {
        let a = service(Kind::Alert, raw);
        assert_eq!((json!(a.resource_id), json!(a.name)), (f["uuid"].clone(), f["name"].clone()));
        assert_eq!((a.data["severity"].clone(), a.data["state"].clone(), json!(a.region_code)), (f["severity"].clone(), f["state"].clone(), f["region"].clone()));
        assert_eq!(a.data["source_entity"], f["source_entity"]);
    }
    for (raw, f) in items(&body(&dir, "lcm_entities")).iter().zip(facts["lcm_entities"].as_array().unwrap()) {
        let e = service(Kind::LcmEntity, raw);
        assert_eq!((json!(e.resource_id), e.data["version"].clone(), e.data["entity_type"].clone()), (f["uuid"].clone(), f["version"].clone(), f["entity_type"].clone()));
        assert_eq!((e.data["host"]["uuid"].clone(), e.data["update_to"].clone()), (f["host"].clone(), f["update_to"].clone()));
    }

    // The networking and security kinds, and an overlay subnet with its VPC.
    let net = |list: &str| -> Vec<(guest_nutanix::record::CloudService, Value)> {
        let kind = if list == "overlay_subnets" { Kind::Subnet } else { Kind::from_plural(list).unwrap_or_else(|| panic!("{list}")) };
        items(&body(&dir, list)).iter().map(|raw| service(kind, raw)).zip(facts[list].as_array().unwrap().iter().cloned()).collect()
    };
    for (s, f) in net("overlay_subnets") {
        assert_eq!((json!(s.resource_id), s.data["subnet_type"].clone(), s.data["vpc"]["uuid"].clone()), (f["uuid"].clone(), json!("OVERLAY"), f["vpc_uuid"].clone()));
    }
    for (v, f) in net("vpcs") {
        let d = &v.data;
        assert_eq!((json!(v.resource_id), json!(v.name), d["vpc_type"].clone(), json!(v.ip_addresses)), (f["uuid"].clone(), f["name"].clone(), f["vpc_type"].clone(), f["ips"].clone()));
        assert_eq!((d["dns_servers"].clone(), d["externally_routable_prefixes"].clone(), d["project"].clone(), d["owner"].clone()), (f["dns_servers"].clone(), f["prefixes"].clone(), f["project"].clone(), f["owner"].clone()));
    }
    for (fip, f) in net("floating_ips") {
        let d = &fip.data;
        assert_eq!((json!(fip.resource_id), json!(fip.name), d["association"].clone(), d["vpc_uuid"].clone(), d["private_ip"].clone()),
                   (f["uuid"].clone(), f["name"].clone(), f["association"].clone(), f["vpc_uuid"].clone(), f["private_ip"].clone()));
    }
    for (rt, f) in net("route_tables") {
        assert_eq!((json!(rt.resource_id), rt.data["vpc_uuid"].clone()), (f["uuid"].clone(), f["vpc_uuid"].clone()));
    }
    for (vs, f) in net("virtual_switches") {
        assert_eq!((json!(vs.resource_id), json!(vs.name), vs.data["clusters"].clone()), (f["uuid"].clone(), f["name"].clone(), f["clusters"].clone()), "the cluster named from the cluster list");
    }
    for (p, f) in net("security_policies") {
        for k in ["policy_type", "state", "rule_count", "address_group_uuids", "service_group_uuids", "vpc_uuids", "created_at"] {
            assert_eq!(p.data[k], f[k], "security policy: {k}");
        }
    }
    for (g, f) in net("address_groups") {
        for k in ["ipv4_addresses", "ip_ranges", "policy_uuids"] {
            assert_eq!(g.data[k], f[k], "address group: {k}");
        }
    }
    for (g, f) in net("service_groups") {
        for k in ["tcp_ports", "icmp", "protocols"] {
            assert_eq!(g.data[k], f[k], "service group: {k}");
        }
    }

    // The SDK's error bodies: a service's own, read into code, message and group.
    let errors: Value = serde_json::from_slice(&std::fs::read(dir.join("errors.json")).unwrap()).unwrap();
    let said = server_error::parse(errors["vmm"].to_string().as_bytes());
    assert_eq!(said.source, Source::Service);
    assert_eq!(said.message, "VMM-30100: vmm refused the list: $filter is invalid (group VM_LIST_FAILED, argument=$filter)");
    assert_eq!(server_error::parse(errors["clustermgmt"].to_string().as_bytes()).source, Source::Service);
}
