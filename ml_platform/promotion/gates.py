"""The promotion gates as pure functions: no Dagster, no MLflow.

Each gate returns a :class:`GateResult` when it passes and raises :class:`~ml_platform.errors.GateFailed`
naming the gate (``error.gate``) when it refuses. The Dagster job
(:mod:`ml_platform.promotion.job`) runs them in order: :data:`GATE_ORDER`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ml_platform.environment import EnvironmentLock, EnvironmentPolicy
from ml_platform.errors import ContractViolation, DataError, GateFailed
from ml_platform.keys import FrameKeys
from ml_platform.models.backtest import BacktestReport, backtest, daily_ic, daily_pnl
from ml_platform.models.protocol import SignalModel
from ml_platform.models.signals import to_signals
from ml_platform.promotion.policy import PromotionPolicy
from ml_platform.registry.contract import DeployContract, LiveFeatureStream, check_contract
from ml_platform.registry.schema import FeatureSchema
from ml_platform.window import DataWindow

__all__ = [
    "COMPARED_METRICS",
    "GATE_ORDER",
    "GateResult",
    "LiveSection",
    "ModelSeries",
    "NumericReport",
    "check_contract_gate",
    "check_four_eyes",
    "check_rationale",
    "check_thresholds",
    "compute_live_section",
    "compute_numeric_report",
    "declares_override",
    "gate_failed",
    "live_rows",
    "validation_rows",
]

REPORT, RATIONALE, CONTRACT, FOUR_EYES, THRESHOLDS = "report", "rationale", "contract", "four_eyes", "thresholds"
GATE_ORDER = (REPORT, RATIONALE, CONTRACT, FOUR_EYES, THRESHOLDS)
#: The metrics compared between challenger and incumbent (BacktestReport fields).
COMPARED_METRICS = ("sharpe", "ic_mean", "ic_tstat", "hit_rate", "turnover", "max_drawdown", "total_return")

_PLACEHOLDERS = re.compile(
    r"^\s*(todo|tbd|tba|n/?a|none|null|nil|-+|\.+|x+|fixme|wip|placeholder|same as before|see above|\?+)\s*[.!]*\s*$",
    re.IGNORECASE)
_PLACEHOLDER_WORDS = re.compile(r"\b(lorem ipsum|dolor sit amet|TODO|TBD|FIXME|XXX|placeholder)\b", re.IGNORECASE)
_COPY_SIMILARITY = 0.9


@dataclass(frozen=True)
class GateResult:
    """A passed gate: its name, ``passed`` (always True when returned), and what it found."""

    name: str
    passed: bool
    detail: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "facts": dict(self.facts)}


def gate_failed(gate: str, message: str) -> GateFailed:
    """A :class:`GateFailed` whose message starts with the gate's name and which carries it as ``.gate``."""
    error = GateFailed(f"promotion gate '{gate}' refused: {message}")
    error.gate = gate  # type: ignore[attr-defined]
    return error


# -- numeric report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSeries:
    """One model's backtest on the report's dates, with its daily PnL and IC for the plots."""

    version: str
    report: BacktestReport
    daily: pl.DataFrame  # [time, pnl, ic] per evaluated time value (ic null where undefined)


def _differences(challenger: ModelSeries, incumbent: ModelSeries | None) -> dict[str, float]:
    """challenger - incumbent per compared metric (empty without an incumbent)."""
    if incumbent is None:
        return {}
    a, b = challenger.report, incumbent.report
    return {m: float(getattr(a, m)) - float(getattr(b, m)) for m in COMPARED_METRICS}


