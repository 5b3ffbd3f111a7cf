"""Environment for running CloudForet's real inventory service in one process.

Only what lies outside the inventory service is replaced:

- MongoDB: mongomock, through mongoengine's ``mongo_client_class`` in the
  ``DATABASES`` setting the inventory reads anyway;
- the Redis cache: spaceone-core's own ``RedisCache`` with its connection
  replaced by ``fakeredis.FakeRedis`` (fakeredis is a dependency of
  spaceone-inventory itself);
- the Redis queue: ``MemoryQueue``, named as the ``collector_q`` backend in
  ``QUEUES`` (tasks are drained by ``drain_queue``, which executes each task
  the way spaceone-core's ``BaseWorker.run`` does, without its endless loop
  and process);
- the other CloudForet services (plugin, repository, secret, identity):
  ``FixtureSpaceConnector``, named as the ``SpaceConnector`` backend in
  ``CONNECTORS``. A connector opened with ``service=...`` answers from
  ``FAKES`` (responses are round-tripped through the spaceone-api message
  types, as a real gRPC answer would be); a connector opened with
  ``endpoint=...`` (the plugin) is spaceone-core's real SpaceConnector;
- the clock: ``CLOCK`` shifts ``datetime.utcnow()``/``now()`` in spaceone
  modules, and ``time.sleep`` there returns at once (recorded).

Nothing here changes how the inventory code works. Observation hooks record
what the real SpaceConnector sends to the plugin (metadata, attempts) and
what the plugin streams back (``STREAM``).
"""

import collections
import copy
import datetime as _dt
import json
import logging
import re
import sys
import time as _time

_LOGGER = logging.getLogger("cf_fixture")

CF_VERSION = None  # "2" or "1.12", set by configure()


# ---------------------------------------------------------------- clock --


class FakeClock:
    def __init__(self):
        self.offset = _dt.timedelta(0)
        self.sleeps = []

    def advance(self, hours: float) -> None:
        self.offset += _dt.timedelta(hours=hours)

    def hours(self) -> float:
        return self.offset.total_seconds() / 3600.0


CLOCK = FakeClock()


class _ShiftedDatetime(_dt.datetime):
    """datetime whose utcnow()/now() are shifted by CLOCK.offset."""

    @classmethod
    def utcnow(cls):
        return _dt.datetime.utcnow() + CLOCK.offset

    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.now(tz) + CLOCK.offset


class _NoSleepTime:
    """Stand-in for the ``time`` module in spaceone modules: sleep returns."""

    def __getattr__(self, name):
        return getattr(_time, name)

    @staticmethod
    def sleep(seconds):
        CLOCK.sleeps.append(seconds)


def patch_clock() -> list:
    """Point every loaded spaceone module's ``datetime``/``time`` names at
    the fixture clock. Returns the patched module names."""
    patched = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("spaceone.") or module is None:
            continue
        d = getattr(module, "datetime", None)
        if d is _dt.datetime:
            setattr(module, "datetime", _ShiftedDatetime)
            patched.append(name + ".datetime")
        t = getattr(module, "time", None)
        if t is _time:
            setattr(module, "time", _NoSleepTime())
            patched.append(name + ".time")
    return patched


# ---------------------------------------------------------------- queue --

QUEUE = collections.deque()
QUEUE_LOG = []


class MemoryQueue:
    """In-memory stand-in for spaceone.core.queue.redis_queue.RedisQueue."""

    initialized = True

    def __init__(self, conf=None):
        self.conf = conf

    def put(self, key):
        QUEUE.append(key)
        try:
            task = json.loads(key)
            QUEUE_LOG.append(
                {
                    "name": task.get("name"),
                    "stages": [
                        f'{s.get("name")}.{s.get("method")}'
                        for s in task.get("stages", [])
                    ],
                }
            )
        except Exception:
            QUEUE_LOG.append({"raw": str(key)[:200]})
        return True

    def get(self):
        item = QUEUE.popleft()
        return item.encode() if isinstance(item, str) else item


