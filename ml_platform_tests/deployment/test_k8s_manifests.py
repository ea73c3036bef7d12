"""deployments/production/k8s against Kubernetes' schemas and against itself: files, names, ports, images.

Every object is validated with kubernetes-validate's bundled schemas for the stated Kubernetes version
(strict: no unknown field). No cluster, kustomize or Docker is needed.
"""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

from ml_platform_tests.deployment import manifests as m

WORKLOADS = ("Deployment",)


@pytest.mark.parametrize("doc", m.documents(), ids=str)
def test_every_object_validates_against_the_stated_kubernetes_version(doc: m.Document) -> None:
    try:
        kubernetes_validate.validate(doc.body, m.KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{doc} is not a valid Kubernetes {m.KUBERNETES_VERSION} object: {exc.message}")


def test_the_kustomization_states_the_kubernetes_version_the_tests_check() -> None:
    text = (m.K8S / "kustomization.yaml").read_text()
    assert f"Kubernetes {m.KUBERNETES_VERSION}" in text, (
        f"k8s/kustomization.yaml: its comments must name Kubernetes {m.KUBERNETES_VERSION}, the version validated")


def test_the_kustomization_lists_every_file_of_the_folder_and_only_existing_ones() -> None:
    listed = set(m.kustomization()["resources"])
    listed |= {env for gen in m.kustomization().get("configMapGenerator", []) for env in gen.get("envs", [])}
    present = {p.name for p in m.K8S.iterdir() if p.is_file()} - {"kustomization.yaml"}
    assert not present - listed, f"k8s/kustomization.yaml does not list {sorted(present - listed)}"
    assert not listed - present, f"k8s/kustomization.yaml lists missing files {sorted(listed - present)}"


def test_no_secret_object_is_kept_in_the_repository() -> None:
    secrets = [str(doc) for doc in m.documents() if doc.kind == "Secret"]
    assert not secrets, f"Secrets are created by hand (README: install), never kept in the repo: {secrets}"
    assert not m.kustomization().get("secretGenerator"), "k8s/kustomization.yaml: no secretGenerator"


def test_every_object_lives_in_the_kustomizations_namespace() -> None:
    namespace = m.kustomization()["namespace"]
    assert str(m.find("Namespace", namespace))
    stray = [str(d) for d in m.documents() if d.body["metadata"].get("namespace") not in (None, namespace)]
    assert not stray, f"objects outside namespace {namespace}: {stray}"


def test_the_code_location_matches_the_repositorys_workspace_and_the_grpc_server() -> None:
    (root,) = yaml.safe_load((m.ROOT / "workspace.yaml").read_text())["load_from"]
    module = root["python_module"]
    (entry,) = yaml.safe_load(m.find("ConfigMap", "dagster-workspace").body["data"]["workspace.yaml"])["load_from"]
    grpc = entry["grpc_server"]
    where = "k8s/dagster-workspace.yaml ConfigMap/dagster-workspace"
    assert grpc["location_name"] == module["location_name"], f"{where}: location_name differs from workspace.yaml"
    assert grpc["host"] == m.find("Service", "dagster-user-code").name, f"{where}: host is not the user-code Service"
    args = m.container("dagster-user-code")["args"]
    where = "k8s/user-code.yaml Deployment/dagster-user-code"
    assert option(args, "-m") == module["module_name"], f"{where}: -m differs from workspace.yaml's module_name"
    assert option(args, "-a") == module["attribute"], f"{where}: -a differs from workspace.yaml's attribute"
    assert option(args, "--location-name") == module["location_name"], f"{where}: --location-name differs"
    assert int(option(args, "-p")) == grpc["port"], f"{where}: -p differs from the workspace's gRPC port"
    assert_port_agrees("dagster-user-code", grpc["port"])


def test_the_webserver_and_mlflow_ports_agree_between_command_container_service_and_probes() -> None:
    assert_port_agrees("dagster-webserver", int(option(m.container("dagster-webserver")["args"], "-p")))
    assert_port_agrees("mlflow", int(option(m.container("mlflow")["args"], "--port")))


def test_the_tracking_uri_names_the_mlflow_service() -> None:
    uri = m.config_maps()["ml-platform-settings"]["ML_PLATFORM_MLFLOW_TRACKING_URI"]
    port = m.find("Service", "mlflow").body["spec"]["ports"][0]["port"]
    assert uri == f"http://mlflow:{port}", f"k8s/settings.yaml ConfigMap/ml-platform-settings: {uri} is not Service/mlflow"


def test_one_image_runs_everything_and_the_run_launcher_gets_it_through_dagster_current_image() -> None:
    image = m.platform_image()
    for name in m.IMAGE_DEPLOYMENTS:
        assert m.container(name)["image"] == image, f"k8s Deployment/{name}: image is not kustomization's {image}"
    env = {e["name"]: e for e in m.container("dagster-user-code")["env"]}
    assert env["DAGSTER_CURRENT_IMAGE"].get("value") == image, (
        "k8s/user-code.yaml Deployment/dagster-user-code: DAGSTER_CURRENT_IMAGE is not the container's image")
    launcher = m.instance_yaml()["run_launcher"]["config"]
    assert launcher.get("job_image", image) == image, "k8s/dagster-instance.yaml: run_launcher job_image differs"
    targets = [(r["source"], t) for r in m.kustomization().get("replacements", []) for t in r["targets"]]
    copies = [
        (source, target) for source, target in targets
        if source == {"kind": "Deployment", "name": "dagster-user-code",
                      "fieldPath": "spec.template.spec.containers.[name=user-code].image"}
        and target["select"] == {"kind": "Deployment", "name": "dagster-user-code"}
        and "spec.template.spec.containers.[name=user-code].env.[name=DAGSTER_CURRENT_IMAGE].value"
        in target["fieldPaths"]
    ]
    assert copies, ("k8s/kustomization.yaml: no replacement copies Deployment/dagster-user-code's image into its "
                    "DAGSTER_CURRENT_IMAGE after the images: rewrite")


def test_the_image_digest_setting_agrees_with_the_pinned_image() -> None:
    (entry,) = m.kustomization()["images"]
    setting = m.config_maps()["ml-platform-image"]["ML_PLATFORM_IMAGE_DIGEST"]
    where = "k8s/image.env (ConfigMap/ml-platform-image)"
    if "digest" in entry:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry["digest"]), f"k8s/kustomization.yaml: bad {entry['digest']}"
        assert setting == entry["digest"], f"{where}: ML_PLATFORM_IMAGE_DIGEST is not kustomization's image digest"
    else:
        assert setting == "", f"{where}: names a digest while kustomization.yaml pins no image digest"