def _metric_table(challenger: ModelSeries, incumbent: ModelSeries | None) -> list[str]:
    """Markdown rows: metric | challenger | incumbent | difference."""
    head = (f"| metric | challenger v{challenger.version} | "
            f"{'incumbent v' + incumbent.version if incumbent else 'incumbent (none)'} | difference |")
    lines = [head, "|---|---:|---:|---:|"]
    diffs = _differences(challenger, incumbent)
    for m in (*COMPARED_METRICS, "n_days"):
        c = getattr(challenger.report, m)
        i = getattr(incumbent.report, m) if incumbent else None
        lines.append(f"| {m} | {_fmt(c)} | {_fmt(i)} | {_fmt(diffs.get(m), signed=True)} |")
    return lines


#: Said wherever the live section is shown: it informs, the thresholds gate does not read it.
LIVE_NOT_GATED = "informational: the thresholds apply to the validation window only"


@dataclass(frozen=True)
class LiveSection:
    """Challenger vs incumbent on the live days since the incumbent became champion, or why there are none.

    The live days are the stored model-input rows, joined with their known (non-null) labels, whose day
    is strictly after ``since`` (the day, in UTC, of the ledger entry that made the incumbent champion),
    up to the newest day whose label is known. Informational: the thresholds gate compares the
    validation window only.

    Attributes:
        incumbent_version: the champion of record the challenger would replace (None: first promotion).
        since: the day the incumbent became champion (None without an incumbent).
        window: first..last live day with a known label (None when there is no comparison).
        rows: live rows scored by both models.
        challenger / incumbent: both models' backtests on those rows (None when there is no comparison).
        reason: why there is no comparison (None when there is one).
    """

    incumbent_version: str | None
    since: dt.date | None
    window: DataWindow | None = None
    rows: int = 0
    challenger: ModelSeries | None = None
    incumbent: ModelSeries | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.available == (self.reason is not None):
            raise ValueError("a LiveSection holds either both models' series or the reason there are none")

    @property
    def available(self) -> bool:
        return self.challenger is not None and self.incumbent is not None and self.window is not None

    @property
    def days(self) -> int:
        """Evaluated live days (0 when there is no comparison)."""
        return self.challenger.report.n_days if self.challenger is not None else 0

    @property
    def differences(self) -> dict[str, float]:
        """challenger - incumbent per compared metric on the live days (empty when there is no comparison)."""
        return _differences(self.challenger, self.incumbent) if self.available else {}  # type: ignore[arg-type]

    @property
    def title(self) -> str:
        if self.incumbent_version is None:
            return "Live days: none (no incumbent)"
        if self.since is None:
            return f"Live days of incumbent v{self.incumbent_version}"
        return f"Live days since incumbent v{self.incumbent_version} became champion on {self.since.isoformat()}"

    @property
    def summary(self) -> str:
        """One line: the window, days and rows, or the reason there is no comparison."""
        if not self.available:
            return str(self.reason)
        return f"{self.window}: {self.days} days, {self.rows} rows ({LIVE_NOT_GATED})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "incumbent_version": self.incumbent_version,
            "incumbent_champion_since": None if self.since is None else self.since.isoformat(),
            "window": None if self.window is None else str(self.window),
            "days": self.days,
            "rows": self.rows,
            "challenger": None if self.challenger is None else self.challenger.report.to_dict(),
            "incumbent": None if self.incumbent is None else self.incumbent.report.to_dict(),
            "differences": self.differences,
            "reason": self.reason,
            "thresholds_apply": False,
        }

    def markdown(self) -> str:
        lines = [f"**{self.title}** ({LIVE_NOT_GATED})", ""]
        if not self.available:
            return "\n".join([*lines, str(self.reason)])
        assert self.challenger is not None
        lines += [f"{self.window}: {self.days} days, {self.rows} rows", "",
                  *_metric_table(self.challenger, self.incumbent)]
        return "\n".join(lines)


#: The live section of a report built without one (kept explicit: a report never omits it silently).
LIVE_NOT_COMPUTED = "the live days were not compared (no live section was computed for this report)"


