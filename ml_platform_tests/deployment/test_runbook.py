"""deployments/production/README.md, the runbook, names what the manifests and the code actually have."""

from __future__ import annotations

import re

import pytest

from ml_platform_tests.deployment import manifests as m
from ml_platform_tests.deployment.test_k8s_environment import DELIBERATELY_ABSENT

README = m.PRODUCTION / "README.md"


def text() -> str:
    return README.read_text()


def test_the_runbook_has_its_sections_and_the_environment_policy_step() -> None:
    for heading in ("## Install", "## Upgrade", "## Roll back the deployment", "## Rotate secrets",
                    "## Restore from backups"):
        assert heading in text(), f"deployments/production/README.md: no section {heading!r}"
    paragraph = text().split("**Environment policy when the image changes.**", 1)
    assert len(paragraph) == 2, "deployments/production/README.md: no 'Environment policy when the image changes'"
    step = paragraph[1].split("\n5. ", 1)[0]
    accept = re.search(r"ml-platform environment accept (.*)", step)
    assert accept, "deployments/production/README.md: the upgrade step must show `ml-platform environment accept`"
    from click.testing import CliRunner

    from ml_platform.cli import main

    shown = CliRunner().invoke(main, ["environment", "accept", "--help"]).output
    for flag in re.findall(r"--[a-z-]+", accept.group(1)):
        assert flag in shown, f"deployments/production/README.md: `environment accept {flag}` is no such option"


@pytest.mark.parametrize("secret", sorted(m.secret_keys()))
def test_every_secret_and_key_is_created_and_rotated_in_the_runbook(secret: str) -> None:
    create = re.search(rf"create secret generic {secret}\b(.*?)(?:\n\s*\n|```)", text(), re.DOTALL)
    assert create, f"deployments/production/README.md: no `kubectl create secret generic {secret}` (Install)"
    assert text().count(f"| `{secret}` |") == 2, (
        f"deployments/production/README.md: {secret} must be a row of the Secrets and the Rotate secrets tables")
    for key in m.secret_keys()[secret]["keys"]:
        assert f"--from-literal={key}=" in create.group(1), (
            f"deployments/production/README.md: `create secret generic {secret}` lacks the key {key}")


def test_every_setting_and_deliberately_absent_variable_is_documented() -> None:
    names = set(m.config_maps()["ml-platform-settings"]) | set(m.config_maps()["dagster-env"]) | set(DELIBERATELY_ABSENT)
    names |= set(m.config_maps()["ml-platform-image"]) | {k for s in m.secret_keys().values() for k in s["keys"]}
    documented = {name for name in names if f"`{name}`" in text()}
    undocumented = sorted(n for n in names - documented if n.startswith(("ML_PLATFORM_", "DAGSTER_", "AWS_", "PG")))
    assert not undocumented, f"deployments/production/README.md does not document {undocumented}"


def test_every_deployment_the_runbook_names_exists() -> None:
    named = set(re.findall(r"(?<![\w/])deploy(?:ment)?/([a-z0-9-]+)", text()))
    missing = sorted(name for name in named if name not in m.IMAGE_DEPLOYMENTS)
    assert named and not missing, f"deployments/production/README.md names Deployments that do not exist: {missing}"
