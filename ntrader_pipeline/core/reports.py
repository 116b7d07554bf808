"""Reports of one backtest run: text (Rich-rendered), trades CSV, equity CSV, daily returns CSV,
metrics JSON, HTML.

Prices keep their exact decimals in CSV and JSON (Decimals are written as their exact text, never
in exponent form), timestamps are ISO-8601 UTC, and undefined metrics are written as null / "n/a",
never as 0. Every file is written next to its final name and renamed into place, so a failed write
leaves no half-written report behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from ntrader_pipeline.core.metric_display import decimal_text, plain_jsonable
from ntrader_pipeline.core.metric_registry import BY_NAME, MACHINE_DECIMALS, display, machine, money_text
from ntrader_pipeline.core.metrics import EXCHANGE_TZ, Benchmark, daily_returns, exchange_zone, relative_figures
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.tearsheet import tearsheet_html

REPORT_FILES = {
    "text": "report.txt",
    "trades": "trades.csv",
    "equity": "equity.csv",
    "returns": "returns.csv",
    "json": "metrics.json",
    "html": "tearsheet.html",
}
HEADER_METRICS = {"run_id", "strategy", "symbol", "start", "end"}
REPORT_WIDTH = 132


class ReportWriteError(OSError):
    """A report file could not be written; the message names the file and the reason."""


def to_jsonable(value: Any) -> Any:
    """Decimals as exact strings, timestamps as ISO-8601 UTC, NaN as null; numpy and pandas scalars too."""
    if value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return (value.tz_convert("UTC") if value.tzinfo else value.tz_localize("UTC")).isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return plain_jsonable(float(value))
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return plain_jsonable(value)


def render_text(record: RunRecord, metrics: Mapping[str, Any], ledger: pd.DataFrame) -> str:
    """The human report, as Rich renders it on a ``REPORT_WIDTH``-column terminal: wide enough for
    two full ISO-8601 timestamps and four exact decimals per trade row."""
    # markup off: a name such as "sma[fast_period=10]" is text, not a Rich style tag; Jupyter off: in a
    # notebook's kernel Rich would otherwise display every report it renders as the cell's output
    console = Console(
        record=True,
        width=REPORT_WIDTH,
        file=io.StringIO(),
        color_system=None,
        markup=False,
        force_jupyter=False,
    )
    console.print(f"Backtest {record.run_id}: {record.strategy} on {record.symbol}")
    console.print(
        f"Bars {record.bar_type}  {metrics['start']} → {metrics['end']}  ({display('bars', metrics['bars'])} bars)",
        soft_wrap=True,
    )
    table = Table(title="Metrics", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        if name not in HEADER_METRICS:
            table.add_row(name, display(name, value))
    console.print(table)
    for event in record.risk_events:
        console.print(f"Risk control {event['control']} at {event['time']}: {event['action']}; {event['detail']}")
    trades = Table(title=f"Trades ({len(ledger)})", show_header=True)
    for column in ("side", "entry_time", "exit_time", "entry_price", "exit_price", "quantity", "realized_pnl"):
        trades.add_column(column, justify="right", no_wrap=True)  # never cut a timestamp or a price
    for row in ledger.tail(20).itertuples(index=False):
        trades.add_row(
            row.side,
            row.entry_time.isoformat(),
            row.exit_time.isoformat(),
            decimal_text(row.entry_price),
            decimal_text(row.exit_price),
            decimal_text(row.quantity),
            f"{row.realized_pnl:.2f}",
        )
    console.print(trades)
    if len(ledger) > 20:
        console.print(f"(last 20 of {len(ledger)} trades; all are in trades.csv)")
    if not len(ledger):
        console.print("No round trips: trade statistics are n/a.")
    return console.export_text()


def trades_csv(ledger: pd.DataFrame) -> str:
    """The ledger with exact decimals and ISO-8601 UTC times (header only when there are no trades)."""
    out = ledger.copy()
    for column in out.columns:
        out[column] = out[column].map(lambda v: to_jsonable(v) if not isinstance(v, float) else v)
    return out.to_csv(index=False)


def equity_csv(curve: pd.DataFrame) -> str:
    """``timestamp,equity,drawdown``: one row per bar, ISO-8601 UTC, equity to the cent,
    drawdown (a fraction) to ``MACHINE_DECIMALS`` decimals, as metrics are. Column-wise: a
    one-minute backtest has hundreds of thousands of rows, and the same text cell by cell took seconds."""
    drawdowns = curve["drawdown"].to_numpy(dtype=np.float64).tolist()
    out = pd.DataFrame(
        {
            "timestamp": iso_utc(curve["timestamp"]),
            "equity": money_texts(curve["equity"].to_numpy(dtype=np.float64)),
            "drawdown": [round(v, MACHINE_DECIMALS) + 0.0 for v in drawdowns],
        }
    )
    return out.to_csv(index=False)


def benchmark_returns(benchmark: Benchmark, zone: str = EXCHANGE_TZ) -> pd.Series:
    """The benchmark's daily returns as ``compute_metrics`` measures them: its closes taken as an
    equity curve, by exchange day."""
    closes = benchmark.closes
    curve = pd.DataFrame(
        {"timestamp": pd.to_datetime(closes["ts_event"], utc=True), "equity": closes["close"].to_numpy(np.float64)}
    )
    return daily_returns(curve, zone)


def by_session(returns: pd.Series, zone: str = EXCHANGE_TZ) -> pd.Series:
    """Daily returns indexed by their exchange session date (midnight, no time zone)."""
    days = returns.index.tz_convert(zone).tz_localize(None).normalize()
    return pd.Series(returns.to_numpy(dtype=np.float64), index=days)


def returns_table(curve: pd.DataFrame, benchmark: Benchmark | None, zone: str = EXCHANGE_TZ) -> pd.DataFrame:
    """Daily returns of the strategy and of its benchmark, one row per exchange session: a ``date``
    index and the columns ``strategy`` and ``benchmark``, the shape quantstats, pyfolio and
    empyrical take.

    The same returns the metrics were computed from (the change of each session's last equity, and
    of the benchmark's last close); a session one series has and the other lacks is NaN in the
    other, and without a benchmark its column is all NaN.
    """
    strategy = by_session(daily_returns(curve, zone), zone)
    bench = (
        by_session(benchmark_returns(benchmark, zone), zone) if benchmark is not None else pd.Series(dtype=np.float64)
    )
    table = pd.concat({"strategy": strategy, "benchmark": bench}, axis=1).sort_index().astype(np.float64)
    table.index = pd.DatetimeIndex(table.index, name="date")
    return table


def returns_csv(table: pd.DataFrame) -> str:
    """``date,strategy,benchmark``: the session date, then each return as the shortest text that
    reads back as the same float (figures recomputed from the file equal the run's), empty where
    undefined."""
    lines = ["date,strategy,benchmark"]
    days = table.index.strftime("%Y-%m-%d").tolist()
    columns = (table["strategy"].tolist(), table["benchmark"].tolist())
    for day, strategy, bench in zip(days, *columns, strict=True):
        lines.append(f"{day},{_float_text(strategy)},{_float_text(bench)}")
    return "\n".join(lines) + "\n"


def _float_text(value: float) -> str:
    return repr(value + 0.0) if math.isfinite(value) else ""  # + 0.0: -0.0 reads as 0.0


def _shown(name: str, value: Any) -> str:
    return "n/a" if value is None else str(machine(name, value))


# The figures that depend on the benchmark's bars, recomputed to check a benchmark read back later.
BENCHMARK_FIGURES = (
    "benchmark_return",
    "alpha",
    "beta",
    "information_ratio",
    "tracking_error",
    "correlation",
    "up_capture",
    "down_capture",
)


def benchmark_mismatch(
    metrics: Mapping[str, Any], curve: pd.DataFrame, benchmark: Benchmark, zone: str = EXCHANGE_TZ
) -> str | None:
    """Why ``benchmark`` is not what ``metrics`` were measured against, or None when it is: its
    symbol, and the benchmark return and relative figures recomputed from it and ``curve``, must
    equal the stored ones (to float noise)."""
    stored_symbol = metrics.get("benchmark")
    if stored_symbol is not None and stored_symbol != benchmark.symbol:
        return f"the run was measured against {stored_symbol}, not {benchmark.symbol}"
    closes = benchmark.closes["close"].to_numpy(dtype=np.float64)
    fresh = {
        "benchmark_return": float(closes[-1] / closes[0] - 1.0),
        **relative_figures(daily_returns(curve, zone), benchmark_returns(benchmark, zone), zone=zone),
    }
    for name in BENCHMARK_FIGURES:
        if name not in metrics:
            continue  # a run stored before the figure existed
        old, new = metrics[name], fresh.get(name)
        same = (old is None and new is None) or (
            old is not None and new is not None and math.isclose(old, new, rel_tol=1e-9, abs_tol=1e-12)
        )
        if not same:
            return f"they give {name} {_shown(name, new)}, the run stored {_shown(name, old)}"
    return None


def iso_utc(times: pd.Series) -> list[str]:
    """``Timestamp.isoformat()`` of each UTC time (``2024-01-02T14:31:00+00:00``), whole seconds
    formatted by numpy; any time with a fraction of a second by pandas itself."""
    utc = times.dt.tz_convert("UTC")
    ns = utc.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    if (ns.astype(np.int64) % 1_000_000_000 != 0).any():
        return [t.isoformat() for t in utc]
    return [f"{t}+00:00" for t in np.datetime_as_string(ns.astype("datetime64[s]"), unit="s").tolist()]


def money_texts(values: np.ndarray) -> list[str]:
    """``money_text`` of each value. The cents come from ``value * 100`` where that product is
    clearly not near a half cent (its float error is far below the distance); the rest (ties,
    huge or non-positive amounts, non-finite values) go through ``money_text`` itself."""
    cents = np.abs(values) * 100
    whole = np.floor(cents)
    fraction = cents - whole
    clear = np.isfinite(cents) & (values > 0) & (np.abs(fraction - 0.5) > cents * 1e-14 + 1e-9) & (cents < 2.0**52)
    rounded = (whole + (fraction > 0.5)).astype(np.int64)
    texts = [f"{c // 100}.{c % 100:02d}" for c in rounded.tolist()]
    for i in np.flatnonzero(~clear).tolist():
        value = float(values[i])
        texts[i] = money_text(value) if math.isfinite(value) else ""
    return texts


def machine_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Each metric in ``values`` in its machine form (``metric_registry.machine``); anything else
    (a run's key, its parameters) as it is."""
    return {name: machine(name, value) if name in BY_NAME else value for name, value in values.items()}


def metrics_document(record: RunRecord, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """metrics.json: every metric at the top level, then what ran on what data with which versions."""
    return to_jsonable(
        {
            **{name: machine(name, value) for name, value in metrics.items()},
            "config": record.config,
            "data": {
                "bar_type": record.bar_type,
                "bars": record.bar_count,
                "first": metrics["start"],
                "last": metrics["end"],
                "sha256": record.data_hash,
            },
            "versions": record.versions,
            "risk_events": list(record.risk_events),
        }
    )


def render(
    kind: str,
    record: RunRecord,
    metrics: Mapping[str, Any],
    ledger: pd.DataFrame,
    curve: pd.DataFrame,
    chart: bytes | None = None,
    prices: pd.DataFrame | None = None,
    benchmark: Benchmark | None = None,
) -> str:
    """One report as text: ``text``, ``trades``, ``equity``, ``returns``, ``json`` or ``html``.

    ``prices`` (ts_event, close) and ``benchmark`` feed the tearsheet's price and benchmark charts;
    ``benchmark`` also the benchmark column of ``returns.csv`` (empty without one: the traded
    bars alone are not assumed to be what the run was measured against)."""
    if kind == "text":
        return render_text(record, metrics, ledger)
    if kind == "trades":
        return trades_csv(ledger)
    if kind == "equity":
        return equity_csv(curve)
    if kind == "returns":
        return returns_csv(returns_table(curve, benchmark, exchange_zone(record.versions)))
    if kind == "json":
        return json.dumps(metrics_document(record, metrics), indent=2) + "\n"
    if kind == "html":
        return tearsheet_html(record, metrics, ledger, curve, chart, prices, benchmark)
    raise ValueError(f"unknown report kind {kind!r}; use one of {', '.join(REPORT_FILES)}")


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary sibling and a rename; raises ReportWriteError."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the folder may not exist at all
            temporary.unlink(missing_ok=True)
        raise ReportWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def write_reports(
    directory: Path,
    record: RunRecord,
    metrics: Mapping[str, Any],
    ledger: pd.DataFrame,
    curve: pd.DataFrame,
    chart: bytes | None = None,
    prices: pd.DataFrame | None = None,
    benchmark: Benchmark | None = None,
) -> dict[str, Path]:
    """Write every report of one run into ``directory``; returns the paths by kind.

    All are rendered before the first is written, so a rendering error writes nothing.
    ``chart``: the equity-and-drawdown PNG, if the caller drew it already.
    """
    texts = {kind: render(kind, record, metrics, ledger, curve, chart, prices, benchmark) for kind in REPORT_FILES}
    return {kind: write_text(Path(directory) / REPORT_FILES[kind], text) for kind, text in texts.items()}


# --- across runs ---------------------------------------------------------------------------


def machine_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A CSV of ``rows`` (leaderboard, sweep): metrics in their machine form (counts as integers,
    undefined as an empty cell), other cells as they are. Written cell by cell, not through a
    DataFrame, where a column of counts with one gap would turn to floats (``97.0``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([plain_jsonable(v) for v in machine_values({c: row.get(c) for c in columns}).values()])
    return out.getvalue()