@dataclass(frozen=True)
class NumericReport:
    """Challenger vs incumbent on the same rows (the challenger's validation window), and on the live
    days since the incumbent became champion (``live``, informational)."""

    model: str
    challenger: ModelSeries
    incumbent: ModelSeries | None
    window: DataWindow
    rows: int
    time_column: str
    live: LiveSection | None = None

    @property
    def differences(self) -> dict[str, float]:
        """challenger - incumbent per compared metric on the validation window (empty on a first promotion)."""
        return _differences(self.challenger, self.incumbent)

    @property
    def live_section(self) -> LiveSection:
        """The live section, or one saying it was not computed."""
        if self.live is not None:
            return self.live
        inc = self.incumbent
        return LiveSection(None if inc is None else inc.version, None, reason=LIVE_NOT_COMPUTED)

    def with_live(self, live: LiveSection) -> NumericReport:
        return dataclasses.replace(self, live=live)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "challenger_version": self.challenger.version,
            "incumbent_version": None if self.incumbent is None else self.incumbent.version,
            "window": str(self.window),
            "rows": self.rows,
            "challenger": self.challenger.report.to_dict(),
            "incumbent": None if self.incumbent is None else self.incumbent.report.to_dict(),
            "differences": self.differences,
            "thresholds_apply_to": f"validation window {self.window}",
            "live": self.live_section.to_dict(),
        }

    def markdown(self) -> str:
        """Two sections: the validation window (thresholds) and the live days (informational)."""
        lines = [f"**Validation window {self.window}** ({self.rows} rows; the thresholds apply here)", "",
                 *_metric_table(self.challenger, self.incumbent), "", self.live_section.markdown()]
        return "\n".join(lines)


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def validation_rows(training_set: pl.DataFrame, window: DataWindow, keys: FrameKeys) -> pl.DataFrame:
    """The rows of ``training_set`` whose time falls in ``window`` (a date or datetime time column)."""
    if keys.time not in training_set.columns:
        raise DataError(f"the training set has no time column {keys.time!r} (it has {training_set.columns})")
    day = pl.col(keys.time).cast(pl.Date)
    return training_set.filter(day.is_between(window.start, window.end))


def _series(model: SignalModel, version: str, rows: pl.DataFrame, *, keys: FrameKeys, label_column: str,
            periods_per_year: int) -> ModelSeries:
    signals = to_signals(model.predict(rows), keys)
    labels = rows.select(*keys.columns, label_column)
    report = backtest(signals, labels, label_column=label_column, keys=keys, periods_per_year=periods_per_year)
    pnl = daily_pnl(signals, labels, label_column=label_column, keys=keys).select(keys.time, "pnl")
    ic = daily_ic(signals, labels, label_column=label_column, keys=keys).select(keys.time, "ic")
    return ModelSeries(version, report, pnl.join(ic, on=keys.time, how="left").sort(keys.time))


def compute_numeric_report(
    *,
    model: str,
    challenger: SignalModel,
    challenger_version: str,
    incumbent: SignalModel | None,
    incumbent_version: str | None,
    training_set: pl.DataFrame,
    window: DataWindow,
    keys: FrameKeys,
    label_column: str,
    policy: PromotionPolicy,
    periods_per_year: int = 252,
) -> NumericReport:
    """Both models score the same stored rows of ``window``; both are backtested on the same labels.

    Raises:
        GateFailed (gate ``report``): the window holds no rows or too few days, the label is missing,
            or a model cannot score the rows.
    """
    if label_column not in training_set.columns:
        raise gate_failed(REPORT, f"the challenger's training set has no label column {label_column!r} "
                                  f"(it has {training_set.columns})")
    try:
        rows = validation_rows(training_set, window, keys)
    except DataError as exc:
        raise gate_failed(REPORT, str(exc)) from exc
    if rows.height == 0:
        raise gate_failed(REPORT, f"the challenger's training set holds no rows in its validation window {window}")
    done: list[ModelSeries] = []
    for role, m, v in (("challenger", challenger, challenger_version), ("incumbent", incumbent, incumbent_version)):
        if m is None:
            continue
        try:
            done.append(_series(m, str(v), rows, keys=keys, label_column=label_column,
                                periods_per_year=periods_per_year))
        except (DataError, ValueError) as exc:
            raise gate_failed(REPORT, f"the {role} (version {v}) cannot be evaluated on the challenger's "
                                      f"validation rows {window}: {exc}") from exc
    days = done[0].report.n_days
    if days < policy.min_validation_days:
        raise gate_failed(REPORT, f"the validation window {window} gives {days} evaluated days, the policy needs "
                                  f"at least {policy.min_validation_days}")
    return NumericReport(model=model, challenger=done[0], incumbent=done[1] if len(done) > 1 else None,
                         window=window, rows=rows.height, time_column=keys.time)


