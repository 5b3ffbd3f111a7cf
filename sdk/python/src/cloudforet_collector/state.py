"""Key/value state kept by the host per tenant and collector across runs
(e.g. an incremental cursor). A run never sees another tenant's keys.

    cursor = state.get("cursor")
    state.set("cursor", "2024-01-01T00:00:00Z")
"""

from . import _host

__all__ = ["StateError", "get", "set", "delete"]


class StateError(Exception):
    """A key or value over the host's limits, or the state store failed."""


def get(key: str):
    """The value, or None when the key is not set."""
    return _host.current().state_get(key)


def set(key: str, value: str) -> None:
    _host.current().state_set(key, value)


def delete(key: str) -> None:
    _host.current().state_delete(key)
