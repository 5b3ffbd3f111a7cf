"""Helpers with the names and arguments of CloudForet's plugin SDK
(`spaceone.inventory.plugin.collector.lib`): build records as dicts, wrap
them in responses, and yield those from `Collector.collect`.

    yield make_response(
        cloud_service=make_cloud_service(name="vm-1", cloud_service_type="VirtualMachine",
                                         cloud_service_group="Compute", provider="nutanix",
                                         data={"vcpus": 4}, reference={"resource_id": uuid}),
        match_keys=[["reference.resource_id", "provider", "cloud_service_type", "cloud_service_group"]],
    )

`match_keys` are accepted for familiarity: cf-host applies CloudForet's
standard match rules per resource type itself.
"""

import logging

from .errors import CollectorError, InvalidArgument
from .model import CloudService, CloudServiceType, Region, ErrorResource, Namespace, Metric
from .layout import convert_cloud_service_type_meta, convert_cloud_service_meta

__all__ = [
    "make_cloud_service_type",
    "make_cloud_service",
    "make_region",
    "make_namespace",
    "make_metric",
    "make_response",
    "make_error_response",
    "convert_cloud_service_meta",
    "convert_cloud_service_type_meta",
]

_LOGGER = logging.getLogger(__name__)

RESOURCE_KEYS = {
    "inventory.CloudService": "cloud_service",
    "inventory.CloudServiceType": "cloud_service_type",
    "inventory.Region": "region",
    "inventory.Namespace": "namespace",
    "inventory.Metric": "metric",
}


def make_cloud_service_type(
    name: str,
    group: str,
    provider: str,
    metadata: dict = None,
    is_primary: bool = False,
    is_major: bool = False,
    service_code: str = None,
    tags: dict = None,
    labels: list = None,
    metadata_path: str = None,
) -> dict:
    """A cloud service type. `metadata` is either a finished dynamic layout
    (`{"view": ...}`) or the short form CloudForet's SDK reads from YAML
    (`{"search": {"fields": [...]}, "table": {"fields": [...]}, "tabs.0": {...}}`),
    converted here. `metadata_path` (a YAML file) is not supported in the
    sandbox: there is no file system; pass the dict."""
    if metadata_path is not None and not metadata:
        raise InvalidArgument("metadata_path is not supported in a component (no file system): pass metadata as a dict")
    if not metadata:
        raise InvalidArgument("make_cloud_service_type: metadata is required")
    return CloudServiceType(
        name=name,
        group=group,
        provider=provider,
        metadata=convert_cloud_service_type_meta(metadata),
        is_primary=is_primary,
        is_major=is_major,
        service_code=service_code,
        tags=tags or {},
        labels=labels or [],
    ).dict()


def make_cloud_service(
    name: str,
    cloud_service_type: str,
    cloud_service_group: str,
    provider: str,
    data: dict = None,
    ip_addresses: list = None,
    account: str = None,
    instance_type: str = None,
    instance_size: float = None,
    region_code: str = None,
    reference: dict = None,
    tags: dict = None,
    launched_at: str = None,
    metadata: dict = None,
) -> dict:
    """A cloud service; its metadata points the console at its type's
    layout (as CloudForet's SDK does) unless `metadata` is given."""
    return CloudService(
        name=name,
        cloud_service_type=cloud_service_type,
        cloud_service_group=cloud_service_group,
        provider=provider,
        data=data if data is not None else {},
        metadata=metadata if metadata is not None else convert_cloud_service_meta(provider, cloud_service_group, cloud_service_type),
        ip_addresses=ip_addresses or [],
        account=account,
        instance_type=instance_type,
        instance_size=instance_size,
        region_code=region_code,
        reference=reference,
        tags=tags or {},
        launched_at=launched_at,
    ).dict()


def make_region(name: str, region_code: str, provider: str, tags: dict = None) -> dict:
    return Region(name=name, region_code=region_code, provider=provider, tags=tags or {}).dict()


def make_namespace(namespace_id: str, name: str, group: str, provider: str, category: str = "ASSET",
                   resource_type: str = "inventory.CloudService", icon: str = None, tags: dict = None) -> dict:
    return Namespace(namespace_id=namespace_id, name=name, group=group, provider=provider, category=category,
                     resource_type=resource_type, icon=icon, tags=tags or {}).dict()


def make_metric(metric_id: str, name: str, namespace_id: str, provider: str, metric_type: str = "GAUGE",
                resource_type: str = "inventory.CloudService", unit: dict = None, query_options: dict = None,
                tags: dict = None) -> dict:
    return Metric(metric_id=metric_id, name=name, namespace_id=namespace_id, provider=provider,
                  metric_type=metric_type, resource_type=resource_type, unit=unit or {},
                  query_options=query_options or {}, tags=tags or {}).dict()


def make_response(
    match_keys: list = None,
    cloud_service_type: dict = None,
    cloud_service: dict = None,
    region: dict = None,
    metric: dict = None,
    namespace: dict = None,
    resource_type: str = "inventory.CloudService",
) -> dict:
    """One successful record of `Collector.collect`."""
    key = RESOURCE_KEYS.get(resource_type)
    if key is None:
        raise InvalidArgument(f"make_response: resource type {resource_type!r} is not supported")
    given = {"cloud_service_type": cloud_service_type, "cloud_service": cloud_service, "region": region,
             "metric": metric, "namespace": namespace}
    if given[key] is None:
        raise InvalidArgument(f"make_response: {resource_type} needs {key}")
    return {"state": "SUCCESS", "resource_type": resource_type, "match_keys": match_keys or [], key: given[key]}


def make_error_response(
    error: Exception,
    provider: str,
    cloud_service_group: str,
    cloud_service_type: str,
    resource_type: str = "inventory.CloudService",
    region_name: str = "",
) -> dict:
    """An `inventory.ErrorResource`: this part failed, the collection goes on."""
    message = error.message if isinstance(error, CollectorError) else str(error)
    if not message:
        message = type(error).__name__
    _LOGGER.error(f"[make_error_response] {provider}.{cloud_service_group}.{cloud_service_type}: {message}")
    return {
        "state": "FAILURE",
        "resource_type": "inventory.ErrorResource",
        "error_message": message,
        "error_data": ErrorResource(message=message, provider=provider, cloud_service_group=cloud_service_group,
                                    cloud_service_type=cloud_service_type, resource_type=resource_type).dict(),
    }