# ------------------------------------------------- other CloudForet services --


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class FakeServices:
    """The plugin, repository, secret and identity services as a fixture."""

    def __init__(self):
        self.calls = []
        self.roundtrip_errors = []
        self.ids = {
            "domain_id": "domain-fixture",
            "workspace_id": "workspace-fixture",
            "project_id": "project-fixture",
            "service_account_id": "sa-fixture",
            "secret_id": "secret-fixture",
            "plugin_id": "plugin-fixture",
            "schema_id": "nutanix-prism-central",
        }
        self.provider = "nutanix"
        self.plugin_endpoint = None
        self.plugin_version = "1.0.0"
        self.secret_data = {}
        self.capability = {}

    # -- responses ------------------------------------------------------

    def secret_info(self) -> dict:
        i = self.ids
        return {
            "secret_id": i["secret_id"],
            "name": "nutanix-fixture",
            "state": "ENABLED",
            "schema_id": i["schema_id"],
            "provider": self.provider,
            "resource_group": "PROJECT",
            "domain_id": i["domain_id"],
            "workspace_id": i["workspace_id"],
            "project_id": i["project_id"],
            "service_account_id": i["service_account_id"],
        }

    def _secret_matches(self, query: dict) -> bool:
        info = self.secret_info()
        for f in (query or {}).get("filter", []):
            k = f.get("k") or f.get("key")
            v = f.get("v") if "v" in f else f.get("value")
            o = f.get("o") or f.get("operator") or "eq"
            have = info.get(k)
            if k not in info:
                continue
            if o == "eq" and have != v:
                return False
            if o == "in" and have not in (v or []):
                return False
            if o == "not_in" and have in (v or []):
                return False
        return True

    def handle(self, service: str, method: str, params: dict, kwargs: dict):
        params = params or {}
        self.calls.append(
            {
                "service": service,
                "method": method,
                "params": _redact(params),
                "kwargs": {k: v for k, v in kwargs.items() if k != "token"},
            }
        )
        key = f"{service}:{method}"
        if key == "plugin:Plugin.get_plugin_endpoint":
            resp = {"endpoint": self.plugin_endpoint}
        elif key == "repository:Plugin.get":
            resp = {
                "plugin_id": self.ids["plugin_id"],
                "name": "nutanix-inven-collector",
                "state": "ENABLED",
                "resource_type": "inventory.Collector",
                "image": "registry.example.com/cloudforet/cf-host-nutanix",
                "provider": self.provider,
                "capability": copy.deepcopy(self.capability),
                "labels": ["Nutanix", "AHV", "Prism Central"],
            }
        elif key == "secret:Secret.list":
            results = (
                [self.secret_info()]
                if self._secret_matches(params.get("query"))
                else []
            )
            resp = {"results": results, "total_count": len(results)}
        elif key == "secret:Secret.get":
            resp = self.secret_info()
        elif key == "secret:Secret.get_data":
            resp = {"encrypted": False, "data": copy.deepcopy(self.secret_data)}
        elif key == "identity:Workspace.check":
            resp = {}
        elif key == "identity:Project.get":
            resp = {
                "project_id": params.get("project_id"),
                "name": "Fixture project",
                "workspace_id": self.ids["workspace_id"],
                "domain_id": self.ids["domain_id"],
            }
        elif key == "identity:ServiceAccount.list":
            sa = {
                "service_account_id": self.ids["service_account_id"],
                "name": "Nutanix fixture account",
                "provider": self.provider,
                "project_id": self.ids["project_id"],
                "workspace_id": self.ids["workspace_id"],
                "domain_id": self.ids["domain_id"],
            }
            resp = {"results": [sa], "total_count": 1}
        elif key in (
            "identity:ServiceAccount.analyze",
            "identity:Workspace.analyze",
        ):
            # CloudForet's managed IAM metrics; the fixture has no IAM data.
            resp = {"results": []}
        elif key in ("identity:RoleBinding.list", "identity:User.list"):
            resp = {"results": [], "total_count": 0}
        elif key == "repository:Plugin.get_versions":
            resp = {"results": [self.plugin_version], "total_count": 1}
        else:
            from spaceone.core.error import ERROR_NOT_FOUND

            raise ERROR_NOT_FOUND(key="fixture", value=key)
        return self._roundtrip(service, method, resp)

    def _roundtrip(self, service: str, method: str, resp: dict) -> dict:
        """Pass the answer through the spaceone-api message type the real
        service answers with, as gRPC + MessageToDict would."""
        from google.protobuf.json_format import MessageToDict, ParseDict
        from google.protobuf import symbol_database

        resource, verb = method.split(".")
        module_name = _camel_to_snake(resource) + "_pb2"
        for version in ("v2", "v1"):
            path = f"spaceone.api.{service}.{version}.{module_name}"
            try:
                module = __import__(path, fromlist=[module_name])
            except Exception:
                continue
            svc = module.DESCRIPTOR.services_by_name.get(resource)
            if svc is None or verb not in svc.methods_by_name:
                continue
            out = svc.methods_by_name[verb].output_type
            try:
                cls = symbol_database.Default().GetSymbol(out.full_name)
                msg = ParseDict(resp, cls())
                return MessageToDict(msg, preserving_proto_field_name=True)
            except Exception as e:
                self.roundtrip_errors.append(f"{path} {method}: {e}")
                return resp
        self.roundtrip_errors.append(f"no spaceone-api type for {service} {method}")
        return resp


