"""Errors a handler raises to fail a call.

Each class is one case of the WIT `collector-error`, which the host maps 1:1
to a gRPC status code (and CloudForet's `ERROR_*` details) when it serves
CloudForet. Any other exception a handler lets escape becomes `Internal`.

The `ERROR_*` names are the ones CloudForet plugins raise through
spaceone-core; they build the same messages from keyword arguments.
"""

__all__ = [
    "CollectorError",
    "InvalidArgument",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "Unavailable",
    "Timeout",
    "ResourceExhausted",
    "Internal",
    "ERROR_INVALID_ARGUMENT",
    "ERROR_REQUIRED_PARAMETER",
    "ERROR_INVALID_PARAMETER",
    "ERROR_AUTHENTICATE_FAILURE",
    "ERROR_PERMISSION_DENIED",
    "ERROR_NOT_FOUND",
    "ERROR_UNAVAILABLE",
    "ERROR_TIMEOUT",
    "ERROR_INTERNAL",
]


class CollectorError(Exception):
    """Base class. `code` names the WIT `collector-error` case."""

    code = "internal"

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(CollectorError):
    """Bad options, secret fields or task options (INVALID_ARGUMENT)."""

    code = "invalid-argument"


class Unauthenticated(CollectorError):
    """The endpoint rejected the credentials (UNAUTHENTICATED)."""

    code = "unauthenticated"


class PermissionDenied(CollectorError):
    """Authenticated but not allowed (PERMISSION_DENIED)."""

    code = "permission-denied"


class NotFound(CollectorError):
    """The endpoint or a required entity does not exist (NOT_FOUND)."""

    code = "not-found"


class Unavailable(CollectorError):
    """The endpoint could not be reached or answered 5xx/429 (UNAVAILABLE)."""

    code = "unavailable"


class Timeout(CollectorError):
    """The endpoint did not answer in time (DEADLINE_EXCEEDED)."""

    code = "timeout"


class ResourceExhausted(CollectorError):
    """A limit was reached (RESOURCE_EXHAUSTED)."""

    code = "resource-exhausted"


class Internal(CollectorError):
    """Anything else (INTERNAL)."""

    code = "internal"


def _formatted(base, template):
    """A spaceone-style error class: `ERROR_X(key=...)` formats `template`."""

    class Formatted(base):
        def __init__(self, message=None, **kwargs):
            if message is None:
                try:
                    message = template.format(**kwargs)
                except (KeyError, IndexError):
                    message = template
            super().__init__(message)

    return Formatted


ERROR_INVALID_ARGUMENT = _formatted(InvalidArgument, "Argument not valid. (key = {key}, reason = {reason})")
ERROR_INVALID_PARAMETER = _formatted(InvalidArgument, "Invalid parameter. (key = {key}, reason = {reason})")
ERROR_REQUIRED_PARAMETER = _formatted(InvalidArgument, "Required parameter. (key = {key})")
ERROR_AUTHENTICATE_FAILURE = _formatted(Unauthenticated, "Authenticate failure. (message = {message})")
ERROR_PERMISSION_DENIED = _formatted(PermissionDenied, "Permission denied.")
ERROR_NOT_FOUND = _formatted(NotFound, "Value not found. (key = {key}, value = {value})")
ERROR_UNAVAILABLE = _formatted(Unavailable, "Service unavailable. (reason = {reason})")
ERROR_TIMEOUT = _formatted(Timeout, "Timeout. (reason = {reason})")
ERROR_INTERNAL = _formatted(Internal, "Internal error. (message = {message})")

for _name in __all__:
    if _name.startswith("ERROR_"):
        globals()[_name].__name__ = _name
        globals()[_name].__qualname__ = _name
