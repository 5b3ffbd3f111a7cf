#!/usr/bin/env python3
"""CloudForet's real inventory service as a test fixture for a collector plugin.

Runs spaceone-inventory's own CollectorService.create -> verify_plugin ->
collect, the job/task queue and CollectingManager's upserts (2.x: 2.0.dev247;
1.12: 1.12.2) against a plugin endpoint, with mongomock for MongoDB, an
in-memory queue for Redis and fixture answers for the other CloudForet
services (see cf_fixture_env.py). Prints one JSON document.

    <venv>/bin/python tests/python/inventory/run_fixture.py --cf 2 \
        --plugin-endpoint grpc://127.0.0.1:50051 \
        --secret '{"host": "127.0.0.1", "port": 19440, "username": "admin", "password": "nutanix/4u"}' \
        --options '{"verify_ssl": false}' --runs 2

Scenarios (--scenario):
  normal           --runs N runs with the same secret and options.
  error-resource   run 1 with --options, run 2 with --options merged with
                   --error-options (options that make the plugin emit an
                   ErrorResource): the job must end FAILURE and delete nothing.
  wrong-password   verify_plugin and one collect with the secret's password
                   replaced: verify must raise ERROR_AUTHENTICATE_FAILURE.
  missed-runs      run 1 with --options, then --runs - 1 runs with
                   --options merged with --narrow-options (which leave some
                   resources out): shows when CloudForet marks the missing
                   ones DELETED.
--per-run '[{"options": {...}, "secret": {...}, "hours": 6}, ...]' gives each
run's overrides explicitly (merged over --options / --secret) and replaces the
scenario's run list. A run's "http_before": [{"method": "PUT", "url": ...,
"body": {...}}] are sent before it (e.g. a simulator's fault switches).
"""

import argparse
import copy
import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cf", choices=["2", "1.12"], required=True)
    p.add_argument("--plugin-endpoint", required=True, help="grpc://HOST:PORT")
    p.add_argument("--secret", default="{}", help="secret data (JSON)")
    p.add_argument("--options", default="{}", help="collector options (JSON)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument(
        "--scenario",
        default="normal",
        choices=["normal", "error-resource", "wrong-password", "missed-runs"],
    )
    p.add_argument("--error-options", default="{}")
    p.add_argument("--narrow-options", default="{}")
    p.add_argument("--per-run", default=None)
    p.add_argument(
        "--hours-between-runs",
        type=float,
        default=6.0,
        help="fixture clock advance before each run after the first",
    )
    p.add_argument(
        "--cleanup-after-hours",
        type=float,
        default=None,
        help="after the runs, advance the clock and run CleanupService.delete_resources",
    )
    p.add_argument("--provider", default="nutanix")
    p.add_argument(
        "--resource-group", default="WORKSPACE", choices=["WORKSPACE", "DOMAIN"]
    )
    p.add_argument("--sample", type=int, default=2, help="cloud services per type")
    p.add_argument(
        "--show",
        action="append",
        default=[],
        help="also print the stored cloud service with this reference.resource_id",
    )
    p.add_argument(
        "--managed-metrics",
        action="store_true",
        help="(2.x) install CloudForet's managed metrics first and evaluate them",
    )
    p.add_argument(
        "--rewrite",
        action="append",
        default=[],
        help="rewrite plugin records before the inventory sees them "
        "(try a plugin fix), in the order given: json-to-struct (json_data/"
        "json_metadata -> data/metadata Structs), add-structs (data/metadata "
        "Structs next to json_data/json_metadata), drop-nulls (remove the "
        "resource's top-level null fields), add-version=V (Namespace/Metric), "
        "unit-to-string (Metric unit object -> its string), drop=RESOURCE_TYPE",
    )
    p.add_argument(
        "--work-around-112-reflection",
        action="store_true",
        help="DIAGNOSTIC: let spaceone-core 1.12 accept reflected file names "
        "without their package path (real 1.12 fails with 'list index out of "
        "range'); uses are listed in reflection_workaround_hits",
    )
    p.add_argument("--log", default=None, help="write CloudForet's log here")
    p.add_argument("--log-level", default="DEBUG")
    return p.parse_args(argv)


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    out.update(extra or {})
    return out


