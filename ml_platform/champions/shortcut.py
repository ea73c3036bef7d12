"""A champion recorded without the promotion gates: for tests, demos and a reproduction's scratch registry.

The ledger entry says so (actor ``champion shortcut (USER)``, a reason naming the missing gates). It
is refused in production: there a promotion entry needs its report and rationale, which only the
promotion job makes (:class:`~ml_platform.champions.ledger.ChampionLedger`, ``production``).
"""

from __future__ import annotations

import getpass

from ml_platform.champions.entry import LedgerEntry
from ml_platform.champions.location import open_ledger
from ml_platform.champions.service import ChampionService
from ml_platform.registry.entities import check_version
from ml_platform.registry.store import ModelRegistry

__all__ = ["SHORTCUT_REASON", "record_champion_shortcut"]

SHORTCUT_REASON = ("champion shortcut: recorded without the promotion gates (no report, no rationale, no "
                   "four-eyes approval)")


def record_champion_shortcut(registry: ModelRegistry, model: str, version: str | int, *, reason: str | None = None,
                             actor: str | None = None, approver: str | None = None,
                             production: bool | None = None) -> LedgerEntry | None:
    """Record ``version`` as ``model``'s champion in the ledger without the gates, then mirror the alias.

    Setting the current champion again only re-verifies its contract and re-mirrors the alias (no entry,
    ``None`` returned).

    Raises:
        LedgerMoveRefused: in production (``ML_PLATFORM_DEPLOYMENT=production``, or ``production=True``).
        ModelNotFound / RegistryError / IntegrityError: the version is unknown or unusable; nothing moved.
    """
    number = check_version(version)
    with ChampionService(registry, open_ledger(registry, production=production)) as service:
        head = service.ledger.head(model)
        if head is not None and head.to_version == number:
            registry.load_contract(model, number)
            service.mirror_alias(model, number)
            return None
        return service.promote(model, number, actor=actor or f"champion shortcut ({_user()})", approver=approver,
                               reason=reason or SHORTCUT_REASON)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (a container without one)
        return "unknown user"
