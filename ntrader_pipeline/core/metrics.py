"""Performance metrics from mark-to-market equity and the trade ledger.

Definitions (also in the README):
- daily returns: percent change of the last equity of each exchange trading day;
- Sharpe = mean / std(ddof=1) × √252; Sortino = mean / √mean(min(r, 0)²) × √252;
  volatility = std(ddof=1) × √252; no risk-free rate;
- total return = last equity / first equity − 1; CAGR = (1 + total)^(252 / n daily returns) − 1;
- max drawdown = min(equity / running max − 1) over bar-level equity; Calmar = CAGR / |max DD|.
A ratio that is undefined (no variance, no losses, no trades…) is None, never 0 or infinity.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.backtest import BacktestResult

TRADING_DAYS = 252
EXCHANGE_TZ = "America/New_York"


def iso(ns: int | None) -> str | None:
    return None if ns is None else pd.Timestamp(int(ns), tz="UTC").isoformat()


def equity_curve(result: BacktestResult) -> pd.DataFrame:
    """timestamp (UTC), equity and drawdown (a negative fraction) at every bar."""
    equity = result.equity["equity"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(result.equity["ts_event"], utc=True),
            "equity": equity,
            "drawdown": equity / np.maximum.accumulate(equity) - 1.0,
        }
    )


def daily_returns(curve: pd.DataFrame) -> pd.Series:
    """Percent change of each trading day's last equity, indexed by that day's last bar time."""
    day = curve["timestamp"].dt.tz_convert(EXCHANGE_TZ).dt.date
    last = curve.groupby(day, sort=True).tail(1)
    return pd.Series(last["equity"].to_numpy(), index=last["timestamp"].to_numpy()).pct_change().dropna()


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def return_ratios(returns: pd.Series) -> dict[str, float | None]:
    r = returns.to_numpy(dtype=np.float64)
    n = len(r)
    std = r.std(ddof=1) if n > 1 else float("nan")
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) if n else float("nan")
    scale = math.sqrt(TRADING_DAYS)
    return {
        "volatility": _finite(std * scale),
        "sharpe_ratio": _finite(r.mean() / std * scale) if n > 1 and std > 0 else None,
        "sortino_ratio": _finite(r.mean() / downside * scale) if n and downside > 0 else None,
    }


def drawdown_stats(curve: pd.DataFrame) -> dict[str, Any]:
    equity = curve["equity"].to_numpy(dtype=np.float64)
    times = curve["timestamp"]
    drawdown = curve["drawdown"].to_numpy()
    trough = int(np.argmin(drawdown))
    if drawdown[trough] >= 0:
        return {
            "max_drawdown": 0.0,
            "max_drawdown_peak": None,
            "max_drawdown_trough": None,
            "max_drawdown_recovery": None,
            "max_drawdown_duration_days": None,
        }
    peak = int(np.argmax(equity[: trough + 1]))
    recovered = np.flatnonzero(equity[trough:] >= equity[peak])
    recovery = trough + int(recovered[0]) if len(recovered) else None
    until = times.iloc[recovery] if recovery is not None else times.iloc[-1]
    return {
        "max_drawdown": float(drawdown[trough]),
        "max_drawdown_peak": times.iloc[peak].isoformat(),
        "max_drawdown_trough": times.iloc[trough].isoformat(),
        "max_drawdown_recovery": times.iloc[recovery].isoformat() if recovery is not None else None,
        "max_drawdown_duration_days": (until - times.iloc[peak]).total_seconds() / 86400,
    }


def trade_stats(ledger: pd.DataFrame) -> dict[str, Any]:
    pnl = ledger["realized_pnl"].astype(float).to_numpy() if len(ledger) else np.array([])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    n = len(pnl)
    return {
        "trade_count": n,
        "win_rate": len(wins) / n if n else None,
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) else None,
        "expectancy": float(pnl.mean()) if n else None,
        "average_win": float(wins.mean()) if len(wins) else None,
        "average_loss": float(losses.mean()) if len(losses) else None,
        "largest_win": float(wins.max()) if len(wins) else None,
        "largest_loss": float(losses.min()) if len(losses) else None,
    }


def compute_metrics(result: BacktestResult, ledger: pd.DataFrame) -> dict[str, Any]:
    """Every headline figure of one backtest, JSON-ready (floats, ISO strings, None)."""
    curve = equity_curve(result)
    equity = curve["equity"].to_numpy()
    total = equity[-1] / equity[0] - 1.0
    returns = daily_returns(curve)
    cagr = (1.0 + total) ** (TRADING_DAYS / len(returns)) - 1.0 if len(returns) else None
    drawdowns = drawdown_stats(curve)
    mdd = drawdowns["max_drawdown"]
    closes = result.equity["close"].to_numpy()
    commissions = sum(result.fills["commission"], Decimal(0))
    return {
        "run_id": None,  # filled in when the run is stored
        "strategy": result.strategy,
        "symbol": result.symbol,
        "start": iso(result.start_ns),
        "end": iso(result.end_ns),
        "bars": result.bar_count,
        "starting_equity": float(equity[0]),
        "final_equity": float(equity[-1]),
        "total_return": float(total),
        "cagr": _finite(cagr) if cagr is not None else None,
        **return_ratios(returns),
        "calmar_ratio": _finite(cagr / abs(mdd)) if cagr is not None and mdd < 0 else None,
        **drawdowns,
        **trade_stats(ledger),
        "commissions": float(commissions),
        "exposure": float(np.mean(result.equity["position"].to_numpy() != 0)),
        "benchmark_return": float(closes[-1] / closes[0] - 1.0),
        "risk_controls_triggered": len(result.risk_events),
    }
