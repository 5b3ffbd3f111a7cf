"""The SDK natively, against a fake host (no component, no cf-host):
models, helpers, layouts, routing, batching, HTTP and state through the host
interface. The WIT edge is exercised by cf-host's own tests, which build the
examples into components and run them (tests/tests/sdk_guests.rs).

    python -m unittest discover -s sdk/python/tests
"""

import logging
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import cloudforet_collector as cf  # noqa: E402
from cloudforet_collector import _host, build, http, state  # noqa: E402
from cloudforet_collector.server import BATCH_SIZE, CollectorPluginServer  # noqa: E402


class FakeHost(_host.Host):
    def __init__(self, answers=(), stop_after=None):
        self.answers = list(answers)
        self.sent = []
        self.batches = []
        self.logs = []
        self.kv = {}
        self.stop_after = stop_after

    def send(self, method, url, headers, body, timeout_ms, credential):
        self.sent.append((method, url, headers, body, timeout_ms, credential))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def emit(self, responses):
        self.batches.append(list(responses))
        stop = self.stop_after is not None and len(self.batches) >= self.stop_after
        rejected = [(i, "bad") for i, r in enumerate(responses) if r.get("cloud_service", {}).get("name") == "reject-me"]
        return stop, rejected

    def log(self, level, message, fields):
        self.logs.append((level, message, fields))

    def state_get(self, key):
        return self.kv.get(key)

    def state_set(self, key, value):
        self.kv[key] = value

    def state_delete(self, key):
        self.kv.pop(key, None)


