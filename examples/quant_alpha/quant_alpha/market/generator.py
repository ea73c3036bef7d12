"""A seeded, deterministic synthetic equity market producing realistic daily bars. Pure, no Dagster.

The market is simulated forward from ``origin`` one calendar year (a *block*) at a time. A block's
randomness comes only from ``numpy.random.Generator(PCG64(SeedSequence([seed, stream, year, ...])))``
and its start state is the previous block's end state, so the bars of a day are a function of
``(seed, n_instruments, origin, day)`` alone: identical whatever window (a one-day partition or a
fourteen-year range) asks for them. Blocks are cached per process (bounded); one instrument's path
depends only on its own streams and the market's, so adding instruments never changes existing ones.

Model, per trading day ``t`` and instrument ``i`` (log returns):

* calendar: weekdays minus US-exchange holidays (:func:`exchange_holidays`, fixed dates observed on
  the nearest weekday) minus rare seeded market-wide closures of one to four days;
* market factor ``f_t = drift[s_t] + vol[s_t] * z_t`` with a two-state Markov regime ``s_t``
  (calm/stressed) and Student-t (df 4, unit variance) innovations;
* ``r_it = beta_i f_t + mu_it + e_it - REVERSAL * e_i,t-1`` where ``e_it`` is Student-t idiosyncratic
  noise (larger when stressed) and ``mu_it`` a persistent AR(1) drift. ``mu`` plants momentum and the
  ``REVERSAL`` term a one-day reversal: a cross-sectional IC of a few percent, learnable by a ridge model;
* listings after origin, planned delistings (acquisitions) and distress delistings (close below $1),
  multi-day trading halts (no bar; the price keeps moving and the next bar's return spans the halt),
  stock splits once the raw price is well above its listing level, consistent OHLC rounded to cents,
  lognormal volume rising with ``|r|`` and in stress, scaled by the split factor (share counts).

``adj_close`` is forward-adjusted: it equals ``close`` until the first split and ``close`` times the
cumulative split ratio after, so it never depends on a later event (point-in-time safe).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from ml_platform import ConfigurationError, DataWindow, WindowError
from quant_alpha.market.schema import BARS_SCHEMA, empty_bars

DEFAULT_ORIGIN = dt.date(2000, 1, 3)
MAX_YEARS = 100
MAX_INSTRUMENTS = 999
# Random stream identifiers (the second SeedSequence word); never renumber them.
_STATIC, _CALENDAR, _MARKET, _INSTRUMENT = 1, 2, 3, 4
# Regime (index 0 calm, 1 stressed) and return model.
P_SWITCH = (0.01, 0.05)
FACTOR_DRIFT = (0.0004, -0.0008)
FACTOR_VOL = (0.008, 0.022)
IDIO_STRESS = (1.0, 1.6)
T_DF = 4.0
ALPHA_PHI = math.exp(-1.0 / 60.0)
ALPHA_SD = 0.0015
REVERSAL = 0.06
OVERNIGHT_SHARE, OVERNIGHT_NOISE, RANGE_SCALE = 0.3, 0.003, 0.5
VOLUME_SLOPE, VOLUME_STRESS, VOLUME_NOISE, MAX_SURPRISE = 0.5, 0.3, 0.35, 6.0
# Corporate life.
LATE_LISTING_P, DELISTING_P = 0.25, 0.15
HALT_HAZARD, MAX_HALT = 0.002, 5
SPLIT_HAZARD, SPLIT_RATIOS, SPLIT_WEIGHTS = 0.02, (2.0, 3.0, 1.5), (0.7, 0.15, 0.15)
DELIST_PRICE = 1.0
CLOSURES_PER_YEAR, MAX_CLOSURE = 0.2, 4


def _rng(seed: int, *path: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *path])))


def _t_noise(gen: np.random.Generator, size: int) -> np.ndarray:
    return gen.standard_t(T_DF, size) / math.sqrt(T_DF / (T_DF - 2.0))


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> dt.date:
    if nth > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Gregorian, Meeus/Jones/Butcher, algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _observed(day: dt.date) -> dt.date:
    """A fixed-date holiday falling on a weekend is observed on Friday (Saturday) or Monday (Sunday)."""
    shift = {5: -1, 6: 1}.get(day.weekday(), 0)
    return day + dt.timedelta(days=shift)


def exchange_holidays(year: int) -> frozenset[dt.date]:
    """Full-day US exchange holidays of ``year`` (New Year, MLK, Presidents, Good Friday, Memorial,
    Juneteenth from 2022, Independence, Labor, Thanksgiving, Christmas; weekend dates observed).

    New Year's Day on a Saturday is not observed (the exchange does not close on 31 December).
    """
    fixed = [dt.date(year, 7, 4), dt.date(year, 12, 25)] + ([dt.date(year, 6, 19)] if year >= 2022 else [])
    days = {_observed(day) for day in fixed}
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:
        days.add(_observed(new_year))
    days |= {
        _nth_weekday(year, 1, 0, 3),
        _nth_weekday(year, 2, 0, 3),
        _easter(year) - dt.timedelta(days=2),
        _nth_weekday(year, 5, 0, -1),
        _nth_weekday(year, 9, 0, 1),
        _nth_weekday(year, 11, 3, 4),
    }
    return frozenset(days)


@lru_cache(maxsize=256)
def _year_calendar(seed: int, year: int) -> tuple[tuple[dt.date, ...], tuple[dt.date, ...]]:
    """(trading days, seeded closures) of a calendar year; independent of origin and universe."""
    start, holidays = dt.date(year, 1, 1), exchange_holidays(year)
    span = (dt.date(year + 1, 1, 1) - start).days
    open_days = [
        d
        for d in (start + dt.timedelta(days=k) for k in range(span))
        if d.weekday() < 5 and d not in holidays
    ]
    gen = _rng(seed, _CALENDAR, year)
    closed: set[dt.date] = set()
    for _ in range(int(gen.poisson(CLOSURES_PER_YEAR))):
        first, length = int(gen.integers(0, len(open_days))), int(gen.integers(1, MAX_CLOSURE + 1))
        closed.update(open_days[first : first + length])
    return tuple(d for d in open_days if d not in closed), tuple(sorted(closed))


@dataclass(frozen=True)
class _Statics:
    """Per-instrument constants, arrays over instruments."""

    names: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    ipo_price: np.ndarray
    listing: np.ndarray  # proleptic ordinal of the listing day
    delisting: np.ndarray  # ordinal of the first day without bars (huge if never)
    base_volume: np.ndarray
    split_level: np.ndarray
    mu0: np.ndarray


@lru_cache(maxsize=16)
def _statics(seed: int, n: int, origin: dt.date) -> _Statics:
    rows = []
    for i in range(n):
        g = _rng(seed, _STATIC, i)
        u, z = g.random(8), g.standard_normal(2)  # one draw per attribute, in a fixed order
        ipo = 8.0 * 15.0 ** u[2]  # log-uniform listing price in [8, 120)
        listing = origin.toordinal() + (30 + int(3620 * u[4]) if u[3] < LATE_LISTING_P else 0)
        delisting = listing + 250 + int(3750 * u[6]) if u[5] < DELISTING_P else dt.date.max.toordinal()
        split_level = ipo * (2.0 + u[7])  # splits become likely at 2-3x the listing price
        volume = math.exp(13.5 + 0.8 * z[0])
        rows.append(
            (0.5 + u[0], 0.010 + 0.015 * u[1], ipo, listing, delisting, volume, split_level, ALPHA_SD * z[1])
        )
    names = np.array([f"SYN{i + 1:03d}" for i in range(n)], dtype=object)
    return _Statics(names, *[np.array(col) for col in zip(*rows)])


@dataclass(frozen=True)
class _State:
    """The market at the close of a block's last trading day (read-only arrays over instruments)."""

    regime: int
    log_adj: np.ndarray  # log adjusted price (the listing price while not yet listed)
    eps: np.ndarray
    mu: np.ndarray
    cum_split: np.ndarray
    raw_close: np.ndarray
    gone: np.ndarray
    halt_left: np.ndarray


