"""Nutanix's own v4 models (the official Python SDKs from PyPI, versions in
requirements.txt) as the schema of the v4 bodies guest-nutanix reads.

Run by guest-nutanix/tests/sdk_schema.rs in a venv it creates:

    v4_sdk.py generate OUTDIR
        List pages built from the SDK's model classes and serialized to the
        wire format by the SDK's own ApiClient (camelCase keys, $objectType,
        $reserved, $unknownFields), one file per list (`vms.json`, ...),
        error bodies (`errors.json`) and `facts.json`: what each generated
        entity is, in plain terms, for the Rust side to compare the guest's
        records with.

    v4_sdk.py check-bodies DIR
        Every key of every `<list>.json` in DIR (bodies rendered by the
        simulator) must exist in the SDK's model of that list, and of every
        `error-<list>.json` (an error answer to that list) in the list
        response's model (its `data` an ErrorResponse): prints each unknown
        key's path and exits 1 if there is any.

    v4_sdk.py check-paths FILE
        FILE holds {"model": [wire paths]} (the v4 fields the guest reads,
        `*` for a list's items); every path must resolve through the SDK's
        model: prints each that does not and exits 1 if there is any.
"""

import datetime
import importlib
import importlib.metadata
import json
import os
import sys

import ntnx_clustermgmt_py_client as clustermgmt
import ntnx_datapolicies_py_client as datapolicies
import ntnx_dataprotection_py_client as dataprotection
import ntnx_microseg_py_client as microseg
import ntnx_lifecycle_py_client as lifecycle
import ntnx_monitoring_py_client as monitoring
import ntnx_networking_py_client as networking
import ntnx_prism_py_client as prism
import ntnx_vmm_py_client as vmm

# The SDK package of each model namespace.
PACKAGES = {
    "vmm": "ntnx_vmm_py_client",
    "clustermgmt": "ntnx_clustermgmt_py_client",
    "networking": "ntnx_networking_py_client",
    "prism": "ntnx_prism_py_client",
    "volumes": "ntnx_volumes_py_client",
    "dataprotection": "ntnx_dataprotection_py_client",
    "datapolicies": "ntnx_datapolicies_py_client",
    "microseg": "ntnx_microseg_py_client",
    "monitoring": "ntnx_monitoring_py_client",
    "lifecycle": "ntnx_lifecycle_py_client",
}

# List → (response model, item model), as the v4.0 list endpoints answer.
LISTS = {
    "vms": ("vmm.v4.ahv.config.ListVmsApiResponse", "vmm.v4.ahv.config.Vm"),
    "clusters": ("clustermgmt.v4.config.ListClustersApiResponse", "clustermgmt.v4.config.Cluster"),
    "hosts": ("clustermgmt.v4.config.ListHostsApiResponse", "clustermgmt.v4.config.Host"),
    "storage_containers": ("clustermgmt.v4.config.ListStorageContainersApiResponse", "clustermgmt.v4.config.StorageContainer"),
    "subnets": ("networking.v4.config.ListSubnetsApiResponse", "networking.v4.config.Subnet"),
    "images": ("vmm.v4.content.ListImagesApiResponse", "vmm.v4.content.Image"),
    "categories": ("prism.v4.config.ListCategoriesApiResponse", "prism.v4.config.Category"),
    "volume_groups": ("volumes.v4.config.ListVolumeGroupsApiResponse", "volumes.v4.config.VolumeGroup"),
    "iscsi_clients": ("volumes.v4.config.ListIscsiClientsApiResponse", "volumes.v4.config.IscsiClient"),
    "protection_rules": ("datapolicies.v4.config.ListProtectionPoliciesApiResponse", "datapolicies.v4.config.ProtectionPolicy"),
    "vm_recovery_points": ("dataprotection.v4.config.ListRecoveryPointsApiResponse", "dataprotection.v4.config.RecoveryPoint"),
    "vm_templates": ("vmm.v4.content.ListTemplatesApiResponse", "vmm.v4.content.Template"),
    # A template's versions (`content/templates/{extId}/versions`).
    "vm_template_versions": ("vmm.v4.content.ListTemplateVersionsApiResponse", "vmm.v4.content.TemplateVersionSpec"),
    "alerts": ("monitoring.v4.serviceability.ListAlertsApiResponse", "monitoring.v4.serviceability.Alert"),
    "lcm_entities": ("lifecycle.v4.resources.ListEntitiesApiResponse", "lifecycle.v4.resources.Entity"),
    # A volume group's parts.
    "volume_group_disks": ("volumes.v4.config.ListVolumeDisksApiResponse", "volumes.v4.config.VolumeDisk"),
    "vm_attachments": ("volumes.v4.config.ListVmAttachmentsApiResponse", "volumes.v4.config.VmAttachment"),
    "external_iscsi_attachments": ("volumes.v4.config.ListExternalIscsiAttachmentsApiResponse", "volumes.v4.config.IscsiClientAttachment"),
    # Networking and security (the guest's `network` kinds), by the
    # simulator's list names (`network_security_rules`: the policies).
    "vpcs": ("networking.v4.config.ListVpcsApiResponse", "networking.v4.config.Vpc"),
    "floating_ips": ("networking.v4.config.ListFloatingIpsApiResponse", "networking.v4.config.FloatingIp"),
    "route_tables": ("networking.v4.config.ListRouteTablesApiResponse", "networking.v4.config.RouteTable"),
    "virtual_switches": ("networking.v4.config.ListVirtualSwitchesApiResponse", "networking.v4.config.VirtualSwitch"),
    "network_security_rules": ("microseg.v4.config.ListNetworkSecurityPoliciesApiResponse", "microseg.v4.config.NetworkSecurityPolicy"),
    "address_groups": ("microseg.v4.config.ListAddressGroupsApiResponse", "microseg.v4.config.AddressGroup"),
    "service_groups": ("microseg.v4.config.ListServiceGroupsApiResponse", "microseg.v4.config.ServiceGroup"),
}

