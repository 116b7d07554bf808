"""What a finished run did, in lines a person reads at the end of a command: its headline figures
beside the benchmark's, and each risk control that fired with how long the strategy was flat after
it (a drawdown halt in 2000 leaves it flat for the rest of the run, which the total return alone
does not say).

No pandas here: the CLI prints these from what the warehouse hands back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ntrader_pipeline.core.metric_registry import BENCHMARK_OF, HEADLINE_METRICS, display, label
from ntrader_pipeline.core.records import RunRecord, utc

# Controls after which the strategy holds nothing: the drawdown halt closes and stops; the strategy's
# own refusals of an entry (too large, or more than the cash) leave it flat until its next entry.
LEAVES_FLAT = {"max_drawdown_pct", "max_notional_per_order", "cash"}
RISK_LINES_SHOWN = 5


def headline_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(label, strategy, benchmark) of every headline figure; the benchmark's own figure where it
    has one (its total return is the benchmark column of the total return)."""
    rows = []
    for name in HEADLINE_METRICS:
        if name == "benchmark_return":
            continue
        twin = BENCHMARK_OF.get(name)
        bench = display(twin, metrics[twin]) if twin is not None and twin in metrics else ""
        rows.append((label(name), display(name, metrics.get(name)), bench))
    return rows


def summary_line(metrics: Mapping[str, Any]) -> str:
    """``run ID: STRATEGY on SYMBOL, FIRST → LAST, total return X, N trades``."""
    first, last = (str(metrics.get(k) or "")[:10] for k in ("start", "end"))
    return (
        f"run {metrics['run_id']}: {metrics.get('strategy')} on {metrics.get('symbol')}, {first} → {last}, "
        f"total return {display('total_return', metrics.get('total_return'))}, "
        f"{display('trade_count', metrics.get('trade_count'))} trades"
    )


def _span(start: datetime, end: datetime) -> str:
    days = (end - start).total_seconds() / 86400
    return f"{days / 365.25:.1f} years" if days >= 365.25 else f"{days:.0f} days"


def risk_lines(record: RunRecord, entries: Iterable[datetime | str], shown: int = RISK_LINES_SHOWN) -> list[str]:
    """One line per risk control that fired (the first ``shown``, then a count): when, which
    control, what it did, and for a halt or a refused entry how long the strategy then stayed flat
    (until its next entry or the last bar) and what share of the run that is."""
    opened = sorted(t for t in (utc(e) for e in entries) if t is not None)
    start, end = record.start, record.end
    lines = []
    for event in record.risk_events[:shown]:
        at = utc(event["time"])
        line = f"risk control {event['control']} at {at:%Y-%m-%d %H:%M} UTC: {event['action']}; {event['detail']}"
        if event["control"] in LEAVES_FLAT and at is not None and end is not None and start is not None:
            following = next((t for t in opened if t > at), None)
            until = following or end
            whole = (end - start).total_seconds()
            share = (until - at).total_seconds() / whole if whole > 0 else 0.0
            what = "its next entry" if following else "the last bar"
            line += f"; then flat until {what} ({until:%Y-%m-%d}): {_span(at, until)}, {share:.0%} of the run"
        lines.append(line)
    hidden = len(record.risk_events) - shown
    if hidden > 0:
        lines.append(f"(and {hidden} more risk events: `ntrader report summary {record.run_id}` lists them all)")
    return lines


def parameter_columns(name: str) -> tuple[str, str]:
    """A sweep set's strategy name split into the file's name and its parameters, spaced so a
    narrow table wraps between them (``sma[fast_period=10,slow_period=30]`` → ``sma``,
    ``fast_period=10, slow_period=30``); any other name and ``""``."""
    base, bracket, rest = name.partition("[")
    if not bracket or not rest.endswith("]"):
        return name, ""
    return base, ", ".join(rest[:-1].split(","))
