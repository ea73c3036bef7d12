"""Every environment variable the production code path reads is set where it runs, or absent on purpose.

The variables are collected from the code itself (what ``Settings.from_env`` asks for, every ``ML_PLATFORM_*``
and ``QUANT_ALPHA_*`` string in the library and the example, every ``{env: X}`` of the Dagster instance
yamls), so a variable added later fails here until the manifests set it or this file says why not.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from functools import cache

import pytest
import yaml

from ml_platform.settings import Settings
from ml_platform_tests.deployment import manifests as m

CODE = (m.ROOT / "ml_platform", m.ROOT / "examples" / "quant_alpha" / "quant_alpha")
NAME = re.compile(r"\b(?:ML_PLATFORM|QUANT_ALPHA)_[A-Z][A-Z0-9_]*")
SECRET_WORDS = {"PASSWORD", "KEY", "SECRET", "TOKEN", "WEBHOOK"}
# Where each kind of variable is needed: the processes that import the project (the code server loads the
# Definitions, run and step pods execute them) and those that load the Dagster instance.
CODE_WORKLOADS = ("dagster-user-code", m.RUNS)
INSTANCE_WORKLOADS = ("dagster-webserver", "dagster-daemon", "dagster-user-code", m.RUNS)
ALL = (*m.IMAGE_DEPLOYMENTS, m.RUNS)
# The variables the production helpers agreed on (issue 27), read by code being written beside these
# manifests, and the object-store credentials the libraries (boto3, s3fs, MLflow, dagster-aws) read.
CONTRACT = {
    "ML_PLATFORM_OUTBOX_URL": CODE_WORKLOADS,
    "ML_PLATFORM_GIT_COMMIT": CODE_WORKLOADS,
    "ML_PLATFORM_GIT_DIRTY": CODE_WORKLOADS,
    "ML_PLATFORM_IMAGE_DIGEST": CODE_WORKLOADS,
    "ML_PLATFORM_EXECUTOR": CODE_WORKLOADS,
    "ML_PLATFORM_LEDGER_URL": CODE_WORKLOADS,
    "PGPASSWORD": ("mlflow", *CODE_WORKLOADS),
    "AWS_ACCESS_KEY_ID": ALL,
    "AWS_SECRET_ACCESS_KEY": ALL,
    "AWS_DEFAULT_REGION": ALL,
    "DAGSTER_HOME": ("dagster-webserver", "dagster-daemon", "dagster-user-code", m.RUNS),
}
DELIBERATELY_ABSENT = {
    "ML_PLATFORM_REPRODUCTION": "set only by `ml-platform reproduce` for a reproduction's own isolated deployment",
    "ML_PLATFORM_KEY_NAMESPACE": "set only by `ml-platform reproduce` for an old commit loaded beside production",
    "ML_PLATFORM_CRASH_POINT": "crash injection for the crash tests; never armed in production",
    "QUANT_ALPHA_MARKET_SOURCE": "the example's market source: its default (sample) is the one deployed",
    "ML_PLATFORM_CELERY_BROKER": "Celery is not used on Kubernetes: steps run as Jobs (ML_PLATFORM_EXECUTOR=k8s)",
    "ML_PLATFORM_CELERY_BACKEND": "Celery is not used on Kubernetes: steps run as Jobs (ML_PLATFORM_EXECUTOR=k8s)",
    "AWS_ENDPOINT_URL": "AWS S3 needs none; set it in the ConfigMaps for an S3-compatible store (README)",
    "MLFLOW_S3_ENDPOINT_URL": "AWS S3 needs none; set it for an S3-compatible store (README)",
}
NOT_VARIABLES = {
    "ML_PLATFORM_ERROR": "the default error code of ml_platform.errors, not an environment variable",
    "ML_PLATFORM_KEYS": "the line prefix reproduce/beside.py's probe prints its asset keys under",
}


def is_secret(name: str) -> bool:
    """A variable naming a secret: PGPASSWORD, AWS_SECRET_ACCESS_KEY, ..._ROUTING_KEY, ..._WEBHOOK_URL."""
    return any(word in name.upper() for word in SECRET_WORDS)


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.asked = values, set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.values[key]

    def get(self, key: str, default: str | None = None) -> str | None:
        self.asked.add(key)
        return self.values.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def settings_variables() -> set[str]:
    """What ``Settings.from_env`` reads for a production deployment (the manifests' own values)."""
    env = RecordingEnv(dict(m.config_maps()["ml-platform-settings"]))
    Settings.from_env(env)
    return env.asked


@cache
def code_variables() -> frozenset[str]:
    """Every ``ML_PLATFORM_*``/``QUANT_ALPHA_*`` named in a string of the library or the example."""
    found = set()
    for root in CODE:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.update(NAME.findall(node.value))
    return frozenset(found)


def instance_variables(text: str) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(text))
    return found


