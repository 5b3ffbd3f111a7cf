"""Render and check the Helm chart (charts/cf-host) and the Dockerfile
without Helm or Docker (neither runs here).

The renderer supports what the chart uses, as Helm does: `.Values.*`,
`.Release.Name`, `.Chart.*`, `if` / `end`, `toYaml X | nindent N`,
`toJson X | nindent N`, and `{{-` / `-}}` whitespace trimming. Every
rendered document must parse as YAML, no `{{` may survive, and the objects
must say what CloudForet's supervisor needs: a Deployment listening on 50051
with a TCP liveness probe and resources, a Service on 50051, the tenants
config from a ConfigMap, an optional plugins volume, and an HPA; in push
mode, `cf-host run` with its configuration from a ConfigMap or Secret and no
Service. More than one replica without the database is refused in both.

    python check_deploy.py REPO_ROOT      # prints "ok" or fails
"""

import copy
import json
import re
import sys
from pathlib import Path

import yaml

TOKEN = re.compile(r"(\s*)\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def lookup(ctx, path):
    value = ctx
    for part in path.lstrip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"template refers to missing value {path}")
        value = value[part]
    return value


def evaluate(ctx, expr):
    parts = [p.strip() for p in expr.split("|")]
    head = parts[0].split()
    if head[0] == "toYaml":
        text = yaml.safe_dump(lookup(ctx, head[1]), default_flow_style=False, sort_keys=True).rstrip("\n")
    elif head[0] == "toJson":
        text = json.dumps(lookup(ctx, head[1]), sort_keys=True)
    else:
        value = lookup(ctx, head[0])
        text = value if isinstance(value, str) else json.dumps(value)
    for f in parts[1:]:
        name, *args = f.split()
        if name == "nindent":
            pad = " " * int(args[0])
            text = "\n" + "\n".join(pad + line for line in text.splitlines())
        else:
            raise ValueError(f"unsupported function {name}")
    return text

class ChartFailure(Exception):
    """The chart refused to render (`fail`), as `helm template` does."""


TERM = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+)')


def tokens(expr):
    """The terms of a template expression: `(`, `)`, strings, words."""
    out, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = TERM.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr!r} at {pos}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return out


def truthy(v):
    return bool(v) and v != 0


FUNCTIONS = {
    "and": lambda *a: next((x for x in a if not truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if truthy(x)), a[-1]),
    "not": lambda a: not truthy(a),
    "gt": lambda a, b: a > b,
    "eq": lambda a, b: a == b,
    "int": lambda a: int(a),
    "fail": lambda msg: msg,
}


def term(ctx, toks):
    """One term (consumed from `toks`): a parenthesized call, a string, a
    number or a value path."""
    t = toks.pop(0)
    if t == "(":
        inner = []
        depth = 1
        while depth:
            x = toks.pop(0)
            depth += {"(": 1, ")": -1}.get(x, 0)
            if depth:
                inner.append(x)
        return call(ctx, inner)
    if t.startswith('"'):
        return json.loads(t)
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    return lookup(ctx, t)


def call(ctx, toks):
    """A function applied to its terms, or a single term."""
    toks = list(toks)
    if toks and toks[0] in FUNCTIONS:
        f = FUNCTIONS[toks.pop(0)]
        args = []
        while toks:
            args.append(term(ctx, toks))
        return f(*args)
    value = term(ctx, toks)
    assert not toks, f"unsupported expression, left: {toks}"
    return value


def render(template, ctx):
    out, stack, pos = [], [True], 0
    for m in TOKEN.finditer(template):
        lead, trim_left, expr, trim_right = m.groups()
        if all(stack):
            out.append(template[pos:m.start()])
            if not trim_left:
                out.append(lead)
        pos = m.end()
        if trim_right:
            while pos < len(template) and template[pos] in " \t\n":
                pos += 1
        if expr.startswith("if "):
            stack.append(truthy(call(ctx, tokens(expr[3:]))) if all(stack) else False)
        elif expr == "end":
            stack.pop()
        elif all(stack) and expr.startswith("fail "):
            raise ChartFailure(call(ctx, tokens(expr)))
        elif all(stack):
            out.append(evaluate(ctx, expr))
    out.append(template[pos:] if all(stack) else "")
    assert len(stack) == 1, "unbalanced if/end"
    return "".join(out)


