"""The production Kubernetes manifests as the tests read them: kustomization, documents, containers, env.

Read straight from ``deployments/production`` (no kustomize binary here): each document of each resource the
kustomization lists, plus the ConfigMap its ``configMapGenerator`` makes from ``image.env``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "deployments" / "production"
K8S = PRODUCTION / "k8s"
KUBERNETES_VERSION = "1.31"
"""The Kubernetes version the manifests target (kustomization.yaml says so too)."""
IMAGE_DEPLOYMENTS = ("dagster-webserver", "dagster-daemon", "dagster-user-code", "mlflow")
RUNS = "runs"
"""The pseudo-workload of run and step pods, which the K8sRunLauncher configures from dagster.yaml."""


@dataclass(frozen=True)
class Document:
    """One Kubernetes object and the file it came from."""

    path: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}/{self.name}"


@dataclass(frozen=True)
class Workload:
    """A container's environment as Kubernetes would give it (the run pods' as the run launcher would)."""

    where: str
    image: str | None
    values: dict[str, str] = field(default_factory=dict)
    config_map_keys: dict[str, str] = field(default_factory=dict)
    secret_keys: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        return set(self.values) | set(self.config_map_keys) | set(self.secret_keys)


@cache
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@cache
def documents() -> tuple[Document, ...]:
    """Every object the kustomization builds, in order: its resources', then its generated ConfigMaps."""
    found: list[Document] = []
    for resource in kustomization()["resources"]:
        for body in yaml.safe_load_all((K8S / resource).read_text()):
            if body is not None:
                found.append(Document(f"k8s/{resource}", body))
    for generator in kustomization().get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env_file in generator.get("envs", []):
            data.update(read_env_file(K8S / env_file))
        metadata = {"name": generator["name"], "labels": generator.get("options", {}).get("labels", {})}
        found.append(Document("k8s/kustomization.yaml configMapGenerator",
                              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}))
    return tuple(found)


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize env file: ``NAME=value`` lines, ``#`` comments and blank lines skipped."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


def find(kind: str, name: str) -> Document:
    matches = [doc for doc in documents() if doc.kind == kind and doc.name == name]
    assert len(matches) == 1, f"deployments/production/k8s: expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def config_maps() -> dict[str, dict[str, str]]:
    return {doc.name: doc.body.get("data", {}) for doc in documents() if doc.kind == "ConfigMap"}


@cache
def secret_keys() -> dict[str, dict[str, Any]]:
    """deployments/production/secret-keys.yaml: each Secret the manifests reference, its keys and users."""
    return yaml.safe_load((PRODUCTION / "secret-keys.yaml").read_text())


def instance_yaml() -> dict[str, Any]:
    return yaml.safe_load(find("ConfigMap", "dagster-instance").body["data"]["dagster.yaml"])


def containers(deployment: str) -> list[dict[str, Any]]:
    return find("Deployment", deployment).body["spec"]["template"]["spec"]["containers"]


def container(deployment: str) -> dict[str, Any]:
    (only,) = containers(deployment)
    return only


@cache
def dockerfile_env() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage (every container of the platform's image starts with it)."""
    text = (PRODUCTION / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line)))
    return env


def workload(deployment: str) -> Workload:
    """The environment of ``deployment``'s container: its ``env``, ``envFrom`` and its image's ENV."""
    spec = container(deployment)
    values, from_maps, from_secrets = {}, {}, {}
    maps = config_maps()
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            from_maps.update(dict.fromkeys(maps[source["configMapRef"]["name"]], source["configMapRef"]["name"]))
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            from_secrets.update(dict.fromkeys(secret_keys()[name]["keys"], name))
    for entry in spec.get("env", []):
        ref = entry.get("valueFrom", {})
        if "value" in entry:
            values[entry["name"]] = entry["value"]
        elif "secretKeyRef" in ref:
            from_secrets[entry["name"]] = ref["secretKeyRef"]["name"]
        elif "configMapKeyRef" in ref:
            from_maps[entry["name"]] = ref["configMapKeyRef"]["name"]
    image_env = dockerfile_env() if spec["image"] == platform_image() else {}
    return Workload(str(find("Deployment", deployment)), spec["image"], {**image_env, **values}, from_maps,
                    from_secrets)


def runs_workload() -> Workload:
    """Run and step pods: the run launcher's env_config_maps, env_secrets and env_vars, the image's ENV."""
    config = instance_yaml()["run_launcher"]["config"]
    maps = config_maps()
    from_maps = {key: name for name in config.get("env_config_maps", []) for key in maps[name]}
    from_secrets = {key: name for name in config.get("env_secrets", []) for key in secret_keys()[name]["keys"]}
    values = dict(dockerfile_env())
    values["DAGSTER_HOME"] = config["dagster_home"]  # the launcher sets it on every run container
    for entry in config.get("env_vars", []):
        name, _, value = entry.partition("=")
        values[name] = value
    return Workload(f"{find('ConfigMap', 'dagster-instance')} run_launcher (run and step pods)", platform_image(), values,
                    from_maps, from_secrets)


def workloads() -> dict[str, Workload]:
    return {**{name: workload(name) for name in IMAGE_DEPLOYMENTS}, RUNS: runs_workload()}


def platform_image() -> str:
    (entry,) = kustomization()["images"]
    return entry["name"]


def dockerfile_user() -> str:
    """The final stage's last ``USER`` of the Dockerfile, as written (``10001:10001``)."""
    users = [line.split()[1] for line in (PRODUCTION / "Dockerfile").read_text().splitlines()
             if line.startswith("USER ")]
    assert users, "deployments/production/Dockerfile: no USER (the image would run as root)"
    return users[-1]


def image_uid() -> int:
    uid = dockerfile_user().split(":")[0]
    assert uid.isdigit(), f"deployments/production/Dockerfile: USER {uid} must be a numeric uid (runAsNonRoot)"
    return int(uid)
