"""A CloudForet API server built on the real spaceone-api Python stubs
(test double for cf-host's push-mode wire check).

It serves identity v2 Token (issue/grant) and Schema (create/update/get),
inventory v1 CloudService, CloudServiceType and Region
(create/update/delete/list), notification v1 Notification.create,
repository v1 Plugin (register/update/list), secret v1 Secret.get_data,
identity v2 Endpoint.list (every service here) and
cost_analysis v1 Cost (create/delete/list) with the generated `add_*Servicer_to_server` functions, keeps everything in
memory, refuses calls without a token it granted, and writes its whole state
as JSON to STATE_FILE after every call.

Usage: cf_api_server.py STATE_FILE [SECRETS_FILE]  (SECRETS_FILE: a JSON
object of secret id -> secret data; prints the port, then serves until stdin
closes).
"""
import base64
import json
import os
import sys
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import empty_pb2, json_format
from spaceone.api.cost_analysis.v1 import cost_pb2, cost_pb2_grpc
from spaceone.api.identity.v2 import endpoint_pb2, endpoint_pb2_grpc, schema_pb2, schema_pb2_grpc, token_pb2, token_pb2_grpc
from spaceone.api.inventory.v1 import (cloud_service_pb2, cloud_service_pb2_grpc,
                                       cloud_service_type_pb2, cloud_service_type_pb2_grpc,
                                       region_pb2, region_pb2_grpc)
from spaceone.api.notification.v1 import notification_pb2, notification_pb2_grpc
from spaceone.api.repository.v1 import plugin_pb2, plugin_pb2_grpc
from spaceone.api.secret.v1 import secret_pb2, secret_pb2_grpc

USER = ("push-bot", "s3cret-password")
DOMAIN = "domain-py"
LOCK = threading.Lock()
STATE = {"cloud_services": {}, "types": {}, "regions": {}, "notifications": [], "calls": [], "granted": [],
         "schemas": {}, "plugins": {}, "costs": {}}
SECRETS = {}
COUNTER = [0]


def dump():
    path = sys.argv[1]
    with open(path + ".tmp", "w") as f:
        json.dump(STATE, f)
    os.replace(path + ".tmp", path)


def next_id(prefix):
    COUNTER[0] += 1
    return "%s-%06d" % (prefix, COUNTER[0])


def jwt(kind):
    now = int(time.time())
    claims = json.dumps({"kind": kind, "iat": now, "exp": now + 3600, "n": COUNTER[0]}).encode()
    b = lambda x: base64.urlsafe_b64encode(x).decode().rstrip("=")
    return "%s.%s.py" % (b(b'{"alg":"none"}'), b(claims))


def as_dict(msg):
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def checked(method):
    """Records the call, checks the token, dumps the state afterwards."""
    def wrap(fn):
        def inner(self, request, context):
            with LOCK:
                STATE["calls"].append(method)
                token = dict(context.invocation_metadata()).get("token", "")
                if not method.startswith("Token.") and token not in STATE["granted"]:
                    dump()
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "ERROR_AUTHENTICATE_FAILURE: Authenticate failure.")
                try:
                    return fn(self, request, context)
                finally:
                    dump()
        return inner
    return wrap


class Token(token_pb2_grpc.TokenServicer):
    @checked("Token.issue")
    def issue(self, request, context):
        c = json_format.MessageToDict(request.credentials)
        if (c.get("user_id"), c.get("password")) != USER or request.domain_id != DOMAIN \
                or request.auth_type != token_pb2.IssueTokenRequest.LOCAL:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "ERROR_AUTHENTICATE_FAILURE: wrong credentials")
        return token_pb2.TokenInfo(access_token=jwt("access"), refresh_token=jwt("refresh"))

    @checked("Token.grant")
    def grant(self, request, context):
        if request.grant_type != token_pb2.GrantTokenRequest.REFRESH_TOKEN \
                or request.scope != token_pb2.GrantTokenRequest.DOMAIN or request.domain_id != DOMAIN:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ERROR_INVALID_ARGUMENT: bad grant")
        t = jwt("granted")
        STATE["granted"].append(t)
        return token_pb2.GrantTokenInfo(access_token=t, domain_id=DOMAIN)