@dataclass(frozen=True)
class _Block:
    bars: pl.DataFrame
    regimes: pl.DataFrame
    state: _State


def _initial_state(st: _Statics) -> _State:
    zeros = np.zeros(len(st.names))
    return _State(
        0, np.log(st.ipo_price), zeros, st.mu0, zeros + 1, st.ipo_price, zeros > 0, zeros.astype(np.int64)
    )


def _instrument_draws(seed: int, year: int, n: int, size: int) -> dict[str, np.ndarray]:
    keys = ("eps", "mu", "ov", "hi", "lo", "vol", "halt", "halt_len", "split", "ratio")
    out = {key: np.empty((size, n)) for key in keys}
    for i in range(n):
        g = _rng(seed, _INSTRUMENT, year, i)
        out["eps"][:, i], out["mu"][:, i] = _t_noise(g, size), g.standard_normal(size)
        out["ov"][:, i], out["hi"][:, i], out["lo"][:, i] = g.standard_normal((3, size))
        out["vol"][:, i], out["halt"][:, i] = g.standard_normal(size), g.random(size)
        out["halt_len"][:, i] = g.integers(1, MAX_HALT + 1, size)
        out["split"][:, i], out["ratio"][:, i] = g.random(size), g.choice(SPLIT_RATIOS, size, p=SPLIT_WEIGHTS)
    return out


