"""How stored metrics read: their names, their formats and the ranking of runs, without pandas.

Commands that only read the warehouse (``list-results``, ``compare``) use this alone, so they start
in a fraction of a second; ``core.metrics`` computes the figures these functions show.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# The headline figures every surface shows (UI metadata, leaderboard, list-results, compare).
KEY_METRICS = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "trade_count",
    "exposure",
    "benchmark_return",
    "alpha",
    "beta",
    "information_ratio",
)

# What may rank a sweep's sets (``metric:`` of ``sweep:``/``walk_forward:``, ``--metric``): figures every
# set has where "higher is better" holds (drawdowns are negative, so the shallowest ranks first).
# Volatility, exposure, beta or a trade count rank nothing, and the benchmark's return is every set's.
RANKABLE_METRICS = (
    "total_return",
    "cagr",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "profit_factor",
    "win_rate",
    "alpha",
    "information_ratio",
)

# Counts: the warehouse stores every number as a float, so these are made integers again on the way out.
INTEGER_METRICS = {"bars", "daily_returns", "trade_count", "risk_controls_triggered"}

SORT_KEYS = {"sharpe": "sharpe_ratio", "return": "total_return", "drawdown": "max_drawdown"}
RESULT_COLUMNS = ("strategy", "symbol", "run_id", "created_at", "start", "end", *KEY_METRICS)

PERCENT = {
    "total_return",
    "cagr",
    "volatility",
    "max_drawdown",
    "max_drawdown_daily",
    "win_rate",
    "exposure",
    "benchmark_return",
    "alpha",
}
# Amounts of money: shown to the cent.
MONEY = {
    "starting_equity",
    "final_equity",
    "expectancy",
    "average_win",
    "average_loss",
    "largest_win",
    "largest_loss",
    "commissions",
}


def format_metric(name: str, value: Any) -> str:
    """How a metric reads on screen: percentages for fractions, money to the cent, other ratios to
    4 decimals, "n/a" where undefined."""
    if value is None:
        return "n/a"
    if name in PERCENT and isinstance(value, float):
        return f"{value:.2%}"
    if name in MONEY and isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return str(value)


def decimal_text(value: Decimal) -> str:
    """The exact value in plain notation without trailing zeros (``Decimal('1E+2')`` → ``"100"``,
    ``Decimal('2.50')`` → ``"2.5"``): the same text whether the Decimal was just computed or read back
    from the warehouse, which normalizes."""
    return format(value.normalize(), "f")


def plain_jsonable(value: Any) -> Any:
    """Python values as JSON takes them: Decimals as exact strings, datetimes as ISO-8601 UTC, NaN as null."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_jsonable(v) for v in value]
    return value


def ranked_results(results: list[dict[str, Any]], sort: str = "sharpe") -> list[dict[str, Any]]:
    """One row per stored run (as ``Warehouse.list_results`` gives them) with the key metrics.

    Best first: highest Sharpe or return, shallowest drawdown; undefined values last, ties in the
    order given.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORT_KEYS)}")
    rows = [
        {
            "strategy": r["strategy"],
            "symbol": r["symbol"],
            "run_id": r["run_id"],
            "created_at": plain_jsonable(r["created_at"]),
            "start": plain_jsonable(r["start"]),
            "end": plain_jsonable(r["end"]),
            **{name: _number(name, r["metrics"].get(name)) for name in KEY_METRICS},
        }
        for r in results
    ]
    key = SORT_KEYS[sort]
    defined = [row for row in rows if row[key] is not None]
    return sorted(defined, key=lambda row: row[key], reverse=True) + [row for row in rows if row[key] is None]


def _number(name: str, value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if name in INTEGER_METRICS and value is not None:
        return int(value)
    return value