class CloudService(cloud_service_pb2_grpc.CloudServiceServicer):
    @checked("CloudService.create")
    def create(self, request, context):
        d = as_dict(request)
        d["cloud_service_id"] = next_id("cloud-svc")
        STATE["cloud_services"][d["cloud_service_id"]] = d
        return json_format.ParseDict(d, cloud_service_pb2.CloudServiceInfo(), ignore_unknown_fields=True)

    @checked("CloudService.update")
    def update(self, request, context):
        d = as_dict(request)
        old = STATE["cloud_services"].get(request.cloud_service_id)
        if old is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "ERROR_NOT_FOUND: Not found. (key = cloud_service_id)")
        old.update(d)
        return json_format.ParseDict(old, cloud_service_pb2.CloudServiceInfo(), ignore_unknown_fields=True)

    @checked("CloudService.delete")
    def delete(self, request, context):
        STATE["cloud_services"].pop(request.cloud_service_id, None)
        return empty_pb2.Empty()

    @checked("CloudService.list")
    def list(self, request, context):
        rid = [json_format.MessageToDict(f.value) for f in request.query.filter
               if f.key == "reference.resource_id" and f.operator == "eq"]
        out = []
        for c in STATE["cloud_services"].values():
            if request.provider and c.get("provider") != request.provider:
                continue
            if request.cloud_service_group and c.get("cloud_service_group") != request.cloud_service_group:
                continue
            if request.cloud_service_type and c.get("cloud_service_type") != request.cloud_service_type:
                continue
            if request.account and c.get("account") != request.account:
                continue
            if rid and c.get("reference", {}).get("resource_id") != rid[0]:
                continue
            out.append(json_format.ParseDict(c, cloud_service_pb2.CloudServiceInfo(), ignore_unknown_fields=True))
        return cloud_service_pb2.CloudServicesInfo(results=out, total_count=len(out))


class CloudServiceType(cloud_service_type_pb2_grpc.CloudServiceTypeServicer):
    @checked("CloudServiceType.create")
    def create(self, request, context):
        d = as_dict(request)
        d["cloud_service_type_id"] = next_id("cloud-svc-type")
        STATE["types"][d["cloud_service_type_id"]] = d
        return json_format.ParseDict(d, cloud_service_type_pb2.CloudServiceTypeInfo(), ignore_unknown_fields=True)

    @checked("CloudServiceType.update")
    def update(self, request, context):
        old = STATE["types"][request.cloud_service_type_id]
        old.update(as_dict(request))
        return json_format.ParseDict(old, cloud_service_type_pb2.CloudServiceTypeInfo(), ignore_unknown_fields=True)

    @checked("CloudServiceType.list")
    def list(self, request, context):
        out = [json_format.ParseDict(t, cloud_service_type_pb2.CloudServiceTypeInfo(), ignore_unknown_fields=True)
               for t in STATE["types"].values()
               if t.get("name") == request.name and t.get("group") == request.group and t.get("provider") == request.provider]
        return cloud_service_type_pb2.CloudServiceTypesInfo(results=out, total_count=len(out))


class Region(region_pb2_grpc.RegionServicer):
    @checked("Region.create")
    def create(self, request, context):
        d = as_dict(request)
        d["region_id"] = next_id("region")
        STATE["regions"][d["region_id"]] = d
        return json_format.ParseDict(d, region_pb2.RegionInfo(), ignore_unknown_fields=True)

    @checked("Region.update")
    def update(self, request, context):
        old = STATE["regions"][request.region_id]
        old.update(as_dict(request))
        return json_format.ParseDict(old, region_pb2.RegionInfo(), ignore_unknown_fields=True)

    @checked("Region.list")
    def list(self, request, context):
        out = [json_format.ParseDict(r, region_pb2.RegionInfo(), ignore_unknown_fields=True)
               for r in STATE["regions"].values()
               if r.get("region_code") == request.region_code and r.get("provider") == request.provider]
        return region_pb2.RegionsInfo(results=out, total_count=len(out))


class Notification(notification_pb2_grpc.NotificationServicer):
    @checked("Notification.create")
    def create(self, request, context):
        STATE["notifications"].append(as_dict(request))
        return empty_pb2.Empty()


class Schema(schema_pb2_grpc.SchemaServicer):
    @checked("Schema.create")
    def create(self, request, context):
        if request.schema_id in STATE["schemas"]:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "ERROR_SAVE_UNIQUE_VALUES: Duplicated values.")
        d = as_dict(request)
        d["domain_id"] = DOMAIN
        STATE["schemas"][request.schema_id] = d
        return json_format.ParseDict(d, schema_pb2.SchemaInfo(), ignore_unknown_fields=True)

    @checked("Schema.update")
    def update(self, request, context):
        old = STATE["schemas"].get(request.schema_id)
        if old is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "ERROR_NOT_FOUND: Not found. (key = schema_id)")
        old.update(as_dict(request))
        return json_format.ParseDict(old, schema_pb2.SchemaInfo(), ignore_unknown_fields=True)

    @checked("Schema.get")
    def get(self, request, context):
        d = STATE["schemas"].get(request.schema_id)
        if d is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "ERROR_NOT_FOUND: Not found. (key = schema_id, value = %s)" % request.schema_id)
        return json_format.ParseDict(d, schema_pb2.SchemaInfo(), ignore_unknown_fields=True)


