"""Write sandboxed CloudForet inventory collectors in Python.

A collector is a module with a `CollectorPluginServer` and decorated
handlers, as with CloudForet's plugin SDK; `python -m cloudforet_collector.build`
turns it into a WebAssembly component that cf-host loads, sandboxes and
hot-swaps. HTTP goes through the host (`http`), which injects credentials;
records leave through the host in batches.
"""

from . import http, state
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors
from .layout import field
from .model import CloudService, CloudServiceType, Region, Reference, ErrorResource, Namespace, Metric, ValidationError
from .server import CollectorPluginServer
from .utils import *  # noqa: F401,F403
from .utils import __all__ as _utils

#: What the host puts in `secret_data` in place of `password`, `token` and `api_key`.
HOST_INJECTED = "[host-injected]"

__version__ = "0.1.0"

__all__ = [
    "CollectorPluginServer",
    "http",
    "state",
    "field",
    "CloudService",
    "CloudServiceType",
    "Region",
    "Reference",
    "ErrorResource",
    "Namespace",
    "Metric",
    "ValidationError",
    "HOST_INJECTED",
    *_errors,
    *_utils,
]
