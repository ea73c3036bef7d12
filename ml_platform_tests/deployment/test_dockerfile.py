"""deployments/production/Dockerfile: a pinned base, the locked environment, a non-root user, provenance."""

from __future__ import annotations

import re

from ml_platform_tests.deployment import manifests as m

DOCKERFILE = m.PRODUCTION / "Dockerfile"
WHERE = "deployments/production/Dockerfile"
SECRET_WORDS = {"PASSWORD", "KEY", "SECRET", "TOKEN", "WEBHOOK"}


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return [" ".join(part.split()) for part in "\n".join(lines).replace("\\\n", " ").splitlines() if part.strip()]


def test_every_base_image_is_python_3_11_slim_bookworm_pinned_by_digest() -> None:
    bases = [line.split()[1] for line in instructions() if line.startswith("FROM ")]
    assert bases, f"{WHERE}: no FROM"
    for base in bases:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm@sha256:[0-9a-f]{64}", base), (
            f"{WHERE}: FROM {base} is not python:3.11-slim-bookworm pinned by @sha256 digest")
    assert len(set(bases)) == 1, f"{WHERE}: the build and final stages must share one base: {bases}"


def test_the_environment_is_synced_from_the_lock_with_the_production_extra_and_no_dev_tools() -> None:
    syncs = [line for line in instructions() if "uv sync" in line]
    assert syncs, f"{WHERE}: no uv sync"
    for line in syncs:
        for flag in ("--frozen", "--extra production", "--no-dev", "--all-packages"):
            assert flag in line, f"{WHERE}: `{line}` lacks {flag}"
    copies = " ".join(line for line in instructions() if line.startswith("COPY ") and "--from" not in line)
    assert "uv.lock" in copies and "pyproject.toml" in copies, f"{WHERE}: uv.lock and pyproject.toml not copied"


def test_uv_is_the_version_the_makefile_pins() -> None:
    pinned = re.search(r"^UV_VERSION := (\S+)$", (m.ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert f"ARG UV_VERSION={pinned}" in instructions(), f"{WHERE}: ARG UV_VERSION is not the Makefile's {pinned}"
    assert any('"uv==${UV_VERSION}"' in line for line in instructions()), f"{WHERE}: uv not installed at it"


def test_the_image_runs_as_a_fixed_non_root_uid() -> None:
    user = m.dockerfile_user()
    assert user.split(":")[0] not in ("root", "0"), f"{WHERE}: USER {user} is root"
    assert m.image_uid() > 0, f"{WHERE}: USER {user}"


def test_the_git_provenance_build_args_become_the_settings_ml_platform_reads() -> None:
    lines = instructions()
    assert "ARG GIT_COMMIT" in lines and "ARG GIT_DIRTY=0" in lines, f"{WHERE}: ARG GIT_COMMIT / GIT_DIRTY"
    env = m.dockerfile_env()
    assert env.get("ML_PLATFORM_GIT_COMMIT") == "${GIT_COMMIT}", f"{WHERE}: ENV ML_PLATFORM_GIT_COMMIT=${{GIT_COMMIT}}"
    assert env.get("ML_PLATFORM_GIT_DIRTY") == "${GIT_DIRTY}", f"{WHERE}: ENV ML_PLATFORM_GIT_DIRTY=${{GIT_DIRTY}}"
    assert any(line.startswith("RUN echo \"${GIT_COMMIT}\" | grep -Eqx '[0-9a-f]{40}'") for line in lines), (
        f"{WHERE}: a build without a 40-hex --build-arg GIT_COMMIT must fail")


def test_no_secret_is_baked_into_the_image() -> None:
    for line in instructions():
        if line.startswith(("ENV ", "ARG ")):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", line.split(" ", 1)[1])
            secret = [n for n in names if any(word in n.upper() for word in SECRET_WORDS)]
            assert not secret, f"{WHERE}: `{line}` puts a secret into the image ({secret})"


def test_the_image_paths_are_the_ones_the_manifests_use() -> None:
    env = m.dockerfile_env()
    launcher = m.instance_yaml()["run_launcher"]["config"]
    assert env["DAGSTER_HOME"] == launcher["dagster_home"], f"{WHERE}: DAGSTER_HOME is not the launcher's"
    settings = m.config_maps()["ml-platform-settings"]
    assert env["ML_PLATFORM_PROJECT_ROOT"] == settings["ML_PLATFORM_PROJECT_ROOT"], (
        f"{WHERE}: ML_PLATFORM_PROJECT_ROOT differs from k8s ConfigMap/ml-platform-settings")
    workdirs = [line.split()[1] for line in instructions() if line.startswith("WORKDIR ")]
    assert workdirs[-1] == env["ML_PLATFORM_PROJECT_ROOT"], f"{WHERE}: the project root is not the WORKDIR"


def test_the_dockerfile_specific_ignore_file_keeps_the_context_to_what_is_copied() -> None:
    ignore = (m.PRODUCTION / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore, "deployments/production/Dockerfile.dockerignore: must exclude everything by default"
    for line in instructions():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (m.ROOT / source).exists(), f"{WHERE}: COPY {source}: no such path at the repository root"
                assert any(entry.lstrip("!").rstrip("/") == source.rstrip("/") for entry in ignore), (
                    f"deployments/production/Dockerfile.dockerignore: {source} is copied but not re-included")
