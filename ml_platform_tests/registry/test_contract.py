"""The deploy contract: canonical JSON, corrupt artefacts refused, every mismatch kind named."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import pickle

import polars as pl
import pytest

from ml_platform.environment import EnvironmentLock, capture_environment
from ml_platform.errors import ConfigurationError, ContractViolation, RegistryError
from ml_platform.keys import FrameKeys
from ml_platform.models import LinearSignalModel
from ml_platform.registry import (
    CONTRACT_SCHEMA_VERSION,
    DeployContract,
    FeatureField,
    FeatureSchema,
    LiveFeatureStream,
    check_contract,
)
from ml_platform_tests.registry.conftest import (
    KEYS,
    OTHER_GRAPH_HASH,
    feature_schema,
    make_contract,
    make_model,
)


@pytest.fixture
def contract() -> DeployContract:
    return make_contract("alpha", make_model()).with_version("3")


def _other_environment() -> EnvironmentLock:
    env = capture_environment()
    packages = tuple((name, "0.0.1" if name == "polars" else version) for name, version in env.packages)
    return dataclasses.replace(env, packages=packages)


def _live_with(fields: list[FeatureField], graph_hash: str | None = None) -> LiveFeatureStream:
    return LiveFeatureStream(graph_hash or make_contract("x", make_model()).feature_graph_hash,
                             FeatureSchema(tuple(fields)))


def _violation(contract: DeployContract, live: LiveFeatureStream, **kwargs: object) -> str:
    with pytest.raises(ContractViolation) as caught:
        check_contract(contract, live, running_env=kwargs.pop("running_env", capture_environment()),  # type: ignore[arg-type]
                       policy=kwargs.pop("policy", "strict"))  # type: ignore[arg-type]
    message = str(caught.value)
    assert "model 'alpha' version 3" in message
    return message


# -- JSON -----------------------------------------------------------------------------------------


def test_json_round_trip_is_canonical_and_stable(contract: DeployContract) -> None:
    text = contract.to_json()
    again = DeployContract.from_json(text)
    assert again == contract
    assert again.to_json() == text
    assert again.sha256 == contract.sha256
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert pickle.loads(pickle.dumps(contract)) == contract


def test_version_is_filled_by_with_version_only(contract: DeployContract) -> None:
    unregistered = make_contract("alpha", make_model())
    assert unregistered.model_version is None
    assert contract.model_version == "3"
    assert contract.sha256 != unregistered.sha256


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "{not json", "is corrupt: not JSON"),
        (lambda d: json.dumps([1, 2]), "expected a JSON object"),
        (lambda d: json.dumps({**d, "schema_version": "ml_platform.contract/v0"}), "schema version"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "seeds"}), r"fields missing \['seeds'\]"),
        (lambda d: json.dumps({**d, "extra": 1}), r"unexpected \['extra'\]"),
        (lambda d: json.dumps({**d, "model_sha256": "md5:00"}), "model_sha256 must be"),
        (lambda d: json.dumps({**d, "training_window": {"start": "2020-02-30", "end": "2020-03-01"}}), "real calendar"),
        (lambda d: json.dumps({**d, "environment_hash": "sha256:" + "0" * 64}), "does not match the environment lock"),
    ],
)
def test_corrupt_contract_json_names_source_and_problem(contract: DeployContract, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    text = mutate(contract.to_dict())
    with pytest.raises(RegistryError, match=message) as caught:
        DeployContract.from_json(text, source="contract of model 'alpha' version 3")
    assert "contract of model 'alpha' version 3" in str(caught.value)


def test_bad_field_values_are_refused_at_construction() -> None:
    model = make_model()
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        make_contract("alpha", model, created_at=dt.datetime(2020, 1, 1))
    with pytest.raises(ConfigurationError, match="seeds must map names to integers"):
        make_contract("alpha", model, seeds={"train": 1.5})
    with pytest.raises(ConfigurationError, match="model_version must be None or a version number"):
        make_contract("alpha", model, model_version="v1")
    with pytest.raises(ConfigurationError, match="feature_graph_hash must look like"):
        make_contract("alpha", model, feature_graph_hash="abc")


def test_contract_mappings_are_read_only(contract: DeployContract) -> None:
    with pytest.raises(TypeError):
        contract.seeds["train"] = 1  # type: ignore[index]


# -- check_contract -------------------------------------------------------------------------------


def test_matching_stream_and_environment_pass(contract: DeployContract, live: LiveFeatureStream) -> None:
    check = check_contract(contract, live, running_env=capture_environment(), policy="strict")
    assert (check.model_name, check.model_version, check.environment_differences) == ("alpha", "3", ())


def test_feature_graph_hash_mismatch(contract: DeployContract) -> None:
    message = _violation(contract, LiveFeatureStream(OTHER_GRAPH_HASH, feature_schema()))
    assert f"feature_graph_hash: contract {contract.feature_graph_hash} != live {OTHER_GRAPH_HASH}" in message


def test_missing_column(contract: DeployContract) -> None:
    fields = [f for f in feature_schema().fields if f.name != "vol_21d"]
    assert "column vol_21d: missing from the live stream (contract: double, nullable)" in _violation(
        contract, _live_with(fields))


def test_extra_column(contract: DeployContract) -> None:
    fields = [*feature_schema().fields, FeatureField("rank_mom_21d", "double")]
    assert "column rank_mom_21d: not in the contract (live: double, nullable)" in _violation(contract, _live_with(fields))


def test_type_change(contract: DeployContract) -> None:
    fields = [FeatureField(f.name, "float", f.nullable) if f.name == "vol_21d" else f for f in feature_schema()]
    assert "column vol_21d: type double -> float" in _violation(contract, _live_with(fields))


def test_column_order(contract: DeployContract) -> None:
    fields = list(feature_schema().fields)
    fields[2], fields[3] = fields[3], fields[2]
    message = _violation(contract, _live_with(fields))
    assert "column order: contract [date, instrument, mom_5d, mom_21d, vol_21d] != " \
           "live [date, instrument, mom_21d, mom_5d, vol_21d]" in message


def test_nullable_live_column_where_contract_says_non_null(contract: DeployContract) -> None:
    fields = [FeatureField(f.name, f.type, True) for f in feature_schema()]
    message = _violation(contract, _live_with(fields))
    assert "column date: nullable in the live stream, non-null in the contract" in message
    assert "column instrument: nullable" in message


def test_non_null_live_column_where_contract_allows_nulls_is_fine(contract: DeployContract) -> None:
    fields = [FeatureField(f.name, f.type, False) for f in feature_schema()]
    check_contract(contract, _live_with(fields), running_env=capture_environment(), policy="strict")


def test_environment_difference_refused_under_strict(contract: DeployContract, live: LiveFeatureStream) -> None:
    message = _violation(contract, live, running_env=_other_environment(), policy="strict")
    running_polars = capture_environment().package_versions["polars"]
    assert f"environment: package polars: {running_polars} -> 0.0.1" in message


def test_environment_difference_tolerated_under_warn_and_off(
    contract: DeployContract, live: LiveFeatureStream, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        check = check_contract(contract, live, running_env=_other_environment(), policy="warn")
    assert any("package polars" in line for line in check.environment_differences)
    assert "package polars" in caplog.text
    assert check_contract(contract, live, running_env=_other_environment(), policy="off").environment_differences == ()


def test_every_difference_is_listed_in_one_refusal(contract: DeployContract) -> None:
    fields = [FeatureField("mom_5d", "float"), *[f for f in feature_schema().fields if f.name not in ("mom_5d", "vol_21d")],
              FeatureField("extra", "int64")]
    message = _violation(contract, _live_with(fields, OTHER_GRAPH_HASH), running_env=_other_environment())
    for kind in ("feature_graph_hash:", "column mom_5d: type double -> float", "column vol_21d: missing",
                 "column extra: not in the contract", "column order:", "environment: package polars"):
        assert kind in message
    assert "6 difference(s)" in message


def test_bad_arguments_are_refused(contract: DeployContract, live: LiveFeatureStream) -> None:
    with pytest.raises(ConfigurationError, match="unknown environment policy"):
        check_contract(contract, live, running_env=capture_environment(), policy="lenient")
    with pytest.raises(ConfigurationError, match="EnvironmentLock"):
        check_contract(contract, live, running_env=contract.environment_lock, policy="strict")  # type: ignore[arg-type]


# -- model format and keys ------------------------------------------------------------------------


WEEKLY = FrameKeys("week", ("ticker",))


def _weekly_contract() -> DeployContract:
    model = LinearSignalModel(("mom_5d",), (1.0,), 0.0, keys=WEEKLY)
    frame = pl.DataFrame({"week": [dt.date(2020, 1, 6)], "ticker": [7], "mom_5d": [0.1]})
    schema = FeatureSchema.from_polars(frame, non_null=("week", "ticker"))
    return make_contract("alpha", model, feature_schema=schema).with_version("3")


def test_format_and_keys_are_recorded_in_the_json(contract: DeployContract) -> None:
    data = json.loads(contract.to_json())
    assert data["schema_version"] == CONTRACT_SCHEMA_VERSION == "ml_platform.contract/v2"
    assert data["model_format"] == "ml_platform.ridge/v2" and data["keys"] == {"time": "date", "entities": ["instrument"]}
    weekly = _weekly_contract()
    assert json.loads(weekly.to_json())["keys"] == {"time": "week", "entities": ["ticker"]}
    assert DeployContract.from_json(weekly.to_json()) == weekly and weekly.keys == WEEKLY


def test_a_version_1_contract_is_refused_naming_its_schema_version(contract: DeployContract) -> None:
    data = {k: v for k, v in contract.to_dict().items() if k not in ("keys", "model_format")}
    data["schema_version"] = "ml_platform.contract/v1"
    with pytest.raises(RegistryError, match=r"contract of model 'alpha' version 3 has schema version "
                                            r"'ml_platform.contract/v1' \(written before model formats and frame keys "
                                            r"were recorded\); this code reads 'ml_platform.contract/v2' only: "
                                            r"retrain and register the model again"):
        DeployContract.from_json(json.dumps(data), source="contract of model 'alpha' version 3")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"keys": WEEKLY}, r"the feature schema lacks the key column\(s\) \['week', 'ticker'\] of keys \(week, ticker\)"),
    ({"keys": FrameKeys("mom_5d", ("instrument",))}, "time column 'mom_5d' is double in the feature schema"),
    ({"keys": ("date", "instrument")}, "keys must be a FrameKeys"),
    ({"model_format": "ridge"}, "model format id 'ridge' is malformed"),
])
def test_keys_and_format_are_checked_at_construction(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_contract("alpha", make_model(), **overrides)


def test_live_keys_are_compared_when_the_stream_carries_them(contract: DeployContract) -> None:
    same = LiveFeatureStream(contract.feature_graph_hash, feature_schema(), FrameKeys("date", ("instrument",)))
    check_contract(contract, same, running_env=capture_environment(), policy="strict")
    other = LiveFeatureStream(contract.feature_graph_hash, feature_schema(), FrameKeys("instrument", ("date",)))
    message = _violation(contract, other)
    assert "keys: contract (date, instrument) != live (instrument, date)" in message and "1 difference(s)" in message
    weekly = _weekly_contract()
    with pytest.raises(ContractViolation, match=r"keys: contract \(week, ticker\) != live \(date, instrument\)"):
        check_contract(weekly, LiveFeatureStream(weekly.feature_graph_hash, weekly.feature_schema, KEYS),
                       running_env=capture_environment(), policy="strict")
    with pytest.raises(ConfigurationError, match="live keys must be a FrameKeys or None"):
        LiveFeatureStream(contract.feature_graph_hash, feature_schema(), ("date", "instrument"))  # type: ignore[arg-type]


def test_a_contract_records_the_schemes_of_its_hashes_and_refuses_an_unknown_one() -> None:
    from ml_platform.lineage.schemes import current_schemes

    contract = make_contract("alpha", make_model())
    data = json.loads(contract.to_json())
    assert data["hash_schemes"] == current_schemes()
    assert DeployContract.from_json(contract.to_json()) == contract
    data["hash_schemes"] = {**data["hash_schemes"], "graph": "ml_platform.graph_hash/v7"}
    with pytest.raises(RegistryError, match="graph_hash/v7"):
        DeployContract.from_json(json.dumps(data))
