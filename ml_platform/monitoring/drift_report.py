"""The research report of an alpha drift finding: markdown, HTML, JSON and a PNG. Pure (matplotlib ``Figure``
with the Agg canvas: no pyplot, no global backend switch).

Plots: the live rolling Sharpe against the validated Sharpe and its confidence band, the live rolling
rank IC against the validated mean IC, and the daily PnL distribution then (validation) vs now (live).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from ml_platform.models.backtest import TRADING_DAYS_PER_YEAR
from ml_platform.monitoring.drift import DriftEvaluation

__all__ = ["ROLLING_DAYS", "DriftReport", "render_drift_report"]

ROLLING_DAYS = 21


@dataclass(frozen=True)
class DriftReport:
    """The files of one research report, byte for byte, and its markdown for Dagster metadata."""

    markdown: str
    json_bytes: bytes
    html_bytes: bytes
    png_bytes: bytes

    def files(self) -> dict[str, bytes]:
        return {"report.md": self.markdown.encode("utf-8"), "report.json": self.json_bytes,
                "report.html": self.html_bytes, "report.png": self.png_bytes}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _table(evaluation: DriftEvaluation) -> str:
    lines = ["| statistic | live | validated | threshold | breached | detail |", "|---|---|---|---|---|---|"]
    for s in evaluation.statistics:
        lines.append(f"| {s.name} | {_fmt(s.value)} | {_fmt(s.reference)} | {_fmt(s.threshold)} | "
                     f"{'**yes**' if s.breached else 'no'} | {s.detail} |")
    return "\n".join(lines)


def _markdown(evaluation: DriftEvaluation, *, model: str, version: str, created_at: str) -> str:
    head = [f"# Alpha drift: {model} v{version}", "",
            f"- created: {created_at}",
            f"- live window: {evaluation.live_window}",
            f"- validation window: {evaluation.validated_window}",
            f"- verdict: {evaluation.summary()}", "",
            ("This report goes to research. It never pages on-call: the model is served as contracted, it earns "
             "differently from how it was validated."), ""]
    if evaluation.skipped:
        return "\n".join([*head, f"Not judged: {evaluation.skipped}", ""])
    return "\n".join([*head, _table(evaluation), ""])


def _rolling_sharpe(daily: pl.DataFrame, time: str) -> tuple[list[object], list[float]]:
    frame = daily.sort(time).with_columns(
        (pl.col("pnl").rolling_mean(ROLLING_DAYS) / pl.col("pnl").rolling_std(ROLLING_DAYS)
         * math.sqrt(TRADING_DAYS_PER_YEAR)).alias("_s"))
    return frame[time].to_list(), [float("nan") if v is None or not math.isfinite(v) else v for v in frame["_s"]]


def _sharpe(pnl: list[float]) -> float:
    if len(pnl) < 2:
        return float("nan")
    mean = math.fsum(pnl) / len(pnl)
    var = math.fsum((x - mean) ** 2 for x in pnl) / (len(pnl) - 1)
    return float("nan") if var <= 0 else mean / math.sqrt(var) * math.sqrt(TRADING_DAYS_PER_YEAR)


def render_png(evaluation: DriftEvaluation, validated: pl.DataFrame, live: pl.DataFrame, *, time: str,
               title: str) -> bytes:
    """Three panels: rolling Sharpe with the validated band, rolling IC, PnL distribution then vs now."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 10), dpi=100)
    FigureCanvasAgg(fig)
    sharpe_ax, ic_ax, dist_ax = fig.subplots(3, 1)
    has_live = live.height > 0 and "pnl" in live.columns
    has_validated = validated.height > 0 and "pnl" in validated.columns
    if has_validated:
        validated_sharpe = _sharpe([float(v) for v in validated["pnl"].drop_nulls()])
        n = max(ROLLING_DAYS, 2)  # band of a rolling window's Sharpe around the validated one (Lo 2002)
        per_day = validated_sharpe / math.sqrt(TRADING_DAYS_PER_YEAR)
        half = 2.576 * math.sqrt((1 + per_day ** 2 / 2) / n) * math.sqrt(TRADING_DAYS_PER_YEAR)
        sharpe_ax.axhline(validated_sharpe, color="black", linewidth=1, label=f"validated {validated_sharpe:.2f}")
        sharpe_ax.axhspan(validated_sharpe - half, validated_sharpe + half, color="grey", alpha=0.2,
                          label=f"99% band of a {ROLLING_DAYS}-day Sharpe")
    if has_live:
        x, y = _rolling_sharpe(live, time)
        sharpe_ax.plot(x, y, color="tab:red", label=f"live {ROLLING_DAYS}-day Sharpe")
    sharpe_ax.set_title(f"{title}: rolling Sharpe (annualized)")
    sharpe_ax.legend(loc="best", fontsize=8)
    if has_live and "ic" in live.columns:
        frame = live.sort(time).with_columns(pl.col("ic").rolling_mean(ROLLING_DAYS, min_samples=1).alias("_ic"))
        ic_ax.plot(frame[time].to_list(), [float("nan") if v is None else v for v in frame["_ic"]],
                   color="tab:red", label=f"live {ROLLING_DAYS}-day mean rank IC")
    if has_validated and "ic" in validated.columns:
        mean_ic = validated["ic"].drop_nulls().mean()
        if mean_ic is not None:
            ic_ax.axhline(float(mean_ic), color="black", linewidth=1, label=f"validated mean {float(mean_ic):.3f}")
    ic_ax.axhline(0.0, color="grey", linewidth=0.5)
    ic_ax.set_title("rank IC")
    ic_ax.legend(loc="best", fontsize=8)
    for frame, label, color in ((validated, "validation (then)", "black"), (live, "live (now)", "tab:red")):
        if frame.height and "pnl" in frame.columns:
            values = [float(v) for v in frame["pnl"].drop_nulls()]
            dist_ax.hist(values, bins=30, density=True, histtype="step", color=color, label=label)
    dist_ax.set_title("daily PnL distribution: then vs now")
    dist_ax.legend(loc="best", fontsize=8)
    for ax in (sharpe_ax, ic_ax):
        ax.tick_params(axis="x", labelrotation=30)
    fig.subplots_adjust(hspace=0.55, top=0.95, bottom=0.06)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def render_drift_report(evaluation: DriftEvaluation, validated: pl.DataFrame, live: pl.DataFrame, *, model: str,
                        version: str, time: str, created_at: str) -> DriftReport:
    """The report of ``evaluation`` (the frames are the daily performance it compared)."""
    markdown = _markdown(evaluation, model=model, version=version, created_at=created_at)
    png = render_png(evaluation, validated, live, time=time, title=f"{model} v{version}")
    payload = {"model": model, "version": version, "created_at": created_at, "evaluation": evaluation.to_dict()}
    json_bytes = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False).encode("utf-8")
    image = base64.b64encode(png).decode("ascii")
    body = html.escape(markdown)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Alpha drift {html.escape(model)} "
            f"v{html.escape(version)}</title></head><body><pre>{body}</pre>"
            f"<img alt='rolling Sharpe, IC and PnL distribution' src='data:image/png;base64,{image}'/></body></html>")
    return DriftReport(markdown, json_bytes, page.encode("utf-8"), png)
