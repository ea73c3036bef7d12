"""Links to stored files in Dagster metadata: a local path on the embedded default, the MLflow server's URL behind
one (checked against a real ``mlflow server`` that proxies its artefacts), text for an object-store URI."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from ml_platform.dagster_boundary import link_metadata
from ml_platform.metadata import Link, file_link, run_artifact_link
from ml_platform.registry import run_files
from ml_platform.registry.store import ModelRegistry

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # the signature, then bytes a text round trip would spoil


def test_behind_an_mlflow_server_the_link_is_its_get_artifact_url() -> None:
    link = run_artifact_link("https://mlflow.desk.example/", "abc123", "monitoring/alpha_drift/20240301T/report.png",
                             "mlflow-artifacts:/7/abc123/artifacts/monitoring/alpha_drift/20240301T/report.png")
    assert link == Link("url", "https://mlflow.desk.example/get-artifact?"
                               "path=monitoring%2Falpha_drift%2F20240301T%2Freport.png&run_uuid=abc123")
    # credentials in the tracking URI never reach the metadata; a path prefix (--static-prefix) is kept
    behind = run_artifact_link("http://desk:hunter2@127.0.0.1:5000/mlflow", "r", "a b.png", "mlflow-artifacts:/x")
    assert behind == Link("url", "http://127.0.0.1:5000/mlflow/get-artifact?path=a+b.png&run_uuid=r")


def test_on_the_embedded_default_the_link_is_the_local_path(tmp_path: Path) -> None:
    local = f"{tmp_path}/mlflow/artifacts/1/r/artifacts/report.png"
    assert run_artifact_link(f"sqlite:///{tmp_path}/mlflow.db", "r", "report.png", local) == Link("path", local)
    assert run_artifact_link(str(tmp_path / "mlruns"), "r", "report.png", f"file://{local}") == Link("path", local)
    # a SQLite tracking store whose artefact root is an object store: the URI, as text
    s3 = "s3://bucket/mlflow/1/r/artifacts/report.png"
    assert run_artifact_link(f"sqlite:///{tmp_path}/mlflow.db", "r", "report.png", s3) == Link("text", s3)


def test_a_manifest_on_an_object_store_is_its_uri_as_text_not_a_local_path() -> None:
    assert file_link("/data/store/heads/universe.json") == Link("path", "/data/store/heads/universe.json")
    assert file_link("s3://desk-store/heads/universe.json") == Link("text", "s3://desk-store/heads/universe.json")
    assert file_link("https://u:p@files.example/heads/x.json") == Link("url", "https://files.example/heads/x.json")
    assert link_metadata(file_link("/data/x.json")) == dg.MetadataValue.path("/data/x.json")
    assert link_metadata(file_link("s3://b/x.json")) == dg.MetadataValue.text("s3://b/x.json")
    assert link_metadata(Link("url", "https://m/get-artifact")) == dg.MetadataValue.url("https://m/get-artifact")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` on a free loopback port: SQLite backend, artefacts proxied into a folder."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--serve-artifacts",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        log.close()


@pytest.mark.slow
def test_the_plot_link_behind_a_real_mlflow_server_answers_the_png(mlflow_server: str, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.create_experiment("links")
    run = client.create_run(experiment)
    run_id = run.info.run_id
    assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")  # no local path exists
    registry = ModelRegistry(tracking_uri=mlflow_server)
    run_files.log_files(registry, run_id, "monitoring/alpha_drift/20240301T090000Z", {"report.png": PNG})

    link = run_files.artifact_link(registry, run_id, "monitoring/alpha_drift/20240301T090000Z/report.png")

    assert link.kind == "url" and link.target.startswith(f"{mlflow_server}/get-artifact?")
    with urllib.request.urlopen(link.target, timeout=30) as answer:
        assert answer.status == 200 and answer.headers.get_content_type() == "image/png"
        assert answer.read() == PNG
    assert link_metadata(link) == dg.MetadataValue.url(link.target)


def test_the_drift_outcome_links_its_plot_by_where_it_is(tmp_path: Path) -> None:
    from ml_platform.monitoring.dispatch import ResearchOutcome

    server = "http://127.0.0.1:5000/get-artifact?path=monitoring%2Freport.png&run_uuid=r"
    for plot, value in ((str(tmp_path / "report.png"), dg.MetadataValue.path(str(tmp_path / "report.png"))),
                        (server, dg.MetadataValue.url(server))):
        outcome = ResearchOutcome(observation=None, finding=None, report_ref="runs:/r/monitoring/report.html",  # type: ignore[arg-type]
                                  plot_path=plot, markdown="m", delivery=None)
        assert outcome.metadata()["plot"] == value
