"""Stored runs ranked side by side, and plain JSON values, without pandas.

Commands that only read the warehouse (``list-results``, ``compare``) use this and the metric
registry alone, so they start in a fraction of a second; ``core.metrics`` computes the figures and
``core.metric_registry`` says how each is shown.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, spec
from ntrader_pipeline.core.records import StoredResult

SORT_KEYS = {"sharpe": "sharpe_ratio", "return": "total_return", "drawdown": "max_drawdown"}
RUN_COLUMNS = ("strategy", "symbol", "run_id", "created_at", "start", "end")
RESULT_COLUMNS = (*RUN_COLUMNS, *HEADLINE_METRICS)


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


def ranked_results(results: list[StoredResult], sort: str = "sharpe") -> list[dict[str, Any]]:
    """One row per stored run: ``RESULT_COLUMNS``, the metrics in their types (counts int,
    undefined None), the times as ISO-8601 UTC.

    Best first: highest Sharpe or return, shallowest drawdown (the registry says which way is
    better); undefined values last, ties in the order given.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORT_KEYS)}")
    rows = [
        {
            "strategy": r.record.strategy,
            "symbol": r.record.symbol,
            "run_id": r.record.run_id,
            "created_at": plain_jsonable(r.record.created_at),
            "start": plain_jsonable(r.record.start),
            "end": plain_jsonable(r.record.end),
            **{name: r.metrics.get(name) for name in HEADLINE_METRICS},
        }
        for r in results
    ]
    key = SORT_KEYS[sort]
    defined = [row for row in rows if row[key] is not None]
    return sorted(defined, key=lambda row: row[key], reverse=spec(key).better == "higher") + [
        row for row in rows if row[key] is None
    ]
