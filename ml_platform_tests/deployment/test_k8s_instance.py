"""The Kubernetes Dagster instance (ConfigMap dagster-instance) against Dagster's own schemas and dagster-k8s.

The run launcher's config is turned into the Job dagster-k8s would create for a run, and that Job is validated
with the Kubernetes schemas too; the Role is checked against the API calls dagster-k8s makes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import kubernetes
import kubernetes_validate
import pytest
from dagster._config import validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import ConfigurableClassData
from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

from ml_platform.reproduce.service import REPRODUCES_TAG
from ml_platform_tests.deployment import manifests as m

WHERE = "k8s/dagster-instance.yaml ConfigMap/dagster-instance"
# (apiGroup, resource, verb) for each Kubernetes API call the K8sRunLauncher and k8s_job_executor make
# (dagster_k8s 0.29.27: client.py, launcher.py, executor.py): what the Role must grant, and all it grants.
NEEDED = {
    ("batch", "jobs", "create"),  # create_namespaced_job: a run's or a step's Job
    ("batch", "jobs", "delete"),  # delete_namespaced_job: terminate a run, clean a step up
    ("batch", "jobs", "get"),  # read a Job by name
    ("batch", "jobs", "list"),  # list_namespaced_job: run monitoring, step health checks
    ("batch", "jobs/status", "get"),  # read_namespaced_job_status
    ("", "pods", "get"),  # read_namespaced_pod
    ("", "pods", "list"),  # list_namespaced_pod: a Job's pods
    ("", "pods/log", "get"),  # read_namespaced_pod_log: a failed pod's debug output
    ("", "events", "list"),  # list_namespaced_event: a failed pod's debug output
}


def test_the_instance_yaml_passes_dagsters_own_instance_schema(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(m.find("ConfigMap", "dagster-instance").body["data"]["dagster.yaml"])
    try:
        dagster_instance_config(str(tmp_path))
    except DagsterInvalidConfigError as exc:
        pytest.fail(f"{WHERE}: dagster.yaml is not a valid Dagster instance config: {exc}")


@pytest.mark.parametrize(("section", "module", "cls"), [
    ("run_launcher", "dagster_k8s", "K8sRunLauncher"),
    ("compute_logs", "dagster_aws.s3.compute_log_manager", "S3ComputeLogManager"),
    ("run_coordinator", "dagster.core.run_coordinator", "QueuedRunCoordinator"),
])
def test_each_configurable_class_is_importable_and_its_config_fits_its_schema(section: str, module: str,
                                                                             cls: str) -> None:
    entry = m.instance_yaml()[section]
    assert (entry["module"], entry["class"]) == (module, cls), f"{WHERE}: {section} is not {module}.{cls}"
    # Dagster's own module resolution (dagster.core.* names dagster._core.*), then a plain import
    resolved = ConfigurableClassData(entry["module"], entry["class"], "{}")
    klass = getattr(importlib.import_module(resolved.module_name), resolved.class_name)
    result = validate_config(klass.config_type(), entry["config"])
    assert result.success, f"{WHERE}: {section} config: {[error.message for error in result.errors]}"


def test_the_storage_reads_every_connection_setting_from_the_environment_including_the_port() -> None:
    db = m.instance_yaml()["storage"]["postgres"]["postgres_db"]
    expected = {"username": "DAGSTER_PG_USERNAME", "password": "DAGSTER_PG_PASSWORD", "hostname": "DAGSTER_PG_HOST",
                "db_name": "DAGSTER_PG_DB", "port": "DAGSTER_PG_PORT"}
    assert {key: db[key] for key in expected} == {k: {"env": v} for k, v in expected.items()}, f"{WHERE}: storage"
    assert db["scheme"] == "postgresql+psycopg2", f"{WHERE}: dagster-postgres needs psycopg2 (NOTIFY)"
    assert m.instance_yaml()["telemetry"] == {"enabled": False}, f"{WHERE}: telemetry must be off"


def test_the_concurrency_limits_name_tags_runs_carry() -> None:
    known = {"dagster/backfill", REPRODUCES_TAG}
    limits = m.instance_yaml()["run_coordinator"]["config"]["tag_concurrency_limits"]
    unknown = [limit["key"] for limit in limits if limit["key"] not in known]
    assert not unknown, f"{WHERE}: tag_concurrency_limits on tags no run carries: {unknown}"


def test_the_run_launcher_names_objects_that_exist() -> None:
    config = m.instance_yaml()["run_launcher"]["config"]
    assert config["instance_config_map"] == "dagster-instance", f"{WHERE}: instance_config_map is not itself"
    assert config["job_namespace"] == m.kustomization()["namespace"], f"{WHERE}: job_namespace"
    assert m.find("ServiceAccount", config["service_account_name"]), f"{WHERE}: service_account_name"
    missing = [name for name in config["env_config_maps"] if name not in m.config_maps()]
    assert not missing, f"{WHERE}: env_config_maps names ConfigMaps the kustomization does not build: {missing}"
    undocumented = [name for name in config["env_secrets"] if name not in m.secret_keys()]
    assert not undocumented, f"{WHERE}: env_secrets not in deployments/production/secret-keys.yaml: {undocumented}"


def test_the_job_dagster_k8s_builds_for_a_run_is_a_valid_kubernetes_object() -> None:
    config = m.instance_yaml()["run_launcher"]["config"]
    fields = ("dagster_home", "image_pull_policy", "service_account_name", "instance_config_map", "env_config_maps",
              "env_secrets", "env_vars", "volume_mounts", "volumes", "labels", "resources", "security_context")
    job_config = DagsterK8sJobConfig(job_image=m.platform_image(), **{k: config[k] for k in fields if k in config})
    user_defined = UserDefinedDagsterK8sConfig(**config.get("run_k8s_config", {}))
    job = construct_dagster_k8s_job(job_config, ["dagster", "api", "execute_run", "{}"], "dagster-run-0123abcd",
                                    user_defined_k8s_config=user_defined, component="run_worker")
    body = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    try:
        kubernetes_validate.validate(body, m.KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{WHERE}: the run launcher would create an invalid Job: {exc.message}")
    pod = body["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True, f"{WHERE}: run pods must not run as root"
    assert pod["serviceAccountName"] == "dagster", f"{WHERE}: run pods need the dagster ServiceAccount (steps)"
    mounts = {mount["mountPath"] for mount in pod["containers"][0]["volumeMounts"]}
    assert "/tmp" in mounts, f"{WHERE}: read-only run pods need an emptyDir on /tmp"


def test_the_role_grants_exactly_what_the_run_launcher_and_step_executor_call() -> None:
    role = m.find("Role", "dagster-run-launcher")
    granted = {(group, resource, verb) for rule in role.body["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert not NEEDED - granted, f"{role}: missing {sorted(NEEDED - granted)}"
    assert not granted - NEEDED, f"{role}: grants more than dagster-k8s needs: {sorted(granted - NEEDED)}"
    binding = m.find("RoleBinding", "dagster-run-launcher")
    assert binding.body["roleRef"]["name"] == role.name, f"{binding}: roleRef"
    subjects = {(s["kind"], s["name"]) for s in binding.body["subjects"]}
    assert ("ServiceAccount", "dagster") in subjects, f"{binding}: not bound to ServiceAccount/dagster"
    daemon = m.find("Deployment", "dagster-daemon").body["spec"]["template"]["spec"]
    assert daemon["serviceAccountName"] == "dagster", "k8s Deployment/dagster-daemon: launches runs as dagster"