def _simulate(seed: int, st: _Statics, days: tuple[dt.date, ...], year: int, s0: _State) -> _Block:
    size, n = len(days), len(st.names)
    gm = _rng(seed, _MARKET, year)
    switch, z_f = gm.random(size), _t_noise(gm, size)
    regime, reg = s0.regime, np.empty(size, dtype=np.int64)
    for t in range(size):
        regime = 1 - regime if switch[t] < P_SWITCH[regime] else regime
        reg[t] = regime
    factor = np.take(FACTOR_DRIFT, reg) + np.take(FACTOR_VOL, reg) * z_f
    d = _instrument_draws(seed, year, n, size)
    mu, mu_prev = np.empty((size, n)), s0.mu
    for t in range(size):
        mu_prev = mu[t] = ALPHA_PHI * mu_prev + ALPHA_SD * math.sqrt(1 - ALPHA_PHI**2) * d["mu"][t]
    idio_sd = st.sigma * np.take(IDIO_STRESS, reg)[:, None]
    eps = idio_sd * d["eps"]
    ret = st.beta * factor[:, None] + mu + eps - REVERSAL * np.vstack([s0.eps[None, :], eps[:-1]])
    ords = np.array([day.toordinal() for day in days])[:, None]
    listed = (ords >= st.listing) & (ords < st.delisting)
    log_close = s0.log_adj + np.cumsum(np.where(listed, ret, 0.0), axis=0)
    log_prev = np.vstack([s0.log_adj[None, :], log_close[:-1]])
    total_sd = np.sqrt((st.beta * np.take(FACTOR_VOL, reg)[:, None]) ** 2 + idio_sd**2)
    log_open = log_prev + OVERNIGHT_SHARE * ret + OVERNIGHT_NOISE * d["ov"]
    log_high = np.maximum(log_open, log_close) + RANGE_SCALE * total_sd * np.abs(d["hi"])
    log_low = np.minimum(log_open, log_close) - RANGE_SCALE * total_sd * np.abs(d["lo"])
    surprise = np.minimum(np.abs(ret) / total_sd, MAX_SURPRISE)
    log_volume = np.log(st.base_volume) + VOLUME_SLOPE * surprise + VOLUME_STRESS * reg[:, None]
    log_volume = log_volume + VOLUME_NOISE * d["vol"]
    # Halts: a halt starting at t lasts halt_len bars; halts crossing the block end carry over.
    steps = np.arange(size)[:, None]
    starts = listed & (d["halt"] < HALT_HAZARD)
    halted = steps < s0.halt_left
    for j in range(min(MAX_HALT, size)):
        halted[j:] |= starts[: size - j] & (d["halt_len"][: size - j] > j)
    ends = np.where(starts, steps + d["halt_len"].astype(np.int64), 0).max(axis=0)
    halt_left = np.maximum(np.maximum(s0.halt_left - size, 0), ends - size)
    # Splits and distress delistings depend on the raw price path: sequential over days.
    cum, gone, raw_prev = s0.cum_split.copy(), s0.gone.copy(), s0.raw_close.copy()
    cum_t, emit = np.empty((size, n)), np.zeros((size, n), dtype=bool)
    for t in range(size):
        live = listed[t] & ~gone
        split = live & (raw_prev > st.split_level) & (d["split"][t] < SPLIT_HAZARD)
        cum = np.where(split, cum * d["ratio"][t], cum)
        cum_t[t] = cum
        raw_close = np.exp(log_close[t]) / cum
        raw_prev = np.where(live, raw_close, raw_prev)
        emit[t] = live & ~halted[t]
        gone = gone | (live & (raw_close < DELIST_PRICE))
    ti, ii = np.nonzero(emit)
    scale = cum_t[ti, ii]
    close = np.round(np.exp(log_close[ti, ii]) / scale, 2)
    open_ = np.round(np.exp(log_open[ti, ii]) / scale, 2)
    high = np.maximum(np.round(np.exp(log_high[ti, ii]) / scale, 2), np.maximum(open_, close))
    low = np.minimum(np.maximum(np.round(np.exp(log_low[ti, ii]) / scale, 2), 0.01), np.minimum(open_, close))
    volume = np.maximum(np.rint(np.exp(log_volume[ti, ii]) * scale), 1).astype(np.int64)
    dates = np.array(days, dtype="datetime64[D]")
    bars = pl.DataFrame(
        {
            "date": dates[ti],
            "instrument": st.names[ii].astype(str),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "adj_close": close * scale,
            "volume": volume,
        },
        schema=BARS_SCHEMA,
    )
    regimes = pl.DataFrame(
        {"date": dates, "stressed": reg.astype(bool)}, schema={"date": pl.Date, "stressed": pl.Boolean}
    )
    state = _State(int(regime), log_close[-1], eps[-1], mu[-1], cum, raw_prev, gone, halt_left)
    for value in vars(state).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return _Block(bars, regimes, state)


