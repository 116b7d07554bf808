"""Series a tearsheet plots, from the equity curve and daily returns the metrics use: drawdown
periods, monthly and annual returns, rolling Sharpe, volatility and beta."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.metrics import EXCHANGE_TZ, TRADING_DAYS, period_returns

ROLLING_DAYS = 126  # six months of sessions


def drawdown_periods(curve: pd.DataFrame, top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` deepest drawdowns, deepest first: peak, trough, recovery (None if still under
    water), depth (a negative fraction) and length in days from peak to recovery (or the last bar)."""
    equity = curve["equity"].to_numpy(dtype=np.float64)
    times = pd.DatetimeIndex(curve["timestamp"])
    if not len(equity):
        return []
    running = np.maximum.accumulate(equity)
    under = equity < running
    periods, i = [], 0
    while i < len(equity):
        if not under[i]:
            i += 1
            continue
        start = i - 1  # the last bar at the high
        while i < len(equity) and under[i]:
            i += 1
        end = i  # first bar back at the high, or len(equity)
        trough = start + 1 + int(np.argmin(equity[start + 1 : end]))
        recovered = end < len(equity)
        last = times[end] if recovered else times[-1]
        periods.append(
            {
                "peak": times[start],
                "trough": times[trough],
                "recovery": times[end] if recovered else None,
                "depth": float(equity[trough] / equity[start] - 1.0),
                "days": (last - times[start]).total_seconds() / 86400,
            }
        )
    return sorted(periods, key=lambda p: p["depth"])[:top]


def _by_day(returns: pd.Series, zone: str = EXCHANGE_TZ) -> pd.Series:
    return pd.Series(returns.to_numpy(), index=pd.DatetimeIndex(returns.index).tz_convert(zone))


def monthly_returns(returns: pd.Series, zone: str = EXCHANGE_TZ) -> pd.DataFrame:
    """Compounded returns per calendar month (exchange time, ``zone``): rows are years, columns 1..12."""
    local = _by_day(returns, zone)
    if not len(local):
        return pd.DataFrame(columns=range(1, 13))
    grouped = (1 + local).groupby([local.index.year, local.index.month]).prod() - 1
    table = grouped.unstack()
    return table.reindex(columns=range(1, 13))


def annual_returns(returns: pd.Series, zone: str = EXCHANGE_TZ) -> pd.Series:
    """Compounded return per calendar year (exchange time, ``zone``), indexed by the year."""
    years = period_returns(returns, "year", zone)
    return pd.Series(years.to_numpy(), index=[int(y) for y in years.index], dtype=np.float64)


def rolling_sharpe_volatility(returns: pd.Series, days: int = ROLLING_DAYS, rf: float = 0.0) -> pd.DataFrame:
    """Annualised Sharpe (mean / std, ddof=1, of the excess returns over ``rf``, a daily rate) and
    volatility over the trailing ``days`` returns."""
    window = returns.rolling(days, min_periods=days)
    std = window.std(ddof=1)
    sharpe = ((window.mean() - rf) / std.where(std > 0)) * math.sqrt(TRADING_DAYS)
    return pd.DataFrame({"sharpe": sharpe, "volatility": std * math.sqrt(TRADING_DAYS)}).dropna(how="all")


def rolling_beta(
    returns: pd.Series, benchmark_returns: pd.Series, days: int = ROLLING_DAYS, zone: str = EXCHANGE_TZ
) -> pd.Series:
    """cov(r, b) / var(b) over the trailing ``days`` sessions both series have, indexed by the
    strategy's timestamps; undefined (dropped) until a full window, and where the benchmark is flat."""
    days_r = _by_day(returns, zone).index.normalize()
    bench = pd.Series(benchmark_returns.to_numpy(), index=_by_day(benchmark_returns, zone).index.normalize())
    both = pd.DataFrame({"r": returns.to_numpy(), "at": np.arange(len(returns))}, index=days_r)
    both = both.join(bench.rename("b"), how="inner").dropna()
    window = both[["r", "b"]].rolling(days, min_periods=days)
    variance = window["b"].var(ddof=1)
    beta = window["r"].cov(both["b"], ddof=1) / variance.where(variance > 0)
    return pd.Series(beta.to_numpy(), index=returns.index[both["at"].to_numpy()]).dropna()