def live_rows(model_input: pl.DataFrame, labels: pl.DataFrame, *, after: dt.date, keys: FrameKeys,
              label_column: str) -> pl.DataFrame:
    """The model-input rows of the days strictly after ``after`` joined (inner, on the frame keys) with their
    known label: rows whose label is null, NaN or absent are left out.

    Raises:
        DataError: a frame lacks a key column, the label frame lacks ``label_column``, or the key types differ.
    """
    for what, frame, needed in (("model input", model_input, keys.columns),
                                ("label", labels, (*keys.columns, label_column))):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"the stored {what} partitions lack the column(s) {missing} (they have {frame.columns}; "
                            f"keys {keys}, label column {label_column!r})")
    late = pl.col(keys.time).cast(pl.Date) > after
    known = pl.col(label_column).cast(pl.Float64, strict=False).is_finite()
    try:  # a time column of another type fails the filters, a key of another type the join
        x = model_input.drop(label_column, strict=False).filter(late)
        y = labels.select(*keys.columns, label_column).filter(late & known.fill_null(False))
        return x.join(y, on=list(keys.columns), how="inner").sort(list(keys.columns))
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"the stored model input and label partitions cannot be joined on {keys}: {exc}") from exc


def compute_live_section(
    *,
    challenger: SignalModel,
    challenger_version: str,
    incumbent: SignalModel | None,
    incumbent_version: str | None,
    since: dt.date | None,
    model_input: pl.DataFrame | None,
    labels: pl.DataFrame | None,
    keys: FrameKeys,
    label_column: str,
    moved: str = "promoted",
    periods_per_year: int = 252,
) -> LiveSection:
    """Both models on the live days strictly after ``since`` (the day the incumbent became champion) whose
    label is known, with the metrics of :func:`compute_numeric_report`; or a section saying why not.

    Args:
        since: the day (UTC) of the ledger entry that made the incumbent champion.
        model_input / labels: the stored partitions of the model-input and label nodes that may hold days
            after ``since`` (None or empty: nothing stored).
        moved: how the incumbent became champion, for the texts ("promoted", "restored by a rollback").

    Raises:
        GateFailed (gate ``report``): the stored frames lack a key or label column, or cannot be joined.
    """
    if incumbent is None or incumbent_version is None or since is None:
        return LiveSection(None, None, reason="no live days to compare: first promotion, there is no incumbent "
                                              "champion")
    incumbent_version = str(incumbent_version)
    what = f"since version {incumbent_version} was {moved} on {since.isoformat()}"

    def absent(reason: str) -> LiveSection:
        return LiveSection(incumbent_version, since, reason=reason)

    if model_input is None or model_input.height == 0:
        return absent(f"no live days stored {what}")
    if keys.time not in model_input.columns:
        raise gate_failed(REPORT, f"the stored model input partitions have no time column {keys.time!r} "
                                  f"(they have {model_input.columns})")
    stored = model_input.filter(pl.col(keys.time).cast(pl.Date) > since)[keys.time].cast(pl.Date).n_unique()
    if stored == 0:
        return absent(f"no live days stored {what}")
    rows = None
    if labels is not None and labels.height:
        try:
            rows = live_rows(model_input, labels, after=since, keys=keys, label_column=label_column)
        except DataError as exc:
            raise gate_failed(REPORT, f"the live days {what} cannot be read: {exc}") from exc
    if rows is None or rows.height == 0:
        return absent(f"no live days with a known label stored {what}: {stored} model-input day(s) stored, "
                      "their labels are not known yet")
    days = rows[keys.time].cast(pl.Date)
    if days.n_unique() < 2:
        return absent(f"only one live day with a known label stored {what} ({days.min()}); the metrics need "
                      "at least 2")
    done: list[ModelSeries] = []
    for role, m, v in (("challenger", challenger, challenger_version), ("incumbent", incumbent, incumbent_version)):
        try:
            done.append(_series(m, str(v), rows, keys=keys, label_column=label_column,
                                periods_per_year=periods_per_year))
        except (DataError, ValueError) as exc:
            return absent(f"the live days {what} cannot be compared: the {role} (version {v}) cannot score "
                          f"them: {exc}")
    window = DataWindow(days.min(), days.max())  # type: ignore[arg-type]
    return LiveSection(incumbent_version, since, window=window, rows=rows.height, challenger=done[0],
                       incumbent=done[1])


