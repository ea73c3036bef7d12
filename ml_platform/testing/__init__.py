"""Helpers for a project's own tests and demos; nothing here is for production code.

:func:`champion_shortcut` records a champion without the promotion gates (refused in production), so a
test can serve live signals right after training.
"""

from __future__ import annotations

from ml_platform.champions.shortcut import SHORTCUT_REASON
from ml_platform.champions.shortcut import record_champion_shortcut as champion_shortcut

__all__ = ["SHORTCUT_REASON", "champion_shortcut"]