PRIMITIVES = {"str", "int", "float", "bool", "datetime", "date", "object"}


def model(name, package=None):
    """The model class of a swagger type name such as `vmm.v4.ahv.config.Vm`
    (common.* types from the package of the model that names them)."""
    parts = name.split(".")
    pkg = PACKAGES.get(parts[0]) or package
    if name.startswith("OneOf"):
        inner = name[len("OneOf"):]
        parts = inner.split(".")
        module = importlib.import_module(f"{PACKAGES[parts[0]] if parts[0] in PACKAGES else package}.models.OneOf{'.'.join(parts)}")
        return getattr(module, parts[-1])
    module = importlib.import_module(f"{pkg}.models.{name}")
    return getattr(module, parts[-1])


def package_of(cls):
    return cls.__module__.split(".")[0]


def is_enum(cls):
    types = getattr(cls, "swagger_types", {})
    return not any(not k.startswith("_") for k in types) and not hasattr(cls, "discriminator_value_class_map")


def walk(type_name, value, path, package, unknown):
    """Checks `value` against `type_name`, adding the paths of keys the model
    does not have to `unknown`."""
    if value is None or type_name in PRIMITIVES or type_name.startswith("dict("):
        return
    if type_name.startswith("list["):
        inner = type_name[5:-1]
        for i, item in enumerate(value if isinstance(value, list) else []):
            walk(inner, item, f"{path}/{i}", package, unknown)
        return
    cls = model(type_name, package)
    if hasattr(cls, "discriminator_value_class_map"):
        candidates = [t for t in cls.discriminator_value_class_map.values() if not t.startswith(("list[", "dict("))]
        lists = [t for t in cls.discriminator_value_class_map.values() if t.startswith("list[")]
        if isinstance(value, list):
            best = None
            for t in lists:
                found = []
                walk(t, value, path, package_of(cls), found)
                if best is None or len(found) < len(best):
                    best = found
            unknown.extend([f"{path} (a list where {type_name} allows none)"] if best is None else best)
            return
        wanted = value.get("$objectType") if isinstance(value, dict) else None
        if wanted in cls.discriminator_value_class_map:
            candidates = [cls.discriminator_value_class_map[wanted]]
        best = None
        for t in candidates:
            found = []
            walk(t, value, path, package_of(cls), found)
            if best is None or len(found) < len(best):
                best = found
        unknown.extend(best or [])
        return
    if is_enum(cls):
        if not isinstance(value, str):
            unknown.append(f"{path} (an enum, not {type(value).__name__})")
        return
    if not isinstance(value, dict):
        unknown.append(f"{path} ({type_name} is an object)")
        return
    by_wire = {wire: attr for attr, wire in cls.attribute_map.items()}
    for key, item in value.items():
        if key.endswith("ItemDiscriminator") and key.startswith("$"):
            continue
        attr = by_wire.get(key)
        if attr is None:
            unknown.append(f"{path}/{key}")
            continue
        walk(cls.swagger_types[attr], item, f"{path}/{key}", package_of(cls), unknown)


def resolves(type_name, segments, package):
    """Whether the wire path `segments` exists in `type_name`."""
    if not segments:
        return True
    if type_name in PRIMITIVES or type_name.startswith("dict("):
        return False
    if type_name.startswith("list["):
        return segments[0] == "*" and resolves(type_name[5:-1], segments[1:], package)
    cls = model(type_name, package)
    if hasattr(cls, "discriminator_value_class_map"):
        return any(resolves(t, segments, package_of(cls)) for t in cls.discriminator_value_class_map.values())
    by_wire = {wire: attr for attr, wire in cls.attribute_map.items()}
    attr = by_wire.get(segments[0])
    return attr is not None and resolves(cls.swagger_types[attr], segments[1:], package_of(cls))


def check_bodies(directory):
    problems = []
    for name in sorted(os.listdir(directory)):
        list_name = name[:-len(".json")]
        if list_name.startswith("error-") and list_name[len("error-"):] in LISTS:
            with open(os.path.join(directory, name)) as f:
                body = json.load(f)
            found = []
            walk(LISTS[list_name[len("error-"):]][0], body, list_name, None, found)
            if not isinstance(body.get("data"), dict) or "error" not in body["data"]:
                found.append(f"{list_name}/data (not an ErrorResponse)")
            problems.extend(found)
            print(f"{list_name}: error body checked")
            continue
        if not name.endswith(".json") or list_name not in LISTS:
            continue
        with open(os.path.join(directory, name)) as f:
            body = json.load(f)
        response, item = LISTS[list_name]
        found = []
        envelope = {k: v for k, v in body.items() if k != "data"}
        walk(response, envelope, list_name, None, found)
        for i, entity in enumerate(body.get("data") or []):
            walk(item, entity, f"{list_name}/data/{i}", None, found)
        problems.extend(found)
        print(f"{list_name}: {len(body.get('data') or [])} items checked against {item}")
    for p in problems:
        print(f"not in the SDK model: {p}")
    return 1 if problems else 0