# -- rationale -----------------------------------------------------------------------------------


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def declares_override(text: str, policy: PromotionPolicy) -> str | None:
    """The override declaration of a rationale (the text after the prefix on its line), or None."""
    prefix = policy.override_prefix.casefold()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.casefold().startswith(prefix):
            reason = stripped[len(prefix):].strip()
            if reason:
                return reason
    return None


def check_rationale(text: str, *, previous: Iterable[str] = (), policy: PromotionPolicy) -> GateResult:
    """Refuse an empty, placeholder, copied or too short rationale.

    Args:
        text: the rationale, as written by a person.
        previous: the earlier rationales of this model (stored beside its versions).
        policy: gives ``min_rationale_chars`` and the override marker.
    """
    if not isinstance(text, str) or not text.strip():
        raise gate_failed(RATIONALE, "the rationale is empty; write why this version should become champion")
    stripped = text.strip()
    if _PLACEHOLDERS.match(stripped) or all(_PLACEHOLDERS.match(line) for line in stripped.splitlines()
                                            if line.strip()):
        raise gate_failed(RATIONALE, f"the rationale is a placeholder ({stripped[:40]!r}); write the actual reason")
    found = _PLACEHOLDER_WORDS.search(stripped)
    if found:
        raise gate_failed(RATIONALE, f"the rationale contains the placeholder {found.group(0)!r}; finish it")
    if len(stripped) < policy.min_rationale_chars:
        raise gate_failed(RATIONALE, f"the rationale has {len(stripped)} characters, the policy asks for at least "
                                     f"{policy.min_rationale_chars}")
    mine = _normalized(stripped)
    for old in previous:
        other = _normalized(old)
        if not other:
            continue
        ratio = 1.0 if mine == other else difflib.SequenceMatcher(None, mine, other, autojunk=False).ratio()
        if ratio >= _COPY_SIMILARITY:
            raise gate_failed(RATIONALE, f"the rationale is a copy ({ratio:.0%} identical) of an earlier rationale "
                                         "of this model; write one for this version")
    override = declares_override(stripped, policy)
    return GateResult(RATIONALE, True, f"{len(stripped)} characters" + (", declares an override" if override else ""),
                      {"chars": len(stripped), "override": override is not None})


# -- contract ------------------------------------------------------------------------------------


def check_contract_gate(contract: DeployContract, *, live_graph_hash: str, live_schema: FeatureSchema,
                        keys: FrameKeys, running_env: EnvironmentLock,
                        policy: EnvironmentPolicy | str) -> GateResult:
    """The challenger's contract against the live feature graph, its schema and the environment policy."""
    try:
        checked = check_contract(contract, LiveFeatureStream(live_graph_hash, live_schema, keys),
                                 running_env=running_env, policy=policy)
    except ContractViolation as exc:
        raise gate_failed(CONTRACT, str(exc)) from exc
    tolerated = list(checked.environment_differences)
    detail = f"feature graph {live_graph_hash} and schema match"
    if tolerated:
        detail += f"; {len(tolerated)} environment difference(s) tolerated by policy"
    return GateResult(CONTRACT, True, detail, {"environment_differences": tolerated})


