"""The WIT edge: the component's `collector` export and the host's imports,
converted to and from the SDK's plain Python values. No collector logic
lives here (the same split as guest-nutanix's `component.rs`).

Imported only inside the component build (componentize-py generates the
`wit_world` bindings for `cloudforet:collector/plugin`); the build writes an
entry module that imports the collector, then `Collector` from here.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import collector as wit_collector
from wit_world.imports import emit as wit_emit
from wit_world.imports import http as wit_http
from wit_world.imports import log as wit_log
from wit_world.imports import state as wit_state
from wit_world.imports import types as wit_types

from . import _host, http
from .errors import CollectorError, Internal
from .server import current_app, parse_json_object
from .state import StateError

_METHODS = {
    "GET": wit_http.Method.GET,
    "HEAD": wit_http.Method.HEAD,
    "POST": wit_http.Method.POST,
    "PUT": wit_http.Method.PUT,
    "PATCH": wit_http.Method.PATCH,
    "DELETE": wit_http.Method.DELETE,
}
_LEVELS = {
    "trace": wit_log.Level.TRACE,
    "debug": wit_log.Level.DEBUG,
    "info": wit_log.Level.INFO,
    "warn": wit_log.Level.WARN,
    "error": wit_log.Level.ERROR,
}
_ERRORS = {
    "invalid-argument": wit_types.CollectorError_InvalidArgument,
    "unauthenticated": wit_types.CollectorError_Unauthenticated,
    "permission-denied": wit_types.CollectorError_PermissionDenied,
    "not-found": wit_types.CollectorError_NotFound,
    "unavailable": wit_types.CollectorError_Unavailable,
    "timeout": wit_types.CollectorError_Timeout,
    "resource-exhausted": wit_types.CollectorError_ResourceExhausted,
    "internal": wit_types.CollectorError_Internal,
}


def _json_text(value, what: str) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _tags(tags) -> list:
    if not tags:
        return []
    if isinstance(tags, dict):
        return [(str(k), "" if v is None else str(v)) for k, v in tags.items()]
    return [(str(k), str(v)) for k, v in tags]


def _opt_str(v):
    return None if v is None else str(v)


def _cloud_service(c: dict):
    ref = c.get("reference") or {}
    data = c.get("json_data") if c.get("data") is None else c.get("data")
    metadata = c.get("json_metadata") if c.get("metadata") is None else c.get("metadata")
    size = c.get("instance_size")
    return wit_emit.Item_CloudService(wit_emit.CloudService(
        name=c.get("name") or "",
        provider=c.get("provider") or "",
        cloud_service_group=c.get("cloud_service_group") or "",
        cloud_service_type=c.get("cloud_service_type") or "",
        account=_opt_str(c.get("account")),
        region_code=_opt_str(c.get("region_code")),
        instance_type=_opt_str(c.get("instance_type")),
        instance_size=None if size is None else float(size),
        ip_addresses=[str(ip) for ip in c.get("ip_addresses") or []],
        tags=_tags(c.get("tags")),
        reference=wit_emit.Reference(str(ref.get("resource_id") or ""), _opt_str(ref.get("external_link"))),
        launched_at=_opt_str(c.get("launched_at")),
        data=_json_text(data, "data"),
        metadata=_json_text(metadata, "metadata"),
    ))


def _cloud_service_type(t: dict):
    metadata = t.get("json_metadata") if t.get("metadata") is None else t.get("metadata")
    return wit_emit.Item_CloudServiceType(wit_emit.CloudServiceType(
        name=t.get("name") or "",
        group=t.get("group") or "",
        provider=t.get("provider") or "",
        service_code=_opt_str(t.get("service_code")),
        is_primary=bool(t.get("is_primary")),
        is_major=bool(t.get("is_major")),
        labels=[str(x) for x in t.get("labels") or []],
        tags=_tags(t.get("tags")),
        metadata=_json_text(metadata, "metadata"),
    ))


def _region(r: dict):
    return wit_emit.Item_Region(wit_emit.Region(
        name=r.get("name") or "", region_code=r.get("region_code") or "", provider=r.get("provider") or "", tags=_tags(r.get("tags"))))


def _namespace(n: dict):
    return wit_emit.Item_Namespace(wit_emit.Namespace(
        namespace_id=n.get("namespace_id") or "", name=n.get("name") or "", category=n.get("category") or "",
        resource_type=n.get("resource_type") or "", group=n.get("group") or "", provider=n.get("provider") or "",
        icon=_opt_str(n.get("icon")), tags=_tags(n.get("tags"))))


def _metric(m: dict):
    kind = wit_emit.MetricType.COUNTER if str(m.get("metric_type", "")).upper() == "COUNTER" else wit_emit.MetricType.GAUGE
    return wit_emit.Item_Metric(wit_emit.Metric(
        metric_id=m.get("metric_id") or "", name=m.get("name") or "", metric_type=kind,
        resource_type=m.get("resource_type") or "", namespace_id=m.get("namespace_id") or "",
        provider=m.get("provider") or "", unit=_json_text(m.get("unit"), "unit"),
        query_options=_json_text(m.get("query_options"), "query_options"), tags=_tags(m.get("tags"))))


def _error(response: dict):
    data = response.get("error_data") or {}
    return wit_emit.Item_ErrorResource(wit_emit.ErrorResource(
        message=str(response.get("error_message") or data.get("message") or "error"),
        provider=str(data.get("provider") or ""),
        cloud_service_group=str(data.get("cloud_service_group") or ""),
        cloud_service_type=str(data.get("cloud_service_type") or ""),
        resource_type=str(data.get("resource_type") or "inventory.CloudService"),
    ))


_ITEMS = {
    "inventory.CloudService": ("cloud_service", _cloud_service),
    "inventory.CloudServiceType": ("cloud_service_type", _cloud_service_type),
    "inventory.Region": ("region", _region),
    "inventory.Namespace": ("namespace", _namespace),
    "inventory.Metric": ("metric", _metric),
}


def to_item(response: dict):
    """One response dict (`make_response` / `make_error_response`) as a WIT item."""
    if response.get("state") == "FAILURE" or response.get("resource_type") == "inventory.ErrorResource":
        return _error(response)
    kind = _ITEMS.get(response.get("resource_type", "inventory.CloudService"))
    if kind is None:
        return _error({"error_message": f"unsupported resource type {response.get('resource_type')!r}"})
    key, convert = kind
    record = response.get(key)
    if not isinstance(record, dict):
        return _error({"error_message": f"a {response.get('resource_type')} response without {key}"})
    return convert(record)


def _credential(c):
    if c is None:
        return None
    if c[0] == "basic":
        return wit_http.Credential_Basic()
    if c[0] == "bearer":
        return wit_http.Credential_Bearer()
    if c[0] == "api-key":
        return wit_http.Credential_ApiKey(c[1])
    raise http.InvalidRequest(f"unknown credential {c!r}")


def _http_error(e):
    v = e.value
    if isinstance(v, wit_http.HttpError_Denied):
        return http.Denied(v.value)
    if isinstance(v, wit_http.HttpError_InvalidRequest):
        return http.InvalidRequest(v.value)
    if isinstance(v, wit_http.HttpError_Timeout):
        return http.Timeout("timed out")
    if isinstance(v, wit_http.HttpError_Connection):
        return http.ConnectionFailed(v.value)
    if isinstance(v, wit_http.HttpError_Tls):
        return http.TlsError(v.value)
    if isinstance(v, wit_http.HttpError_TooLarge):
        return http.TooLarge(v.value)
    return http.HttpError(str(v))


def _state_error(e):
    v = e.value
    return StateError(f"over the host's state limit of {v.value}" if isinstance(v, wit_state.StateError_TooLarge) else f"state unavailable: {v.value}")


class WitHost(_host.Host):
    """The SDK's host interface over the WIT imports."""

    def send(self, method, url, headers, body, timeout_ms, credential):
        m = _METHODS.get(method)
        if m is None:
            raise http.InvalidRequest(f"method {method} is not supported")
        req = wit_http.Request(m, url, headers, body, timeout_ms)
        try:
            cred = _credential(credential)
            r = wit_http.send(req) if cred is None else wit_http.send_authenticated(req, cred)
        except Err as e:
            raise _http_error(e) from None
        return r.status, r.headers, r.body

    def emit(self, responses):
        ack = wit_emit.emit([to_item(r) for r in responses])
        return ack.flow == wit_emit.Flow.STOP, [(r.index, r.reason) for r in ack.rejected]

    def log(self, level, message, fields):
        wit_log.log(_LEVELS.get(level, wit_log.Level.INFO), message, fields)

    def state_get(self, key):
        try:
            return wit_state.get(key)
        except Err as e:
            raise _state_error(e) from None

    def state_set(self, key, value):
        try:
            wit_state.set(key, value)
        except Err as e:
            raise _state_error(e) from None

    def state_delete(self, key):
        try:
            wit_state.delete(key)
        except Err as e:
            raise _state_error(e) from None