def run_plan(args, secret: dict, options: dict) -> list:
    if args.per_run:
        plan = []
        for i, spec in enumerate(json.loads(args.per_run)):
            plan.append(
                {
                    "options": merged(options, spec.get("options")),
                    "secret": merged(secret, spec.get("secret")),
                    "hours": spec.get("hours", 0 if i == 0 else args.hours_between_runs),
                    "label": spec.get("label", f"run {i + 1}"),
                    "http_before": spec.get("http_before", []),
                }
            )
        return plan
    h = args.hours_between_runs
    if args.scenario == "error-resource":
        return [
            {"options": options, "secret": secret, "hours": 0, "label": "normal"},
            {
                "options": merged(options, json.loads(args.error_options)),
                "secret": secret,
                "hours": h,
                "label": "error resource",
            },
        ]
    if args.scenario == "wrong-password":
        bad = merged(secret, {"password": "wrong-password-fixture"})
        return [{"options": options, "secret": bad, "hours": 0, "label": "wrong password"}]
    if args.scenario == "missed-runs":
        narrow = merged(options, json.loads(args.narrow_options))
        plan = [{"options": options, "secret": secret, "hours": 0, "label": "full"}]
        for i in range(1, max(args.runs, 2)):
            plan.append(
                {"options": narrow, "secret": secret, "hours": h, "label": f"narrow {i}"}
            )
        return plan
    return [
        {"options": options, "secret": secret, "hours": 0 if i == 0 else h, "label": f"run {i + 1}"}
        for i in range(args.runs)
    ]


# ----------------------------------------------------------------- rewrites --


def as_struct(value):
    """What a value becomes after travelling as a google.protobuf.Struct
    field and MessageToDict (every number a double), as the real stream's
    Structs do."""
    from google.protobuf import struct_pb2
    from google.protobuf.json_format import MessageToDict

    if not isinstance(value, dict):
        return value
    st = struct_pb2.Struct()
    st.update(value)
    return MessageToDict(st)


def make_rewrites(specs):
    fns = []
    for spec in specs:
        name, _, arg = spec.partition("=")
        if name in ("json-to-struct", "add-structs"):

            def fn(item, keep=(name == "add-structs")):
                res = item.get("resource") or {}
                for src, dst in (("json_data", "data"), ("json_metadata", "metadata")):
                    if src in res:
                        res[dst] = as_struct(json.loads(res[src]))
                        if not keep:
                            del res[src]
                return item

        elif name == "add-version":

            def fn(item, v=arg or "1.0"):
                if item.get("resource_type") in ("inventory.Namespace", "inventory.Metric"):
                    item.setdefault("resource", {}).setdefault("version", v)
                return item

        elif name == "unit-to-string":

            def fn(item):
                res = item.get("resource") or {}
                u = res.get("unit")
                if isinstance(u, dict):
                    vals = [v for v in u.values() if isinstance(v, str)]
                    res["unit"] = vals[0] if vals else json.dumps(u)
                return item

        elif name == "drop-nulls":

            def fn(item):
                res = item.get("resource") or {}
                for k in [k for k, v in res.items() if v is None]:
                    del res[k]
                return item

        elif name == "drop":

            def fn(item, rt=arg):
                if item.get("resource_type") == rt:
                    item = dict(item, resource_type="fixture.Dropped")
                return item

        else:
            raise SystemExit(f"unknown --rewrite {spec}")
        fns.append(fn)
    return fns


# ---------------------------------------------------------------- reports --


def vo_dict(vo) -> dict:
    d = vo.to_dict() if hasattr(vo, "to_dict") else dict(vo.to_mongo())
    d.pop("_id", None)
    d.pop("id", None)
    return d


