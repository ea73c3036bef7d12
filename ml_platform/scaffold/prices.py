"""The bundled sample prices of a scaffolded project: a small deterministic CSV. Pure.

Eight tickers over 300 business days from 2023-01-02: a geometric random walk per ticker with its own
drift and volatility, a common market factor and a little short-term mean reversion, so the scaffolded
features and model have something to find. Generated with :class:`random.Random` (whose sequence
Python guarantees across versions and platforms) and written with fixed formatting, so the same
version of ml_platform always writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import math
import random

__all__ = ["FIRST_DAY", "TICKERS", "business_days", "prices_csv"]

TICKERS = ("ALFA", "BRVO", "CHRL", "DLTA", "ECHO", "FXTR", "GOLF", "HTEL")
FIRST_DAY = dt.date(2023, 1, 2)
DAYS = 300
SEED = 20230102


def business_days(first: dt.date, count: int) -> list[dt.date]:
    """``count`` weekdays from ``first`` on (no holiday calendar)."""
    days: list[dt.date] = []
    day = first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def prices_csv(tickers: tuple[str, ...] = TICKERS, days: int = DAYS, seed: int = SEED) -> str:
    """CSV text ``date,ticker,close,volume``, one row per (business day, ticker), sorted by date then ticker."""
    rng = random.Random(seed)
    drift = {t: rng.uniform(-0.0004, 0.0008) for t in tickers}
    vol = {t: rng.uniform(0.010, 0.025) for t in tickers}
    close = {t: round(rng.uniform(20.0, 200.0), 2) for t in tickers}
    last_return = dict.fromkeys(tickers, 0.0)
    lines = ["date,ticker,close,volume"]
    for index, day in enumerate(business_days(FIRST_DAY, days)):
        market = rng.gauss(0.0, 0.008)
        for ticker in tickers:
            if index:
                r = drift[ticker] + market - 0.15 * last_return[ticker] + rng.gauss(0.0, vol[ticker])
                close[ticker] = close[ticker] * math.exp(r)
                last_return[ticker] = r
            volume = int(rng.lognormvariate(13.0, 0.4))
            lines.append(f"{day.isoformat()},{ticker},{close[ticker]:.4f},{volume}")
    return "\n".join(lines) + "\n"
