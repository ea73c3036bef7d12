"""The Dagster boundary: typed resource settings in, platform errors out as ``dagster.Failure``.

Real materializations on a real DagsterInstance: a feature returning a frame without the graph's key
columns fails its step with a structured Failure (description, error code, asset key, partition range),
writes nothing, and reaches a Python caller of :class:`~ml_platform.lifecycle.Lifecycle` as the
:class:`~ml_platform.errors.DataError` itself.
"""

from __future__ import annotations

import re

import dagster as dg
import pytest
from dagster._config import ConfigTypeKind

from ml_platform import metadata
from ml_platform.champions.resource import ModelRegistryResource
from ml_platform.dagster_boundary import failure_from, platform_failures
from ml_platform.environment import EnvironmentPolicy
from ml_platform.errors import ConfigurationError, DataError
from ml_platform.features.assets import build_feature_assets
from ml_platform.io.manager import PinnedIOManager, PinnedStoreResource
from ml_platform.io.store import COMPRESSIONS
from ml_platform.lifecycle import Lifecycle
from ml_platform.window import DataWindow
from ml_platform_tests.features.graph_fixture import write_graph_package

CALENDAR = dg.DailyPartitionsDefinition(start_date="2000-01-03")
HISTORY = {"dagster/asset_partition_range_start": "2012-03-01", "dagster/asset_partition_range_end": "2012-03-09"}
RANGE = {"dagster/asset_partition_range_start": "2012-03-05", "dagster/asset_partition_range_end": "2012-03-09"}
DAYS = ["2012-03-05", "2012-03-06", "2012-03-07", "2012-03-08", "2012-03-09"]
#: node ``d`` of the fixture graph, edited to drop the ``instrument`` key column
KEYLESS_D = ('base.select("date", "instrument", (pl.col("value") * 0).alias("d"))',
             'base.select("date", (pl.col("value") * 0).alias("d"))')
MISSING_KEY = r"feature 'd' \(.*\) returned no \['instrument'\] column\(s\); every frame of this graph is keyed by"


# ------------------------------------------------------------------------------ typed resource settings
@pytest.mark.parametrize("resource", [PinnedIOManager, PinnedStoreResource, ModelRegistryResource])
def test_environment_policy_is_an_enum_that_accepts_its_values_in_any_case(resource: type) -> None:
    assert resource().environment_policy is EnvironmentPolicy.WARN
    for text, policy in (("strict", EnvironmentPolicy.STRICT), ("OFF", EnvironmentPolicy.OFF),
                         (" Warn ", EnvironmentPolicy.WARN), (EnvironmentPolicy.STRICT, EnvironmentPolicy.STRICT)):
        assert resource(environment_policy=text).environment_policy is policy
    with pytest.raises(ConfigurationError, match=rf"{resource.__name__}\.environment_policy: unknown environment "
                                                 r"policy 'lenient'; use one of: strict, warn, off"):
        resource(environment_policy="lenient")


def test_the_config_schema_offers_the_policies_and_codecs_as_choices() -> None:
    fields = PinnedIOManager.to_config_schema().as_field().config_type.fields
    policy = fields["environment_policy"].config_type.inner_type   # Noneable: it has a default
    assert policy.kind == ConfigTypeKind.ENUM
    assert [v.config_value for v in policy.enum_values] == ["STRICT", "WARN", "OFF"]
    assert fields["environment_policy"].default_value == "WARN"
    codec = fields["compression"].config_type
    assert codec.kind == ConfigTypeKind.ENUM
    assert tuple(v.config_value for v in codec.enum_values) == COMPRESSIONS
    with pytest.raises(ConfigurationError, match=r"PinnedStoreResource\.compression: unknown Parquet compression "
                                                 r"'zip'; use one of \('zstd'"):
        PinnedStoreResource(compression="zip")


def test_a_resource_configured_at_launch_takes_the_choice_from_run_config(tmp_path) -> None:
    seen = {}

    @dg.asset
    def probe(feature_store: PinnedStoreResource) -> None:
        store = feature_store.get_store()
        seen.update(policy=store.policy, compression=store.compression)

    config = {"base_dir": str(tmp_path), "environment_policy": "STRICT", "compression": "gzip"}
    dg.materialize([probe], resources={"feature_store": PinnedStoreResource.configure_at_launch()},
                   run_config={"resources": {"feature_store": {"config": config}}})
    assert seen == {"policy": EnvironmentPolicy.STRICT, "compression": "gzip"}
    bad = {**config, "environment_policy": "lenient"}
    with pytest.raises(dg.DagsterInvalidConfigError, match="environment_policy"):
        dg.materialize([probe], resources={"feature_store": PinnedStoreResource.configure_at_launch()},
                       run_config={"resources": {"feature_store": {"config": bad}}})


