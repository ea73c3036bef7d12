"""Render the numeric report as JSON, HTML and PNG (matplotlib's ``Figure`` with the Agg canvas: no pyplot,
no global backend switch, no import-time side effect)."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from dataclasses import dataclass

import polars as pl

from ml_platform.promotion.gates import COMPARED_METRICS, NumericReport

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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    series = [("challenger", report.challenger)] + ([("incumbent", report.incumbent)] if report.incumbent else [])
    for role, s in series:
        x, y = _cumulative(s.daily, report.time_column)
        top.plot(x, y, label=f"{role} v{s.version}")
        x, y = _rolling_ic(s.daily, report.time_column)
        bottom.plot(x, [float("nan") if v is None else v for v in y], label=f"{role} v{s.version}")
    top.set_title(f"{report.model}: cumulative PnL on {report.window}")
    top.set_ylabel("cumulative PnL")
    top.legend(loc="best")
    bottom.axhline(0.0, color="grey", linewidth=0.5)
    bottom.set_title(f"rolling rank IC ({ROLLING_IC_DAYS} days)")
    bottom.set_ylabel("IC")
    bottom.legend(loc="best")
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def render_report(report: NumericReport, *, created_at: str, extra: dict[str, object] | None = None) -> RenderedReport:
    """JSON (the numbers), PNG (the plots) and a self-contained HTML page (table + embedded plot)."""
    png = render_png(report)
    data = {**report.to_dict(), "created_at": created_at, "png_sha256": sha256_hex(png), **(extra or {})}
    json_bytes = json.dumps(data, indent=2, sort_keys=True, allow_nan=False).encode("utf-8")
    inc = report.incumbent
    diffs = report.differences
    rows = "".join(
        f"<tr><td>{m}</td><td>{getattr(report.challenger.report, m):.4f}</td>"
        f"<td>{'-' if inc is None else format(getattr(inc.report, m), '.4f')}</td>"
        f"<td>{'-' if m not in diffs else format(diffs[m], '+.4f')}</td></tr>"
        for m in COMPARED_METRICS)
    title = html.escape(f"Promotion report: {report.model} v{report.challenger.version} vs "
                        f"{'none' if inc is None else 'v' + inc.version}")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>Window {html.escape(str(report.window))}, {report.rows} rows, "
        f"created {html.escape(created_at)}</p>"
        "<table border='1' cellpadding='4'><tr><th>metric</th><th>challenger</th><th>incumbent</th>"
        f"<th>difference</th></tr>{rows}</table>"
        f"<img alt='cumulative PnL and rolling IC' src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
        "</body></html>")
    return RenderedReport(json_bytes, page.encode("utf-8"), png)