# -- four eyes -----------------------------------------------------------------------------------


def _person(name: str) -> str:
    return " ".join(name.casefold().split())


def check_four_eyes(approver: str, trained_by: str) -> GateResult:
    """The approver is named and is not whoever trained the version (compared case- and space-insensitively)."""
    if not isinstance(approver, str) or not approver.strip():
        raise gate_failed(FOUR_EYES, "no approver named; a second person must approve the promotion")
    if _person(approver) == _person(trained_by):
        raise gate_failed(FOUR_EYES, f"the approver {approver.strip()!r} trained this version; another person "
                                     "must approve it")
    return GateResult(FOUR_EYES, True, f"approved by {approver.strip()!r}, trained by {trained_by!r}",
                      {"approver": approver.strip(), "trained_by": trained_by})


# -- thresholds ----------------------------------------------------------------------------------


def threshold_breaches(report: NumericReport, policy: PromotionPolicy) -> list[str]:
    """Each way the challenger is worse than the incumbent beyond the policy's margins."""
    if report.incumbent is None:
        return []
    c, i = report.challenger.report, report.incumbent.report
    breaches = []
    for metric, margin in (("sharpe", policy.max_sharpe_drop), ("ic_mean", policy.max_ic_mean_drop),
                           ("ic_tstat", policy.max_ic_tstat_drop), ("hit_rate", policy.max_hit_rate_drop)):
        drop = getattr(i, metric) - getattr(c, metric)
        if drop > margin + 1e-12:
            breaches.append(f"{metric} {getattr(c, metric):.4f} vs incumbent {getattr(i, metric):.4f}: "
                            f"drop {drop:.4f} > allowed {margin:g}")
    limit = max(i.max_drawdown * (1.0 + policy.max_drawdown_increase), i.max_drawdown + policy.min_drawdown_margin)
    if c.max_drawdown > limit + 1e-12:
        breaches.append(f"max_drawdown {c.max_drawdown:.4f} vs incumbent {i.max_drawdown:.4f}: above the allowed "
                        f"{limit:.4f} (+{policy.max_drawdown_increase:.0%})")
    if policy.max_turnover_increase is not None:
        limit = i.turnover * (1.0 + policy.max_turnover_increase)
        if c.turnover > limit + 1e-12:
            breaches.append(f"turnover {c.turnover:.4f} vs incumbent {i.turnover:.4f}: above the allowed "
                            f"{limit:.4f}")
    return breaches


def check_thresholds(report: NumericReport, policy: PromotionPolicy, *, override: str | None) -> GateResult:
    """Refuse a challenger worse than the incumbent beyond the margins, unless the rationale overrides.

    Returns a passed result with ``facts['override'] = True`` when breaches were overridden.
    """
    breaches = threshold_breaches(report, policy)
    if not breaches:
        what = "first promotion: no incumbent to compare with" if report.incumbent is None else \
            f"within the margins of incumbent version {report.incumbent.version}"
        return GateResult(THRESHOLDS, True, what, {"override": False, "breaches": []})
    listing = "; ".join(breaches)
    if override is None:
        raise gate_failed(THRESHOLDS, f"the challenger is worse than incumbent version {report.incumbent.version} "
                                      f"beyond the policy's margins: {listing}. Improve it, or declare an override "
                                      f"in the rationale (a line starting {policy.override_prefix!r})")
    return GateResult(THRESHOLDS, True, f"OVERRIDDEN ({override}): {listing}", {"override": True, "breaches": breaches})


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