def check_paths(file):
    with open(file) as f:
        wanted = json.load(f)
    missing = []
    for type_name, paths in wanted.items():
        for p in paths:
            if not resolves(type_name, p.split("/"), None):
                missing.append(f"{type_name}: {p}")
    print(f"{sum(len(p) for p in wanted.values())} paths checked")
    for m in missing:
        print(f"not in the SDK model: {m}")
    return 1 if missing else 0


# ---- generation ---------------------------------------------------------------

def wire(client, obj):
    """The SDK's own serialization of a model to its wire JSON."""
    return client._ApiClient__sanitize_for_serialization(obj)


def cls(name):
    return model(name)


def ts(day):
    return datetime.datetime(2024, 5, day, 8, 30, tzinfo=datetime.timezone.utc)


def ipv4(module_pkg, value, prefix=None):
    m = importlib.import_module(f"{module_pkg}.models.common.v1.config.IPv4Address")
    return m.IPv4Address(value=value, prefix_length=prefix) if prefix else m.IPv4Address(value=value)


def ip_address(module_pkg, value):
    m = importlib.import_module(f"{module_pkg}.models.common.v1.config.IPAddress")
    return m.IPAddress(ipv4=ipv4(module_pkg, value))


def metadata(module_pkg, total):
    m = importlib.import_module(f"{module_pkg}.models.common.v1.response.ApiResponseMetadata")
    return m.ApiResponseMetadata(total_available_results=total)


CLUSTER_PC = "0005f0e1-0000-4000-8000-00000000a0c1"
CLUSTER_PE = "0005f0e1-0000-4000-8000-00000000c1c1"
HOST_1 = "a1b2c3d4-0000-4000-8000-0000000000h1".replace("h", "e")
SUBNET_A = "5b0e0000-0000-4000-8000-00000000000a"
SUBNET_B = "5b0e0000-0000-4000-8000-00000000000b"
IMAGE_1 = "1a6e0000-0000-4000-8000-000000000001"
CONTAINER_1 = "c0a70000-0000-4000-8000-000000000001"
CATEGORY_ENV = "ca7e0000-0000-4000-8000-000000000001"
CATEGORY_APP = "ca7e0000-0000-4000-8000-000000000002"


