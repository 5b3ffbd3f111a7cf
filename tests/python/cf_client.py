"""Drive a collector plugin server with CloudForet's own Python client code.

Used by the host's compatibility tests (host/tests/python_compat.rs); it is
also handy by hand against a running `cf-host serve`:

    python cf_client.py grpc://127.0.0.1:50051 '[{"call": "Collector.init", "params": {"options": {}}}]'

Each call is made either through spaceone-core's SpaceConnector (what
CloudForet's inventory and cost analysis services use: stubs built from
server reflection; streams are `Collector.collect` and `Cost.get_data`) or,
with "via": "stub", through spaceone-api's generated CollectorStub/JobStub.
Prints one JSON document: {"api_resources": {...}, "results": [...]}, where a
result is {"ok": ...} or {"error": {...}}. Stream items are decoded the way
CloudForet reads them: json_data/json_metadata are parsed into
json_data__decoded/json_metadata__decoded beside the original text.
"""

import json
import sys

import grpc
from google.protobuf import json_format
from spaceone.core import config
from spaceone.core.connector.space_connector import SpaceConnector
from spaceone.core.error import ERROR_BASE


def decode(item):
    resource = item.get("resource")
    if isinstance(resource, dict):
        for key in ("json_data", "json_metadata"):
            if isinstance(resource.get(key), str):
                resource[key + "__decoded"] = json.loads(resource[key])
    return item


def via_connector(conn, call):
    kwargs = {}
    if "x_domain_id" in call:
        kwargs["x_domain_id"] = call["x_domain_id"]
    limit = call.get("take")
    try:
        response = conn.dispatch(call["call"], call.get("params", {}), **kwargs)
        if call["call"] in ("Collector.collect", "Cost.get_data"):
            items = []
            for item in response:
                items.append(decode(item))
                if limit is not None and len(items) >= limit:
                    break
            return {"ok": items}
        return {"ok": response}
    except ERROR_BASE as e:
        return {
            "error": {
                "error_code": e.error_code,
                "status_code": getattr(e, "status_code", None),
                "message": e.message,
            }
        }


def via_stub(endpoint, call):
    from spaceone.api.inventory.plugin import collector_pb2, collector_pb2_grpc, job_pb2, job_pb2_grpc
    from google.protobuf import empty_pb2

    target = endpoint.split("://", 1)[-1]
    channel = grpc.insecure_channel(target)
    service, method = call["call"].split(".")
    params = call.get("params", {})
    try:
        if service == "Collector":
            stub = collector_pb2_grpc.CollectorStub(channel)
            if method == "init":
                reply = stub.init(json_format.ParseDict(params, collector_pb2.InitRequest()), timeout=180)
            elif method == "verify":
                reply = stub.verify(json_format.ParseDict(params, collector_pb2.VerifyRequest()), timeout=180)
                assert isinstance(reply, empty_pb2.Empty)
            else:
                items = []
                for item in stub.collect(json_format.ParseDict(params, collector_pb2.CollectRequest())):
                    items.append(decode(json_format.MessageToDict(item, preserving_proto_field_name=True)))
                return {"ok": items}
        else:
            stub = job_pb2_grpc.JobStub(channel)
            reply = stub.get_tasks(json_format.ParseDict(params, job_pb2.GetTaskRequest()), timeout=180)
        return {"ok": json_format.MessageToDict(reply, preserving_proto_field_name=True)}
    except grpc.RpcError as e:
        return {"error": {"status_code": e.code().name, "details": e.details()}}
    finally:
        channel.close()


def main():
    endpoint, calls = sys.argv[1], json.loads(sys.argv[2])
    config.init_conf(package="spaceone.core")
    conn = SpaceConnector(endpoint=endpoint, token="NO_TOKEN")
    results = []
    for call in calls:
        if call.get("via") == "stub":
            results.append(via_stub(endpoint, call))
        else:
            results.append(via_connector(conn, call))
    api_resources = {k: list(v) for k, v in conn.client.api_resources.items()}
    json.dump({"api_resources": api_resources, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
