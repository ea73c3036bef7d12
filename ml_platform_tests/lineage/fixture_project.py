"""Real on-disk fixture packages for code-hash tests.

Each test gets a package with a unique name. :meth:`FixtureProject.load` writes one *version* of
its files into a fresh directory and imports it under that same package name, so two versions can
be compared hash for hash: the qualified names are equal, only the code differs. Fresh directories
also keep stale ``.pyc`` files and ``linecache`` entries out of the comparison.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import types
import uuid
from collections.abc import Mapping
from pathlib import Path


class FixtureProject:
    """A uniquely named package that can be (re)loaded from different file versions.

    Args:
        root: a temporary directory owned by the test.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = f"mlp_fixture_{uuid.uuid4().hex[:12]}"
        self._versions = 0

    def load(self, files: Mapping[str, str]) -> dict[str, types.ModuleType]:
        """Write ``files`` (module name -> source) as a fresh version of the package and import it.

        Returns:
            Module name -> the imported module.
        """
        self._versions += 1
        base = self.root / f"v{self._versions}"
        package_dir = base / self.package
        package_dir.mkdir(parents=True)
        (package_dir / "__init__.py").write_text("")
        for name, source in files.items():
            path = package_dir.joinpath(*name.split(".")).with_suffix(".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            for parent in path.parents:
                if parent == package_dir:
                    break
                (parent / "__init__.py").touch()
            path.write_text(textwrap.dedent(source))
        self.unload()
        sys.path.insert(0, str(base))
        try:
            importlib.invalidate_caches()
            return {name: importlib.import_module(f"{self.package}.{name}") for name in files}
        finally:
            sys.path.remove(str(base))

    def unload(self) -> None:
        """Forget every imported module of the package."""
        for name in [m for m in sys.modules if m == self.package or m.startswith(self.package + ".")]:
            del sys.modules[name]
