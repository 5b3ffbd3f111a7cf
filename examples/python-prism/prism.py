"""Nutanix Prism Central VMs and clusters (v3 API), as a Python collector.

The same source of data as guest-nutanix (in Rust), a smaller scope:
`POST /api/nutanix/v3/clusters/list` and `/vms/list`, paged with
offset/length until `total_matches`. Credentials never enter the sandbox:
the host authenticates each request (`auth=http.BASIC` or the API key).

Build: python -m cloudforet_collector.build examples/python-prism/prism.py -o prism-py.wasm
"""

import logging
import time

from cloudforet_collector import (
    CollectorPluginServer, ERROR_REQUIRED_PARAMETER, InvalidArgument, Unauthenticated, PermissionDenied,
    http, make_cloud_service, make_cloud_service_type, make_error_response, make_region, make_response,
)

app = CollectorPluginServer(name="prism-py", version="0.1.0")
_LOGGER = logging.getLogger("prism")

PROVIDER = "nutanix"
KINDS = ("clusters", "vms")
OPTIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "page_size": {"type": "integer", "minimum": 1, "maximum": 500, "default": 500, "title": "Page size"},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3, "title": "Retries per page"},
        "resource_kinds": {"type": "array", "items": {"enum": list(KINDS)}, "title": "Kinds to collect"},
    },
}
TYPES = {
    "clusters": ("Cluster", "Cluster", {
        "search": {"fields": [{"UUID": "data.uuid"}, {"AOS Version": "data.aos_version"}, {"Nodes": "data.num_nodes", "data_type": "integer"}]},
        "table": {"sort": {"key": "name"}, "fields": [{"AOS Version": "data.aos_version"}, {"Nodes": "data.num_nodes"},
                                                      {"External IP": "data.external_ip"}]},
        "tabs.0": {"name": "Cluster", "type": "item", "fields": [
            {"Name": "name"}, {"UUID": "data.uuid"}, {"AOS Version": "data.aos_version"},
            {"Hypervisors": "data.hypervisor_types", "type": "list", "delimiter": ", "}, {"External IP": "data.external_ip"}]},
    }),
    "vms": ("Compute", "VirtualMachine", {
        "search": {"fields": [{"UUID": "data.uuid"}, {"Power": "data.power_state"}, {"Cluster": "region_code"},
                              {"vCPUs": "data.vcpus", "data_type": "integer"}]},
        "table": {"sort": {"key": "name"}, "fields": [
            {"Power": "data.power_state", "type": "enum", "enums": {
                "ON": {"type": "state", "options": {"icon": {"color": "green.500"}}},
                "OFF": {"type": "state", "options": {"icon": {"color": "gray.400"}}}}},
            {"vCPUs": "data.vcpus"}, {"Memory (MiB)": "data.memory_mib"}, {"Cluster": "region_code"},
            {"IP Addresses": "ip_addresses", "type": "list", "delimiter": "<br>"}]},
        "tabs.0": {"name": "VM", "type": "item", "fields": [
            {"Name": "name"}, {"UUID": "data.uuid"}, {"Power": "data.power_state"}, {"vCPUs": "data.vcpus"},
            {"Memory (MiB)": "data.memory_mib"}, {"Host": "data.host.name"}, {"Cluster": "data.cluster.name"}]},
        "tabs.1": {"name": "Disks", "type": "table", "root_path": "data.disks", "fields": [
            {"UUID": "uuid"}, {"Size": "size_bytes", "type": "size"}, {"Adapter": "adapter_type"}]},
    }),
}