@pytest.mark.parametrize("name", m.IMAGE_DEPLOYMENTS)
def test_every_container_has_probes_requests_limits_and_a_locked_down_security_context(name: str) -> None:
    deployment = m.find("Deployment", name)
    pod = deployment.body["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True, f"{deployment}: pod securityContext.runAsNonRoot"
    assert pod["securityContext"]["runAsUser"] == m.image_uid(), f"{deployment}: runAsUser is not the image's USER"
    for spec in pod["containers"]:
        where = f"{deployment} container {spec['name']}"
        assert "livenessProbe" in spec, f"{where}: no livenessProbe"
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]), f"{where}: cpu/memory requests"
        assert {"cpu", "memory"} <= set(spec["resources"]["limits"]), f"{where}: cpu/memory limits"
        security = spec["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, f"{where}: allowPrivilegeEscalation"
        assert security["readOnlyRootFilesystem"] is True, f"{where}: readOnlyRootFilesystem"
        assert security["capabilities"]["drop"] == ["ALL"], f"{where}: capabilities not all dropped"
        mounts = {mount["mountPath"] for mount in spec.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{where}: a read-only root filesystem needs an emptyDir on /tmp"


@pytest.mark.parametrize("name", ["dagster-webserver", "dagster-daemon", "dagster-user-code"])
def test_the_processes_that_open_the_instance_mount_its_yaml_as_dagster_home(name: str) -> None:
    spec = m.container(name)
    home = {e["name"]: e.get("value") for e in spec["env"]}["DAGSTER_HOME"]
    volumes = {v["name"]: v for v in m.find("Deployment", name).body["spec"]["template"]["spec"]["volumes"]}
    mounted = [mount for mount in spec["volumeMounts"] if mount["mountPath"] == f"{home}/dagster.yaml"]
    assert mounted, f"k8s Deployment/{name}: no dagster.yaml mounted in DAGSTER_HOME {home}"
    pod = m.find("Deployment", name).body["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "dagster" and pod["automountServiceAccountToken"] is True, (
        f"k8s Deployment/{name}: the instance's K8sRunLauncher needs ServiceAccount/dagster's token when built")
    source = volumes[mounted[0]["name"]]
    assert source.get("configMap", {}).get("name") == "dagster-instance" and mounted[0]["subPath"] == "dagster.yaml", (
        f"k8s Deployment/{name}: {home}/dagster.yaml is not ConfigMap/dagster-instance's dagster.yaml")


def test_the_daemon_is_one_replica_replaced_not_rolled() -> None:
    daemon = m.find("Deployment", "dagster-daemon")
    assert daemon.body["spec"]["replicas"] == 1, f"{daemon}: two daemons would both launch the queued runs"
    assert daemon.body["spec"]["strategy"] == {"type": "Recreate"}, f"{daemon}: strategy must be Recreate"


def test_the_probes_use_the_commands_and_paths_the_servers_answer() -> None:
    assert m.container("dagster-webserver")["livenessProbe"]["httpGet"]["path"] == "/server_info"
    assert m.container("mlflow")["livenessProbe"]["httpGet"]["path"] == "/health"
    assert m.container("dagster-daemon")["livenessProbe"]["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    port = m.container("dagster-user-code")["ports"][0]["containerPort"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert m.container("dagster-user-code")[probe]["exec"]["command"] == [
            "dagster", "api", "grpc-health-check", "-p", str(port)], f"k8s Deployment/dagster-user-code {probe}"


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def assert_port_agrees(name: str, port: int) -> None:
    """``name``'s container port, Service port and targetPort, and every probe's port are all ``port``."""
    spec = m.container(name)
    where = f"k8s Deployment/{name}"
    assert [p["containerPort"] for p in spec["ports"]] == [port], f"{where}: containerPort is not {port}"
    (service_port,) = m.find("Service", name).body["spec"]["ports"]
    assert service_port["port"] == service_port["targetPort"] == port, f"k8s Service/{name}: port is not {port}"
    for probe in ("readinessProbe", "livenessProbe"):
        if "httpGet" in spec.get(probe, {}):
            assert spec[probe]["httpGet"]["port"] == port, f"{where}: {probe} port is not {port}"
        if "exec" in spec.get(probe, {}):
            assert option(spec[probe]["exec"]["command"], "-p") == str(port), f"{where}: {probe} -p is not {port}"
