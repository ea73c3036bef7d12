"""``ml-platform init``: scaffold a new team project on the ml_platform public API. Pure, no Dagster.

:func:`scaffold_project` renders the templates shipped as package data (``templates/**.tmpl``, plain
text rendered with :class:`string.Template`, never importable modules of ``ml_platform``) and a small
deterministic prices CSV into a new directory. It checks everything first and writes nothing when it
refuses; the files are written into a hidden sibling directory that is then renamed into place (or, for
an existing empty directory, whose entries are moved into it), so a failure half-way leaves no partial
project either.
"""

from __future__ import annotations

import contextlib
import keyword
import os
import re
import shutil
import sys
import uuid
from pathlib import Path

from ml_platform.errors import ConfigurationError
from ml_platform.scaffold.prices import prices_csv
from ml_platform.scaffold.render import render_templates

__all__ = ["RESERVED_NAMES", "check_project_name", "default_project_name", "scaffold_project"]

_PACKAGE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Top-level names a project package must not take: it would shadow the platform or what it runs on.
RESERVED_NAMES = frozenset({
    "ml_platform", "dagster", "dagster_webserver", "dagster_postgres", "mlflow", "polars", "pyarrow",
    "numpy", "pandas", "sklearn", "click", "pydantic", "upath", "tests", "test", "conftest",
})


def check_project_name(name: str) -> str:
    """``name`` if it can be the project's top-level Python package, else a ConfigurationError saying why."""
    if isinstance(name, str) and len(name) > 100:  # its folders and files must stay within a file name's 255 bytes
        raise ConfigurationError(f"project name {name[:40]!r}... is {len(name)} characters long; use at most 100 "
                                 "(pass a shorter one with --name)")
    if not isinstance(name, str) or not _PACKAGE_NAME.match(name):
        raise ConfigurationError(
            f"project name {name!r} is not a valid Python package name: use lower-case letters, digits and "
            "underscores, not starting with a digit (e.g. 'team_alpha'); pass one with --name"
        )
    if keyword.iskeyword(name):
        raise ConfigurationError(f"project name {name!r} is a Python keyword; choose another with --name")
    if name in sys.stdlib_module_names or name in RESERVED_NAMES:
        raise ConfigurationError(
            f"project name {name!r} would shadow the module {name!r} (standard library, ml_platform or one of "
            "its dependencies); choose another with --name"
        )
    return name


def default_project_name(target: str | os.PathLike[str]) -> str:
    """The package name ``ml-platform init DIR`` uses without ``--name``: DIR's base name, ``-`` and spaces as ``_``."""
    base = Path(os.path.abspath(target)).name
    return re.sub(r"[-\s.]+", "_", base).lower()


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigurationError(f"{target} exists and is not a directory; choose a new directory to create")
    if target.is_dir() and any(target.iterdir()):
        raise ConfigurationError(
            f"{target} exists and is not empty; ml-platform init only writes into a new or empty directory"
        )
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigurationError(f"cannot create {target}: {parent} is not a writable directory")


def scaffold_project(target: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Write a new ml_platform project into ``target`` (a new or empty directory); return the written files.

    Args:
        target: the project directory; created with its parents. It must not exist or be empty.
        name: the project's Python package (``team_alpha``); default: ``target``'s base name with ``-``
            as ``_``. Must be a lower-case identifier that shadows no standard or platform module.

    Raises:
        ConfigurationError: ``target`` exists and is not an empty directory, or ``name`` is not a valid
            package name. Nothing is written then.

    Example:
        >>> written = scaffold_project("team-alpha")            # package team_alpha
        >>> sorted(p.name for p in written)[:3]
        ['.gitignore', 'README.md', '__init__.py']
    """
    target = Path(os.path.abspath(target))
    package = check_project_name(name if name is not None else default_project_name(target))
    _check_target(target)
    files = render_templates(package)                     # relative path -> text, all in memory first
    files[f"{package}/data/prices.csv"] = prices_csv()
    created = [p for p in reversed(target.parents) if not p.exists()]   # removed again on failure
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.init"
    staging.mkdir()  # (not mkdtemp: its 0o700 mode would become the project's)
    moved: list[Path] = []
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
        if not target.exists():
            staging.rename(target)
        else:  # an empty directory the user made: keep it (its mode, owner) and move the files in
            for entry in sorted(staging.iterdir()):
                entry.rename(target / entry.name)
                moved.append(target / entry.name)
            staging.rmdir()
    except BaseException:
        for path in moved:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        for parent in reversed(created):
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
    return [target / relative for relative in sorted(files)]
