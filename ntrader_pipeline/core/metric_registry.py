"""Every metric a run reports, in one table, and the one place that says how each is shown.

Each ``MetricSpec`` names a figure ``core.metrics.compute_metrics`` produces: its label, its unit,
whether it is a headline figure, whether sweeps may rank by it (and which way is better) and a
one-line definition (docs/conventions.md gives the full ones). Everything that shows a
metric reads its form from here, by unit:

- ``display``: what people read (CLI, ``report.txt``, HTML, the UI's tables and JSON metadata):
  a percent as ``383.95%``, a ratio to 4 decimals, money to the cent, a count as an integer,
  days to one decimal, undefined as ``n/a``;
- ``panel_label`` / ``panel_number``: the UI's metrics panel, which plots numbers across
  materializations: the same figures as numbers (``total_return %`` = 383.95);
- ``table_cell``: a cell of a UI table: the display text, a count as an int, undefined as None
  (a blank cell);
- ``machine``: JSON and CSV: counts as integers, money as exact decimal text to the cent, other
  figures to ``MACHINE_DECIMALS`` decimals, undefined as null (JSON) or an empty cell (CSV).

No pandas or numpy here: ``list-results`` starts without them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

Unit = Literal["percent", "money", "ratio", "count", "days", "timestamp", "text"]
Better = Literal["higher", "lower"]
MetricValue = int | float | str | None

# JSON and CSV: every figure but money and counts to this many decimals (a fraction to a millionth
# of a basis point), so no float noise is written; the warehouse keeps full precision.
MACHINE_DECIMALS = 10
CENT = Decimal("0.01")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str  # what a column header or a card says
    unit: Unit
    definition: str  # one line; docs/conventions.md has the rest
    headline: bool = False  # on every summary: list-results, compare, leaderboard, sweep and walk-forward tables
    panel: bool = False  # in the UI's metrics panel besides the headline figures
    better: Better | None = None  # rankable by sweeps and walk-forward, and which way is better

    @property
    def rankable(self) -> bool:
        return self.better is not None


def _m(name: str, label: str, unit: Unit, definition: str, **flags: Any) -> MetricSpec:
    return MetricSpec(name, label, unit, definition, **flags)


# Reports list metrics in this order (``Metrics.of`` puts them in it).
_OWN: tuple[MetricSpec, ...] = (
    _m("run_id", "run id", "text", "The run's id in the warehouse and the reports folder."),
    _m("strategy", "strategy", "text", "The strategy file's name (a sweep set's key, a walk-forward's name)."),
    _m("symbol", "symbol", "text", "The symbol traded."),
    _m("start", "first bar", "timestamp", "Close time of the first bar traded (ISO-8601 UTC)."),
    _m("end", "last bar", "timestamp", "Close time of the last bar traded (ISO-8601 UTC)."),
    _m("bars", "bars", "count", "Bars the run traded."),
    _m("daily_returns", "daily returns", "count", "Exchange days with a daily return (days with bars − 1)."),
    _m("starting_equity", "starting equity", "money", "Equity at the first bar."),
    _m("final_equity", "final equity", "money", "Mark-to-market equity at the last bar."),
    _m(
        "total_return",
        "total return",
        "percent",
        "Last equity / first equity − 1.",
        headline=True,
        better="higher",
    ),
    _m("cagr", "CAGR", "percent", "(1 + total return)^(252 / daily returns) − 1.", headline=True, better="higher"),
    _m("volatility", "volatility", "percent", "Sample std of daily returns × √252.", headline=True),
    _m(
        "risk_free_rate",
        "risk-free rate",
        "percent",
        "Annual rate Sharpe, Sortino, probabilistic Sharpe, Omega and alpha subtract (backtest.risk_free_rate_pct).",
    ),
    _m(
        "sharpe_ratio",
        "Sharpe",
        "ratio",
        "Mean / sample std of daily excess returns (r − daily risk-free rate) × √252.",
        headline=True,
        better="higher",
    ),
    _m(
        "sortino_ratio",
        "Sortino",
        "ratio",
        "Mean / √mean(min(x, 0)²) of daily excess returns x × √252.",
        headline=True,
        better="higher",
    ),
    _m(
        "probabilistic_sharpe_ratio",
        "probabilistic Sharpe",
        "percent",
        "P(true Sharpe > 0) given the daily Sharpe, its skew and kurtosis and the number of days (PSR).",
    ),
    _m(
        "omega_ratio",
        "Omega",
        "ratio",
        "Σ max(x, 0) / Σ max(−x, 0) of daily excess returns x: gains over losses around the risk-free rate.",
    ),
    _m("calmar_ratio", "Calmar", "ratio", "CAGR / |max drawdown|.", headline=True, better="higher"),
    _m(
        "max_drawdown",
        "max drawdown",
        "percent",
        "Deepest fall of bar-level equity from its running high (negative: higher is shallower).",
        headline=True,
        better="higher",
    ),
    _m("max_drawdown_peak", "drawdown peak", "timestamp", "The bar at the high before the deepest drawdown."),
    _m("max_drawdown_trough", "drawdown trough", "timestamp", "The bar at the bottom of the deepest drawdown."),
    _m(
        "max_drawdown_recovery",
        "drawdown recovery",
        "timestamp",
        "The first bar back at the high (undefined while still under water).",
    ),
    _m(
        "max_drawdown_duration_days",
        "drawdown days",
        "days",
        "Peak to recovery (or to the last bar) of the deepest drawdown.",
    ),
    _m(
        "max_drawdown_daily",
        "max drawdown (daily)",
        "percent",
        "NautilusTrader's MaxDrawdown of compounded daily returns.",
    ),
    _m(
        "skew", "skew", "ratio", "Sample skewness of daily returns (adjusted Fisher–Pearson, as pandas and quantstats)."
    ),
    _m(
        "kurtosis",
        "excess kurtosis",
        "ratio",
        "Sample excess kurtosis of daily returns (normal: 0; pandas' estimator).",
    ),
    _m(
        "value_at_risk",
        "VaR 95% (daily)",
        "percent",
        "Historical daily value at risk: the 5th percentile of daily returns (linear interpolation).",
    ),
    _m(
        "conditional_value_at_risk",
        "CVaR 95% (daily)",
        "percent",
        "Historical daily expected shortfall: the mean of the worst 5% of daily returns.",
    ),
    _m(
        "kelly_criterion",
        "Kelly criterion",
        "percent",
        "p − (1 − p) / b on daily returns: p = up days / days that moved, b = mean up day / |mean down day|.",
    ),
    _m("best_day", "best day", "percent", "Highest daily return."),
    _m("worst_day", "worst day", "percent", "Lowest daily return."),
    _m("best_month", "best month", "percent", "Highest compounded return of a calendar month (exchange time)."),
    _m("worst_month", "worst month", "percent", "Lowest compounded return of a calendar month (exchange time)."),
    _m("best_year", "best year", "percent", "Highest compounded return of a calendar year (exchange time)."),
    _m("worst_year", "worst year", "percent", "Lowest compounded return of a calendar year (exchange time)."),
    _m("trade_count", "trades", "count", "Round trips (a position open at the end is not one).", headline=True),
    _m("win_rate", "win rate", "percent", "Share of round trips with a positive PnL.", headline=True, better="higher"),
    _m(
        "profit_factor",
        "profit factor",
        "ratio",
        "Gross winning PnL / gross losing PnL.",
        headline=True,
        better="higher",
    ),
    _m("expectancy", "expectancy", "money", "Mean PnL per round trip, net of commissions."),
    _m("average_win", "average win", "money", "Mean PnL of winning round trips."),
    _m("average_loss", "average loss", "money", "Mean PnL of losing round trips."),
    _m("largest_win", "largest win", "money", "Largest PnL of a round trip."),
    _m("largest_loss", "largest loss", "money", "Smallest (most negative) PnL of a round trip."),
    _m("max_consecutive_wins", "most wins in a row", "count", "Longest run of round trips with a positive PnL."),
    _m("max_consecutive_losses", "most losses in a row", "count", "Longest run of round trips with a negative PnL."),
    _m("commissions", "commissions", "money", "Commissions paid."),
    _m("exposure", "exposure", "percent", "Share of bars with a position at the close.", headline=True),
    _m("risk_controls_triggered", "risk controls", "count", "Risk controls that fired and orders they refused."),
    _m("benchmark", "benchmark", "text", "What the run is measured against: buy and hold of this symbol."),
    _m("benchmark_return", "benchmark return", "percent", "The benchmark's last / first close − 1.", headline=True),
)

# The figures measured on the benchmark's buy and hold too (the tearsheet's benchmark column);
# ``total_return``'s counterpart is ``benchmark_return``, the others are ``benchmark_<name>``.
BENCHMARKED = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "probabilistic_sharpe_ratio",
    "omega_ratio",
    "calmar_ratio",
    "max_drawdown",
    "skew",
    "kurtosis",
    "value_at_risk",
    "conditional_value_at_risk",
    "kelly_criterion",
    "best_day",
    "worst_day",
    "best_month",
    "worst_month",
    "best_year",
    "worst_year",
)
BENCHMARK_OF: dict[str, str] = {
    name: "benchmark_return" if name == "total_return" else f"benchmark_{name}" for name in BENCHMARKED
}


def _benchmark_row(own: MetricSpec) -> MetricSpec:
    return MetricSpec(
        BENCHMARK_OF[own.name],
        f"benchmark {own.label}",
        own.unit,
        f"{own.label} of the benchmark's buy and hold over the run's span: {own.definition}",
    )


_OWN_BY_NAME = {m.name: m for m in _OWN}
_RELATIVE: tuple[MetricSpec, ...] = (
    _m(
        "alpha",
        "alpha",
        "percent",
        "(1 + mean((r − rf) − β·(b − rf)))^252 − 1 on the days both series have (rf: daily risk-free rate).",
        headline=True,
        better="higher",
    ),
    _m("beta", "beta", "ratio", "cov(r, b) / var(b) of daily returns.", headline=True),
    _m(
        "information_ratio",
        "information ratio",
        "ratio",
        "mean(r − b) / std(r − b) × √252.",
        headline=True,
        better="higher",
    ),
    _m(
        "tracking_error",
        "tracking error",
        "percent",
        "std(r − b) × √252: the annualised volatility of the daily active return, the IR's denominator.",
        headline=True,
    ),
    _m("correlation", "correlation", "ratio", "Pearson correlation of daily returns with the benchmark.", panel=True),
    _m(
        "up_capture",
        "up capture",
        "ratio",
        "Annualised return on the benchmark's up days / the benchmark's.",
        panel=True,
    ),
    _m(
        "down_capture",
        "down capture",
        "ratio",
        "Annualised return on the benchmark's down days / the benchmark's.",
        panel=True,
    ),
)
METRICS: tuple[MetricSpec, ...] = (
    *_OWN,
    *(_benchmark_row(_OWN_BY_NAME[name]) for name in BENCHMARKED if name != "total_return"),
    *_RELATIVE,
)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}
METRIC_NAMES = tuple(BY_NAME)
HEADLINE_METRICS = tuple(m.name for m in METRICS if m.headline)
PANEL_METRICS = tuple(m.name for m in METRICS if m.headline or m.panel)
RANKABLE_METRICS = tuple(m.name for m in METRICS if m.rankable)
# The headline figures a row per run has room for (backfill, list-results, the demo), in this order.
SUMMARY_METRICS = ("total_return", "cagr", "sharpe_ratio", "max_drawdown", "trade_count", "benchmark_return")


def spec(name: str) -> MetricSpec:
    """The row of ``name``; a figure the table does not know (a metric added without its row)
    reads as a ratio, and a test keeps every computed metric in the table."""
    return BY_NAME.get(name) or MetricSpec(name, name, "ratio", "")


def label(name: str) -> str:
    return spec(name).label


# --- values ----------------------------------------------------------------------------------


def _real(value: Any) -> float | None:
    """A finite float (-0.0 as 0.0), or None for undefined (None, NaN, ±inf)."""
    if value is None:
        return None
    number = float(value) + 0.0
    return number if math.isfinite(number) else None


def typed_value(name: str, value: Any) -> MetricValue:
    """``value`` in its unit's Python type: a count as int, a figure as float, a timestamp or text as
    str; undefined (None, NaN, ±inf) as None. Storage may hand counts back as floats."""
    if value is None:
        return None
    unit = spec(name).unit
    if unit in ("timestamp", "text"):
        return str(value)
    if isinstance(value, str):  # a figure stored as text by some earlier version: keep it readable
        return value
    number = _real(value)
    if number is None:
        return None
    if unit == "count" or (name not in BY_NAME and isinstance(value, int) and not isinstance(value, bool)):
        return int(number)
    return number


class Metrics(dict[str, MetricValue]):
    """A run's metrics by name, in the table's order and types: counts are ``int``, figures
    ``float``, timestamps ISO-8601 ``str``, undefined ``None``; figures the table does not know
    follow in the order given. What ``compute_metrics`` returns and what the warehouse gives back,
    so a count stays an integer through storage."""

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Metrics:
        names = [n for n in METRIC_NAMES if n in values] + [n for n in values if n not in BY_NAME]
        return cls((name, typed_value(name, values[name])) for name in names)


# --- how each surface shows a value ----------------------------------------------------------


def display(name: str, value: Any) -> str:
    """What people read: ``383.95%``, ``0.4116``, ``1,234.56``, ``97``, ``123.4`` (days), the text
    itself, ``n/a`` where undefined."""
    value = typed_value(name, value)
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    unit = spec(name).unit
    if unit == "percent":
        return f"{value:.2%}"
    if unit == "money":
        return f"{value:,.2f}"
    if unit == "count":
        return str(int(value))
    if unit == "days":
        return f"{value:,.1f}"
    return f"{value:,.4f}"


def panel_label(name: str) -> str:
    """The metrics panel's label: percents say so (``total_return %``), since it shows numbers."""
    return f"{name} %" if spec(name).unit == "percent" else name