def vms(client):
    V = "vmm.v4.ahv.config."
    ref = lambda name, ext: cls(V + name)(ext_id=ext)
    disk = lambda ext, bus, index, size, image=None: cls(V + "Disk")(
        ext_id=ext,
        disk_address=cls(V + "DiskAddress")(bus_type=bus, index=index),
        backing_info=cls(V + "VmDisk")(
            disk_size_bytes=size,
            storage_container=cls(V + "VmDiskContainerReference")(ext_id=CONTAINER_1),
            data_source=cls(V + "DataSource")(reference=cls(V + "ImageReference")(image_ext_id=image)) if image else None,
        ),
    )
    nic = lambda ext, mac, subnet, assigned=None, learned=(): cls(V + "Nic")(
        ext_id=ext,
        backing_info=cls(V + "EmulatedNic")(mac_address=mac, is_connected=True, model="VIRTIO"),
        network_info=cls(V + "NicNetworkInfo")(
            nic_type="NORMAL_NIC",
            subnet=ref("SubnetReference", subnet),
            ipv4_config=cls(V + "Ipv4Config")(should_assign_ip=True, ip_address=ipv4("ntnx_vmm_py_client", assigned)) if assigned else None,
            ipv4_info=cls(V + "Ipv4Info")(learned_ip_addresses=[ipv4("ntnx_vmm_py_client", ip) for ip in learned]) if learned else None,
        ),
    )
    full = cls(V + "Vm")(
        ext_id="0a1b0000-0000-4000-8000-000000000001",
        name="db-01",
        description="every optional field",
        create_time=ts(1),
        update_time=ts(2),
        num_sockets=2,
        num_cores_per_socket=4,
        num_threads_per_core=2,
        memory_size_bytes=16 << 30,
        power_state="ON",
        machine_type="Q35",
        cluster=ref("ClusterReference", CLUSTER_PE),
        host=ref("HostReference", HOST_1),
        categories=[ref("CategoryReference", CATEGORY_ENV), ref("CategoryReference", CATEGORY_APP)],
        boot_config=cls(V + "UefiBoot")(),
        guest_tools=cls(V + "GuestTools")(is_enabled=True, is_installed=True, version="4.1"),
        vtpm_config=cls(V + "VtpmConfig")(is_vtpm_enabled=True, version="2.0"),
        disks=[disk("d15c0000-0000-4000-8000-000000000001", "SCSI", 0, 40 << 30, IMAGE_1), disk("d15c0000-0000-4000-8000-000000000002", "SCSI", 1, 100 << 30)],
        cd_roms=[
            cls(V + "CdRom")(
                ext_id="cd000000-0000-4000-8000-000000000001",
                disk_address=cls(V + "CdRomAddress")(bus_type="IDE", index=0),
                backing_info=cls(V + "VmDisk")(disk_size_bytes=5 << 30, data_source=cls(V + "DataSource")(reference=cls(V + "ImageReference")(image_ext_id=IMAGE_1))),
                iso_type="OTHER",
            )
        ],
        nics=[
            nic("41c00000-0000-4000-8000-000000000001", "50:6b:8d:00:00:01", SUBNET_A, assigned="10.0.0.11"),
            # A second NIC on the same subnet, its address only learned.
            nic("41c00000-0000-4000-8000-000000000002", "50:6b:8d:00:00:02", SUBNET_A, learned=["10.0.0.12"]),
            nic("41c00000-0000-4000-8000-000000000003", "50:6b:8d:00:00:03", SUBNET_B, assigned="10.0.1.11", learned=["10.0.1.11", "10.0.1.99"]),
        ],
        gpus=[cls(V + "Gpu")(ext_id="69000000-0000-4000-8000-000000000001", mode="VIRTUAL", vendor="NVIDIA", device_id=8712, name="NVIDIA A16-4Q")],
    )
    off = cls(V + "Vm")(
        ext_id="0a1b0000-0000-4000-8000-000000000002",
        name="archive-02",
        create_time=ts(3),
        num_sockets=1,
        num_cores_per_socket=1,
        num_threads_per_core=1,
        memory_size_bytes=1 << 30,
        power_state="OFF",
        cluster=ref("ClusterReference", CLUSTER_PE),
        boot_config=cls(V + "LegacyBoot")(),
        # An empty CD-ROM drive: no backing.
        cd_roms=[cls(V + "CdRom")(ext_id="cd000000-0000-4000-8000-000000000002", disk_address=cls(V + "CdRomAddress")(bus_type="SATA", index=0))],
    )
    bare = cls(V + "Vm")(ext_id="0a1b0000-0000-4000-8000-000000000003", name="bare-03", cluster=ref("ClusterReference", CLUSTER_PE))
    page = cls(V + "ListVmsApiResponse")(data=[full, off, bare], metadata=metadata("ntnx_vmm_py_client", 3))
    facts = [
        {"uuid": full.ext_id, "name": "db-01", "vcpus": 16, "sockets": 2, "cores_per_socket": 4, "threads_per_core": 2, "memory_mib": 16384,
         "power_state": "ON", "host": HOST_1, "cluster": CLUSTER_PE,
         "disks": [["d15c0000-0000-4000-8000-000000000001", "DISK", "SCSI", 0, 40 << 30], ["d15c0000-0000-4000-8000-000000000002", "DISK", "SCSI", 1, 100 << 30],
                   ["cd000000-0000-4000-8000-000000000001", "CDROM", "IDE", 0, 5 << 30]],
         "disk_total_bytes": 140 << 30,
         "ips": ["10.0.0.11", "10.0.0.12", "10.0.1.11", "10.0.1.99"],
         "nic_subnets": [SUBNET_A, SUBNET_A, SUBNET_B],
         "categories": {"Environment": "Production", "AppType": "Database"},
         "gpus": [{"vendor": "NVIDIA", "mode": "VIRTUAL", "device_id": 8712, "name": "NVIDIA A16-4Q", "uuid": "69000000-0000-4000-8000-000000000001"}],
         "vtpm_enabled": True, "boot_type": "UEFI", "guest_tools_installed": True},
        {"uuid": off.ext_id, "name": "archive-02", "vcpus": 1, "sockets": 1, "cores_per_socket": 1, "threads_per_core": 1, "memory_mib": 1024,
         "power_state": "OFF", "host": None, "cluster": CLUSTER_PE,
         "disks": [["cd000000-0000-4000-8000-000000000002", "CDROM", "SATA", 0, None]], "disk_total_bytes": 0,
         "ips": [], "nic_subnets": [], "categories": None, "gpus": [], "vtpm_enabled": None, "boot_type": "LEGACY", "guest_tools_installed": False},
        {"uuid": bare.ext_id, "name": "bare-03", "vcpus": 1, "sockets": 1, "cores_per_socket": 1, "threads_per_core": None, "memory_mib": 0,
         "power_state": None, "host": None, "cluster": CLUSTER_PE, "disks": [], "disk_total_bytes": 0, "ips": [], "nic_subnets": [],
         "categories": None, "gpus": [], "vtpm_enabled": None, "boot_type": None, "guest_tools_installed": False},
    ]
    return wire(client["vmm"], page), facts


def clusters(client):
    C = "clustermgmt.v4.config."
    P = "ntnx_clustermgmt_py_client"
    pc = cls(C + "Cluster")(
        ext_id=CLUSTER_PC,
        name="prism-central",
        config=cls(C + "ClusterConfigReference")(cluster_function=["PRISM_CENTRAL"], hypervisor_types=["$UNKNOWN"],
                                                  build_info=cls(C + "BuildReference")(version="pc.2024.3.1.1")),
    )
    pe = cls(C + "Cluster")(
        ext_id=CLUSTER_PE,
        name="cluster-a",
        config=cls(C + "ClusterConfigReference")(
            cluster_function=["AOS"], hypervisor_types=["AHV"], redundancy_factor=2, timezone="UTC", cluster_arch="X86_64",
            encryption_in_transit_status="DISABLED",
            build_info=cls(C + "BuildReference")(version="6.8.1", full_version="el8.5-release-fraser-6.8.1-stable"),
        ),
        network=cls(C + "ClusterNetworkReference")(external_address=ip_address(P, "10.0.0.2")),
        nodes=cls(C + "NodeReference")(number_of_nodes=1, node_list=[cls(C + "NodeListItemReference")(node_uuid=HOST_1, host_ip=ip_address(P, "10.0.0.10"))]),
    )
    page = cls(C + "ListClustersApiResponse")(data=[pc, pe], metadata=metadata(P, 2))
    facts = [{"uuid": CLUSTER_PE, "name": "cluster-a", "aos_version": "6.8.1", "external_ip": "10.0.0.2", "num_nodes": 1}]
    return wire(client["clustermgmt"], page), facts


