"""A local HTTP endpoint for tests: records every request and answers from a programmable script.

It stands in for PagerDuty's Events API, a Slack incoming webhook, or any HTTP endpoint a route talks
to: a threaded server on ``127.0.0.1`` and a free port, so the real client libraries send real HTTP.

Each request takes the next :class:`Reply` of the script (``fail the first two with 500, then 202``:
``HttpStub([500, 500])``); once the script is used up, every request gets ``default`` (202). A reply can
also wait before answering (``delay``, to make a client time out) or close the connection without any
answer (``drop``). Unless a reply says otherwise, the body is what the real services answer on
success: PagerDuty's Events API JSON (echoing the event's ``dedup_key``) for a request with an
``event_action``, else ``ok`` (Slack).

Example:
    >>> with HttpStub([500, Reply(202)]) as stub:  # doctest: +SKIP
    ...     route = PagerRoute(tmp, routing_key="R" * 32, events_url=stub.url_for("/v2/enqueue"))
    ...     route.send(incident)
    ...     stub.bodies("/v2/enqueue")[-1]["dedup_key"]
    'freshness:features/returns'

The ``http_stub`` fixture (``conftest.py``) is a factory: ``stub = http_stub([500, 500])``; every stub
it made is stopped after the test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["HttpStub", "RecordedRequest", "Reply"]


@dataclass(frozen=True)
class Reply:
    """How the stub answers one request.

    Attributes:
        status: The HTTP status.
        body: The body: bytes or text as is, any other value as JSON; None: the default success body.
        delay: Seconds to wait before answering (longer than the client's timeout: a timeout).
        drop: Close the connection without answering (a connection reset / remote disconnect).
        headers: Extra response headers.
    """

    status: int = 202
    body: Any = None
    delay: float = 0.0
    drop: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received, and the status it answered (None: dropped)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    received_at: float

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None if it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def default_body(status: int, request_json: Any) -> tuple[bytes, str]:
    """What the real services answer: PagerDuty Events API v2 JSON for an event, else Slack's text answers."""
    ok = 200 <= status < 300
    if isinstance(request_json, dict) and "event_action" in request_json:
        if ok:
            answer = {"status": "success", "message": "Event processed",
                      "dedup_key": request_json.get("dedup_key") or uuid.uuid4().hex}
        else:
            answer = {"status": "error", "message": f"stub answered {status}", "errors": [f"status {status}"]}
        return json.dumps(answer).encode(), "application/json"
    return (b"ok" if ok else f"stub_error_{status}".encode()), "text/plain; charset=utf-8"


def _as_reply(reply: Reply | int) -> Reply:
    return reply if isinstance(reply, Reply) else Reply(status=int(reply))


class HttpStub:
    """A recording HTTP endpoint on ``127.0.0.1`` (see the module documentation).

    Args:
        script: The replies to the first requests, in order (a bare int is a status).
        default: The reply once the script is used up.
    """

    def __init__(self, script: Iterable[Reply | int] = (), default: Reply | int = 202) -> None:
        self._script: deque[Reply] = deque(_as_reply(reply) for reply in script)
        self.default = _as_reply(default)
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving (idempotent); returns self."""
        if self._server is not None:
            return self
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = stub._next_reply()
                stub._record(RecordedRequest(method=self.command, path=self.path, headers=dict(self.headers.items()),
                                             body=body, status=None if reply.drop else reply.status,
                                             received_at=time.monotonic()))
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if reply.body is None:
                    try:
                        parsed = json.loads(body) if body else None
                    except ValueError:
                        parsed = None
                    payload, content_type = default_body(reply.status, parsed)
                elif isinstance(reply.body, bytes):
                    payload, content_type = reply.body, "application/octet-stream"
                elif isinstance(reply.body, str):
                    payload, content_type = reply.body.encode(), "text/plain; charset=utf-8"
                else:
                    payload, content_type = json.dumps(reply.body).encode(), "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timed out) before the answer: nothing to do
                    pass

            do_POST = do_GET = do_PUT = _handle  # the names http.server dispatches to

            def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"http-stub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port (requests in flight are abandoned)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stub is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str) -> str:
        """The stub's URL of ``path`` (``/v2/enqueue``, ``/services/T0/B0/x``)."""
        return self.url + "/" + path.lstrip("/")

    # -- the script ------------------------------------------------------------------------------------

    def then(self, *replies: Reply | int) -> HttpStub:
        """Append replies to the script; returns self."""
        with self._lock:
            self._script.extend(_as_reply(reply) for reply in replies)
        return self

    def answer_always(self, reply: Reply | int) -> HttpStub:
        """Drop what is left of the script and answer every further request with ``reply``; returns self."""
        with self._lock:
            self._script.clear()
            self.default = _as_reply(reply)
        return self

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()

    # -- what was received -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests whose path is ``path``."""
        return [request for request in self.requests if request.path == path]

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies of the requests (to ``path``, if given)."""
        return [request.json for request in self.requests if path is None or request.path == path]

    def accepted(self, path: str | None = None) -> list[RecordedRequest]:
        """The requests answered with a 2xx (to ``path``, if given)."""
        return [request for request in self.requests
                if (path is None or request.path == path) and request.status is not None
                and 200 <= request.status < 300]

    def wait_for(self, count: int, timeout: float = 5.0, where: Callable[[RecordedRequest], bool] | None = None,
                 ) -> list[RecordedRequest]:
        """Wait until ``count`` requests (matching ``where``) arrived; returns them, or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                matching = [r for r in self._requests if where is None or where(r)]
                if len(matching) >= count:
                    return matching
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(matching)} of {count} expected requests arrived in {timeout}s")
                self._arrived.wait(left)