def job_report(env, job_id: str, domain_id: str) -> dict:
    from spaceone.inventory.model.job_model import Job
    from spaceone.inventory.model.job_task_model import JobTask

    job = Job.objects(job_id=job_id, domain_id=domain_id).first()
    out = {"job": None, "job_tasks": []}
    if job is None:
        return out
    jd = vo_dict(job)
    out["job"] = {
        k: jd.get(k)
        for k in (
            "job_id",
            "status",
            "total_tasks",
            "remained_tasks",
            "success_tasks",
            "failure_tasks",
            "mark_error",
            "errors",
        )
        if k in jd
    }
    for t in JobTask.objects(job_id=job_id, domain_id=domain_id):
        td = vo_dict(t)
        out["job_tasks"].append(
            {
                k: td.get(k)
                for k in (
                    "job_task_id",
                    "status",
                    "total_sub_tasks",
                    "remained_sub_tasks",
                    "total_count",
                    "created_count",
                    "updated_count",
                    "failure_count",
                    "disconnected_count",
                    "deleted_count",
                    "options",
                    "errors",
                )
                if k in td
            }
        )
    return out


def counts(cf: str, domain_id: str) -> dict:
    from spaceone.inventory.model.cloud_service_model import CloudService
    from spaceone.inventory.model.cloud_service_type_model import CloudServiceType
    from spaceone.inventory.model.region_model import Region

    out = {"by_resource_type": {}, "cloud_services_by_type": {}, "duplicates": []}
    cs = {}
    by_type = {}
    keys = {}
    for vo in CloudService.objects(domain_id=domain_id):
        state = vo.state or "ACTIVE"
        cs[state] = cs.get(state, 0) + 1
        t = f"{vo.cloud_service_group}/{vo.cloud_service_type}"
        by_type.setdefault(t, {})
        by_type[t][state] = by_type[t].get(state, 0) + 1
        if state != "DELETED":
            ref = vo.reference.resource_id if vo.reference else None
            k = (vo.provider, t, ref, vo.account)
            keys[k] = keys.get(k, 0) + 1
    out["by_resource_type"]["inventory.CloudService"] = cs
    out["cloud_services_by_type"] = by_type
    out["duplicates"] = [
        {"provider": k[0], "type": k[1], "resource_id": k[2], "account": k[3], "count": n}
        for k, n in keys.items()
        if n > 1
    ]
    out["by_resource_type"]["inventory.CloudServiceType"] = CloudServiceType.objects(
        domain_id=domain_id
    ).count()
    out["by_resource_type"]["inventory.Region"] = Region.objects(domain_id=domain_id).count()
    if cf == "2":
        from spaceone.inventory.model.namespace.database import Namespace
        from spaceone.inventory.model.metric.database import Metric

        out["by_resource_type"]["inventory.Namespace"] = Namespace.objects(
            domain_id=domain_id, is_managed=True, plugin_id__ne=None
        ).count()
        out["by_resource_type"]["inventory.Metric"] = Metric.objects(
            domain_id=domain_id, is_managed=True, plugin_id__ne=None
        ).count()
    return out


