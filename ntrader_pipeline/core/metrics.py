"""Performance metrics from mark-to-market equity and the trade ledger.

Definitions (also in docs/conventions.md):
- equity: mark-to-market account equity at every bar (cash + position × bar close, net of
  commissions);
- daily returns: percent change of the last equity of each exchange trading day;
- excess returns x = r − rf, rf the daily risk-free rate (1 + annual)^(1/252) − 1 from the
  strategy file's ``backtest.risk_free_rate_pct`` (default 0, so x = r exactly);
- Sharpe = mean(x) / std(x, ddof=1) × √252; Sortino = mean(x) / √mean(min(x, 0)²) × √252;
  volatility = std(r, ddof=1) × √252. These three are computed by NautilusTrader's
  ``SharpeRatio``, ``SortinoRatio`` and ``ReturnsVolatility`` fed with our daily (excess)
  returns, so they cannot drift from the engine's own statistics;
- the shape of the daily returns (``return_figures``): skew and excess kurtosis (pandas'
  adjusted estimators, as quantstats), historical 95 % VaR and CVaR (empyrical's), Omega around
  the risk-free rate, the probabilistic Sharpe ratio (PSR against 0, with that skew and kurtosis),
  the Kelly criterion (quantstats' p − q/b), and the best and worst day, month and year;
- the benchmark's buy and hold gets the same figures (``benchmark_<name>``);
- total return = last equity / first equity − 1; CAGR = (1 + total)^(252 / n daily returns) − 1;
- max drawdown = min(equity / running max − 1) over *bar-level* equity; Calmar = CAGR / |max DD|.
- against the benchmark (buy and hold of the run's symbol, or the file's ``benchmark:`` symbol),
  on the exchange days both have: beta = cov / var; alpha = (1 + mean(x − β·(b − rf)))^252 − 1;
  information ratio = mean(r − b) / std(r − b, ddof=1) × √252; tracking error = std(r − b, ddof=1)
  × √252 (the IR's denominator, annualised as the IR is); correlation (Pearson); up and
  down capture = annualised return of the strategy on the benchmark's up (down) days / the
  benchmark's annualised return on those days (empyrical's definitions).
  NautilusTrader's ``MaxDrawdown`` compounds daily returns instead; on daily bars the two agree,
  on intraday bars ours also sees troughs inside a day. Its figure is kept as
  ``max_drawdown_daily``.
A ratio that is undefined (no variance, no losses, no trades…) is None, never 0 or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.metric_registry import BENCHMARK_OF, Metrics
from ntrader_pipeline.core.overfitting import probabilistic_sharpe_ratio

if TYPE_CHECKING:  # the statistics import NautilusTrader: only where metrics are computed
    from ntrader_pipeline.core.backtest import BacktestResult

TRADING_DAYS = 252
EXCHANGE_TZ = "America/New_York"


def exchange_zone(versions: Mapping[str, Any] | None) -> str:
    """The time zone a run's days and months are counted in: its calendar's (stored in its versions;
    runs from before calendars were per series are XNYS, New York)."""
    from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR, calendar_timezone

    return calendar_timezone((versions or {}).get("calendar", DEFAULT_CALENDAR))


def iso(ns: int | None) -> str | None:
    return None if ns is None else pd.Timestamp(int(ns), tz="UTC").isoformat()


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Equity / running maximum − 1 at every point: 0 at a new high, negative below it."""
    return equity / np.maximum.accumulate(equity) - 1.0


def equity_curve(result: BacktestResult) -> pd.DataFrame:
    """timestamp (UTC), equity and drawdown (a negative fraction) at every bar."""
    return _curve_frame(result.equity["ts_event"], result.equity["equity"])


def daily_returns(curve: pd.DataFrame, zone: str = EXCHANGE_TZ) -> pd.Series:
    """Percent change of each trading day's last equity, indexed by that day's last bar time;
    days are dates in ``zone``, the series' exchange time (``core.calendar.calendar_timezone``)."""
    # The local day as datetime64[D], not as a date object per bar: minute curves have 100ks of bars.
    day = curve["timestamp"].dt.tz_convert(zone).dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    last = curve.groupby(day, sort=True).tail(1)
    index = pd.DatetimeIndex(last["timestamp"])
    return pd.Series(last["equity"].to_numpy(), index=index).pct_change().iloc[1:]


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _unsigned_zero(value: float | None) -> float | None:
    """``-0.0`` as ``0.0`` (a drawdown of nothing prints as 0)."""
    return None if value is None else value + 0.0


def nautilus_returns(returns: pd.Series) -> dict[int, float]:
    """The ``{ts_ns: r}`` mapping NautilusTrader's statistics take."""
    return {int(ts.value): float(r) for ts, r in returns.items()}


