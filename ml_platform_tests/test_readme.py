"""The README's "Use it in your own project" example, run exactly as written.

Code blocks of README.md are marked with an HTML comment on the line before their fence:

* ``<!-- readme-test: file PATH -->``: written to ``PATH`` in a fresh project folder;
* ``<!-- readme-test: run -->``: a Python script, run with this interpreter from the project folder;
* ``<!-- readme-test: command -->``: ``ml-platform ...`` command lines, run from the project folder.

Blocks run in README order, in subprocesses whose ``ML_PLATFORM_HOME`` and ``DAGSTER_HOME`` are inside
``tmp_path``; any non-zero exit fails the test with the block's output.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ml_platform_tests.public_api import private_imports

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Use it in your own project"
_MARKED = re.compile(
    r"^<!-- readme-test: (?P<kind>file|run|command)(?: (?P<path>\S+))? -->\n"
    r"```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
_FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    kind: str  # file | run | command
    path: str | None
    lang: str
    body: str


def section(text: str) -> str:
    """The README section under test, up to the next ``## `` heading."""
    start = text.index(SECTION)
    following = text.find("\n## ", start + len(SECTION))
    return text[start:] if following < 0 else text[start:following]


def marked_blocks(text: str) -> list[Block]:
    return [Block(m["kind"], m["path"], m["lang"], m["body"]) for m in _MARKED.finditer(text)]


def _environment(tmp_path: Path) -> dict[str, str]:
    """This process's environment without deployment settings, storing everything under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_PLATFORM_", "DAGSTER_"))}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(ML_PLATFORM_HOME=str(tmp_path / "ml_platform_home"), DAGSTER_HOME=str(dagster_home),
               PYTHONUNBUFFERED="1")
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"README {what} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    return done.stdout


def _command_lines(body: str) -> list[list[str]]:
    """The ``ml-platform`` command lines of a block (comments dropped), as argv for this interpreter."""
    commands = []
    for line in body.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "ml-platform", f"a readme-test command block may only run ml-platform, got {line!r}"
        commands.append([sys.executable, "-m", "ml_platform.cli", *words[1:]])
    return commands


def test_the_section_follows_open_the_ui_and_marks_a_complete_project() -> None:
    text = README.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[headings.index("## Open the UI") + 1] == SECTION

    blocks = marked_blocks(section(text))
    assert blocks == marked_blocks(text), "every readme-test block belongs in the section"
    files = [b.path for b in blocks if b.kind == "file"]
    assert {"my_desk/features.py", "my_desk/definitions.py"} <= set(files)
    assert len(files) == len(set(files)), f"a file is written twice: {files}"
    assert [b.kind for b in blocks].count("run") >= 1


def test_the_section_imports_only_public_names() -> None:
    """Every import of ml_platform in the section's Python blocks names a public name (see public_api)."""
    imported: set[str] = set()
    for fence in _FENCE.finditer(section(README.read_text())):
        if fence["lang"] != "python":
            continue
        tree = ast.parse(fence["body"])
        assert private_imports(tree) == []
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                     and node.module == "ml_platform" for alias in node.names}
    assert imported, "the section imports nothing from ml_platform"


@pytest.mark.slow
@pytest.mark.beside
def test_the_example_runs_as_written(tmp_path: Path) -> None:
    blocks = marked_blocks(section(README.read_text()))
    project = tmp_path / "project"
    project.mkdir()
    env = _environment(tmp_path)

    for block in blocks:
        if block.kind == "file":
            target = project / block.path
            assert project in target.resolve().parents, f"{block.path} leaves the project folder"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body)

    outputs: list[str] = []
    for number, block in enumerate(blocks):
        if block.kind == "run":
            assert block.lang == "python", "run blocks are Python"
            script = project / f"readme_run_{number}.py"
            script.write_text(block.body)
            outputs.append(_run([sys.executable, script.name], project, env, f"run block {number}"))
        elif block.kind == "command":
            for argv in _command_lines(block.body):
                outputs.append(_run(argv, project, env, f"command {shlex.join(argv[3:])!r}"))
    printed = "\n".join(outputs)

    # the run block trained, registered and promoted a version, then produced signals from it
    registered = re.search(r"^registered my_desk_ridge version (\d+)$", printed, re.MULTILINE)
    assert registered, printed
    version = registered[1]
    live = re.search(r"^live signals: (\d+) rows on (\d+) days from version (\d+), PnL [-+]\d+\.\d+$",
                     printed, re.MULTILINE)
    assert live, printed
    rows, days = int(live[1]), int(live[2])
    assert live[3] == version
    assert days == 23 and rows == 6 * days  # the business days of May 2024, six tickers each

    # `ml-platform graph` lists every node under the prefix; `models show` the promoted version
    for node in ("prices", "returns", "momentum", "volatility", "forward_return", "model_input", "training_set"):
        assert re.search(rf"^my_desk/{node}\s+my_desk/features\.py:\d+", printed, re.MULTILINE), printed
    assert re.search(rf"^my_desk_ridge version {version}\s+\[champion\]", printed, re.MULTILINE), printed

    # everything was stored where the settings point, nothing in the project folder
    home = Path(env["ML_PLATFORM_HOME"])
    assert (home / "storage" / "refs" / "my_desk" / "live_signals").is_dir()
    assert (home / "mlflow" / "mlflow.db").is_file()
    assert not (project / ".ml_platform").exists()
