"""Bytecode caches while collecting.

Collecting imports every test module (each rewritten for pytest's assertion messages) and this repository's
packages. Where ``PYTHONDONTWRITEBYTECODE`` is set, none of that is cached, and every pytest process rewrites and
compiles it all again: about half of the collection's CPU. Bytecode is written while collecting (``__pycache__``
folders, ignored by git), and the setting is put back before the first test runs: tests, and every process they
start, see the environment's own.
"""

from __future__ import annotations

import sys

import pytest

_DONT_WRITE_BYTECODE = sys.dont_write_bytecode
sys.dont_write_bytecode = False


def pytest_collection_finish(session: pytest.Session) -> None:
    sys.dont_write_bytecode = _DONT_WRITE_BYTECODE