def hosts(client):
    C = "clustermgmt.v4.config."
    P = "ntnx_clustermgmt_py_client"
    h = cls(C + "Host")(
        ext_id=HOST_1,
        host_name="cluster-a-node-1",
        host_type="HYPER_CONVERGED",
        cluster=cls(C + "ClusterReference")(uuid=CLUSTER_PE, name="cluster-a"),
        cpu_model="Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        number_of_cpu_sockets=2,
        number_of_cpu_cores=64,
        number_of_cpu_threads=128,
        cpu_frequency_hz=2_000_000_000,
        cpu_capacity_hz=128_000_000_000,
        memory_size_bytes=1 << 40,
        block_serial="BLK-01",
        block_model="NX-8155-G8",
        hypervisor=cls(C + "HypervisorReference")(external_address=ip_address(P, "10.0.0.10"), full_name="AHV 20230302.100173", number_of_vms=1),
        controller_vm=cls(C + "ControllerVmReference")(external_address=ip_address(P, "10.0.0.50")),
    )
    page = cls(C + "ListHostsApiResponse")(data=[h], metadata=metadata(P, 1))
    facts = [{"uuid": HOST_1, "name": "cluster-a-node-1", "cpu_frequency_hz": 2_000_000_000, "cpu_capacity_hz": 128_000_000_000,
              "num_cpu_cores": 64, "num_cpu_threads": 128, "memory_mib": 1 << 20, "ips": ["10.0.0.10", "10.0.0.50"]}]
    return wire(client["clustermgmt"], page), facts


def storage_containers(client):
    C = "clustermgmt.v4.config."
    sc = cls(C + "StorageContainer")(
        container_ext_id=CONTAINER_1, name="default-container", cluster_ext_id=CLUSTER_PE, cluster_name="cluster-a",
        max_capacity_bytes=4 << 40, replication_factor=2, is_compression_enabled=True, erasure_code="OFF",
        on_disk_dedup="NONE", cache_deduplication="OFF", is_software_encryption_enabled=True, is_internal=False,
    )
    page = cls(C + "ListStorageContainersApiResponse")(data=[sc], metadata=metadata("ntnx_clustermgmt_py_client", 1))
    return wire(client["clustermgmt"], page), [{"uuid": CONTAINER_1, "name": "default-container", "encrypted": True, "replication_factor": 2}]


def subnets(client):
    N = "networking.v4.config."
    P = "ntnx_networking_py_client"
    a = cls(N + "Subnet")(
        ext_id=SUBNET_A, name="vlan-10", subnet_type="VLAN", network_id=10, cluster_reference=CLUSTER_PE, bridge_name="br0",
        ip_config=[cls(N + "IPConfig")(ipv4=cls(N + "IPv4Config")(
            ip_subnet=cls(N + "IPv4Subnet")(ip=ipv4(P, "10.0.0.0"), prefix_length=24),
            default_gateway_ip=ipv4(P, "10.0.0.1"),
            pool_list=[cls(N + "IPv4Pool")(start_ip=ipv4(P, "10.0.0.100"), end_ip=ipv4(P, "10.0.0.200"))],
        ))],
    )
    b = cls(N + "Subnet")(ext_id=SUBNET_B, name="vlan-11", subnet_type="VLAN", network_id=11, cluster_reference=CLUSTER_PE)
    page = cls(N + "ListSubnetsApiResponse")(data=[a, b], metadata=metadata(P, 2))
    facts = [{"uuid": SUBNET_A, "name": "vlan-10", "vlan_id": 10, "network": "10.0.0.0/24", "gateway": "10.0.0.1", "ip_pools": ["10.0.0.100 10.0.0.200"]},
             {"uuid": SUBNET_B, "name": "vlan-11", "vlan_id": 11, "network": None, "gateway": None, "ip_pools": []}]
    return wire(client["networking"], page), facts


def images(client):
    I = "vmm.v4.content."
    img = cls(I + "Image")(ext_id=IMAGE_1, name="ubuntu-22.04.qcow2", description="base", type="DISK_IMAGE", size_bytes=2_361_393_152,
                           source=cls(I + "UrlSource")(url="https://images.example.com/ubuntu-22.04.qcow2"),
                           cluster_location_ext_ids=[CLUSTER_PE], create_time=ts(4))
    page = cls(I + "ListImagesApiResponse")(data=[img], metadata=metadata("ntnx_vmm_py_client", 1))
    return wire(client["vmm"], page), [{"uuid": IMAGE_1, "name": "ubuntu-22.04.qcow2", "size_bytes": 2_361_393_152, "image_type": "DISK_IMAGE"}]


def categories(client):
    P = "prism.v4.config."
    page = cls(P + "ListCategoriesApiResponse")(
        data=[cls(P + "Category")(ext_id=CATEGORY_ENV, key="Environment", value="Production", type="USER", description="prod"),
              cls(P + "Category")(ext_id=CATEGORY_APP, key="AppType", value="Database", type="USER")],
        metadata=metadata("ntnx_prism_py_client", 2),
    )
    return wire(client["prism"], page), [{"uuid": "Environment:Production"}, {"uuid": "AppType:Database"}]


POLICY_1 = "9011c000-0000-4000-8000-000000000001"
RECOVERY_POINT_1 = "4ec0e000-0000-4000-8000-000000000001"
VM_PROTECTED = "0f0f0000-0000-4000-8000-0000000000a1"


