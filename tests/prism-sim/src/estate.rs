//! The simulated Prism estate: deterministic v3 entities.
//!
//! Everything is a pure function of [`EstateConfig`], so tests can compute
//! what a given entity looks like ([`vm_facts`]) and assert exact values.

use crate::lazy::{CategoryCounts, Entities, LazyList};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct EstateConfig {
    pub vms: usize,
    /// Prism Element clusters (the Prism Central pseudo-cluster comes extra).
    pub clusters: usize,
    pub hosts_per_cluster: usize,
    pub subnets_per_cluster: usize,
    pub images: usize,
    /// Volume groups per Prism Element cluster.
    pub volume_groups_per_cluster: usize,
    /// Projects (the first is the `default` project).
    pub projects: usize,
    /// Physical GPUs on every other host, some used by that host's VMs
    /// ([`crate::operations::attach_gpus`]); off by default, so the
    /// default estate stays as it was.
    pub gpus: bool,
}

impl Default for EstateConfig {
    fn default() -> Self {
        EstateConfig { vms: 200, clusters: 3, hosts_per_cluster: 4, subnets_per_cluster: 2, images: 8, volume_groups_per_cluster: 2, projects: 3, gpus: false }
    }
}

/// A deterministic UUID for (kind, index).
pub fn uuid(kind: &str, i: usize) -> String {
    // FNV-1a of the kind, mixed with the index.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in kind.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let a = h ^ (i as u64).wrapping_mul(0x9e3779b97f4a7c15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (i >> 48) as u16 & 0xfff,
        i as u64 & 0xffff_ffff_ffff
    )
}

pub const PC_UUID_KIND: &str = "prism-central";

pub fn cluster_name(c: usize) -> String {
    format!("cluster-{}", (b'a' + (c % 26) as u8) as char)
}

/// What a simulated VM is, in plain terms (for test expectations).
#[derive(Clone, Debug, PartialEq)]
pub struct VmFacts {
    pub uuid: String,
    pub name: String,
    pub cluster: usize,
    pub powered_on: bool,
    pub sockets: u32,
    pub vcpus_per_socket: u32,
    pub memory_mib: u64,
    pub disks_gib: Vec<u64>,
    pub nics: usize,
    pub ips: Vec<String>,
    pub categories: Vec<(String, String)>,
    pub host: Option<usize>,
    /// CD-ROM drives: one on every fourth VM (`i % 4 == 1`), with an ISO
    /// image inserted on every other of those.
    pub cdroms: usize,
    /// The NIC whose address the hypervisor only learned (v3 `LEARNED`,
    /// v4 `ipv4Info.learnedIpAddresses`), if any.
    pub learned_nic: Option<usize>,
}

pub fn vm_facts(cfg: &EstateConfig, i: usize) -> VmFacts {
    let cluster = i % cfg.clusters.max(1);
    let powered_on = i % 5 != 4;
    let name = if i % 17 == 3 {
        format!("データベース-{i:04}")
    } else if i % 19 == 7 {
        format!("vm-ünïcødé-{i:04}")
    } else {
        format!("vm-{i:04}")
    };
    let disks_gib: Vec<u64> = (0..1 + i % 3).map(|d| 20 * (d as u64 + 1) + (i % 4) as u64 * 10).collect();
    let nics = 1 + usize::from(i.is_multiple_of(2));
    let ips = if i.is_multiple_of(7) {
        vec![]
    } else {
        (0..nics).map(|n| format!("10.{}.{}.{}", 10 + cluster, n + 1, 2 + i % 250)).collect()
    };
    let categories = match i % 3 {
        0 => vec![("Environment".to_string(), if i.is_multiple_of(2) { "Production" } else { "Dev" }.to_string())],
        1 => vec![("AppType".to_string(), "Web".to_string()), ("Owner".to_string(), format!("team-{}", i % 4))],
        _ => vec![],
    };
    let host = powered_on.then(|| cluster * cfg.hosts_per_cluster.max(1) + i % cfg.hosts_per_cluster.max(1));
    VmFacts {
        uuid: uuid("vm", i),
        name,
        cluster,
        powered_on,
        sockets: 1 + (i % 4) as u32,
        vcpus_per_socket: 1 + (i % 2) as u32,
        memory_mib: if i % 11 == 5 { 1536 } else { 1024 << (i % 5) },
        disks_gib,
        nics,
        ips,
        categories,
        host,
        cdroms: usize::from(i % 4 == 1),
        learned_nic: (nics == 2 && ips_len(i) == 2 && i % 3 == 1).then_some(1),
    }
}