_host.install(WitHost())


def _wit_error(e: BaseException):
    if isinstance(e, CollectorError):
        return Err(_ERRORS.get(e.code, wit_types.CollectorError_Internal)(e.message or type(e).__name__))
    return Err(wit_types.CollectorError_Internal(f"{type(e).__name__}: {e}"))


class Collector(exports.Collector):
    """The `collector` export: JSON text in, the app's handlers, WIT out."""

    def init(self, options):
        try:
            m = current_app().init(parse_json_object(options, "options"))
            return wit_collector.PluginMetadata(
                supported_resource_types=[str(x) for x in m.get("supported_resource_type") or []],
                supported_schedules=[str(x) for x in m.get("supported_schedules") or []],
                supported_features=[str(x) for x in m.get("supported_features") or []],
                options_schema=_json_text(m.get("options_schema"), "options_schema"),
            )
        except Exception as e:
            raise _wit_error(e) from None

    def verify(self, options, secret):
        try:
            current_app().verify(parse_json_object(options, "options"), parse_json_object(secret, "secret"))
        except Exception as e:
            raise _wit_error(e) from None

    def get_tasks(self, options, secret):
        try:
            tasks = current_app().get_tasks(parse_json_object(options, "options"), parse_json_object(secret, "secret"))
            return [wit_collector.Task(_json_text(t, "task_options")) for t in tasks]
        except Exception as e:
            raise _wit_error(e) from None

    def collect(self, options, secret, task_options):
        try:
            emitted, errors = current_app().collect(
                parse_json_object(options, "options"),
                parse_json_object(secret, "secret"),
                parse_json_object(task_options, "task options"),
            )
            return wit_collector.Summary(emitted, errors)
        except Exception as e:
            raise _wit_error(e) from None
