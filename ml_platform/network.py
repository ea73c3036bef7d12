"""Network failures named by their real cause: a server that could not be reached, shared by store and registry.

Neither boto nor requests is imported here: the object store (s3fs, botocore, aiohttp) and the MLflow
client (requests, urllib3) report a lost connection through different exception families, recognised by
their module and name, so :func:`connection_cause` finds it whatever wrapped it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ml_platform.errors import exception_chain

__all__ = ["ConnectionCause", "connection_cause", "server_address"]

#: The client libraries whose exceptions name a lost or refused connection, and those exceptions' names.
_CLIENT_MODULES = frozenset({"botocore", "aiobotocore", "urllib3", "requests", "aiohttp", "http"})
_CONNECTION_NAMES = frozenset({
    "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError",
    "ProxyConnectionError", "NewConnectionError", "ConnectionError", "ConnectTimeout", "ReadTimeout",
    "ProtocolError", "ClientConnectorError", "ClientConnectionError", "ServerDisconnectedError", "ClientOSError",
    "RemoteDisconnected", "IncompleteRead",
})


@dataclass(frozen=True)
class ConnectionCause:
    """The network failure behind an exception.

    Attributes:
        message: What the socket said, e.g. ``Connection refused`` (first line only).
        kind: The exception's type, e.g. ``builtins.ConnectionRefusedError``.
        url: The URL being reached when a client library recorded it (botocore does), else ``None``.
    """

    message: str
    kind: str
    url: str | None


def _links(exc: BaseException) -> list[object]:
    return [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *exc.args[:1]]


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    module = type(exc).__module__.split(".")[0]
    return module in _CLIENT_MODULES and any(t.__name__ in _CONNECTION_NAMES for t in type(exc).__mro__)


def connection_cause(exc: BaseException) -> ConnectionCause | None:
    """The lost, refused or timed-out connection at the root of ``exc``, or ``None`` if there is none.

    A server that answered, even with an error (HTTP 500, a refused request), is not a connection failure.
    """
    found = [e for e in exception_chain(exc, _links) if _is_connection_error(e)]
    if not found:
        return None
    url = next((str(e.kwargs["endpoint_url"]) for e in found
                if isinstance(getattr(e, "kwargs", None), dict) and e.kwargs.get("endpoint_url")), None)
    socket_level = [e for e in found if type(e).__module__ == "builtins" and isinstance(e, OSError) and e.strerror]
    root = socket_level[-1] if socket_level else found[-1]
    text = root.strerror if isinstance(root, OSError) and root.strerror else str(root) or type(root).__name__
    message = text.strip().splitlines()[0] if text.strip() else type(root).__name__
    return ConnectionCause(message, f"{type(root).__module__}.{type(root).__qualname__}", url)


def server_address(url: str) -> str:
    """``scheme://host:port`` of ``url`` (``http://127.0.0.1:9000/bucket/key`` -> ``http://127.0.0.1:9000``)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}"