def protection_policies(client):
    D = "datapolicies.v4.config."
    schedule = cls(D + "Schedule")(recovery_point_type="CRASH_CONSISTENT", recovery_point_objective_time_seconds=3600,
                                   retention=cls(D + "LinearRetention")(local=24, remote=12))
    policy = cls(D + "ProtectionPolicy")(
        ext_id=POLICY_1, name="gold", description="hourly to DR", category_ids=[CATEGORY_ENV],
        replication_locations=[cls(D + "ReplicationLocation")(label="primary", domain_manager_ext_id=CLUSTER_PC, is_primary=True),
                               cls(D + "ReplicationLocation")(label="dr", domain_manager_ext_id=CLUSTER_PE, is_primary=False)],
        replication_configurations=[cls(D + "ReplicationConfiguration")(source_location_label="primary", remote_location_label="dr", schedule=schedule)],
    )
    page = cls(D + "ListProtectionPoliciesApiResponse")(data=[policy], metadata=metadata("ntnx_datapolicies_py_client", 1))
    return wire(client["datapolicies"], page), [{"uuid": POLICY_1, "name": "gold", "rpo_secs": 3600, "categories": ["Environment:Production"]}]


def recovery_points(client):
    P = "dataprotection.v4.config."
    rp = cls(P + "RecoveryPoint")(
        ext_id=RECOVERY_POINT_1, name="db-01-hourly", creation_time=ts(6), expiration_time=ts(13), status="COMPLETE",
        recovery_point_type="CRASH_CONSISTENT", vm_recovery_points=[cls(P + "VmRecoveryPoint")(vm_ext_id=VM_PROTECTED)],
    )
    page = cls(P + "ListRecoveryPointsApiResponse")(data=[rp], metadata=metadata("ntnx_dataprotection_py_client", 1))
    return wire(client["dataprotection"], page), [{"uuid": RECOVERY_POINT_1, "name": "db-01-hourly", "vms": [VM_PROTECTED],
                                                   "created_at": "2024-05-06T08:30:00Z", "expires_at": "2024-05-13T08:30:00Z"}]
VPC_1 = "5bc10000-0000-4000-8000-000000000001"


def networking_kinds(client):
    """The networking kinds (VPCs, floating IPs, route tables, virtual
    switches) and an overlay subnet of the VPC."""
    N = "networking.v4.config."
    P = "ntnx_networking_py_client"
    ip = lambda value: ip_address(P, value)
    vpc = cls(N + "Vpc")(
        ext_id=VPC_1, name="prod-vpc", description="production", vpc_type="REGULAR",
        external_subnets=[cls(N + "ExternalSubnet")(subnet_reference=SUBNET_A, external_ips=[ip("192.168.1.10")])],
        snat_ips=[ip("192.168.1.10")],
        common_dhcp_options=cls(N + "VpcDhcpOptions")(domain_name_servers=[ip("8.8.8.8")]),
        externally_routable_prefixes=[cls(N + "IPSubnet")(ipv4=cls(N + "IPv4Subnet")(ip=ipv4(P, "10.5.0.0"), prefix_length=16))],
        metadata=importlib.import_module(f"{P}.models.common.v1.config.Metadata").Metadata(owner_user_name="admin", project_name="default"),
    )
    nic = cls(N + "FloatingIp")(
        ext_id="f1000000-0000-4000-8000-000000000001", name="web-fip",
        floating_ip=cls(N + "FloatingIPAddress")(ipv4=cls(N + "FloatingIPv4Address")(value="192.168.1.20")),
        external_subnet_reference=SUBNET_A, association=cls(N + "VmNicAssociation")(vm_nic_reference="41c00000-0000-4000-8000-000000000001", vpc_reference=VPC_1),
    )
    private = cls(N + "FloatingIp")(
        ext_id="f1000000-0000-4000-8000-000000000002",
        floating_ip=cls(N + "FloatingIPAddress")(ipv4=cls(N + "FloatingIPv4Address")(value="192.168.1.21")),
        association=cls(N + "PrivateIpAssociation")(private_ip=ip("10.5.0.8"), vpc_reference=VPC_1),
    )
    table = cls(N + "RouteTable")(ext_id="7ab10000-0000-4000-8000-000000000001", vpc_reference=VPC_1)
    switch = cls(N + "VirtualSwitch")(
        ext_id="75000000-0000-4000-8000-000000000001", name="vs0", is_default=True, mtu=1500, bond_mode="ACTIVE_BACKUP", owner_type="PC",
        clusters=[cls(N + "Cluster")(ext_id=CLUSTER_PE, hosts=[cls(N + "Host")(ext_id=HOST_1, host_nics=["eth0"])], gateway_ip_address=ipv4(P, "10.0.0.1"))],
    )
    overlay = cls(N + "Subnet")(ext_id="5b0e0000-0000-4000-8000-0000000000c1", name="overlay-1", subnet_type="OVERLAY", vpc_reference=VPC_1)
    bodies = {
        "vpcs": cls(N + "ListVpcsApiResponse")(data=[vpc], metadata=metadata(P, 1)),
        "floating_ips": cls(N + "ListFloatingIpsApiResponse")(data=[nic, private], metadata=metadata(P, 2)),
        "route_tables": cls(N + "ListRouteTablesApiResponse")(data=[table], metadata=metadata(P, 1)),
        "virtual_switches": cls(N + "ListVirtualSwitchesApiResponse")(data=[switch], metadata=metadata(P, 1)),
        "overlay_subnets": cls(N + "ListSubnetsApiResponse")(data=[overlay], metadata=metadata(P, 1)),
    }
    facts = {
        "vpcs": [{"uuid": VPC_1, "name": "prod-vpc", "vpc_type": "REGULAR", "ips": ["192.168.1.10"], "dns_servers": ["8.8.8.8"],
                  "prefixes": ["10.5.0.0/16"], "project": "default", "owner": "admin"}],
        "floating_ips": [{"uuid": nic.ext_id, "name": "web-fip", "association": "VM_NIC", "vpc_uuid": VPC_1, "private_ip": None},
                         {"uuid": private.ext_id, "name": "192.168.1.21", "association": "PRIVATE_IP", "vpc_uuid": VPC_1, "private_ip": "10.5.0.8"}],
        "route_tables": [{"uuid": table.ext_id, "vpc_uuid": VPC_1}],
        "virtual_switches": [{"uuid": switch.ext_id, "name": "vs0", "clusters": [{"uuid": CLUSTER_PE, "name": "cluster-a", "host_count": 1, "gateway_ip": "10.0.0.1"}]}],
        "overlay_subnets": [{"uuid": overlay.ext_id, "vpc_uuid": VPC_1}],
    }
    return {k: wire(client["networking"], v) for k, v in bodies.items()}, facts