def _redact(value):
    if isinstance(value, dict):
        return {
            k: ("***" if k in ("password", "api_key", "token") else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


FAKES = FakeServices()


# ------------------------------------------------------------ connectors --

PLUGIN_CALLS = []  # one entry per intercepted gRPC call to the plugin
PLUGIN_METADATA = []  # (method, metadata) as SpaceConnector built it


def _base_space_connector():
    from spaceone.core.connector.space_connector import SpaceConnector

    return SpaceConnector


def make_connector_class():
    Base = _base_space_connector()

    class FixtureSpaceConnector(Base):
        name = "SpaceConnector"

        def __init__(self, *args, **kwargs):
            service = kwargs.get("service")
            if service and not kwargs.get("endpoint"):
                # Another CloudForet service: answered by FAKES, no channel.
                from spaceone.core.base import CoreObject

                CoreObject.__init__(self)
                self._fixture_service = service
                self._service = service
                self._endpoint = None
                self._token = kwargs.get("token")
                return
            self._fixture_service = None
            super().__init__(*args, **kwargs)

        def dispatch(self, method, params=None, **kwargs):
            if self._fixture_service:
                return FAKES.handle(self._fixture_service, method, params, kwargs)
            self._fixture_method = method
            return super().dispatch(method, params, **kwargs)

        def _get_connection_metadata(self, *args, **kwargs):
            md = super()._get_connection_metadata(*args, **kwargs)
            PLUGIN_METADATA.append(
                {
                    "method": getattr(self, "_fixture_method", None),
                    "metadata": [
                        [k, _describe_token(v) if k == "token" else v] for k, v in md
                    ],
                }
            )
            return md

    return FixtureSpaceConnector


def _describe_token(value: str) -> str:
    if value in ("NO_TOKEN",):
        return value
    if value == SYSTEM_TOKEN:
        return "<system token (config TOKEN)>"
    if value == USER_TOKEN:
        return "<caller's token>"
    return "<other token>"


def _jwt(payload: dict) -> str:
    import base64

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f'{b64({"alg": "none", "typ": "JWT"})}.{b64(payload)}.fixture'


SYSTEM_TOKEN = _jwt({"typ": "SYSTEM_TOKEN", "own": "SYSTEM", "did": "domain-root"})
USER_TOKEN = _jwt(
    {
        "typ": "ACCESS_TOKEN",
        "own": "USER",
        "did": "domain-fixture",
        "wid": "workspace-fixture",
        "rol": "DOMAIN_ADMIN",
    }
)


def install_attempt_counter() -> None:
    """Count the RPC attempts spaceone-core's retrying interceptor makes."""
    import importlib

    # spaceone.core.pygrpc exports a function named ``client``: take the module.
    grpc_client = importlib.import_module("spaceone.core.pygrpc.client")
    cls = grpc_client._ClientInterceptor
    if getattr(cls, "_fixture_wrapped", False):
        return
    original = cls._retry_call

    def _retry_call(self, continuation, client_call_details, request, is_stream):
        rec = {
            "method": client_call_details.method,
            "channel": getattr(self, "_channel_key", None),
            "attempts": 0,
            "error": None,
        }
        PLUGIN_CALLS.append(rec)
        started = _time.monotonic()

        def counted(details, req):
            rec["attempts"] += 1
            return continuation(details, req)

        try:
            return original(self, counted, client_call_details, request, is_stream)
        except Exception as e:
            rec["error"] = describe_error(e)
            raise
        finally:
            # for a stream: until the call was set up, not until it ended
            rec["elapsed_s"] = round(_time.monotonic() - started, 3)

    cls._retry_call = _retry_call
    cls._fixture_wrapped = True


REFLECTION_WORKAROUND_HITS = []


def install_112_reflection_workaround() -> None:
    """DIAGNOSTIC ONLY (``--work-around-112-reflection``): spaceone-core
    1.12 derives a Python module name from each reflected file name with
    ``re.findall(r'%s/(.*?).proto' % package, proto_name)[0]``; a file named
    without its package path (``health.proto``) raises IndexError ("list
    index out of range") and the plugin cannot be used. This falls back to
    the file's base name, which is what a correctly named file gives, so the
    rest of the 1.12 path can be observed. Every use is recorded; a run that
    needs it shows a plugin real CloudForet 1.12 rejects."""
    import importlib
    import os

    grpc_client = importlib.import_module("spaceone.core.pygrpc.client")
    cls = getattr(grpc_client, "_GRPCClient", None)
    if cls is None or getattr(cls, "_fixture_wrapped", False):
        return
    original = cls._parse_proto_name

    def _parse_proto_name(proto_name, package):
        try:
            return original(proto_name, package)
        except IndexError:
            name = os.path.basename(proto_name)[: -len(".proto")]
            REFLECTION_WORKAROUND_HITS.append(
                {"file": proto_name, "package": package, "module": name}
            )
            return name

    cls._parse_proto_name = staticmethod(_parse_proto_name)
    cls._fixture_wrapped = True


def describe_error(e) -> dict:
    d = {"type": type(e).__name__}
    for attr in ("error_code", "status_code", "message"):
        v = getattr(e, attr, None)
        if v is not None:
            d[attr] = str(v)
    meta = getattr(e, "meta", None)
    if isinstance(meta, dict) and meta:
        d["meta"] = {k: str(v) for k, v in meta.items()}
    if "message" not in d:
        d["message"] = str(e)
    return d


# --------------------------------------------------------------- stream tee --

STREAM = {"runs": []}


def install_stream_tee(rewrites=None) -> None:
    """Record what the plugin's collect stream carries before the inventory
    sees it; optionally rewrite records (``rewrites``: functions taking and
    returning a ResourceInfo dict) to try what a plugin fix would change."""
    from spaceone.inventory.manager import collector_plugin_manager as cpm

    cls = cpm.CollectorPluginManager
    if getattr(cls, "_fixture_wrapped", False):
        return
    original = cls.collect

    def collect(self, *args, **kwargs):
        stream = original(self, *args, **kwargs)
        run = STREAM["runs"][-1] if STREAM["runs"] else None

        def gen():
            for item in stream:
                for fn in rewrites or []:
                    item = fn(item)
                if run is not None:
                    rt = item.get("resource_type")
                    key = f'{rt}:{item.get("state")}'
                    run["counts"][key] = run["counts"].get(key, 0) + 1
                    res = item.get("resource") or {}
                    keys = run["resource_keys"].setdefault(rt, [])
                    for k in res:
                        if k not in keys:
                            keys.append(k)
                    samples = run["samples"].setdefault(rt, [])
                    if len(samples) < 2:
                        samples.append(_redact(copy.deepcopy(item)))
                yield item

        return gen()

    cls.collect = collect
    cls._fixture_wrapped = True


def new_stream_run(index: int) -> None:
    STREAM["runs"].append(
        {"run": index, "counts": {}, "resource_keys": {}, "samples": {}}
    )


# ------------------------------------------------------------- configure --


def configure(cf_version: str, harness_module: str = "cf_fixture_env") -> None:
    """Load the inventory's own settings, then point its database, queue and
    service connectors at the fixture."""
    global CF_VERSION
    CF_VERSION = cf_version

    import mongomock
    from spaceone.core import config

    config.init_conf(package="spaceone.inventory")
    config.set_service_config()

    endpoints = {
        "identity": "grpc://identity.fixture:50051",
        "plugin": "grpc://plugin.fixture:50051",
        "repository": "grpc://repository.fixture:50051",
        "secret": "grpc://secret.fixture:50051",
        "config": "grpc://config.fixture:50051",
        "file_manager": "grpc://file-manager.fixture:50051",
    }
    if cf_version == "2":
        connector_backend = f"{harness_module}:FixtureSpaceConnector"
    else:
        connector_backend = f"{harness_module}.FixtureSpaceConnector"

    connectors = config.get_global("CONNECTORS", {}) or {}
    connectors["SpaceConnector"] = {
        "backend": connector_backend,
        "endpoints": endpoints,
    }

    database = {
        "engine": "MongoModel",  # read by spaceone-core 2.x
        "db": "inventory",
        "host": "mongodb://127.0.0.1:27017",
        "username": "fixture",
        "password": "fixture",
        "mongo_client_class": mongomock.MongoClient,
    }

    redis_conf = {"host": "127.0.0.1", "port": 6379, "db": 0}
    if cf_version == "2":
        cache_default = dict(redis_conf, engine="RedisCache")
    else:
        cache_default = dict(redis_conf, backend="spaceone.core.cache.redis_cache.RedisCache")
    _use_fakeredis()

    config.set_global_force(
        DATABASES={"default": database},
        DATABASE_AUTO_CREATE_INDEX=True,
        QUEUES={"collector_q": {"backend": f"{harness_module}.MemoryQueue"}},
        collect_queue="collector_q",
        CONNECTORS=connectors,
        TOKEN=SYSTEM_TOKEN,
        CACHES={"default": cache_default},
        HANDLERS={},
        LOG={},
    )

    # The gRPC server and the scheduler/worker both install spaceone-core's
    # tracer at start; without it spans are not sampled and spaceone-core
    # keys transactions by thread instead of trace id (their metadata,
    # e.g. the caller's token, would not reach the managers).
    from spaceone.core.opentelemetry import set_tracer

    set_tracer()

    # The connector class must exist in this module under the configured name.
    globals()["FixtureSpaceConnector"] = make_connector_class()


FAKE_REDIS = None


def _use_fakeredis() -> None:
    """spaceone-core's RedisCache, talking to an in-process fakeredis."""
    global FAKE_REDIS
    import fakeredis
    from spaceone.core.cache.redis_cache import RedisCache

    FAKE_REDIS = fakeredis.FakeRedis()
    RedisCache._get_connection = lambda self, pool: FAKE_REDIS


def init_models() -> None:
    """Connect the models as the service does at start."""
    from spaceone.core import config

    if CF_VERSION == "2":
        from spaceone.core import model

        model.init_all()
    else:
        # spaceone-core 1.12 connects each model lazily (Locator.get_model);
        # import them all now so the clock patch reaches them.
        __import__("spaceone.inventory.model", fromlist=["*"])
    __import__("spaceone.inventory.manager", fromlist=["*"])
    __import__("spaceone.inventory.service", fromlist=["*"])
    __import__("spaceone.inventory.info", fromlist=["*"])
    _ = config


# ------------------------------------------------------------------ worker --

TASK_EXCEPTIONS = []


def drain_queue(max_tasks: int = 10000) -> int:
    """Execute queued tasks as spaceone-core's BaseWorker.run does
    (json-decode, SpaceoneTask(...).execute()), until the queue is empty."""
    from spaceone.core.scheduler import worker as core_worker
    from spaceone.core.transaction import delete_transaction

    single = core_worker.SingleTask
    if not getattr(single, "_fixture_wrapped", False):
        original = single.execute

        def execute(self):
            try:
                return original(self)
            except Exception as e:
                cause = e.__context__ or e.__cause__
                TASK_EXCEPTIONS.append(
                    {
                        "task": f"{self.name}.{self.method}",
                        "error": describe_error(e),
                        "cause": describe_error(cause) if cause else None,
                    }
                )
                raise

        single.execute = execute
        single._fixture_wrapped = True

    done = 0
    while QUEUE and done < max_tasks:
        binary_task = MemoryQueue().get()
        # A worker process keeps one thread-local transaction across tasks;
        # start each task clean so runs do not depend on the previous one.
        delete_transaction()
        try:
            json_task = json.loads(binary_task.decode())
            core_worker.SpaceoneTask(json_task).execute()
        except Exception as e:  # BaseWorker.run logs and continues
            TASK_EXCEPTIONS.append({"task": "decode", "error": describe_error(e)})
        done += 1
    return done
