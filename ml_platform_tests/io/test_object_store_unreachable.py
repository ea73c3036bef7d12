"""An object store whose server cannot be reached: one StorageUnavailable naming the server, never a raw botocore error.

A real S3 client (s3fs, botocore, aiohttp) against a real loopback port nobody listens on; nothing mocked.
"""

from __future__ import annotations

import socket

import polars as pl
import pytest
from upath import UPath

from ml_platform.errors import StorageUnavailable
from ml_platform.io.store import PinnedStore
from ml_platform.network import connection_cause, server_address


@pytest.fixture(scope="module")
def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listened on, then closed: connections are refused
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def store(closed_port: int) -> PinnedStore:
    base = UPath("s3://bucket/store", endpoint_url=f"http://127.0.0.1:{closed_port}", key="k", secret="s",
                 client_kwargs={"region_name": "us-east-1"}, config_kwargs={"retries": {"max_attempts": 1}})
    return PinnedStore(base)


def test_a_write_to_an_unreachable_s3_server_names_the_server_and_the_object(store: PinnedStore,
                                                                             closed_port: int) -> None:
    with pytest.raises(StorageUnavailable) as caught:
        store.write("features/momentum", "2012-01-03", pl.DataFrame({"symbol": ["A"], "value": [1.0]}))
    message = str(caught.value)
    assert message.startswith(f"[STORAGE_UNAVAILABLE] object store s3://bucket/store: S3 server at "
                              f"http://127.0.0.1:{closed_port} unreachable ("), message
    assert "while trying to look for s3://bucket/store/objects/" in message or \
        "while trying to write s3://bucket/store/" in message, message
    assert "nothing was published by this call" in message and "then run again" in message
    assert connection_cause(caught.value.__cause__) is not None  # the client's own error stays chained


def test_a_read_of_an_unreachable_s3_server_is_the_same_error_not_a_missing_object(store: PinnedStore,
                                                                                  closed_port: int) -> None:
    with pytest.raises(StorageUnavailable, match=f"S3 server at http://127.0.0.1:{closed_port} unreachable"):
        store.read("features/momentum", "2012-01-03")


def test_a_refused_connection_is_found_through_its_wrappers_and_an_answer_is_not(closed_port: int) -> None:
    try:
        socket.create_connection(("127.0.0.1", closed_port), timeout=5)
    except OSError as refused:
        try:
            raise RuntimeError("the client gave up") from refused
        except RuntimeError as wrapped:
            cause = connection_cause(wrapped)
    assert cause is not None and cause.kind == "builtins.ConnectionRefusedError", cause
    assert cause.message == "Connection refused"
    assert connection_cause(ValueError("HTTP 500 from the server")) is None


def test_a_server_address_keeps_scheme_host_and_port_only() -> None:
    assert server_address("http://127.0.0.1:9000/bucket/key?x=1") == "http://127.0.0.1:9000"
    assert server_address("https://user:pw@s3.example.com/b") == "https://s3.example.com"
    assert server_address("not a url") == "not a url"
