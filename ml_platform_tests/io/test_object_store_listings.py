"""A long-lived process sees what other processes wrote to the object store since it last listed it.

A Celery worker runs step after step in one process, and fsspec hands every store in it the same S3 filesystem
instance; s3fs caches each directory listing forever unless told otherwise. The store turns that cache off: a
listing taken before another worker wrote a partition must not hide the new head, history entry or object.
A real S3 HTTP server (moto's, on a loopback port) and real s3fs clients; nothing mocked.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import polars as pl
import pytest
from moto.server import ThreadedMotoServer
from upath import UPath

from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_store
from ml_platform.reproduce.dagster_services import free_port

KEY, DAY = "features/momentum", "2012-01-03"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id="k",
                     aws_secret_access_key="s").create_bucket(Bucket="bucket")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _base(endpoint: str, **options: object) -> UPath:
    return UPath("s3://bucket/store", endpoint_url=endpoint, key="k", secret="s",
                 client_kwargs={"region_name": "us-east-1"}, **options)


def test_a_listing_taken_before_another_writer_does_not_hide_its_versions(endpoint: str) -> None:
    reader = PinnedStore(_base(endpoint))  # the worker's long-lived store
    reader.write(KEY, DAY, pl.DataFrame({"symbol": ["A"], "value": [1.0]}))
    assert [r.status for r in verify_store(reader)] == [VerifyStatus.OK]  # lists every folder of the store
    other = PinnedStore(_base(endpoint, skip_instance_cache=True))  # another process: its own S3 client
    second = other.write(KEY, DAY, pl.DataFrame({"symbol": ["A", "B"], "value": [2.0, 3.0]}))
    assert reader.read(KEY, DAY).manifest.data_hash == second.data_hash
    assert {r.status for r in verify_store(reader)} == {VerifyStatus.OK}
    assert len(list(reader.filesystem.list_files("refs"))) == 3  # the head and both history entries