def security_kinds(client):
    """Flow Network Security: a policy whose rule names an address and a
    service group, and the groups."""
    M = "microseg.v4.config."
    P = "ntnx_microseg_py_client"
    policy_id, ag_id, sg_id = "9011c000-0000-4000-8000-000000000001", "a9000000-0000-4000-8000-000000000001", "59000000-0000-4000-8000-000000000001"
    policy = cls(M + "NetworkSecurityPolicy")(
        ext_id=policy_id, name="web-policy", type="APPLICATION", state="SAVE", scope="VPC_LIST", vpc_references=[VPC_1],
        is_hitlog_enabled=True, is_ipv6_traffic_allowed=False, is_system_defined=False, secured_groups=[CATEGORY_APP], created_by="admin",
        creation_time=ts(5), last_update_time=ts(6),
        rules=[cls(M + "NetworkSecurityPolicyRule")(ext_id="9011e000-0000-4000-8000-000000000001", type="APPLICATION", description="web in",
                                                     spec=cls(M + "ApplicationRuleSpec")(secured_group_category_references=[CATEGORY_APP],
                                                                                         src_address_group_references=[ag_id], service_group_references=[sg_id])),
               cls(M + "NetworkSecurityPolicyRule")(ext_id="9011e000-0000-4000-8000-000000000002", type="INTRA_GROUP",
                                                     spec=cls(M + "IntraEntityGroupRuleSpec")(secured_group_category_references=[CATEGORY_APP], secured_group_action="DENY"))],
    )
    ag = cls(M + "AddressGroup")(ext_id=ag_id, name="branch", ipv4_addresses=[ipv4(P, "10.1.0.0", 16)],
                                 ip_ranges=[cls(M + "IPv4Range")(start_ip="10.3.0.1", end_ip="10.3.0.9")], policy_references=[policy_id], created_by="admin")
    sg = cls(M + "ServiceGroup")(ext_id=sg_id, name="web", is_system_defined=False,
                                 tcp_services=[cls(M + "TcpPortRangeSpec")(start_port=80, end_port=80), cls(M + "TcpPortRangeSpec")(start_port=8000, end_port=8080)],
                                 icmp_services=[cls(M + "IcmpTypeCodeSpec")(type=8, code=0)], policy_references=[policy_id])
    bodies = {
        "security_policies": cls(M + "ListNetworkSecurityPoliciesApiResponse")(data=[policy], metadata=metadata(P, 1)),
        "address_groups": cls(M + "ListAddressGroupsApiResponse")(data=[ag], metadata=metadata(P, 1)),
        "service_groups": cls(M + "ListServiceGroupsApiResponse")(data=[sg], metadata=metadata(P, 1)),
    }
    facts = {
        "security_policies": [{"uuid": policy_id, "name": "web-policy", "policy_type": "APPLICATION", "state": "SAVE", "rule_count": 2,
                               "address_group_uuids": [ag_id], "service_group_uuids": [sg_id], "vpc_uuids": [VPC_1], "created_at": "2024-05-05T08:30:00+00:00"}],
        "address_groups": [{"uuid": ag_id, "ipv4_addresses": ["10.1.0.0/16"], "ip_ranges": ["10.3.0.1-10.3.0.9"], "policy_uuids": [policy_id]}],
        "service_groups": [{"uuid": sg_id, "tcp_ports": ["80", "8000-8080"], "icmp": ["8:0"], "protocols": ["TCP", "ICMP"]}],
    }
    return {k: wire(client["microseg"], v) for k, v in bodies.items()}, facts


TEMPLATE_1 = "7e3a0000-0000-4000-8000-000000000001"
TEMPLATE_VERSION_1 = "7e3a0000-0000-4000-8000-0000000000f1"
ALERT_1 = "a1e70000-0000-4000-8000-000000000001"
LCM_BIOS = "1c300000-0000-4000-8000-000000000001"


def vm_templates(client):
    T = "vmm.v4.content."
    V = "vmm.v4.ahv.config."
    spec = cls(V + "Vm")(name="tpl", num_sockets=2, num_cores_per_socket=4, memory_size_bytes=8 * 1024 ** 3,
                         cluster=cls(V + "ClusterReference")(ext_id=CLUSTER_PE))
    version = cls(T + "TemplateVersionSpec")(ext_id=TEMPLATE_VERSION_1, version_name="v3", version_description="patched",
                                              create_time=ts(7), is_active_version=True, vm_spec=spec,
                                              created_by=cls(T + "TemplateUser")(username="builder"))
    t = cls(T + "Template")(ext_id=TEMPLATE_1, template_name="rhel-9", template_description="hardened", create_time=ts(1), update_time=ts(7),
                            created_by=cls(T + "TemplateUser")(username="admin"), template_version_spec=version)
    page = cls(T + "ListTemplatesApiResponse")(data=[t], metadata=metadata("ntnx_vmm_py_client", 1))
    return wire(client["vmm"], page), [{"uuid": TEMPLATE_1, "name": "rhel-9", "version": "v3", "version_uuid": TEMPLATE_VERSION_1,
                                        "vcpus": 8, "memory_size_bytes": 8 * 1024 ** 3, "created_by": "admin"}]


