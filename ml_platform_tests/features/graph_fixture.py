"""Writes a small feature graph as a real package on disk, with edits, for hashing and staleness tests."""

from __future__ import annotations

import hashlib
import importlib
import sys
import uuid
from pathlib import Path

HELPERS = '''
FACTOR = 2


def scale(column):
    """Multiply by the project factor."""
    return column * FACTOR
'''

NODES = '''
import datetime as dt

import polars as pl

from ml_platform.features import Upstream, feature, FeatureGraph
from {pkg}.helpers import scale


@feature(params={{"n": 2}})
def base(window, n):
    days = [window.start + dt.timedelta(days=i) for i in range(window.days)]
    return pl.DataFrame(
        {{"date": [d for d in days for _ in range(n)],
          "instrument": [f"I{{j}}" for _ in days for j in range(n)],
          "value": [float(d.toordinal() + j) for d in days for j in range(n)]}}
    ).with_columns(pl.col("date").cast(pl.Date))


@feature(upstream={{"base": Upstream("base", lookback_days=2)}})
def a(base):
    # scaled value
    return base.select("date", "instrument", scale(pl.col("value")).alias("a"))


@feature(upstream={{"base": "base"}})
def b(base):
    return base.select("date", "instrument", (pl.col("value") + 1).alias("b"))


@feature(upstream={{"a": "a", "b": "b"}})
def c(a, b):
    return a.join(b, on=["date", "instrument"]).select("date", "instrument", (pl.col("a") + pl.col("b")).alias("c"))


@feature(upstream={{"base": "base"}})
def d(base):
    return base.select("date", "instrument", (pl.col("value") * 0).alias("d"))


GRAPH = FeatureGraph([base, a, b, c, d], project_packages=("{pkg}",))
'''


def write_graph_package(root: Path, *, helpers_edit: tuple[str, str] | None = None,
                        nodes_edit: tuple[str, str] | None = None):
    """Write a version of package ``fg_<id of root>`` and import it, replacing any earlier version.

    Every version under one ``root`` has the same package name, as a real edit of a real project would:
    qualified names are part of the code hash. Each version lives in its own folder so earlier
    versions' source files stay readable.
    """
    pkg = "fg_" + hashlib.sha1(str(root).encode()).hexdigest()[:10]
    version_root = root / f"v{uuid.uuid4().hex[:8]}"
    folder = version_root / pkg
    folder.mkdir(parents=True)
    helpers, nodes = HELPERS, NODES.format(pkg=pkg)
    for edit, text in ((helpers_edit, "helpers"), (nodes_edit, "nodes")):
        if edit is None:
            continue
        old, new = edit
        source = helpers if text == "helpers" else nodes
        assert old in source, f"edit target {old!r} not in {text}"
        source = source.replace(old, new, 1)
        if text == "helpers":
            helpers = source
        else:
            nodes = source
    (folder / "__init__.py").write_text("")
    (folder / "helpers.py").write_text(helpers)
    (folder / "nodes.py").write_text(nodes)
    for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not p.startswith(str(root))]
    sys.path.insert(0, str(version_root))
    importlib.invalidate_caches()
    return importlib.import_module(f"{pkg}.nodes")
