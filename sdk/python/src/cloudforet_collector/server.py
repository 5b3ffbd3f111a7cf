"""The collector's handlers and how the host's calls reach them.

Like CloudForet's `CollectorPluginServer`, a collector registers one function
per plugin method:

    app = CollectorPluginServer(name="my-collector", version="0.1.0")

    @app.route("Collector.collect")
    def collector_collect(params: dict):
        yield make_response(...)

| method              | params                                      | answer |
|---------------------|---------------------------------------------|--------|
| `Collector.init`    | `options`                                   | `{"metadata": {...}}` |
| `Collector.verify`  | `options`, `secret_data`                    | None (raise to refuse) |
| `Job.get_tasks`     | `options`, `secret_data`                    | `{"tasks": [{"task_options": {...}}]}` |
| `Collector.collect` | `options`, `secret_data`, `task_options`    | an iterable of responses |

Every handler is optional: `init` answers the default metadata, `verify`
accepts, `get_tasks` answers one task with empty options. `secret_data`
holds `[host-injected]` in place of `password`, `token` and `api_key`: ask
the host to authenticate a request (`http.post(..., auth=http.BASIC)`).

`name` and `version` are the component's identity (the `cloudforet-plugin`
custom section the build writes): cf-host's registry serves it by name and
hot-swaps it by version.
"""

import json
import logging
import re

from . import _host, hostlog
from .errors import CollectorError, Internal, InvalidArgument

__all__ = ["CollectorPluginServer", "METHODS", "BATCH_SIZE", "current_app"]

METHODS = ("Collector.init", "Collector.verify", "Job.get_tasks", "Collector.collect")
#: Records per `emit` call: one boundary crossing per batch.
BATCH_SIZE = 100

DEFAULT_METADATA = {
    "supported_resource_type": ["inventory.CloudService", "inventory.CloudServiceType", "inventory.Region"],
    "supported_schedules": ["hours"],
    "supported_features": [],
    "options_schema": {},
}

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")

_app = None


def current_app():
    """The collector this component serves (the last one created)."""
    if _app is None:
        raise Internal("the component defines no CollectorPluginServer")
    return _app


class CollectorPluginServer:
    def __init__(self, name: str, version: str, log_level=logging.INFO):
        if not _NAME.match(name or ""):
            raise ValueError(f"plugin name {name!r} must be letters, digits, '-' or '_'")
        if not _SEMVER.match(version or ""):
            raise ValueError(f"plugin version {version!r} must be semver (x.y.z)")
        self.name = name
        self.version = version
        self.handlers = {}
        hostlog.install(log_level)
        global _app
        _app = self

    def route(self, method: str):
        """Registers the decorated function for a plugin method."""
        if method not in METHODS:
            raise ValueError(f"unknown plugin method {method!r}: one of {', '.join(METHODS)}")

        def register(fn):
            self.handlers[method] = fn
            return fn

        return register

    # The host's four calls, on plain Python values. `_edge` converts them
    # from and to WIT; the SDK's tests call them directly.

    def init(self, options: dict) -> dict:
        """Answers the plugin metadata (keys as in CloudForet's SDK)."""
        handler = self.handlers.get("Collector.init")
        answer = _call(handler, {"options": options}) if handler else None
        metadata = dict(DEFAULT_METADATA)
        if answer is not None:
            if not isinstance(answer, dict):
                raise Internal(f"Collector.init answered {type(answer).__name__}, not a dict")
            metadata.update(answer.get("metadata", answer))
        if "supported_resource_types" in metadata:
            metadata["supported_resource_type"] = metadata.pop("supported_resource_types")
        return metadata

    def verify(self, options: dict, secret_data: dict) -> None:
        handler = self.handlers.get("Collector.verify")
        if handler:
            _call(handler, {"options": options, "secret_data": secret_data})

    def get_tasks(self, options: dict, secret_data: dict) -> list:
        """Answers the tasks' options (a list of dicts)."""
        handler = self.handlers.get("Job.get_tasks")
        if handler is None:
            return [{}]
        answer = _call(handler, {"options": options, "secret_data": secret_data})
        tasks = answer.get("tasks", []) if isinstance(answer, dict) else answer
        out = []
        for t in tasks or []:
            if not isinstance(t, dict):
                raise Internal(f"Job.get_tasks: a task is {type(t).__name__}, not a dict")
            out.append(t.get("task_options", {}))
        return out

    def collect(self, options: dict, secret_data: dict, task_options: dict, batch_size: int = BATCH_SIZE):
        """Runs `Collector.collect`, hands its responses to the host in
        batches and answers (emitted, errors). Stops early when the host
        says stop (the consumer went away or a limit was reached)."""
        handler = self.handlers.get("Collector.collect")
        if handler is None:
            raise Internal("the collector has no Collector.collect handler")
        host = _host.current()
        results = _call(handler, {"options": options, "secret_data": secret_data, "task_options": task_options})
        emitted = errors = 0
        batch = []

        def flush():
            nonlocal emitted, errors, batch
            stop, rejected = host.emit(batch)
            emitted += len(batch)
            errors += sum(1 for r in batch if r.get("state") == "FAILURE")
            if rejected:
                first = rejected[0]
                host.log("warn", f"host rejected {len(rejected)} record(s) of a batch: {first[1]}",
                         [("count", str(len(rejected))), ("first_index", str(first[0]))])
            batch = []
            return stop

        if results is None:
            results = ()
        iterator = iter([results] if isinstance(results, dict) else results)
        try:
            while True:
                try:
                    response = next(iterator)
                except StopIteration:
                    break
                except CollectorError:
                    raise
                except Exception as e:
                    raise Internal(f"Collector.collect failed: {type(e).__name__}: {e}") from e
                if response is None:
                    continue
                if not isinstance(response, dict):
                    raise Internal(f"Collector.collect yielded {type(response).__name__}, not a response dict")
                batch.append(response)
                if len(batch) >= batch_size and flush():
                    return emitted, errors
            if batch:
                flush()
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()
        return emitted, errors


def _call(handler, params: dict):
    try:
        return handler(params)
    except CollectorError:
        raise
    except Exception as e:
        raise Internal(f"{getattr(handler, '__name__', 'handler')} failed: {type(e).__name__}: {e}") from e


def parse_json_object(text: str, what: str) -> dict:
    """The host's JSON text (options, secret, task options) as a dict."""
    try:
        value = json.loads(text) if text else {}
    except ValueError as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value