# ------------------------------------------------------------------------- platform errors as Failure
@pytest.fixture
def keyless(tmp_path, dagster_instance):
    """The fixture graph with ``d`` lacking the ``instrument`` key, its Definitions, and ``base`` materialized."""
    module = write_graph_package(tmp_path / "src", nodes_edit=KEYLESS_D)
    base = str(tmp_path / "store")
    defs = dg.Definitions(
        assets=build_feature_assets(module.GRAPH, partitions_def=CALENDAR),
        resources={"io_manager": PinnedIOManager(base_dir=base), "feature_store": PinnedStoreResource(base_dir=base)},
    )
    dg.materialize(list(defs.assets), selection=[dg.AssetKey("base")], instance=dagster_instance,
                   resources=dict(defs.resources), tags=HISTORY)
    return module.GRAPH, defs, PinnedStoreResource(base_dir=base).get_store()


def _materialize_d(defs: dg.Definitions, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(list(defs.assets), selection=[dg.AssetKey("d")], instance=instance,
                          resources=dict(defs.resources), tags=RANGE, **kwargs)


def test_a_platform_error_is_a_structured_step_failure_and_nothing_is_written(keyless, dagster_instance) -> None:
    _, defs, store = keyless
    result = _materialize_d(defs, dagster_instance, raise_on_error=False)
    assert not result.success

    records = dagster_instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    [failure] = [r.event_log_entry.dagster_event.step_failure_data for r in records]
    shown = failure.user_failure_data
    assert shown is not None and shown.label == "intentional-failure"   # a dagster.Failure, not a crash
    assert shown.description.startswith("[DATA_ERROR] ")
    assert re.search(MISSING_KEY, shown.description)
    meta = {key: value.value for key, value in shown.metadata.items()}
    assert meta == {metadata.ERROR_CODE: "DATA_ERROR", metadata.ERROR_TYPE: "DataError", metadata.ASSET_KEY: "d",
                    metadata.PARTITION_RANGE: "2012-03-05..2012-03-09"}
    assert failure.error.cls_name == "Failure"
    assert failure.error.cause is not None and failure.error.cause.cls_name == "DataError"   # the chain is kept

    assert not any(store.exists("d", day) for day in DAYS)                              # nothing written
    assert list(store.manifests("d")) == []
    assert dagster_instance.get_latest_materialization_event(dg.AssetKey("d")) is None


def test_materialize_raises_the_failure_and_lifecycle_raises_the_platform_error(keyless, dagster_instance) -> None:
    graph, defs, store = keyless
    # dagster.materialize(raise_on_error=True) re-raises the step's Failure itself, the error as its cause
    with pytest.raises(dg.Failure) as raised:
        _materialize_d(defs, dagster_instance)
    assert isinstance(raised.value.__cause__, DataError)
    assert raised.value.metadata[metadata.ERROR_CODE].value == "DATA_ERROR"

    # a Python caller of the lifecycle gets the platform error, with the Failure as its context
    life = Lifecycle(defs, graph, dagster_instance)
    with pytest.raises(DataError, match=MISSING_KEY) as refused:
        life.materialize(["d"], DataWindow.parse("2012-03-05..2012-03-09"))
    assert isinstance(refused.value.__context__, dg.Failure)
    assert not any(store.exists("d", day) for day in DAYS)


def test_a_platform_failure_is_not_retried(dagster_instance) -> None:
    calls = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=3))
    @platform_failures
    def refuses(context) -> int:
        calls.append(context.run.run_id)
        raise DataError("the input is empty; materialize it first")

    result = dg.materialize([refuses], instance=dagster_instance, raise_on_error=False)
    assert not result.success and len(calls) == 1
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.metadata[metadata.ERROR_CODE].value == "DATA_ERROR"
    assert failure.step_failure_data.user_failure_data.metadata[metadata.ASSET_KEY].value == "refuses"
    assert metadata.PARTITION_RANGE not in failure.step_failure_data.user_failure_data.metadata


def test_a_platform_failure_names_a_store_without_its_password() -> None:
    error = ConfigurationError("cannot reach the ledger postgresql+psycopg://ml:hunter2@db:5432/mlflow")
    failure = failure_from(error)
    assert failure.description == "[CONFIGURATION_ERROR] cannot reach the ledger postgresql+psycopg://ml:***@db:5432/mlflow"
