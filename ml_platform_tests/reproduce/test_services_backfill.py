"""A real isolated Dagster deployment: a webserver, a daemon, a code location in its own working directory,
and an asset backfill launched through GraphQL that the daemon executes into the work directory's store."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from ml_platform import PinnedStore, Settings
from ml_platform.compat import set_backfill_tick
from ml_platform.errors import ConfigurationError, ReproductionFailed
from ml_platform.reproduce.backfill import (
    IN_PROCESS,
    contiguous_ranges,
    in_process_config,
    launch_asset_backfill,
    launch_asset_run,
    wait_for_backfill,
    wait_for_run,
)
from ml_platform.reproduce.dagster_services import (
    CodeLocation,
    DagsterServices,
    IsolatedDeployment,
    create_instance_storage,
)

PROJECT = '''
import os
import datetime as dt
import dagster as dg
import polars as pl
from ml_platform import (DataWindow, FeatureGraph, FrameKeys, Settings, build_definitions, build_feature_assets,
                         feature)

@feature(group="market")
def bars(window: DataWindow) -> pl.DataFrame:
    days = [window.start + dt.timedelta(days=i) for i in range(window.days)]
    return pl.DataFrame({"day": days, "name": ["A"] * len(days),
                         "px": [float(d.toordinal() % 97) for d in days]})

@feature(upstream={"b": "bars"})
def doubled(b: pl.DataFrame) -> pl.DataFrame:
    return b.select("day", "name", (pl.col("px") * 2).alias("px2"))

@feature(upstream={"d": "doubled"}, partitioned=False, group="training")
def rows(d: pl.DataFrame) -> pl.DataFrame:
    return d

GRAPH = FeatureGraph([bars, doubled, rows], keys=FrameKeys("day", ("name",)))
CAL = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")
defs = build_definitions(Settings.from_env(os.environ), assets=build_feature_assets(GRAPH, partitions_def=CAL))
'''


def test_contiguous_ranges() -> None:
    order = [f"d{i}" for i in range(10)]
    assert contiguous_ranges(["d1", "d2", "d3", "d7", "d5", "d6"], order) == [("d1", "d3"), ("d5", "d7")]
    assert contiguous_ranges(["d0"], order) == [("d0", "d0")]
    with pytest.raises(ReproductionFailed, match="not partitions"):
        contiguous_ranges(["x"], order)


def test_the_reproduction_daemon_shortens_dagsters_backfill_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._daemon import controller

    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", controller.DEFAULT_DAEMON_INTERVAL_SECONDS)
    set_backfill_tick(1.5)
    assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 1.5
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigurationError, match="positive number of seconds"):
            set_backfill_tick(bad)
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        DagsterServices(IsolatedDeployment(Path("."), CodeLocation("r", "m", "defs", Path("."), Path(sys.executable))),
                        backfill_tick=0)


def test_a_malformed_code_location_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="dotted Python module"):
        CodeLocation("repro", "not a module", "defs", Path("."), Path(sys.executable))


@pytest.fixture
def deployment(tmp_path: Path) -> IsolatedDeployment:
    src = tmp_path / "src"
    (src / "tinyproj").mkdir(parents=True)
    (src / "tinyproj" / "__init__.py").write_text("")
    (src / "tinyproj" / "defs.py").write_text(textwrap.dedent(PROJECT))
    work = tmp_path / "work"
    work.mkdir()
    location = CodeLocation("repro_tiny", "tinyproj.defs", "defs", src, Path(sys.executable))
    return IsolatedDeployment(work, location, env={"ML_PLATFORM_HOME": str(work / "home")})


@pytest.mark.daemon
def test_a_backfill_launched_through_graphql_is_run_by_the_daemon_into_the_work_directory(
        deployment: IsolatedDeployment) -> None:
    tags = {"ml_platform/reproduces": "m:1"}
    wanted = ["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-09"]
    with DagsterServices(deployment) as services:
        # Dagster's default executor takes in_process (the unpartitioned node's op config is given per run)
        execution = in_process_config(services, [("bars",), ("doubled",), ("rows",)])
        assert execution == IN_PROCESS
        backfill_id = launch_asset_backfill(services, {("bars",): wanted, ("doubled",): wanted}, tags=tags,
                                            title="reproduce m v1", run_config=execution)
        outcome = wait_for_backfill(services, backfill_id, timeout=300)
        assert outcome.succeeded, outcome
        run = wait_for_run(services, launch_asset_run(services, [("rows",)], run_config={
            **execution, "ops": {"rows": {"config": {"window": "2024-01-03..2024-01-05"}}}}, tags=tags), timeout=300)
        assert run.status == "SUCCESS", run
        with pytest.raises(ReproductionFailed, match="defines no asset"):
            launch_asset_backfill(services, {("nope",): wanted}, tags=tags, title="x")

    store = PinnedStore(Settings.local(deployment.root / "home").storage)
    assert [p for _, p in store.locations("doubled")] == wanted
    assert store.read("doubled", "2024-01-09").frame["px2"].to_list() == [2.0 * (738894 % 97)]
    assert store.exists("rows", None)
    with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None and backfill.tags == tags and backfill.title == "reproduce m v1"
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == len(outcome.runs) >= 2
        assert all(r.run_config.get("execution") == IN_PROCESS["execution"] for r in runs)


@pytest.mark.daemon
def test_a_project_with_its_own_executor_keeps_it(deployment: IsolatedDeployment) -> None:
    defs = deployment.location.working_directory / "tinyproj" / "defs.py"
    defs.write_text(defs.read_text().replace("defs = build_definitions(", "defs = dg.Definitions.merge(dg.Definitions("
                                             "executor=dg.multiprocess_executor), build_definitions(") + ")\n")
    with DagsterServices(deployment) as services:
        assert in_process_config(services, [("bars",), ("rows",)]) == {}


def test_the_instance_databases_exist_once_before_any_dagster_process_starts(tmp_path: Path) -> None:
    import sqlite3

    create_instance_storage(tmp_path / "dagster")
    create_instance_storage(tmp_path / "dagster")  # a second time (a re-entered deployment) changes nothing
    for db in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        with sqlite3.connect(tmp_path / "dagster" / db) as conn:
            assert len(conn.execute("SELECT version_num FROM alembic_version").fetchall()) == 1, db


@pytest.mark.daemon  # starts a real webserver and daemon (the code location fails to load in them)
def test_a_code_location_that_does_not_load_is_reported(deployment: IsolatedDeployment) -> None:
    (deployment.location.working_directory / "tinyproj" / "defs.py").write_text("raise RuntimeError('broken at A')\n")
    with pytest.raises(ReproductionFailed, match="broken at A"), DagsterServices(deployment):
        pass


def test_the_deployment_files_and_the_ui_script(deployment: IsolatedDeployment) -> None:
    import json
    import os
    import subprocess

    deployment.write()
    workspace = json.loads(deployment.workspace_file.read_text())["load_from"][0]["python_module"]
    assert workspace["executable_path"] == sys.executable and workspace["module_name"] == "tinyproj.defs"
    script = deployment.root / "ui.sh"
    text = script.read_text()
    assert f"export DAGSTER_HOME={deployment.dagster_home}" in text and "export ML_PLATFORM_HOME=" in text
    assert os.access(script, os.X_OK) and subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
