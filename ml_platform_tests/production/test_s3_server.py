"""The stack's S3 server keeps its objects across a restart: killed (SIGKILL) and started again on its port, it
replays its recording before it listens, and every object reads back byte for byte (prod_local.s3_server).

A real moto server process, real s3fs and boto3 clients (the store's and MLflow's), the real pinned store;
no stack needed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import polars as pl
import pytest
from prod_local.processes import free_port, port_listening
from upath import UPath

from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_store
from ml_platform_tests.production.stack import PRODUCTION

CREDENTIALS = {"key": "test-key", "secret": "test-secret"}


class S3Server:
    """``python -m prod_local.s3_server`` on one port and one recording, started and killed at will."""

    def __init__(self, port: int, recording: Path, log: Path) -> None:
        self.port, self.recording, self.log = port, recording, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen([sys.executable, "-m", "prod_local.s3_server", "--port", str(self.port),
                                          "--recording", str(self.recording)], cwd=PRODUCTION, stdout=handle,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if port_listening(self.port):  # it listens only once its recording is replayed
                return
            time.sleep(0.2)
        raise AssertionError(f"the S3 server did not answer within 120 s: {self.log.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[S3Server]:
    server = S3Server(free_port(), tmp_path / "recording.jsonl", tmp_path / "s3.log")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


def test_every_object_survives_a_killed_server_byte_for_byte(server: S3Server, tmp_path: Path) -> None:
    client = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id=CREDENTIALS["key"], aws_secret_access_key=CREDENTIALS["secret"])
    client.create_bucket(Bucket="bucket")
    store = PinnedStore(UPath("s3://bucket/features", endpoint_url=server.url, **CREDENTIALS,
                              client_kwargs={"region_name": "us-east-1"}))
    for day in ("2012-01-03", "2012-01-04"):
        store.write("features/momentum", day, pl.DataFrame({"symbol": ["A", "B"], "value": [1.0, float(day[-1])]}))
    store.write("features/momentum", "2012-01-04", pl.DataFrame({"symbol": ["A"], "value": [9.0]}))  # a new head
    big = os.urandom(9 * 1024 * 1024)  # above boto3's 8 MiB threshold: a multipart upload, as MLflow's artefacts
    (tmp_path / "model.bin").write_bytes(big)
    client.upload_file(str(tmp_path / "model.bin"), "bucket", "mlflow/1/model.bin")
    client.put_object(Bucket="bucket", Key="mlflow/odd name %2F+x", Body=b"odd key")
    client.put_object(Bucket="bucket", Key="mlflow/deleted", Body=b"gone")
    client.delete_object(Bucket="bucket", Key="mlflow/deleted")

    def contents() -> dict[str, str]:
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="bucket")
                for o in page.get("Contents", [])]
        return {k: hashlib.sha256(client.get_object(Bucket="bucket", Key=k)["Body"].read()).hexdigest() for k in keys}

    before = contents()
    assert "mlflow/deleted" not in before and len(before) >= 7, sorted(before)
    server.kill()
    server.start()
    assert contents() == before
    assert hashlib.sha256(big).hexdigest() == before["mlflow/1/model.bin"]
    store = PinnedStore(UPath("s3://bucket/features", endpoint_url=server.url, **CREDENTIALS,
                              client_kwargs={"region_name": "us-east-1"}))
    assert {r.status for r in verify_store(store)} == {VerifyStatus.OK}
    assert store.read("features/momentum", "2012-01-04").frame["value"].to_list() == [9.0]
    server.kill()  # and once more
    server.start()
    assert contents() == before
    replays = [line.split(": ")[1] for line in server.log.read_text().splitlines() if "requests replayed" in line]
    # what a replay sends is not recorded again: the second restart replays the same requests as the first
    assert len(replays) == 3 and replays[1] == replays[2] and not replays[1].startswith("0 "), replays
    assert "(0 failed)" in replays[1], replays


def test_a_line_cut_by_the_kill_is_dropped_not_replayed_into_the_next(server: S3Server) -> None:
    client = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id=CREDENTIALS["key"], aws_secret_access_key=CREDENTIALS["secret"])
    client.create_bucket(Bucket="bucket")
    client.put_object(Bucket="bucket", Key="whole", Body=b"whole")
    server.kill()
    with server.recording.open("a", encoding="utf-8") as handle:
        handle.write('{"method": "PUT", "url": "http://127.0.0.1/bucket/cut", "headers": {}, "bo')
    server.start()
    client.put_object(Bucket="bucket", Key="after", Body=b"after")
    server.kill()
    server.start()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="bucket")["Contents"])
    assert keys == ["after", "whole"]
