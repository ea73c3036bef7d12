"""The stack's S3 server: moto's, with its state kept on disk, so a restart (a crash, then a start) loses nothing.

``python -m prod_local.s3_server --port PORT --recording FILE``. moto keeps every object in memory only. Its
recorder (``MOTO_ENABLE_RECORDING``) appends each request it serves to a file; this server records every
request that changes something (``PUT``, ``POST``, ``DELETE``) from its first start, and on every start replays
the file into a fresh server *before* it listens: a client that reconnects after a restart finds every object it
wrote, byte for byte, and never sees the half-restored state a replay through the open port would show.

What a restart then models: an S3 server process that dies (``SIGKILL``) and comes back on the same address
with its data, as MinIO on its disk does. Not modelled: the data store itself failing. Two limits of replaying
requests: a request is recorded when it arrives, so one the server died serving is replayed whole (an object
PUT is all or nothing, so the object is there after the restart, which a real server does not promise for a
PUT that was never answered); and concurrent writes to one key replay in arrival order.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["main", "replay"]

#: The methods by which S3 changes state; reads (GET, HEAD) are neither recorded nor replayed.
CHANGING = frozenset({"PUT", "POST", "DELETE"})
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")


def _whole_lines(recording: Path) -> None:
    """Cut a line the previous server was killed while writing: every line left is one whole request."""
    if not recording.exists():
        return
    data = recording.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with recording.open("r+b") as handle:
            handle.truncate(len(whole))


def replay(app: Any, recording: Path) -> tuple[int, int]:
    """Send every recorded request to ``app`` (a WSGI application, through werkzeug's test client), in order.

    A multipart upload gets a new upload id from the fresh server: the recorded parts and completion of each
    upload are sent with the id the replayed creation of the same key was given.

    Returns:
        How many requests were replayed, and how many of those the server failed (5xx or an exception).
    """
    from werkzeug.test import Client

    client = Client(app)
    created: dict[str, list[str]] = {}  # key path -> upload ids given by this server, not yet matched
    renamed: dict[str, str] = {}  # recorded upload id -> this server's
    replayed = failed = 0
    with recording.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            body = base64.b64decode(entry["body"]) if entry.get("body_encoded") else (entry.get("body") or "").encode()
            url = urlsplit(entry["url"])
            query = parse_qsl(url.query, keep_blank_values=True)
            recorded_id = dict(query).get("uploadId")
            if recorded_id is not None and recorded_id not in renamed and created.get(url.path):
                renamed[recorded_id] = created[url.path].pop(0)
            query = [(k, renamed.get(v, v) if k == "uploadId" else v) for k, v in query]
            headers = {k: v for k, v in entry["headers"].items() if k.lower() not in ("content-length",
                                                                                      "transfer-encoding")}
            replayed += 1
            try:
                answer = client.open(url.path, method=entry["method"], query_string=urlencode(query), headers=headers,
                                     data=body)
            except Exception as exc:  # noqa: BLE001 - one bad request must not lose every later one
                failed += 1
                print(f"replay: {entry['method']} {url.path} failed: {exc}", flush=True)
                continue
            if answer.status_code >= 500:
                failed += 1
            if entry["method"] == "POST" and "uploads" in dict(query):
                found = _UPLOAD_ID.search(answer.get_data())
                if found:
                    created.setdefault(url.path, []).append(found.group(1).decode())
    return replayed, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prod_local.s3_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--recording", type=Path, required=True, help="the file of recorded changing requests")
    args = parser.parse_args(argv)
    recording: Path = args.recording.resolve()
    os.environ["MOTO_ENABLE_RECORDING"] = "true"  # read by moto's recorder when moto is imported
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the log
    record_one = recorder._record_request
    lock = threading.Lock()

    def record(request: Any, body: bytes | None = None) -> None:
        if request.method in CHANGING:
            with lock:  # one whole line per request, whatever the threads serving them
                record_one(request, body)

    recorder._record_request = record  # type: ignore[method-assign]
    app = DomainDispatcherApplication(create_backend_app)
    recorder.stop_recording()
    _whole_lines(recording)
    replayed, failed = replay(app, recording) if recording.exists() else (0, 0)
    recording.touch()
    recorder.start_recording()
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"S3 server on http://{args.host}:{args.port}: {replayed} recorded requests replayed ({failed} failed), "
          f"recording to {recording}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
