"""A collector plugin written with CloudForet's own Python SDK
(spaceone-inventory CollectorPluginServer), for the gRPC stream benchmark
(`cf-host bench --against-python-sdk`): `collect` streams
`task_options.n` pre-built CloudService resources, the same ones the
adversary test component's `bulk` attack emits in cf-host.

Run: spaceone run plugin-server sdk_bench_plugin -s tests/python -p PORT
"""

from spaceone.inventory.plugin.collector.lib.server import CollectorPluginServer
from spaceone.inventory.plugin.collector.lib.utils import make_cloud_service, make_response

app = CollectorPluginServer()


def bulk_data(i: int) -> dict:
    # Must match tests/adversary/src/component.rs `bulk_data`.
    return {
        "uuid": f"bulk-{i}",
        "power_state": "ON",
        "vcpus": 4,
        "memory_mib": 8192,
        "disks": [{"index": d, "size_bytes": 53687091200, "adapter_type": "SCSI"} for d in range(2)],
        "nics": [{"mac_address": "50:6b:8d:00:00:01", "ip_addresses": ["10.0.0.1"], "subnet": "vlan-100"}],
        "description": "pre-built resource for the gRPC stream benchmark",
    }


@app.route("Collector.init")
def collector_init(params: dict) -> dict:
    return {"metadata": {"supported_resource_type": ["inventory.CloudService"], "supported_schedules": ["hours"], "options_schema": {}}}


@app.route("Collector.verify")
def collector_verify(params: dict) -> None:
    pass


@app.route("Collector.collect")
def collector_collect(params: dict):
    n = int((params.get("task_options") or {}).get("n", 1))
    for i in range(n):
        cloud_service = make_cloud_service(
            name=f"bulk-{i}",
            cloud_service_type="VirtualMachine",
            cloud_service_group="Compute",
            provider="bench",
            data=bulk_data(i),
            account="bench-account",
            region_code="bench-region",
            reference={"resource_id": f"bulk-{i}"},
        )
        yield make_response(
            cloud_service=cloud_service,
            match_keys=[["reference.resource_id", "provider", "cloud_service_type", "cloud_service_group", "account"]],
            resource_type="inventory.CloudService",
        )


@app.route("Job.get_tasks")
def job_get_tasks(params: dict) -> dict:
    return {"tasks": [{"task_options": {}}]}
