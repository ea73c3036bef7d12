"""Render the project templates (package data ``templates/**.tmpl``) for one package name. Pure.

Templates are plain text files named ``<path>.tmpl`` and rendered with :class:`string.Template`
(``${package}``, ``${project}``, ``${title}``, ``${first_day}``; ``$$`` is a literal ``$``). They are
not ``.py`` files inside ``ml_platform``, so neither import-linter nor the code hasher sees them.
In a template path, the directory ``package`` stands for the project's package and ``__package__`` in
a file name for the package name (``tests/test___package__.py.tmpl`` -> ``tests/test_team_alpha.py``).
"""

from __future__ import annotations

from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from importlib.resources.abc import Traversable
from string import Template

from ml_platform.errors import ConfigurationError
from ml_platform.scaffold.prices import FIRST_DAY

__all__ = ["SUFFIX", "render_templates", "template_variables"]

SUFFIX = ".tmpl"
_ROOT = "templates"


def template_variables(package: str) -> dict[str, str]:
    """What the templates may refer to, for package ``team_alpha``."""
    try:
        platform_version = version("ml-platform")
    except PackageNotFoundError:  # running from a source tree that is not installed
        platform_version = "0.1.0"
    return {
        "package": package,                                   # team_alpha
        "project": package.replace("_", "-"),                 # team-alpha (distribution name)
        "title": package.replace("_", " ").title(),           # Team Alpha
        "ml_platform_version": platform_version,
        "first_day": FIRST_DAY.isoformat(),                   # first business day of data/prices.csv
    }


def _walk(node: Traversable, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Traversable]]:
    found: list[tuple[tuple[str, ...], Traversable]] = []
    for child in node.iterdir():
        if child.is_dir():
            found += _walk(child, (*prefix, child.name))
        elif child.name.endswith(SUFFIX):
            found.append(((*prefix, child.name), child))
    return found


def _output_path(parts: tuple[str, ...], package: str) -> str:
    *dirs, filename = parts
    dirs = [package if d == "package" else d for d in dirs]
    filename = filename[: -len(SUFFIX)].replace("__package__", package)
    if filename.startswith("dot-"):                            # dot-gitignore.tmpl -> .gitignore
        filename = "." + filename[len("dot-"):]
    return "/".join([*dirs, filename])


def render_templates(package: str) -> dict[str, str]:
    """Every template rendered for ``package``: project-relative POSIX path -> text (sorted by path)."""
    variables = template_variables(package)
    root = resources.files("ml_platform.scaffold").joinpath(_ROOT)
    out: dict[str, str] = {}
    for parts, template in sorted(_walk(root, ()), key=lambda item: item[0]):
        text = template.read_text(encoding="utf-8")
        try:
            out[_output_path(parts, package)] = Template(text).substitute(variables)
        except (KeyError, ValueError) as exc:
            raise ConfigurationError(
                f"scaffold template {'/'.join(parts)} refers to an unknown or malformed placeholder ({exc}); "
                f"known: {', '.join('${' + k + '}' for k in variables)}"
            ) from exc
    if not out:
        raise ConfigurationError(f"no scaffold templates found under {root}; the ml_platform install is incomplete")
    return out