def risk_free_rate(spec: Mapping[str, Any] | None) -> float:
    """The annual risk-free rate (a fraction) of a run's stored spec: ``backtest.risk_free_rate_pct``
    / 100, 0 when the spec has none (runs stored before the setting existed)."""
    percent = ((spec or {}).get("backtest") or {}).get("risk_free_rate_pct") or 0
    return float(percent) / 100.0


def daily_rate(annual: float) -> float:
    """The daily rate that compounds to ``annual`` over 252 sessions (quantstats' de-annualising);
    exactly 0.0 for 0."""
    return (1.0 + annual) ** (1.0 / TRADING_DAYS) - 1.0


def return_ratios(returns: pd.Series, rf: float = 0.0) -> dict[str, float | None]:
    """Volatility, Sharpe and Sortino by NautilusTrader (the ratios of the excess returns r − ``rf``,
    a daily rate); NaN (undefined) becomes None."""
    from nautilus_trader.analysis import ReturnsVolatility, SharpeRatio, SortinoRatio

    by_ns = nautilus_returns(returns)
    excess = by_ns if rf == 0 else nautilus_returns(returns - rf)
    return {
        "volatility": _finite(ReturnsVolatility().calculate_from_returns(by_ns)) if len(by_ns) > 1 else None,
        "sharpe_ratio": _finite(SharpeRatio().calculate_from_returns(excess)),
        "sortino_ratio": _finite(SortinoRatio().calculate_from_returns(excess)),
    }


def _moment(series: pd.Series, which: str) -> float | None:
    value = getattr(series, which)()  # pandas: NaN below 3 (skew) or 4 (kurtosis) values
    return _finite(float(value)) if value is not None else None


def value_at_risk(r: np.ndarray, cutoff: float = 0.05) -> float | None:
    """Historical VaR: the ``cutoff`` percentile of the returns (numpy's linear interpolation)."""
    return float(np.percentile(r, 100 * cutoff)) if len(r) else None


def conditional_value_at_risk(r: np.ndarray, cutoff: float = 0.05) -> float | None:
    """Historical CVaR: the mean of the ``int((n − 1) · cutoff) + 1`` lowest returns (empyrical's cut)."""
    if not len(r):
        return None
    index = int((len(r) - 1) * cutoff)
    return float(np.mean(np.partition(r, index)[: index + 1]))


def omega_ratio(r: np.ndarray, rf: float = 0.0) -> float | None:
    """Σ gains over Σ losses of the returns around ``rf`` (daily); undefined without a loss."""
    excess = r - rf
    losses = -excess[excess < 0].sum()
    return _finite(float(excess[excess > 0].sum() / losses)) if len(r) > 1 and losses > 0 else None


def kelly_criterion(r: np.ndarray) -> float | None:
    """p − (1 − p) / b: p the share of up days among days that moved, b the mean up day over the
    mean down day's size (quantstats' fixed-odds fraction); undefined without up and down days."""
    ups, downs = r[r > 0], r[r < 0]
    if not len(ups) or not len(downs):
        return None
    p = len(ups) / (len(ups) + len(downs))
    b = float(ups.mean() / -downs.mean())
    return _finite((b * p - (1.0 - p)) / b)


def period_returns(returns: pd.Series, period: str, zone: str = EXCHANGE_TZ) -> pd.Series:
    """Compounded returns per calendar ``"month"`` or ``"year"`` in exchange time (``zone``), in time order."""
    local = pd.DatetimeIndex(returns.index).tz_convert(zone)
    keys = [local.year] if period == "year" else [local.year, local.month]
    grown = pd.Series(1.0 + returns.to_numpy(dtype=np.float64), index=returns.index)
    return grown.groupby(keys).prod() - 1.0


def probabilistic_sharpe(returns: pd.Series, rf: float = 0.0) -> float | None:
    """P(true Sharpe > 0) from the daily Sharpe ratio of the excess returns, with the skew and
    kurtosis ``return_figures`` reports (Bailey & López de Prado 2012)."""
    excess = returns.to_numpy(dtype=np.float64) - rf
    if len(excess) < 4 or not excess.std(ddof=1) > 0:
        return None
    skew, kurtosis = _moment(returns, "skew"), _moment(returns, "kurtosis")
    if skew is None or kurtosis is None:
        return None
    sharpe = float(excess.mean() / excess.std(ddof=1))
    return _finite(probabilistic_sharpe_ratio(sharpe, 0.0, len(excess), skew, kurtosis + 3.0))


