"""Render the numeric report as JSON, HTML and PNG (matplotlib's ``Figure`` with the Agg canvas: no pyplot,
no global backend switch, no import-time side effect).

Two sections, labelled as such everywhere: the challenger's validation window (where the thresholds
apply) and the live days since the incumbent became champion (informational; when there are none the
report says why).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from dataclasses import dataclass

import polars as pl

from ml_platform.promotion.gates import COMPARED_METRICS, LIVE_NOT_GATED, ModelSeries, NumericReport

__all__ = ["RenderedReport", "render_report", "sha256_hex"]

ROLLING_IC_DAYS = 5


def sha256_hex(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RenderedReport:
    """The three files of a report, byte for byte."""

    json_bytes: bytes
    html_bytes: bytes
    png_bytes: bytes

    def files(self) -> dict[str, bytes]:
        return {"report.json": self.json_bytes, "report.html": self.html_bytes, "report.png": self.png_bytes}


def _cumulative(daily: pl.DataFrame, time: str) -> tuple[list[object], list[float]]:
    frame = daily.sort(time).with_columns(pl.col("pnl").cum_sum().alias("_cum"))
    return frame[time].to_list(), frame["_cum"].to_list()


def _rolling_ic(daily: pl.DataFrame, time: str) -> tuple[list[object], list[float | None]]:
    frame = daily.sort(time).with_columns(pl.col("ic").rolling_mean(ROLLING_IC_DAYS, min_samples=1).alias("_ic"))
    return frame[time].to_list(), frame["_ic"].to_list()


def render_png(report: NumericReport) -> bytes:
    """Cumulative PnL and rolling IC on the validation window; the live cumulative PnL below when there is one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    live = report.live_section
    fig = Figure(figsize=(9, 9 if live.available else 6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3 if live.available else 2, 1)
    top, bottom = axes[0], axes[1]
    bottom.sharex(top)
    series = [("challenger", report.challenger)] + ([("incumbent", report.incumbent)] if report.incumbent else [])
    for role, s in series:
        x, y = _cumulative(s.daily, report.time_column)
        top.plot(x, y, label=f"{role} v{s.version}")
        x, y = _rolling_ic(s.daily, report.time_column)
        bottom.plot(x, [float("nan") if v is None else v for v in y], label=f"{role} v{s.version}")
    top.set_title(f"{report.model}: cumulative PnL on the validation window {report.window}")
    top.set_ylabel("cumulative PnL")
    top.legend(loc="best")
    bottom.axhline(0.0, color="grey", linewidth=0.5)
    bottom.set_title(f"rolling rank IC ({ROLLING_IC_DAYS} days), validation window")
    bottom.set_ylabel("IC")
    bottom.legend(loc="best")
    if live.available:
        ax = axes[2]
        for role, s in (("challenger", live.challenger), ("incumbent", live.incumbent)):
            assert s is not None
            x, y = _cumulative(s.daily, report.time_column)
            ax.plot(x, y, label=f"{role} v{s.version}")
        ax.set_title(f"live days since v{live.incumbent_version} became champion on {live.since}: "
                     "cumulative PnL (no thresholds)")
        ax.set_ylabel("cumulative PnL")
        ax.legend(loc="best")
        top.tick_params(axis="x", labelbottom=False)  # shares the validation dates of the IC panel
        for dated in (bottom, ax):
            dated.tick_params(axis="x", labelrotation=30)
        fig.subplots_adjust(hspace=0.5, top=0.95, bottom=0.08)
    else:
        fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _html_table(challenger: ModelSeries, incumbent: ModelSeries | None, diffs: dict[str, float]) -> str:
    rows = "".join(
        f"<tr><td>{m}</td><td>{_cell(getattr(challenger.report, m))}</td>"
        f"<td>{'-' if incumbent is None else _cell(getattr(incumbent.report, m))}</td>"
        f"<td>{'-' if m not in diffs else format(diffs[m], '+.4f')}</td></tr>"
        for m in (*COMPARED_METRICS, "n_days"))
    head = (f"<tr><th>metric</th><th>challenger v{html.escape(challenger.version)}</th>"
            f"<th>{'incumbent (none)' if incumbent is None else 'incumbent v' + html.escape(incumbent.version)}"
            "</th><th>difference</th></tr>")
    return f"<table border='1' cellpadding='4'>{head}{rows}</table>"


def _cell(value: float) -> str:
    return str(value) if isinstance(value, int) else format(value, ".4f")


def render_report(report: NumericReport, *, created_at: str, extra: dict[str, object] | None = None) -> RenderedReport:
    """JSON (the numbers), PNG (the plots) and a self-contained HTML page (two tables + embedded plot)."""
    png = render_png(report)
    data = {**report.to_dict(), "created_at": created_at, "png_sha256": sha256_hex(png), **(extra or {})}
    json_bytes = json.dumps(data, indent=2, sort_keys=True, allow_nan=False).encode("utf-8")
    inc = report.incumbent
    live = report.live_section
    title = html.escape(f"Promotion report: {report.model} v{report.challenger.version} vs "
                        f"{'none' if inc is None else 'v' + inc.version}")
    if live.available:
        assert live.challenger is not None
        live_body = (f"<p>{html.escape(str(live.window))}: {live.days} days, {live.rows} rows</p>"
                     + _html_table(live.challenger, live.incumbent, live.differences))
    else:
        live_body = f"<p class='no-live'>{html.escape(str(live.reason))}</p>"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>Created {html.escape(created_at)}</p>"
        f"<h2>Validation window {html.escape(str(report.window))} (the thresholds apply here)</h2>"
        f"<p>{report.rows} rows</p>"
        + _html_table(report.challenger, inc, report.differences)
        + f"<h2>{html.escape(live.title)} ({html.escape(LIVE_NOT_GATED)})</h2>{live_body}"
        f"<img alt='cumulative PnL and rolling IC' src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
        "</body></html>")
    return RenderedReport(json_bytes, page.encode("utf-8"), png)