@cache
def requirements() -> dict[str, tuple[str, ...]]:
    """Each variable the code and the instances read, with the workloads that must have it."""
    needed: dict[str, set[str]] = {}
    for name in (settings_variables() | code_variables()) - set(NOT_VARIABLES):
        needed.setdefault(name, set()).update(CODE_WORKLOADS)
    yamls = [m.find("ConfigMap", "dagster-instance").body["data"]["dagster.yaml"],
             (m.PRODUCTION / "dagster.yaml").read_text()]
    for name in set().union(*(instance_variables(text) for text in yamls)):
        needed.setdefault(name, set()).update(INSTANCE_WORKLOADS)
    for name, where in CONTRACT.items():
        needed.setdefault(name, set()).update(where)
    return {name: tuple(sorted(where)) for name, where in sorted(needed.items())}


def test_the_collection_finds_what_settings_read() -> None:
    assert {"ML_PLATFORM_STORAGE", "ML_PLATFORM_MLFLOW_TRACKING_URI", "ML_PLATFORM_ENV_POLICY"} <= settings_variables()
    assert {"DAGSTER_PG_PASSWORD", "DAGSTER_PG_PORT", "DAGSTER_COMPUTE_LOG_BUCKET"} <= set(requirements())


@pytest.mark.parametrize("name", sorted(set(requirements()) - set(DELIBERATELY_ABSENT)))
def test_every_variable_read_is_set_on_every_workload_that_needs_it(name: str) -> None:
    workloads = m.workloads()
    missing = [workloads[where].where for where in requirements()[name] if name not in workloads[where].names]
    assert not missing, (f"{name} is read by the code or the instance but not set on {missing}: set it in "
                         "deployments/production/k8s or add it to DELIBERATELY_ABSENT with a reason")


@pytest.mark.parametrize("name", sorted(DELIBERATELY_ABSENT))
def test_a_deliberately_absent_variable_is_set_nowhere(name: str) -> None:
    setting = [w.where for w in m.workloads().values() if name in w.names]
    assert not setting, f"{name} is listed as deliberately absent ({DELIBERATELY_ABSENT[name]}) but set on {setting}"


@pytest.mark.parametrize("workload", sorted(m.workloads()), ids=str)
def test_secrets_come_only_from_secrets(workload: str) -> None:
    w = m.workloads()[workload]
    plain = [n for n in (*w.values, *w.config_map_keys) if is_secret(n)]
    assert not plain, f"{w.where}: {plain} must come from a Secret (secretKeyRef or secretRef), never a value"


def test_no_config_map_holds_a_secret() -> None:
    for doc in m.documents():
        if doc.kind == "ConfigMap":
            for key in doc.body.get("data", {}):
                if re.fullmatch(r"[A-Z0-9_]+", key):
                    assert not is_secret(key), f"{doc}: {key} is a secret; use a Secret"


def test_every_secret_and_key_referenced_is_documented_with_its_users() -> None:
    users: dict[str, set[str]] = {}
    for name in m.IMAGE_DEPLOYMENTS:
        spec = m.container(name)
        for source in spec.get("envFrom", []):
            if "secretRef" in source:
                users.setdefault(source["secretRef"]["name"], set()).add(name)
        for entry in spec.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                users.setdefault(ref["name"], set()).add(name)
                keys = m.secret_keys().get(ref["name"], {}).get("keys", {})
                assert ref["key"] in keys, f"k8s Deployment/{name}: secret key {ref['name']}/{ref['key']} undocumented"
    for name in m.instance_yaml()["run_launcher"]["config"]["env_secrets"]:
        users.setdefault(name, set()).add(m.RUNS)
    documented = {name: set(entry["used_by"]) for name, entry in m.secret_keys().items()}
    assert users == documented, f"deployments/production/secret-keys.yaml used_by differs from the manifests: {users}"


@pytest.mark.parametrize("name", m.IMAGE_DEPLOYMENTS)
def test_every_variable_a_command_expands_is_defined_in_its_container(name: str) -> None:
    spec = m.container(name)
    defined = {entry["name"] for entry in spec.get("env", [])}
    used = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(spec.get("command", []) + spec.get("args", []))))
    assert used <= defined, f"k8s Deployment/{name}: $({sorted(used - defined)}) not in its env (left unexpanded)"


def test_the_ledger_and_outbox_urls_carry_no_password() -> None:
    settings = m.config_maps()["ml-platform-settings"]
    for name in ("ML_PLATFORM_LEDGER_URL", "ML_PLATFORM_OUTBOX_URL"):
        url = settings.get(name, "")  # a missing one fails test_every_variable_read_is_set_...
        userinfo = url.split("://", 1)[1].split("@", 1)[0] if "@" in url else ""
        assert ":" not in userinfo, f"k8s ConfigMap/ml-platform-settings: {name} has a password; use PGPASSWORD"
