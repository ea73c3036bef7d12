"""The Dagster UI as a user opens it: a real dagster-webserver loading workspace.yaml.

It must serve the UI and show every feature asset with its graph hash as the code version, the
thing that makes Dagster's "unsynced" badge mean "an ancestor's code changed".
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from quant_alpha.features import build_graph

ROOT = Path(__file__).resolve().parents[3]  # the repository: workspace.yaml, dagster.yaml
QUERY = "{ assetNodes { assetKey { path } opVersion groupName isPartitioned } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


@pytest.fixture()
def webserver(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ML_PLATFORM_HOME": str(tmp_path / ".ml_platform"),
           "QUANT_ALPHA_MARKET_SOURCE": "sample"}
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited: {(tmp_path / 'webserver.log').read_text()[-3000:]}")
            try:
                _get(base + "/server_info")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"dagster-webserver did not answer: {(tmp_path / 'webserver.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _asset_nodes(base: str) -> dict[str, dict]:
    deadline = time.monotonic() + 120
    while True:  # the code location loads in a subprocess after the server answers
        body = json.loads(_get(base + "/graphql", json.dumps({"query": QUERY}).encode()))
        nodes = {"/".join(n["assetKey"]["path"]): n for n in (body.get("data") or {}).get("assetNodes") or []}
        if nodes or time.monotonic() > deadline:
            return nodes
        time.sleep(1)


def test_ui_serves_every_asset_with_its_graph_hash_as_code_version(webserver):
    assert b"<html" in _get(webserver + "/").lower()
    nodes = _asset_nodes(webserver)
    graph = build_graph("sample")
    for node in graph:
        assert nodes[node.key]["opVersion"] == node.graph_hash, node.key
    assert {"trained_model", "live_signals", "live_pnl"} <= set(nodes)
    assert nodes["feature_matrix"]["isPartitioned"] and not nodes["training_set"]["isPartitioned"]
    assert nodes["market_bars"]["groupName"] == "market"