class WithHost(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost()
        self.previous = _host.install(self.host)

    def tearDown(self):
        _host.install(self.previous)


def vm(i, name=None):
    return cf.make_response(cloud_service=cf.make_cloud_service(
        name=name or f"vm-{i}", cloud_service_type="VirtualMachine", cloud_service_group="Compute",
        provider="test", data={"i": i}, reference={"resource_id": f"id-{i}"}))


class Models(unittest.TestCase):
    def test_required_fields_and_types_are_checked(self):
        with self.assertRaisesRegex(cf.ValidationError, "cloud_service_type is required"):
            cf.CloudService(cloud_service_group="g", provider="p")
        with self.assertRaisesRegex(cf.ValidationError, "expected an object"):
            cf.CloudService(cloud_service_type="t", cloud_service_group="g", provider="p", data=[1])
        with self.assertRaisesRegex(cf.ValidationError, "unknown field"):
            cf.Region(region_code="r", provider="p", colour="red")
        r = cf.CloudService(cloud_service_type="t", cloud_service_group="g", provider="p", instance_size=2,
                            reference={"resource_id": "x"})
        self.assertEqual(r.instance_size, 2.0)
        self.assertEqual(r.reference.resource_id, "x")
        self.assertEqual(r.dict()["reference"], {"resource_id": "x", "external_link": None})

    def test_mutable_defaults_are_not_shared(self):
        a = cf.Region(region_code="a", provider="p")
        a.tags["k"] = "v"
        self.assertEqual(cf.Region(region_code="b", provider="p").tags, {})


class Helpers(unittest.TestCase):
    def test_make_cloud_service_points_at_its_types_layout(self):
        s = cf.make_cloud_service(name="n", cloud_service_type="T", cloud_service_group="G", provider="p",
                                  data={"a": 1}, reference={"resource_id": "r"})
        ref = s["metadata"]["view"]["sub_data"]["reference"]
        self.assertEqual(ref["options"], {"provider": "p", "cloud_service_group": "G", "cloud_service_type": "T"})
        self.assertEqual(s["data"], {"a": 1})

    def test_short_form_layouts_expand(self):
        t = cf.make_cloud_service_type(name="T", group="G", provider="p", metadata={
            "search": {"fields": [{"Name": "name"}, {"vCPUs": "data.vcpus", "data_type": "integer"}]},
            "table": {"sort": {"key": "name", "desc": True}, "fields": [{"IPs": "ip_addresses", "type": "list"}]},
            "tabs.1": {"name": "Disks", "type": "table", "root_path": "data.disks", "fields": [{"Size": "size", "type": "size", "display_unit": "GB"}]},
            "tabs.0": {"name": "Main", "type": "item", "fields": [{"UUID": "data.uuid"}]},
        })
        view = t["metadata"]["view"]
        self.assertEqual(view["search"][1], {"name": "vCPUs", "key": "data.vcpus", "type": "text", "data_type": "integer"})
        table = view["table"]["layout"]
        self.assertEqual(table["type"], "query-search-table")
        self.assertEqual(table["options"]["default_sort"], {"key": "name", "desc": True})
        self.assertEqual(table["options"]["fields"][0]["options"], {"delimiter": " "})
        self.assertEqual([l["name"] for l in view["sub_data"]["layouts"]], ["Main", "Disks"])
        self.assertEqual(view["sub_data"]["layouts"][1]["options"]["root_path"], "data.disks")
        self.assertEqual(view["sub_data"]["layouts"][1]["options"]["fields"][0]["options"], {"display_unit": "GB"})
        finished = {"view": {"search": []}}
        self.assertIs(cf.convert_cloud_service_type_meta(finished), finished)
        with self.assertRaises(cf.InvalidArgument):
            cf.make_cloud_service_type(name="T", group="G", provider="p", metadata_path="x.yaml")

    def test_responses(self):
        r = cf.make_response(resource_type="inventory.Region", region=cf.make_region("a", "a", "p"))
        self.assertEqual((r["state"], r["resource_type"]), ("SUCCESS", "inventory.Region"))
        with self.assertRaises(cf.InvalidArgument):
            cf.make_response(resource_type="inventory.Region", cloud_service={})
        with self.assertRaises(cf.InvalidArgument):
            cf.make_response(resource_type="inventory.Nothing", cloud_service={})
        e = cf.make_error_response(cf.ERROR_REQUIRED_PARAMETER(key="host"), "p", "G", "T")
        self.assertEqual(e["state"], "FAILURE")
        self.assertEqual(e["error_message"], "Required parameter. (key = host)")
        self.assertEqual(e["error_data"]["cloud_service_type"], "T")

    def test_spaceone_style_errors_keep_their_case(self):
        self.assertEqual(cf.ERROR_AUTHENTICATE_FAILURE().code, "unauthenticated")
        self.assertIsInstance(cf.ERROR_INVALID_ARGUMENT(key="k", reason="r"), cf.InvalidArgument)
        self.assertEqual(cf.ERROR_NOT_FOUND.__name__, "ERROR_NOT_FOUND")


class Server(WithHost):
    def app(self):
        return CollectorPluginServer(name="t", version="1.2.3")

    def test_identity_is_checked(self):
        with self.assertRaises(ValueError):
            CollectorPluginServer(name="../x", version="1.0.0")
        with self.assertRaises(ValueError):
            CollectorPluginServer(name="x", version="one")
        with self.assertRaises(ValueError):
            self.app().route("Collector.nothing")

    def test_defaults_when_no_handler(self):
        app = self.app()
        self.assertEqual(app.init({})["supported_schedules"], ["hours"])
        self.assertIsNone(app.verify({}, {}))
        self.assertEqual(app.get_tasks({}, {}), [{}])
        with self.assertRaises(cf.Internal):
            app.collect({}, {}, {})

    def test_init_accepts_the_sdks_shape(self):
        app = self.app()
        app.route("Collector.init")(lambda p: {"metadata": {"options_schema": {"type": "object"}, "supported_resource_types": ["x"]}})
        m = app.init({})
        self.assertEqual(m["options_schema"], {"type": "object"})
        self.assertEqual(m["supported_resource_type"], ["x"])

    def test_get_tasks(self):
        app = self.app()
        app.route("Job.get_tasks")(lambda p: {"tasks": [{"task_options": {"k": 1}}, {"task_options": {"k": 2}}]})
        self.assertEqual(app.get_tasks({}, {}), [{"k": 1}, {"k": 2}])

    def test_collect_batches_counts_and_reports_rejections(self):
        app = self.app()

        @app.route("Collector.collect")
        def collect(params):
            self.assertEqual(params["task_options"], {"t": 1})
            for i in range(BATCH_SIZE + 5):
                yield vm(i, "reject-me" if i == 3 else None)
            yield cf.make_error_response(ValueError("lost"), "p", "G", "T")

        emitted, errors = app.collect({}, {}, {"t": 1})
        self.assertEqual((emitted, errors), (BATCH_SIZE + 6, 1))
        self.assertEqual([len(b) for b in self.host.batches], [BATCH_SIZE, 6])
        self.assertTrue(any("host rejected 1 record" in m for _, m, _ in self.host.logs))

    def test_collect_stops_when_the_host_says_stop(self):
        self.host.stop_after = 1
        app = self.app()
        closed = []

        @app.route("Collector.collect")
        def collect(params):
            try:
                for i in range(10 * BATCH_SIZE):
                    yield vm(i)
            finally:
                closed.append(True)

        self.assertEqual(app.collect({}, {}, {}), (BATCH_SIZE, 0))
        self.assertEqual(closed, [True], "the generator is closed")

    def test_handler_errors(self):
        app = self.app()
        app.route("Collector.verify")(lambda p: (_ for _ in ()).throw(cf.ERROR_AUTHENTICATE_FAILURE(message="no")))
        with self.assertRaises(cf.Unauthenticated):
            app.verify({}, {})

        @app.route("Collector.collect")
        def collect(params):
            yield vm(1)
            raise KeyError("boom")

        with self.assertRaisesRegex(cf.Internal, "KeyError"):
            app.collect({}, {}, {})

    def test_logging_goes_to_the_host(self):
        self.app()
        logging.getLogger("mine").warning("careful %s", "now", extra={"fields": {"n": 3}})
        self.assertIn(("warn", "careful now", [("logger", "mine"), ("n", "3")]), self.host.logs)


class Http(WithHost):
    def test_json_post_with_host_credentials(self):
        self.host.answers = [(200, [("Content-Type", "application/json"), ("X-A", "1"), ("x-a", "2")], b'{"ok": true}')]
        r = http.post("https://pc:9440/api", json={"kind": "vm"}, auth=http.BASIC, timeout=2.5)
        method, url, headers, body, timeout_ms, cred = self.host.sent[0]
        self.assertEqual((method, url, body, timeout_ms, cred), ("POST", "https://pc:9440/api", b'{"kind":"vm"}', 2500, ("basic",)))
        self.assertIn(("content-type", "application/json"), headers)
        self.assertEqual(r.json(), {"ok": True})
        self.assertEqual(r.headers["x-a"], "1, 2")
        self.assertTrue(r.ok)

    def test_status_and_transport_errors(self):
        self.host.answers = [(503, [], b"down"), http.Denied("not granted")]
        r = http.get("https://pc/x", auth=http.ApiKey("X-ntnx-api-key"))
        self.assertEqual(self.host.sent[0][5], ("api-key", "X-ntnx-api-key"))
        with self.assertRaises(http.HTTPStatusError):
            r.raise_for_status()
        self.assertIsInstance(http.error_for_status(r), cf.Unavailable)
        with self.assertRaises(http.Denied) as e:
            http.get("https://elsewhere/")
        self.assertIsInstance(http.error_for_transport(e.exception), cf.PermissionDenied)


class State(WithHost):
    def test_round_trip(self):
        self.assertIsNone(state.get("k"))
        state.set("k", "v")
        self.assertEqual(state.get("k"), "v")
        state.delete("k")
        self.assertIsNone(state.get("k"))


class Build(unittest.TestCase):
    def test_identity_section_round_trips(self):
        component = b"\0asm\x0d\x00\x01\x00" + b"\x00\x03\x02hi"
        out = build.add_identity(component, "prism-py", "0.1.0")
        self.assertEqual(build.read_identity(out), {"name": "prism-py", "version": "0.1.0"})
        self.assertIsNone(build.read_identity(component))
        with self.assertRaises(ValueError):
            build.add_identity(b"\0asm\x01\x00\x00\x00", "x", "1.0.0")

    def test_leb128(self):
        self.assertEqual(build.leb128(0), b"\x00")
        self.assertEqual(build.leb128(300), b"\xac\x02")

    def test_the_wit_is_a_world_the_host_keeps(self):
        # The SDKs target world 0.2.2, which the host keeps frozen in
        # wit/v0.2.2 and links (0.2.x) beside the current world.
        here = os.path.dirname(__file__)
        with open(os.path.join(here, "..", "..", "..", "wit", "v0.2.2", "collector.wit")) as a, open(os.path.join(build.WIT_DIR, "collector.wit")) as b:
            self.assertEqual(a.read(), b.read(), "sdk/python's copy of wit/v0.2.2/collector.wit differs: copy it again")


if __name__ == "__main__":
    unittest.main()