def return_figures(curve: pd.DataFrame, returns: pd.Series, rf: float = 0.0, zone: str = EXCHANGE_TZ) -> dict[str, Any]:
    """The figures of one equity curve and its daily returns that a benchmark has too (the
    registry's ``BENCHMARKED``, besides the drawdown's times): ``rf`` is the daily risk-free rate."""
    equity = curve["equity"].to_numpy(dtype=np.float64)
    r = returns.to_numpy(dtype=np.float64)
    total = float(equity[-1] / equity[0] - 1.0)
    cagr = _finite((1.0 + total) ** (TRADING_DAYS / len(r)) - 1.0) if len(r) else None
    drawdowns = drawdown_stats(curve)
    mdd = drawdowns["max_drawdown"]
    months, years = period_returns(returns, "month", zone), period_returns(returns, "year", zone)
    return {
        "total_return": total,
        "cagr": cagr,
        **return_ratios(returns, rf),
        "probabilistic_sharpe_ratio": probabilistic_sharpe(returns, rf),
        "omega_ratio": omega_ratio(r, rf),
        "calmar_ratio": _finite(cagr / abs(mdd)) if cagr is not None and mdd < 0 else None,
        **drawdowns,
        "skew": _moment(returns, "skew"),
        "kurtosis": _moment(returns, "kurtosis"),
        "value_at_risk": value_at_risk(r),
        "conditional_value_at_risk": conditional_value_at_risk(r),
        "kelly_criterion": kelly_criterion(r),
        "best_day": float(r.max()) if len(r) else None,
        "worst_day": float(r.min()) if len(r) else None,
        "best_month": float(months.max()) if len(months) else None,
        "worst_month": float(months.min()) if len(months) else None,
        "best_year": float(years.max()) if len(years) else None,
        "worst_year": float(years.min()) if len(years) else None,
    }


def max_streak(flags: np.ndarray) -> int:
    """The longest run of consecutive True values."""
    longest = current = 0
    for flag in flags.tolist():
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def drawdown_stats(curve: pd.DataFrame) -> dict[str, Any]:
    """The deepest bar-level drawdown: depth, peak, trough, recovery (None if never) and duration."""
    equity = curve["equity"].to_numpy(dtype=np.float64)
    times = curve["timestamp"]
    depth = curve["drawdown"].to_numpy()
    trough = int(np.argmin(depth))
    if depth[trough] >= 0:
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
        "max_drawdown": float(depth[trough]),
        "max_drawdown_peak": times.iloc[peak].isoformat(),
        "max_drawdown_trough": times.iloc[trough].isoformat(),
        "max_drawdown_recovery": times.iloc[recovery].isoformat() if recovery is not None else None,
        # peak to recovery, or peak to the last bar while still under water
        "max_drawdown_duration_days": (until - times.iloc[peak]).total_seconds() / 86400,
    }


def trade_stats(ledger: pd.DataFrame) -> dict[str, Any]:
    """Round-trip statistics on realized PnL net of commissions."""
    closed = ledger.sort_values("exit_time", kind="stable") if len(ledger) else ledger
    pnl = closed["realized_pnl"].astype(float).to_numpy() if len(ledger) else np.array([])
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
        "max_consecutive_wins": max_streak(pnl > 0),  # in the order the round trips closed
        "max_consecutive_losses": max_streak(pnl < 0),
    }


@dataclass(frozen=True)
class Benchmark:
    """What a run is measured against: a symbol and its closes (``ts_event`` ns UTC, ``close``)."""

    symbol: str
    closes: pd.DataFrame


def own_benchmark(result: BacktestResult) -> Benchmark:
    """Buy and hold of the run's own symbol over the run's bars."""
    return Benchmark(result.symbol, result.equity[["ts_event", "close"]])


def benchmark_for(result: BacktestResult, read_closes: Callable[[str], pd.DataFrame | None]) -> Benchmark:
    """The spec's ``benchmark:`` symbol (closes from ``read_closes``, cut to the run's span), or the
    run's own symbol. A benchmark without bars in that span is an error, never silently replaced."""
    symbol = (result.spec or {}).get("benchmark")
    if not symbol or symbol == result.symbol:
        return own_benchmark(result)
    closes = read_closes(symbol)
    if closes is not None:
        ts = closes["ts_event"].to_numpy(dtype=np.int64)
        closes = closes[(ts >= result.start_ns) & (ts <= result.end_ns)]
    if closes is None or len(closes) < 2:
        raise ValueError(f"benchmark {symbol}: no stored bars of that interval between the run's first and last bar")
    return Benchmark(symbol, closes[["ts_event", "close"]].reset_index(drop=True))


def benchmark_curve(benchmark: Benchmark) -> pd.DataFrame:
    """The benchmark's buy and hold as an equity curve: its closes, with their drawdown."""
    return _curve_frame(benchmark.closes["ts_event"], benchmark.closes["close"])


def _curve_frame(ts_event: pd.Series, values: pd.Series) -> pd.DataFrame:
    equity = values.to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {"timestamp": pd.to_datetime(ts_event, utc=True), "equity": equity, "drawdown": drawdown(equity)}
    )


