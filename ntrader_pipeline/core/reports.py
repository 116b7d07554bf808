"""Reports of one backtest run: text (Rich-rendered), trades CSV, equity CSV and metrics JSON.

Prices keep their exact decimals in CSV and JSON (Decimals are written as their exact text),
timestamps are ISO-8601 UTC, and undefined metrics are written as null / "n/a", never as 0.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

PERCENT = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure", "benchmark_return"}


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).tz_convert("UTC").isoformat() if pd.Timestamp(value).tzinfo else value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def format_metric(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if name in PERCENT and isinstance(value, float):
        return f"{value:.2%}"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return str(value)


def render_text(record: dict[str, Any], metrics: dict[str, Any], ledger: pd.DataFrame) -> str:
    """The human report, as Rich renders it on an 100-column terminal."""
    console = Console(record=True, width=100, file=io.StringIO(), color_system=None)
    console.print(f"Backtest {record['run_id']}: {record['strategy']} on {record['symbol']}")
    console.print(f"Bars {record['bar_type']}  {metrics['start']} → {metrics['end']}  ({metrics['bars']} bars)")
    table = Table(title="Metrics", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        if name not in {"run_id", "strategy", "symbol", "start", "end"}:
            table.add_row(name, format_metric(name, value))
    console.print(table)
    for event in record.get("risk_events", []):
        console.print(f"Risk control {event['control']} at {pd.Timestamp(event['ts_event'], tz='UTC').isoformat()}: {event['action']}; {event['detail']}")
    trades = Table(title=f"Trades ({len(ledger)})", show_header=True)
    for column in ("side", "entry_time", "exit_time", "entry_price", "exit_price", "quantity", "realized_pnl"):
        trades.add_column(column, justify="right")
    for row in ledger.tail(20).itertuples(index=False):
        trades.add_row(row.side, row.entry_time.isoformat(), row.exit_time.isoformat(), str(row.entry_price),
                       str(row.exit_price), str(row.quantity), f"{row.realized_pnl:.2f}")
    console.print(trades)
    if len(ledger) > 20:
        console.print(f"(last 20 of {len(ledger)} trades; all are in trades.csv)")
    return console.export_text()


def write_reports(
    directory: Path,
    record: dict[str, Any],
    metrics: dict[str, Any],
    ledger: pd.DataFrame,
    curve: pd.DataFrame,
) -> dict[str, Path]:
    """Write every report of one run into ``directory``; returns the paths by kind."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "text": directory / "report.txt",
        "trades": directory / "trades.csv",
        "equity": directory / "equity.csv",
        "json": directory / "metrics.json",
    }
    paths["text"].write_text(render_text(record, metrics, ledger))
    ledger_out = ledger.copy()
    for column in ("entry_time", "exit_time"):
        ledger_out[column] = ledger_out[column].map(lambda t: t.isoformat())
    ledger_out.to_csv(paths["trades"], index=False)
    equity_out = curve.assign(timestamp=curve["timestamp"].map(lambda t: t.isoformat()))
    equity_out.to_csv(paths["equity"], index=False)
    document = {
        **metrics,
        "config": record["config"],
        "data": {
            "bar_type": record["bar_type"],
            "bars": record["bar_count"],
            "first": metrics["start"],
            "last": metrics["end"],
            "sha256": record["data_hash"],
        },
        "versions": record["versions"],
        "risk_events": [{**e, "ts_event": pd.Timestamp(e["ts_event"], tz="UTC").isoformat()} for e in record.get("risk_events", [])],
    }
    paths["json"].write_text(json.dumps(to_jsonable(document), indent=2) + "\n")
    return paths