class Prism:
    """Prism Central's v3 list API through the host."""

    def __init__(self, options: dict, secret: dict):
        host = secret.get("host")
        if not host:
            raise ERROR_REQUIRED_PARAMETER(key="secret_data.host")
        if "://" not in host:
            host = f"https://{host}:{secret.get('port') or 9440}"
        self.base = host.rstrip("/")
        if secret.get("api_key"):
            self.auth = http.ApiKey("X-ntnx-api-key")
        elif secret.get("username"):
            self.auth = http.BASIC
        else:
            raise ERROR_REQUIRED_PARAMETER(key="secret_data.username or secret_data.api_key")
        self.page_size = int(options.get("page_size", 500))
        if not 1 <= self.page_size <= 500:
            raise InvalidArgument("option page_size must be between 1 and 500")
        self.max_retries = int(options.get("max_retries", 3))

    def page(self, kind: str, offset: int, length: int) -> dict:
        """One page, retried on 429 (honouring Retry-After), 5xx and timeouts."""
        url = f"{self.base}/api/nutanix/v3/{kind}/list"
        body = {"kind": kind[:-1], "offset": offset, "length": length}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                resp = http.post(url, json=body, auth=self.auth, timeout=60)
            except (http.Timeout, http.ConnectionFailed) as e:
                if last:
                    raise http.error_for_transport(e, f"{kind} list") from None
                self.wait(attempt, None, str(e) or type(e).__name__)
                continue
            except http.HttpError as e:
                raise http.error_for_transport(e, f"{kind} list") from None
            if resp.status_code in (401, 403):
                raise (Unauthenticated if resp.status_code == 401 else PermissionDenied)(
                    f"Prism Central refused the credentials ({resp.status_code}) on {kind} list")
            if (resp.status_code == 429 or resp.status_code >= 500) and not last:
                self.wait(attempt, resp.headers.get("retry-after"), f"HTTP {resp.status_code}")
                continue
            if resp.status_code >= 400:
                raise http.error_for_status(resp, f"{kind} list")
            try:
                return resp.json()
            except ValueError:
                if last:
                    raise
                self.wait(attempt, None, "truncated JSON")
        raise AssertionError("unreachable")

    def wait(self, attempt: int, retry_after, why: str):
        ms = int(float(retry_after) * 1000) if retry_after and retry_after.isdigit() else 200 * 2 ** attempt
        _LOGGER.warning(f"retrying after {why}", extra={"fields": {"wait_ms": ms, "attempt": attempt + 1}})
        time.sleep(ms / 1000)

    def list_all(self, kind: str):
        offset = 0
        while True:
            page = self.page(kind, offset, self.page_size)
            entities = page.get("entities") or []
            yield from entities
            offset += len(entities)
            total = (page.get("metadata") or {}).get("total_matches", 0)
            if not entities or offset >= total:
                return


def cluster(entity: dict, account) -> dict:
    status = entity.get("status") or {}
    res = status.get("resources") or {}
    config = res.get("config") or {}
    servers = (res.get("nodes") or {}).get("hypervisor_server_list") or []
    uuid = entity["metadata"]["uuid"]
    data = {
        "uuid": uuid,
        "name": status.get("name"),
        "aos_version": (config.get("build") or {}).get("version"),
        "full_version": (config.get("build") or {}).get("full_version"),
        "num_nodes": len(servers),
        "hypervisor_types": sorted({s.get("type") for s in servers if s.get("type")}),
        "external_ip": (res.get("network") or {}).get("external_ip"),
        "redundancy_factor": config.get("redundancy_factor"),
    }
    return make_cloud_service(
        name=status.get("name") or uuid, cloud_service_type="Cluster", cloud_service_group="Cluster", provider=PROVIDER,
        data=data, account=account, region_code=status.get("name"), reference={"resource_id": uuid},
        ip_addresses=[data["external_ip"]] if data["external_ip"] else [], launched_at=entity["metadata"].get("creation_time"))


