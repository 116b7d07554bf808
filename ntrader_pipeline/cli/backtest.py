"""``ntrader backtest``: run backtests through Dagster and find their results."""

from __future__ import annotations

import click

from ntrader_pipeline.cli.common import console, open_pipeline, parse_date


@click.group()
def backtest() -> None:
    """Run backtests and look at their results."""


@backtest.command("run")
@click.option("--strategy", required=True, help="Strategy file name in strategy_configs/ (without .yaml).")
@click.option("--symbol", required=True, help="Symbol whose imported bars to trade.")
@click.option("--start", default=None, callback=parse_date, help="First date, YYYY-MM-DD.")
@click.option("--end", default=None, callback=parse_date, help="Last date, YYYY-MM-DD.")
@click.option("--timeframe", default=None, help="Bar interval (default: the strategy file's, DAILY).")
def run(strategy: str, symbol: str, start, end, timeframe: str | None) -> None:
    """Run one strategy on one symbol; prints the run id."""
    metrics = open_pipeline().run_backtest(strategy, symbol, start, end, timeframe)
    console.print(
        f"run {metrics['run_id']}: total return {metrics['total_return']:.2%}, "
        f"{metrics['trade_count']} trades"
    )
    click.echo(metrics["run_id"])