/// How many addresses VM `i` has (its NICs', none for every seventh).
fn ips_len(i: usize) -> usize {
    if i.is_multiple_of(7) { 0 } else { 1 + usize::from(i.is_multiple_of(2)) }
}

pub(crate) fn host_name(cfg: &EstateConfig, h: usize) -> String {
    let per = cfg.hosts_per_cluster.max(1);
    format!("{}-node-{}", cluster_name(h / per), h % per + 1)
}

fn cluster_ref(c: usize) -> Value {
    json!({"kind": "cluster", "uuid": uuid("cluster", c), "name": cluster_name(c)})
}

pub(crate) fn subnet_index(cfg: &EstateConfig, cluster: usize, n: usize) -> usize {
    cluster * cfg.subnets_per_cluster.max(1) + n % cfg.subnets_per_cluster.max(1)
}

pub(crate) fn subnet_name(s: usize) -> String {
    format!("vlan-{}", 100 + s * 10)
}

pub(crate) fn timestamp(i: usize) -> String {
    format!("2024-{:02}-{:02}T{:02}:{:02}:00Z", 1 + i % 12, 1 + i % 28, i % 24, i % 60)
}

pub fn vm_entity(cfg: &EstateConfig, i: usize) -> Value {
    let f = vm_facts(cfg, i);
    let disks: Vec<Value> = f
        .disks_gib
        .iter()
        .enumerate()
        .map(|(d, gib)| {
            let mut disk = json!({
                "uuid": uuid(&format!("vm-{i}-disk"), d),
                "disk_size_bytes": gib * 1024 * 1024 * 1024,
                "disk_size_mib": gib * 1024,
                "device_properties": {"device_type": "DISK", "disk_address": {"adapter_type": "SCSI", "device_index": d}},
                "storage_config": {"storage_container_reference": {"kind": "storage_container", "uuid": uuid("container", f.cluster)}}
            });
            if d == 0 && cfg.images > 0 {
                disk["data_source_reference"] = json!({"kind": "image", "uuid": uuid("image", i % cfg.images)});
            }
            disk
        })
        .chain((0..f.cdroms).map(|d| {
            let mut cdrom = json!({
                "uuid": uuid(&format!("vm-{i}-cdrom"), d),
                "device_properties": {"device_type": "CDROM", "disk_address": {"adapter_type": "IDE", "device_index": d}}
            });
            if i % 8 == 1 && cfg.images > 0 {
                cdrom["data_source_reference"] = json!({"kind": "image", "uuid": uuid("image", 2 % cfg.images)});
                cdrom["disk_size_bytes"] = json!(734_003_200u64 * 3);
            }
            cdrom
        }))
        .collect();
    let nics: Vec<Value> = (0..f.nics)
        .map(|n| {
            let s = subnet_index(cfg, f.cluster, n);
            let mut nic = json!({
                "uuid": uuid(&format!("vm-{i}-nic"), n),
                "mac_address": format!("50:6b:8d:{:02x}:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff, n),
                "nic_type": "NORMAL_NIC",
                "is_connected": f.powered_on,
                "subnet_reference": {"kind": "subnet", "uuid": uuid("subnet", s), "name": subnet_name(s)},
                "ip_endpoint_list": f.ips.get(n).map(|ip| vec![json!({"ip": ip, "type": if f.learned_nic == Some(n) { "LEARNED" } else { "ASSIGNED" }})]).unwrap_or_default()
            });
            if f.ips.is_empty() {
                nic.as_object_mut().map(|o| o.remove("ip_endpoint_list"));
            }
            nic
        })
        .collect();
    let mut resources = json!({
        "num_sockets": f.sockets,
        "num_vcpus_per_socket": f.vcpus_per_socket,
        "num_threads_per_core": 1,
        "memory_size_mib": f.memory_mib,
        "power_state": if f.powered_on { "ON" } else { "OFF" },
        "hypervisor_type": "AHV",
        "machine_type": "PC",
        "disk_list": disks,
        "nic_list": nics,
        "boot_config": {"boot_type": if i.is_multiple_of(2) { "UEFI" } else { "LEGACY" }}
    });
    if let Some(h) = f.host {
        resources["host_reference"] = json!({"kind": "host", "uuid": uuid("host", h), "name": host_name(cfg, h)});
    }
    if i.is_multiple_of(4) {
        resources["guest_tools"] = json!({"nutanix_guest_tools": {"state": "ENABLED", "version": "4.0"}});
    }
    let mut status = json!({
        "name": f.name,
        "state": "COMPLETE",
        "cluster_reference": cluster_ref(f.cluster),
        "resources": resources
    });
    if i.is_multiple_of(6) {
        status["description"] = json!(format!("simulated workload {i}"));
    }
    let mut metadata = json!({
        "kind": "vm",
        "uuid": f.uuid,
        "spec_version": 1 + i % 5,
        "creation_time": timestamp(i),
        "last_update_time": timestamp(i + 7),
        "owner_reference": {"kind": "user", "uuid": uuid("user", 0), "name": "admin"}
    });
    if !f.categories.is_empty() {
        metadata["categories"] = Value::Object(f.categories.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
    }
    if i % 2 == 1 {
        metadata["project_reference"] = json!({"kind": "project", "uuid": uuid("project", 0), "name": "default"});
    }
    json!({"status": status, "spec": {"name": f.name}, "metadata": metadata})
}

/// A v4 storage container of cluster `c`: its default container, or the
/// internal `NutanixManagementShare`.
pub fn storage_container(c: usize, internal: bool) -> Value {
    let (id, name) = if internal {
        (uuid("container-mgmt", c), "NutanixManagementShare".to_string())
    } else {
        (uuid("container", c), format!("default-container-{c}"))
    };
    json!({
        "containerExtId": id,
        "name": name,
        "clusterExtId": uuid("cluster", c),
        "clusterName": cluster_name(c),
        "maxCapacityBytes": (4u64 + c as u64) << 40,
        "logicalExplicitReservedCapacityBytes": 0,
        "logicalAdvertisedCapacityBytes": if internal { Value::Null } else { json!(1u64 << 40) },
        "replicationFactor": 2,
        "isCompressionEnabled": !internal,
        "compressionDelaySecs": 0,
        "erasureCode": "OFF",
        "onDiskDedup": "NONE",
        "cacheDeduplication": "OFF",
        "isSoftwareEncryptionEnabled": c.is_multiple_of(2) && !internal,
        "isInternal": internal,
        "isMarkedForRemoval": false,
    })
}

/// Whether a v3 cluster is the Prism Central pseudo-cluster.
pub fn is_prism_central(c: &Value) -> bool {
    c.pointer("/status/resources/config/service_list").and_then(Value::as_array).is_some_and(|l| l.iter().any(|s| s == "PRISM_CENTRAL"))
}

pub fn prism_central_entity() -> Value {
    json!({
        "status": {"name": "prism-central", "state": "COMPLETE", "resources": {
            "config": {"service_list": ["PRISM_CENTRAL"], "build": {"version": "pc.2024.3"}},
            "nodes": {"hypervisor_server_list": [{"ip": "127.0.0.1", "type": "$UNKNOWN", "version": ""}]}
        }},
        "metadata": {"kind": "cluster", "uuid": uuid(PC_UUID_KIND, 0)}
    })
}

pub fn cluster_entity(cfg: &EstateConfig, c: usize) -> Value {
    let per = cfg.hosts_per_cluster.max(1);
    let servers: Vec<Value> = (0..per)
        .map(|j| json!({"ip": format!("10.{}.0.{}", 10 + c, 10 + j), "type": "AHV", "version": "20230302.100173"}))
        .collect();
    json!({
        "status": {"name": cluster_name(c), "state": "COMPLETE", "resources": {
            "config": {
                "service_list": ["AOS"],
                "build": {"version": format!("6.{}.1", 5 + c % 3), "full_version": format!("el8.5-release-fraser-6.{}.1-stable", 5 + c % 3)},
                "software_map": {"NOS": {"software_type": "NOS", "version": format!("6.{}.1", 5 + c % 3)}},
                "cluster_arch": "X86_64",
                "redundancy_factor": 2,
                "timezone": "UTC",
                "encryption_status": "NOT_SUPPORTED"
            },
            "nodes": {"hypervisor_server_list": servers},
            "network": {"external_ip": format!("10.{}.0.2", 10 + c), "name_server_ip_list": ["10.0.0.53"], "ntp_server_ip_list": ["0.pool.ntp.org"]}
        }},
        "metadata": {"kind": "cluster", "uuid": uuid("cluster", c), "creation_time": timestamp(c)}
    })
}

/// A host; `vms_here` is the number of powered-on VMs it runs.
pub fn host_entity(cfg: &EstateConfig, h: usize, vms_here: usize) -> Value {
    let per = cfg.hosts_per_cluster.max(1);
    let c = h / per;
    let j = h % per;
    json!({
        "status": {"name": host_name(cfg, h), "state": "COMPLETE", "cluster_reference": {"kind": "cluster", "uuid": uuid("cluster", c)}, "resources": {
            "serial_number": format!("SN-{c:02}{j:02}"),
            "host_type": "HYPER_CONVERGED",
            "cpu_model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
            "num_cpu_sockets": 2,
            "num_cpu_cores": 64,
            "cpu_capacity_hz": 128_000_000_000u64,
            "memory_capacity_mib": if j.is_multiple_of(2) { 1_048_576 } else { 786_432 },
            "hypervisor": {"ip": format!("10.{}.0.{}", 10 + c, 10 + j), "hypervisor_full_name": "AHV 20230302.100173", "num_vms": vms_here},
            "controller_vm": {"ip": format!("10.{}.0.{}", 10 + c, 50 + j)},
            "block": {"block_serial_number": format!("BLK-{c:02}"), "block_model": "NX-8155-G8"}
        }},
        "metadata": {"kind": "host", "uuid": uuid("host", h)}
    })
}

pub fn subnet_entity(cfg: &EstateConfig, s: usize) -> Value {
    let c = s / cfg.subnets_per_cluster.max(1);
    let mut resources = json!({"vlan_id": 100 + s * 10, "subnet_type": "VLAN", "vswitch_name": "br0"});
    // Every other subnet is unmanaged (no IPAM): no ip_config at all.
    if s.is_multiple_of(2) {
        resources["ip_config"] = json!({
            "subnet_ip": format!("10.{}.{}.0", 10 + c, s % 250 + 1),
            "prefix_length": 24,
            "default_gateway_ip": format!("10.{}.{}.1", 10 + c, s % 250 + 1),
            "pool_list": [{"range": format!("10.{0}.{1}.100 10.{0}.{1}.200", 10 + c, s % 250 + 1)}]
        });
    }
    json!({
        "status": {"name": subnet_name(s), "state": "COMPLETE", "cluster_reference": cluster_ref(c), "resources": resources},
        "metadata": {"kind": "subnet", "uuid": uuid("subnet", s), "categories": {}}
    })
}

pub fn image_entity(cfg: &EstateConfig, k: usize) -> Value {
    const NAMES: &[(&str, &str)] = &[
        ("ubuntu-22.04-server.qcow2", "DISK_IMAGE"),
        ("rhel-9.3.qcow2", "DISK_IMAGE"),
        ("windows-server-2022.iso", "ISO_IMAGE"),
        ("virtio-win-0.1.240.iso", "ISO_IMAGE"),
        ("rocky-9.qcow2", "DISK_IMAGE"),
        ("debian-12.qcow2", "DISK_IMAGE"),
        ("nutanix-guest-tools.iso", "ISO_IMAGE"),
        ("photon-5.ova", "DISK_IMAGE"),
    ];
    let (name, ty) = NAMES[k % NAMES.len()];
    let name = if k < NAMES.len() { name.to_string() } else { format!("{k}-{name}") };
    let mut resources = json!({
        "image_type": ty,
        "size_bytes": (k as u64 + 1) * 734_003_200,
        "architecture": "X86_64",
        "source_uri": format!("https://images.example.com/{name}")
    });
    if k % 3 != 2 && cfg.clusters > 0 {
        resources["current_cluster_reference_list"] = json!([{"kind": "cluster", "uuid": uuid("cluster", k % cfg.clusters)}]);
    }
    let mut status = json!({"name": name, "state": "COMPLETE", "resources": resources});
    if k.is_multiple_of(2) {
        status["description"] = json!(format!("{name} uploaded by the platform team"));
    }
    json!({"status": status, "metadata": {"kind": "image", "uuid": uuid("image", k), "creation_time": timestamp(k)}})
}

/// Volume group `g`: on cluster `g % clusters`, 1-3 disks, the even ones
/// shared and attached to two VMs, every third attached to an iSCSI client.
pub fn volume_group_entity(cfg: &EstateConfig, g: usize) -> Value {
    let cluster = g % cfg.clusters.max(1);
    let disks: Vec<Value> = (0..1 + g % 3)
        .map(|d| json!({"index": d, "disk_size_mib": 10_240 * (d + 1) as u64, "storage_container_uuid": uuid("container", cluster)}))
        .collect();
    let mut attachments = Vec::new();
    if g.is_multiple_of(2) && cfg.vms > 0 {
        for v in [g % cfg.vms, (g + 1) % cfg.vms] {
            let f = vm_facts(cfg, v);
            attachments.push(json!({"vm_reference": {"kind": "vm", "uuid": f.uuid, "name": f.name}}));
        }
    }
    if g.is_multiple_of(3) {
        attachments.push(json!({"iscsi_initiator_name": format!("iqn.1991-05.com.microsoft:client-{g}")}));
    }
    let name = format!("vg-{g:03}");
    json!({
        "metadata": {"kind": "volume_group", "uuid": uuid("volume_group", g), "creation_time": timestamp(g),
                     "categories": if g.is_multiple_of(2) { json!({"Environment": "Production"}) } else { json!({}) }},
        "status": {
            "name": name,
            "description": format!("{name} for application data"),
            "cluster_reference": {"kind": "cluster", "uuid": uuid("cluster", cluster)},
            "resources": {
                "sharing_status": if g.is_multiple_of(2) { "SHARED" } else { "NOT_SHARED" },
                "flash_mode": "DISABLED",
                "iscsi_target_prefix": format!("iqn.2010-06.com.nutanix:{name}"),
                "disk_list": disks,
                "attachment_list": attachments,
            }
        }
    })
}

/// Project `p`: `default` first; p + 1 users, the subnets and clusters it
/// may use, a vCPU quota.
pub fn project_entity(cfg: &EstateConfig, p: usize) -> Value {
    let name = if p == 0 { "default".to_string() } else { format!("project-{p}") };
    let clusters: Vec<Value> = (0..cfg.clusters).filter(|c| p == 0 || c % cfg.projects.max(1) == p % cfg.projects.max(1) || *c == 0)
        .map(|c| json!({"kind": "cluster", "uuid": uuid("cluster", c)}))
        .collect();
    let subnets: Vec<Value> = (0..(cfg.clusters * cfg.subnets_per_cluster).min(p + 1))
        .map(|s| json!({"kind": "subnet", "uuid": uuid("subnet", s)}))
        .collect();
    let users: Vec<Value> = (0..=p).map(|u| json!({"kind": "user", "uuid": uuid("user", p * 10 + u), "name": format!("user-{p}-{u}")})).collect();
    json!({
        "metadata": {"kind": "project", "uuid": uuid("project", p), "creation_time": timestamp(p)},
        "status": {"name": name, "description": format!("{name} project"), "state": "COMPLETE", "resources": {
            "is_default": p == 0,
            "cluster_reference_list": clusters,
            "subnet_reference_list": subnets,
            "user_reference_list": users,
            "resource_domain": {"resources": [{"resource_type": "VCPUS", "limit": 64 * (p as u64 + 1), "value": 4 * p as u64}]},
        }}
    })
}

/// All entities of a kind (`vms`, `clusters`, ...), in list order. The
/// lists whose length grows with the VMs' (VMs, their alerts and recovery
/// points) are [`LazyList`]s: rendered on demand from the VM's index, with
/// the changes since held apart.
pub struct Estate {
    pub config: EstateConfig,
    pub vms: LazyList,
    pub clusters: Vec<Value>,
    pub hosts: Vec<Value>,
    pub subnets: Vec<Value>,
    pub images: Vec<Value>,
    pub volume_groups: Vec<Value>,
    pub projects: Vec<Value>,
    /// Category keys (v3 `categories/list`), from the VMs' categories.
    pub category_keys: Vec<Value>,
    /// v4 only (clustermgmt), already in the v4 shape: per cluster its
    /// default container (the one VM and volume group disks live on) and
    /// the internal management share.
    pub storage_containers: Vec<Value>,
    /// Data protection ([`crate::dataprotection`]), v3 shapes.
    pub protection_rules: Vec<Value>,
    pub vm_recovery_points: LazyList,
    pub recovery_plans: Vec<Value>,
    /// When the estate was generated (seconds since the epoch): recovery
    /// points are aged from it.
    pub now: i64,
    /// Networking and security, in the v4 shape (see [`crate::network`]).
    pub network: crate::network::Network,
    /// Compute extras and operations ([`crate::operations`]), v4 shapes
    /// only (no v3 list).
    pub vm_templates: Vec<Value>,
    pub alerts: LazyList,
    pub lcm_entities: Vec<Value>,
}

impl Estate {
    pub fn generate(config: EstateConfig) -> Estate {
        let cfg = &config;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut clusters = vec![prism_central_entity()];
        clusters.extend((0..cfg.clusters).map(|c| cluster_entity(cfg, c)));
        let n_hosts = cfg.clusters * cfg.hosts_per_cluster;
        let mut per_host = vec![0usize; n_hosts];
        let mut categories = CategoryCounts::new();
        for i in 0..cfg.vms {
            let f = vm_facts(cfg, i);
            if let Some(h) = f.host.filter(|h| *h < n_hosts) {
                per_host[h] += 1;
            }
            for pair in f.categories {
                *categories.entry(pair).or_default() += 1;
            }
        }
        let (vm_cfg, write_cfg) = (config.clone(), config.clone());
        let mut estate = Estate {
            vms: LazyList::new(cfg.vms, "vm", Arc::new(move |i| vm_entity(&vm_cfg, i)), categories)
                .with_writer(Arc::new(move |i, out| crate::render::vm_v3(&write_cfg, i, out))),
            hosts: (0..n_hosts).map(|h| host_entity(cfg, h, per_host[h])).collect(),
            subnets: (0..cfg.clusters * cfg.subnets_per_cluster).map(|s| subnet_entity(cfg, s)).collect(),
            images: (0..cfg.images).map(|k| image_entity(cfg, k)).collect(),
            volume_groups: (0..cfg.clusters * cfg.volume_groups_per_cluster).map(|g| volume_group_entity(cfg, g)).collect(),
            projects: (0..cfg.projects).map(|p| project_entity(cfg, p)).collect(),
            category_keys: Vec::new(),
            storage_containers: (0..cfg.clusters).flat_map(|c| [storage_container(c, false), storage_container(c, true)]).collect(),
            protection_rules: crate::dataprotection::protection_rules(now),
            vm_recovery_points: crate::dataprotection::vm_recovery_points(cfg, now),
            recovery_plans: crate::dataprotection::recovery_plans(cfg, now),
            now,
            network: crate::network::Network::generate(cfg, crate::network::default_size(cfg)),
            clusters,
            config,
            vm_templates: Vec::new(),
            alerts: LazyList::new(0, "alert", Arc::new(|_| Value::Null), CategoryCounts::new()),
            lcm_entities: Vec::new(),
        };
        if estate.config.gpus {
            crate::operations::attach_gpus(&mut estate);
        }
        estate.vm_templates = crate::operations::vm_templates(&estate.config, &estate.vms, now);
        estate.alerts = crate::operations::alerts(&estate.config, &estate.hosts, &estate.clusters[0], now);
        estate.lcm_entities = crate::operations::lcm_entities(&estate.config, &estate.hosts);
        let keys: std::collections::BTreeSet<String> = estate.category_pairs().into_iter().map(|(k, _)| k).collect();
        estate.category_keys = keys.into_iter().map(|k| json!({"name": k, "description": format!("{k} of the workload"), "system_defined": false})).collect();
        estate
    }

    /// Every category key/value pair the VMs use, in order.
    pub fn category_pairs(&self) -> Vec<(String, String)> {
        self.vms.category_pairs()
    }

    /// The v3 value entities of one category key.
    pub fn category_values(&self, key: &str) -> Vec<Value> {
        self.category_pairs()
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(k, v)| json!({"name": k, "value": v, "description": format!("{k} {v}"), "system_defined": false}))
            .collect()
    }

    pub fn list(&self, kind: &str) -> Option<Entities<'_>> {
        let stored: &[Value] = match kind {
            "vms" => return Some(Entities::Lazy(&self.vms)),
            "vm_recovery_points" => return Some(Entities::Lazy(&self.vm_recovery_points)),
            "alerts" => return Some(Entities::Lazy(&self.alerts)),
            "clusters" => &self.clusters,
            "hosts" => &self.hosts,
            "subnets" => &self.subnets,
            "images" => &self.images,
            "volume_groups" => &self.volume_groups,
            "projects" => &self.projects,
            "categories" => &self.category_keys,
            "storage_containers" => &self.storage_containers,
            "protection_rules" => &self.protection_rules,
            "recovery_plans" => &self.recovery_plans,
            "vm_templates" => &self.vm_templates,
            "lcm_entities" => &self.lcm_entities,
            _ => self.network.list(kind)?,
        };
        Some(Entities::Stored(stored))
    }

    /// The Prism Central instance's uuid (the collector's `account`).
    pub fn prism_central_uuid(&self) -> String {
        uuid(PC_UUID_KIND, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_unique_and_stable() {
        let a: std::collections::HashSet<String> = (0..5000).map(|i| uuid("vm", i)).collect();
        assert_eq!(a.len(), 5000);
        assert_eq!(uuid("vm", 7), uuid("vm", 7));
        assert_ne!(uuid("vm", 7), uuid("host", 7));
    }

    #[test]
    fn gpus_only_with_the_knob_and_on_their_vms_hosts() {
        let plain = Estate::generate(EstateConfig::default());
        let gpu_lists = |e: &Estate| e.hosts.iter().cloned().chain(e.vms.iter()).filter(|x| x.pointer("/status/resources/gpu_list").is_some()).count();
        assert_eq!(gpu_lists(&plain), 0, "the default estate has no GPUs");
        let e = Estate::generate(EstateConfig { gpus: true, ..EstateConfig::default() });
        assert_eq!(e.hosts.iter().filter(|h| h.pointer("/status/resources/gpu_list").is_some()).count(), e.hosts.len() / 2);
        for vm in e.vms.iter().filter(|v| v.pointer("/status/resources/gpu_list").is_some()) {
            let host = vm.pointer("/status/resources/host_reference/uuid").unwrap();
            let h = e.hosts.iter().find(|h| h.pointer("/metadata/uuid") == Some(host)).unwrap();
            let users: Vec<&Value> = h["status"]["resources"]["gpu_list"].as_array().unwrap().iter().map(|g| &g["consumer_reference"]["uuid"]).collect();
            assert!(users.contains(&&vm["metadata"]["uuid"]), "its host lists it as a consumer");
        }
    }

    #[test]
    fn estate_has_the_promised_variety() {
        let e = Estate::generate(EstateConfig::default());
        assert_eq!(e.vms.len(), 200);
        assert_eq!(e.clusters.len(), 4);
        let off = e.vms.iter().filter(|v| v["status"]["resources"]["power_state"] == "OFF").count();
        assert!(off > 0);
        assert!(e.vms.iter().filter(|v| v["status"]["resources"]["power_state"] == "OFF").all(|v| v["status"]["resources"]["host_reference"].is_null()));
        assert!(e.vms.iter().any(|v| v["status"]["resources"]["disk_list"].as_array().unwrap().len() == 3));
        assert!(e.vms.iter().any(|v| v["status"]["resources"]["nic_list"].as_array().unwrap().len() == 2));
        assert!(e.vms.iter().any(|v| !v["status"]["name"].as_str().unwrap().is_ascii()));
        assert!(e.vms.iter().any(|v| v["metadata"]["categories"].is_null()));
        assert!(e.subnets.iter().any(|s| s["status"]["resources"]["ip_config"].is_null()));
        let hosted: usize = e.hosts.iter().map(|h| h["status"]["resources"]["hypervisor"]["num_vms"].as_u64().unwrap() as usize).sum();
        assert_eq!(hosted, e.vms.len() - off);
    }

    /// The VM list as it was held before it was rendered on demand: every
    /// VM's tree, with the same changes applied to a plain vector.
    #[test]
    fn lazy_vms_equal_the_eager_rendering_after_changes() {
        let cfg = EstateConfig { vms: 97, gpus: true, ..EstateConfig::default() };
        let state = crate::SimState::new(crate::SimConfig { estate: cfg.clone(), ..crate::SimConfig::default() });
        let mut eager: Vec<Value> = (0..cfg.vms).map(|i| vm_entity(&cfg, i)).collect();
        let with_gpus: Vec<Value> = state.estate().vms.iter().collect();
        // The GPUs are the only generation-time edits: apply them by hand.
        let mut gpu_users = 0;
        for (e, l) in eager.iter_mut().zip(&with_gpus) {
            if let Some(g) = l.pointer("/status/resources/gpu_list") {
                e["status"]["resources"]["gpu_list"] = g.clone();
                gpu_users += 1;
            }
        }
        assert!(gpu_users > 0, "some VMs use GPUs");
        assert_eq!(with_gpus, eager);
        let id = |i: usize| uuid("vm", i);
        assert!(state.update_vm(&id(10), "renamed", "2026-01-01T00:00:00Z"));
        let e10 = eager.iter_mut().find(|v| v["metadata"]["uuid"] == id(10)).unwrap();
        e10["status"]["name"] = json!("renamed");
        e10["spec"]["name"] = json!("renamed");
        e10["metadata"]["last_update_time"] = json!("2026-01-01T00:00:00Z");
        for i in [0, 11, 50, 96] {
            assert!(state.remove_vm(&id(i)));
            eager.retain(|v| v["metadata"]["uuid"] != id(i));
        }
        assert!(!state.remove_vm(&id(11)), "gone already");
        assert!(!state.update_vm(&id(11), "x", "2026-01-01T00:00:00Z"));
        let added = state.add_vm("2026-02-01T00:00:00Z");
        let mut new = vm_entity(&cfg, cfg.vms);
        new["metadata"]["creation_time"] = json!("2026-02-01T00:00:00Z");
        new["metadata"]["last_update_time"] = json!("2026-02-01T00:00:00Z");
        assert_eq!(new["metadata"]["uuid"], added);
        eager.push(new);
        assert!(state.update_vm(&added, "renamed-new", "2026-03-01T00:00:00Z"), "an added VM is found too");
        let last = eager.last_mut().unwrap();
        last["status"]["name"] = json!("renamed-new");
        last["spec"]["name"] = json!("renamed-new");
        last["metadata"]["last_update_time"] = json!("2026-03-01T00:00:00Z");
        let e = state.estate();
        assert_eq!(e.vms.iter().collect::<Vec<_>>(), eager);
        assert_eq!(e.vms.len(), eager.len());
        // Pages written as text (a base VM by its writer, an edited or added
        // one as held) are the eager trees' bytes, for any page bounds.
        let texts: Vec<Vec<u8>> = eager.iter().map(|v| serde_json::to_vec(v).unwrap()).collect();
        for (start, end) in [(0, eager.len()), (0, 1), (5, 17), (9, 10), (eager.len() - 3, eager.len() + 50), (eager.len(), eager.len() + 1)] {
            let mut out = Vec::new();
            let n = Entities::Lazy(&e.vms).write_range(start, end, &mut out);
            let want = texts.get(start..end.min(texts.len())).unwrap_or_default();
            assert_eq!(n, want.len());
            assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(want.join(&b","[..])).unwrap(), "page {start}..{end}");
        }
        for (p, v) in eager.iter().enumerate() {
            assert_eq!(e.vms.position(v["metadata"]["uuid"].as_str().unwrap()), Some(p));
        }
        // The category pairs, counted as the list changes, are the ones the
        // VMs carry.
        let mut pairs = std::collections::BTreeSet::new();
        for v in &eager {
            for (k, val) in v["metadata"]["categories"].as_object().into_iter().flatten() {
                pairs.insert((k.clone(), val.as_str().unwrap().to_string()));
            }
        }
        assert_eq!(e.category_pairs(), pairs.into_iter().collect::<Vec<_>>());
        assert!(e.vms.overlay_len() < 20, "only the changed VMs are held: {}", e.vms.overlay_len());
    }

    /// Recovery points, rendered from their index, are what a walk over
    /// every VM makes (across several of the periods they repeat in).
    #[test]
    fn lazy_recovery_points_equal_a_walk_over_the_vms() {
        let cfg = EstateConfig { vms: 1_000, ..EstateConfig::default() };
        let e = Estate::generate(cfg.clone());
        let mut k = 0;
        for i in 0..cfg.vms {
            let f = vm_facts(&cfg, i);
            let n = if f.categories.is_empty() || i % 5 == 0 { 0 } else { 1 + usize::from(i % 2 == 0) + usize::from(i % 7 == 1) };
            for _ in 0..n {
                let p = e.vm_recovery_points.get(k).unwrap();
                assert_eq!(p["status"]["resources"]["parent_vm_reference"]["uuid"], f.uuid, "point {k}");
                assert_eq!(p["status"]["resources"]["consistency_group_uuid"], uuid("consistency_group", i));
                assert_eq!(p["metadata"]["uuid"], uuid("vm_recovery_point", k));
                k += 1;
            }
        }
        assert_eq!(e.vm_recovery_points.len(), k);
        let alerts = e.alerts.len();
        assert_eq!(alerts, cfg.vms / 2 + e.hosts.len() + 1);
        assert_eq!(e.alerts.get(1).unwrap()["sourceEntity"]["extId"], uuid("vm", 2));
        assert_eq!(e.alerts.get(alerts - 1).unwrap()["sourceEntity"]["type"], "prism_central");
    }

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
    }

    /// A million VMs hold no VM (nor alert, nor recovery point) in memory:
    /// the estate costs a few MiB where its trees took about 21 GB.
    #[test]
    fn a_million_vms_generate_without_their_trees() {
        let before = rss_kib();
        let started = std::time::Instant::now();
        let config = EstateConfig { vms: 1_000_000, ..EstateConfig::default() };
        let state = crate::SimState::new(crate::SimConfig { estate: config, ..crate::SimConfig::default() });
        let grown_mib = rss_kib().saturating_sub(before) / 1024;
        {
            let e = state.estate();
            assert_eq!(e.vms.len(), 1_000_000);
            assert!(e.vm_recovery_points.len() > 500_000 && e.alerts.len() > 500_000);
            assert_eq!(e.vms.get(999_999).unwrap()["metadata"]["uuid"], uuid("vm", 999_999));
        }
        assert!(grown_mib < 64, "the estate took {grown_mib} MiB");
        // 1 % of them renamed, as the product-path benchmark does: held as
        // JSON text, a few KB each.
        let before_edits = rss_kib();
        for i in 0..10_000 {
            assert!(state.update_vm(&uuid("vm", i), &format!("renamed-{i}"), "2026-12-06T00:00:00Z"));
        }
        let edits_mib = rss_kib().saturating_sub(before_edits) / 1024;
        assert!(edits_mib < 80, "10,000 renamed VMs took {edits_mib} MiB");
        assert_eq!(state.estate().vms.get(9_999).unwrap()["status"]["name"], "renamed-9999");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "generated in {:?}", started.elapsed());
    }
}