def vm(entity: dict, account) -> dict:
    meta, status = entity["metadata"], entity.get("status")
    if status is None:
        raise ValueError("missing field `status`")
    res = status.get("resources") or {}
    vcpus = (res.get("num_sockets") or 0) * (res.get("num_vcpus_per_socket") or 0)
    memory = res.get("memory_size_mib") or 0
    ips = [ip["ip"] for nic in res.get("nic_list") or [] for ip in nic.get("ip_endpoint_list") or [] if ip.get("ip")]
    disks = [{"uuid": d.get("uuid"), "size_bytes": d.get("disk_size_bytes"),
              "adapter_type": ((d.get("device_properties") or {}).get("disk_address") or {}).get("adapter_type")}
             for d in res.get("disk_list") or []]
    cluster_ref = status.get("cluster_reference") or {}
    host_ref = res.get("host_reference") or {}
    data = {
        "uuid": meta["uuid"], "name": status.get("name"), "power_state": res.get("power_state"), "vcpus": vcpus,
        "memory_mib": memory, "hypervisor_type": res.get("hypervisor_type"),
        "cluster": {"uuid": cluster_ref.get("uuid"), "name": cluster_ref.get("name")},
        "host": {"uuid": host_ref.get("uuid"), "name": host_ref.get("name")} if host_ref else None,
        "disks": disks, "disk_total_bytes": sum(d["size_bytes"] or 0 for d in disks),
        "categories": meta.get("categories") or {},
    }
    return make_cloud_service(
        name=status.get("name") or meta["uuid"], cloud_service_type="VirtualMachine", cloud_service_group="Compute",
        provider=PROVIDER, data=data, account=account, region_code=cluster_ref.get("name"),
        instance_type=f"{vcpus}vCPU-{memory // 1024}GiB", instance_size=float(vcpus), ip_addresses=ips,
        reference={"resource_id": meta["uuid"]}, tags=meta.get("categories") or {}, launched_at=meta.get("creation_time"))


@app.route("Collector.init")
def collector_init(params: dict) -> dict:
    return {"metadata": {"options_schema": OPTIONS_SCHEMA}}


@app.route("Collector.verify")
def collector_verify(params: dict) -> None:
    Prism(params["options"], params["secret_data"]).page("clusters", 0, 1)


@app.route("Job.get_tasks")
def job_get_tasks(params: dict) -> dict:
    kinds = params["options"].get("resource_kinds") or KINDS
    return {"tasks": [{"task_options": {"resource_kinds": [k]}} for k in kinds]}


@app.route("Collector.collect")
def collector_collect(params: dict):
    prism = Prism(params["options"], params["secret_data"])
    kinds = params["task_options"].get("resource_kinds") or params["options"].get("resource_kinds") or KINDS
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise InvalidArgument(f"unknown resource kinds: {', '.join(sorted(unknown))}")
    # Clusters first, always: Prism Central's own uuid is every record's account.
    clusters = list(prism.list_all("clusters"))
    pc = next((c for c in clusters if "PRISM_CENTRAL" in (c["status"]["resources"].get("config") or {}).get("service_list", [])), None)
    account = pc["metadata"]["uuid"] if pc else None
    clusters = [c for c in clusters if c is not pc]
    for c in clusters:  # a cluster is a region, whatever the kinds
        yield make_response(resource_type="inventory.Region", match_keys=[["region_code", "provider"]],
                            region=make_region(name=c["status"]["name"], region_code=c["status"]["name"], provider=PROVIDER,
                                               tags={"nutanix:cluster_uuid": c["metadata"]["uuid"]}))
    for kind in KINDS:
        if kind not in kinds:
            continue
        group, name, layout = TYPES[kind]
        yield make_response(resource_type="inventory.CloudServiceType", match_keys=[["name", "group", "provider"]],
                            cloud_service_type=make_cloud_service_type(name=name, group=group, provider=PROVIDER,
                                                                       metadata=layout, is_major=True, labels=[group]))
        entities = clusters if kind == "clusters" else prism.list_all("vms")
        normalize = cluster if kind == "clusters" else vm
        try:
            for entity in entities:
                try:
                    yield make_response(cloud_service=normalize(entity, account))
                except (KeyError, TypeError, AttributeError, ValueError) as e:
                    uuid = (entity.get("metadata") or {}).get("uuid", "?")
                    reason = str(e) if isinstance(e, ValueError) else f"{type(e).__name__} {e}"
                    yield make_error_response(ValueError(f"malformed {kind[:-1]} entity {uuid}: {reason}"), PROVIDER, group, name)
        except (Unauthenticated, PermissionDenied):
            raise
        except Exception as e:  # a lost page: the rest of the collection goes on
            yield make_error_response(e, PROVIDER, group, name)