def alerts(client):
    M = "monitoring.v4.serviceability."
    C = "monitoring.v4.common."
    a = cls(M + "Alert")(
        ext_id=ALERT_1, title="VM {vm_name} is down", message="the VM stopped", alert_type="A1030", severity="CRITICAL",
        is_resolved=False, is_acknowledged=False, cluster_uuid=CLUSTER_PE, creation_time=ts(6),
        source_entity=cls(C + "AlertEntityReference")(type="vm", ext_id=VM_PROTECTED, name="db-01"),
        affected_entities=[cls(C + "EntityReference")(type="host", ext_id=HOST_1, name="host-1")],
        parameters=[cls(C + "Parameter")(param_name="vm_name", param_value=cls(C + "StringValue")(string_value="db-01"))],
        classifications=["Availability"],
    )
    page = cls(M + "ListAlertsApiResponse")(data=[a], metadata=metadata("ntnx_monitoring_py_client", 1))
    return wire(client["monitoring"], page), [{"uuid": ALERT_1, "name": "VM db-01 is down", "severity": "CRITICAL", "state": "OPEN",
                                               "source_entity": {"type": "vm", "uuid": VM_PROTECTED, "name": "db-01"}, "region": CLUSTER_PE}]


def lcm_entities(client):
    L = "lifecycle.v4."
    e = cls(L + "resources.Entity")(
        ext_id=LCM_BIOS, entity_model="BIOS", entity_class="BIOS", entity_type="FIRMWARE", entity_version="PB50.001",
        location_info=cls(L + "common.LocationInfo")(uuid=HOST_1, location_type="NODE"), cluster_ext_id=CLUSTER_PE,
        available_versions=[cls(L + "resources.AvailableVersion")(version="PB51.002", status="AVAILABLE", is_enabled=True)],
    )
    page = cls(L + "resources.ListEntitiesApiResponse")(data=[e], metadata=metadata("ntnx_lifecycle_py_client", 1))
    return wire(client["lifecycle"], page), [{"uuid": LCM_BIOS, "version": "PB50.001", "entity_type": "FIRMWARE", "host": HOST_1,
                                              "update_to": "PB51.002"}]


def errors(client):
    """v4 error bodies as Prism's services answer them: an ErrorResponse
    whose `error` is a list of AppMessages, in the list response's `data`."""
    out = {}
    for ns, response, error_pkg, code, group in [
        ("vmm", "vmm.v4.ahv.config.ListVmsApiResponse", "vmm.v4.error", "VMM-30100", "VM_LIST_FAILED"),
        ("clustermgmt", "clustermgmt.v4.config.ListClustersApiResponse", "clustermgmt.v4.error", "CLU-10005", "INVALID_FILTER"),
    ]:
        message = cls(error_pkg + ".AppMessage")(code=code, error_group=group, severity="ERROR", message=f"{ns} refused the list: $filter is invalid",
                                                 arguments_map={"argument": "$filter"})
        body = cls(response)(data=cls(error_pkg + ".ErrorResponse")(error=[message]))
        out[ns] = wire(client[ns], body)
    return out


def generate(outdir):
    os.makedirs(outdir, exist_ok=True)
    client = {"vmm": vmm.ApiClient(), "clustermgmt": clustermgmt.ApiClient(), "networking": networking.ApiClient(), "prism": prism.ApiClient(),
              "dataprotection": dataprotection.ApiClient(), "datapolicies": datapolicies.ApiClient(), "microseg": microseg.ApiClient(),
              "monitoring": monitoring.ApiClient(), "lifecycle": lifecycle.ApiClient()}
    facts = {}
    for name, make in [("vms", vms), ("clusters", clusters), ("hosts", hosts), ("storage_containers", storage_containers),
                       ("subnets", subnets), ("images", images), ("categories", categories),
                       ("protection_policies", protection_policies), ("recovery_points", recovery_points),
                       ("vm_templates", vm_templates), ("alerts", alerts), ("lcm_entities", lcm_entities)]:
        body, facts[name] = make(client)
        with open(os.path.join(outdir, f"{name}.json"), "w") as f:
            json.dump(body, f, indent=1, sort_keys=True)
    # The networking and security kinds: several lists per generator.
    for make in [networking_kinds, security_kinds]:
        bodies, more = make(client)
        facts.update(more)
        for name, body in bodies.items():
            with open(os.path.join(outdir, f"{name}.json"), "w") as f:
                json.dump(body, f, indent=1, sort_keys=True)
    with open(os.path.join(outdir, "errors.json"), "w") as f:
        json.dump(errors(client), f, indent=1, sort_keys=True)
    with open(os.path.join(outdir, "facts.json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
    versions = {p: importlib.metadata.version(p.replace("_", "-")) for p in PACKAGES.values()}
    print(f"generated {len(facts)} lists with {versions}")
    return 0


if __name__ == "__main__":
    command, arg = sys.argv[1], sys.argv[2]
    sys.exit({"generate": generate, "check-bodies": check_bodies, "check-paths": check_paths}[command](arg))
