"""What monitoring knows of a project: which assets, where they are stored, the model, the SLOs. Pure.

Built once by :func:`~ml_platform.monitoring.build_monitoring` from the user's graph and names, so the
checks, sensors and jobs never assume any node name, column, market or model of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml_platform.errors import ConfigurationError
from ml_platform.keys import FrameKeys
from ml_platform.monitoring.drift import DriftPolicy
from ml_platform.monitoring.infra import InfraSLO, MarketSession

__all__ = ["MonitoredAsset", "MonitoringWiring"]


@dataclass(frozen=True)
class MonitoredAsset:
    """One partitioned asset whose expected partition is watched.

    Attributes:
        asset: Its Dagster asset key, ``/``-joined.
        store_key: Where the pinned store keeps it (the same path for platform assets).
    """

    asset: str
    store_key: str


@dataclass(frozen=True)
class MonitoringWiring:
    """The monitored project, as plain values.

    Attributes:
        model_name: The registered model whose champion is monitored.
        keys: The graph's frame keys (time column and entities).
        label_column: The label node's value column.
        monitored: The assets whose expected partition must exist (features and live assets).
        model_input: The node the champion scores (its schema is checked against the contract).
        label / training / live_signals / live_pnl: Store keys (``label``, ``training``) and assets of the
            model's nodes.
        scheduled_job: The daily job whose run for the expected partition must succeed (``None``: not watched).
        session / slo / drift_policy: The market close, the on-call service levels, the drift thresholds.
    """

    model_name: str
    keys: FrameKeys
    label_column: str
    monitored: tuple[MonitoredAsset, ...]
    model_input: MonitoredAsset
    label: MonitoredAsset
    training: MonitoredAsset
    live_signals: MonitoredAsset
    live_pnl: MonitoredAsset
    scheduled_job: str | None
    session: MarketSession
    slo: InfraSLO
    drift_policy: DriftPolicy

    def __post_init__(self) -> None:
        if not self.monitored:
            raise ConfigurationError("monitoring needs at least one monitored asset")
        names = [m.asset for m in self.monitored]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"monitored assets are listed twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
        for name, value, kind in (("session", self.session, MarketSession), ("slo", self.slo, InfraSLO),
                                  ("drift_policy", self.drift_policy, DriftPolicy)):
            if not isinstance(value, kind):
                raise ConfigurationError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
