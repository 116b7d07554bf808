"""``ntrader demo`` (the quick start) and ``ntrader ui`` (the Dagster web UI on the same instance)."""

from __future__ import annotations

import os
import sys

import click
from rich.table import Table

from ntrader_pipeline.cli.common import console, open_pipeline, showing_progress
from ntrader_pipeline.core.metric_registry import display, label
from ntrader_pipeline.core.progress import progress

DEMO_SYMBOLS = ("ORCL", "NVDA")
DEMO_STRATEGY = "sma_crossover"
SHOWN = ("total_return", "sharpe_ratio", "max_drawdown", "trade_count")


@click.command()
def demo() -> None:
    """Import the bundled ORCL and NVDA daily bars and backtest the SMA crossover on each."""
    from ntrader_pipeline.settings import SAMPLE_DATA_DIR

    pipeline = open_pipeline()
    table = Table("symbol", "strategy", *map(label, SHOWN), "run id", title="SMA crossover on bundled daily bars")
    reports = []
    with showing_progress(), progress(2 * len(DEMO_SYMBOLS), "demo") as advance:
        for symbol in DEMO_SYMBOLS:
            (file,) = SAMPLE_DATA_DIR.glob(f"{symbol}_*.csv")
            stored = pipeline.import_csv(file, symbol)
            advance(f"imported {symbol}")
            console.print(f"imported {stored['bars_written']} {symbol} bars from {file.name}")
            metrics = pipeline.run_backtest(DEMO_STRATEGY, symbol)
            advance(f"backtested {symbol}")
            table.add_row(symbol, DEMO_STRATEGY, *(display(n, metrics[n]) for n in SHOWN), metrics["run_id"])
            reports.append(pipeline.stores.reports_dir_for(metrics["run_id"]))
    console.print(table)
    for path in reports:
        console.print(f"reports: {path}")
    console.print(f"Dagster instance: {pipeline.settings.resolved_dagster_home} (see it with `ntrader ui`)")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def ui(dagster_args: tuple[str, ...]) -> None:
    """Start `dagster dev` on the instance the CLI writes to (extra arguments go to dagster)."""
    from ntrader_pipeline.pipeline import prepare_dagster_home
    from ntrader_pipeline.settings import get_settings

    prepare_dagster_home(get_settings())
    args = ["dagster", "dev", "-w", "workspace.yaml", *dagster_args]
    os.execvp(sys.executable, [sys.executable, "-m", *args])
