"""The host a collector runs in, behind one small interface.

Inside the component this is the WIT imports (`_edge.WitHost`, installed when
the edge module is imported); in the SDK's own tests it is a fake. Plain
Python types cross it: the WIT conversion lives in `_edge` only.
"""


class Host:
    """What the SDK needs from the host. Every method may be overridden."""

    def send(self, method: str, url: str, headers: list, body, timeout_ms, credential):
        """One HTTP request. `credential` is None, ("basic",), ("bearer",) or
        ("api-key", header). Answers (status, headers, body bytes); raises an
        `http.HttpError` subclass for transport failures."""
        raise NotImplementedError("no host: run this collector as a component in cf-host")

    def emit(self, responses: list):
        """Hands a batch of response dicts (`make_response`,
        `make_error_response`) to the host. Answers (stop, rejected) where
        rejected is a list of (index, reason)."""
        raise NotImplementedError("no host: run this collector as a component in cf-host")

    def log(self, level: str, message: str, fields: list) -> None:
        pass

    def state_get(self, key: str):
        raise NotImplementedError("no host")

    def state_set(self, key: str, value: str) -> None:
        raise NotImplementedError("no host")

    def state_delete(self, key: str) -> None:
        raise NotImplementedError("no host")


_current = Host()


def current() -> Host:
    return _current


def install(host: Host) -> Host:
    """Makes `host` the one the SDK talks to; answers the previous one."""
    global _current
    previous, _current = _current, host
    return previous