def _by_exchange_day(returns: pd.Series, zone: str = EXCHANGE_TZ) -> pd.Series:
    return pd.Series(returns.to_numpy(), index=returns.index.tz_convert(zone).date)


def _annual_return(returns: np.ndarray) -> float:
    return float(np.prod(1.0 + returns) ** (TRADING_DAYS / len(returns)) - 1.0) if len(returns) else math.nan


def relative_figures(
    returns: pd.Series, benchmark_returns: pd.Series, rf: float = 0.0, zone: str = EXCHANGE_TZ
) -> dict[str, float | None]:
    """Alpha, beta, information ratio, tracking error, correlation and capture ratios on the days (in ``zone``) both
    series have; ``rf`` (daily) enters alpha only."""
    days = [_by_exchange_day(returns, zone), _by_exchange_day(benchmark_returns, zone)]
    both = pd.concat(days, axis=1, join="inner").dropna()
    r, b = both.iloc[:, 0].to_numpy(dtype=np.float64), both.iloc[:, 1].to_numpy(dtype=np.float64)
    out: dict[str, float | None] = dict.fromkeys(
        ("alpha", "beta", "information_ratio", "tracking_error", "correlation", "up_capture", "down_capture")
    )
    if len(r) < 2:
        return out
    b_var = float(np.mean((b - b.mean()) ** 2))
    if b_var > 0:
        beta = float(np.mean((b - b.mean()) * (r - r.mean())) / b_var)
        out["beta"] = beta
        excess = r - beta * b if rf == 0 else (r - rf) - beta * (b - rf)
        out["alpha"] = _finite((1.0 + float(np.mean(excess))) ** TRADING_DAYS - 1.0)
        if r.std() > 0:
            out["correlation"] = _finite(float(np.corrcoef(r, b)[0, 1]))
    active = r - b
    tracking = float(active.std(ddof=1))
    out["tracking_error"] = _finite(tracking * math.sqrt(TRADING_DAYS))  # 0 when it tracks exactly
    if tracking > 0:
        out["information_ratio"] = _finite(active.mean() / tracking * math.sqrt(TRADING_DAYS))
    for name, days in (("up_capture", b > 0), ("down_capture", b < 0)):
        bench = _annual_return(b[days])
        if days.any() and bench != 0:
            out[name] = _finite(_annual_return(r[days]) / bench)
    return out


def compute_metrics(result: BacktestResult, ledger: pd.DataFrame, benchmark: Benchmark | None = None) -> Metrics:
    """Every figure of one backtest (``core.metric_registry`` lists them), JSON-ready: floats,
    counts as ints, ISO strings, None where undefined.

    ``benchmark``: what to measure against (default: buy and hold of the run's own symbol).
    """
    from nautilus_trader.analysis import MaxDrawdown

    zone = exchange_zone(result.versions)  # days and months in exchange time
    benchmark = benchmark or own_benchmark(result)
    bench_curve = benchmark_curve(benchmark)
    curve = equity_curve(result)
    equity = curve["equity"].to_numpy()
    returns = daily_returns(curve, zone)
    bench_returns = daily_returns(bench_curve, zone)
    annual_rf = risk_free_rate(result.spec)
    rf = daily_rate(annual_rf)
    bench_figures = return_figures(bench_curve, bench_returns, rf, zone)
    commissions = sum(result.fills["commission"], Decimal(0))
    values = {
        "run_id": result.run_id,
        "strategy": result.strategy,
        "symbol": result.symbol,
        "start": iso(result.start_ns),
        "end": iso(result.end_ns),
        "bars": result.bar_count,
        "daily_returns": len(returns),
        "starting_equity": float(equity[0]),
        "final_equity": float(equity[-1]),
        "risk_free_rate": annual_rf,
        **return_figures(curve, returns, rf, zone),
        "max_drawdown_daily": _finite(_unsigned_zero(MaxDrawdown().calculate_from_returns(nautilus_returns(returns))))
        if len(returns)
        else None,
        **trade_stats(ledger),
        "commissions": float(commissions),
        "exposure": float(np.mean(result.equity["position"].to_numpy() != 0)),
        "risk_controls_triggered": len(result.risk_events),
        "benchmark": benchmark.symbol,
        **{BENCHMARK_OF[name]: bench_figures[name] for name in BENCHMARK_OF},
        **relative_figures(returns, bench_returns, rf, zone),
    }
    return Metrics.of(values)


# --- comparing runs -------------------------------------------------------------------------


def metric_differences(stored: dict[str, Any], fresh: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, stored, fresh) for every metric that is not identical; the run id is not a metric."""
    names = [n for n in dict.fromkeys([*stored, *fresh]) if n != "run_id"]
    return [(n, stored.get(n), fresh.get(n)) for n in names if stored.get(n) != fresh.get(n)]
