"""``ntrader demo`` (the quick start) and ``ntrader ui`` (the Dagster web UI on the same instance)."""

from __future__ import annotations

import os
import sys

import click

from ntrader_pipeline.cli.common import console, open_pipeline, showing_progress
from ntrader_pipeline.core.progress import progress

DEMO_SYMBOLS = ("ORCL", "NVDA")
DEMO_STRATEGY = "sma_crossover"


@click.command()
def demo() -> None:
    """Import the bundled ORCL and NVDA daily bars and backtest the SMA crossover on each."""
    from ntrader_pipeline.cli.outcome import risk_notes, say, summary_table
    from ntrader_pipeline.settings import SAMPLE_DATA_DIR

    pipeline = open_pipeline()
    rows = []
    with showing_progress(), progress(2 * len(DEMO_SYMBOLS), "demo") as advance:
        for symbol in DEMO_SYMBOLS:
            (file,) = SAMPLE_DATA_DIR.glob(f"{symbol}_*.csv")
            stored = pipeline.import_csv(file, symbol)
            advance(f"imported {symbol}")
            console.print(f"imported {stored['bars_written']} {symbol} bars from {file.name}")
            metrics = pipeline.run_backtest(DEMO_STRATEGY, symbol)
            advance(f"backtested {symbol}")
            rows.append(((symbol, DEMO_STRATEGY), metrics, ""))
    console.print(summary_table("SMA crossover on bundled daily bars", ("symbol", "strategy"), rows))
    for (symbol, _), metrics, _ in rows:
        for line in risk_notes(metrics["run_id"]):
            say(f"{symbol}: {line}")
        say(f"{symbol} tearsheet: {pipeline.tearsheet_url(metrics['run_id'])}")
    say(f"reports of each run: {pipeline.stores.reports_dir_for('<run id>')}")
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