def cloud_service_view(vo) -> dict:
    d = vo_dict(vo)
    keep = (
        "cloud_service_id",
        "name",
        "state",
        "provider",
        "cloud_service_group",
        "cloud_service_type",
        "account",
        "instance_type",
        "instance_size",
        "ip_addresses",
        "region_code",
        "ref_region",
        "ref_cloud_service_type",
        "project_id",
        "workspace_id",
        "reference",
        "tags",
        "tag_keys",
        "data",
        "metadata",
        "collection_info",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    return {k: d.get(k) for k in keep if k in d}


def samples(domain_id: str, n: int, show: list) -> dict:
    from spaceone.inventory.model.cloud_service_model import CloudService

    out = {}
    for vo in CloudService.objects(domain_id=domain_id).order_by("name"):
        t = f"{vo.cloud_service_group}/{vo.cloud_service_type}"
        lst = out.setdefault(t, [])
        if len(lst) < n:
            lst.append(cloud_service_view(vo))
    shown = {}
    for ref in show:
        shown[ref] = [
            cloud_service_view(vo)
            for vo in CloudService.objects(domain_id=domain_id, reference__resource_id=ref)
        ]
    return {"by_type": out, "shown": shown}


def types_and_regions(domain_id: str) -> dict:
    from spaceone.inventory.model.cloud_service_type_model import CloudServiceType
    from spaceone.inventory.model.region_model import Region

    types = []
    for vo in CloudServiceType.objects(domain_id=domain_id).order_by("group", "name"):
        d = vo_dict(vo)
        md = d.get("metadata") or {}
        types.append(
            {
                "provider": d.get("provider"),
                "group": d.get("group"),
                "name": d.get("name"),
                "is_primary": d.get("is_primary"),
                "is_major": d.get("is_major"),
                "labels": d.get("labels"),
                "service_code": d.get("service_code"),
                "resource_type": d.get("resource_type"),
                "tags": d.get("tags"),
                "metadata_keys": sorted(md.keys()) if isinstance(md, dict) else md,
                "metadata_is_empty": not bool(md),
                "ref_cloud_service_type": d.get("ref_cloud_service_type"),
                "updated_by": d.get("updated_by"),
            }
        )
    regions = []
    for vo in Region.objects(domain_id=domain_id).order_by("region_code"):
        d = vo_dict(vo)
        regions.append(
            {
                k: d.get(k)
                for k in ("provider", "region_code", "name", "region_key", "ref_region", "tags")
            }
        )
    return {"cloud_service_types": types, "regions": regions}


def namespaces_and_metrics(domain_id: str) -> dict:
    from spaceone.inventory.model.namespace.database import Namespace
    from spaceone.inventory.model.metric.database import Metric

    ns = [vo_dict(v) for v in Namespace.objects(domain_id=domain_id)]
    ms = [vo_dict(v) for v in Metric.objects(domain_id=domain_id)]
    return {"namespaces": ns, "metrics": ms}


def evaluate_metrics(domain_id: str) -> dict:
    """Run each stored metric's query the way MetricManager.run_metric_query
    does (MetricManager.analyze_resource), plus what the queue already ran."""
    from spaceone.inventory.manager.metric_manager import MetricManager
    from spaceone.inventory.model.metric.database import Metric

    out = {"analyze": {}, "metric_data": {}}
    mgr = MetricManager()
    for vo in Metric.objects(domain_id=domain_id):
        if not (vo.resource_type or "").startswith("inventory.CloudService"):
            continue  # identity.* metrics need the identity service's analyze
        try:
            res = mgr.analyze_resource(vo)
            out["analyze"][vo.metric_id] = {"ok": True, "results": res}
        except Exception as e:
            import cf_fixture_env as env

            out["analyze"][vo.metric_id] = {"ok": False, "error": env.describe_error(e)}
    try:
        from spaceone.inventory.model.metric_data.database import MetricData

        for vo in MetricData.objects(domain_id=domain_id):
            d = out["metric_data"].setdefault(vo.metric_id, {"rows": 0, "sum": 0.0})
            d["rows"] += 1
            try:
                d["sum"] += float(vo.value or 0)
            except Exception:
                pass
    except Exception as e:
        out["metric_data_error"] = str(e)
    return out


def send_http(req: dict) -> dict:
    """One request of a run's "http_before" (a loopback control endpoint)."""
    import urllib.request

    body = req.get("body")
    data = None if body is None else json.dumps(body).encode()
    r = urllib.request.Request(req["url"], data=data, method=req.get("method", "PUT"))
    r.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return {"url": req["url"], "status": resp.status}
    except Exception as e:
        return {"url": req["url"], "error": str(e)}


# ------------------------------------------------------------------- main --


def main(argv=None) -> int:
    args = parse_args(argv)
    secret = json.loads(args.secret)
    options = json.loads(args.options)

    import logging

    logging.getLogger().handlers.clear()
    if args.log:
        logging.basicConfig(
            filename=args.log,
            level=getattr(logging, args.log_level.upper(), logging.DEBUG),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
    else:
        logging.basicConfig(level=logging.CRITICAL + 1)

    import cf_fixture_env as env
    from importlib import metadata as im

    report = {
        "cf": args.cf,
        "versions": {},
        "plugin_endpoint": args.plugin_endpoint,
        "scenario": args.scenario,
        "create": None,
        "verify": None,
        "runs": [],
        "exceptions": [],
    }
    for pkg in ("spaceone-inventory", "spaceone-core", "spaceone-api", "grpcio", "protobuf", "mongomock", "mongoengine"):
        try:
            report["versions"][pkg] = im.version(pkg)
        except Exception:
            report["versions"][pkg] = None

    env.configure(args.cf)
    env.init_models()
    report["clock_patched_modules"] = len(env.patch_clock())
    env.install_attempt_counter()
    env.install_stream_tee(make_rewrites(args.rewrite))
    if args.work_around_112_reflection and args.cf == "1.12":
        env.install_112_reflection_workaround()
    report["rewrites"] = args.rewrite
    report["reflection_workaround_hits"] = env.REFLECTION_WORKAROUND_HITS

    fakes = env.FAKES
    fakes.provider = args.provider
    fakes.plugin_endpoint = args.plugin_endpoint
    fakes.secret_data = copy.deepcopy(secret)
    ids = fakes.ids
    domain_id = ids["domain_id"]
    workspace_id = ids["workspace_id"]

    from spaceone.inventory.service.collector_service import CollectorService

    def service():
        return CollectorService({"token": env.USER_TOKEN})

    def call(label, fn):
        """Run a service call; record the CloudForet error it raises."""
        n_plugin = len(env.PLUGIN_CALLS)
        n_md = len(env.PLUGIN_METADATA)
        rec = {"ok": True, "error": None}
        try:
            rec["result"] = fn()
        except Exception as e:
            rec["ok"] = False
            rec["error"] = env.describe_error(e)
            report["exceptions"].append(
                {"where": label, "error": rec["error"], "traceback": traceback.format_exc()[-3000:]}
            )
        rec["plugin_calls"] = env.PLUGIN_CALLS[n_plugin:]
        rec["plugin_metadata"] = env.PLUGIN_METADATA[n_md:]
        return rec

    if args.managed_metrics and args.cf == "2":
        from spaceone.inventory.manager.metric_manager import MetricManager
        from spaceone.inventory.manager.namespace_manager import NamespaceManager

        mr = call(
            "managed metrics",
            lambda: (
                NamespaceManager()._create_managed_namespace(domain_id),
                MetricManager().create_managed_metric(domain_id),
            )
            and True,
        )
        report["managed_metrics_install"] = {"ok": mr["ok"], "error": mr["error"]}

    plan = run_plan(args, secret, options)
    first = plan[0]

    # 1. Collector.create (init)
    create_params = {
        "name": "Nutanix fixture",
        "plugin_info": {
            "plugin_id": ids["plugin_id"],
            "version": fakes.plugin_version,
            "options": copy.deepcopy(first["options"]),
            "upgrade_mode": "MANUAL",
        },
        "provider": args.provider,
        # As the console and the README's collector.yaml do; 2.x's
        # verify_plugin fails on a collector without one.
        "secret_filter": {
            "state": "ENABLED",
            "service_accounts": [ids["service_account_id"]],
        },
        "domain_id": domain_id,
    }
    if args.cf == "2":
        create_params["resource_group"] = args.resource_group
        if args.resource_group == "WORKSPACE":
            create_params["workspace_id"] = workspace_id

    def do_create():
        vo = service().create(copy.deepcopy(create_params))
        d = vo_dict(vo)
        return {
            "collector_id": d.get("collector_id"),
            "provider": d.get("provider"),
            "plugin_info": d.get("plugin_info"),
            "capability": d.get("capability"),
        }

    report["create"] = call("CollectorService.create", do_create)
    collector_id = (report["create"].get("result") or {}).get("collector_id")
    if not collector_id:
        report["fake_service_calls"] = fakes.calls
        print(json.dumps(report, default=str, indent=1))
        return 0

    scope = {"collector_id": collector_id, "domain_id": domain_id}
    if args.cf == "2":
        scope["workspace_id"] = workspace_id

    # 2. Collector.verify_plugin (verify), with the first run's secret
    fakes.secret_data = copy.deepcopy(first["secret"])
    report["verify"] = call(
        "CollectorService.verify_plugin",
        lambda: service().verify_plugin(dict(scope)) and None,
    )

    # 3. Collector.collect (get_tasks, job, queue, worker, upserts), N times
    current_options = first["options"]
    prev_active = None
    for i, step in enumerate(plan):
        env.CLOCK.advance(step["hours"])
        fakes.secret_data = copy.deepcopy(step["secret"])
        run = {"run": i + 1, "label": step["label"], "clock_hours": env.CLOCK.hours()}
        run["http_before"] = [send_http(r) for r in step.get("http_before", [])]
        if step["options"] != current_options:
            upd = call(
                "CollectorService.update_plugin",
                lambda: service().update_plugin(
                    dict(scope, options=copy.deepcopy(step["options"]))
                )
                and None,
            )
            run["update_plugin"] = {"ok": upd["ok"], "error": upd["error"]}
            current_options = step["options"]
        env.new_stream_run(i + 1)
        n_exc = len(env.TASK_EXCEPTIONS)
        n_q = len(env.QUEUE_LOG)
        n_sleep = len(env.CLOCK.sleeps)
        n_calls = len(env.PLUGIN_CALLS)

        def do_collect():
            vo = service().collect(dict(scope))
            return {"job_id": vo.job_id}

        c = call("CollectorService.collect", do_collect)
        run["collect"] = {"ok": c["ok"], "error": c["error"]}
        tasks_run = env.drain_queue()
        run["queued_tasks"] = env.QUEUE_LOG[n_q:]
        run["executed_tasks"] = tasks_run
        run["task_exceptions"] = env.TASK_EXCEPTIONS[n_exc:]
        run["sleeps"] = env.CLOCK.sleeps[n_sleep:]
        run["stream"] = env.STREAM["runs"][-1]
        # gRPC calls to the plugin during this run (get_tasks, each collect),
        # with the attempts spaceone-core's interceptor made.
        run["plugin_calls"] = env.PLUGIN_CALLS[n_calls:]
        job_id = (c.get("result") or {}).get("job_id")
        if job_id:
            run.update(job_report(env, job_id, domain_id))
        run["counts"] = counts(args.cf, domain_id)

        from spaceone.inventory.model.cloud_service_model import CloudService

        active = {
            vo.cloud_service_id
            for vo in CloudService.objects(domain_id=domain_id, state__ne="DELETED")
        }
        if prev_active is not None:
            run["deleted_since_previous_run"] = len(prev_active - active)
            run["new_since_previous_run"] = len(active - prev_active)
        prev_active = active
        report["runs"].append(run)

    # Plugin metadata as sent (all calls)
    report["plugin_metadata"] = env.PLUGIN_METADATA
    report["plugin_calls"] = env.PLUGIN_CALLS

    if args.cleanup_after_hours is not None:
        env.CLOCK.advance(args.cleanup_after_hours)
        from spaceone.inventory.service.cleanup_service import CleanupService

        cs = call(
            "CleanupService.delete_resources",
            lambda: CleanupService({"token": env.SYSTEM_TOKEN}).delete_resources(
                {"domain_id": domain_id}
            )
            and None,
        )
        report["cleanup"] = {
            "clock_hours": env.CLOCK.hours(),
            "ok": cs["ok"],
            "error": cs["error"],
            "counts": counts(args.cf, domain_id),
        }

    report["counts"] = counts(args.cf, domain_id)
    report.update(types_and_regions(domain_id))
    if args.cf == "2":
        report.update(namespaces_and_metrics(domain_id))
        m = call("metrics", lambda: evaluate_metrics(domain_id))
        report["metric_queries"] = m.get("result") or {"error": m["error"]}
    report["cloud_service_samples"] = samples(domain_id, args.sample, args.show)
    report["fake_service_calls"] = fakes.calls
    report["fake_roundtrip_errors"] = fakes.roundtrip_errors
    print(json.dumps(report, default=str, indent=1, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
