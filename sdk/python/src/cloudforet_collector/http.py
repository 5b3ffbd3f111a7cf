"""Outbound HTTP through the host (`http.send` / `http.send-authenticated`).

The host checks every request against the run's egress policy (only the
endpoint of the secret), follows redirects itself, and adds credentials when
asked: the collector never sees the password, token or API key, which arrive
in `secret_data` as `[host-injected]`.

    resp = http.post(url, json={"kind": "vm"}, auth=http.BASIC)
    resp.raise_for_status()
    vms = resp.json()["entities"]

An HTTP error status is not an exception (check `status_code` or call
`raise_for_status()`); a transport failure is (`HttpError` subclasses).
"""

import json as _json

from . import _host
from .errors import InvalidArgument, PermissionDenied, Timeout as _TimeoutError, Unauthenticated, Unavailable, NotFound, ResourceExhausted, Internal

__all__ = [
    "BASIC",
    "BEARER",
    "ApiKey",
    "Response",
    "HttpError",
    "Denied",
    "InvalidRequest",
    "Timeout",
    "ConnectionFailed",
    "TlsError",
    "TooLarge",
    "HTTPStatusError",
    "request",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "head",
    "error_for_status",
    "error_for_transport",
]

#: `Authorization: Basic` from the secret's `username` and `password`.
BASIC = ("basic",)
#: `Authorization: Bearer` from the secret's `token`.
BEARER = ("bearer",)


def ApiKey(header: str):
    """The secret's `api_key` in the named header, e.g. `X-ntnx-api-key`."""
    return ("api-key", header)


class HttpError(Exception):
    """A transport failure: nothing (usable) came back."""


class Denied(HttpError):
    """The host's egress policy refused the request; nothing was sent."""


class InvalidRequest(HttpError):
    """Malformed URL, header or method (or the secret lacks the credential)."""


class Timeout(HttpError):
    """No answer within the request timeout."""


class ConnectionFailed(HttpError):
    """DNS, connect or reset failure (or the host's circuit breaker is open)."""


class TlsError(HttpError):
    """TLS handshake or certificate verification failed."""


class TooLarge(HttpError):
    """The response body exceeded the host's limit (`limit` bytes)."""

    def __init__(self, limit: int):
        super().__init__(f"response body over the host's limit of {limit} bytes")
        self.limit = limit


class HTTPStatusError(Exception):
    """`Response.raise_for_status()` on a 4xx/5xx answer."""

    def __init__(self, response):
        super().__init__(f"HTTP {response.status_code} from {response.url}")
        self.response = response


class Response:
    def __init__(self, url: str, status: int, headers: list, body: bytes):
        self.url = url
        self.status_code = status
        #: Header names in lower case; repeated headers joined with ", ".
        self.headers = {}
        for name, value in headers:
            name = name.lower()
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value
        self.content = body

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return _json.loads(self.content)

    def raise_for_status(self) -> "Response":
        if self.status_code >= 400:
            raise HTTPStatusError(self)
        return self

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def request(method: str, url: str, *, json=None, data=None, headers=None, auth=None, timeout=None) -> Response:
    """Sends one request through the host.

    `json` is serialized (and sets `content-type: application/json`); `data`
    is bytes or text; `auth` is `BASIC`, `BEARER`, `ApiKey(header)` or None;
    `timeout` in seconds (the host caps it).
    """
    hdrs = [(str(k), str(v)) for k, v in (headers or {}).items()]
    names = {k.lower() for k, _ in hdrs}
    body = None
    if json is not None:
        body = _json.dumps(json, separators=(",", ":")).encode()
        if "content-type" not in names:
            hdrs.append(("content-type", "application/json"))
    elif data is not None:
        body = data.encode() if isinstance(data, str) else bytes(data)
    if "accept" not in names:
        hdrs.append(("accept", "application/json"))
    timeout_ms = None if timeout is None else max(1, int(timeout * 1000))
    status, rheaders, rbody = _host.current().send(method.upper(), url, hdrs, body, timeout_ms, auth)
    return Response(url, status, rheaders, rbody)


def get(url: str, **kw) -> Response:
    return request("GET", url, **kw)


def head(url: str, **kw) -> Response:
    return request("HEAD", url, **kw)


def post(url: str, **kw) -> Response:
    return request("POST", url, **kw)


def put(url: str, **kw) -> Response:
    return request("PUT", url, **kw)


def patch(url: str, **kw) -> Response:
    return request("PATCH", url, **kw)


def delete(url: str, **kw) -> Response:
    return request("DELETE", url, **kw)


def error_for_status(response: Response, what: str = "request"):
    """The collector error a failed answer means, for handlers that give up
    on it: 401 → Unauthenticated, 403 → PermissionDenied, 404 → NotFound,
    429/5xx → Unavailable, other 4xx → InvalidArgument. None when it is 2xx/3xx."""
    s = response.status_code
    if s < 400:
        return None
    message = f"{what} answered HTTP {s}"
    if s == 401:
        return Unauthenticated(message)
    if s == 403:
        return PermissionDenied(message)
    if s == 404:
        return NotFound(message)
    if s == 429 or s >= 500:
        return Unavailable(message)
    return InvalidArgument(message)


def error_for_transport(e: HttpError, what: str = "request"):
    """The collector error a transport failure means."""
    if isinstance(e, Denied):
        return PermissionDenied(f"{what} refused by the host's egress policy: {e}")
    if isinstance(e, Timeout):
        return _TimeoutError(f"{what} timed out")
    if isinstance(e, TooLarge):
        return ResourceExhausted(f"{what}: {e}")
    if isinstance(e, InvalidRequest):
        return InvalidArgument(f"{what}: {e}")
    if isinstance(e, (ConnectionFailed, TlsError)):
        return Unavailable(f"{what}: {e}")
    return Internal(f"{what}: {e}")
