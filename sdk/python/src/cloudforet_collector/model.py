"""Record models: CloudForet's inventory records as small validated classes.

They behave like the pydantic models of CloudForet's plugin SDK for what a
collector does with them (keyword construction with defaults, required
fields checked, types checked and coerced where harmless, `.dict()`), without
pydantic, which has no WebAssembly build: the SDK runs inside the component.

    vm = CloudService(name="vm-1", cloud_service_type="VirtualMachine",
                      cloud_service_group="Compute", provider="nutanix",
                      data={"vcpus": 4}, reference={"resource_id": "uuid-1"})
    vm.dict()
"""

import copy

__all__ = [
    "ValidationError",
    "Model",
    "Reference",
    "CloudService",
    "CloudServiceType",
    "Region",
    "ErrorResource",
    "Namespace",
    "Metric",
]

_REQUIRED = object()


class ValidationError(ValueError):
    """A model was built with a missing or mistyped field."""


def _check(model: str, name: str, kind, value):
    if value is None:
        return None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"{model}.{name}: expected a number, got {type(value).__name__}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{model}.{name}: expected an integer, got {type(value).__name__}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ValidationError(f"{model}.{name}: expected a string, got {type(value).__name__}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ValidationError(f"{model}.{name}: expected true or false, got {type(value).__name__}")
        return value
    if kind is dict:
        if isinstance(value, Model):
            return value.dict()
        if not isinstance(value, dict):
            raise ValidationError(f"{model}.{name}: expected an object, got {type(value).__name__}")
        return value
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise ValidationError(f"{model}.{name}: expected a list, got {type(value).__name__}")
        return list(value)
    if isinstance(kind, type) and issubclass(kind, Model):
        if isinstance(value, kind):
            return value
        if isinstance(value, dict):
            return kind(**value)
        raise ValidationError(f"{model}.{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


class Model:
    """Fields are class attributes `name = (type, default)`; a default of
    `REQUIRED` makes the field required. Mutable defaults are copied."""

    _fields: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        fields = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(getattr(base, "_fields", {}))
        for name, spec in list(vars(cls).items()):
            if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], type):
                fields[name] = spec
                delattr(cls, name)
        cls._fields = fields

    def __init__(self, **values):
        unknown = set(values) - set(self._fields)
        if unknown:
            raise ValidationError(f"{type(self).__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        for name, (kind, default) in self._fields.items():
            if name in values:
                value = values[name]
            elif default is _REQUIRED:
                raise ValidationError(f"{type(self).__name__}.{name} is required")
            else:
                value = copy.copy(default)
            if default is _REQUIRED and (value is None or value == ""):
                raise ValidationError(f"{type(self).__name__}.{name} is required")
            object.__setattr__(self, name, _check(type(self).__name__, name, kind, value))

    def __setattr__(self, name, value):
        if name not in self._fields:
            raise ValidationError(f"{type(self).__name__}: unknown field {name}")
        object.__setattr__(self, name, _check(type(self).__name__, name, self._fields[name][0], value))

    def dict(self, exclude_none: bool = False) -> dict:
        out = {}
        for name in self._fields:
            value = getattr(self, name)
            if isinstance(value, Model):
                value = value.dict(exclude_none=exclude_none)
            if value is None and exclude_none:
                continue
            out[name] = value
        return out

    def __eq__(self, other):
        return type(self) is type(other) and self.dict() == other.dict()

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.dict(exclude_none=True).items())
        return f"{type(self).__name__}({inner})"


REQUIRED = _REQUIRED


class Reference(Model):
    resource_id = (str, REQUIRED)
    external_link = (str, None)


class CloudService(Model):
    """`inventory.CloudService`."""

    name = (str, None)
    cloud_service_type = (str, REQUIRED)
    cloud_service_group = (str, REQUIRED)
    provider = (str, REQUIRED)
    ip_addresses = (list, [])
    account = (str, None)
    instance_type = (str, None)
    instance_size = (float, None)
    launched_at = (str, None)
    region_code = (str, None)
    data = (dict, {})
    metadata = (dict, {})
    reference = (Reference, None)
    tags = (dict, {})


class CloudServiceType(Model):
    """`inventory.CloudServiceType`; `metadata` is the dynamic layout."""

    name = (str, REQUIRED)
    group = (str, REQUIRED)
    provider = (str, REQUIRED)
    is_primary = (bool, False)
    is_major = (bool, False)
    metadata = (dict, {})
    service_code = (str, None)
    tags = (dict, {})
    labels = (list, [])


class Region(Model):
    """`inventory.Region`."""

    name = (str, "")
    region_code = (str, REQUIRED)
    provider = (str, REQUIRED)
    tags = (dict, {})


class ErrorResource(Model):
    """`inventory.ErrorResource`: something could not be collected."""

    message = (str, REQUIRED)
    provider = (str, "")
    cloud_service_group = (str, "")
    cloud_service_type = (str, "")
    resource_type = (str, "inventory.CloudService")


class Namespace(Model):
    """`inventory.Namespace`: a group of metrics."""

    namespace_id = (str, REQUIRED)
    name = (str, REQUIRED)
    category = (str, "ASSET")
    resource_type = (str, "inventory.CloudService")
    group = (str, REQUIRED)
    provider = (str, REQUIRED)
    icon = (str, None)
    tags = (dict, {})


class Metric(Model):
    """`inventory.Metric`; `metric_type` is `GAUGE` or `COUNTER`."""

    metric_id = (str, REQUIRED)
    name = (str, REQUIRED)
    metric_type = (str, "GAUGE")
    resource_type = (str, "inventory.CloudService")
    namespace_id = (str, REQUIRED)
    provider = (str, REQUIRED)
    unit = (dict, {})
    query_options = (dict, {})
    tags = (dict, {})