class Plugin(plugin_pb2_grpc.PluginServicer):
    @checked("Plugin.register")
    def register(self, request, context):
        d = as_dict(request)
        d["plugin_id"] = request.plugin_id or next_id("plugin")
        d["state"] = "ENABLED"
        STATE["plugins"][d["plugin_id"]] = d
        return json_format.ParseDict(d, plugin_pb2.PluginInfo(), ignore_unknown_fields=True)

    @checked("Plugin.update")
    def update(self, request, context):
        old = STATE["plugins"].get(request.plugin_id)
        if old is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "ERROR_NOT_FOUND: Not found. (key = plugin_id)")
        old.update(as_dict(request))
        return json_format.ParseDict(old, plugin_pb2.PluginInfo(), ignore_unknown_fields=True)

    @checked("Plugin.list")
    def list(self, request, context):
        out = [json_format.ParseDict(p, plugin_pb2.PluginInfo(), ignore_unknown_fields=True)
               for p in STATE["plugins"].values()
               if (not request.plugin_id or p["plugin_id"] == request.plugin_id)
               and (not request.name or p.get("name") == request.name)]
        return plugin_pb2.PluginsInfo(results=out, total_count=len(out))


class Secret(secret_pb2_grpc.SecretServicer):
    @checked("Secret.get_data")
    def get_data(self, request, context):
        data = SECRETS.get(request.secret_id)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "ERROR_NOT_FOUND: Not found. (key = secret_id)")
        info = secret_pb2.SecretDataInfo(encrypted=False)
        info.data.update(data)
        return info


class Cost(cost_pb2_grpc.CostServicer):
    @checked("Cost.create")
    def create(self, request, context):
        if not request.data_source_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ERROR_REQUIRED_PARAMETER: Required parameter. (key = data_source_id)")
        d = as_dict(request)
        d.pop("usage_unit", None)
        d["cost_id"] = next_id("cost")
        d["billed_month"] = request.billed_date[:7]
        d["billed_year"] = request.billed_date[:4]
        STATE["costs"][d["cost_id"]] = d
        return json_format.ParseDict(d, cost_pb2.CostInfo(), ignore_unknown_fields=True)

    @checked("Cost.delete")
    def delete(self, request, context):
        if STATE["costs"].pop(request.cost_id, None) is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "ERROR_NOT_FOUND: Not found. (key = cost_id)")
        return empty_pb2.Empty()

    @checked("Cost.list")
    def list(self, request, context):
        keys = ("data_source_id", "resource", "usage_type", "billed_date", "provider")
        out = [json_format.ParseDict(c, cost_pb2.CostInfo(), ignore_unknown_fields=True)
               for c in STATE["costs"].values()
               if all(not getattr(request, k) or c.get(k) == getattr(request, k) for k in keys)]
        return cost_pb2.CostsInfo(results=out, total_count=len(out))


class Endpoint(endpoint_pb2_grpc.EndpointServicer):
    """Every service at this server (no token needed, as in identity)."""

    def list(self, request, context):
        STATE["calls"].append("Endpoint.list")
        services = ["identity", "inventory", "notification", "secret", "repository", "cost_analysis"]
        out = [endpoint_pb2.EndpointInfo(name=s.title(), service=s, endpoint="grpc://127.0.0.1:%d" % PORT[0],
                                         state=endpoint_pb2.EndpointInfo.EndpointState.ACTIVE)
               for s in services if not request.service or request.service == s]
        return endpoint_pb2.EndpointsInfo(results=out, total_count=len(out))


PORT = [0]


def main():
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            SECRETS.update(json.load(f))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    token_pb2_grpc.add_TokenServicer_to_server(Token(), server)
    cloud_service_pb2_grpc.add_CloudServiceServicer_to_server(CloudService(), server)
    cloud_service_type_pb2_grpc.add_CloudServiceTypeServicer_to_server(CloudServiceType(), server)
    region_pb2_grpc.add_RegionServicer_to_server(Region(), server)
    notification_pb2_grpc.add_NotificationServicer_to_server(Notification(), server)
    schema_pb2_grpc.add_SchemaServicer_to_server(Schema(), server)
    plugin_pb2_grpc.add_PluginServicer_to_server(Plugin(), server)
    secret_pb2_grpc.add_SecretServicer_to_server(Secret(), server)
    cost_pb2_grpc.add_CostServicer_to_server(Cost(), server)
    endpoint_pb2_grpc.add_EndpointServicer_to_server(Endpoint(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    PORT[0] = port
    server.start()
    dump()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