def render_chart(root, overrides):
    chart_dir = root / "charts" / "cf-host"
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    values = merge(values, overrides)
    ctx = {"Values": values, "Release": {"Name": "rel"}, "Chart": {"Name": chart["name"], "Version": chart["version"]}}
    docs = []
    for t in sorted((chart_dir / "templates").glob("*.yaml")):
        text = render(t.read_text(), ctx)
        assert "{{" not in text, f"{t.name}: unrendered template left"
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return {d["kind"]: d for d in docs}


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check(root):
    objs = render_chart(root, {})
    # One replica, no autoscaling: a fleet needs a database.
    assert set(objs) == {"ConfigMap", "Deployment", "Service"}, sorted(objs)
    assert objs["Deployment"]["spec"]["replicas"] == 1
    dep = objs["Deployment"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "grpc", "containerPort": 50051} in container["ports"], container["ports"]
    assert container["livenessProbe"]["tcpSocket"]["port"] == 50051
    assert container["readinessProbe"]["grpc"]["port"] == 50051
    drain = int(container["args"][container["args"].index("--drain-timeout") + 1])
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > drain, (grace, drain)
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    assert "--tenants" in container["args"] and "/etc/cf-host/tenants.json" in container["args"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts.get("config") == "/etc/cf-host" and "plugins" not in mounts, mounts
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == objs["ConfigMap"]["metadata"]["name"]
    tenants = json.loads(objs["ConfigMap"]["data"]["tenants.json"])
    assert tenants["default"]["max_concurrent_runs"] == 8, tenants
    svc = objs["Service"]
    assert {"name": "grpc", "port": 50051, "targetPort": "grpc"} in svc["spec"]["ports"], svc["spec"]["ports"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]

    # A plugins volume (e.g. an image volume of wasm files), autoscaling off.
    objs = render_chart(root, {"pluginsVolume": {"persistentVolumeClaim": {"claimName": "plugins"}}, "autoscaling": {"enabled": False}})
    assert "HorizontalPodAutoscaler" not in objs
    spec = objs["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "plugins", "mountPath": "/plugins"} in spec["containers"][0]["volumeMounts"]
    assert {"name": "plugins", "persistentVolumeClaim": {"claimName": "plugins"}} in spec["volumes"]
    assert spec["containers"][0]["env"] == [{"name": "CF_HOST_LOG", "value": "warn"}] and "envFrom" not in spec["containers"][0]

    # Plugins from an OCI registry, with registry credentials from a Secret.
    ref = "registry.example.com/cloudforet/nutanix:1.3.0"
    objs = render_chart(root, {"pluginOci": ref, "ociSecret": "oci-creds"})
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "CF_HOST_LOG", "value": "warn"}, {"name": "CF_HOST_PLUGIN_OCI", "value": ref}], container.get("env")
    assert container["envFrom"] == [{"secretRef": {"name": "oci-creds"}}], container.get("envFrom")

    # Span export to an OpenTelemetry collector.
    objs = render_chart(root, {"otlpEndpoint": "http://otel:4317", "logLevel": "info"})
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "CF_HOST_LOG", "value": "info"}, {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4317"}], container.get("env")

    # Fleet mode: the database URL from a Secret, never a plain value.
    db = {"database": {"secret": "cf-host-db", "key": "url"}}
    objs = render_chart(root, {**db, "replicaCount": 3})
    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 3
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CF_HOST_DATABASE", "valueFrom": {"secretKeyRef": {"name": "cf-host-db", "key": "url"}}} in env, env
    objs = render_chart(root, {**db, "autoscaling": {"enabled": True}})
    hpa = objs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == objs["Deployment"]["metadata"]["name"]
    assert hpa["spec"]["maxReplicas"] > 1

    # More than one replica without the database: refused, naming the value.
    for over in ({"replicaCount": 2}, {"autoscaling": {"enabled": True}}):
        try:
            render_chart(root, over)
        except ChartFailure as e:
            assert "needs database.secret" in str(e), e
        else:
            raise AssertionError(f"{over} rendered without a database")
    # Autoscaling capped at one replica needs none.
    assert "HorizontalPodAutoscaler" in render_chart(root, {"autoscaling": {"enabled": True, "maxReplicas": 1}})

    # Push mode: `cf-host run` (the image's entrypoint is `serve`) with its
    # configuration from a ConfigMap; it serves no calls: no Service, no
    # ports, no probes, no tenants file (the push file has the tenants).
    push = {"mode": "push", "push": {"configMap": "cf-host-push"}}
    objs = render_chart(root, push)
    assert set(objs) == {"Deployment"}, sorted(objs)
    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 1
    spec = dep["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == ["cf-host", "run"], container.get("command")
    assert container["args"] == ["--config", "/etc/cf-host/push/cf-host.push.toml", "--tick", "60"], container["args"]
    assert not {"ports", "livenessProbe", "readinessProbe"} & set(container), sorted(container)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"push-config": "/etc/cf-host/push", "state": "/var/lib/cf-host", "cache": "/var/cache/cf-host"}, mounts
    assert container["args"][1].startswith(mounts["push-config"] + "/")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["push-config"] == {"name": "push-config", "configMap": {"name": "cf-host-push"}}, volumes
    assert volumes["state"] == {"name": "state", "emptyDir": {}} and "config" not in volumes, volumes
    assert container["env"] == [{"name": "CF_HOST_LOG", "value": "warn"}], container["env"]

    # Push mode on three replicas: the configuration from a Secret, the
    # database from a Secret, the files the configuration names mounted.
    tokens = {
        "extraVolumes": [{"name": "tokens", "secret": {"secretName": "cf-host-tokens"}}],
        "extraVolumeMounts": [{"name": "tokens", "mountPath": "/run/secrets", "readOnly": True}],
    }
    over = {"mode": "push", "push": {"secret": "cf-host-push", "key": "run.toml", "tickSeconds": 30}, **db, **tokens, "replicaCount": 3}
    objs = render_chart(root, over)
    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 3
    spec = dep["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["args"] == ["--config", "/etc/cf-host/push/run.toml", "--tick", "30"], container["args"]
    assert {"name": "CF_HOST_DATABASE", "valueFrom": {"secretKeyRef": {"name": "cf-host-db", "key": "url"}}} in container["env"], container["env"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["push-config"] == {"name": "push-config", "secret": {"secretName": "cf-host-push"}}, volumes
    assert volumes["tokens"] == tokens["extraVolumes"][0]
    assert volumes["state"] == {"name": "state", "emptyDir": {}}, volumes
    claim = {"persistentVolumeClaim": {"claimName": "cf-host-push"}}
    objs = render_chart(root, {**push, "push": {"configMap": "cf-host-push", "stateVolume": claim}})
    assert {"name": "state", **claim} in objs["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert tokens["extraVolumeMounts"][0] in container["volumeMounts"]
    objs = render_chart(root, {**over, "replicaCount": 1, "autoscaling": {"enabled": True}})
    assert objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == objs["Deployment"]["metadata"]["name"]

    # Push mode refuses what serve refuses (more than one replica without
    # the database), and a missing, doubled or unknown configuration.
    refusals = [
        ({**push, "replicaCount": 2}, "needs database.secret"),
        ({**push, "autoscaling": {"enabled": True}}, "needs database.secret"),
        ({"mode": "push"}, "needs push.configMap or push.secret"),
        ({"mode": "push", "push": {"configMap": "a", "secret": "b"}}, "not both"),
        ({"mode": "pull"}, "mode must be serve"),
    ]
    for over, why in refusals:
        try:
            render_chart(root, over)
        except ChartFailure as e:
            assert why in str(e), (over, e)
        else:
            raise AssertionError(f"{over} rendered")

    docker = (root / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", docker, re.M)) >= 2, "multi-stage build"
    assert re.search(r"^EXPOSE .*\b50051\b", docker, re.M), "EXPOSE 50051"
    assert re.search(r'^ENTRYPOINT \["cf-host", "serve"\]', docker, re.M), "entrypoint cf-host serve"


if __name__ == "__main__":
    check(Path(sys.argv[1]))
    print("ok")