@lru_cache(maxsize=64)
def _block(seed: int, n: int, origin: dt.date, year: int) -> _Block:
    st = _statics(seed, n, origin)
    start = _initial_state(st) if year == origin.year else _block(seed, n, origin, year - 1).state
    days = tuple(day for day in _year_calendar(seed, year)[0] if day >= origin)
    if not days:
        return _Block(empty_bars(), pl.DataFrame(schema={"date": pl.Date, "stressed": pl.Boolean}), start)
    return _simulate(seed, st, days, year, start)


def clear_generator_cache() -> None:
    """Forget every generated block (memory relief in long-lived processes; results are unchanged)."""
    for cached in (_block, _statics, _year_calendar):
        cached.cache_clear()


@dataclass(frozen=True)
class SyntheticMarket:
    """A deterministic synthetic universe of ``n_instruments`` stocks named ``SYN001``, ``SYN002``, ...

    Attributes:
        seed: the market's seed (a non-negative int); the same seed gives the same bytes everywhere.
        n_instruments: universe size (1..999); instrument ``SYN007`` is the same in every universe size.
        origin: first day of history; windows may not start before it.

    Example:
        >>> market = SyntheticMarket(seed=7)
        >>> bars = market.bars(DataWindow.parse("2012-01-02..2012-03-30"))
        >>> bars.columns[:2]
        ['date', 'instrument']
    """

    seed: int
    n_instruments: int = 40
    origin: dt.date = DEFAULT_ORIGIN

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigurationError(f"synthetic market seed must be a non-negative int, got {self.seed!r}")
        n = self.n_instruments
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_INSTRUMENTS:
            raise ConfigurationError(f"n_instruments must be an int in 1..{MAX_INSTRUMENTS}, got {n!r}")
        if not isinstance(self.origin, dt.date) or isinstance(self.origin, dt.datetime):
            raise ConfigurationError(f"origin must be a datetime.date, got {self.origin!r}")

    @property
    def instruments(self) -> tuple[str, ...]:
        """Every instrument name of the universe, listed or not yet."""
        return tuple(f"SYN{i + 1:03d}" for i in range(self.n_instruments))

    def _years(self, window: DataWindow) -> range:
        if not isinstance(window, DataWindow):
            raise WindowError(f"expected a DataWindow, got {type(window).__name__}")
        if window.start < self.origin:
            raise WindowError(
                f"window {window} starts before the synthetic market's origin {self.origin.isoformat()}; "
                "start the window on or after the origin (or build the market with an earlier origin)"
            )
        if window.end.year > self.origin.year + MAX_YEARS:
            raise WindowError(
                f"window {window} ends more than {MAX_YEARS} years after the origin "
                f"{self.origin.isoformat()}; "
                "the synthetic history is not generated that far"
            )
        return range(window.start.year, window.end.year + 1)

    def _calendar(self, window: DataWindow, part: int) -> tuple[dt.date, ...]:
        years = self._years(window)
        return tuple(d for y in years for d in _year_calendar(self.seed, y)[part] if d in window)

    def trading_days(self, window: DataWindow) -> tuple[dt.date, ...]:
        """The market's trading days within ``window`` (weekdays minus holidays and closures)."""
        return self._calendar(window, 0)

    def closures(self, window: DataWindow) -> tuple[dt.date, ...]:
        """Seeded market-wide closures (non-holiday weekdays without trading) within ``window``."""
        return self._calendar(window, 1)

    def _frames(self, window: DataWindow, attr: str) -> pl.DataFrame:
        years = self._years(window)
        parts = [getattr(_block(self.seed, self.n_instruments, self.origin, year), attr) for year in years]
        frame = pl.concat(parts, how="vertical") if parts else empty_bars()
        return frame.filter(pl.col("date").is_between(window.start, window.end))

    def bars(self, window: DataWindow) -> pl.DataFrame:
        """Daily bars of every listed, non-halted instrument in ``window``, sorted by (date, instrument).

        Raises:
            WindowError: the window starts before ``origin`` or ends beyond the generated horizon.
        """
        return self._frames(window, "bars")

    def regimes(self, window: DataWindow) -> pl.DataFrame:
        """The planted market regime per trading day: ``date`` and ``stressed`` (a research diagnostic)."""
        return self._frames(window, "regimes")