def panel_number(name: str, value: Any) -> int | float | None:
    """The metrics panel's number in ``display``'s units: 383.95 (percent), 0.4116, 97."""
    value = typed_value(name, value)
    if value is None or isinstance(value, str):
        return None
    unit = spec(name).unit
    if unit == "count":
        return int(value)
    if unit == "percent":
        return round(value * 100, 2)
    if unit in ("money", "days"):
        return round(value, 2)
    return round(value, 4)


def table_cell(name: str, value: Any) -> int | str | None:
    """A cell of a UI table: a count as an int, anything else as its ``display`` text, None (a
    blank cell) where undefined. Dagster shows a number's full float, so figures go as text."""
    value = typed_value(name, value)
    if value is None:
        return None
    if spec(name).unit == "count" and isinstance(value, int):
        return value
    return display(name, value)


def table_column_type(name: str) -> str:
    """The ``TableColumn`` type of ``table_cell``'s values."""
    return "int" if spec(name).unit == "count" else "string"


def money_text(value: float) -> str:
    """An amount of money as exact decimal text to the cent, half up: ``"483947.24"``."""
    return format(Decimal(repr(float(value))).quantize(CENT, rounding=ROUND_HALF_UP), "f")


def machine(name: str, value: Any) -> MetricValue:
    """JSON and CSV: counts as int, money as cent text, other figures to ``MACHINE_DECIMALS``
    decimals, timestamps and text as they are, undefined as None."""
    value = typed_value(name, value)
    if value is None or isinstance(value, str | int):
        return value
    if spec(name).unit == "money":
        return money_text(value)
    return round(value, MACHINE_DECIMALS) + 0.0  # + 0.0: a tiny negative rounds to 0.0, not -0.0


def machine_metrics(values: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, MetricValue]:
    """``machine`` of each metric in ``values`` (or of ``names``, undefined where missing)."""
    return {name: machine(name, values.get(name)) for name in (values if names is None else names)}
