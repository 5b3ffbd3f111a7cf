"""Dynamic layouts for CloudForet's console.

A cloud service type carries its layout in `metadata` (`view.search`,
`view.table.layout`, `view.sub_data.layouts`). CloudForet plugins write it in
a short form, one `{Label: key}` mapping per field plus options, which this
module expands:

    {
        "search": {"fields": [{"Name": "name"}, {"vCPUs": "data.vcpus", "data_type": "integer"}]},
        "table": {"sort": {"key": "name"}, "fields": [{"Power": "data.power_state", "type": "enum",
                  "enums": {"ON": {"type": "state", "options": {"icon": {"color": "green.500"}}}}}]},
        "tabs.0": {"name": "VM", "type": "item", "fields": [{"UUID": "data.uuid"}]},
        "tabs.1": {"name": "Disks", "type": "table", "root_path": "data.disks",
                   "fields": [{"Size": "size_bytes", "type": "size"}]},
    }

A dict that already has `view` is taken as it is.
"""

__all__ = ["convert_cloud_service_type_meta", "convert_cloud_service_meta", "field"]

# Keys of a short-form field that go under the field's `options`.
_OPTION_KEYS = (
    "is_optional", "delimiter", "display_unit", "source_unit", "default", "field_description",
    "source_type", "source_format", "sub_key", "unit", "link", "width", "display_format",
)
# Keys that stay on the field itself.
_FIELD_KEYS = ("type", "key", "name", "options", "enums", "reference", "data_type", "labels")


def field(spec: dict) -> dict:
    """One short-form field, e.g. `{"Size": "data.size", "type": "size",
    "display_unit": "GB"}`, as a dynamic-view field."""
    spec = dict(spec)
    out = {}
    if "key" in spec and "name" in spec:
        out["key"], out["name"] = spec.pop("key"), spec.pop("name")
    else:
        labels = [k for k in spec if k not in _OPTION_KEYS and k not in _FIELD_KEYS]
        if len(labels) != 1:
            raise ValueError(f"a layout field needs exactly one {{Label: key}} entry: {spec!r}")
        out["name"] = labels[0]
        out["key"] = spec.pop(labels[0])
    out["type"] = spec.pop("type", "text")
    options = dict(spec.pop("options", {}))
    for k in _OPTION_KEYS:
        if k in spec:
            options[k] = spec.pop(k)
    if out["type"] == "list" and "delimiter" not in options:
        options["delimiter"] = " "
    if "reference_key" in spec:
        spec["reference"] = {"reference_key": spec.pop("reference_key"), "resource_type": "inventory.CloudService"}
    for k in ("enums", "reference", "data_type"):
        if k in spec:
            out[k] = spec.pop(k)
    if options:
        out["options"] = options
    return out


def _fields(specs) -> list:
    return [field(s) for s in specs or []]


def _view(name: str, view_type: str, spec: dict) -> dict:
    options = {}
    if "fields" in spec:
        options["fields"] = _fields(spec["fields"])
    for k in ("root_path", "unwind", "default_sort", "search"):
        if k in spec:
            options[k] = spec[k]
    if "sort" in spec:
        options["default_sort"] = {k: spec["sort"][k] for k in ("key", "desc") if k in spec["sort"]}
    if "items" in spec:
        options["layouts"] = [_view(i["name"], i.get("type", "item"), i) for i in spec["items"]]
    return {"name": name, "type": view_type, "options": options}


def convert_cloud_service_type_meta(metadata: dict) -> dict:
    """The dynamic layout of a cloud service type, from the short form."""
    if "view" in metadata:
        return metadata
    view = {
        "search": _fields(metadata.get("search", {}).get("fields")),
        "table": {"layout": _view("Main Table", "query-search-table", metadata.get("table", {}))},
        "sub_data": {"layouts": []},
    }
    tabs = sorted(((int(k.split(".", 1)[1]), v) for k, v in metadata.items() if k.startswith("tabs.")), key=lambda t: t[0])
    for _, tab in tabs:
        view["sub_data"]["layouts"].append(_view(tab["name"], tab.get("type", "list" if "items" in tab else "item"), tab))
    if "widget" in metadata:
        view["widget"] = metadata["widget"]
    out = {"view": view}
    if "query_sets" in metadata:
        out["query_sets"] = metadata["query_sets"]
    return out


def convert_cloud_service_meta(provider: str, cloud_service_group: str, cloud_service_type: str) -> dict:
    """A cloud service's metadata: show it with its type's layout."""
    return {
        "view": {
            "sub_data": {
                "reference": {
                    "resource_type": "inventory.CloudServiceType",
                    "options": {
                        "provider": provider,
                        "cloud_service_group": cloud_service_group,
                        "cloud_service_type": cloud_service_type,
                    },
                }
            }
        }
    }
